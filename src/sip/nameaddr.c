/* name-addr / addr-spec with header parameters (RFC 3261 §20.10, §20.20,
 * §20.39, §25.1; RFC 5626 §4.1 for +sip.instance and reg-id). */
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "sip/fields.h"
#include "sip/lex.h"

static bool all_token(struct sw_str s)
{
	for (size_t i = 0; i < s.len; i++)
		if (!is_token((unsigned char)s.p[i]))
			return false;
	return s.len > 0;
}

/* display-name = *(token LWS) / quoted-string: true when p[0..n) is tokens
 * separated by LWS (RFC 4475 baddn: a ',' there is an error). */
static bool token_display(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (is_token((unsigned char)p[i])) {
			i++;
			continue;
		}
		size_t j = skip_lws(p, n, i);
		if (j == i)
			return false;
		i = j;
	}
	return true;
}

/* 1*DIGIT no larger than max; -EBADMSG otherwise (RFC 4475 scalar02). */
static int dec_value(struct sw_str v, uint64_t max, int64_t *out)
{
	uint64_t x;

	if (!v.p || v.len == 0 || !is_digit(v.p[0]) || !is_digit(v.p[v.len - 1]))
		return -EBADMSG;
	if (sip_uint_parse(v, max, &x) < 0)
		return -EBADMSG;
	*out = (int64_t)x;
	return 0;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), as 0..1000
 * (RFC 3261 §25.1). */
static int qvalue(struct sw_str v, int *q)
{
	int x = 0, scale = 100;

	if (!v.p || v.len == 0 || v.len > 5 || (v.p[0] != '0' && v.p[0] != '1'))
		return -EBADMSG;
	if (v.len > 1 && v.p[1] != '.')
		return -EBADMSG;
	for (size_t i = 2; i < v.len; i++) {
		if (!is_digit(v.p[i]))
			return -EBADMSG;
		x += (v.p[i] - '0') * scale;
		scale /= 10;
	}
	if (v.p[0] == '1') {
		if (x != 0)
			return -EBADMSG;
		x = 1000;
	}
	*q = x;
	return 0;
}

static int header_params(struct sip_nameaddr *na)
{
	struct sw_str rest = na->params;
	struct sip_param prm;
	int r;

	while ((r = sip_params_next(&rest, &prm)) > 0) {
		struct sw_str v = prm.value;
		if (sw_str_ieq_c(prm.name, "tag")) {
			/* RFC 3261 §19.3: tag = token */
			if (!all_token(v))
				return -EBADMSG;
			if (!na->tag.p)
				na->tag = v;
		} else if (sw_str_ieq_c(prm.name, "expires")) {
			/* RFC 3261 §20.19: delta-seconds, 32-bit (RFC 4475 scalar02) */
			int64_t e;
			if (dec_value(v, UINT32_MAX, &e) < 0)
				return -EBADMSG;
			if (na->expires < 0)
				na->expires = e;
		} else if (sw_str_ieq_c(prm.name, "q")) {
			int q;
			if (qvalue(v, &q) < 0)
				return -EBADMSG;
			if (na->q < 0)
				na->q = q;
		} else if (sw_str_ieq_c(prm.name, "+sip.instance")) {
			if (!v.p)
				return -EBADMSG;
			if (!na->instance.p)
				na->instance = v;
		} else if (sw_str_ieq_c(prm.name, "reg-id")) {
			/* RFC 5626 §4.1: 1 to 2^31-1 */
			int64_t id;
			if (dec_value(v, INT32_MAX, &id) < 0 || id == 0)
				return -EBADMSG;
			if (na->reg_id < 0)
				na->reg_id = id;
		}
	}
	return r;
}

static int parse_addr(struct sw_str s, struct sip_nameaddr *na)
{
	const char *p;
	size_t n, i = 0, lt = 0;
	bool name_addr = false;

	memset(na, 0, sizeof(*na));
	na->expires = -1;
	na->q = -1;
	na->reg_id = -1;
	if (s.p == NULL)
		return -EBADMSG;
	s = sw_str_trim(s);
	p = s.p;
	n = s.len;
	na->raw = s;
	if (n == 0)
		return -EBADMSG;

	if (p[0] == '"') {
		size_t j = skip_quoted(p, n, 0);
		if (j == 0)
			return -EBADMSG;
		na->display = sw_str_mk(p, j);
		lt = skip_lws(p, n, j);
		if (lt >= n || p[lt] != '<')
			return -EBADMSG;
		name_addr = true;
	} else if (p[0] == '<') {
		name_addr = true;
	} else {
		/* Tokens then '<' (LWS before '<' optional, RFC 4475 lwsdisp);
		 * otherwise this is an addr-spec. */
		const char *q = memchr(p, '<', n);
		if (q) {
			lt = (size_t)(q - p);
			if (token_display(p, lt)) {
				na->display = sw_str_trim(sw_str_mk(p, lt));
				name_addr = true;
			} else if (memchr(p, ':', lt) == NULL) {
				return -EBADMSG;   /* RFC 4475 baddn */
			}
		}
	}
	if (na->display.len == 0)
		na->display = SW_STR_NULL;

	if (name_addr) {
		/* name-addr = [ display-name ] LAQUOT addr-spec RAQUOT; no LWS
		 * inside the brackets (RFC 4475 badaspec) */
		const char *gt = memchr(p + lt, '>', n - lt);
		if (!gt)
			return -EBADMSG;
		size_t e = (size_t)(gt - p);
		if (sip_uri_parse(sw_str_mk(p + lt + 1, e - lt - 1), &na->uri) < 0)
			return -EBADMSG;
		na->bracketed = true;
		i = e + 1;
	} else {
		/* RFC 3261 §20: without <> the URI ends at the first ';' (those
		 * are header parameters, RFC 4475 cparam01), and a URI holding
		 * ',' or '?' must have been bracketed (RFC 4475 regbadct). */
		while (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t' &&
		       p[i] != '\r' && p[i] != '\n') {
			if (p[i] == ',' || p[i] == '?')
				return -EBADMSG;
			i++;
		}
		if (sip_uri_parse(sw_str_mk(p, i), &na->uri) < 0)
			return -EBADMSG;
	}
	i = skip_lws(p, n, i);
	if (i < n && p[i] != ';')
		return -EBADMSG;
	na->params = sw_str_mk(p + i, n - i);
	return header_params(na);
}

int sip_nameaddr_parse(struct sw_str s, struct sip_nameaddr *na)
{
	return parse_addr(s, na);
}

/* Contact = ( STAR / (contact-param *(COMMA contact-param)) ), one element
 * here (RFC 3261 §20.10). */
int sip_contact_parse(struct sw_str s, struct sip_nameaddr *na)
{
	struct sw_str t = sw_str_trim(s);

	if (t.p && t.len == 1 && t.p[0] == '*') {
		memset(na, 0, sizeof(*na));
		na->raw = t;
		na->star = true;
		na->expires = -1;
		na->q = -1;
		na->reg_id = -1;
		return 0;
	}
	return parse_addr(s, na);
}
