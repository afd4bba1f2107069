/* The request pipeline (DESIGN.md "Architecture"):
 *   transport → guard.pre → parse → guard.filter → transaction
 *   → check (method, scheme, Require) → identify/authenticate → route → respond
 * Each phase is a function that either answers (and ends the request) or
 * passes it on. guard.* arrive with the guard issue; authentication is the
 * registrar trust list until digest lands. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/net.h"
#include "base/str.h"
#include "config/config.h"
#include "registrar/registrar.h"
#include "server/server.h"
#include "sip/build.h"
#include "sip/fields.h"
#include "sip/parse.h"
#include "sip/txn.h"
#include "transport/transport.h"

/* What this server implements as a registrar (RFC 3261 §8.2.1). */
#define ALLOW_HDR "Allow: REGISTER, OPTIONS, ACK, CANCEL\r\n"
/* Option tags we honour in Require (RFC 3261 §8.2.2.3). */
static const char *const supported_tags[] = { "path" };
#define SUPPORTED_HDR "Supported: path\r\n"

struct req {
	struct sw_worker *w;
	const struct sw_rx *rx;
	struct sip_msg *m;
	struct sip_txn *txn;          /* NULL for stateless replies */
	struct sip_txn_dest dest;     /* where replies go */
	const char *why;              /* reason code for the log */
	bool quiet;                   /* already logged by its phase */
};

static const struct sockaddr *src_sa(const struct req *r)
{
	return (const struct sockaddr *)&r->rx->from.addr;
}

static void log_result(struct req *r, unsigned status)
{
	enum sw_log_level lvl = status < 300 ? SW_LOG_DEBUG : SW_LOG_INFO;
	if (r->quiet || !sw_log_enabled(lvl))
		return;
	struct sw_logline l;
	char src[64];
	sw_sockaddr_fmt(src_sa(r), src, sizeof(src));
	sw_log_begin(&l, lvl, "sip.request");
	sw_log_str(&l, "method", r->m->method_name.p ? r->m->method_name : SW_STR_LIT("-"));
	sw_log_int(&l, "status", status);
	sw_log_cstr(&l, "reason", r->why ? r->why : "-");
	sw_log_cstr(&l, "src", src);
	sw_log_cstr(&l, "transport", r->rx->from.reliable ? "tcp" : "udp");
	sw_log_str(&l, "ruri", r->m->ruri.raw);
	if (r->m->to.uri.raw.p)
		sw_log_str(&l, "to", r->m->to.uri.raw);
	const struct sip_hdr *ua = sip_hdr_get(r->m, SIP_H_USER_AGENT);
	if (ua)
		sw_log_str(&l, "ua", ua->value);
	sw_log_end(&l);
}

/* Build the start of a reply up to (and including) our own headers; the
 * caller appends extra headers then calls finish(). */
static void begin_reply(struct req *r, struct sip_out *o, unsigned status, const char *reason)
{
	char tag[17] = "";
	if (status > 100)
		sip_to_tag(&r->w->srv->tag_key, r->m, tag);
	sip_out_init(o, r->w->out, r->w->out_cap);
	sip_resp_begin(o, r->m, src_sa(r), status, reason, sw_str_c(tag));
	sip_out_cstr(o, "Server: ");
	sip_out_cstr(o, r->w->cfg->server_name);
	sip_out_cstr(o, "\r\n");
}

static void finish_reply(struct req *r, struct sip_out *o, unsigned status)
{
	if (sip_resp_end(o, SW_STR_NULL, SW_STR_NULL) < 0) {
		/* Only extra headers can overflow; answer without them. */
		r->why = "reply-too-large";
		status = 500;
		begin_reply(r, o, status, NULL);
		sip_resp_end(o, SW_STR_NULL, SW_STR_NULL);
	}
	if (r->txn)
		sip_txn_respond(r->w->txns, r->txn, o->buf, o->len, status, sw_now_ms());
	worker_send(r->w, &r->dest, o->buf, o->len);
	log_result(r, status);
}

static void reply(struct req *r, unsigned status, const char *reason, const char *extra)
{
	struct sip_out o;
	begin_reply(r, &o, status, reason);
	if (extra)
		sip_out_cstr(&o, extra);
	finish_reply(r, &o, status);
}

