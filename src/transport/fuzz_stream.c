/* libFuzzer target (STYLE.md §11, issue 7): the TCP transport's own input
 * path — conn_process with its incremental header scan, Content-Length
 * hint, CRLF keepalives and max_message closes — over arbitrary chunking.
 * tcp.c is compiled into this file so its static functions are reachable;
 * a real connection is accepted on one end of a socketpair.
 *
 * The first 8 bytes are chunk sizes; the rest is the stream. It is fed
 * twice: in those chunks, and in the largest pieces the input buffer
 * takes. What is delivered (every framed message, in order) and whether
 * the connection was closed must not depend on where the segments were
 * cut; a difference traps. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "transport/tcp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCHUNK 8
#define OUT_CAP (1u << 18)

struct sink {
	uint8_t *buf;
	size_t len;
	unsigned n;
};

static void on_rx(void *ctx, const struct sw_rx *rx)
{
	struct sink *s = ctx;
	uint32_t l = (uint32_t)rx->len;
	s->n++;
	if (s->len + 4 + rx->len > OUT_CAP)
		return;
	memcpy(s->buf + s->len, &l, 4);
	memcpy(s->buf + s->len + 4, rx->buf, rx->len);
	s->len += 4 + rx->len;
}

static struct event_base *base;
static struct sw_tp *tp;
static struct tp_lsn lsn;
static struct sink sink;

static void init(void)
{
	struct sw_tp_conf conf;
	sw_tp_conf_default(&conf);
	conf.limits.max_msg = 4096;       /* small, so the close paths are reached */
	conf.tcp_max_conns = 4;
	base = event_base_new();
	sink.buf = malloc(OUT_CAP);
	tp = base && sink.buf ? sw_tp_new(base, &conf, on_rx, &sink) : NULL;
	if (!tp)
		abort();
	lsn.tp = tp;
	lsn.proto = SW_PROTO_TCP;
}

/* Feed in[0..len) cut by cuts (NULL: as much as fits each time). Returns
 * whether the connection was closed; the deliveries land in sink. */
static bool feed(const uint8_t *cuts, const char *in, size_t len)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(5060),
				    .sin_addr.s_addr = htonl(0x7f000001) };
	sink.len = 0;
	sink.n = 0;
	conn_accept(&lsn, sv[0], (const struct sockaddr_storage *)(const void *)&peer, sizeof(peer));
	struct tp_conn *c = NULL;
	for (unsigned i = 0; i < tp->conf.tcp_max_conns && !c; i++)
		if (tp->slots[i].c && tp->slots[i].c->fd == sv[0])
			c = tp->slots[i].c;
	if (!c)
		abort();
	size_t off = 0;
	unsigned ci = 0;
	char junk[4096];
	while (off < len && !c->closing) {
		if (conn_in_room(c) < 0) {
			conn_close(c, CLOSE_FRAME);   /* as conn_read does */
			break;
		}
		size_t room = c->in_cap - c->in_len;
		size_t n = cuts ? (size_t)cuts[ci++ % NCHUNK] + 1 : room;
		if (n > room)
			n = room;
		if (n > len - off)
			n = len - off;
		memcpy(c->in + c->in_len, in + off, n);
		c->in_len += n;
		off += n;
		conn_process(c);
		while (recv(sv[1], junk, sizeof(junk), 0) > 0)   /* keepalive answers */
			;
	}
	bool closed = c->closing;
	if (!closed)
		conn_close(c, CLOSE_LOCAL);
	event_base_loop(base, EVLOOP_NONBLOCK);   /* the reap event frees c */
	close(sv[1]);
	return closed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *first;
	if (!tp) {
		init();
		first = malloc(OUT_CAP);
		if (!first)
			abort();
	}
	if (size < NCHUNK || size > 65536)
		return 0;
	const char *in = (const char *)data + NCHUNK;
	size_t len = size - NCHUNK;

	bool closed1 = feed(data, in, len);
	size_t len1 = sink.len;
	unsigned n1 = sink.n;
	memcpy(first, sink.buf, len1);
	bool closed2 = feed(NULL, in, len);
	if (closed1 != closed2 || n1 != sink.n || len1 != sink.len || memcmp(first, sink.buf, len1) != 0)
		__builtin_trap();
	return 0;
}
