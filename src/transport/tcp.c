/* TCP: a SO_REUSEPORT listener per worker; accepted connections belong to
 * the worker. Content-Length framing by sip_frame (RFC 3261 §18.3), CRLF
 * keepalives (RFC 5626 §3.5.1), bounded input and output per connection. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/clock.h"
#include "sip/parse.h"
#include "transport/tp-int.h"

#define TCP_BACKLOG 1024
#define TCP_ACCEPT_BUDGET 64
#define TCP_READ_BUDGET 4
#define TCP_IN_INITIAL 4096
#define TCP_WRITE_IOV 16

enum close_why { CLOSE_PEER, CLOSE_IDLE, CLOSE_FRAME, CLOSE_OUTBUF, CLOSE_LOCAL };

/* ---- connections per peer IP ---- */

static void ip_key(const struct sockaddr *sa, uint8_t key[16])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		/* IPv4 as v4-mapped, so both spellings count together. */
		memset(key, 0, 10);
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &in->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		memcpy(key, &in6->sin6_addr, 16);
	}
}

static struct tp_ipent *ip_find(struct sw_tp *tp, const uint8_t key[16], bool create)
{
	uint32_t h = (uint32_t)sw_siphash(&tp->hkey, key, 16);
	for (uint32_t i = h & tp->ip_mask;; i = (i + 1) & tp->ip_mask) {
		struct tp_ipent *e = &tp->ip[i];
		if (e->n == 0) {
			if (!create)
				return NULL;
			memcpy(e->ip, key, 16);
			e->h = h;
			return e;
		}
		if (e->h == h && memcmp(e->ip, key, 16) == 0)
			return e;
	}
}

static unsigned ip_count(struct sw_tp *tp, const uint8_t key[16])
{
	const struct tp_ipent *e = ip_find(tp, key, false);
	return e ? e->n : 0;
}

static void ip_inc(struct sw_tp *tp, const uint8_t key[16])
{
	/* Never full: at most tcp_max_conns live IPs in 2x as many buckets. */
	ip_find(tp, key, true)->n++;
}

static void ip_dec(struct sw_tp *tp, const uint8_t key[16])
{
	struct tp_ipent *e = ip_find(tp, key, false);
	if (!e || --e->n > 0)
		return;
	/* Backward-shift deletion keeps probe chains intact without tombstones. */
	uint32_t i = (uint32_t)(e - tp->ip), j = i;
	for (;;) {
		j = (j + 1) & tp->ip_mask;
		struct tp_ipent *f = &tp->ip[j];
		if (f->n == 0)
			break;
		uint32_t k = f->h & tp->ip_mask;
		/* Move f back unless its home k lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stays) {
			tp->ip[i] = *f;
			i = j;
		}
	}
	tp->ip[i].n = 0;
}

/* ---- connection table ---- */

static struct tp_conn *conn_lookup(struct sw_tp *tp, uint32_t id)
{
	uint32_t idx = id & ((1u << tp->slot_bits) - 1);
	uint32_t gen = (id & 0xffffffu) >> tp->slot_bits;
	if (id == 0 || idx >= tp->conf.tcp_max_conns)
		return NULL;
	const struct tp_slot *s = &tp->slots[idx];
	if (!s->c || s->gen != gen)
		return NULL;
	return s->c;
}

static void conn_free(struct tp_conn *c)
{
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	if (c->out)
		evbuffer_free(c->out);
	free(c->in);
	free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_tp *tp = arg;
	struct tp_conn *c = tp->dead;
	tp->dead = NULL;
	while (c) {
		struct tp_conn *next = c->next_dead;
		conn_free(c);
		c = next;
	}
}

/* Close now (the peer sees FIN, the id stops resolving) but free later:
 * we may be inside one of c's callbacks (STYLE.md §6). */
static void conn_close(struct tp_conn *c, enum close_why why)
{
	struct sw_tp *tp = c->tp;
	if (c->closing)
		return;
	c->closing = true;
	switch (why) {
	case CLOSE_PEER: tp->st.tcp_closed_peer++; break;
	case CLOSE_IDLE: tp->st.tcp_closed_idle++; break;
	case CLOSE_FRAME: tp->st.tcp_closed_frame++; break;
	case CLOSE_OUTBUF: tp->st.tcp_closed_outbuf++; break;
	case CLOSE_LOCAL: break;
	}
	event_del(c->rev);
	event_del(c->wev);
	close(c->fd);
	c->fd = -1;
	if (c->outgoing) {
		struct tp_conn **pp = &tp->out;
		while (*pp && *pp != c)
			pp = &(*pp)->next_out;
		if (*pp)
			*pp = c->next_out;
	}

	uint32_t idx = c->id & ((1u << tp->slot_bits) - 1);
	struct tp_slot *s = &tp->slots[idx];
	s->c = NULL;
	/* Never 0, so no id is 0. The free FIFO makes an id come back only
	 * after gen_max * tcp_max_conns connections. */
	s->gen = s->gen >= tp->gen_max ? 1 : s->gen + 1;
	tp->free_q[(tp->free_head + tp->free_count) % tp->conf.tcp_max_conns] = idx;
	tp->free_count++;
	tp->nconn--;
	ip_dec(tp, c->ipkey);

	c->next_dead = tp->dead;
	tp->dead = c;
	event_active(tp->reap, EV_TIMEOUT, 0);
}

/* ---- output ---- */

/* Write what the socket takes from c->out. 0, or -errno after closing. */
static int conn_drain(struct tp_conn *c)
{
	while (evbuffer_get_length(c->out) > 0) {
		struct evbuffer_iovec v[TCP_WRITE_IOV];
		int nv = evbuffer_peek(c->out, -1, NULL, v, TCP_WRITE_IOV);
		if (nv > TCP_WRITE_IOV)
			nv = TCP_WRITE_IOV;
		struct iovec iov[TCP_WRITE_IOV];
		for (int i = 0; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)nv };
		/* sendmsg, not writev: MSG_NOSIGNAL, no SIGPIPE from a gone peer. */
		ssize_t n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			int err = -errno;
			conn_close(c, CLOSE_PEER);
			return err;
		}
		evbuffer_drain(c->out, (size_t)n);
	}
	if (evbuffer_get_length(c->out) > 0)
		event_add(c->wev, NULL);
	else
		event_del(c->wev);
	return 0;
}