/* RFC 3261 §18.2.2 with RFC 3581. maddr is not honoured: it would let any
 * sender point our replies at a third party (reflection); the reply goes
 * back to where the request came from. */
static void reply_dest(struct req *r)
{
	r->dest = r->rx->from;
	if (r->rx->from.reliable)
		return;
	struct sip_msg *m = r->m;
	if (m->via1.maddr.p) {
		uint16_t port = m->via1.rport ? sw_sockaddr_port(src_sa(r))
					      : (m->via1.port ? m->via1.port : 5060);
		struct sockaddr_in *in = (void *)&r->dest.addr;
		struct sockaddr_in6 *in6 = (void *)&r->dest.addr;
		if (r->dest.addr.ss_family == AF_INET6)
			in6->sin6_port = htons(port);
		else
			in->sin_port = htons(port);
		return;
	}
	sip_resp_dest(m, src_sa(r), &r->dest.addr, &r->dest.alen);
}

/* Requests that failed to parse: answer statelessly when the parser says
 * what to answer and we know enough to address a reply; else drop. */
static void reject_unparsable(struct sw_worker *w, const struct sw_rx *rx, struct sip_msg *m,
			      const struct sip_perr *err)
{
	w->rx_bad++;
	struct req r = { .w = w, .rx = rx, .m = m, .why = err->why };
	if (sw_log_enabled(SW_LOG_DEBUG)) {
		char src[64];
		struct sw_logline l;
		sw_sockaddr_fmt((const struct sockaddr *)&rx->from.addr, src, sizeof(src));
		sw_log_begin(&l, SW_LOG_DEBUG, "sip.malformed");
		sw_log_cstr(&l, "reason", err->why ? err->why : "malformed");
		sw_log_int(&l, "offset", (long long)err->off);
		sw_log_int(&l, "status", err->status);
		sw_log_cstr(&l, "src", src);
		sw_log_end(&l);
	}
	if (rx->from.reliable && (!m->method_name.p || m->first[SIP_H_VIA] < 0)) {
		/* A stream whose message has no start line or no Via is not
		 * speaking SIP (or lost its framing): close it. */
		sw_tp_close(w->tp, &rx->from);
		return;
	}
	if (!m->is_request || err->status == 0 || m->method == SIP_M_ACK)
		return; /* ACK is never answered (RFC 3261 §17.2.3) */
	if (m->replyable) {
		reply_dest(&r);
		reply(&r, (unsigned)err->status, err->why, NULL);
		return;
	}
	/* Core headers unusable: a verbatim 400 straight back to the source. */
	struct sip_out o;
	sip_out_init(&o, w->out, w->out_cap);
	if (sip_resp_verbatim(&o, m, (unsigned)err->status, err->why) < 0 ||
	    sip_resp_end(&o, SW_STR_NULL, SW_STR_NULL) < 0)
		return;
	worker_send(w, &rx->from, o.buf, o.len);
	log_result(&r, (unsigned)err->status);
}

/* RFC 3261 §8.2.2.3: every option tag in Require must be one we support. */
static bool check_require(struct req *r)
{
	struct sip_hdr_iter it;
	struct sw_str tag;
	char unsup[512];
	size_t n = 0;
	sip_hdr_iter_init(&it, r->m, SIP_H_REQUIRE);
	while (sip_hdr_iter_next(&it, &tag) == 1) {
		bool ok = false;
		for (unsigned i = 0; i < sizeof(supported_tags) / sizeof(supported_tags[0]); i++)
			if (sw_str_ieq_c(tag, supported_tags[i]))
				ok = true;
		if (ok || tag.len == 0)
			continue;
		if (n + tag.len + 2 < sizeof(unsup)) {
			if (n) {
				memcpy(unsup + n, ", ", 2);
				n += 2;
			}
			memcpy(unsup + n, tag.p, tag.len);
			n += tag.len;
		}
	}
	if (n == 0)
		return true;
	char hdr[600];
	snprintf(hdr, sizeof(hdr), "Unsupported: %.*s\r\n", (int)n, unsup);
	r->why = "unsupported-extension";
	reply(r, 420, NULL, hdr);
	return false;
}

static bool is_sip_uri(const struct sip_uri *u)
{
	return u->scheme == SIP_URI_SIP || u->scheme == SIP_URI_SIPS;
}

