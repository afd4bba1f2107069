/* Stateful forwarding helpers (see fwd.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/ct.h"
#include "base/str.h"
#include "proxy/fwd.h"
#include "sip/build.h"
#include "sip/fields.h"
#include "sip/parse.h"

static const char hexd[] = "0123456789abcdef";
static const char bprefix[] = "z9hG4bKsw";   /* RFC 3261 §8.1.1.7 cookie + ours */

static void hmac(const uint8_t key[PROXY_KEY_LEN], const void *d, size_t n, uint8_t out[32])
{
	unsigned len = 32;
	HMAC(EVP_sha256(), key, PROXY_KEY_LEN, d, n, out, &len);
}

void proxy_keys_derive(struct proxy_keys *k, const uint8_t secret[PROXY_KEY_LEN])
{
	uint8_t o[32];
	hmac(secret, "sipwarden rr", 12, k->rr);
	hmac(secret, "sipwarden branch", 16, o);
	memcpy(&k->branch.k0, o, 8);
	memcpy(&k->branch.k1, o + 8, 8);
}

static void hex64(uint64_t v, char *out)
{
	for (int i = 0; i < 16; i++)
		out[i] = hexd[(v >> (60 - 4 * i)) & 15];
}

/* --- branch and loops ------------------------------------------------- */

size_t proxy_branch(const struct proxy_keys *k, unsigned worker, uint64_t counter, uint64_t loop,
		    char out[PROXY_BRANCH_MAX])
{
	size_t n = sizeof(bprefix) - 1;
	memcpy(out, bprefix, n);
	out[n++] = hexd[(worker >> 4) & 15];
	out[n++] = hexd[worker & 15];
	/* unique per request sent; keyed so branches are not guessable */
	uint64_t u = sw_siphash(&k->branch, &counter, sizeof(counter));
	hex64(u, out + n);
	n += 16;
	out[n++] = '.';
	hex64(loop, out + n);
	n += 16;
	return n;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int proxy_branch_worker(struct sw_str b)
{
	size_t pl = sizeof(bprefix) - 1;
	if (!b.p || b.len != pl + 2 + 16 + 1 + 16 || memcmp(b.p, bprefix, pl) != 0)
		return -1;
	int hi = hexval(b.p[pl]), lo = hexval(b.p[pl + 1]);
	if (hi < 0 || lo < 0 || b.p[pl + 18] != '.')
		return -1;
	return hi * 16 + lo;
}

struct hacc {
	const struct proxy_keys *k;
	uint64_t h;
	uint64_t n;
};

static void acc(struct hacc *a, struct sw_str s)
{
	uint64_t d[3] = { a->h, a->n++, sw_siphash(&a->k->branch, s.p ? s.p : "", s.len) };
	a->h = sw_siphash(&a->k->branch, d, sizeof(d));
}

uint64_t proxy_loop_hash(const struct proxy_keys *k, const struct sip_msg *m)
{
	struct hacc a = { k, 0x6c6f6f70ull, 0 };
	char cs[12];
	size_t cl = 0;
	uint32_t v = m->cseq.num;
	do {
		cs[cl++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	acc(&a, m->ruri.raw);
	acc(&a, m->from.tag);
	acc(&a, m->to.tag);
	acc(&a, m->call_id);
	acc(&a, sw_str_mk(cs, cl));
	static const enum sip_hdr_id ids[] = { SIP_H_ROUTE, SIP_H_PROXY_REQUIRE,
					       SIP_H_PROXY_AUTHORIZATION };
	for (unsigned i = 0; i < 3; i++)
		for (const struct sip_hdr *h = sip_hdr_get(m, ids[i]); h; h = sip_hdr_next(m, h))
			acc(&a, h->value);
	return a.h;
}

bool proxy_loop_detect(const struct proxy_keys *k, const struct sip_msg *m)
{
	uint64_t want = 0;
	bool have = false;
	struct sip_hdr_iter it;
	struct sw_str elem;
	sip_hdr_iter_init(&it, m, SIP_H_VIA);
	while (sip_hdr_iter_next(&it, &elem) == 1) {
		struct sip_via v;
		if (sip_via_parse(elem, &v) < 0 || proxy_branch_worker(v.branch) < 0)
			continue;
		if (!have) {
			want = proxy_loop_hash(k, m);
			have = true;
		}
		char h[16];
		hex64(want, h);
		if (memcmp(v.branch.p + v.branch.len - 16, h, 16) == 0)
			return true;
	}
	return false;
}

/* --- flows and Record-Route ------------------------------------------- */

size_t proxy_flow_encode(const struct proxy_flow *f, char out[PROXY_FLOW_MAX])
{
	/* proto (1) conn_id (8) family (1: 4|6) address (8|32) port (4), hex */
	size_t n = 0;
	const uint8_t *a;
	size_t alen;
	uint16_t port;
	if (f->addr.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)&f->addr;
		a = (const uint8_t *)&in->sin_addr;
		alen = 4;
		port = ntohs(in->sin_port);
	} else if (f->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)&f->addr;
		a = in6->sin6_addr.s6_addr;
		alen = 16;
		port = ntohs(in6->sin6_port);
	} else {
		return 0;
	}
	out[n++] = hexd[f->proto & 15];
	for (int i = 7; i >= 0; i--)
		out[n++] = hexd[(f->conn_id >> (4 * i)) & 15];
	out[n++] = alen == 4 ? '4' : '6';
	for (size_t i = 0; i < alen; i++) {
		out[n++] = hexd[a[i] >> 4];
		out[n++] = hexd[a[i] & 15];
	}
	for (int i = 3; i >= 0; i--)
		out[n++] = hexd[(port >> (4 * i)) & 15];
	return n;
}

int proxy_flow_decode(struct sw_str s, struct proxy_flow *f)
{
	memset(f, 0, sizeof(*f));
	if (s.len != 1 + 8 + 1 + 8 + 4 && s.len != 1 + 8 + 1 + 32 + 4)
		return -EINVAL;
	uint8_t v[64];
	for (size_t i = 0; i < s.len; i++) {
		int x = hexval(s.p[i]);
		if (x < 0 && !(i == 9 && (s.p[i] == '4' || s.p[i] == '6')))
			return -EINVAL;
		v[i] = (uint8_t)x;
	}
	f->proto = v[0];
	for (int i = 1; i <= 8; i++)
		f->conn_id = f->conn_id << 4 | v[i];
	size_t alen = s.p[9] == '4' ? 4 : 16;
	if (s.len != 1 + 8 + 1 + alen * 2 + 4)
		return -EINVAL;
	uint8_t a[16];
	for (size_t i = 0; i < alen; i++)
		a[i] = (uint8_t)(v[10 + 2 * i] << 4 | v[11 + 2 * i]);
	uint16_t port = 0;
	for (size_t i = 0; i < 4; i++)
		port = (uint16_t)(port << 4 | v[10 + alen * 2 + i]);
	if (alen == 4) {
		struct sockaddr_in *in = (void *)&f->addr;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, a, 4);
		in->sin_port = htons(port);
		f->alen = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (void *)&f->addr;
		in6->sin6_family = AF_INET6;
		memcpy(in6->sin6_addr.s6_addr, a, 16);
		in6->sin6_port = htons(port);
		f->alen = sizeof(*in6);
	}
	f->set = true;
	return 0;
}

