/* Response builder: status line, copied Via/From/To/Call-ID/CSeq, framing.
 * Everything is written into a caller buffer of fixed capacity; an append
 * that does not fit sets `overflow` and writes nothing (STYLE.md §8). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/siphash.h"
#include "base/net.h"
#include "base/str.h"
#include "sip/build.h"
#include "sip/parse.h"

void sip_out_init(struct sip_out *o, char *buf, size_t cap)
{
	o->buf = buf;
	o->cap = cap;
	o->len = 0;
	o->overflow = false;
}

void sip_out_u64(struct sip_out *o, unsigned long long v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sip_out_put(o, tmp + i, sizeof(tmp) - i);
}

void sip_out_printf(struct sip_out *o, const char *fmt, ...)
{
	if (o->overflow)
		return;
	size_t room = o->cap - o->len;
	va_list ap;
	va_start(ap, fmt);
	/* vsnprintf may write its NUL at buf[cap - 1] at most: inside the
	 * buffer, and beyond `len`, so it never clobbers what was built. */
	int n = vsnprintf(o->buf + o->len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		o->overflow = true;
		return;
	}
	o->len += (size_t)n;
}

/* Header values may keep folded line breaks (sip-t.h); a folded line is
 * linear whitespace (RFC 3261 §7.3.1), so unfolding into spaces keeps the
 * meaning and makes header injection through a copied value impossible. */
/* Whether any of the 8 bytes of w is CR, LF or NUL (bit tricks: a byte
 * is zero in x exactly when the classic haszero test flags it). */
static inline bool word_has_break(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t cr = w ^ (ones * '\r'), lf = w ^ (ones * '\n');
	uint64_t z = ((w - ones) & ~w) | ((cr - ones) & ~cr) | ((lf - ones) & ~lf);
	return (z & highs) != 0;
}

static void put_unfolded(struct sip_out *o, struct sw_str s)
{
	/* Fast path (issue 6): almost no value is folded; find that out eight
	 * octets at a time and copy it in one go. */
	size_t k = 0;
	for (; k + 8 <= s.len; k += 8) {
		uint64_t w;
		memcpy(&w, s.p + k, 8);
		if (word_has_break(w))
			break;
	}
	while (k < s.len && s.p[k] != '\r' && s.p[k] != '\n' && s.p[k] != '\0')
		k++;
	if (k == s.len) {
		sip_out_put(o, s.p, s.len);
		return;
	}
	size_t i = 0;
	while (i < s.len && !o->overflow) {
		size_t j = i;
		while (j < s.len && s.p[j] != '\r' && s.p[j] != '\n' && s.p[j] != '\0')
			j++;
		sip_out_put(o, s.p + i, j - i);
		if (j < s.len)
			sip_out_put(o, " ", 1);
		i = j + 1;
	}
}

