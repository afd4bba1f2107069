/* Lexical building blocks of RFC 3261 §25.1 shared by the header-body
 * parsers (fields.c, nameaddr.c, via.c). Private to src/sip. */
#ifndef SW_SIP_LEX_H
#define SW_SIP_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* LWS = [*WSP CRLF] 1*WSP. Returns the index after any linear whitespace
 * at i (a lone CR or LF not followed by WSP is not LWS). */
static inline size_t skip_lws(const char *p, size_t n, size_t i)
{
	for (;;) {
		if (i < n && is_wsp(p[i]))
			i++;
		else if (i + 2 < n && p[i] == '\r' && p[i + 1] == '\n' && is_wsp(p[i + 2]))
			i += 3;
		else if (i + 1 < n && p[i] == '\n' && is_wsp(p[i + 1]))
			i += 2;
		else
			return i;
	}
}

/* Character classes as one table lookup (issue 6: strchr() per character
 * was a measurable share of parsing). */
enum { LEX_TOKEN = 1, LEX_TOKEN68 = 2 };
/* 1 = token, 2 = token68; rows of 32 from 0x00 */
static const unsigned char lex_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 3, 0, 3, 3, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0,
	0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 3,
	1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 3, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* token characters (RFC 3261 §25.1) */
static inline bool is_token(unsigned char c)
{
	return lex_class[c] & LEX_TOKEN;
}

/* token68 characters (RFC 7235 §2.1, without the trailing '=') */
static inline bool is_token68(unsigned char c)
{
	return lex_class[c] & LEX_TOKEN68;
}

/* Skip a quoted-string starting at p[i] == '"'; returns the index after the
 * closing quote, or 0 when unterminated or holding a bare control char.
 * quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F); a line break inside is
 * only allowed as folding (LWS). */
static inline size_t skip_quoted(const char *p, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (i + 1 >= n)
				return 0;
			c = (unsigned char)p[i + 1];
			if (c == '\r' || c == '\n' || c > 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c == '\r' || c == '\n') {
			size_t j = skip_lws(p, n, i);
			if (j == i)
				return 0;
			i = j - 1;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 0;
}

#endif
