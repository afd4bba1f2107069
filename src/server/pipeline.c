/* The request pipeline (DESIGN.md "Architecture"):
 *   transport → guard.pre → parse → guard.filter → transaction
 *   → check (method, scheme, Require) → identify/authenticate → route → respond
 * Each phase is a function that either answers (and ends the request) or
 * passes it on: reply.c builds answers, phase_auth.c authenticates,
 * route_*.c route. guard.* arrive with the guard issue. */
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
#include "guard/guard.h"
#include "registrar/registrar.h"
#include "server/pipeline-int.h"
#include "server/server.h"
#include "sip/build.h"
#include "sip/fields.h"
#include "sip/parse.h"
#include "sip/txn.h"
#include "transport/transport.h"

/* Option tags we honour in Require (RFC 3261 §8.2.2.3). */
static const char *const supported_tags[] = { "path" };

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
	req_log(&r, (unsigned)err->status);
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
	/* guard.pre: banned sources and floods cost a hash lookup, unparsed */
	uint64_t gnow = guard_now_ms();
	struct guard_verdict gv = guard_pre(w->srv->guard, (const struct sockaddr *)&rx->from.addr,
					    rx->len, gnow);
	if (gv.action == GUARD_DROP)
		return;

	ssize_t n = sip_parse(rx->buf, rx->len, rx->from.reliable ? SIP_PARSE_STREAM : SIP_PARSE_DGRAM,
			      &cfg->limits, w->hdrs, cfg->limits.max_headers, &m, &err);
	if (n < 0) {
		reject_unparsable(w, rx, &m, &err);
		return;
	}
	if (!m.is_request) {
		route_proxy_response(w, rx, &m); /* issue 4: client transactions; else stray (§18.1.2) */
		return;
	}
	if (sip_validate_all(&m, &err) < 0) {
		reject_unparsable(w, rx, &m, &err);
		return;
	}

	struct req r = { .w = w, .rx = rx, .m = &m, .gnow = gnow };
	reply_dest(&r);
	if (gv.action != GUARD_PASS) {
		/* flood policy 403 or tarpit: answer statelessly, no transaction */
		r.why = "flood";
		guard_answer(&r, &gv);
		return;
	}

	/* guard.filter: scanners, method allow-list, geo */
	gv = guard_filter(w->srv->guard, &m, req_src(&r), gnow);
	if (gv.action != GUARD_PASS) {
		r.why = guard_reason_str(gv.reason);
		guard_answer(&r, &gv);
		return;
	}

	/* transaction: absorb retransmissions before anything else runs */
	switch (sip_txn_receive(w->txns, &m, &r.dest, sw_now_ms(), &r.txn)) {
	case SIP_TXN_NEW:
		break;
	case SIP_TXN_RETRANSMIT:
		w->retrans_absorbed++;
		reply_resend(&r);
		return;
	case SIP_TXN_PENDING:
	case SIP_TXN_ACK_ABSORBED:
		w->retrans_absorbed++;
		return;
	case SIP_TXN_NO_MATCH:
		if (m.method == SIP_M_ACK && cfg->proxy.on)
			route_proxy_ack(&r); /* issue 4: ACK for a 2xx, end to end */
		return;
	case SIP_TXN_FULL:
		r.txn = NULL;
		r.why = "transaction-table-full";
		reply(&r, 503, NULL, "Retry-After: 5\r\n");
		return;
	}
	if (m.method == SIP_M_ACK)
		return;

	/* guard.rate: after the transaction layer, so retransmissions are free */
	gv = guard_rate(w->srv->guard, &m, req_src(&r), sw_str_c(req_auth_user(&r)), gnow);
	if (gv.action != GUARD_PASS) {
		r.why = guard_reason_str(gv.reason);
		guard_answer(&r, &gv);
		return;
	}

	/* issue 4: the proxy takes all but REGISTER and requests to the server
	 * itself; it checks Proxy-Require, not Require (§16.3) */
	if (route_proxy_claims(&r)) {
		route_proxy(&r);
		return;
	}

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