/* An outgoing connection that will not come up: closed, then reported
 * (we are in the loop here, never inside sw_tp_connect). */
static void conn_connect_failed(struct tp_conn *c, int err)
{
	struct sw_tp *tp = c->tp;
	struct sockaddr_storage peer = c->peer;
	socklen_t plen = c->peer_len;
	uint32_t id = c->id;
	tp->st.tcp_connect_failed++;
	conn_close(c, CLOSE_LOCAL);
	if (tp->on_connect_err)
		tp->on_connect_err(tp->ctx, id, (const struct sockaddr *)&peer, plen, err);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tp_conn *c = arg;
	if (c->connecting) {
		if (what & EV_TIMEOUT) {
			conn_connect_failed(c, -ETIMEDOUT);
			return;
		}
		int soerr = 0;
		socklen_t l = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0)
			soerr = errno;
		if (soerr == EINPROGRESS || soerr == EALREADY)
			return;
		if (soerr != 0) {
			conn_connect_failed(c, -soerr);
			return;
		}
		/* established: the idle timeout and reads start now */
		c->connecting = false;
		event_del(c->wev);
		if (event_add(c->rev, c->tp->idle_tv) < 0) {
			conn_connect_failed(c, -ENOMEM);
			return;
		}
		socklen_t llen = sizeof(c->local);
		(void)getsockname(fd, (struct sockaddr *)&c->local, &llen);
	}
	conn_drain(c);
}

static int conn_send(struct tp_conn *c, const char *buf, size_t len)
{
	size_t queued = evbuffer_get_length(c->out);
	if (c->connecting) {
		/* written once the connection is up (conn_write_cb) */
		if (queued + len > c->tp->conf.tcp_out_max)
			return -ENOBUFS;
		return evbuffer_add(c->out, buf, len) < 0 ? -ENOMEM : 0;
	}
	if (queued == 0) {
		/* Common case: nothing pending, the kernel takes it all. */
		while (len > 0) {
			ssize_t n = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				int err = -errno;
				conn_close(c, CLOSE_PEER);
				return err;
			}
			buf += n;
			len -= (size_t)n;
		}
		if (len == 0)
			return 0;
	}
	if (queued + len > c->tp->conf.tcp_out_max) {
		/* A peer that does not read must not grow our memory. */
		conn_close(c, CLOSE_OUTBUF);
		return -ENOBUFS;
	}
	if (evbuffer_add(c->out, buf, len) < 0)
		return -ENOMEM;
	return conn_drain(c);
}