static void log_auth(struct req *r, const struct auth_result *a, bool trusted)
{
	/* One line per verdict (issue 3). A challenge to a request without
	 * credentials is the normal first leg: debug. Never logged: the
	 * response hash, nonce secret, HA1 or password (none are in *a). */
	enum sw_log_level lvl = SW_LOG_WARN;
	if (trusted || a->outcome == AUTH_OK)
		lvl = a->md5_warn ? SW_LOG_WARN : SW_LOG_INFO;
	else if (a->outcome == AUTH_CHALLENGE && (strcmp(a->reason, AUTH_R_NO_CREDENTIALS) == 0 ||
						   strcmp(a->reason, AUTH_R_STALE) == 0))
		lvl = SW_LOG_DEBUG;
	if (!sw_log_enabled(lvl))
		return;
	struct sw_logline l;
	char src[64];
	sw_sockaddr_fmt(src_sa(r), src, sizeof(src));
	sw_log_begin(&l, lvl, trusted || a->outcome == AUTH_OK ? "auth.ok" : "auth.fail");
	sw_log_cstr(&l, "reason", trusted ? "trusted-source" : a->reason);
	sw_log_str(&l, "method", r->m->method_name);
	if (!trusted) {
		sw_log_int(&l, "status", a->status);
		sw_log_cstr(&l, "user", a->user);
		if (a->userhash)
			sw_log_cstr(&l, "userhash", "yes");
		sw_log_cstr(&l, "realm", a->realm ? a->realm : "-");
		sw_log_cstr(&l, "algorithm", a->algorithm ? a->algorithm : "-");
		if (a->profile)
			sw_log_cstr(&l, "profile", a->profile);
		if (a->outcome == AUTH_OK && a->mapped)
			sw_log_cstr(&l, "aor", a->aor);
		if (a->md5_warn)
			sw_log_cstr(&l, "md5", "warn");
		if (a->stale)
			sw_log_cstr(&l, "stale", "true");
	}
	sw_log_cstr(&l, "src", src);
	sw_log_cstr(&l, "transport", r->rx->from.reliable ? "tcp" : "udp");
	const struct sip_hdr *ua = sip_hdr_get(r->m, SIP_H_USER_AGENT);
	if (ua)
		sw_log_str(&l, "ua", ua->value);
	sw_log_end(&l);
}

/* Authentication phase (DESIGN.md "Authentication methods"). Networks in
 * [registrar] trust register without a password (trunk-like devices);
 * everyone else proves a digest secret (RFC 3261 §22, 401 as registrar). */
static bool authenticate(struct req *r, bool proxy)
{
	struct sw_worker *w = r->w;
	const struct sw_config *cfg = w->cfg;
	struct auth_result a;
	if (sw_cidr_list_match(cfg->reg_trust, cfg->nreg_trust, src_sa(r))) {
		log_auth(r, &a, true);
		return true;
	}
	auth_check(w->aw, r->m, src_sa(r), auth_realm_for(cfg, r->m), proxy, sw_wall_s(), &a);
	log_auth(r, &a, false);
	if (a.outcome == AUTH_OK)
		return true;
	r->why = a.reason;
	r->quiet = true; /* the auth line above is this request's log line */
	struct sip_out o;
	begin_reply(r, &o, a.status, NULL);
	sip_out_put(&o, a.hdrs, a.hdrs_len);
	finish_reply(r, &o, a.status);
	return false;
}

static struct sw_pending *pending_slot(struct sw_worker *w, uint64_t ticket, bool create)
{
	for (unsigned i = 0; i < SW_PENDING_MAX; i++) {
		struct sw_pending *p = &w->pending[(ticket + i) & (SW_PENDING_MAX - 1)];
		if (create && p->ticket == 0)
			return p;
		if (!create && p->ticket == ticket)
			return p;
	}
	return NULL;
}

