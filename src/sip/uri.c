/* SIP, SIPS, tel and other URIs (RFC 3261 §19.1, §25.1; RFC 3966;
 * RFC 5118 for IPv6 references). No LWS inside a URI (RFC 4475 lwsruri).
 * Zero-copy: every field of struct sip_uri points into the input. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "sip/fields.h"

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_alpha(c) || is_digit(c);
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Character classes (issue 6: one table lookup instead of strchr() per
 * character). U_UNRES: unreserved = alphanum / mark (- _ . ! ~ * ' ( ));
 * the others are the extra characters of paramchar, hnv-unreserved,
 * user-unreserved and password (RFC 3261 §25.1). Rows of 32 from 0x00;
 * 0x80-0xff are in no class. */
enum { U_UNRES = 1, U_PARAM = 2, U_HNV = 4, U_USER = 8, U_PASS = 16 };
static const unsigned char uri_class[256] = {
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	 0,  1,  0,  0, 30,  0, 26,  1,  1,  1,  1, 30, 24,  1,  1, 14,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  6,  8,  0, 24,  0, 12,
	 0,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  6,  0,  6,  0,  1,
	 0,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  0,  0,  1,  0,
};

/* Validate a run of characters where unreserved and the `extra` class are
 * allowed and '%' must start a %HH escape (RFC 3261 §25.1 escaped). */
static bool valid_run(const char *p, size_t n, unsigned extra)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			if (i + 2 >= n || !is_hex(p[i + 1]) || !is_hex(p[i + 2]))
				return false;
			i += 2;
		} else if (!(uri_class[(unsigned char)c] & (U_UNRES | extra))) {
			return false;
		}
	}
	return true;
}

/* IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT, each <= 255. */
static bool valid_ipv4(const char *p, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0, d = 0;
		if (part) {
			if (i >= n || p[i] != '.')
				return false;
			i++;
		}
		while (i < n && is_digit(p[i]) && d < 3) {
			v = v * 10 + (unsigned)(p[i] - '0');
			i++;
			d++;
		}
		if (d == 0 || v > 255)
			return false;
	}
	return i == n;
}

/* IPv6address per RFC 4291 text forms, plus the RFC 3261 ABNF quirk
 * "2001:db8:::192.0.2.1" that RFC 5118 §4.10 says to tolerate. */
static bool valid_ipv6(const char *p, size_t n)
{
	size_t i = 0;
	unsigned groups = 0;
	bool dbl = false;

	if (n < 2)
		return false;
	if (p[0] == ':') {
		if (p[1] != ':')
			return false;
		dbl = true;
		i = 2;
		if (i == n)
			return true;
	}
	for (;;) {
		size_t s = i, e = i;
		while (e < n && p[e] != ':')
			e++;
		if (memchr(p + s, '.', e - s) != NULL) {
			/* embedded IPv4 must be the last piece */
			if (e != n || !valid_ipv4(p + s, e - s))
				return false;
			groups += 2;
			break;
		}
		if (e == s) {
			/* only the RFC 5118 §4.10 ":::" before an IPv4 tail */
			if (!(dbl && i >= 2 && p[i - 1] == ':' && p[i - 2] == ':' &&
			      e < n && memchr(p + e + 1, '.', n - e - 1) != NULL &&
			      memchr(p + e + 1, ':', n - e - 1) == NULL))
				return false;
			i = e + 1;
			continue;
		}
		if (e - s > 4)
			return false;
		for (size_t k = s; k < e; k++)
			if (!is_hex(p[k]))
				return false;
		groups++;
		if (e == n)
			break;
		i = e + 1;
		if (i < n && p[i] == ':') {
			if (dbl)
				return false;
			dbl = true;
			i++;
			if (i == n)
				break;
		} else if (i == n) {
			return false;       /* trailing single ':' */
		}
		if (groups > 8)
			return false;
	}
	return dbl ? groups <= 7 : groups == 8;
}

/* hostname = *( domainlabel "." ) toplabel [ "." ]; labels are alphanum
 * with inner '-'. An all-numeric dotted host must be a valid IPv4. */
static bool valid_hostname(const char *p, size_t n)
{
	bool numeric = true;
	size_t label = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '.') {
			if (label == 0 || p[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_alnum(c) || c == '-') {
			if (label == 0 && c == '-')
				return false;
			if (!is_digit(c))
				numeric = false;
			label++;
		} else {
			return false;
		}
	}
	if (label && p[n - 1] == '-')
		return false;
	if (numeric)
		return valid_ipv4(p, n);
	return true;
}

bool sip_host_valid(struct sw_str h, bool v6)
{
	return v6 ? valid_ipv6(h.p, h.len) : valid_hostname(h.p, h.len);
}