int tp_tcp_send(struct sw_tp *tp, uint32_t conn_id, const char *buf, size_t len)
{
	if (sw_tp_conn_worker(conn_id) != tp->conf.worker_id)
		return -EXDEV;
	struct tp_conn *c = conn_lookup(tp, conn_id);
	if (!c || c->closing)
		return -ENOTCONN;
	if (len == 0)
		return 0;
	return conn_send(c, buf, len);
}

int tp_tcp_close(struct sw_tp *tp, uint32_t conn_id)
{
	if (sw_tp_conn_worker(conn_id) != tp->conf.worker_id)
		return -EXDEV;
	struct tp_conn *c = conn_lookup(tp, conn_id);
	if (!c || c->closing)
		return -ENOTCONN;
	/* Safe inside the connection's own delivery: the free is deferred. */
	conn_close(c, CLOSE_LOCAL);
	return 0;
}

/* ---- input ---- */

static void deliver(struct tp_conn *c, const char *buf, size_t len)
{
	struct sw_tp *tp = c->tp;
	c->delivered++;
	struct sw_rx rx = {
		.buf = buf,
		.len = len,
		.local = (const struct sockaddr *)&c->local,
	};
	rx.from.proto = SW_PROTO_TCP;
	rx.from.reliable = true;
	rx.from.conn_id = c->id;
	rx.from.fd = -1;
	rx.from.alen = c->peer_len;
	memcpy(&rx.from.addr, &c->peer, c->peer_len);
	tp->st.tcp_rx++;
	tp->on_rx(tp->ctx, &rx);
}

/* True when b[0..n) could still become "\r\n\r\n". */
static bool ping_prefix(const char *b, size_t n)
{
	return n < 4 && memcmp(b, "\r\n\r\n", n) == 0;
}

/* sip_frame, but a CR as the last byte received may still be followed by
 * its LF: a segment boundary inside a CRLF is not a bare CR. */
static ssize_t frame(struct sw_tp *tp, const char *b, size_t n)
{
	struct sip_perr err;
	ssize_t m = sip_frame(b, n, &tp->conf.limits, &err);
	if (m == -EBADMSG && n > 1 && b[n - 1] == '\r' &&
	    sip_frame(b, n - 1, &tp->conf.limits, &err) == -EAGAIN)
		return -EAGAIN;
	return m;
}

/* End of the header section (index after the empty line) searched from
 * `from`, or 0 when it has not arrived. */
