/* The SIP message parser (STYLE.md §1, §2): one pass over (buf, len),
 * slices into the input, no allocation, no recursion, every size bounded
 * by struct sip_limits.
 *
 * Status codes chosen for refused requests (responses are always dropped,
 * status 0, RFC 3261 §18.1.2 gives no way to answer a response):
 *  400  any syntax error, missing or repeated single-valued header,
 *       Content-Length larger than the datagram (RFC 3261 §18.3),
 *       CSeq method differing from a known request method (§8.2, RFC 4475
 *       §3.1.2.17);
 *  501  unknown method whose CSeq method differs (RFC 4475 §3.1.2.18);
 *  505  well-formed SIP-Version other than SIP/2.0 (§21.5.6);
 *  413  the body (Content-Length) takes the message over max_msg
 *       (§21.4.13, Request Entity Too Large);
 *  513  the message or its header section exceeds max_msg, max_line,
 *       max_headers, max_via or max_contacts (§21.5.9, Message Too Large). */
#include <errno.h>
#include <string.h>

#include "base/str.h"
#include "sip/fields.h"
#include "sip/lex.h"
#include "sip/parse.h"

#define HDR_IDX_MAX 32767   /* first[] is int16_t */

void sip_limits_default(struct sip_limits *lim)
{
	lim->max_msg = 65535;
	lim->max_headers = 100;
	lim->max_line = 8192;
	lim->max_via = 70;
	lim->max_contacts = 16;
}

static bool is_sp(char c)
{
	return c == ' ' || c == '\t';
}

/* Record the first error only; later checks do not overwrite it, so the
 * answer names the earliest problem (505 before a header error). */
static int fail(struct sip_perr *err, size_t off, int status, const char *why, int rc)
{
	if (!err->why) {
		err->off = off;
		err->status = status;
		err->why = why;
	}
	return rc;
}

/* Header-section scanner shared by sip_parse and sip_frame.
 * A line ends at LF, with an optional CR before it (bare LF accepted for
 * robustness; RFC 5118's archive uses it). A line that starts with SP/HT
 * continues the previous field (RFC 3261 §7.3.1 folding). */
struct hscan {
	const char *buf;
	size_t len;
	size_t pos;
	bool eof_ends;          /* DGRAM: end of buffer ends the header section */
	size_t max_line;
};

/* End of the line starting at pos: *eol is where CR/LF begin, *next the
 * start of the next line. 1 = line found, 0 = runs to end of buffer
 * (*eol = *next = len), -EBADMSG on a bare CR. */
static int line_end(const struct hscan *s, size_t pos, size_t *eol, size_t *next)
{
	const char *p = s->buf + pos;
	size_t n = s->len - pos;
	const char *lf = memchr(p, '\n', n);
	size_t l = lf ? (size_t)(lf - p) : n;
	const char *cr = memchr(p, '\r', l);
	if (cr) {
		/* only allowed as the last octet before LF; at the end of the
		 * buffer its LF may still be on the way (stream) */
		if (lf ? cr != lf - 1 : cr != p + n - 1) {
			*eol = *next = pos + (size_t)(cr - p);
			return -EBADMSG;
		}
		l--;
	}
	*eol = pos + l;
	*next = lf ? (size_t)(lf - s->buf) + 1 : s->len;
	return lf ? 1 : 0;
}

/* Next header field. 1 = *h filled, *fstart = offset of the field;
 * 0 = end of header section, s->pos past the empty line (or at len);
 * -EAGAIN (stream needs more), -EBADMSG, -EMSGSIZE with err set. */
static int hscan_next(struct hscan *s, struct sip_hdr *h, size_t *fstart,
		      struct sip_perr *err)
{
	size_t start = s->pos, eol, next;
	const char *b = s->buf;

