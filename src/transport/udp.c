/* UDP: one SO_REUSEPORT socket per worker and address, recvmmsg/sendmmsg
 * batches in preallocated buffers (DESIGN.md "Architecture": no
 * allocation per packet). */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "transport/tp-int.h"

/* Absorb bursts (a flood fills the queue in milliseconds, and legitimate
 * requests share it). SO_RCVBUFFORCE needs CAP_NET_ADMIN, which the
 * server has while it opens its sockets as root; otherwise SO_RCVBUF,
 * which net.core.rmem_max caps. Returns the size the kernel granted
 * (it doubles the request for its bookkeeping), 0 when unknown. */
static int udp_try_bufsize(int fd, size_t want)
{
	int sz = want > (size_t)(INT_MAX / 2) ? INT_MAX / 2 : (int)want;
	if (sz > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	int snd = 4 << 20;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
	int got = 0;
	socklen_t gl = sizeof(got);
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) < 0)
		return 0;
	return got;
}

/* CR/LF only: a NAT keepalive, not a message (RFC 5626 §4.4.1 uses STUN on
 * UDP, but phones commonly send bare CRLFs; RFC 3261 §7.5 ignores them). */
static bool only_crlf(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != '\r' && p[i] != '\n')
			return false;
	return true;
}

static void udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tp_lsn *l = arg;
	struct sw_tp *tp = l->tp;
	unsigned nb = tp->conf.udp_batch;
	size_t max = tp->conf.limits.max_msg;

	for (unsigned round = 0; round < TP_UDP_BUDGET; round++) {
		for (unsigned i = 0; i < nb; i++) {
			tp->rx_msg[i].msg_hdr.msg_namelen = sizeof(tp->rx_addr[i]);
			tp->rx_msg[i].msg_hdr.msg_flags = 0;
			tp->rx_msg[i].msg_len = 0;
		}
		int n = recvmmsg(fd, tp->rx_msg, nb, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;  /* EAGAIN, or a pending ICMP error: next readable event */
		}
		for (int i = 0; i < n; i++) {
			const struct msghdr *h = &tp->rx_msg[i].msg_hdr;
			size_t len = tp->rx_msg[i].msg_len;
			if ((h->msg_flags & MSG_TRUNC) || len > max) {
				/* Truncated: never parse a partial message. */
				tp->st.udp_rx_trunc++;
				continue;
			}
			const char *buf = tp->rx_iov[i].iov_base;
			if (only_crlf(buf, len)) {
				tp->st.udp_rx_keepalive++;
				continue;
			}
			struct sw_rx rx = {
				.buf = buf,
				.len = len,
				.local = (const struct sockaddr *)&l->addr,
			};
			rx.from.proto = SW_PROTO_UDP;
			rx.from.fd = fd;
			rx.from.reliable = false;
			rx.from.conn_id = 0;
			rx.from.alen = h->msg_namelen;
			if (rx.from.alen > sizeof(rx.from.addr))
				rx.from.alen = sizeof(rx.from.addr);
			memcpy(&rx.from.addr, h->msg_name, rx.from.alen);
			tp->st.udp_rx++;
			tp->on_rx(tp->ctx, &rx);
		}
		/* Replies produced by this batch leave in one sendmmsg. */
		tp_udp_flush(tp);
		if ((unsigned)n < nb)
			break;
	}
}

int tp_udp_open(struct sw_tp *tp, struct tp_lsn *l, const struct sockaddr *addr, socklen_t alen)
{
	int fd = tp_socket_bind(SOCK_DGRAM, addr, alen);
	if (fd < 0)
		return fd;
	l->fd = fd;
	l->rcvbuf = udp_try_bufsize(fd, tp->conf.udp_rcvbuf);
	l->alen = sizeof(l->addr);
	if (getsockname(fd, (struct sockaddr *)&l->addr, &l->alen) < 0)
		return -errno;
	l->ev = event_new(tp->base, fd, EV_READ | EV_PERSIST, udp_read_cb, l);
	if (!l->ev || event_add(l->ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* The socket for a destination: the one the request came in on, else the
 * first UDP listener of the same family. */
static int udp_pick_fd(const struct sw_tp *tp, const struct sip_txn_dest *d)
{
	int fallback = -1;
	sa_family_t fam = d->addr.ss_family;
	for (unsigned i = 0; i < tp->nlsn; i++) {
		const struct tp_lsn *l = tp->lsn[i];
		if (l->proto != SW_PROTO_UDP)
			continue;
		if (d->fd >= 0 && l->fd == d->fd)
			return l->fd;
		if (fallback < 0 && l->addr.ss_family == fam)
			fallback = l->fd;
	}
	return fallback;
}

int tp_udp_send(struct sw_tp *tp, const struct sip_txn_dest *d, const char *buf, size_t len)
{
	if (len > TP_UDP_SEND_MAX)
		return -EMSGSIZE;
	if (d->alen == 0 || d->alen > sizeof(d->addr))
		return -EINVAL;
	int fd = udp_pick_fd(tp, d);
	if (fd < 0)
		return -EAFNOSUPPORT;
	if (tp->ntx >= tp->conf.udp_batch)
		tp_udp_flush(tp);
	unsigned i = tp->ntx++;
	struct tp_udp_tx *t = &tp->tx[i];
	t->fd = fd;
	memcpy(&t->addr, &d->addr, d->alen);
	memcpy(tp->tx_iov[i].iov_base, buf, len);
	tp->tx_iov[i].iov_len = len;
	tp->tx_msg[i].msg_hdr.msg_namelen = d->alen;
	tp->tx_msg[i].msg_hdr.msg_flags = 0;
	return 0;
}

void tp_udp_flush(struct sw_tp *tp)
{
	unsigned n = tp->ntx, i = 0;
	while (i < n) {
		/* sendmmsg takes one socket: send runs of the same fd. */
		int fd = tp->tx[i].fd;
		unsigned j = i + 1;
		while (j < n && tp->tx[j].fd == fd)
			j++;
		while (i < j) {
			int r = sendmmsg(fd, &tp->tx_msg[i], j - i, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (r > 0) {
				tp->st.udp_tx += (unsigned)r;
				i += (unsigned)r;
			} else if (r < 0 && errno == EINTR) {
				continue;
			} else {
				/* Drop the datagram the kernel refused; SIP
				 * retransmission (RFC 3261 §17) recovers. */
				tp->st.udp_tx_err++;
				i++;
			}
		}
	}
	tp->ntx = 0;
}

size_t sw_tp_udp_rcvbuf(const struct sw_tp *tp)
{
	size_t min = 0;
	for (unsigned i = 0; i < tp->nlsn; i++) {
		const struct tp_lsn *l = tp->lsn[i];
		if (l->proto != SW_PROTO_UDP || l->rcvbuf <= 0)
			continue;
		size_t q = (size_t)l->rcvbuf / 2;
		if (!min || q < min)
			min = q;
	}
	return min;
}
