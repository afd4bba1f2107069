/* Full validation of a parsed message: every known header body that
 * sip_parse leaves for lazy parsing (STYLE.md §3) is parsed once here, so
 * a request that passes can be forwarded or stored without surprises.
 * The Contact count limit (max_contacts) is enforced by sip_parse, which
 * has the limits; here the values themselves are checked. */
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "sip/fields.h"
#include "sip/lex.h"
#include "sip/parse.h"

static bool token_ok(struct sw_str s)
{
	if (!s.len)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (!is_token((unsigned char)s.p[i]))
			return false;
	return true;
}

/* Split "head ;params" at the first ';' outside quotes. */
static void split_params(struct sw_str e, struct sw_str *head, struct sw_str *params)
{
	size_t i = 0;
	bool q = false;
	for (; i < e.len; i++) {
		char c = e.p[i];
		if (q && c == '\\' && i + 1 < e.len)
			i++;
		else if (c == '"')
			q = !q;
		else if (!q && c == ';')
			break;
	}
	*head = sw_str_trim(sw_str_mk(e.p, i));
	*params = sw_str_mk(e.p + i, e.len - i);
}

/* generic-params: every one well formed (RFC 3261 §25.1). */
static bool params_ok(struct sw_str params)
{
	struct sip_param p;
	int r;
	size_t guard = params.len + 1;   /* each call consumes at least ';' */
	while ((r = sip_params_next(&params, &p)) > 0)
		if (guard-- == 0)
			return false;
	return r == 0;
}

/* token *(SEMI generic-param), the shape of option-tags, Event, Allow,
 * Content-Encoding, Allow-Events elements. */
static bool token_with_params(struct sw_str e, bool params_allowed)
{
	struct sw_str head, params;
	split_params(e, &head, &params);
	if (!token_ok(head))
		return false;
	if (params.len && (!params_allowed || !params_ok(params)))
		return false;
	return true;
}

/* media-type = m-type "/" m-subtype *(SEMI m-parameter) (§20.15);
 * media-range of Accept (§20.1) allows "*" for either part. */
static bool media_ok(struct sw_str e)
{
	struct sw_str head, params;
	split_params(e, &head, &params);
	const char *sl = memchr(head.p, '/', head.len);
	if (!head.len || !sl)
		return false;
	struct sw_str t = sw_str_trim(sw_str_mk(head.p, (size_t)(sl - head.p)));
	struct sw_str st = sw_str_trim(sw_str_mk(sl + 1, head.len - (size_t)(sl - head.p) - 1));
	if (!token_ok(t) || !token_ok(st))
		return false;
	return !params.len || params_ok(params);
}

/* rfc1123-date = wkday "," SP date1 SP time SP "GMT" (§20.17, RFC 2616
 * §3.3.1); RFC 4475 §3.1.2.12 baddate uses "EST" and is refused. */
static bool date_ok(struct sw_str v)
{
	static const char wk[] = "MonTueWedThuFriSatSun";
	static const char mo[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	/* "Sun, 06 Nov 1994 08:49:37 GMT" is exactly 29 octets */
	if (v.len != 29)
		return false;
	const char *p = v.p;
	bool found = false;
	for (int i = 0; i < 7; i++)
		found |= memcmp(p, wk + 3 * i, 3) == 0;
	if (!found || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' ||
	    p[16] != ' ' || p[19] != ':' || p[22] != ':' || p[25] != ' ' ||
	    memcmp(p + 26, "GMT", 3) != 0)
		return false;
	found = false;
	for (int i = 0; i < 12; i++)
		found |= memcmp(p + 8, mo + 3 * i, 3) == 0;
	if (!found)
		return false;
	static const unsigned char dpos[] = { 5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24 };
	for (size_t i = 0; i < sizeof(dpos); i++)
		if (p[dpos[i]] < '0' || p[dpos[i]] > '9')
			return false;
	int day = (p[5] - '0') * 10 + (p[6] - '0');
	int hh = (p[17] - '0') * 10 + (p[18] - '0');
	int mm = (p[20] - '0') * 10 + (p[21] - '0');
	int ss = (p[23] - '0') * 10 + (p[24] - '0');
	return day >= 1 && day <= 31 && hh < 24 && mm < 60 && ss <= 60;
}

/* Timestamp = 1*(DIGIT) ["." *(DIGIT)] [LWS delay] (§20.38) */
static bool number_ok(struct sw_str s)
{
	size_t i = 0, d = 0;
	while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9') {
		i++;
		d++;
	}
	if (!d)
		return false;
	if (i < s.len && s.p[i] == '.')
		for (i++; i < s.len && s.p[i] >= '0' && s.p[i] <= '9'; i++)
			;
	return i == s.len;
}

