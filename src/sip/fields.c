/* Header-body building blocks: list splitting, header iteration, generic
 * parameters, decimal values, CSeq and %-unescaping (RFC 3261 §7.3, §25.1).
 * Pure functions over slices: no allocation, no writes into the input,
 * no recursion. */
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "sip/fields.h"
#include "sip/lex.h"

/* gen-value = token / host / quoted-string (RFC 3261 §25.1). Besides token
 * characters accept what hosts and uri-parameter values hold (':' '[' ']'
 * and the paramchar extras), so the same iterator serves uri-parameters. */
static bool is_pvalue(unsigned char c)
{
	if (is_token(c))
		return true;
	switch (c) {
	case ':': case '[': case ']': case '/': case '&': case '$': case '(': case ')':
		return true;
	}
	return false;
}

/* Octets sip_list_next must look at: '"' '<' '>' ','. */
static const unsigned char list_stop[256] = {
	['"'] = 1, ['<'] = 1, ['>'] = 1, [','] = 1,
};

int sip_list_next(struct sw_str *rest, struct sw_str *elem)
{
	/* The end of the list is marked by rest->p == NULL so that empty
	 * elements (",a", "a,,b", "a,") are still reported. */
	if (rest->p == NULL)
		return 0;
	const char *p = rest->p;
	size_t n = rest->len, i = 0;
	bool in_angle = false;

	while (i < n) {
		/* issue 6: skip ordinary octets with one table lookup each */
		while (i < n && !list_stop[(unsigned char)p[i]])
			i++;
		if (i >= n)
			break;
		char c = p[i];
		if (c == ',')
			break;
		if (c == '"') {
			size_t j = skip_quoted(p, n, i);
			if (j == 0)
				return -EBADMSG;
			i = j;
		} else if (c == '<') {
			/* inside <...> nothing is special until the '>' */
			const char *gt = memchr(p + i + 1, '>', n - i - 1);
			if (!gt) {
				in_angle = true;
				break;
			}
			i = (size_t)(gt - p) + 1;
		} else {
			return -EBADMSG;   /* '>' without '<' */
		}
	}
	if (in_angle)
		return -EBADMSG;
	*elem = sw_str_trim(sw_str_mk(p, i));
	if (elem->len == 0)
		elem->p = p + i;
	if (i < n)
		*rest = sw_str_mk(p + i + 1, n - i - 1);
	else
		*rest = SW_STR_NULL;
	return 1;
}

void sip_hdr_iter_init(struct sip_hdr_iter *it, const struct sip_msg *m, enum sip_hdr_id id)
{
	it->m = m;
	it->id = id;
	it->idx = -1;
	it->rest = SW_STR_NULL;
}

int sip_hdr_iter_next(struct sip_hdr_iter *it, struct sw_str *elem)
{
	const struct sip_msg *m = it->m;

	if ((int)it->id < 0 || (int)it->id >= SIP_H__COUNT || m == NULL || m->hdrs == NULL)
		return 0;
	for (;;) {
		if (it->idx >= 0 && (unsigned)it->idx < m->nhdrs) {
			int r = sip_list_next(&it->rest, elem);
			if (r != 0)
				return r;
		}
		/* next field with that id, in message order */
		unsigned i;
		if (it->idx < 0) {
			if (m->first[it->id] < 0)
				return 0;
			i = (unsigned)m->first[it->id];
		} else if ((unsigned)it->idx >= m->nhdrs) {
			return 0;
		} else {
			i = (unsigned)it->idx + 1;
		}
		while (i < m->nhdrs && m->hdrs[i].id != it->id)
			i++;
		it->idx = (int)i;
		if (i >= m->nhdrs)
			return 0;
		it->rest = m->hdrs[i].value;
		if (it->rest.p == NULL)
			it->rest = sw_str_mk("", 0);
	}
}