/* Port: 1*DIGIT, 1..65535 (0 is not a usable port). */
static int parse_port(const char *p, size_t n, uint16_t *port)
{
	unsigned v = 0;

	if (n == 0)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return -EBADMSG;
		v = v * 10 + (unsigned)(p[i] - '0');
		if (v > 65535)
			return -EBADMSG;
	}
	if (v == 0)
		return -EBADMSG;
	*port = (uint16_t)v;
	return 0;
}

/* uri-parameters = *( ";" uri-parameter ), pname/pvalue = 1*paramchar;
 * paramchar = param-unreserved / unreserved / escaped. */

static int parse_uri_params(struct sw_str params, struct sip_uri *u)
{
	const char *p = params.p;
	size_t n = params.len, i = 0;

	while (i < n) {
		if (p[i] != ';')
			return -EBADMSG;
		size_t s = ++i;
		while (i < n && p[i] != ';' && p[i] != '=')
			i++;
		struct sw_str name = sw_str_mk(p + s, i - s);
		struct sw_str value = SW_STR_NULL;
		if (name.len == 0 || !valid_run(name.p, name.len, U_PARAM))
			return -EBADMSG;
		if (i < n && p[i] == '=') {
			s = ++i;
			while (i < n && p[i] != ';')
				i++;
			value = sw_str_mk(p + s, i - s);
			if (value.len == 0 || !valid_run(value.p, value.len, U_PARAM))
				return -EBADMSG;
		}
		/* RFC 3261 §19.1.1: the well-known ones; first occurrence wins */
		if (sw_str_ieq_c(name, "transport")) {
			if (!value.p)
				return -EBADMSG;
			if (!u->transport.p)
				u->transport = value;
		} else if (sw_str_ieq_c(name, "maddr")) {
			if (!value.p)
				return -EBADMSG;
			if (!u->maddr.p)
				u->maddr = value;
		} else if (sw_str_ieq_c(name, "user")) {
			if (!value.p)
				return -EBADMSG;
			if (!u->user_param.p)
				u->user_param = value;
		} else if (sw_str_ieq_c(name, "lr")) {
			u->lr = true;
		}
	}
	return 0;
}

/* headers = "?" header *( "&" header ); header = hname "=" hvalue;
 * hname = 1*( hnv-unreserved / unreserved / escaped ), hvalue = *( same ). */

static bool valid_uri_headers(const char *p, size_t n)
{
	size_t i = 0;

	for (;;) {
		size_t s = i;
		while (i < n && p[i] != '=' && p[i] != '&')
			i++;
		if (i == s || i == n || p[i] != '=' || !valid_run(p + s, i - s, U_HNV))
			return false;
		s = ++i;
		while (i < n && p[i] != '&')
			i++;
		if (!valid_run(p + s, i - s, U_HNV))
			return false;
		if (i == n)
			return true;
		i++;
	}
}

/* Anything a URI may never hold: controls, space, DEL, 8-bit, and the
 * delimiters that frame it in a header (RFC 3986 §2; RFC 3261 §25.1). */
static bool valid_opaque(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '"')
			return false;
	}
	return true;
}

static int parse_sip(const char *p, size_t n, struct sip_uri *u)
{
	size_t i = 0;
	const char *at = memchr(p, '@', n);

	/* RFC 3261 §25.1: '@' is in none of user, password, host, params or
	 * headers, so an unescaped '@' is the userinfo delimiter; the user part
	 * may hold ';' and '?' (RFC 4475 semiuri) and escaped '@'. */
	if (at) {
		size_t ui = (size_t)(at - p);
		const char *colon = memchr(p, ':', ui);
		size_t ulen = colon ? (size_t)(colon - p) : ui;
		if (ulen == 0 || !valid_run(p, ulen, U_USER))
			return -EBADMSG;
		u->user = sw_str_mk(p, ulen);
		if (colon) {
			size_t plen = ui - ulen - 1;
			if (!valid_run(colon + 1, plen, U_PASS))
				return -EBADMSG;
			u->password = sw_str_mk(colon + 1, plen);
		}
		i = ui + 1;
	}

	/* host */
	size_t hs = i;
	if (i < n && p[i] == '[') {
		const char *rb = memchr(p + i, ']', n - i);
		if (!rb)
			return -EBADMSG;
		size_t he = (size_t)(rb - p);
		if (!valid_ipv6(p + hs + 1, he - hs - 1))
			return -EBADMSG;
		u->host = sw_str_mk(p + hs + 1, he - hs - 1);
		u->host_v6 = true;
		i = he + 1;
	} else {
		while (i < n && p[i] != ':' && p[i] != ';' && p[i] != '?')
			i++;
		if (!valid_hostname(p + hs, i - hs))
			return -EBADMSG;
		u->host = sw_str_mk(p + hs, i - hs);
	}
	if (i < n && p[i] == ':') {
		size_t ps = ++i;
		while (i < n && p[i] != ';' && p[i] != '?')
			i++;
		if (parse_port(p + ps, i - ps, &u->port) < 0)
			return -EBADMSG;
	}
	if (i < n && p[i] != ';' && p[i] != '?')
		return -EBADMSG;

	size_t ps = i;
	while (i < n && p[i] != '?')
		i++;
	u->params = sw_str_mk(p + ps, i - ps);
	if (parse_uri_params(u->params, u) < 0)
		return -EBADMSG;
	if (i < n) {
		u->headers = sw_str_mk(p + i + 1, n - i - 1);
		if (!valid_uri_headers(u->headers.p, u->headers.len))
			return -EBADMSG;
	}
	return 0;
}

