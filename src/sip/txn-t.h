/* Server transactions (RFC 3261 §17.2). */
#ifndef SW_SIP_TXN_T_H
#define SW_SIP_TXN_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Where replies to a transaction go. Opaque to sip/: the transport layer
 * fills it (sip/ must not depend on transport/, DESIGN.md "Layout"). */
struct sip_txn_dest {
	struct sockaddr_storage addr;
	socklen_t alen;
	uint32_t conn_id;      /* stream connection, 0 for datagrams */
	uint8_t proto;         /* enum sw_proto value */
	bool reliable;         /* no retransmission timers when true */
	int fd;                /* local datagram socket the request came in on */
};

struct sip_timers {
	uint32_t t1_ms;        /* 500 */
	uint32_t t2_ms;        /* 4000 */
	uint32_t t4_ms;        /* 5000 */
};

enum sip_txn_state {
	SIP_TXN_TRYING = 0,      /* non-INVITE: received, no reply yet */
	SIP_TXN_PROCEEDING,      /* INVITE: received / provisional sent */
	SIP_TXN_COMPLETED,       /* final sent; absorbing retransmissions */
	SIP_TXN_CONFIRMED,       /* INVITE: ACK received (Timer I) */
	SIP_TXN_TERMINATED,
};

enum sip_txn_match {
	SIP_TXN_NEW,          /* a new transaction was created: hand to the TU */
	SIP_TXN_RETRANSMIT,   /* retransmission: resend the stored reply (out->resp) */
	SIP_TXN_PENDING,      /* retransmission before any reply: absorb silently */
	SIP_TXN_ACK_ABSORBED, /* ACK for a non-2xx final: absorbed (§17.2.1) */
	SIP_TXN_NO_MATCH,     /* ACK/response that matches no transaction: TU decides */
	SIP_TXN_FULL,         /* table full: answer 503 statelessly */
};

struct sip_txn_stats {
	unsigned live;          /* transactions not yet terminated */
	unsigned cap;
	unsigned touched;       /* entries ever handed out (their pages are resident) */
	size_t entry_bytes;     /* sizeof one entry */
	size_t table_bytes;     /* touched entries + index + timer wheel */
	size_t reply_bytes;     /* slab chunks held for stored replies */
	size_t reply_budget;
	uint64_t reply_nomem;   /* replies not kept: budget spent */
};

struct sip_txn;          /* opaque */
struct sip_txn_table;    /* opaque, one per worker, not thread-safe */

#endif