const char *sip_reason_phrase(unsigned status)
{
	switch (status) {
	/* RFC 3261 §21 */
	case 100: return "Trying";
	case 180: return "Ringing";
	case 181: return "Call Is Being Forwarded";
	case 182: return "Queued";
	case 183: return "Session Progress";
	case 199: return "Early Dialog Terminated";          /* RFC 6228 */
	case 200: return "OK";
	case 202: return "Accepted";                         /* RFC 3265 */
	case 204: return "No Notification";                  /* RFC 5839 */
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Moved Temporarily";
	case 305: return "Use Proxy";
	case 380: return "Alternative Service";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 412: return "Conditional Request Failed";       /* RFC 3903 */
	case 413: return "Request Entity Too Large";
	case 414: return "Request-URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Unsupported URI Scheme";
	case 417: return "Unknown Resource-Priority";        /* RFC 4412 */
	case 420: return "Bad Extension";
	case 421: return "Extension Required";
	case 422: return "Session Interval Too Small";       /* RFC 4028 */
	case 423: return "Interval Too Brief";
	case 428: return "Use Identity Header";              /* RFC 8224 */
	case 429: return "Provide Referrer Identity";        /* RFC 3892 */
	case 430: return "Flow Failed";                      /* RFC 5626 */
	case 433: return "Anonymity Disallowed";             /* RFC 5079 */
	case 436: return "Bad Identity Info";                /* RFC 8224 */
	case 437: return "Unsupported Credential";           /* RFC 8224 */
	case 438: return "Invalid Identity Header";          /* RFC 8224 */
	case 439: return "First Hop Lacks Outbound Support"; /* RFC 5626 */
	case 440: return "Max-Breadth Exceeded";             /* RFC 5393 */
	case 469: return "Bad Info Package";                 /* RFC 6086 */
	case 470: return "Consent Needed";                   /* RFC 5360 */
	case 480: return "Temporarily Unavailable";
	case 481: return "Call/Transaction Does Not Exist";
	case 482: return "Loop Detected";
	case 483: return "Too Many Hops";
	case 484: return "Address Incomplete";
	case 485: return "Ambiguous";
	case 486: return "Busy Here";
	case 487: return "Request Terminated";
	case 488: return "Not Acceptable Here";
	case 489: return "Bad Event";                        /* RFC 6665 */
	case 491: return "Request Pending";
	case 493: return "Undecipherable";
	case 494: return "Security Agreement Required";      /* RFC 3329 */
	case 500: return "Server Internal Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Server Time-out";
	case 505: return "Version Not Supported";
	case 513: return "Message Too Large";
	case 555: return "Push Notification Service Not Supported"; /* RFC 8599 */
	case 580: return "Precondition Failure";             /* RFC 3312 */
	case 600: return "Busy Everywhere";
	case 603: return "Decline";
	case 604: return "Does Not Exist Anywhere";
	case 606: return "Not Acceptable";
	case 607: return "Unwanted";                         /* RFC 8197 */
	case 608: return "Rejected";                         /* RFC 8688 */
	default: break;
	}
	/* RFC 3261 §21: an unknown code is treated as x00 of its class. */
	switch (status / 100) {
	case 1: return "Trying";
	case 2: return "OK";
	case 3: return "Multiple Choices";
	case 4: return "Bad Request";
	case 5: return "Server Internal Error";
	case 6: return "Busy Everywhere";
	default: return "Unknown";
	}
}

/* Source address as text for ;received=. An IPv4-mapped IPv6 source (a
 * dual-stack socket) is shown as the IPv4 address the peer really has.
 * IPv6 without brackets: RFC 3261 §25.1 via-received = IPv4address / IPv6address. */
static size_t src_host(const struct sockaddr *src, char *buf, size_t cap)
{
	if (src->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)src;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && cap >= 16)
			return sw_ipv4_fmt(in6->sin6_addr.s6_addr + 12, buf);
		return inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)cap) ? strlen(buf) : 0;
	}
	if (src->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)src;
		return cap >= 16 ? sw_ipv4_fmt((const uint8_t *)&in->sin_addr, buf) : 0;
	}
	return 0;
}

static uint16_t src_port(const struct sockaddr *src)
{
	if (src->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)src)->sin6_port);
	return ntohs(((const struct sockaddr_in *)(const void *)src)->sin_port);
}

/* Numeric host text (brackets allowed around IPv6) to binary. Returns the
 * family, or 0 when the text is not a numeric address (a domain name). */
static int host_pton(struct sw_str h, uint8_t out[16])
{
	char tmp[64];
	if (h.len >= 2 && h.p[0] == '[' && h.p[h.len - 1] == ']') {
		h.p++;
		h.len -= 2;
	}
	if (sw_str_copy(h, tmp, sizeof(tmp)) < 0)
		return 0;
	if (inet_pton(AF_INET, tmp, out) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, tmp, out) == 1)
		return AF_INET6;
	return 0;
}

/* RFC 3261 §18.2.1: received= is needed when sent-by's host is not the
 * address the request came from (a name always differs). */
static bool host_is_src(struct sw_str host, const struct sockaddr *src)
{
	uint8_t a[16];
	int fam = host_pton(host, a);
	if (src->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)src;
		return fam == AF_INET && memcmp(a, &in->sin_addr, 4) == 0;
	}
	if (src->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)src;
		if (fam == AF_INET6)
			return memcmp(a, in6->sin6_addr.s6_addr, 16) == 0;
		if (fam == AF_INET && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return memcmp(a, in6->sin6_addr.s6_addr + 12, 4) == 0;
	}
	return false;
}

/* Next ';'-separated parameter of a via-parm, respecting quoted strings
 * (gen-value = token / host / quoted-string). *rest starts at or before
 * a ';'. Returns false at the end. `whole` is the param text without the
 * ';', `name` its name, `has_value` whether '=' follows the name. */
