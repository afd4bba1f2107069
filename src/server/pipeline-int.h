/* What the pipeline's phases share (private to src/server). */
#ifndef SW_SERVER_PIPELINE_INT_H
#define SW_SERVER_PIPELINE_INT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "guard/guard-t.h"
#include "server/server-t.h"
#include "sip/authhdr.h"
#include "sip/sip-t.h"
#include "transport/transport-t.h"

/* What this server implements (RFC 3261 §8.2.1). */
/* issue 4: the proxy forwards these too */
#define ALLOW_HDR "Allow: REGISTER, OPTIONS, ACK, CANCEL, INVITE, BYE, UPDATE, PRACK, INFO, MESSAGE, SUBSCRIBE, NOTIFY, REFER\r\n"
#define SUPPORTED_HDR "Supported: path\r\n"

/* One request on its way through the phases. */
struct req {
	struct sw_worker *w;
	const struct sw_rx *rx;
	struct sip_msg *m;
	struct sip_txn *txn;          /* NULL for stateless replies */
	struct sip_txn_dest dest;     /* where replies go */
	const char *why;              /* reason code for the log */
	bool quiet;                   /* already logged by its phase */
	uint64_t gnow;                /* guard clock (wall ms) for this message */
	bool auth_user_done;          /* auth_user below is filled in */
	char auth_user[GUARD_NAME_MAX]; /* req_auth_user(), parsed once per request */
	struct sip_auth_memo auth_memo; /* the field req_auth_user parsed first */
	size_t copied_at, copied_len; /* the reply's fields copied from the request */
};

struct sip_out;

static inline bool is_sip_uri(const struct sip_uri *u)
{
	return u->scheme == SIP_URI_SIP || u->scheme == SIP_URI_SIPS;
}

/* reply.c */
const struct sockaddr *req_src(const struct req *r);
void req_log(struct req *r, unsigned status);
void reply_begin(struct req *r, struct sip_out *o, unsigned status, const char *reason);
void reply_finish(struct req *r, struct sip_out *o, unsigned status);
void reply(struct req *r, unsigned status, const char *reason, const char *extra);
void reply_dest(struct req *r);
void reply_resend(struct req *r);

/* phase_auth.c: true = go on; false = answered (401/403/…) */
bool phase_authenticate(struct req *r, bool proxy);
/* "user@realm" of the first digest credentials, "" when none; computed on
 * the first call and kept in r (the rate limiter, the ban check and the
 * proxy's drift warning all ask). */
const char *req_auth_user(struct req *r);

/* phase_guard.c: carry out a guard verdict other than PASS (drop, a
 * stateless reply, or a tarpit: the reply sent after a delay). */
struct guard_verdict;
void guard_answer(struct req *r, const struct guard_verdict *gv);
void guard_tarpit_flush(struct sw_worker *w, uint64_t now_ms);

/* route_register.c, route_local.c */
void route_register(struct req *r);
void route_options(struct req *r);
void route_cancel(struct req *r);

/* route_proxy.c (issue 4): the authenticating proxy */
bool route_proxy_claims(struct req *r);    /* proxy on and not for the server itself */
void route_proxy(struct req *r);           /* a new request to forward (or CANCEL) */
void route_proxy_ack(struct req *r);       /* an ACK no transaction matched (2xx ACK) */
void route_proxy_response(struct sw_worker *w, const struct sw_rx *rx, const struct sip_msg *m);
int route_proxy_worker_init(struct sw_worker *w);
void route_proxy_worker_free(struct sw_worker *w);
uint64_t route_proxy_tick(struct sw_worker *w, uint64_t now_ms); /* ms to the next timer */

#endif
