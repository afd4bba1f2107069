/* One interface for every transport (DESIGN.md "Architecture"); UDP and
 * TCP now, TLS and WebSocket slot in as more `enum sw_proto` values. */
#ifndef SW_TRANSPORT_TRANSPORT_T_H
#define SW_TRANSPORT_TRANSPORT_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sip/sip-t.h"
#include "sip/txn-t.h"

enum sw_proto { SW_PROTO_UDP = 0, SW_PROTO_TCP, SW_PROTO_TLS, SW_PROTO_WS, SW_PROTO_WSS };

/* A received message and where it came from. For streams, buf holds one
 * complete framed message; for UDP, the raw datagram. */
struct sw_rx {
	const char *buf;
	size_t len;
	struct sip_txn_dest from;   /* proto, peer addr, conn_id / udp fd */
	const struct sockaddr *local; /* the listening address it arrived on */
};

/* Called by the transport for each datagram / framed message. Must not
 * keep buf after returning. */
typedef void (*sw_rx_fn)(void *ctx, const struct sw_rx *rx);

struct sw_tp_conf {
	struct sip_limits limits;      /* max_msg bounds stream buffers */
	unsigned tcp_idle_s;           /* close idle connections (default 300; registrations refresh) */
	unsigned tcp_message_s;        /* a started message must be complete within this
	                                * (default 20; slowloris), 0 = no limit */
	unsigned tcp_max_conns;        /* per worker (default 4096) */
	unsigned tcp_max_conns_per_ip; /* per worker (default 64) */
	unsigned udp_batch;            /* recvmmsg/sendmmsg batch (default 32) */
	unsigned worker_id;            /* 0..SW_TP_WORKER_MAX, in every conn_id so a
	                                * shared table (registrar bindings) can tell
	                                * which worker owns a connection (default 0) */
	size_t tcp_out_max;            /* bytes queued for one connection before it is
	                                * closed: a peer that does not read must not
	                                * grow our memory (default 1 MiB) */
	unsigned tcp_connect_ms;       /* outgoing connection not established in this
	                                * long: closed, reported (default 3000) */
	size_t udp_rcvbuf;             /* receive queue per UDP socket, bytes (default
	                                * 4 MiB; 0 = the kernel's default) */
};

/* Counters of one worker's transport (library code does not log, STYLE.md §7). */
struct sw_tp_stats {
	uint64_t udp_rx;             /* datagrams delivered */
	uint64_t udp_rx_trunc;       /* dropped: longer than limits.max_msg */
	uint64_t udp_rx_keepalive;   /* dropped: CRLF-only keepalive datagrams */
	uint64_t udp_tx;             /* datagrams handed to the kernel */
	uint64_t udp_tx_err;         /* datagrams the kernel refused (dropped) */
	uint64_t tcp_accepted;
	uint64_t tcp_refused_max;    /* over tcp_max_conns: accepted and closed */
	uint64_t tcp_refused_ip;     /* over tcp_max_conns_per_ip */
	uint64_t tcp_rx;             /* framed messages delivered */
	uint64_t tcp_pings;          /* RFC 5626 §3.5.1 CRLFCRLF pings answered */
	uint64_t tcp_closed_peer;    /* EOF or socket error */
	uint64_t tcp_closed_idle;    /* tcp_idle_s without input */
	uint64_t tcp_closed_frame;   /* unrecoverable framing error (RFC 4475 ncl, mcl01) */
	uint64_t tcp_closed_outbuf;  /* output over tcp_out_max */
	uint64_t tcp_connects;       /* outgoing connections opened (sw_tp_connect) */
	uint64_t tcp_connect_reused; /* sw_tp_connect answered by an open one */
	uint64_t tcp_connect_failed; /* refused, unreachable or timed out */
};

#define SW_TP_WORKER_MAX 255u

/* The worker whose transport owns a stream connection (conn_id != 0). */
static inline unsigned sw_tp_conn_worker(uint32_t conn_id)
{
	return conn_id >> 24;
}

/* An outgoing connection failed before or while connecting (refused,
 * unreachable, tcp_connect_ms passed): what was queued on it is lost.
 * err is a negative errno (-ETIMEDOUT for the timeout). */
typedef void (*sw_tp_connect_err_fn)(void *ctx, uint32_t conn_id, const struct sockaddr *peer,
				     socklen_t alen, int err);

struct sw_tp; /* one per worker: its sockets, connections and send batch */

#endif