/* 128-bit MAC as 32 hex digits over length-prefixed parts. */
static void rr_mac(const struct proxy_keys *k, struct sw_str call_id, struct sw_str tag,
		   struct sw_str flow, char out[32])
{
	uint8_t buf[1024 + 64 + PROXY_FLOW_MAX + 12];
	size_t n = 0;
	struct sw_str parts[3] = { call_id, tag, flow };
	uint8_t d[32];
	for (unsigned i = 0; i < 3; i++) {
		size_t l = parts[i].len;
		if (l > 1024 || n + 4 + l > sizeof(buf)) {
			/* overlong part: hash it first (still bound to the MAC) */
			uint64_t h = sw_siphash(&k->branch, parts[i].p, l);
			memcpy(buf + n, &h, 8);
			n += 8;
			continue;
		}
		buf[n++] = (uint8_t)(l >> 24);
		buf[n++] = (uint8_t)(l >> 16);
		buf[n++] = (uint8_t)(l >> 8);
		buf[n++] = (uint8_t)l;
		if (l)
			memcpy(buf + n, parts[i].p, l);
		n += l;
	}
	hmac(k->rr, buf, n, d);
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hexd[d[i] >> 4];
		out[2 * i + 1] = hexd[d[i] & 15];
	}
}

size_t proxy_rr_build(const struct proxy_keys *k, struct sw_str host, uint16_t port,
		      const char *transport, struct sw_str call_id, struct sw_str tag,
		      const struct proxy_flow *flow, char out[PROXY_RR_MAX])
{
	char fl[PROXY_FLOW_MAX];
	size_t fn = flow && flow->set ? proxy_flow_encode(flow, fl) : 0;
	char mac[32];
	rr_mac(k, call_id, tag, sw_str_mk(fl, fn), mac);
	struct sip_out o;
	sip_out_init(&o, out, PROXY_RR_MAX);
	bool v6 = memchr(host.p, ':', host.len) != NULL;
	sip_out_cstr(&o, v6 ? "<sip:[" : "<sip:");
	sip_out_str(&o, host);
	sip_out_cstr(&o, v6 ? "]:" : ":");
	sip_out_u64(&o, port);
	sip_out_cstr(&o, ";transport=");
	sip_out_cstr(&o, transport);
	sip_out_cstr(&o, ";lr");
	if (fn) {
		sip_out_cstr(&o, ";swf=");
		sip_out_put(&o, fl, fn);
	}
	sip_out_cstr(&o, ";swrr=");
	sip_out_put(&o, mac, 32);
	sip_out_cstr(&o, ">");
	return o.overflow ? 0 : o.len;
}