int sip_uri_parse(struct sw_str s, struct sip_uri *u)
{
	const char *p = s.p;
	size_t n = s.len, i = 0;

	memset(u, 0, sizeof(*u));
	if (p == NULL || n == 0)
		return -EBADMSG;
	u->raw = s;
	/* RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	if (!is_alpha(p[0]))
		return -EBADMSG;
	while (i < n && (is_alnum(p[i]) || p[i] == '+' || p[i] == '-' || p[i] == '.'))
		i++;
	if (i == n || p[i] != ':')
		return -EBADMSG;
	u->scheme_str = sw_str_mk(p, i);
	p += i + 1;
	n -= i + 1;
	if (sw_str_ieq_c(u->scheme_str, "sip"))
		u->scheme = SIP_URI_SIP;
	else if (sw_str_ieq_c(u->scheme_str, "sips"))
		u->scheme = SIP_URI_SIPS;
	else if (sw_str_ieq_c(u->scheme_str, "tel"))
		u->scheme = SIP_URI_TEL;
	else
		u->scheme = SIP_URI_OTHER;

	if (!valid_opaque(p, n))
		return -EBADMSG;
	if (u->scheme == SIP_URI_TEL || u->scheme == SIP_URI_OTHER) {
		u->opaque = sw_str_mk(p, n);
		return 0;
	}
	return parse_sip(p, n, u);
}

/* Next octet of an escaped string, %HH decoded; false at the end or on a
 * broken escape (*bad set). */
static bool next_octet(struct sw_str s, size_t *i, unsigned char *c, bool *bad)
{
	if (*i >= s.len)
		return false;
	if (s.p[*i] == '%') {
		char h[3] = { 0 };
		if (*i + 2 >= s.len || !is_hex(s.p[*i + 1]) || !is_hex(s.p[*i + 2])) {
			*bad = true;
			return false;
		}
		h[0] = s.p[*i + 1];
		h[1] = s.p[*i + 2];
		*c = (unsigned char)((is_digit(h[0]) ? h[0] - '0' : (h[0] | 0x20) - 'a' + 10) << 4 |
				     (is_digit(h[1]) ? h[1] - '0' : (h[1] | 0x20) - 'a' + 10));
		*i += 3;
		return true;
	}
	*c = (unsigned char)s.p[*i];
	(*i)++;
	return true;
}

/* Compare two escaped strings octet by octet after unescaping. */
static bool escaped_eq(struct sw_str a, struct sw_str b)
{
	size_t i = 0, j = 0;
	bool bad = false;

	for (;;) {
		unsigned char x = 0, y = 0;  /* set whenever ha and hb are true */
		bool ha = next_octet(a, &i, &x, &bad);
		bool hb = next_octet(b, &j, &y, &bad);
		if (bad)
			return false;
		if (!ha || !hb)
			return ha == hb;
		if (x != y)
			return false;
	}
}

static bool host_eq(const struct sip_uri *a, const struct sip_uri *b)
{
	if (a->host_v6 != b->host_v6)
		return false;
	if (a->host_v6) {
		/* RFC 5118 §4.9: compare addresses, not their text forms */
		char sa[64], sb[64];
		unsigned char na[16], nb[16];
		if (sw_str_copy(a->host, sa, sizeof(sa)) == 0 &&
		    sw_str_copy(b->host, sb, sizeof(sb)) == 0 &&
		    inet_pton(AF_INET6, sa, na) == 1 && inet_pton(AF_INET6, sb, nb) == 1)
			return memcmp(na, nb, sizeof(na)) == 0;
	}
	return sw_str_ieq(a->host, b->host);
}

/* RFC 3261 §19.1.4: same scheme; userinfo equal after unescaping and
 * case-sensitive; host case-insensitive; port equal, an absent port does
 * not match an explicit 5060. */
bool sip_uri_addr_eq(const struct sip_uri *a, const struct sip_uri *b)
{
	if (a->scheme != b->scheme)
		return false;
	if (a->scheme == SIP_URI_OTHER || a->scheme == SIP_URI_TEL)
		return sw_str_ieq(a->scheme_str, b->scheme_str) &&
		       escaped_eq(a->opaque, b->opaque);
	if (sw_str_present(a->user) != sw_str_present(b->user) ||
	    !escaped_eq(a->user, b->user))
		return false;
	if (sw_str_present(a->password) != sw_str_present(b->password) ||
	    !escaped_eq(a->password, b->password))
		return false;
	return host_eq(a, b) && a->port == b->port;
}
