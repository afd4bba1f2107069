/* One via-parm (RFC 3261 §20.42, §25.1; RFC 3581 rport; RFC 5118 §4.5):
 * sent-protocol LWS sent-by *( SEMI via-params ). */
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "sip/fields.h"
#include "sip/lex.h"

static size_t token_end(const char *p, size_t n, size_t i)
{
	while (i < n && is_token((unsigned char)p[i]))
		i++;
	return i;
}

static bool all_token(struct sw_str s)
{
	return s.len && token_end(s.p, s.len, 0) == s.len;
}

/* Validate a host (hostname / IPv4 / IPv6 without brackets) by handing it
 * to the URI parser, so there is one host grammar in the module. */
static bool valid_host(struct sw_str h, bool v6)
{
	/* the URI grammar's host (RFC 3261 §25.1), not a URI built around it */
	return h.len > 0 && h.len <= 290 && sip_host_valid(h, v6);
}

/* received = IPv4address / IPv6address (RFC 3261 §25.1) */
static bool valid_ip(struct sw_str h, bool v6)
{
	if (v6)
		return valid_host(h, true);   /* accepts the RFC 5118 §4.10 form */
	for (size_t i = 0; i < h.len; i++)
		if (!is_digit(h.p[i]) && h.p[i] != '.')
			return false;
	return valid_host(h, false);          /* all-numeric: must be IPv4 */
}

static int port_value(struct sw_str s, uint16_t *port)
{
	uint64_t v;

	if (s.len == 0 || sip_uint_parse(s, 65535, &v) < 0 || v == 0)
		return -EBADMSG;
	for (size_t i = 0; i < s.len; i++)
		if (!is_digit(s.p[i]))
			return -EBADMSG;
	*port = (uint16_t)v;
	return 0;
}

static int via_params(struct sip_via *v)
{
	struct sw_str rest = v->params;
	struct sip_param prm;
	int r;

	while ((r = sip_params_next(&rest, &prm)) > 0) {
		struct sw_str val = prm.value;
		if (sw_str_ieq_c(prm.name, "branch")) {
			if (!val.p || !all_token(val) || v->branch.p)
				return -EBADMSG;
			v->branch = val;
		} else if (sw_str_ieq_c(prm.name, "received")) {
			/* RFC 5118 §4.5: accept with or without brackets */
			bool v6 = false;
			if (!val.p || v->received.p)
				return -EBADMSG;
			if (val.len >= 2 && val.p[0] == '[' && val.p[val.len - 1] == ']') {
				val = sw_str_mk(val.p + 1, val.len - 2);
				v6 = true;
			} else if (memchr(val.p, ':', val.len)) {
				v6 = true;
			}
			if (!valid_ip(val, v6))
				return -EBADMSG;
			v->received = val;
		} else if (sw_str_ieq_c(prm.name, "maddr")) {
			struct sw_str h = val;
			bool v6 = false;
			if (!val.p || v->maddr.p)
				return -EBADMSG;
			if (h.len >= 2 && h.p[0] == '[' && h.p[h.len - 1] == ']') {
				h = sw_str_mk(h.p + 1, h.len - 2);
				v6 = true;
			}
			if (!valid_host(h, v6))
				return -EBADMSG;
			v->maddr = val;
		} else if (sw_str_ieq_c(prm.name, "ttl")) {
			uint64_t t;
			/* ttl = 1*3DIGIT ; 0 to 255 */
			if (!val.p || val.len > 3 || sip_uint_parse(val, 255, &t) < 0 ||
			    !is_digit(val.p[0]))
				return -EBADMSG;
		} else if (sw_str_ieq_c(prm.name, "rport")) {
			/* RFC 3581 §3: response-port = "rport" [EQUAL 1*DIGIT] */
			if (v->rport)
				return -EBADMSG;
			v->rport = true;
			if (val.p && port_value(val, &v->rport_value) < 0)
				return -EBADMSG;
		}
	}
	return r;
}

int sip_via_parse(struct sw_str s, struct sip_via *v)
{
	const char *p = s.p;
	size_t n = s.len, i, a, b;

	memset(v, 0, sizeof(*v));
	if (p == NULL)
		return -EBADMSG;
	s = sw_str_trim(s);
	p = s.p;
	n = s.len;
	v->raw = s;

	/* sent-protocol = protocol-name SLASH protocol-version SLASH transport,
	 * SLASH = SWS "/" SWS */
	i = token_end(p, n, 0);
	if (i == 0)
		return -EBADMSG;
	struct sw_str name = sw_str_mk(p, i);
	i = skip_lws(p, n, i);
	if (i >= n || p[i] != '/')
		return -EBADMSG;
	a = skip_lws(p, n, i + 1);
	b = token_end(p, n, a);
	if (b == a)
		return -EBADMSG;
	struct sw_str version = sw_str_mk(p + a, b - a);
	if (name.p + name.len + 1 == version.p) {
		v->proto = sw_str_mk(p, b);
	} else if (sw_str_ieq_c(name, "SIP") && sw_str_eq(version, SW_STR_LIT("2.0"))) {
		/* LWS inside: give the canonical text rather than a slice with
		 * whitespace in it (RFC 4475 wsinv) */
		v->proto = SW_STR_LIT("SIP/2.0");
	} else {
		v->proto = sw_str_mk(p, b);
	}
	i = skip_lws(p, n, b);
	if (i >= n || p[i] != '/')
		return -EBADMSG;
	a = skip_lws(p, n, i + 1);
	b = token_end(p, n, a);
	if (b == a)
		return -EBADMSG;
	v->transport = sw_str_mk(p + a, b - a);

	/* LWS sent-by; sent-by = host [ COLON port ], COLON = SWS ":" SWS */
	i = skip_lws(p, n, b);
	if (i == b || i >= n)
		return -EBADMSG;
	a = i;
	if (p[i] == '[') {
		const char *rb = memchr(p + i, ']', n - i);
		if (!rb)
			return -EBADMSG;
		i = (size_t)(rb - p);
		v->host = sw_str_mk(p + a + 1, i - a - 1);
		v->host_v6 = true;
		i++;
	} else {
		while (i < n && p[i] != ':' && p[i] != ';' && !is_wsp(p[i]) &&
		       p[i] != '\r' && p[i] != '\n')
			i++;
		v->host = sw_str_mk(p + a, i - a);
	}
	if (!valid_host(v->host, v->host_v6))
		return -EBADMSG;
	b = skip_lws(p, n, i);
	if (b < n && p[b] == ':') {
		a = skip_lws(p, n, b + 1);
		i = a;
		while (i < n && is_digit(p[i]))
			i++;
		if (port_value(sw_str_mk(p + a, i - a), &v->port) < 0)
			return -EBADMSG;
		b = skip_lws(p, n, i);
	}
	if (b < n && p[b] != ';')
		return -EBADMSG;
	v->params = sw_str_mk(p + b, n - b);
	return via_params(v);
}