static void route_register(struct req *r)
{
	struct sw_worker *w = r->w;
	const struct sw_config *cfg = w->cfg;
	struct sip_msg *m = r->m;

	/* RFC 3261 §10.3 step 1: is the Request-URI's domain ours? */
	if (!config_realm(cfg, m->ruri.host.p, m->ruri.host.len)) {
		r->why = "domain-not-served";
		reply(r, cfg->unknown_domain_status, "Domain not served here", NULL);
		return;
	}
	if (!authenticate(r, false))
		return;
	/* The AOR must be in a domain we serve too (step 4 authorisation). */
	if (is_sip_uri(&m->to.uri) && !config_realm(cfg, m->to.uri.host.p, m->to.uri.host.len)) {
		r->why = "aor-domain-not-served";
		reply(r, 403, "AOR domain not served here", NULL);
		return;
	}

	struct reg_result res = { .hdrs = w->extra, .hdrs_cap = w->extra_cap };
	int rc = registrar_register(w->srv->reg, m, &r->dest, (uint16_t)w->id, sw_wall_s(),
				    worker_commit_done, w, &res);
	if (rc < 0) {
		r->why = "registrar-error";
		reply(r, 500, NULL, NULL);
		return;
	}
	r->why = res.reason;
	struct sip_out o;
	begin_reply(r, &o, res.status, NULL);
	if (res.status == 503)
		sip_out_cstr(&o, "Retry-After: 5\r\n");
	if (res.status == 200)
		sip_out_cstr(&o, SUPPORTED_HDR);
	sip_out_put(&o, res.hdrs, res.hdrs_len);
	if (res.ticket == 0) {
		finish_reply(r, &o, res.status);
		return;
	}
	/* Durable first, then the 200 (issue 6): park the reply until the
	 * store thread reports the ticket committed. */
	struct sw_pending *p = pending_slot(w, res.ticket, true);
	if (!p || sip_resp_end(&o, SW_STR_NULL, SW_STR_NULL) < 0) {
		r->why = p ? "reply-too-large" : "pending-full";
		reply(r, 503, NULL, "Retry-After: 1\r\n");
		return;
	}
	if (p->cap < o.len) {
		char *nb = realloc(p->resp, o.len);
		if (!nb) {
			reply(r, 503, NULL, "Retry-After: 1\r\n");
			return;
		}
		p->resp = nb;
		p->cap = o.len;
	}
	memcpy(p->resp, o.buf, o.len);
	p->len = o.len;
	p->ticket = res.ticket;
	p->txn = r->txn;
	p->dest = r->dest;
	p->status_ok = res.status;
	p->since_ms = sw_now_ms();
	w->npending++;
	log_result(r, res.status);
}

void pipeline_commit_done(struct sw_worker *w, uint64_t ticket, int rc)
{
	struct sw_pending *p = pending_slot(w, ticket, false);
	if (!p)
		return; /* expired meanwhile; the client's retransmission is answered by the next REGISTER */
	const char *buf = p->resp;
	size_t len = p->len;
	unsigned status = p->status_ok;
	char fail[2048];
	if (rc < 0) {
		/* The change is not durable: never claim it is. Turn the parked
		 * reply into a 500 keeping Via..CSeq (its first header lines). */
		static const char line[] = "SIP/2.0 500 Server Internal Error\r\n";
		const char *eol = memchr(p->resp, '\n', p->len);
		const char *server = eol ? memmem(eol, p->len - (size_t)(eol - p->resp), "\r\nServer:", 9) : NULL;
		size_t mid = server ? (size_t)(server + 2 - (eol + 1)) : 0;
		struct sip_out o;
		sip_out_init(&o, fail, sizeof(fail));
		sip_out_put(&o, line, sizeof(line) - 1);
		if (server)
			sip_out_put(&o, eol + 1, mid);
		sip_out_cstr(&o, "Retry-After: 5\r\nContent-Length: 0\r\n\r\n");
		if (!server || o.overflow)
			goto out;
		buf = o.buf;
		len = o.len;
		status = 500;
		sw_logf(SW_LOG_ERROR, "registrar.commit_failed", "error=\"%s\"", strerror(-rc));
	}
	if (p->txn)
		sip_txn_respond(w->txns, p->txn, buf, len, status, sw_now_ms());
	worker_send(w, &p->dest, buf, len);
out:
	p->ticket = 0;
	w->npending--;
}

/* A parked reply older than this is dropped before its transaction can be
 * reclaimed (64*T1 without a reply), so p->txn never dangles. */
