/* REGISTER: the registrar route. The registrar appends the change to this
 * worker's journal segment before it answers, so the 200 leaves at once. */
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

/* One log line per failure streak, then at most one every 10 s per
 * worker with how many were not logged (a full disk fails every REGISTER). */
static void journal_failed(struct sw_worker *w, int err)
{
	uint64_t now = sw_now_ms();
	if (w->jfail_logged_ms && now - w->jfail_logged_ms < 10000) {
		w->jfail_quiet++;
		return;
	}
	sw_logf(SW_LOG_ERROR, "registrar.journal_write_failed",
		"worker=%u error=\"%s\" errno=%d not_logged=%u", w->id, strerror(-err), -err,
		w->jfail_quiet);
	w->jfail_logged_ms = now;
	w->jfail_quiet = 0;
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
	int rc = registrar_register(w->srv->reg, m, &r->dest, (uint16_t)w->id, sw_wall_s(), &res);
	if (rc < 0) {
		r->why = "registrar-error";
		reply(r, 500, NULL, NULL);
		return;
	}
	r->why = res.reason;
	if (res.err)
		journal_failed(w, res.err);
	struct sip_out o;
	reply_begin(r, &o, res.status, NULL);
	/* A full disk or an I/O error: the binding was not changed. */
	if (res.status == 503 || res.err)
		sip_out_cstr(&o, "Retry-After: 5\r\n");
	if (res.status == 200)
		sip_out_cstr(&o, SUPPORTED_HDR);
	sip_out_put(&o, res.hdrs, res.hdrs_len);
	reply_finish(r, &o, res.status);
}
