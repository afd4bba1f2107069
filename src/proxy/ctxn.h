/* Client transactions (RFC 3261 §17.1): the proxy's side towards the next
 * hop. One table per worker, not thread-safe, no allocation after creation
 * except a request larger than the inline slot.
 *
 *   INVITE (§17.1.1):  Calling (A retransmits, B = 64*T1) → Proceeding
 *                      → Completed on 300-699 (ACK sent here, D) or
 *                      Accepted on 2xx (RFC 6026 §7.2, Timer M = 64*T1,
 *                      2xx retransmissions still reach the TU) → Terminated
 *   non-INVITE (§17.1.2): Trying (E, F = 64*T1) → Proceeding (E at T2)
 *                      → Completed (K = T4, 0 on reliable transports)
 *
 * Besides the RFC timers a TU deadline can be armed (Timer C of §16.6
 * item 11, or the wait for a final after CANCEL, §9.1); when it passes
 * before a final, on_timeout reports PTX_TO_TU. */
#ifndef SW_PROXY_CTXN_H
#define SW_PROXY_CTXN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str-t.h"
#include "sip/sip-t.h"
#include "sip/txn-t.h"

enum ptx_state {
	PTX_CALLING = 0,   /* INVITE sent, nothing back */
	PTX_TRYING,        /* non-INVITE sent, nothing back */
	PTX_PROCEEDING,    /* a provisional came back */
	PTX_COMPLETED,     /* a final came back; absorbing its retransmissions */
	PTX_ACCEPTED,      /* INVITE: 2xx came back (RFC 6026) */
	PTX_TERMINATED,
};

enum ptx_rx {
	PTX_RX_DELIVER,    /* a response for the TU (first final, provisional, any 2xx to INVITE) */
	PTX_RX_ABSORB,     /* retransmission of a final: handled here (ACK resent) */
	PTX_RX_NOMATCH,    /* no such client transaction (§18.1.2: stray) */
};

enum ptx_timeout {
	PTX_TO_B,          /* INVITE: no final in 64*T1 (§17.1.1.2): the TU acts as on 408 */
	PTX_TO_F,          /* non-INVITE: the same (§17.1.2.2) */
	PTX_TO_TU,         /* the TU deadline passed before a final */
};

struct ptx;
struct ptx_table;

typedef void (*ptx_send_fn)(void *ctx, const struct sip_txn_dest *d, const char *buf, size_t len);
typedef void (*ptx_timeout_fn)(void *ctx, struct ptx *x, enum ptx_timeout why);

#define PTX_BRANCH_MAX 64

/* cap client transactions; `lim` bounds the requests kept (max_msg) and
 * the header scratch used to build ACK and CANCEL. */
struct ptx_table *ptx_table_new(unsigned cap, const struct sip_timers *tm,
				const struct sip_limits *lim);
void ptx_table_free(struct ptx_table *t);
unsigned ptx_count(const struct ptx_table *t);

/* Create a client transaction for req (copied; its top Via must carry
 * `branch`) to be sent to dest; the caller sends it the first time. owner
 * and gen are the TU's cookie (returned by ptx_owner). 0, -EEXIST (same
 * branch and method live), -ENOSPC (table full), -EMSGSIZE, -ENOMEM. */
int ptx_start(struct ptx_table *t, const char *req, size_t len, enum sip_method method,
	      struct sw_str branch, const struct sip_txn_dest *dest, uint32_t owner,
	      uint32_t gen, uint64_t now_ms, struct ptx **out);

/* Match a response (§17.1.3: top Via branch and CSeq method) and run the
 * state machine. An ACK for a 300-699 to INVITE is built and sent here. */
enum ptx_rx ptx_receive(struct ptx_table *t, const struct sip_msg *resp, uint64_t now_ms,
			ptx_send_fn send, void *ctx, struct ptx **out);

/* Fire due timers (retransmissions through send; B, F and TU deadlines
 * through on_timeout, after which the transaction is gone). Returns ms to
 * the next deadline, UINT64_MAX when none. */
uint64_t ptx_tick(struct ptx_table *t, uint64_t now_ms, ptx_send_fn send,
		  ptx_timeout_fn on_timeout, void *ctx);

/* TU deadline at `at_ms` (UINT64_MAX: none), for a transaction still
 * waiting for its final. */
void ptx_set_deadline(struct ptx_table *t, struct ptx *x, uint64_t at_ms);
/* The TU gives up on x: terminated at once, no more callbacks. */
void ptx_abandon(struct ptx_table *t, struct ptx *x);

/* Build a CANCEL for x's INVITE (§9.1: same Request-URI, Call-ID, From,
 * To, CSeq number, the single top Via, Route) into out. 0 or -errno. */
int ptx_build_cancel(struct ptx_table *t, const struct ptx *x, struct sip_out *out);

/* A handle (never 0) that outlives x: ptx_lookup returns NULL once x has ended. */
uint64_t ptx_handle(const struct ptx *x);
struct ptx *ptx_lookup(struct ptx_table *t, uint64_t handle);

enum ptx_state ptx_state(const struct ptx *x);
enum sip_method ptx_method(const struct ptx *x);
void ptx_owner(const struct ptx *x, uint32_t *owner, uint32_t *gen);
const struct sip_txn_dest *ptx_dest(const struct ptx *x);
const char *ptx_request(const struct ptx *x, size_t *len);
struct sw_str ptx_branch(const struct ptx *x);
unsigned ptx_status(const struct ptx *x);  /* last status received, 0 none */

#endif
