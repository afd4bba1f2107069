/* sipbench: closed-loop REGISTER load generator over UDP.
 *
 * S sockets (sources), C outstanding requests in total, each slot owning a
 * disjoint set of users so no two requests for one AOR are ever in flight
 * (a registrar may rightly refuse out-of-order CSeqs, RFC 3261 §10.3 step 7).
 * Each user keeps one Call-ID and an increasing CSeq: the load is phones
 * refreshing their registration. Batches with sendmmsg/recvmmsg; the branch
 * carries (socket, slot, sequence) so a reply is matched without a table
 * lookup. Reports REGISTER->200 pairs/s, latency percentiles and the
 * generator's own CPU time (so a saturated generator is visible).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "latency.h"

#define BATCH 64
#define MSG_MAX 1024
#define MAX_SOCKS 256

struct slot {
	uint64_t sent_ns;       /* 0: idle */
	uint32_t seq;
	uint32_t user_next;     /* index into this slot's users */
};

struct sock {
	int fd;
	struct sockaddr_in local;
	char ip[INET_ADDRSTRLEN];
	unsigned nslots;
	struct slot *slots;
};

struct opts {
	struct sockaddr_in dest;
	const char *realm;
	unsigned socks, conc, users, addrs;
	double duration, warmup, timeout;
	unsigned expires;
};

static uint64_t n_ok, n_other, n_timeout, n_sent, n_stray;
static uint64_t by_status[700];  /* final answers by status code */
static uint32_t *cseq;          /* per user */
static bool measuring;

static void usage(void)
{
	fprintf(stderr,
		"usage: sipbench -d HOST:PORT [-r REALM] [-s SOCKETS] [-c OUTSTANDING]\n"
		"                [-u USERS] [-a SOURCE_ADDRS] [-t SECONDS] [-w WARMUP]\n"
		"                [-T TIMEOUT_S] [-e EXPIRES]\n"
		"  REGISTER sip:REALM for users b0..b(USERS-1)@REALM in a closed loop.\n"
		"  Sources: SOCKETS UDP sockets on 127.0.0.1, or spread over\n"
		"  127.0.1.1..127.0.1.SOURCE_ADDRS with -a.\n");
	exit(2);
}

static unsigned parse_uint(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v > 100000000ul) {
		fprintf(stderr, "sipbench: bad %s: %s\n", what, s);
		exit(2);
	}
	return (unsigned)v;
}

