#ifndef SW_TRANSPORT_TRANSPORT_H
#define SW_TRANSPORT_TRANSPORT_H

#include <event2/event.h>

#include "transport/transport-t.h"

void sw_tp_conf_default(struct sw_tp_conf *c);

/* Transport state of one worker, on its own event base. */
struct sw_tp *sw_tp_new(struct event_base *base, const struct sw_tp_conf *conf,
			sw_rx_fn on_rx, void *ctx);
void sw_tp_free(struct sw_tp *tp);

/* Open a listener on this worker. Every worker opens its own socket on the
 * same address with SO_REUSEPORT; the kernel spreads datagrams and
 * connections. 0 or -errno. */
int sw_tp_listen(struct sw_tp *tp, enum sw_proto proto, const struct sockaddr *addr, socklen_t alen);
/* Before the first worker listens: 0 when nothing is bound to the address,
 * -EADDRINUSE when something is. Every listener uses SO_REUSEPORT (one
 * socket per worker), which would otherwise let a second sipwarden (or
 * anything else with the option, same user) bind the same port silently
 * and take a share of its traffic. */
int sw_tp_addr_free(enum sw_proto proto, const struct sockaddr *addr, socklen_t alen);
/* The smallest receive queue the kernel granted a UDP listener, in bytes
 * it will queue (half of SO_RCVBUF, which counts its bookkeeping); 0 when
 * there is no UDP listener. */
size_t sw_tp_udp_rcvbuf(const struct sw_tp *tp);

/* Send to a peer. UDP: queued into the worker's sendmmsg batch, flushed at
 * the end of the current receive batch (or by sw_tp_flush); dest->fd picks
 * the socket, and when it is not one of ours (e.g. -1 for a request we
 * originate) the first UDP socket of the destination's family is used.
 * Streams: on the
 * connection dest->conn_id if it is still open, else -ENOTCONN; -EXDEV when
 * the connection belongs to another worker (sw_tp_conn_worker(conn_id)
 * says which): hand it over. conn_id 0 means "to dest->addr": an outgoing
 * connection of this worker to that address is reused, else opened
 * (sw_tp_connect); the bytes wait in its output until it is established. */
int sw_tp_send(struct sw_tp *tp, const struct sip_txn_dest *dest, const char *buf, size_t len);
void sw_tp_flush(struct sw_tp *tp);
/* Close a stream connection (a peer whose byte stream no longer frames as
 * SIP); may be called from within its own on_rx. No-op for datagrams. */
int sw_tp_close(struct sw_tp *tp, const struct sip_txn_dest *dest);

/* An outgoing stream connection to addr (RFC 3261 §18.1.1): an open or
 * connecting one of this worker to the same address and port is reused,
 * else a non-blocking connect is started. *conn_id names it at once; sends
 * queue until it is established. A failure later (refused, timeout after
 * conf.tcp_connect_ms) closes it and calls the sw_tp_on_connect_error
 * callback. 0, -EPROTONOSUPPORT, -EAFNOSUPPORT, -EMFILE (tcp_max_conns) or
 * another -errno from socket()/connect(). */
int sw_tp_connect(struct sw_tp *tp, enum sw_proto proto, const struct sockaddr *addr,
		  socklen_t alen, uint32_t *conn_id);
/* Who hears about failed outgoing connections (called with the ctx of
 * sw_tp_new, from the event loop, never from inside sw_tp_connect). */
void sw_tp_on_connect_error(struct sw_tp *tp, sw_tp_connect_err_fn fn);

/* Connections currently open on this worker (metrics, tests). */
unsigned sw_tp_conn_count(const struct sw_tp *tp);

void sw_tp_stats(const struct sw_tp *tp, struct sw_tp_stats *out);

/* The i-th listener of this worker (in sw_tp_listen order) and the address
 * it is bound to (the real port when port 0 was asked); NULL past the end. */
const struct sockaddr *sw_tp_listener(const struct sw_tp *tp, unsigned i,
				      enum sw_proto *proto, socklen_t *alen);

const char *sw_proto_name(enum sw_proto p);       /* "udp", "tcp", … */
int sw_proto_parse(const char *name, enum sw_proto *out);

#endif