static bool via_param_next(struct sw_str *rest, struct sw_str *whole, struct sw_str *name,
			   bool *has_value)
{
	const char *p = rest->p, *end = rest->p + rest->len;
	while (p < end && *p != ';')
		p++;
	if (p >= end)
		return false;
	p++;
	const char *s = p;
	bool q = false;
	while (p < end && (q || *p != ';')) {
		if (q && *p == '\\' && p + 1 < end)
			p++;
		else if (*p == '"')
			q = !q;
		p++;
	}
	*whole = sw_str_trim(sw_str_mk(s, (size_t)(p - s)));
	const char *eq = memchr(whole->p, '=', whole->len);
	*name = sw_str_trim(sw_str_mk(whole->p, eq ? (size_t)(eq - whole->p) : whole->len));
	*has_value = eq != NULL;
	rest->p = p;
	rest->len = (size_t)(end - p);
	return true;
}

/* The top Via field: its first via-parm (req->via1.raw) gets received= and
 * rport=PORT (RFC 3261 §18.2.1, RFC 3581 §4); a value-less ";rport" is
 * filled in place and a stale ";received" is replaced, so no parameter is
 * ever duplicated. Further via-parms of the same field are copied as is. */
static void put_top_via(struct sip_out *o, const struct sip_msg *req, struct sw_str field,
			const struct sockaddr *src)
{
	const struct sip_via *v = &req->via1;
	const char *fend = field.p + field.len;
	if (!src || !v->raw.p || v->raw.p < field.p || v->raw.p + v->raw.len > fend) {
		put_unfolded(o, field);
		return;
	}
	bool want_rport = v->rport;
	bool want_recv = want_rport || !host_is_src(v->host, src);
	if (!want_rport && !want_recv) {
		put_unfolded(o, field);
		return;
	}
	char host[INET6_ADDRSTRLEN];
	size_t hlen = src_host(src, host, sizeof(host));
	uint16_t port = src_port(src);
	const char *raw_end = v->raw.p + v->raw.len;
	const char *pstart = raw_end;
	if (v->params.p && v->params.p >= v->raw.p && v->params.p <= raw_end)
		pstart = v->params.p;
	/* everything before the first ';' of the top via-parm */
	put_unfolded(o, sw_str_mk(field.p, (size_t)(pstart - field.p)));

	struct sw_str rest = sw_str_mk(pstart, (size_t)(raw_end - pstart));
	struct sw_str whole, name;
	bool has_value, did_rport = false, did_recv = false;
	while (via_param_next(&rest, &whole, &name, &has_value)) {
		if (want_recv && sw_str_ieq_c(name, "received")) {
			if (did_recv)
				continue;
			sip_out_cstr(o, ";received=");
			sip_out_put(o, host, hlen);
			did_recv = true;
		} else if (want_rport && sw_str_ieq_c(name, "rport")) {
			if (did_rport)
				continue;
			/* RFC 3581 §4: received MUST come with rport, even when equal */
			if (!did_recv && want_recv) {
				sip_out_cstr(o, ";received=");
				sip_out_put(o, host, hlen);
				did_recv = true;
			}
			sip_out_cstr(o, ";rport=");
			sip_out_u64(o, port);
			did_rport = true;
		} else {
			sip_out_put(o, ";", 1);
			put_unfolded(o, whole);
		}
	}
	if (want_recv && !did_recv) {
		sip_out_cstr(o, ";received=");
		sip_out_put(o, host, hlen);
	}
	if (want_rport && !did_rport) {
		sip_out_cstr(o, ";rport=");
		sip_out_u64(o, port);
	}
	/* the remaining via-parms of this field (", SIP/2.0/UDP ...") */
	put_unfolded(o, sw_str_mk(raw_end, (size_t)(fend - raw_end)));
}

static const struct sip_hdr *first_hdr(const struct sip_msg *m, enum sip_hdr_id id)
{
	int i = m->first[id];
	if (i < 0 || (unsigned)i >= m->nhdrs || !m->hdrs)
		return NULL;
	return &m->hdrs[i];
}

static void put_hdr(struct sip_out *o, const char *name, struct sw_str value)
{
	sip_out_cstr(o, name);
	put_unfolded(o, value);
	sip_out_put(o, "\r\n", 2);
}