	*fstart = start;
	if (start >= s->len) {
		if (s->eof_ends)
			return 0;
		return -EAGAIN;
	}
	if (b[start] == '\n') {
		s->pos = start + 1;
		return 0;
	}
	if (b[start] == '\r') {
		if (start + 1 >= s->len)
			return s->eof_ends ? fail(err, start, 400, "bare CR", -EBADMSG) : -EAGAIN;
		if (b[start + 1] != '\n')
			return fail(err, start, 400, "bare CR", -EBADMSG);
		s->pos = start + 2;
		return 0;
	}
	if (is_sp(b[start]))
		return fail(err, start, 400, "continuation line without a header", -EBADMSG);

	/* field-name: token, then LWS, then ':' (RFC 3261 §7.3.1 HCOLON) */
	size_t i = start;
	while (i < s->len && is_token((unsigned char)b[i]) && i - start <= s->max_line)
		i++;
	size_t name_end = i;
	if (name_end == start)
		return fail(err, start, 400, "bad header name", -EBADMSG);
	while (i < s->len && is_sp(b[i]))
		i++;
	if (i - start > s->max_line)
		return fail(err, start, 513, "header line too long", -EMSGSIZE);
	if (i >= s->len)
		return s->eof_ends ? fail(err, start, 400, "header without ':'", -EBADMSG) : -EAGAIN;
	if (b[i] != ':')
		return fail(err, start, 400, "header without ':'", -EBADMSG);
	size_t vstart = i + 1;

	/* value, with folded continuation lines */
	size_t pos = vstart, vend;
	for (;;) {
		int r = line_end(s, pos, &eol, &next);
		if (r < 0)
			return fail(err, eol, 400, "bare CR", -EBADMSG);
		if (eol - start > s->max_line)
			return fail(err, start, 513, "header line too long", -EMSGSIZE);
		vend = eol;
		if (r == 0) {
			if (!s->eof_ends)
				return -EAGAIN;
			break;
		}
		if (next >= s->len) {
			/* need the next line's first octet to rule out folding */
			if (!s->eof_ends)
				return -EAGAIN;
			break;
		}
		if (!is_sp(b[next]))
			break;
		pos = next;
	}

	struct sw_str v = sw_str_trim(sw_str_mk(b + vstart, vend - vstart));
	h->name = sw_str_mk(b + start, name_end - start);
	h->value = v.len ? v : sw_str_mk(b + vend, 0);
	h->id = sip_hdr_lookup(h->name.p, h->name.len);
	s->pos = next;
	return 1;
}

static bool starts_sip_slash(const char *b, size_t len)
{
	return len >= 4 && sw_str_ieq_c(sw_str_mk(b, 4), "SIP/");
}

/* Content-Length value for framing: digits only, at most 2^32-1 (a larger
 * or non-numeric value, or a negative one, is a framing error: RFC 4475
 * §3.1.2.3 ncl). */
static int cl_value(struct sw_str v, uint64_t *out)
{
	return sw_str_to_u64(v, UINT32_MAX, out) == 0 ? 0 : -EBADMSG;
}

ssize_t sip_frame(const char *buf, size_t len, const struct sip_limits *lim,
		  struct sip_perr *err)
{
	struct sip_perr dummy;
	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	bool resp = starts_sip_slash(buf, len);
	int st400 = resp ? 0 : 400, st413 = resp ? 0 : 413, st513 = resp ? 0 : 513;

	struct hscan s = { .buf = buf, .len = len < lim->max_msg ? len : lim->max_msg,
			   .eof_ends = false, .max_line = lim->max_line };
	size_t eol, next;
	int r = line_end(&s, 0, &eol, &next);
	if (r < 0)
		return fail(err, eol, st400, "bare CR", -EBADMSG);
	if (r == 0) {
		if (len >= lim->max_msg || len > lim->max_line)
			return fail(err, 0, st513, "start line too long", -EMSGSIZE);
		return -EAGAIN;
	}
	if (eol == 0)
		return fail(err, 0, st400, "empty start line", -EBADMSG);
	if (eol > lim->max_line)
		return fail(err, 0, st513, "start line too long", -EMSGSIZE);
	s.pos = next;