void pipeline_expire_pending(struct sw_worker *w, uint64_t now_ms)
{
	if (w->npending == 0)
		return;
	uint64_t max_age = (uint64_t)w->cfg->timers.t1_ms * 32;
	for (unsigned i = 0; i < SW_PENDING_MAX; i++) {
		struct sw_pending *p = &w->pending[i];
		if (p->ticket && now_ms - p->since_ms > max_age) {
			p->ticket = 0;
			w->npending--;
		}
	}
}

static void route_options(struct req *r)
{
	r->why = "ok";
	reply(r, 200, NULL, ALLOW_HDR SUPPORTED_HDR "Accept: application/sdp\r\n");
}

static void route_cancel(struct req *r)
{
	/* RFC 3261 §9.2: we answer every INVITE at once with a final response,
	 * so a matching CANCEL has nothing left to cancel: 200; else 481. */
	struct sip_txn *inv = sip_txn_find_cancelled(r->w->txns, r->m);
	r->why = inv ? "ok" : "no-such-transaction";
	reply(r, inv ? 200 : 481, NULL, NULL);
}

static bool is_keepalive(const struct sw_rx *rx)
{
	for (size_t i = 0; i < rx->len; i++)
		if (rx->buf[i] != '\r' && rx->buf[i] != '\n')
			return false;
	return true;
}

void pipeline_rx(void *ctx, const struct sw_rx *rx)
{
	struct sw_worker *w = ctx;
	const struct sw_config *cfg = w->cfg;
	struct sip_msg m;
	struct sip_perr err = { 0 };

	w->rx_msgs++;
	if (is_keepalive(rx))
		return; /* CRLF keepalives over UDP need no answer (RFC 5626 §3.5.1 uses STUN there) */

	/* parse */
	ssize_t n = sip_parse(rx->buf, rx->len, rx->from.reliable ? SIP_PARSE_STREAM : SIP_PARSE_DGRAM,
			      &cfg->limits, w->hdrs, cfg->limits.max_headers, &m, &err);
	if (n < 0) {
		reject_unparsable(w, rx, &m, &err);
		return;
	}
	if (!m.is_request)
		return; /* no client transactions yet: every response is stray (§18.1.2) */
	if (sip_validate_all(&m, &err) < 0) {
		reject_unparsable(w, rx, &m, &err);
		return;
	}

	struct req r = { .w = w, .rx = rx, .m = &m };
	reply_dest(&r);

	/* transaction: absorb retransmissions before anything else runs */
	switch (sip_txn_receive(w->txns, &m, &r.dest, sw_now_ms(), &r.txn)) {
	case SIP_TXN_NEW:
		break;
	case SIP_TXN_RETRANSMIT: {
		size_t len;
		const char *resp = sip_txn_reply(r.txn, &len);
		w->retrans_absorbed++;
		if (resp)
			worker_send(w, sip_txn_dest(r.txn), resp, len);
		return;
	}
	case SIP_TXN_PENDING:
	case SIP_TXN_ACK_ABSORBED:
		w->retrans_absorbed++;
		return;
	case SIP_TXN_NO_MATCH:
		return; /* an ACK for a 2xx we never sent */
	case SIP_TXN_FULL:
		r.txn = NULL;
		r.why = "transaction-table-full";
		reply(&r, 503, NULL, "Retry-After: 5\r\n");
		return;
	}
	if (m.method == SIP_M_ACK)
		return;

	/* check: RFC 3261 §8.2.1 method, §8.2.2.1 scheme, §8.2.2.3 Require */
	if (m.method == SIP_M_UNKNOWN) {
		r.why = "unknown-method";
		reply(&r, 501, NULL, ALLOW_HDR);
		return;
	}
	if (m.method != SIP_M_REGISTER && m.method != SIP_M_OPTIONS && m.method != SIP_M_CANCEL) {
		r.why = "method-not-allowed";
		reply(&r, 405, NULL, ALLOW_HDR);
		return;
	}
	if (!is_sip_uri(&m.ruri)) {
		r.why = "unsupported-uri-scheme";
		reply(&r, 416, NULL, NULL);
		return;
	}
	if (m.method != SIP_M_CANCEL && !check_require(&r))
		return;

	/* route */
	switch (m.method) {
	case SIP_M_REGISTER:
		route_register(&r);
		break;
	case SIP_M_OPTIONS:
		route_options(&r);
		break;
	default:
		route_cancel(&r);
		break;
	}
}