void sip_resp_status(struct sip_out *o, unsigned status, const char *reason)
{
	sip_out_cstr(o, "SIP/2.0 ");
	sip_out_u64(o, status);
	sip_out_put(o, " ", 1);
	/* A caller's phrase may come from parser diagnostics: never let it
	 * end the status line early (RFC 3261 §25.1 Reason-Phrase). */
	put_unfolded(o, sw_str_c(reason ? reason : sip_reason_phrase(status)));
	sip_out_put(o, "\r\n", 2);
}

/* The request has every field a reply copies (RFC 3261 §8.2.6.2). */
static bool copyable(const struct sip_msg *req)
{
	return req->replyable && first_hdr(req, SIP_H_FROM) && first_hdr(req, SIP_H_TO) &&
	       first_hdr(req, SIP_H_CALL_ID) && first_hdr(req, SIP_H_CSEQ) && first_hdr(req, SIP_H_VIA);
}

int sip_resp_copied(struct sip_out *o, const struct sip_msg *req, const struct sockaddr *src,
		    unsigned status, struct sw_str to_tag)
{
	if (!copyable(req))
		return -EINVAL;
	const struct sip_hdr *from = first_hdr(req, SIP_H_FROM);
	const struct sip_hdr *to = first_hdr(req, SIP_H_TO);
	const struct sip_hdr *cid = first_hdr(req, SIP_H_CALL_ID);
	const struct sip_hdr *cseq = first_hdr(req, SIP_H_CSEQ);
	const struct sip_hdr *via = first_hdr(req, SIP_H_VIA);

	/* RFC 3261 §8.2.6.2: Via fields in the same order, the top one
	 * amended per §18.2.1 / RFC 3581 */
	for (unsigned i = (unsigned)req->first[SIP_H_VIA]; i < req->nhdrs; i++) {
		const struct sip_hdr *h = &req->hdrs[i];
		if (h->id != SIP_H_VIA)
			continue;
		sip_out_cstr(o, "Via: ");
		if (h == via)
			put_top_via(o, req, h->value, src);
		else
			put_unfolded(o, h->value);
		sip_out_put(o, "\r\n", 2);
	}
	put_hdr(o, "From: ", from->value);
	/* RFC 3261 §8.2.6.2: add a To tag unless one is there; never on 100 */
	sip_out_cstr(o, "To: ");
	put_unfolded(o, to->value);
	if (!req->to.tag.p && status > 100 && to_tag.len) {
		sip_out_cstr(o, ";tag=");
		sip_out_str(o, to_tag);
	}
	sip_out_put(o, "\r\n", 2);
	put_hdr(o, "Call-ID: ", cid->value);
	put_hdr(o, "CSeq: ", cseq->value);
	return o->overflow ? -ENOSPC : 0;
}

int sip_resp_begin(struct sip_out *o, const struct sip_msg *req, const struct sockaddr *src,
		   unsigned status, const char *reason, struct sw_str to_tag)
{
	if (status < 100 || status > 699 || !copyable(req))
		return -EINVAL;
	sip_resp_status(o, status, reason);
	return sip_resp_copied(o, req, src, status, to_tag);
}

int sip_resp_verbatim(struct sip_out *o, const struct sip_msg *req, unsigned status,
		      const char *reason)
{
	if (status < 100 || status > 699 || !req->is_request || req->first[SIP_H_VIA] < 0)
		return -EINVAL;
	sip_out_cstr(o, "SIP/2.0 ");
	sip_out_u64(o, status);
	sip_out_put(o, " ", 1);
	put_unfolded(o, sw_str_c(reason ? reason : sip_reason_phrase(status)));
	sip_out_put(o, "\r\n", 2);
	/* RFC 3261 §8.2.6.2 copies: whatever of Via/From/To/Call-ID/CSeq is
	 * there, as written (it did not parse, so nothing is amended). */
	static const enum sip_hdr_id ids[] = { SIP_H_VIA, SIP_H_FROM, SIP_H_TO, SIP_H_CALL_ID,
					       SIP_H_CSEQ };
	for (unsigned k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
		for (unsigned i = 0; i < req->nhdrs; i++) {
			const struct sip_hdr *h = &req->hdrs[i];
			if (h->id != ids[k])
				continue;
			sip_out_cstr(o, sip_hdr_canonical(h->id));
			sip_out_cstr(o, ": ");
			put_unfolded(o, h->value);
			sip_out_put(o, "\r\n", 2);
		}
	}
	return o->overflow ? -ENOSPC : 0;
}