	bool have_cl = false;
	uint64_t cl = 0;
	unsigned n = 0;
	for (;;) {
		struct sip_hdr h;
		size_t fstart;
		r = hscan_next(&s, &h, &fstart, err);
		if (r == -EAGAIN) {
			if (len >= lim->max_msg)
				return fail(err, 0, st513, "header section too large", -EMSGSIZE);
			return -EAGAIN;
		}
		if (r < 0) {
			err->status = r == -EMSGSIZE ? st513 : st400;
			return r;
		}
		if (r == 0)
			break;
		if (++n > lim->max_headers)
			return fail(err, fstart, st513, "too many headers", -EMSGSIZE);
		if (h.id != SIP_H_CONTENT_LENGTH)
			continue;
		uint64_t v;
		if (cl_value(h.value, &v) < 0)
			return fail(err, fstart, st400, "bad Content-Length", -EBADMSG);
		/* RFC 4475 §3.3.9 mcl01: conflicting values are a framing error */
		if (have_cl && v != cl)
			return fail(err, fstart, st400, "conflicting Content-Length", -EBADMSG);
		have_cl = true;
		cl = v;
	}
	/* RFC 3261 §18.3: on a stream an absent Content-Length means 0 */
	if (cl > lim->max_msg || s.pos + cl > lim->max_msg)
		return fail(err, s.pos, st413, "body too large", -EMSGSIZE);
	if (s.pos + cl > len)
		return -EAGAIN;
	return (ssize_t)(s.pos + cl);
}

/* SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (RFC 3261 §7.1, §25.1; case-
 * insensitive as an ABNF literal). 0 = SIP/2.0, 1 = another version,
 * -1 = not a version at all. */
static int check_version(struct sw_str v)
{
	if (!starts_sip_slash(v.p, v.len))
		return -1;
	size_t i = 4, d1 = 0, d2 = 0;
	while (i < v.len && v.p[i] >= '0' && v.p[i] <= '9') {
		i++;
		d1++;
	}
	if (!d1 || i >= v.len || v.p[i] != '.')
		return -1;
	i++;
	while (i < v.len && v.p[i] >= '0' && v.p[i] <= '9') {
		i++;
		d2++;
	}
	if (!d2 || i != v.len)
		return -1;
	return (v.len == 7 && v.p[4] == '2' && v.p[6] == '0') ? 0 : 1;
}

/* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2). */
static int parse_status_line(struct sw_str l, struct sip_msg *m, struct sip_perr *err)
{
	const char *sp = memchr(l.p, ' ', l.len);
	if (!sp)
		return fail(err, 0, 0, "bad status line", -EBADMSG);
	m->version = sw_str_mk(l.p, (size_t)(sp - l.p));
	int v = check_version(m->version);
	if (v != 0)
		return fail(err, 0, 0, v > 0 ? "unsupported SIP version" : "bad SIP version",
			    -EBADMSG);
	size_t i = (size_t)(sp - l.p) + 1, c0 = i;
	unsigned code = 0;
	while (i < l.len && i - c0 < 3 && l.p[i] >= '0' && l.p[i] <= '9')
		code = code * 10 + (unsigned)(l.p[i++] - '0');
	/* exactly three digits, 100..699 (§7.2, §21); RFC 4475 §3.1.2.19 bigcode */
	if (i - c0 != 3 || code < 100 || code > 699 || (i < l.len && l.p[i] != ' '))
		return fail(err, c0, 0, "bad status code", -EBADMSG);
	m->status = code;
	/* The SP before an empty reason is required by the grammar; RFC 4475
	 * §3.1.1.13 noreason has it. Its absence is tolerated. */
	m->reason = i < l.len ? sw_str_mk(l.p + i + 1, l.len - i - 1) : sw_str_mk(l.p + i, 0);
	return 0;
}

/* Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly one
 * SP between elements, none elsewhere (RFC 4475 §3.1.2.8-10: lwsruri,
 * lwsstart, trws are refused). */
static int parse_request_line(struct sw_str l, struct sip_msg *m, struct sip_perr *err)
{
	size_t i = 0;
	while (i < l.len && is_token((unsigned char)l.p[i]))
		i++;
	if (i == 0 || i >= l.len || l.p[i] != ' ')
		return fail(err, i, 400, "bad method", -EBADMSG);
	m->method_name = sw_str_mk(l.p, i);
	m->method = sip_method_lookup(m->method_name);
	size_t u0 = ++i;
	while (i < l.len && l.p[i] != ' ' && l.p[i] != '\t')
		i++;
	if (i == u0 || i >= l.len || l.p[i] != ' ')
		return fail(err, u0, 400, "bad Request-URI", -EBADMSG);
	struct sw_str uri = sw_str_mk(l.p + u0, i - u0);
	m->version = sw_str_mk(l.p + i + 1, l.len - i - 1);
	if (memchr(m->version.p, ' ', m->version.len) || memchr(m->version.p, '\t', m->version.len))
		return fail(err, i + 1, 400, "extra LWS in Request-Line", -EBADMSG);
	int v = check_version(m->version);
	if (v != 0)
		return fail(err, i + 1, v > 0 ? 505 : 400,
			    v > 0 ? "SIP version not supported" : "bad SIP version", -EBADMSG);
	/* RFC 4475 §3.1.2.7 ltgtruri: no <> around the Request-URI */
	if (uri.p[0] == '<' || sip_uri_parse(uri, &m->ruri) < 0)
		return fail(err, u0, 400, "bad Request-URI", -EBADMSG);
	/* RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI
	 * (RFC 4475 §3.1.2.11 escruri) */
	if (m->ruri.headers.p && (m->ruri.scheme == SIP_URI_SIP || m->ruri.scheme == SIP_URI_SIPS))
		return fail(err, u0, 400, "headers in Request-URI", -EBADMSG);
	return 0;
}

/* Call-ID = word ["@" word] (§25.1): non-empty, no LWS. */
static bool callid_ok(struct sw_str v)
{
	if (!v.len)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if (c <= ' ' || c >= 0x7f)
			return false;
	}
	return true;
}

/* Headers that may appear at most once (RFC 3261 §7.3.1: only headers
 * defined as comma lists may repeat; RFC 4475 §3.3.8 multi01). */
static const enum sip_hdr_id single_valued[] = {
	SIP_H_FROM, SIP_H_TO, SIP_H_CALL_ID, SIP_H_CSEQ, SIP_H_MAX_FORWARDS,
	SIP_H_CONTENT_LENGTH, SIP_H_CONTENT_TYPE, SIP_H_EXPIRES,
};

static const struct sip_hdr *first_of(const struct sip_msg *m, enum sip_hdr_id id)
{
	return m->first[id] >= 0 ? &m->hdrs[m->first[id]] : NULL;
}

static size_t hoff(const struct sip_msg *m, const struct sip_hdr *h)
{
	return (size_t)(h->name.p - m->buf);
}

/* Count the elements of every field with `id`, stopping after `max` + 1.
 * Returns the count, or -EBADMSG (empty element or unbalanced quoting). */
static long count_elems(const struct sip_msg *m, enum sip_hdr_id id, unsigned max,
			size_t *off)
{
	long n = 0;
	for (int i = m->first[id]; i >= 0 && (size_t)i < m->nhdrs; i++) {
		const struct sip_hdr *h = &m->hdrs[i];
		if (h->id != id)
			continue;
		struct sw_str rest = h->value, e;
		int r;
		*off = hoff(m, h);
		while ((r = sip_list_next(&rest, &e)) > 0) {
			if (e.len == 0)
				return -EBADMSG;
			if (++n > (long)max)
				return n;
		}
		if (r < 0)
			return -EBADMSG;
		/* an empty field value has no element at all */
		if (h->value.len == 0)
			return -EBADMSG;
	}
	return n;
}

