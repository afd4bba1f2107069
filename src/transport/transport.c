/* The transport interface of one worker: listeners, send dispatch, state. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sip/parse.h"
#include "transport/tp-int.h"

static const char *const proto_names[] = {
	[SW_PROTO_UDP] = "udp",
	[SW_PROTO_TCP] = "tcp",
	[SW_PROTO_TLS] = "tls",
	[SW_PROTO_WS] = "ws",
	[SW_PROTO_WSS] = "wss",
};

const char *sw_proto_name(enum sw_proto p)
{
	if ((unsigned)p >= sizeof(proto_names) / sizeof(proto_names[0]))
		return "?";
	return proto_names[p];
}

int sw_proto_parse(const char *name, enum sw_proto *out)
{
	if (!name)
		return -EINVAL;
	for (unsigned i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++) {
		if (strcasecmp(name, proto_names[i]) == 0) {
			*out = (enum sw_proto)i;
			return 0;
		}
	}
	return -EINVAL;
}

void sw_tp_conf_default(struct sw_tp_conf *c)
{
	memset(c, 0, sizeof(*c));
	sip_limits_default(&c->limits);
	c->tcp_idle_s = 300;
	c->tcp_message_s = 20;
	c->tcp_max_conns = 4096;
	c->tcp_max_conns_per_ip = 64;
	c->udp_batch = 32;
	c->tcp_out_max = 1u << 20;
	c->tcp_connect_ms = 3000;
	c->udp_rcvbuf = 4u << 20;
}

int tp_socket_bind(int type, const struct sockaddr *addr, socklen_t alen)
{
	int one = 1;
	int fd = socket(addr->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	/* Separate v4 and v6 listeners: "[::]" must not also take IPv4. */
	if (addr->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, addr, alen) < 0)
		goto fail;
	return fd;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