int proxy_route_nth(const struct sip_msg *m, unsigned n, struct sip_uri *u)
{
	struct sip_hdr_iter it;
	struct sw_str elem;
	unsigned i = 0;
	int rc;
	sip_hdr_iter_init(&it, m, SIP_H_ROUTE);
	while ((rc = sip_hdr_iter_next(&it, &elem)) == 1) {
		if (!elem.len)
			continue;
		if (i++ < n)
			continue;
		struct sip_nameaddr na;
		if (sip_nameaddr_parse(elem, &na) < 0)
			return -EBADMSG;
		*u = na.uri;
		return 1;
	}
	return rc < 0 ? rc : 0;
}

enum proxy_route_kind proxy_route_check(const struct proxy_keys *k, const struct sip_msg *m,
					struct proxy_flow *flow, struct sip_uri *top)
{
	memset(flow, 0, sizeof(*flow));
	int rc = proxy_route_nth(m, 0, top);
	if (rc == 0)
		return PROXY_ROUTE_NONE;
	if (rc < 0)
		return PROXY_ROUTE_FORGED;
	struct sw_str mac = SW_STR_NULL, fl = SW_STR_NULL;
	if (sip_param_get(top->params, "swrr", &mac) != 1)
		return PROXY_ROUTE_OTHER;
	if (!mac.p || mac.len != 32)
		return PROXY_ROUTE_FORGED;
	if (sip_param_get(top->params, "swf", &fl) == 1) {
		if (!fl.p || proxy_flow_decode(fl, flow) < 0)
			return PROXY_ROUTE_FORGED;
	} else {
		fl = SW_STR_NULL;
	}
	/* the dialog's first From tag is now the From (same direction) or
	 * the To tag (the callee's requests) */
	struct sw_str tags[2] = { m->from.tag, m->to.tag };
	for (unsigned i = 0; i < 2; i++) {
		if (!tags[i].p)
			continue;
		char want[32];
		rr_mac(k, m->call_id, tags[i], fl.p ? fl : SW_STR_NULL, want);
		if (sw_ct_eq(want, mac.p, 32))
			return PROXY_ROUTE_OURS;
	}
	return PROXY_ROUTE_FORGED;
}

/* --- request builder -------------------------------------------------- */

static void put_unfolded(struct sip_out *o, struct sw_str s)
{
	for (size_t i = 0; i < s.len; i++) {
		char c = s.p[i];
		if (c == '\r' || c == '\n') {
			/* folded line: linear whitespace (RFC 3261 §7.3.1) */
			if (i == 0 || (s.p[i - 1] != '\r' && s.p[i - 1] != '\n'))
				sip_out_put(o, " ", 1);
			continue;
		}
		sip_out_put(o, &c, 1);
	}
}

static void put_hdr(struct sip_out *o, const char *name, struct sw_str v)
{
	sip_out_cstr(o, name);
	sip_out_cstr(o, ": ");
	put_unfolded(o, v);
	sip_out_cstr(o, "\r\n");
}

static size_t addr_text(const struct sockaddr *sa, char *buf, size_t cap, uint16_t *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		*port = ntohs(in->sin_port);
		return inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)cap) ? strlen(buf) : 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		*port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, buf, (socklen_t)cap)
				       ? strlen(buf) : 0;
		return inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)cap) ? strlen(buf) : 0;
	}
	return 0;
}

