/* Auth header bodies: RFC 7235 §2.1 credentials/challenge syntax with the
 * SIP LWS rules of RFC 3261 §25.1. */
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "sip/authhdr.h"
#include "sip/lex.h"

static const char *const ap_names[SIP_AP__COUNT] = {
	[SIP_AP_USERNAME] = "username",
	[SIP_AP_USERNAME_EXT] = "username*",
	[SIP_AP_REALM] = "realm",
	[SIP_AP_NONCE] = "nonce",
	[SIP_AP_URI] = "uri",
	[SIP_AP_RESPONSE] = "response",
	[SIP_AP_ALGORITHM] = "algorithm",
	[SIP_AP_CNONCE] = "cnonce",
	[SIP_AP_OPAQUE] = "opaque",
	[SIP_AP_QOP] = "qop",
	[SIP_AP_NC] = "nc",
	[SIP_AP_USERHASH] = "userhash",
	[SIP_AP_STALE] = "stale",
	[SIP_AP_DOMAIN] = "domain",
	[SIP_AP_CHARSET] = "charset",
	[SIP_AP_RSPAUTH] = "rspauth",
	[SIP_AP_NEXTNONCE] = "nextnonce",
};

const char *sip_ap_name(enum sip_ap ap)
{
	return (unsigned)ap < SIP_AP__COUNT ? ap_names[ap] : "?";
}

static bool is_lws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t skip_sp(const char *p, size_t n, size_t i)
{
	while (i < n && is_lws(p[i]))
		i++;
	return i;
}

/* Octets that end the fast scan inside a quoted-string: '"', '\\', the
 * controls other than HT/CR/LF, and DEL. Rows of 32 from 0x00. */
static const unsigned char qstop[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
};

/* i at the opening quote; returns the index after the closing quote, or 0
 * when unterminated. Sets *esc when a quoted-pair was seen. RFC 3261 §25.1:
 * quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F); CR/LF may only appear as
 * folding, which the header splitter has already accepted. */
static size_t scan_quoted(const char *p, size_t n, size_t i, bool *esc)
{
	for (i++; i < n; i++) {
		while (i < n && !qstop[(unsigned char)p[i]])
			i++;
		if (i >= n)
			return 0;
		unsigned char c = (unsigned char)p[i];
		if (c == '"')
			return i + 1;
		if (c != '\\')
			return 0;   /* a bare control character or DEL */
		if (i + 1 >= n)
			return 0;
		c = (unsigned char)p[i + 1];
		if (c == '\r' || c == '\n' || c > 0x7f)
			return 0;
		*esc = true;
		i++;
	}
	return 0;
}

/* One length/first-letter dispatch, then one comparison (issue 6: a
 * linear scan over all names cost ~100 compares per header). */
static int ap_lookup(struct sw_str name)
{
	int k = -1;
	if (name.len == 0)
		return -1;
	switch (name.p[0] | 0x20) {
	case 'a': k = SIP_AP_ALGORITHM; break;
	case 'c': k = name.len == 6 ? SIP_AP_CNONCE : SIP_AP_CHARSET; break;
	case 'd': k = SIP_AP_DOMAIN; break;
	case 'n': k = name.len == 2 ? SIP_AP_NC : name.len == 5 ? SIP_AP_NONCE : SIP_AP_NEXTNONCE; break;
	case 'o': k = SIP_AP_OPAQUE; break;
	case 'q': k = SIP_AP_QOP; break;
	case 'r': k = name.len == 5 ? SIP_AP_REALM : name.len == 7 ? SIP_AP_RSPAUTH : SIP_AP_RESPONSE; break;
	case 's': k = SIP_AP_STALE; break;
	case 'u':
		k = name.len == 3 ? SIP_AP_URI : name.len == 9 ? SIP_AP_USERNAME_EXT
			: name.len == 8 && (name.p[4] | 0x20) == 'n' ? SIP_AP_USERNAME : SIP_AP_USERHASH;
		break;
	default: return -1;
	}
	return sw_str_ieq_c(name, ap_names[k]) ? k : -1;
}