static bool timestamp_ok(struct sw_str v)
{
	size_t i = 0;
	while (i < v.len && v.p[i] != ' ' && v.p[i] != '\t' && v.p[i] != '\r' && v.p[i] != '\n')
		i++;
	if (!number_ok(sw_str_mk(v.p, i)))
		return false;
	struct sw_str delay = sw_str_trim(sw_str_mk(v.p + i, v.len - i));
	return !delay.len || number_ok(delay);
}

enum shape {
	S_NAMEADDR,        /* name-addr or addr-spec with params */
	S_ROUTE,           /* name-addr (in <>) with params: Route, Record-Route, Path */
	S_CONTACT,
	S_VIA,
	S_TOKEN_LIST,      /* 1*token, params not allowed */
	S_TOKEN_LIST0,     /* *token (may be empty) */
	S_TOKEN_PARAMS,    /* token *(;param), one element */
	S_MEDIA,           /* one media-type */
	S_MEDIA_LIST0,     /* *media-range */
	S_DELTA,           /* delta-seconds, 32 bits */
	S_DELTA_PARAMS,    /* delta-seconds *(;param) */
	S_RETRY_AFTER,     /* delta-seconds [comment] *(;param) */
	S_DATE,
	S_TIMESTAMP,
};

static const struct {
	enum sip_hdr_id id;
	enum shape shape;
	const char *why;
} rules[] = {
	{ SIP_H_VIA, S_VIA, "bad Via" },                    /* §20.42 */
	{ SIP_H_CONTACT, S_CONTACT, "bad Contact" },        /* §20.10 */
	{ SIP_H_ROUTE, S_ROUTE, "bad Route" },              /* §20.34 */
	{ SIP_H_RECORD_ROUTE, S_ROUTE, "bad Record-Route" }, /* §20.30 */
	{ SIP_H_PATH, S_ROUTE, "bad Path" },                /* RFC 3327 §4 */
	{ SIP_H_P_ASSERTED_IDENTITY, S_NAMEADDR, "bad P-Asserted-Identity" }, /* RFC 3325 §9.1 */
	{ SIP_H_P_PREFERRED_IDENTITY, S_NAMEADDR, "bad P-Preferred-Identity" }, /* RFC 3325 §9.2 */
	{ SIP_H_REFER_TO, S_NAMEADDR, "bad Refer-To" },     /* RFC 3515 §2.1 */
	{ SIP_H_REFERRED_BY, S_NAMEADDR, "bad Referred-By" }, /* RFC 3892 §3 */
	{ SIP_H_REQUIRE, S_TOKEN_LIST, "bad Require" },     /* §20.32 */
	{ SIP_H_PROXY_REQUIRE, S_TOKEN_LIST, "bad Proxy-Require" }, /* §20.29 */
	{ SIP_H_UNSUPPORTED, S_TOKEN_LIST, "bad Unsupported" }, /* §20.40 */
	{ SIP_H_SUPPORTED, S_TOKEN_LIST0, "bad Supported" }, /* §20.37 */
	{ SIP_H_ALLOW, S_TOKEN_LIST0, "bad Allow" },        /* §20.5 */
	{ SIP_H_CONTENT_ENCODING, S_TOKEN_LIST, "bad Content-Encoding" }, /* §20.12 */
	{ SIP_H_ALLOW_EVENTS, S_TOKEN_LIST, "bad Allow-Events" }, /* RFC 6665 §8.2.2 */
	{ SIP_H_EVENT, S_TOKEN_PARAMS, "bad Event" },       /* RFC 6665 §8.2.1 */
	{ SIP_H_CONTENT_TYPE, S_MEDIA, "bad Content-Type" }, /* §20.15 */
	{ SIP_H_ACCEPT, S_MEDIA_LIST0, "bad Accept" },      /* §20.1 */
	{ SIP_H_EXPIRES, S_DELTA, "bad Expires" },          /* §20.19 */
	{ SIP_H_MIN_EXPIRES, S_DELTA, "bad Min-Expires" },  /* §20.23 */
	{ SIP_H_SESSION_EXPIRES, S_DELTA_PARAMS, "bad Session-Expires" }, /* RFC 4028 §4 */
	{ SIP_H_RETRY_AFTER, S_RETRY_AFTER, "bad Retry-After" }, /* §20.33 */
	{ SIP_H_DATE, S_DATE, "bad Date" },                 /* §20.17 */
	{ SIP_H_TIMESTAMP, S_TIMESTAMP, "bad Timestamp" },  /* §20.38 */
};