int sip_params_next(struct sw_str *rest, struct sip_param *prm)
{
	const char *p = rest->p;
	size_t n = rest->len, i;

	if (p == NULL)
		return 0;
	i = skip_lws(p, n, 0);
	if (i == n) {
		*rest = sw_str_mk(p + n, 0);
		return 0;
	}
	if (p[i] != ';')
		return -EBADMSG;
	i = skip_lws(p, n, i + 1);
	size_t s = i;
	while (i < n && is_token((unsigned char)p[i]))
		i++;
	if (i == s)
		return -EBADMSG;     /* ";;" or a trailing ';' (RFC 4475 badinv01) */
	prm->name = sw_str_mk(p + s, i - s);
	prm->value = SW_STR_NULL;
	size_t j = skip_lws(p, n, i);
	if (j < n && p[j] == '=') {
		i = skip_lws(p, n, j + 1);
		s = i;
		if (i < n && p[i] == '"') {
			i = skip_quoted(p, n, i);
			if (i == 0)
				return -EBADMSG;
		} else {
			while (i < n && is_pvalue((unsigned char)p[i]))
				i++;
		}
		if (i == s)
			return -EBADMSG;
		prm->value = sw_str_mk(p + s, i - s);
		j = skip_lws(p, n, i);
	}
	if (j < n && p[j] != ';')
		return -EBADMSG;
	*rest = sw_str_mk(p + j, n - j);
	return 1;
}

int sip_param_get(struct sw_str params, const char *name, struct sw_str *value)
{
	struct sip_param prm;

	while (sip_params_next(&params, &prm) > 0) {
		if (sw_str_ieq_c(prm.name, name)) {
			*value = prm.value;
			return 1;
		}
	}
	return 0;
}

int sip_uint_parse(struct sw_str s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	bool range = false;

	s = sw_str_trim(s);
	if (s.len == 0)
		return -EBADMSG;
	for (size_t i = 0; i < s.len; i++) {
		unsigned d = (unsigned char)s.p[i] - '0';
		if (d > 9)
			return -EBADMSG;
		if (v > (UINT64_MAX - d) / 10)
			range = true;
		else
			v = v * 10 + d;
	}
	if (range || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* Methods are case-sensitive (RFC 3261 §7.1). Kept here rather than
 * calling the message parser so this file links on its own. */
static enum sip_method method_id(struct sw_str s)
{
	static const char *const names[SIP_M__COUNT] = {
		[SIP_M_INVITE] = "INVITE", [SIP_M_ACK] = "ACK", [SIP_M_BYE] = "BYE",
		[SIP_M_CANCEL] = "CANCEL", [SIP_M_OPTIONS] = "OPTIONS",
		[SIP_M_REGISTER] = "REGISTER", [SIP_M_INFO] = "INFO",
		[SIP_M_UPDATE] = "UPDATE", [SIP_M_PRACK] = "PRACK",
		[SIP_M_SUBSCRIBE] = "SUBSCRIBE", [SIP_M_NOTIFY] = "NOTIFY",
		[SIP_M_REFER] = "REFER", [SIP_M_MESSAGE] = "MESSAGE",
		[SIP_M_PUBLISH] = "PUBLISH",
	};
	for (int m = 1; m < SIP_M__COUNT; m++)
		if (sw_str_eq(s, sw_str_c(names[m])))
			return (enum sip_method)m;
	return SIP_M_UNKNOWN;
}

/* RFC 3261 §20.16: CSeq = 1*DIGIT LWS Method; the number is 32-bit
 * (RFC 4475 scalar02); leading zeros are fine (RFC 4475 wsinv). */
int sip_cseq_parse(struct sw_str s, struct sip_cseq *c)
{
	const char *p = s.p;
	size_t n = s.len, i, d;
	uint64_t v = 0;

	if (p == NULL)
		return -EBADMSG;
	i = skip_lws(p, n, 0);
	d = i;
	while (i < n && p[i] >= '0' && p[i] <= '9') {
		v = v * 10 + (unsigned)(p[i] - '0');
		if (v > UINT32_MAX)
			return -EBADMSG;
		i++;
	}
	if (i == d)
		return -EBADMSG;
	size_t j = skip_lws(p, n, i);
	if (j == i)
		return -EBADMSG;
	i = j;
	while (i < n && is_token((unsigned char)p[i]))
		i++;
	if (i == j)
		return -EBADMSG;
	if (skip_lws(p, n, i) != n)
		return -EBADMSG;
	c->num = (uint32_t)v;
	c->method_name = sw_str_mk(p + j, i - j);
	c->method = method_id(c->method_name);
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t sip_unescape(struct sw_str in, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < in.len; i++) {
		char c = in.p[i];
		if (c == '%') {
			if (i + 2 >= in.len)
				return -EBADMSG;
			int h = hexval(in.p[i + 1]), l = hexval(in.p[i + 2]);
			if (h < 0 || l < 0)
				return -EBADMSG;
			c = (char)(h << 4 | l);
			i += 2;   /* one pass only: "%2541" -> "%41" (RFC 4475 esc01) */
		}
		if (o >= cap)
			return -ENOSPC;
		out[o++] = c;
	}
	return (ssize_t)o;
}