/* Via, From, To, Call-ID, CSeq: what every reply needs (§8.2.6.2). */
static int parse_core(struct sip_msg *m, const struct sip_limits *lim, struct sip_perr *err)
{
	int rc = 0;
	bool ok = true;
	const struct sip_hdr *h;
	size_t off = 0;

	/* Via: top via-parm parsed; all via-parms counted (limit max_via) */
	h = first_of(m, SIP_H_VIA);
	if (!h) {
		rc = fail(err, m->len, 400, "missing Via", -EBADMSG);
		ok = false;
	} else {
		long n = count_elems(m, SIP_H_VIA, lim->max_via, &off);
		struct sw_str rest = h->value, e;
		if (n < 0) {
			rc = fail(err, off, 400, "bad Via", -EBADMSG);
			ok = false;
		} else if (n > (long)lim->max_via) {
			rc = fail(err, off, 513, "too many Via entries", -EMSGSIZE);
			ok = false;
		} else if (sip_list_next(&rest, &e) <= 0 || sip_via_parse(e, &m->via1) < 0) {
			rc = fail(err, hoff(m, h), 400, "bad Via", -EBADMSG);
			ok = false;
		} else {
			m->nvia = (unsigned)n;
		}
	}

	/* From / To (§8.1.1.2, §8.1.1.3) */
	static const struct {
		enum sip_hdr_id id;
		const char *missing, *bad;
	} na[2] = {
		{ SIP_H_FROM, "missing From", "bad From" },
		{ SIP_H_TO, "missing To", "bad To" },
	};
	for (int k = 0; k < 2; k++) {
		struct sip_nameaddr *dst = k == 0 ? &m->from : &m->to;
		h = first_of(m, na[k].id);
		if (!h) {
			rc = fail(err, m->len, 400, na[k].missing, -EBADMSG);
			ok = false;
		} else if (m->count[na[k].id] > 1 || sip_nameaddr_parse(h->value, dst) < 0) {
			rc = fail(err, hoff(m, h), 400, na[k].bad, -EBADMSG);
			ok = false;
		}
	}

	h = first_of(m, SIP_H_CALL_ID);
	if (!h) {
		rc = fail(err, m->len, 400, "missing Call-ID", -EBADMSG);
		ok = false;
	} else if (m->count[SIP_H_CALL_ID] > 1 || !callid_ok(h->value)) {
		rc = fail(err, hoff(m, h), 400, "bad Call-ID", -EBADMSG);
		ok = false;
	} else {
		m->call_id = h->value;
	}

	/* CSeq: number <= 2^32-1 and a method (§20.16; RFC 4475 §3.1.2.4) */
	h = first_of(m, SIP_H_CSEQ);
	if (!h) {
		rc = fail(err, m->len, 400, "missing CSeq", -EBADMSG);
		ok = false;
	} else if (m->count[SIP_H_CSEQ] > 1 || sip_cseq_parse(h->value, &m->cseq) < 0) {
		memset(&m->cseq, 0, sizeof(m->cseq));
		rc = fail(err, hoff(m, h), 400, "bad CSeq", -EBADMSG);
		ok = false;
	}

	m->replyable = ok;
	return rc;
}