/* The previous hop's via-parm with received= (when its sent-by is not
 * the source address, §18.2.1) and rport=PORT (when asked, RFC 3581 §4). */
static void put_amended_via(struct sip_out *o, const struct sip_via *v, const struct sockaddr *src)
{
	char ip[64];
	uint16_t port = 0;
	size_t iplen = src ? addr_text(src, ip, sizeof(ip), &port) : 0;
	if (!iplen || !v->params.p) {
		put_unfolded(o, v->raw);
		return;
	}
	bool want_recv = v->rport || !sw_str_ieq(v->host, sw_str_mk(ip, iplen));
	put_unfolded(o, sw_str_mk(v->raw.p, (size_t)(v->params.p - v->raw.p)));
	struct sw_str rest = v->params;
	struct sip_param prm;
	while (sip_params_next(&rest, &prm) == 1) {
		if (sw_str_ieq_c(prm.name, "received") && want_recv)
			continue;
		if (sw_str_ieq_c(prm.name, "rport") && v->rport)
			continue;
		sip_out_put(o, ";", 1);
		sip_out_str(o, prm.name);
		if (prm.value.p) {
			sip_out_put(o, "=", 1);
			put_unfolded(o, prm.value);
		}
	}
	if (want_recv) {
		sip_out_cstr(o, ";received=");
		sip_out_put(o, ip, iplen);
	}
	if (v->rport) {
		sip_out_cstr(o, ";rport=");
		sip_out_u64(o, port);
	}
}

/* realm="X" inside a credentials value equals realm (case-insensitive). */
static bool creds_for_realm(struct sw_str v, struct sw_str realm)
{
	for (size_t i = 0; i + 5 <= v.len; i++) {
		if (!sw_str_ieq(sw_str_mk(v.p + i, 5), SW_STR_LIT("realm")))
			continue;
		if (i > 0 && v.p[i - 1] != ' ' && v.p[i - 1] != ',' && v.p[i - 1] != '\t')
			continue;
		size_t j = i + 5;
		while (j < v.len && (v.p[j] == ' ' || v.p[j] == '\t'))
			j++;
		if (j >= v.len || v.p[j] != '=')
			continue;
		j++;
		while (j < v.len && (v.p[j] == ' ' || v.p[j] == '\t'))
			j++;
		bool q = j < v.len && v.p[j] == '"';
		if (q)
			j++;
		size_t s = j;
		while (j < v.len && (q ? v.p[j] != '"' : (v.p[j] != ',' && v.p[j] != ' ')))
			j++;
		return sw_str_ieq(sw_str_mk(v.p + s, j - s), realm);
	}
	return false;
}