int sip_resp_end(struct sip_out *o, struct sw_str content_type, struct sw_str body)
{
	if (body.len && content_type.len)
		put_hdr(o, "Content-Type: ", content_type);
	/* RFC 3261 §18.3: always framed, also over UDP */
	sip_out_cstr(o, "Content-Length: ");
	sip_out_u64(o, body.len);
	sip_out_cstr(o, "\r\n\r\n");
	sip_out_str(o, body);
	return o->overflow ? -ENOSPC : 0;
}

static int fill_addr(int fam, const uint8_t *a, uint16_t port, struct sockaddr_storage *dst,
		     socklen_t *dlen)
{
	memset(dst, 0, sizeof(*dst));
	if (fam == AF_INET) {
		struct sockaddr_in *in = (void *)dst;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, a, 4);
		in->sin_port = htons(port);
		*dlen = sizeof(*in);
		return 0;
	}
	if (fam == AF_INET6) {
		struct sockaddr_in6 *in6 = (void *)dst;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, a, 16);
		in6->sin6_port = htons(port);
		*dlen = sizeof(*in6);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int sip_resp_dest(const struct sip_msg *req, const struct sockaddr *src,
		  struct sockaddr_storage *dst, socklen_t *dlen)
{
	const struct sip_via *v = &req->via1;
	uint16_t via_port = v->port ? v->port : 5060;
	uint8_t a[16];

	if (!src)
		return -EINVAL;
	/* RFC 3261 §18.2.2: maddr wins, port from sent-by or 5060. A maddr
	 * that is a name would need DNS: the source address is used instead. */
	if (v->maddr.p && v->maddr.len) {
		int fam = host_pton(v->maddr, a);
		if (fam)
			return fill_addr(fam, a, via_port, dst, dlen);
	}
	const uint8_t *sa;
	int fam = src->sa_family;
	if (fam == AF_INET)
		sa = (const uint8_t *)&((const struct sockaddr_in *)(const void *)src)->sin_addr;
	else if (fam == AF_INET6)
		sa = ((const struct sockaddr_in6 *)(const void *)src)->sin6_addr.s6_addr;
	else
		return -EAFNOSUPPORT;
	/* RFC 3581 §4: rport → the source IP and port the request came from.
	 * Otherwise §18.2.2: the received address and the sent-by port. */
	uint16_t port = v->rport ? src_port(src) : via_port;
	return fill_addr(fam, sa, port, dst, dlen);
}

void sip_to_tag(const struct sw_hkey *key, const struct sip_msg *req, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	/* One SipHash over length-prefixed parts (issue 6: was five): the
	 * lengths make the encoding injective, so no text in the parts can
	 * make two different triples collide. Parts too long for the buffer
	 * are hashed first and their digest stands in for them. */
	struct sw_str part[3] = {
		{ req->call_id.p ? req->call_id.p : "", req->call_id.len },
		{ req->from.tag.p ? req->from.tag.p : "", req->from.tag.len },
		{ req->via1.branch.p ? req->via1.branch.p : "", req->via1.branch.len },
	};
	bool have_branch = req->via1.branch.p && req->via1.branch.len;
	uint8_t buf[512];
	size_t n = 0;
	for (int i = 0; i < 3; i++) {
		uint8_t d[8];
		struct sw_str v = part[i];
		if (i == 2 && !have_branch) {
			for (int j = 0; j < 8; j++)
				d[j] = (uint8_t)((uint64_t)req->cseq.num >> (8 * j));
			v = (struct sw_str){ (const char *)d, 8 };
		} else if (v.len > 160) {
			uint64_t h = sw_siphash(key, v.p, v.len);
			for (int j = 0; j < 8; j++)
				d[j] = (uint8_t)(h >> (8 * j));
			v = (struct sw_str){ (const char *)d, 8 };
			buf[n++] = 0xff;   /* marks a digest: never a real length */
		}
		buf[n++] = (uint8_t)v.len;
		memcpy(buf + n, v.p, v.len);
		n += v.len;
	}
	buf[n++] = have_branch ? 1 : 2;
	uint64_t h = sw_siphash(key, buf, n);
	for (int i = 0; i < 16; i++)
		out[i] = hex[(h >> (60 - 4 * i)) & 15];
	out[16] = '\0';
}