int sw_tp_addr_free(enum sw_proto proto, const struct sockaddr *addr, socklen_t alen)
{
	int type = proto == SW_PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int fd = socket(addr->sa_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1, rc = 0;
	/* TCP: connections of an earlier run in TIME_WAIT do not count, a
	 * listener does. No SO_REUSEPORT: that is what makes the bind fail
	 * where another process's SO_REUSEPORT sockets are bound. */
	if (type == SOCK_STREAM)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, addr, alen) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Clamp a configuration to what the data structures can hold. */
static void conf_sanitize(struct sw_tp_conf *c)
{
	if (c->limits.max_msg == 0)
		c->limits.max_msg = 65535;
	if (c->udp_batch == 0)
		c->udp_batch = 32;
	if (c->udp_batch > 1024)   /* UIO_MAXIOV */
		c->udp_batch = 1024;
	if (c->tcp_max_conns == 0)
		c->tcp_max_conns = 1;
	if (c->tcp_max_conns > TP_MAX_CONNS)
		c->tcp_max_conns = TP_MAX_CONNS;
	if (c->tcp_max_conns_per_ip == 0)
		c->tcp_max_conns_per_ip = c->tcp_max_conns;
	if (c->tcp_out_max == 0)
		c->tcp_out_max = 1u << 20;
	if (c->tcp_connect_ms == 0)
		c->tcp_connect_ms = 3000;
}

struct sw_tp *sw_tp_new(struct event_base *base, const struct sw_tp_conf *conf,
			sw_rx_fn on_rx, void *ctx)
{
	if (!base || !conf || !on_rx || conf->worker_id > SW_TP_WORKER_MAX)
		return NULL;
	struct sw_tp *tp = calloc(1, sizeof(*tp));
	if (!tp)
		return NULL;
	tp->base = base;
	tp->conf = *conf;
	conf_sanitize(&tp->conf);
	tp->on_rx = on_rx;
	tp->ctx = ctx;

	unsigned nb = tp->conf.udp_batch;
	/* One spare byte per slot: a datagram that fills it was longer than
	 * max_msg even if the kernel did not flag MSG_TRUNC. */
	tp->rx_slot = tp->conf.limits.max_msg + 1;
	tp->rx_buf = malloc(nb * tp->rx_slot);
	tp->rx_msg = calloc(nb, sizeof(*tp->rx_msg));
	tp->rx_iov = calloc(nb, sizeof(*tp->rx_iov));
	tp->rx_addr = calloc(nb, sizeof(*tp->rx_addr));
	tp->tx_buf = malloc((size_t)nb * TP_UDP_SEND_MAX);
	tp->tx_msg = calloc(nb, sizeof(*tp->tx_msg));
	tp->tx_iov = calloc(nb, sizeof(*tp->tx_iov));
	tp->tx = calloc(nb, sizeof(*tp->tx));
	if (!tp->rx_buf || !tp->rx_msg || !tp->rx_iov || !tp->rx_addr ||
	    !tp->tx_buf || !tp->tx_msg || !tp->tx_iov || !tp->tx)
		goto fail;
	for (unsigned i = 0; i < nb; i++) {
		tp->rx_iov[i].iov_base = tp->rx_buf + i * tp->rx_slot;
		tp->rx_iov[i].iov_len = tp->rx_slot;
		tp->rx_msg[i].msg_hdr.msg_iov = &tp->rx_iov[i];
		tp->rx_msg[i].msg_hdr.msg_iovlen = 1;
		tp->rx_msg[i].msg_hdr.msg_name = &tp->rx_addr[i];
		tp->tx_iov[i].iov_base = tp->tx_buf + (size_t)i * TP_UDP_SEND_MAX;
		tp->tx_msg[i].msg_hdr.msg_iov = &tp->tx_iov[i];
		tp->tx_msg[i].msg_hdr.msg_iovlen = 1;
		tp->tx_msg[i].msg_hdr.msg_name = &tp->tx[i].addr;
	}
	if (tp_tcp_init(tp) < 0)
		goto fail;
	return tp;
fail:
	sw_tp_free(tp);
	return NULL;
}

void sw_tp_free(struct sw_tp *tp)
{
	if (!tp)
		return;
	tp_udp_flush(tp);
	tp_tcp_fini(tp);
	for (unsigned i = 0; i < tp->nlsn; i++) {
		struct tp_lsn *l = tp->lsn[i];
		if (l->ev)
			event_free(l->ev);
		if (l->resume)
			event_free(l->resume);
		if (l->fd >= 0)
			close(l->fd);
		free(l);
	}
	free(tp->rx_buf);
	free(tp->rx_msg);
	free(tp->rx_iov);
	free(tp->rx_addr);
	free(tp->tx_buf);
	free(tp->tx_msg);
	free(tp->tx_iov);
	free(tp->tx);
	free(tp);
}

int sw_tp_listen(struct sw_tp *tp, enum sw_proto proto, const struct sockaddr *addr, socklen_t alen)
{
	if (!tp || !addr)
		return -EINVAL;
	if ((addr->sa_family != AF_INET || alen < sizeof(struct sockaddr_in)) &&
	    (addr->sa_family != AF_INET6 || alen < sizeof(struct sockaddr_in6)))
		return -EAFNOSUPPORT;
	if (proto != SW_PROTO_UDP && proto != SW_PROTO_TCP)
		return -EPROTONOSUPPORT;
	if (tp->nlsn >= TP_MAX_LISTEN)
		return -ENOSPC;
	struct tp_lsn *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->tp = tp;
	l->proto = proto;
	l->fd = -1;
	int rc = proto == SW_PROTO_UDP ? tp_udp_open(tp, l, addr, alen)
				       : tp_tcp_open(tp, l, addr, alen);
	if (rc < 0) {
		if (l->ev)
			event_free(l->ev);
		if (l->resume)
			event_free(l->resume);
		if (l->fd >= 0)
			close(l->fd);
		free(l);
		return rc;
	}
	tp->lsn[tp->nlsn++] = l;
	return 0;
}

int sw_tp_close(struct sw_tp *tp, const struct sip_txn_dest *dest)
{
	if (dest->proto != SW_PROTO_TCP || dest->conn_id == 0)
		return 0;
	return tp_tcp_close(tp, dest->conn_id);
}

int sw_tp_send(struct sw_tp *tp, const struct sip_txn_dest *dest, const char *buf, size_t len)
{
	if (!tp || !dest || (!buf && len))
		return -EINVAL;
	switch (dest->proto) {
	case SW_PROTO_UDP:
		return tp_udp_send(tp, dest, buf, len);
	case SW_PROTO_TCP: {
		uint32_t id = dest->conn_id;
		if (id == 0) {
			if (dest->alen == 0)
				return -ENOTCONN; /* no address to connect to */
			/* "to this address": reuse or open our connection */
			int rc = tp_tcp_connect(tp, (const struct sockaddr *)&dest->addr, dest->alen, &id);
			if (rc < 0)
				return rc;
		}
		return tp_tcp_send(tp, id, buf, len);
	}
	default:
		return -EPROTONOSUPPORT;
	}
}

int sw_tp_connect(struct sw_tp *tp, enum sw_proto proto, const struct sockaddr *addr,
		  socklen_t alen, uint32_t *conn_id)
{
	if (!tp || !addr || !conn_id)
		return -EINVAL;
	if (proto != SW_PROTO_TCP)
		return -EPROTONOSUPPORT;
	return tp_tcp_connect(tp, addr, alen, conn_id);
}

void sw_tp_on_connect_error(struct sw_tp *tp, sw_tp_connect_err_fn fn)
{
	if (tp)
		tp->on_connect_err = fn;
}

void sw_tp_flush(struct sw_tp *tp)
{
	if (tp)
		tp_udp_flush(tp);
}

unsigned sw_tp_conn_count(const struct sw_tp *tp)
{
	return tp ? tp->nconn : 0;
}

void sw_tp_stats(const struct sw_tp *tp, struct sw_tp_stats *out)
{
	*out = tp->st;
}

const struct sockaddr *sw_tp_listener(const struct sw_tp *tp, unsigned i,
				      enum sw_proto *proto, socklen_t *alen)
{
	if (!tp || i >= tp->nlsn)
		return NULL;
	if (proto)
		*proto = tp->lsn[i]->proto;
	if (alen)
		*alen = tp->lsn[i]->alen;
	return (const struct sockaddr *)&tp->lsn[i]->addr;
}