int fwd_build(struct sip_out *o, const struct sip_msg *m, const struct fwd_opts *op)
{
	sip_out_str(o, m->method_name);
	sip_out_put(o, " ", 1);
	sip_out_str(o, op->ruri.p ? op->ruri : m->ruri.raw);
	sip_out_cstr(o, " SIP/2.0\r\n");
	/* §16.6 item 8: our Via on top; the others follow in order */
	put_hdr(o, "Via", op->via);
	int first_via = m->first[SIP_H_VIA];
	for (unsigned i = 0; i < m->nhdrs; i++) {
		const struct sip_hdr *h = &m->hdrs[i];
		if (h->id != SIP_H_VIA)
			continue;
		sip_out_cstr(o, "Via: ");
		if ((int)i == first_via && m->via1.raw.p >= h->value.p &&
		    m->via1.raw.p + m->via1.raw.len <= h->value.p + h->value.len) {
			put_unfolded(o, sw_str_mk(h->value.p, (size_t)(m->via1.raw.p - h->value.p)));
			put_amended_via(o, &m->via1, op->src);
			const char *e = m->via1.raw.p + m->via1.raw.len;
			put_unfolded(o, sw_str_mk(e, (size_t)(h->value.p + h->value.len - e)));
		} else {
			put_unfolded(o, h->value);
		}
		sip_out_cstr(o, "\r\n");
	}
	/* §16.6 item 4: our Record-Route above any other */
	if (op->rr.p)
		put_hdr(o, "Record-Route", op->rr);
	/* §16.6 item 3 */
	sip_out_cstr(o, "Max-Forwards: ");
	sip_out_u64(o, m->max_forwards < 0 ? 70 : (unsigned long long)(m->max_forwards > 0 ? m->max_forwards - 1 : 0));
	sip_out_cstr(o, "\r\n");
	/* §16.4 / §16.12: the Route values that named us are gone */
	unsigned skip = op->skip_routes;
	struct sip_hdr_iter it;
	struct sw_str elem;
	sip_hdr_iter_init(&it, m, SIP_H_ROUTE);
	while (sip_hdr_iter_next(&it, &elem) == 1) {
		if (!elem.len)
			continue;
		if (skip) {
			skip--;
			continue;
		}
		put_hdr(o, "Route", elem);
	}
	for (unsigned i = 0; i < m->nhdrs; i++) {
		const struct sip_hdr *h = &m->hdrs[i];
		switch (h->id) {
		case SIP_H_VIA:
		case SIP_H_ROUTE:
		case SIP_H_MAX_FORWARDS:
		case SIP_H_CONTENT_LENGTH:
			continue;
		case SIP_H_PROXY_AUTHORIZATION:
			/* RFC 3261 §22.3: credentials for our realm were consumed here */
			if (op->realm.len && creds_for_realm(h->value, op->realm))
				continue;
			break;
		case SIP_H_P_ASSERTED_IDENTITY:
		case SIP_H_P_PREFERRED_IDENTITY:
			/* RFC 3325 §5: not from outside the trust domain; and
			 * §9.1: PPI is replaced by the asserted identity */
			if (op->strip_identity || op->pai.p)
				continue;
			break;
		default:
			break;
		}
		sip_out_str(o, h->name);
		sip_out_cstr(o, ": ");
		put_unfolded(o, h->value);
		sip_out_cstr(o, "\r\n");
	}
	if (op->pai.p)
		put_hdr(o, "P-Asserted-Identity", op->pai);
	if (op->extra.p)
		sip_out_str(o, op->extra);
	/* RFC 3261 §18.3: always framed (the next hop may be a stream) */
	sip_out_cstr(o, "Content-Length: ");
	sip_out_u64(o, m->body.len);
	sip_out_cstr(o, "\r\n\r\n");
	sip_out_str(o, m->body);
	return o->overflow ? -ENOSPC : 0;
}

int fwd_response(struct sip_out *o, const struct sip_msg *r)
{
	if (r->nvia < 2)
		return -EINVAL; /* §16.7 step 3: nothing left: it was for us */
	/* status line as received */
	const char *eol = memchr(r->buf, '\n', r->len);
	if (!eol)
		return -EINVAL;
	sip_out_put(o, r->buf, (size_t)(eol + 1 - r->buf));
	int first_via = r->first[SIP_H_VIA];
	for (unsigned i = 0; i < r->nhdrs; i++) {
		const struct sip_hdr *h = &r->hdrs[i];
		if (h->id == SIP_H_CONTENT_LENGTH)
			continue;
		if ((int)i == first_via) {
			/* drop the first via-parm (ours), keep the rest of the field */
			const char *e = r->via1.raw.p + r->via1.raw.len;
			const char *end = h->value.p + h->value.len;
			while (e < end && (*e == ' ' || *e == '\t' || *e == ',' || *e == '\r' || *e == '\n'))
				e++;
			if (e < end)
				put_hdr(o, "Via", sw_str_mk(e, (size_t)(end - e)));
			continue;
		}
		sip_out_str(o, h->name);
		sip_out_cstr(o, ": ");
		put_unfolded(o, h->value);
		sip_out_cstr(o, "\r\n");
	}
	sip_out_cstr(o, "Content-Length: ");
	sip_out_u64(o, r->body.len);
	sip_out_cstr(o, "\r\n\r\n");
	sip_out_str(o, r->body);
	return o->overflow ? -ENOSPC : 0;
}

/* --- best response ------------------------------------------------------ */

static bool preferred_4xx(unsigned s)
{
	return s == 401 || s == 407 || s == 415 || s == 420 || s == 484;
}

int proxy_best(const unsigned *st, unsigned n)
{
	int best = -1;
	for (unsigned i = 0; i < n; i++) {
		unsigned s = st[i];
		if (s >= 600)
			return (int)i; /* a 6xx ends the search (§16.7 step 6) */
		if (s < 300)
			continue;
		if (best < 0) {
			best = (int)i;
			continue;
		}
		unsigned b = st[best];
		if (s / 100 < b / 100 || (s / 100 == 4 && b / 100 == 4 && preferred_4xx(s) &&
					  !preferred_4xx(b)))
			best = (int)i;
	}
	return best;
}

unsigned proxy_best_status(unsigned s)
{
	return s == 503 ? 500 : s;
}