static int parse_rest(struct sip_msg *m, const struct sip_limits *lim, struct sip_perr *err)
{
	int rc = 0;
	const struct sip_hdr *h;
	uint64_t v;

	for (size_t k = 0; k < sizeof(single_valued) / sizeof(single_valued[0]); k++) {
		enum sip_hdr_id id = single_valued[k];
		if (m->count[id] > 1)
			rc = fail(err, hoff(m, sip_hdr_next(m, first_of(m, id))), 400,
				  "repeated single-valued header", -EBADMSG);
	}

	/* RFC 3261 §8.2.1 / §8.1.1.8: the CSeq method matches the request
	 * method; an unknown method is answered 501 (RFC 4475 §3.1.2.18). */
	if (m->is_request && m->cseq.method_name.p &&
	    !sw_str_eq(m->cseq.method_name, m->method_name)) {
		h = first_of(m, SIP_H_CSEQ);
		rc = fail(err, hoff(m, h), m->method == SIP_M_UNKNOWN ? 501 : 400,
			  "CSeq method mismatch", -EBADMSG);
	}

	/* Max-Forwards = 1*DIGIT, 0..255 (§20.22) */
	h = first_of(m, SIP_H_MAX_FORWARDS);
	if (h) {
		if (sip_uint_parse(h->value, 255, &v) < 0)
			rc = fail(err, hoff(m, h), 400, "bad Max-Forwards", -EBADMSG);
		else
			m->max_forwards = (int32_t)v;
	}

	/* Expires = delta-seconds, 32 bits (§20.19; RFC 4475 §3.1.2.4) */
	h = first_of(m, SIP_H_EXPIRES);
	if (h) {
		if (sip_uint_parse(h->value, UINT32_MAX, &v) < 0)
			rc = fail(err, hoff(m, h), 400, "bad Expires", -EBADMSG);
		else
			m->expires = (int64_t)v;
	}

	/* Contact count limit (STYLE.md §8); the values themselves are
	 * checked by sip_validate_all. */
	if (m->first[SIP_H_CONTACT] >= 0) {
		size_t off = 0;
		long n = count_elems(m, SIP_H_CONTACT, lim->max_contacts, &off);
		if (n < 0)
			rc = fail(err, off, 400, "bad Contact", -EBADMSG);
		else if (n > (long)lim->max_contacts)
			rc = fail(err, off, 513, "too many Contact values", -EMSGSIZE);
	}
	return rc;
}

ssize_t sip_parse(const char *buf, size_t len, enum sip_parse_mode mode,
		  const struct sip_limits *lim, struct sip_hdr *hdrs, unsigned hdr_cap,
		  struct sip_msg *msg, struct sip_perr *err)
{
	int rc = 0;

	memset(msg, 0, sizeof(*msg));
	memset(err, 0, sizeof(*err));
	msg->buf = buf;
	msg->hdrs = hdrs;
	msg->max_forwards = -1;
	msg->content_length = -1;
	msg->expires = -1;
	for (int i = 0; i < SIP_H__COUNT; i++)
		msg->first[i] = -1;

	if (mode == SIP_PARSE_STREAM) {
		ssize_t n = sip_frame(buf, len, lim, err);
		if (n < 0)
			return n;
		len = (size_t)n;   /* from here on: exactly one message */
	} else if (len > lim->max_msg) {
		int st = starts_sip_slash(buf, len) ? 0 : 513;
		return fail(err, lim->max_msg, st, "message too large", -EMSGSIZE);
	}
	msg->len = len;

	struct hscan s = { .buf = buf, .len = len, .eof_ends = true,
			   .max_line = lim->max_line };
	size_t eol, next;
	int r = line_end(&s, 0, &eol, &next);
	msg->is_request = !starts_sip_slash(buf, len);
	if (r < 0 || eol == 0) {
		rc = fail(err, 0, 400, "bad start line", -EBADMSG);
		goto out;
	}
	struct sw_str l = sw_str_mk(buf, eol);
	if (eol > lim->max_line) {
		/* RFC 3261 §21.4.12: a request line this long carries a
		 * Request-URI too long to handle: 414. The headers are still
		 * read so that the answer can be addressed (it is never
		 * routed: the request line was not parsed). A response this
		 * long is dropped. */
		if (!msg->is_request) {
			rc = fail(err, 0, 0, "start line too long", -EMSGSIZE);
			goto out;
		}
		rc = fail(err, 0, 414, "Request-URI too long", -EMSGSIZE);
	} else if (msg->is_request) {
		rc = parse_request_line(l, msg, err);
	} else {
		rc = parse_status_line(l, msg, err);
	}
	s.pos = next;