int sip_auth_parse(struct sw_str value, struct sip_auth *out)
{
	const char *p = value.p;
	size_t n = value.len, i, s;

	memset(out, 0, sizeof(*out));
	if (!p)
		return -EBADMSG;
	i = skip_sp(p, n, 0);
	s = i;
	while (i < n && is_token((unsigned char)p[i]))
		i++;
	if (i == s)
		return -EBADMSG;
	out->scheme_str = sw_str_mk(p + s, i - s);
	if (sw_str_ieq_c(out->scheme_str, "Digest"))
		out->scheme = SIP_AUTH_DIGEST;
	else if (sw_str_ieq_c(out->scheme_str, "Bearer"))
		out->scheme = SIP_AUTH_BEARER;
	else if (sw_str_ieq_c(out->scheme_str, "Basic"))
		out->scheme = SIP_AUTH_BASIC;
	if (i < n && !is_lws(p[i]))
		return -EBADMSG;
	i = skip_sp(p, n, i);
	if (i == n)
		return 0; /* scheme alone */

	/* token68 (RFC 7235 §2.1): one token68 up to the end of the value;
	 * otherwise the rest is a list of auth-params. Digest only has
	 * auth-params (RFC 7616 §3.3, §3.4). */
	s = i;
	while (out->scheme != SIP_AUTH_DIGEST && i < n && is_token68((unsigned char)p[i]))
		i++;
	if (i > s) {
		while (i < n && p[i] == '=')
			i++;
		if (skip_sp(p, n, i) == n) {
			out->token68 = sw_str_mk(p + s, i - s);
			return 0;
		}
	}
	i = s;

	for (;;) {
		i = skip_sp(p, n, i);
		if (i == n)
			break;
		if (p[i] == ',') { /* empty list element */
			i++;
			continue;
		}
		s = i;
		/* '*' is a token char: "username*" (RFC 7616 §3.4.4) is one name */
		while (i < n && is_token((unsigned char)p[i]))
			i++;
		if (i == s)
			return -EBADMSG;
		struct sw_str name = sw_str_mk(p + s, i - s);
		i = skip_sp(p, n, i);
		if (i == n || p[i] != '=')
			return -EBADMSG;
		i = skip_sp(p, n, i + 1);
		if (i == n)
			return -EBADMSG;
		struct sw_str val;
		bool quoted = false, esc = false;
		if (p[i] == '"') {
			size_t e = scan_quoted(p, n, i, &esc);
			if (!e)
				return -EBADMSG;
			val = sw_str_mk(p + i + 1, e - i - 2);
			quoted = true;
			i = e;
		} else {
			s = i;
			while (i < n && is_token((unsigned char)p[i]))
				i++;
			if (i == s)
				return -EBADMSG;
			val = sw_str_mk(p + s, i - s);
		}
		if (++out->nparams > SIP_AUTH_MAX_PARAMS)
			return -EMSGSIZE;
		int k = ap_lookup(name);
		if (k >= 0) {
			if (out->v[k].p)
				return -EBADMSG; /* RFC 7235 §2.1: each name only once */
			out->v[k] = val;
			if (quoted)
				out->quoted |= 1u << k;
			if (esc)
				out->escaped |= 1u << k;
		}
		i = skip_sp(p, n, i);
		if (i == n)
			break;
		if (p[i] != ',')
			return -EBADMSG;
		i++;
	}
	return 0;
}

int sip_auth_unq(const struct sip_auth *a, enum sip_ap ap, char *out, size_t cap,
		 struct sw_str *res)
{
	struct sw_str v = a->v[ap];
	if (!(a->escaped & (1u << ap))) {
		*res = v;
		return 0;
	}
	size_t o = 0;
	for (size_t i = 0; i < v.len; i++) {
		char c = v.p[i];
		if (c == '\\' && i + 1 < v.len)
			c = v.p[++i];
		if (o >= cap)
			return -ENOSPC;
		out[o++] = c;
	}
	*res = sw_str_mk(out, o);
	return 0;
}

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 8187 §3.2.1: ext-value = charset "'" [ language ] "'" value-chars,
 * value-chars = *( pct-encoded / attr-char ). */
ssize_t sip_auth_extvalue(struct sw_str v, char *out, size_t cap)
{
	if (!v.p || !sw_str_iprefix(v, "UTF-8'"))
		return -EBADMSG;
	size_t i = 6;
	while (i < v.len && v.p[i] != '\'')
		i++; /* language tag, ignored */
	if (i == v.len)
		return -EBADMSG;
	i++;
	size_t o = 0;
	for (; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if (c == '%') {
			if (i + 2 >= v.len)
				return -EBADMSG;
			int h = hexdig(v.p[i + 1]), l = hexdig(v.p[i + 2]);
			if (h < 0 || l < 0)
				return -EBADMSG;
			c = (unsigned char)(h << 4 | l);
			i += 2;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			     strchr("!#$&+-.^_`|~", c))) {
			return -EBADMSG;
		}
		if (o >= cap)
			return -ENOSPC;
		out[o++] = (char)c;
	}
	return (ssize_t)o;
}
