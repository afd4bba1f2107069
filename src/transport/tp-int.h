/* Internals shared by transport.c, udp.c and tcp.c; not for other modules. */
#ifndef SW_TRANSPORT_TP_INT_H
#define SW_TRANSPORT_TP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/buffer.h>

#include "base/siphash.h"
#include "transport/transport.h"

#define TP_MAX_LISTEN 32
/* Largest UDP payload we may originate; a send slot holds one. */
#define TP_UDP_SEND_MAX 65535
/* Fairness: at most this many recvmmsg batches per readable event. */
#define TP_UDP_BUDGET 8
/* conn_id = worker_id << 24 | generation << slot_bits | slot index, with
 * slot_bits just wide enough for tcp_max_conns (at most 20). */
#define TP_MAX_CONNS (1u << 20)

struct tp_lsn {
	struct sw_tp *tp;
	enum sw_proto proto;
	int fd;
	struct event *ev;
	struct event *resume;           /* TCP: re-arm after EMFILE */
	struct sockaddr_storage addr;   /* bound address (getsockname) */
	socklen_t alen;
	int rcvbuf;                     /* UDP: SO_RCVBUF the kernel granted */
};

struct tp_conn {
	struct sw_tp *tp;
	int fd;
	uint32_t id;
	bool closing;
	bool outgoing;                  /* opened by sw_tp_connect */
	bool connecting;                /* connect() in progress: wev waits for it */
	struct event *rev;              /* EV_READ|EV_PERSIST with the idle timeout */
	struct event *wev;              /* armed while out is not empty */
	struct evbuffer *out;
	char *in;                       /* unframed input */
	size_t in_len, in_cap;
	/* Progress on the incomplete message at in[0] (see conn_process). */
	size_t scanned;                 /* bytes searched for the header end */
	size_t scan_hdr;                /* header section length, 0 = not yet */
	size_t need;                    /* frame again at this length (hint) */
	uint64_t msg_start_ms;          /* when the incomplete message at in[0] began, 0 = none */
	uint64_t delivered;             /* messages handed to on_rx */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct sockaddr_storage local;
	uint8_t ipkey[16];              /* peer IP, IPv4 as v4-mapped */
	struct tp_conn *next_dead;      /* closing list, freed by the reap event */
	struct tp_conn *next_out;       /* list of outgoing connections (reuse) */
};

struct tp_slot {
	struct tp_conn *c;
	uint32_t gen;
};

struct tp_ipent {
	uint8_t ip[16];
	uint32_t n;                     /* 0 = empty */
	uint32_t h;
};

struct tp_udp_tx {
	struct sockaddr_storage addr;
	int fd;
};

struct sw_tp {
	struct event_base *base;
	struct sw_tp_conf conf;
	sw_rx_fn on_rx;
	void *ctx;
	struct sw_tp_stats st;

	struct tp_lsn *lsn[TP_MAX_LISTEN];
	unsigned nlsn;

	/* UDP receive batch: udp_batch buffers of max_msg + 1 bytes. */
	char *rx_buf;
	size_t rx_slot;
	struct mmsghdr *rx_msg;
	struct iovec *rx_iov;
	struct sockaddr_storage *rx_addr;

	/* UDP send batch: udp_batch slots of TP_UDP_SEND_MAX bytes. */
	char *tx_buf;
	struct mmsghdr *tx_msg;
	struct iovec *tx_iov;
	struct tp_udp_tx *tx;
	unsigned ntx;

	/* TCP connections: a fixed slot table and a FIFO of free slots, so a
	 * slot (and its id) is reused as late as possible. */
	struct tp_slot *slots;
	uint32_t *free_q;
	unsigned free_head, free_count;
	unsigned nconn;
	unsigned slot_bits;
	uint32_t gen_max;
	struct tp_conn *dead;
	struct event *reap;
	/* Outgoing connections, for reuse by address: few (upstreams,
	 * trunks), so a list. Failures are reported after the loop turns. */
	struct tp_conn *out;
	sw_tp_connect_err_fn on_connect_err;
	const struct timeval *connect_tv;
	const struct timeval *idle_tv;

	/* Connections per peer IP: keyed hash, linear probing (DESIGN.md:
	 * tables of attacker data use SipHash). */
	struct tp_ipent *ip;
	uint32_t ip_mask;
	struct sw_hkey hkey;
};

int tp_udp_open(struct sw_tp *tp, struct tp_lsn *l, const struct sockaddr *addr, socklen_t alen);
int tp_udp_send(struct sw_tp *tp, const struct sip_txn_dest *d, const char *buf, size_t len);
void tp_udp_flush(struct sw_tp *tp);

int tp_tcp_init(struct sw_tp *tp);
void tp_tcp_fini(struct sw_tp *tp);
int tp_tcp_open(struct sw_tp *tp, struct tp_lsn *l, const struct sockaddr *addr, socklen_t alen);
int tp_tcp_send(struct sw_tp *tp, uint32_t conn_id, const char *buf, size_t len);
int tp_tcp_close(struct sw_tp *tp, uint32_t conn_id);
int tp_tcp_connect(struct sw_tp *tp, const struct sockaddr *addr, socklen_t alen,
		   uint32_t *conn_id);

/* Common socket setup: non-blocking, close-on-exec, SO_REUSEADDR,
 * SO_REUSEPORT, IPV6_V6ONLY for v6, bound. Returns the fd or -errno. */
int tp_socket_bind(int type, const struct sockaddr *addr, socklen_t alen);

#endif