static bool list_shape(enum shape sh)
{
	switch (sh) {
	case S_VIA: case S_CONTACT: case S_ROUTE: case S_NAMEADDR:
	case S_TOKEN_LIST: case S_TOKEN_LIST0: case S_MEDIA_LIST0:
		return true;
	default:
		return false;
	}
}

static bool delta_params_ok(struct sw_str v, bool comment)
{
	struct sw_str head, params;
	split_params(v, &head, &params);
	size_t i = 0;
	while (i < head.len && head.p[i] >= '0' && head.p[i] <= '9')
		i++;
	uint64_t n;
	if (!i || sw_str_to_u64(sw_str_mk(head.p, i), UINT32_MAX, &n) < 0)
		return false;
	struct sw_str tail = sw_str_trim(sw_str_mk(head.p + i, head.len - i));
	if (tail.len) {
		/* comment = "(" ... ")" (§25.1); nesting is not checked */
		if (!comment || tail.p[0] != '(' || tail.p[tail.len - 1] != ')')
			return false;
	}
	return !params.len || params_ok(params);
}

static bool elem_ok(enum shape sh, struct sw_str e, unsigned *nstar)
{
	struct sip_nameaddr na;
	struct sip_via via;
	uint64_t n;

	switch (sh) {
	case S_VIA:
		return e.len && sip_via_parse(e, &via) == 0;
	case S_CONTACT:
		if (!e.len || sip_contact_parse(e, &na) < 0)
			return false;
		if (na.star)
			(*nstar)++;
		return true;
	case S_ROUTE:
		return e.len && sip_nameaddr_parse(e, &na) == 0 && na.bracketed;
	case S_NAMEADDR:
		return e.len && sip_nameaddr_parse(e, &na) == 0;
	case S_TOKEN_LIST:
	case S_TOKEN_LIST0:
		return token_with_params(e, false);
	case S_TOKEN_PARAMS:
		return token_with_params(e, true);
	case S_MEDIA:
		return media_ok(e);
	case S_MEDIA_LIST0:
		return media_ok(e);
	case S_DELTA:
		return sw_str_to_u64(e, UINT32_MAX, &n) == 0;
	case S_DELTA_PARAMS:
		return delta_params_ok(e, false);
	case S_RETRY_AFTER:
		return delta_params_ok(e, true);
	case S_DATE:
		return date_ok(e);
	case S_TIMESTAMP:
		return timestamp_ok(e);
	}
	return false;
}

int sip_validate_all(const struct sip_msg *m, struct sip_perr *err)
{
	int st = m->is_request ? 400 : 0;

	memset(err, 0, sizeof(*err));
	for (size_t k = 0; k < sizeof(rules) / sizeof(rules[0]); k++) {
		enum sip_hdr_id id = rules[k].id;
		enum shape sh = rules[k].shape;
		unsigned nstar = 0, nelem = 0;

		for (const struct sip_hdr *h = sip_hdr_get(m, id); h; h = sip_hdr_next(m, h)) {
			err->off = (size_t)(h->name.p - m->buf);
			if (!list_shape(sh)) {
				if (!elem_ok(sh, h->value, &nstar))
					goto bad;
				continue;
			}
			struct sw_str rest = h->value, e;
			int r;
			unsigned here = 0;
			if (!rest.len && (sh == S_TOKEN_LIST0 || sh == S_MEDIA_LIST0))
				continue;   /* "Supported:" with no option-tag (§20.37) */
			while ((r = sip_list_next(&rest, &e)) > 0) {
				/* empty elements are separator errors (RFC 4475 §3.1.2.1) */
				if (!e.len)
					goto bad;
				/* the top via-parm was parsed by sip_parse (m->via1) */
				bool top_via = sh == S_VIA && nelem == 0 && here == 0 &&
					       m->via1.raw.p == e.p && m->via1.raw.len == e.len;
				if (!top_via && !elem_ok(sh, e, &nstar))
					goto bad;
				here++;
			}
			if (r < 0)
				goto bad;
			if (!here && sh != S_TOKEN_LIST0 && sh != S_MEDIA_LIST0)
				goto bad;
			nelem += here;
		}
		/* Contact: "*" stands alone (§10.2.2) */
		if (sh == S_CONTACT && nstar && nelem > 1) {
			err->off = (size_t)(sip_hdr_get(m, id)->name.p - m->buf);
			goto bad;
		}
		continue;
bad:
		err->status = st;
		err->why = rules[k].why;
		return -EBADMSG;
	}
	err->off = 0;
	return 0;
}