static double parse_double(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || end == s || v < 0) {
		fprintf(stderr, "sipbench: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

/* user index served by slot (sock s, slot i): users are dealt round-robin
 * over all slots, so each user belongs to exactly one slot */
static unsigned slot_user(const struct opts *o, unsigned global_slot, uint32_t k)
{
	unsigned per = o->users / o->conc;
	return global_slot + (k % per) * o->conc;
}

static int build(const struct opts *o, const struct sock *sk, unsigned s,
		 unsigned i, unsigned global_slot, char *buf)
{
	struct slot *sl = &sk->slots[i];
	unsigned u = slot_user(o, global_slot, sl->user_next++);
	uint32_t cs = ++cseq[u];
	unsigned port = ntohs(sk->local.sin_port);
	return snprintf(buf, MSG_MAX,
		"REGISTER sip:%s SIP/2.0\r\n"
		"Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK-sb.%u.%u.%u;rport\r\n"
		"Max-Forwards: 70\r\n"
		"From: <sip:b%u@%s>;tag=sb%u\r\n"
		"To: <sip:b%u@%s>\r\n"
		"Call-ID: sb-%u@bench\r\n"
		"CSeq: %" PRIu32 " REGISTER\r\n"
		"Contact: <sip:b%u@%s:%u>\r\n"
		"Expires: %u\r\n"
		"User-Agent: sipbench\r\n"
		"Content-Length: 0\r\n\r\n",
		o->realm, sk->ip, port, s, i, sl->seq,
		u, o->realm, u, u, o->realm, u, cs, u, sk->ip, port, o->expires);
}

/* status code and (sock, slot, seq) from the branch of a response */
static bool parse_reply(const char *p, size_t n, unsigned *status,
			unsigned *s, unsigned *i, unsigned *seq)
{
	if (n < 12 || memcmp(p, "SIP/2.0 ", 8) != 0)
		return false;
	*status = (unsigned)(p[8] - '0') * 100 + (unsigned)(p[9] - '0') * 10 +
		  (unsigned)(p[10] - '0');
	const char *b = memmem(p, n, "branch=z9hG4bK-sb.", 18);
	if (!b)
		return false;
	b += 18;
	char tmp[64];
	size_t k = 0;
	while (b < p + n && k < sizeof tmp - 1 && (b[0] == '.' || (b[0] >= '0' && b[0] <= '9')))
		tmp[k++] = *b++;
	tmp[k] = 0;
	return sscanf(tmp, "%u.%u.%u", s, i, seq) == 3;
}

int main(int argc, char **argv)
{
	struct opts o = { .realm = "example.test", .socks = 8, .conc = 64,
			  .users = 10000, .addrs = 0, .duration = 10, .warmup = 2,
			  .timeout = 1.0, .expires = 3600 };
	bool have_dest = false;
	int c;
	while ((c = getopt(argc, argv, "d:r:s:c:u:a:t:w:T:e:h")) != -1) {
		switch (c) {
		case 'd': {
			char host[64];
			const char *colon = strrchr(optarg, ':');
			if (!colon || (size_t)(colon - optarg) >= sizeof host)
				usage();
			memcpy(host, optarg, (size_t)(colon - optarg));
			host[colon - optarg] = 0;
			o.dest.sin_family = AF_INET;
			o.dest.sin_port = htons((uint16_t)parse_uint(colon + 1, "port"));
			if (inet_pton(AF_INET, host, &o.dest.sin_addr) != 1)
				usage();
			have_dest = true;
			break;
		}
		case 'r': o.realm = optarg; break;
		case 's': o.socks = parse_uint(optarg, "sockets"); break;
		case 'c': o.conc = parse_uint(optarg, "outstanding"); break;
		case 'u': o.users = parse_uint(optarg, "users"); break;
		case 'a': o.addrs = parse_uint(optarg, "source addresses"); break;
		case 't': o.duration = parse_double(optarg, "duration"); break;
		case 'w': o.warmup = parse_double(optarg, "warmup"); break;
		case 'T': o.timeout = parse_double(optarg, "timeout"); break;
		case 'e': o.expires = parse_uint(optarg, "expires"); break;
		default: usage();
		}
	}
	if (!have_dest || !o.socks || o.socks > MAX_SOCKS || o.conc < o.socks ||
	    o.users < o.conc || o.addrs > 254)
		usage();

	cseq = calloc(o.users, sizeof *cseq);
	struct sock *socks = calloc(o.socks, sizeof *socks);
	if (!cseq || !socks)
		return 1;
	for (unsigned s = 0; s < o.socks; s++) {
		struct sock *sk = &socks[s];
		sk->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		if (sk->fd < 0) {
			perror("socket");
			return 1;
		}
		int sz = 4 << 20;
		setsockopt(sk->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
		setsockopt(sk->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
		sk->local.sin_family = AF_INET;
		if (o.addrs)
			sk->local.sin_addr.s_addr = htonl(0x7f000100u + 1 + s % o.addrs);
		else
			sk->local.sin_addr.s_addr = htonl(0x7f000001u);
		if (bind(sk->fd, (struct sockaddr *)&sk->local, sizeof sk->local) < 0 ||
		    connect(sk->fd, (struct sockaddr *)&o.dest, sizeof o.dest) < 0) {
			perror("bind/connect");
			return 1;
		}
		socklen_t len = sizeof sk->local;
		getsockname(sk->fd, (struct sockaddr *)&sk->local, &len);
		inet_ntop(AF_INET, &sk->local.sin_addr, sk->ip, sizeof sk->ip);
		sk->nslots = o.conc / o.socks + (s < o.conc % o.socks);
		sk->slots = calloc(sk->nslots, sizeof *sk->slots);
		if (!sk->slots)
			return 1;
	}

	static char sbuf[BATCH][MSG_MAX], rbuf[BATCH][MSG_MAX];
	struct mmsghdr smsg[BATCH], rmsg[BATCH];
	struct iovec siov[BATCH], riov[BATCH];
	for (unsigned k = 0; k < BATCH; k++) {
		riov[k] = (struct iovec){ rbuf[k], MSG_MAX };
		memset(&rmsg[k], 0, sizeof rmsg[k]);
		rmsg[k].msg_hdr.msg_iov = &riov[k];
		rmsg[k].msg_hdr.msg_iovlen = 1;
		memset(&smsg[k], 0, sizeof smsg[k]);
		smsg[k].msg_hdr.msg_iov = &siov[k];
		smsg[k].msg_hdr.msg_iovlen = 1;
	}
	struct pollfd *pfd = calloc(o.socks, sizeof *pfd);
	if (!pfd)
		return 1;
	for (unsigned s = 0; s < o.socks; s++)
		pfd[s] = (struct pollfd){ .fd = socks[s].fd, .events = POLLIN };

	uint64_t t0 = now_ns();
	uint64_t t_measure = t0 + (uint64_t)(o.warmup * 1e9);
	uint64_t t_end = t_measure + (uint64_t)(o.duration * 1e9);
	uint64_t timeout_ns = (uint64_t)(o.timeout * 1e9);
	double cpu0 = 0;
	uint64_t last_scan = t0;

	for (;;) {
		uint64_t now = now_ns();
		if (!measuring && now >= t_measure) {
			measuring = true;
			memset(hist, 0, sizeof hist);
			n_ok = n_other = n_timeout = n_sent = n_stray = 0;
			memset(by_status, 0, sizeof by_status);
			cpu0 = cpu_s();
		}
		if (now >= t_end)
			break;
		/* (re)fill idle and timed-out slots, one sendmmsg per socket */
		bool scan = now - last_scan > 10000000ull;   /* timeouts every 10 ms */
		if (scan)
			last_scan = now;
		unsigned gbase = 0;
		for (unsigned s = 0; s < o.socks; s++) {
			struct sock *sk = &socks[s];
			unsigned n = 0;
			for (unsigned i = 0; i < sk->nslots; i++) {
				struct slot *sl = &sk->slots[i];
				if (sl->sent_ns && !(scan && now - sl->sent_ns > timeout_ns))
					continue;
				if (sl->sent_ns)
					n_timeout++;
				sl->seq++;
				int len = build(&o, sk, s, i, gbase + i, sbuf[n]);
				siov[n] = (struct iovec){ sbuf[n], (size_t)len };
				sl->sent_ns = now;
				if (++n == BATCH) {
					int r = sendmmsg(sk->fd, smsg, n, 0);
					n_sent += r > 0 ? (unsigned)r : 0;
					n = 0;
				}
			}
			if (n) {
				int r = sendmmsg(sk->fd, smsg, n, 0);
				n_sent += r > 0 ? (unsigned)r : 0;
			}
			gbase += sk->nslots;
		}
		int pr = poll(pfd, o.socks, 5);
		if (pr <= 0)
			continue;
		for (unsigned s = 0; s < o.socks; s++) {
			if (!(pfd[s].revents & POLLIN))
				continue;
			struct sock *sk = &socks[s];
			int r = recvmmsg(sk->fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
			uint64_t t = now_ns();
			for (int k = 0; k < r; k++) {
				unsigned st, ss, si, sq;
				if (!parse_reply(rbuf[k], rmsg[k].msg_len, &st, &ss, &si, &sq) ||
				    ss != s || si >= sk->nslots) {
					n_stray++;
					continue;
				}
				struct slot *sl = &sk->slots[si];
				if (st < 200)
					continue;
				if (sq != sl->seq || !sl->sent_ns) {
					n_stray++;      /* late reply to a timed-out request */
					continue;
				}
				if (st < 700)
					by_status[st]++;
				if (st == 200) {
					n_ok++;
					record(t - sl->sent_ns);
				} else {
					n_other++;
				}
				sl->sent_ns = 0;
			}
		}
	}
	double secs = (double)(now_ns() - t_measure) / 1e9;
	double cpu = cpu_s() - cpu0;
	printf("sipbench: %s:%u realm=%s sockets=%u outstanding=%u users=%u duration=%.1fs\n",
	       inet_ntoa(o.dest.sin_addr), ntohs(o.dest.sin_port), o.realm, o.socks,
	       o.conc, o.users, secs);
	printf("register_200_per_s=%.0f ok=%" PRIu64 " non200=%" PRIu64
	       " timeouts=%" PRIu64 " stray=%" PRIu64 " sent=%" PRIu64 "\n",
	       (double)n_ok / secs, n_ok, n_other, n_timeout, n_stray, n_sent);
	if (n_other) {
		printf("non200_by_status:");
		for (unsigned k = 100; k < 700; k++)
			if (by_status[k] && k != 200)
				printf(" %u=%" PRIu64, k, by_status[k]);
		printf("\n");
	}
	printf("latency_ms p50=%.3f p90=%.3f p99=%.3f p999=%.3f max<=%.3f\n",
	       pct(n_ok, 0.50), pct(n_ok, 0.90), pct(n_ok, 0.99), pct(n_ok, 0.999),
	       pct(n_ok, 1.0));
	printf("generator_cpu_s=%.2f (%.0f%% of one core)\n", cpu, 100.0 * cpu / secs);
	return n_ok ? 0 : 1;
}