	unsigned cap = hdr_cap < lim->max_headers ? hdr_cap : lim->max_headers;
	if (cap > HDR_IDX_MAX)
		cap = HDR_IDX_MAX;
	for (;;) {
		struct sip_hdr h;
		size_t fstart;
		r = hscan_next(&s, &h, &fstart, err);
		if (r < 0) {
			rc = r;
			goto out;
		}
		if (r == 0)
			break;
		if (msg->nhdrs >= cap) {
			rc = fail(err, fstart, 513, "too many headers", -EMSGSIZE);
			goto out;
		}
		if (msg->first[h.id] < 0)
			msg->first[h.id] = (int16_t)msg->nhdrs;
		if (msg->count[h.id] < UINT16_MAX)
			msg->count[h.id]++;
		hdrs[msg->nhdrs++] = h;
	}
	size_t hend = s.pos;

	int r2 = parse_core(msg, lim, err);
	if (!rc)
		rc = r2;
	r2 = parse_rest(msg, lim, err);
	if (!rc)
		rc = r2;

	/* Body (RFC 3261 §18.3): Content-Length bytes; on a datagram the rest
	 * when absent, octets beyond it ignored (RFC 4475 §3.1.1.8 dblreq), and
	 * a length beyond the datagram is an error (§3.1.2.2 clerr). */
	const struct sip_hdr *h = first_of(msg, SIP_H_CONTENT_LENGTH);
	size_t blen = len - hend;
	if (h) {
		uint64_t v;
		if (cl_value(h->value, &v) < 0) {
			r2 = fail(err, hoff(msg, h), 400, "bad Content-Length", -EBADMSG);
		} else {
			msg->content_length = (int64_t)v;
			if (v > blen)
				r2 = fail(err, hoff(msg, h), 400,
					  "Content-Length larger than the message", -EBADMSG);
			else
				blen = (size_t)v;
		}
		if (!rc)
			rc = r2;
	}
	msg->body = sw_str_mk(buf + hend, blen);
	msg->len = hend + blen;

out:
	if (rc < 0) {
		if (!msg->is_request)
			err->status = 0;   /* RFC 3261 §18.1.2: malformed responses are dropped */
		if (!err->why)
			fail(err, 0, msg->is_request ? 400 : 0, "malformed", rc);
		return rc;
	}
	return (ssize_t)msg->len;
}

const struct sip_hdr *sip_hdr_get(const struct sip_msg *m, enum sip_hdr_id id)
{
	if ((int)id < 0 || id >= SIP_H__COUNT || m->first[id] < 0)
		return NULL;
	return &m->hdrs[m->first[id]];
}

const struct sip_hdr *sip_hdr_next(const struct sip_msg *m, const struct sip_hdr *h)
{
	if (!h)
		return NULL;
	for (const struct sip_hdr *n = h + 1; n < m->hdrs + m->nhdrs; n++) {
		if (n->id != h->id)
			continue;
		if (h->id != SIP_H_OTHER || sw_str_ieq(n->name, h->name))
			return n;
	}
	return NULL;
}

const struct sip_hdr *sip_hdr_by_name(const struct sip_msg *m, struct sw_str name)
{
	/* a known name also finds its compact form */
	enum sip_hdr_id id = sip_hdr_lookup(name.p, name.len);
	if (id != SIP_H_OTHER)
		return sip_hdr_get(m, id);
	for (unsigned i = 0; i < m->nhdrs; i++)
		if (m->hdrs[i].id == SIP_H_OTHER && sw_str_ieq(m->hdrs[i].name, name))
			return &m->hdrs[i];
	return NULL;
}
