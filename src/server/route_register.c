/* REGISTER: the registrar route, and replies parked until the binding is durable. */
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
#include "server/pipeline-int.h"
#include "server/server.h"
#include "sip/build.h"
#include "sip/fields.h"
#include "sip/parse.h"
#include "sip/txn.h"
#include "transport/transport.h"

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

void route_register(struct req *r)
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
	if (!phase_authenticate(r, false))
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
	reply_begin(r, &o, res.status, NULL);
	if (res.status == 503)
		sip_out_cstr(&o, "Retry-After: 5\r\n");
	if (res.status == 200)
		sip_out_cstr(&o, SUPPORTED_HDR);
	sip_out_put(&o, res.hdrs, res.hdrs_len);
	if (res.ticket == 0) {
		reply_finish(r, &o, res.status);
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
	req_log(r, res.status);
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
