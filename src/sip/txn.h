#ifndef SW_SIP_TXN_H
#define SW_SIP_TXN_H

#include "base/siphash.h"
#include "sip/sip-t.h"
#include "sip/txn-t.h"

void sip_timers_default(struct sip_timers *t);

/* A bounded table of `cap` transactions (128 bytes each, touched as they
 * are first used). Stored replies live in size-classed slabs allocated on
 * demand, at most cap * 1 KiB unless sip_txn_set_reply_memory says. */
struct sip_txn_table *sip_txn_table_new(unsigned cap, const struct sw_hkey *key,
					const struct sip_timers *timers);
void sip_txn_table_free(struct sip_txn_table *t);
unsigned sip_txn_count(const struct sip_txn_table *t);

/* Match a request against the table (RFC 3261 §17.2.3: branch + sent-by +
 * method, ACK matching its INVITE; RFC 2543 fallback when the branch lacks
 * the magic cookie). For a new request, creates the transaction and
 * returns SIP_TXN_NEW with *out set. For SIP_TXN_RETRANSMIT, *out is the
 * existing transaction: resend sip_txn_reply(*out). */
enum sip_txn_match sip_txn_receive(struct sip_txn_table *t, const struct sip_msg *m,
				   const struct sip_txn_dest *src, uint64_t now_ms,
				   struct sip_txn **out);

/* The INVITE transaction a CANCEL refers to (§9.2), or NULL. */
struct sip_txn *sip_txn_find_cancelled(struct sip_txn_table *t, const struct sip_msg *cancel);

/* Record the reply (copied; -ENOBUFS when the reply memory is spent, the
 * state still moves) and move the state machine: provisional keeps
 * PROCEEDING, 2xx to an INVITE terminates, any other final goes COMPLETED
 * and arms Timer G/H (INVITE, unreliable) or J (non-INVITE). */
int sip_txn_respond(struct sip_txn_table *t, struct sip_txn *x, const char *resp,
		    size_t len, unsigned status, uint64_t now_ms);

/* sip_txn_respond for a reply whose bytes [hole, hole + gap) are the
 * fields copied from the request (sip_resp_copied): a non-INVITE
 * transaction keeps the reply without them (about half of a REGISTER's
 * 200, held 32 s for Timer J) and the TU puts them back from the
 * retransmission it answers (sip_txn_reply_hole). An INVITE keeps the
 * whole reply: Timer G resends it with no request at hand. */
int sip_txn_respond_copied(struct sip_txn_table *t, struct sip_txn *x, const char *resp,
			   size_t len, unsigned status, uint64_t now_ms, size_t hole, size_t gap);
/* End a non-INVITE transaction whose final response the caller sends
 * statelessly (RFC 3261 §8.2.7: a challenge to a request that carried no
 * credentials): nothing is kept, so a retransmission of the request is
 * handled as new. -EINVAL for an INVITE (its non-2xx final needs Timer G
 * and the ACK), -EALREADY after a final. */
int sip_txn_forget(struct sip_txn_table *t, struct sip_txn *x);

/* Bound on the memory for stored replies (slab chunks of 64 KiB, and
 * replies over 8 KiB one by one). When it is spent, sip_txn_respond still
 * moves the state machine but keeps no reply and returns -ENOBUFS:
 * retransmissions are then absorbed silently (never re-processed). */
void sip_txn_set_reply_memory(struct sip_txn_table *t, size_t bytes);
void sip_txn_get_stats(const struct sip_txn_table *t, struct sip_txn_stats *s);

/* The last reply stored, for retransmission, and where the request's
 * copied fields go into it (0: nowhere, the reply is whole); its status. */
const char *sip_txn_reply(const struct sip_txn_table *t, const struct sip_txn *x, size_t *len);
size_t sip_txn_reply_hole(const struct sip_txn *x);
unsigned sip_txn_status(const struct sip_txn *x);
/* Entries keep the destination compacted: sip_txn_dest() rebuilds it in a
 * per-thread buffer valid until the next call; sip_txn_dest_get() into *out. */
const struct sip_txn_dest *sip_txn_dest(const struct sip_txn *x);
void sip_txn_dest_get(const struct sip_txn *x, struct sip_txn_dest *out);
enum sip_txn_state sip_txn_state(const struct sip_txn *x);
bool sip_txn_is_invite(const struct sip_txn *x);

typedef void (*sip_txn_send_fn)(void *ctx, const struct sip_txn_dest *d,
				const char *buf, size_t len);

/* Fire due timers: retransmit (Timer G) through send, expire transactions
 * (H, I, J; and transactions never answered after 64*T1). Returns ms until
 * the next deadline, UINT64_MAX when nothing is armed, or 0 when it
 * stopped after a bounded batch with more due (call again soon). */
uint64_t sip_txn_tick(struct sip_txn_table *t, uint64_t now_ms, sip_txn_send_fn send, void *ctx);

#endif