static size_t hdr_end(const char *b, size_t n, size_t from)
{
	for (size_t i = from; i + 1 < n; i++) {
		if (b[i] != '\n')
			continue;
		if (b[i + 1] == '\n')
			return i + 2;
		if (b[i + 1] == '\r' && i + 2 < n && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static bool is_ws(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Content-Length of a complete header section b[0..h), only as a hint of
 * when to frame again: 0 (no hint) unless there is exactly one plain
 * "Content-Length"/"l" field with a decimal value on one line. sip_frame
 * stays the judge of the message. */
static size_t cl_hint(const char *b, size_t h)
{
	size_t hint = 0;
	bool seen = false;
	size_t i = 0;
	while (i < h) {
		const char *nl = memchr(b + i, '\n', h - i);
		size_t eol = nl ? (size_t)(nl - b) : h;
		size_t j = i, name = i;
		while (j < eol && b[j] != ':' && !is_ws(b[j]))
			j++;
		size_t nlen = j - name;
		bool cl = !is_ws(b[i]) &&
			  ((nlen == 14 && strncasecmp(b + name, "Content-Length", 14) == 0) ||
			   (nlen == 1 && (b[name] == 'l' || b[name] == 'L')));
		if (cl) {
			while (j < eol && is_ws(b[j]))
				j++;
			if (j >= eol || b[j] != ':' || seen)
				return 0;
			j++;
			while (j < eol && is_ws(b[j]))
				j++;
			size_t v = 0, digits = 0;
			while (j < eol && b[j] >= '0' && b[j] <= '9' && digits < 9) {
				v = v * 10 + (size_t)(b[j++] - '0');
				digits++;
			}
			while (j < eol && (is_ws(b[j]) || b[j] == '\r'))
				j++;
			/* Not on one line (folded, RFC 3261 §7.3.1) or junk. */
			if (digits == 0 || j != eol || (eol + 1 < h && is_ws(b[eol + 1])))
				return 0;
			seen = true;
			hint = v;
		}
		i = eol + 1;
	}
	return seen ? h + hint : 0;
}

/* Frame and deliver what is in c->in; keep the incomplete tail. */
static void conn_process(struct tp_conn *c)
{
	struct sw_tp *tp = c->tp;
	size_t pos = 0;
	while (pos < c->in_len && !c->closing) {
		const char *b = c->in + pos;
		size_t n = c->in_len - pos;
		/* Between messages. RFC 5626 §3.5.1: CRLFCRLF is a ping,
		 * answered by one CRLF; RFC 3261 §7.5: other CRLFs before a
		 * start-line are ignored. */
		if (n >= 4 && memcmp(b, "\r\n\r\n", 4) == 0) {
			tp->st.tcp_pings++;
			pos += 4;
			conn_send(c, "\r\n", 2);
			continue;
		}
		if (b[0] == '\r' || b[0] == '\n') {
			if (ping_prefix(b, n))
				break;  /* maybe the start of a ping: wait */
			pos++;
			continue;
		}
		/* A peer dribbling a message byte by byte must not make us
		 * re-frame it from the start each time (quadratic work):
		 * frame only once the header section is complete, and then
		 * once the hinted body length is there. */
		if (c->scan_hdr == 0) {
			size_t h = hdr_end(b, n, c->scanned > 2 ? c->scanned - 2 : 0);
			if (h == 0) {
				c->scanned = n;
				if (n >= tp->conf.limits.max_msg) {
					conn_close(c, CLOSE_FRAME);
					return;
				}
				break;
			}
			c->scan_hdr = h;
			c->need = cl_hint(b, h);
		}
		ssize_t m = n >= c->need ? frame(tp, b, n) : -EAGAIN;
		if (m == -EAGAIN) {
			if (n >= tp->conf.limits.max_msg) {
				/* Cannot complete within max_msg. */
				conn_close(c, CLOSE_FRAME);
				return;
			}
			break;
		}
		if (m <= 0 || (size_t)m > n) {
			/* RFC 4475 ncl, mcl01: a stream cannot resynchronise
			 * after a bad Content-Length; close it. */
			conn_close(c, CLOSE_FRAME);
			return;
		}
		pos += (size_t)m;
		c->scanned = c->scan_hdr = c->need = 0;
		deliver(c, b, (size_t)m);
	}
	if (c->closing)
		return;
	if (pos > 0) {
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
}

/* Room to read into: grow by doubling up to max_msg. 0 or -errno. */
static int conn_in_room(struct tp_conn *c)
{
	size_t max = c->tp->conf.limits.max_msg;
	if (c->in_len < c->in_cap)
		return 0;
	if (c->in_cap >= max)
		return -EMSGSIZE;
	size_t cap = c->in_cap ? c->in_cap * 2 : TCP_IN_INITIAL;
	if (cap > max)
		cap = max;
	char *p = realloc(c->in, cap);
	if (!p)
		return -ENOMEM;
	c->in = p;
	c->in_cap = cap;
	return 0;
}

/* Slowloris: the idle timeout restarts with every byte, so a peer sending
 * one byte a second holds a connection forever. A message that has begun
 * must be complete within tcp_message_s. progressed: a message was
 * delivered, so what is left in the buffer began just now. */
static int message_deadline(struct tp_conn *c, bool progressed)
{
	unsigned limit = c->tp->conf.tcp_message_s;
	if (c->in_len == 0 || limit == 0) {
		c->msg_start_ms = 0;
		return 0;
	}
	uint64_t now = sw_now_ms();
	if (progressed || c->msg_start_ms == 0) {
		c->msg_start_ms = now;
		return 0;
	}
	if (now - c->msg_start_ms <= (uint64_t)limit * 1000)
		return 0;
	conn_close(c, CLOSE_IDLE);
	return -ETIMEDOUT;
}

static void conn_read(struct tp_conn *c, int fd)
{
	for (unsigned round = 0; round < TCP_READ_BUDGET && !c->closing; round++) {
		int rc = conn_in_room(c);
		if (rc < 0) {
			conn_close(c, rc == -EMSGSIZE ? CLOSE_FRAME : CLOSE_LOCAL);
			return;
		}
		size_t room = c->in_cap - c->in_len;
		ssize_t n = recv(fd, c->in + c->in_len, room, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_close(c, CLOSE_PEER);
			return;
		}
		if (n == 0) {
			conn_close(c, CLOSE_PEER);
			return;
		}
		c->in_len += (size_t)n;
		uint64_t before = c->delivered;
		conn_process(c);
		if (!c->closing && message_deadline(c, before != c->delivered) < 0)
			return;
		if ((size_t)n < room)
			return;
	}
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tp_conn *c = arg;
	struct sw_tp *tp = c->tp;
	if (what & EV_TIMEOUT) {
		/* EV_PERSIST re-arms the timeout on every read, so this fires
		 * only after tcp_idle_s without input. */
		conn_close(c, CLOSE_IDLE);
		return;
	}
	conn_read(c, fd);
	/* Datagrams queued while handling these messages (a request
	 * forwarded over UDP) leave now, as after a UDP receive batch. */
	tp_udp_flush(tp);
}

/* ---- accept ---- */

/* A connection on fd in the table: its events, its id. NULL (fd closed)
 * when out of memory. The caller checked the limits. */
static struct tp_conn *conn_register(struct sw_tp *tp, int fd, const struct sockaddr_storage *peer,
				     socklen_t plen, const uint8_t key[16], bool outgoing)
{
	struct tp_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	c->tp = tp;
	c->fd = fd;
	c->outgoing = outgoing;
	c->connecting = outgoing;
	memcpy(&c->peer, peer, plen);
	c->peer_len = plen;
	memcpy(c->ipkey, key, 16);
	c->rev = event_new(tp->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(tp->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	c->out = evbuffer_new();
	/* an outgoing connection waits for writability (connected) under
	 * the connect timeout; reads start once it is up */
	int arm = outgoing ? event_add(c->wev, tp->connect_tv) : event_add(c->rev, tp->idle_tv);
	if (!c->rev || !c->wev || !c->out || arm < 0) {
		close(fd);
		conn_free(c);
		return NULL;
	}
	int one = 1;
	/* Replies are whole messages: do not hold them back for Nagle. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	uint32_t idx = tp->free_q[tp->free_head];
	tp->free_head = (tp->free_head + 1) % tp->conf.tcp_max_conns;
	tp->free_count--;
	struct tp_slot *s = &tp->slots[idx];
	s->c = c;
	c->id = tp->conf.worker_id << 24 | s->gen << tp->slot_bits | idx;
	tp->nconn++;
	ip_inc(tp, key);
	if (outgoing) {
		c->next_out = tp->out;
		tp->out = c;
	}
	return c;
}

static void conn_accept(struct tp_lsn *l, int fd, const struct sockaddr_storage *peer,
			socklen_t plen)
{
	struct sw_tp *tp = l->tp;
	uint8_t key[16];
	ip_key((const struct sockaddr *)peer, key);
	if (tp->nconn >= tp->conf.tcp_max_conns || tp->free_count == 0) {
		tp->st.tcp_refused_max++;
		close(fd);
		return;
	}
	if (ip_count(tp, key) >= tp->conf.tcp_max_conns_per_ip) {
		tp->st.tcp_refused_ip++;
		close(fd);
		return;
	}
	struct tp_conn *c = conn_register(tp, fd, peer, plen, key, false);
	if (!c)
		return;
	socklen_t llen = sizeof(c->local);
	if (getsockname(fd, (struct sockaddr *)&c->local, &llen) < 0)
		memcpy(&c->local, &l->addr, sizeof(c->local));
	tp->st.tcp_accepted++;
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return false;
	if (b->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return alen >= sizeof(*x) && x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

int tp_tcp_connect(struct sw_tp *tp, const struct sockaddr *addr, socklen_t alen,
		   uint32_t *conn_id)
{
	if ((addr->sa_family != AF_INET || alen < sizeof(struct sockaddr_in)) &&
	    (addr->sa_family != AF_INET6 || alen < sizeof(struct sockaddr_in6)))
		return -EAFNOSUPPORT;
	/* RFC 3261 §18.1.1: reuse a connection to the same address and port */
	for (struct tp_conn *c = tp->out; c; c = c->next_out) {
		if (!c->closing && same_addr(&c->peer, c->peer_len, addr)) {
			tp->st.tcp_connect_reused++;
			*conn_id = c->id;
			return 0;
		}
	}
	if (tp->nconn >= tp->conf.tcp_max_conns || tp->free_count == 0)
		return -EMFILE;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, addr, alen) < 0 && errno != EINPROGRESS) {
		int err = -errno;
		close(fd);
		tp->st.tcp_connect_failed++;
		return err;
	}
	struct sockaddr_storage peer;
	memset(&peer, 0, sizeof(peer));
	memcpy(&peer, addr, alen);
	uint8_t key[16];
	ip_key(addr, key);
	struct tp_conn *c = conn_register(tp, fd, &peer, alen, key, true);
	if (!c)
		return -ENOMEM;
	tp->st.tcp_connects++;
	*conn_id = c->id;
	return 0;
}

static void lsn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tp_lsn *l = arg;
	event_add(l->ev, NULL);
}

static void lsn_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tp_lsn *l = arg;
	for (unsigned i = 0; i < TCP_ACCEPT_BUDGET; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int cfd = accept4(fd, (struct sockaddr *)&peer, &plen,
				  SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: a level-triggered
				 * listener would spin; pause it briefly. */
				static const struct timeval pause = { 0, 100000 };
				event_del(l->ev);
				event_add(l->resume, &pause);
			}
			return;
		}
		if (plen > sizeof(peer)) {
			close(cfd);
			continue;
		}
		conn_accept(l, cfd, &peer, plen);
	}
}

int tp_tcp_open(struct sw_tp *tp, struct tp_lsn *l, const struct sockaddr *addr, socklen_t alen)
{
	int fd = tp_socket_bind(SOCK_STREAM, addr, alen);
	if (fd < 0)
		return fd;
	l->fd = fd;
	if (listen(fd, TCP_BACKLOG) < 0)
		return -errno;
	l->alen = sizeof(l->addr);
	if (getsockname(fd, (struct sockaddr *)&l->addr, &l->alen) < 0)
		return -errno;
	l->ev = event_new(tp->base, fd, EV_READ | EV_PERSIST, lsn_accept_cb, l);
	l->resume = evtimer_new(tp->base, lsn_resume_cb, l);
	if (!l->ev || !l->resume || event_add(l->ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* ---- lifetime ---- */

int tp_tcp_init(struct sw_tp *tp)
{
	unsigned n = tp->conf.tcp_max_conns;
	tp->slot_bits = 1;
	while ((1u << tp->slot_bits) < n)
		tp->slot_bits++;
	tp->gen_max = (1u << (24 - tp->slot_bits)) - 1;
	tp->slots = calloc(n, sizeof(*tp->slots));
	tp->free_q = calloc(n, sizeof(*tp->free_q));
	if (!tp->slots || !tp->free_q)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		tp->slots[i].gen = 1;   /* ids are never 0 */
		tp->free_q[i] = i;
	}
	tp->free_head = 0;
	tp->free_count = n;

	uint32_t cap = 16;
	while (cap < 2 * n)
		cap <<= 1;
	tp->ip = calloc(cap, sizeof(*tp->ip));
	if (!tp->ip)
		return -ENOMEM;
	tp->ip_mask = cap - 1;
	int rc = sw_hkey_random(&tp->hkey);
	if (rc < 0)
		return rc;

	tp->reap = event_new(tp->base, -1, 0, reap_cb, tp);
	if (!tp->reap)
		return -ENOMEM;
	if (tp->conf.tcp_idle_s > 0) {
		/* Every connection has the same timeout: libevent keeps a
		 * common-timeout queue instead of a heap entry each. */
		struct timeval tv = { (time_t)tp->conf.tcp_idle_s, 0 };
		tp->idle_tv = event_base_init_common_timeout(tp->base, &tv);
	}
	struct timeval ctv = { (time_t)(tp->conf.tcp_connect_ms / 1000),
			       (suseconds_t)(tp->conf.tcp_connect_ms % 1000) * 1000 };
	tp->connect_tv = event_base_init_common_timeout(tp->base, &ctv);
	return 0;
}

void tp_tcp_fini(struct sw_tp *tp)
{
	if (tp->slots) {
		for (unsigned i = 0; i < tp->conf.tcp_max_conns; i++)
			if (tp->slots[i].c)
				conn_close(tp->slots[i].c, CLOSE_LOCAL);
	}
	if (tp->reap) {
		reap_cb(-1, 0, tp);
		event_free(tp->reap);
	}
	free(tp->slots);
	free(tp->free_q);
	free(tp->ip);
}
