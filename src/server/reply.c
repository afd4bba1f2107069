/* Building, recording and sending replies; the per-request log line. */
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

const struct sockaddr *req_src(const struct req *r)
{
	return (const struct sockaddr *)&r->rx->from.addr;
}

void req_log(struct req *r, unsigned status)
{
	enum sw_log_level lvl = status < 300 ? SW_LOG_DEBUG : SW_LOG_INFO;
	if (r->quiet || !sw_log_enabled(lvl))
		return;
	struct sw_logline l;
	char src[64];
	sw_sockaddr_fmt(req_src(r), src, sizeof(src));
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
static void put_copied(struct req *r, struct sip_out *o, unsigned status)
{
	char tag[17] = "";
	if (status > 100)
		sip_to_tag(&r->w->srv->tag_key, r->m, tag);
	r->copied_at = o->len;
	sip_resp_copied(o, r->m, req_src(r), status, sw_str_c(tag));
	r->copied_len = o->len - r->copied_at;
}

void reply_begin(struct req *r, struct sip_out *o, unsigned status, const char *reason)
{
	sip_out_init(o, r->w->out, r->w->out_cap);
	sip_resp_status(o, status, reason);
	put_copied(r, o, status);
	sip_out_cstr(o, "Server: ");
	sip_out_cstr(o, r->w->cfg->server_name);
	sip_out_cstr(o, "\r\n");
}

/* RFC 3261 §8.2.7: a challenge to a request that carried no credentials
 * at all is best sent statelessly, so a flood of unauthenticated requests
 * creates no transaction state (each would otherwise hold an entry and
 * its reply for Timer J, 32 s). The To tag is a keyed hash of the request
 * (sip_to_tag), the same for a retransmission, which gets a fresh
 * challenge. INVITE keeps its transaction (Timer G, the ACK); a 401/407
 * after credentials (wrong password, stale nonce) stays stateful, so a
 * retransmission is never counted as a second failure. */
static bool stateless_challenge(const struct req *r, unsigned status)
{
	return (status == 401 || status == 407) && r->m->method != SIP_M_INVITE &&
	       !sip_hdr_get(r->m, SIP_H_AUTHORIZATION) && !sip_hdr_get(r->m, SIP_H_PROXY_AUTHORIZATION);
}

void reply_finish(struct req *r, struct sip_out *o, unsigned status)
{
	if (sip_resp_end(o, SW_STR_NULL, SW_STR_NULL) < 0) {
		/* Only extra headers can overflow; answer without them. */
		r->why = "reply-too-large";
		status = 500;
		reply_begin(r, o, status, NULL);
		sip_resp_end(o, SW_STR_NULL, SW_STR_NULL);
	}
	if (r->txn) {
		if (stateless_challenge(r, status)) {
			sip_txn_forget(r->w->txns, r->txn);
			r->txn = NULL;
		} else {
			sip_txn_respond_copied(r->w->txns, r->txn, o->buf, o->len, status, sw_now_ms(),
					       r->copied_at, r->copied_len);
		}
	}
	worker_send(r->w, &r->dest, o->buf, o->len);
	req_log(r, status);
}

/* A retransmission of a request already answered: the stored reply, with
 * the fields copied from the request put back when the transaction kept
 * it without them (sip_txn_respond_copied). They are rebuilt from this
 * retransmission, which carries the same Via/From/To/Call-ID/CSeq as the
 * original (RFC 3261 §17.1.2.2 resends the same request), and the To tag
 * is a keyed hash of those: the bytes that went out the first time. */
void reply_resend(struct req *r)
{
	struct sw_worker *w = r->w;
	size_t len;
	const char *stored = sip_txn_reply(w->txns, r->txn, &len);
	size_t hole = sip_txn_reply_hole(r->txn);
	if (!stored)
		return;
	if (!hole) {
		worker_send(w, sip_txn_dest(r->txn), stored, len);
		return;
	}
	struct sip_out o;
	sip_out_init(&o, w->out, w->out_cap);
	sip_out_put(&o, stored, hole);
	put_copied(r, &o, sip_txn_status(r->txn));
	sip_out_put(&o, stored + hole, len - hole);
	if (!o.overflow && r->copied_len)
		worker_send(w, sip_txn_dest(r->txn), o.buf, o.len);
}

void reply(struct req *r, unsigned status, const char *reason, const char *extra)
{
	struct sip_out o;
	reply_begin(r, &o, status, reason);
	if (extra)
		sip_out_cstr(&o, extra);
	reply_finish(r, &o, status);
}

/* RFC 3261 §18.2.2 with RFC 3581. maddr is not honoured: it would let any
 * sender point our replies at a third party (reflection); the reply goes
 * back to where the request came from. */
void reply_dest(struct req *r)
{
	r->dest = r->rx->from;
	if (r->rx->from.reliable)
		return;
	struct sip_msg *m = r->m;
	if (m->via1.maddr.p) {
		uint16_t port = m->via1.rport ? sw_sockaddr_port(req_src(r))
					      : (m->via1.port ? m->via1.port : 5060);
		struct sockaddr_in *in = (void *)&r->dest.addr;
		struct sockaddr_in6 *in6 = (void *)&r->dest.addr;
		if (r->dest.addr.ss_family == AF_INET6)
			in6->sin6_port = htons(port);
		else
			in->sin_port = htons(port);
		return;
	}
	sip_resp_dest(m, req_src(r), &r->dest.addr, &r->dest.alen);
}
