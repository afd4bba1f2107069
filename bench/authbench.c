/* authbench: digest-authenticated REGISTER load over UDP, closed loop or
 * open loop at a fixed rate (issues 3 and 6, "Performance").
 *
 * Two modes, per algorithm (MD5, SHA-256, SHA-512-256, each optionally
 * -sess; qop=auth):
 *   pair     every unit is a full challenge: REGISTER → 401, then REGISTER
 *            with Authorization (nc=1) → 200. Two round trips; the latency
 *            is from the first send to the 200.
 *   refresh  every unit is one REGISTER reusing the user's last nonce with
 *            nc+1 → 200 (one round trip). A 401 (stale nonce, evicted
 *            slot, …) is answered at once with the new nonce and counted
 *            as "rechallenged"; the unit's latency then covers both legs.
 *
 * U users bU@REALM share one password (-P); each user keeps one Call-ID (per run), an
 * increasing CSeq and, in refresh mode, its own nonce and nonce-count. C
 * units are in flight over S sockets; each slot owns a disjoint set of
 * users, so one AOR never has two REGISTERs in flight. The Via branch
 * carries (socket, slot, sequence): replies are matched without a lookup,
 * late replies to timed-out requests are counted as stray.
 *
 * Closed loop (default): every slot starts its next unit as soon as the
 * last one ends. Open loop (-R RATE): unit k is scheduled at start +
 * k / RATE from the clock alone; every -i µs (or sooner, when replies wake
 * the loop) the units that are due go out on free slots. A unit that finds
 * all -c slots busy is skipped and counted, never waited for, so a slow
 * server does not slow the offered load, and latency is taken from the
 * scheduled start (no coordinated omission); it is also reported from the
 * actual first send, with the generator's own send lag.
 *
 * Reports units/s, non-200 finals by status, timeouts, latency percentiles
 * and the CPU time of the generator and (with -p PID) of the server over
 * the measured window, per unit. The client's hash work is one digest per
 * request (HA1 and HA2 are precomputed), two with -sess.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "latency.h"

#define BATCH 64
#define MSG_MAX 2048
#define RX_MAX 4096
#define MAX_SOCKS 256
#define NONCE_MAX 96
#define OPAQUE_MAX 48
#define HEX_MAX 129

enum mode { M_PAIR, M_REFRESH };

struct user {
	uint32_t cseq;
	uint32_t nc;                    /* last nc sent with nonce */
	char nonce[NONCE_MAX];          /* "" = none yet */
	char opaque[OPAQUE_MAX];
	char ha1[HEX_MAX];
};

struct slot {
	uint64_t sent_ns;       /* current request; 0: idle */
	uint64_t start_ns;      /* first send of the unit */
	uint64_t sched_ns;      /* open loop: the unit's scheduled start; 0: closed loop */
	uint32_t seq;           /* branch sequence */
	uint32_t user_next;
	unsigned user;
	bool authed;            /* the outstanding request carries credentials */
	bool busy;              /* open loop: a unit is in progress */
	bool counted;           /* the unit's outcome is part of the figures */
};

struct sock {
	int fd;
	struct sockaddr_in local;
	char ip[INET_ADDRSTRLEN];
	unsigned nslots;
	struct slot *slots;
	unsigned *dq;           /* slots whose next request is due, in that order */
	unsigned ndq;
};

struct opts {
	struct sockaddr_in dest;
	const char *realm, *password, *alg;
	unsigned socks, conc, users;
	double duration, warmup, timeout;
	double rate;            /* open loop: units started per second; 0: closed loop */
	unsigned tick_us;       /* open loop: longest sleep between send passes */
	unsigned expires;
	enum mode mode;
	int server_pid;
};

struct slot_ref {
	unsigned s, i;
};

/* What the loop shares with the helpers that end and start units. */
struct gen {
	const struct opts *o;
	struct sock *socks;
	bool **due;             /* slots whose next request goes out in the next send pass */
	unsigned *gbase;        /* global index of each socket's first slot */
	/* open loop */
	struct slot_ref *freeq; /* idle slots, FIFO, capacity o->conc */
	unsigned fq_head, fq_len, busy;
	uint64_t t0, t_measure, t_end;
	double period_ns;
	uint64_t next_unit;     /* index of the next scheduled unit */
};

static const EVP_MD *md;
static bool sess;
static size_t hexlen;
static char ha2[HEX_MAX];
static struct user *users;

static uint64_t n_ok, n_other, n_timeout, n_sent, n_stray, n_rechal, n_stale, n_noalg;
static uint64_t n_offered, n_skipped, n_started;       /* open loop, measured window */
static uint64_t n_unsent;       /* requests sendmmsg did not take (they time out) */
static uint64_t by_status[700];
/* open loop: latency from the first send (hist: from the schedule), and
 * the generator's own lag from schedule to first send */
static uint64_t hist_send[HIST_US + 1], hist_lag[HIST_US + 1];
static bool measuring;
static bool verbose;
/* Per run: a fresh Call-ID per user, so a run's CSeq 1 is not "older" than
 * the last run's (RFC 3261 §10.3 step 7); the Contact has no port, so every
 * run refreshes the same binding instead of adding one (max_bindings_per_aor). */
static uint32_t run_id;            /* AUTHBENCH_VERBOSE=1: say which requests time out */

static void usage(void)
{
	fprintf(stderr,
		"usage: authbench -d HOST:PORT -m pair|refresh -A ALGORITHM [-r REALM]\n"
		"                 [-P PASSWORD] [-s SOCKETS] [-c OUTSTANDING] [-u USERS]\n"
		"                 [-t SECONDS] [-w WARMUP] [-T TIMEOUT_S] [-e EXPIRES] [-p SERVER_PID]\n"
		"                 [-R RATE [-i TICK_US]]\n"
		"  Users b0..b(USERS-1)@REALM, all with PASSWORD (default bench-password-1234).\n"
		"  ALGORITHM: MD5, SHA-256, SHA-512-256, each optionally -sess.\n"
		"  -R: open loop, RATE units (pairs or refreshes) started per second on a\n"
		"  fixed schedule, at most OUTSTANDING in flight (the rest are skipped);\n"
		"  send passes at least every TICK_US (default 100) µs.\n");
	exit(2);
}

static unsigned parse_uint(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v > 100000000ul) {
		fprintf(stderr, "authbench: bad %s: %s\n", what, s);
		exit(2);
	}
	return (unsigned)v;
}

static double parse_double(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || end == s || v < 0) {
		fprintf(stderr, "authbench: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

/* hex(H(data)) into out (hexlen + 1 bytes) */
static void hhex(const void *data, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	if (!EVP_Digest(data, n, d, &dl, md, NULL)) {
		fprintf(stderr, "authbench: EVP_Digest failed\n");
		exit(1);
	}
	for (unsigned i = 0; i < dl; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * dl] = 0;
}

static unsigned slot_user(const struct opts *o, unsigned global_slot, uint32_t k)
{
	unsigned per = o->users / o->conc;
	return global_slot + (k % per) * o->conc;
}

/* The request for slot i of socket s: with credentials when the user holds
 * a nonce (always after the 401 in pair mode). */
static int build(const struct opts *o, const struct sock *sk, unsigned s, unsigned i, char *buf)
{
	struct slot *sl = &sk->slots[i];
	struct user *u = &users[sl->user];
	unsigned port = ntohs(sk->local.sin_port);
	char auth[768] = "";
	uint32_t cs = ++u->cseq;

	sl->authed = u->nonce[0] != 0;
	if (sl->authed) {
		char cnonce[24], tmp[512], resp[HEX_MAX], sha1[HEX_MAX];
		const char *h1 = u->ha1;
		uint32_t nc = ++u->nc;
		snprintf(cnonce, sizeof cnonce, "c%08x%06x", sl->user, cs & 0xffffff);
		if (sess) { /* RFC 7616 §3.4.2: H(H(user:realm:pw):nonce:cnonce) */
			int n = snprintf(tmp, sizeof tmp, "%s:%s:%s", u->ha1, u->nonce, cnonce);
			hhex(tmp, (size_t)n, sha1);
			h1 = sha1;
		}
		int n = snprintf(tmp, sizeof tmp, "%s:%s:%08" PRIx32 ":%s:auth:%s", h1, u->nonce,
				 nc, cnonce, ha2);
		hhex(tmp, (size_t)n, resp);
		snprintf(auth, sizeof auth,
			 "Authorization: Digest username=\"b%u\", realm=\"%s\", nonce=\"%s\", "
			 "uri=\"sip:%s\", response=\"%s\", algorithm=%s, cnonce=\"%s\", qop=auth, "
			 "nc=%08" PRIx32 "%s%s%s\r\n",
			 sl->user, o->realm, u->nonce, o->realm, resp, o->alg, cnonce, nc,
			 u->opaque[0] ? ", opaque=\"" : "", u->opaque, u->opaque[0] ? "\"" : "");
	}
	return snprintf(buf, MSG_MAX,
		"REGISTER sip:%s SIP/2.0\r\n"
		"Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK-ab.%u.%u.%u;rport\r\n"
		"Max-Forwards: 70\r\n"
		"From: <sip:b%u@%s>;tag=ab%u\r\n"
		"To: <sip:b%u@%s>\r\n"
		"Call-ID: ab-%u-%08x@bench\r\n"
		"CSeq: %" PRIu32 " REGISTER\r\n"
		"Contact: <sip:b%u@%s>\r\n"
		"Expires: %u\r\n"
		"%s"
		"User-Agent: authbench\r\n"
		"Content-Length: 0\r\n\r\n",
		o->realm, sk->ip, port, s, i, sl->seq,
		sl->user, o->realm, sl->user, sl->user, o->realm, sl->user, run_id, cs,
		sl->user, sk->ip, o->expires, auth);
}

static bool parse_reply(const char *p, size_t n, unsigned *status, unsigned *s, unsigned *i,
			unsigned *seq)
{
	if (n < 12 || memcmp(p, "SIP/2.0 ", 8) != 0)
		return false;
	*status = (unsigned)(p[8] - '0') * 100 + (unsigned)(p[9] - '0') * 10 +
		  (unsigned)(p[10] - '0');
	const char *b = memmem(p, n, "branch=z9hG4bK-ab.", 18);
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

/* value of name="…" within [p, e) into out; false if absent or too long */
static bool qparam(const char *p, const char *e, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *q = p; q + nl + 2 < e; q++) {
		if (memcmp(q, name, nl) || q[nl] != '=' || q[nl + 1] != '"')
			continue;
		if (q > p && q[-1] != ' ' && q[-1] != ',')
			continue;
		const char *v = q + nl + 2, *ve = memchr(v, '"', (size_t)(e - v));
		if (!ve || (size_t)(ve - v) >= cap)
			return false;
		memcpy(out, v, (size_t)(ve - v));
		out[ve - v] = 0;
		return true;
	}
	return false;
}

/* From a 401: the nonce and opaque of the challenge for our algorithm. */
static bool take_challenge(const struct opts *o, const char *p, size_t n, struct user *u,
			   bool *stale)
{
	const char *end = p + n, *q = p;
	size_t al = strlen(o->alg);
	while ((q = memmem(q, (size_t)(end - q), "\r\nWWW-Authenticate:", 19)) != NULL) {
		q += 2;
		const char *le = memmem(q, (size_t)(end - q), "\r\n", 2);
		if (!le)
			break;
		const char *a = memmem(q, (size_t)(le - q), "algorithm=", 10);
		/* RFC 2617 §3.2.1: no algorithm means MD5 (Kamailio omits it) */
		bool md5_default = !a && !strcasecmp(o->alg, "MD5");
		if (md5_default ||
		    (a && (size_t)(le - a) >= 10 + al && !strncasecmp(a + 10, o->alg, al) &&
		     (a + 10 + al == le || a[10 + al] == ',' || a[10 + al] == ' '))) {
			if (!qparam(q, le, "nonce", u->nonce, sizeof u->nonce))
				return false;
			if (!qparam(q, le, "opaque", u->opaque, sizeof u->opaque))
				u->opaque[0] = 0;
			*stale = memmem(q, (size_t)(le - q), "stale=true", 10) != NULL;
			u->nc = 0;
			return true;
		}
		q = le;
	}
	return false;
}

/* utime + stime of a process in seconds; -1 when unreadable */
static double proc_cpu_s(int pid)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long long ut = 0, st = 0;
	/* after ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Time this process spent runnable but waiting for its CPU (another task
 * had it), in ns, from /proc/self/schedstat; -1 when unreadable. On a
 * shared machine it tells a generator that was preempted from a slow server. */
static double runq_wait_ns(void)
{
	unsigned long long run, wait;
	FILE *f = fopen("/proc/self/schedstat", "r");
	if (!f)
		return -1;
	int n = fscanf(f, "%llu %llu", &run, &wait);
	fclose(f);
	return n == 2 ? (double)wait : -1;
}

static void start_unit(const struct opts *o, struct slot *sl, unsigned global_slot)
{
	sl->user = slot_user(o, global_slot, sl->user_next++);
	if (o->mode == M_PAIR)
		users[sl->user].nonce[0] = 0;   /* always the full challenge */
	sl->start_ns = 0;
	sl->sched_ns = 0;
	/* closed loop: the counters are reset when the measured window opens */
	sl->counted = true;
}

/* The slot's next request goes out in the next send pass. */
static void set_due(struct gen *g, unsigned s, unsigned i)
{
	struct sock *sk = &g->socks[s];
	if (g->due[s][i])
		return;
	g->due[s][i] = true;
	sk->dq[sk->ndq++] = i;
}

/* A unit ended (200, failure or timeout). Closed loop: its slot starts the
 * next unit at once. Open loop: the slot waits in the free queue until the
 * schedule needs it. */
static void unit_end(struct gen *g, unsigned s, unsigned i)
{
	struct slot *sl = &g->socks[s].slots[i];
	sl->sent_ns = 0;
	if (g->o->rate <= 0) {
		start_unit(g->o, sl, g->gbase[s] + i);
		set_due(g, s, i);
		return;
	}
	sl->busy = false;
	g->busy--;
	g->freeq[(g->fq_head + g->fq_len++) % g->o->conc] = (struct slot_ref){ s, i };
}

static void send_batch(int fd, struct mmsghdr *m, unsigned n)
{
	int r = sendmmsg(fd, m, n, 0);
	n_unsent += r < 0 ? n : n - (unsigned)r;
}

static uint64_t sched_at(const struct gen *g, uint64_t k)
{
	return g->t0 + (uint64_t)((double)k * g->period_ns);
}

/* Open loop: start every unit whose time has come on the next free slot.
 * Units scheduled in the measured window [t_measure, t_end) are counted as
 * offered; one that finds all slots busy is skipped, not delayed. Returns
 * whether any unit was due. */
static bool admit(struct gen *g, uint64_t now)
{
	bool any = false;
	for (;;) {
		uint64_t at = sched_at(g, g->next_unit);
		if (at > now || at >= g->t_end)
			return any;
		any = true;
		g->next_unit++;
		bool in = at >= g->t_measure;
		n_offered += in;
		if (!g->fq_len) {
			n_skipped += in;
			continue;
		}
		struct slot_ref r = g->freeq[g->fq_head];
		g->fq_head = (g->fq_head + 1) % g->o->conc;
		g->fq_len--;
		struct slot *sl = &g->socks[r.s].slots[r.i];
		start_unit(g->o, sl, g->gbase[r.s] + r.i);
		sl->sched_ns = at;
		sl->counted = in;
		sl->busy = true;
		g->busy++;
		set_due(g, r.s, r.i);
	}
}

int main(int argc, char **argv)
{
	struct opts o = { .realm = "bench.test", .password = "bench-password-1234", .alg = NULL,
			  .socks = 8, .conc = 64, .users = 256, .duration = 10, .warmup = 2,
			  .timeout = 1.0, .tick_us = 100, .expires = 3600, .mode = M_PAIR };
	bool have_dest = false, have_mode = false;
	int c;
	verbose = getenv("AUTHBENCH_VERBOSE") != NULL;
	run_id = (uint32_t)getpid() ^ (uint32_t)now_ns();
	while ((c = getopt(argc, argv, "d:r:P:A:m:s:c:u:t:w:T:e:p:R:i:h")) != -1) {
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
		case 'P': o.password = optarg; break;
		case 'A': o.alg = optarg; break;
		case 'm':
			if (!strcmp(optarg, "pair"))
				o.mode = M_PAIR;
			else if (!strcmp(optarg, "refresh"))
				o.mode = M_REFRESH;
			else
				usage();
			have_mode = true;
			break;
		case 's': o.socks = parse_uint(optarg, "sockets"); break;
		case 'c': o.conc = parse_uint(optarg, "outstanding"); break;
		case 'u': o.users = parse_uint(optarg, "users"); break;
		case 't': o.duration = parse_double(optarg, "duration"); break;
		case 'w': o.warmup = parse_double(optarg, "warmup"); break;
		case 'T': o.timeout = parse_double(optarg, "timeout"); break;
		case 'e': o.expires = parse_uint(optarg, "expires"); break;
		case 'p': o.server_pid = (int)parse_uint(optarg, "server pid"); break;
		case 'R':
			o.rate = parse_double(optarg, "rate");
			if (o.rate <= 0)
				usage();
			break;
		case 'i': o.tick_us = parse_uint(optarg, "tick"); break;
		default: usage();
		}
	}
	if (!have_dest || !have_mode || !o.alg || !o.socks || o.socks > MAX_SOCKS ||
	    o.conc < o.socks || o.users < o.conc)
		usage();

	char base[32];
	snprintf(base, sizeof base, "%s", o.alg);
	size_t bl = strlen(base);
	if (bl > 5 && !strcasecmp(base + bl - 5, "-sess")) {
		sess = true;
		base[bl - 5] = 0;
	}
	if (!strcasecmp(base, "MD5"))
		md = EVP_md5();
	else if (!strcasecmp(base, "SHA-256"))
		md = EVP_sha256();
	else if (!strcasecmp(base, "SHA-512-256"))
		md = EVP_sha512_256();
	else
		usage();
	hexlen = 2 * (size_t)EVP_MD_get_size(md);

	users = calloc(o.users, sizeof *users);
	struct sock *socks = calloc(o.socks, sizeof *socks);
	if (!users || !socks)
		return 1;
	char tmp[512];
	for (unsigned k = 0; k < o.users; k++) {
		int n = snprintf(tmp, sizeof tmp, "b%u:%s:%s", k, o.realm, o.password);
		hhex(tmp, (size_t)n, users[k].ha1);
	}
	{
		int n = snprintf(tmp, sizeof tmp, "REGISTER:sip:%s", o.realm);
		hhex(tmp, (size_t)n, ha2);
	}

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
	unsigned *gbase = calloc(o.socks, sizeof *gbase);
	if (!gbase)
		return 1;
	for (unsigned s = 1; s < o.socks; s++)
		gbase[s] = gbase[s - 1] + socks[s - 1].nslots;

	static char sbuf[BATCH][MSG_MAX], rbuf[BATCH][RX_MAX];
	struct mmsghdr smsg[BATCH], rmsg[BATCH];
	struct iovec siov[BATCH], riov[BATCH];
	for (unsigned k = 0; k < BATCH; k++) {
		riov[k] = (struct iovec){ rbuf[k], RX_MAX };
		memset(&rmsg[k], 0, sizeof rmsg[k]);
		rmsg[k].msg_hdr.msg_iov = &riov[k];
		rmsg[k].msg_hdr.msg_iovlen = 1;
		memset(&smsg[k], 0, sizeof smsg[k]);
		smsg[k].msg_hdr.msg_iov = &siov[k];
		smsg[k].msg_hdr.msg_iovlen = 1;
	}
	bool open_loop = o.rate > 0;
	struct pollfd *pfd = calloc(o.socks, sizeof *pfd);
	/* slots whose next request is due (the 2nd leg goes out in the next pass) */
	bool **due = calloc(o.socks, sizeof *due);
	struct gen g = { .o = &o, .socks = socks, .due = due, .gbase = gbase };
	if (open_loop)
		g.freeq = calloc(o.conc, sizeof *g.freeq);
	if (!pfd || !due || (open_loop && !g.freeq))
		return 1;
	for (unsigned s = 0; s < o.socks; s++) {
		pfd[s] = (struct pollfd){ .fd = socks[s].fd, .events = POLLIN };
		due[s] = calloc(socks[s].nslots, sizeof **due);
		socks[s].dq = calloc(socks[s].nslots, sizeof *socks[s].dq);
		if (!due[s] || !socks[s].dq)
			return 1;
		for (unsigned i = 0; i < socks[s].nslots; i++) {
			if (open_loop) {        /* idle until the schedule needs it */
				g.freeq[g.fq_len++] = (struct slot_ref){ s, i };
				continue;
			}
			start_unit(&o, &socks[s].slots[i], gbase[s] + i);
			set_due(&g, s, i);
		}
	}
	/* open loop: sleep to the schedule, not to the default 50 µs timer slack */
	if (open_loop)
		(void)prctl(PR_SET_TIMERSLACK, 1000ul);

	uint64_t t0 = now_ns();
	uint64_t t_measure = t0 + (uint64_t)(o.warmup * 1e9);
	uint64_t t_end = t_measure + (uint64_t)(o.duration * 1e9);
	uint64_t timeout_ns = (uint64_t)(o.timeout * 1e9);
	/* open loop: units in flight at t_end still finish (or time out), so
	 * the slowest ones of the window are not cut off */
	uint64_t t_drain = t_end + 2 * timeout_ns;
	uint64_t tick_ns = (uint64_t)o.tick_us * 1000;
	double cpu0 = 0, scpu0 = -1, cpu1 = 0, scpu1 = -1, wait0 = -1, wait1 = -1;
	bool ended = false;
	uint64_t last_scan = t0, last_admit = t0;
	g.t0 = t0;
	g.t_measure = t_measure;
	g.t_end = t_end;
	g.period_ns = open_loop ? 1e9 / o.rate : 0;

	for (;;) {
		uint64_t now = now_ns();
		if (!measuring && now >= t_measure) {
			measuring = true;
			memset(hist, 0, sizeof hist);
			n_ok = n_other = n_timeout = n_sent = n_stray = n_rechal = n_stale = n_noalg = 0;
			n_unsent = 0;
			memset(by_status, 0, sizeof by_status);
			cpu0 = cpu_s();
			scpu0 = proc_cpu_s(o.server_pid);
			wait0 = runq_wait_ns();
		}
		if (now >= t_end) {
			if (!ended) {
				ended = true;
				cpu1 = cpu_s();
				scpu1 = proc_cpu_s(o.server_pid);
				wait1 = runq_wait_ns();
			}
			if (!open_loop || !g.busy || now >= t_drain)
				break;
		}
		if (open_loop && admit(&g, now))
			last_admit = now;
		bool scan = now - last_scan > 10000000ull;
		if (scan)
			last_scan = now;
		for (unsigned s = 0; s < o.socks; s++) {
			struct sock *sk = &socks[s];
			/* every 10 ms: a request unanswered for -T ends its unit
			 * (closed loop: the slot starts its next one at once) */
			for (unsigned i = 0; scan && i < sk->nslots; i++) {
				struct slot *sl = &sk->slots[i];
				if (due[s][i] || !sl->sent_ns || now - sl->sent_ns <= timeout_ns)
					continue;
				n_timeout += sl->counted;
				if (verbose)
					fprintf(stderr, "authbench: timeout: sock %u slot %u user b%u "
						"cseq %" PRIu32 " %s\n", s, i, sl->user,
						users[sl->user].cseq,
						sl->authed ? "with credentials" : "first leg");
				unit_end(&g, s, i);
			}
			/* only the due slots: a large -c costs nothing per pass */
			unsigned n = 0;
			for (unsigned k = 0; k < sk->ndq; k++) {
				unsigned i = sk->dq[k];
				struct slot *sl = &sk->slots[i];
				due[s][i] = false;
				sl->seq++;
				int len = build(&o, sk, s, i, sbuf[n]);
				if (len <= 0 || len >= MSG_MAX) {
					fprintf(stderr, "authbench: request too long\n");
					return 1;
				}
				siov[n] = (struct iovec){ sbuf[n], (size_t)len };
				sl->sent_ns = now;
				n_sent += sl->counted;
				if (!sl->start_ns) {
					sl->start_ns = now;
					if (sl->sched_ns && sl->counted) {
						n_started++;
						record_in(hist_lag, now - sl->sched_ns);
					}
				}
				if (++n == BATCH) {
					send_batch(sk->fd, smsg, n);
					n = 0;
				}
			}
			sk->ndq = 0;
			if (n)
				send_batch(sk->fd, smsg, n);
		}
		int pr;
		if (!open_loop) {
			pr = poll(pfd, o.socks, 5);
		} else {
			/* the next unit's time, but at most one send pass per tick;
			 * wake every 10 ms for the timeout scan and at t_end */
			uint64_t wake = now + 10000000ull;
			if (now < t_end) {
				uint64_t at = sched_at(&g, g.next_unit);
				if (at < last_admit + tick_ns)
					at = last_admit + tick_ns;
				if (at > t_end)
					at = t_end;
				if (at < wake)
					wake = at;
			} else if (t_drain < wake) {
				wake = t_drain;
			}
			uint64_t d = wake > now ? wake - now : 0;
			struct timespec ts = { (time_t)(d / 1000000000ull), (long)(d % 1000000000ull) };
			pr = ppoll(pfd, o.socks, &ts, NULL);
		}
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
				size_t len = rmsg[k].msg_len;
				if (!parse_reply(rbuf[k], len, &st, &ss, &si, &sq) || ss != s ||
				    si >= sk->nslots) {
					n_stray++;
					continue;
				}
				struct slot *sl = &sk->slots[si];
				if (st < 200)
					continue;
				if (sq != sl->seq || !sl->sent_ns || due[s][si]) {
					n_stray++;
					continue;
				}
				sl->sent_ns = 0;
				struct user *u = &users[sl->user];
				bool cnt = sl->counted;
				if (st == 401) {
					bool stale = false;
					if (!take_challenge(&o, rbuf[k], len, u, &stale)) {
						n_noalg += cnt;   /* our algorithm not offered */
						n_other += cnt;
						by_status[401] += cnt;
						unit_end(&g, s, si);
						continue;
					}
					if (sl->authed) {       /* refused credentials */
						n_rechal += cnt;
						n_stale += cnt && stale;
						if (o.mode == M_PAIR) { /* a wrong password, not a stale nonce */
							n_other += cnt;
							by_status[401] += cnt;
							unit_end(&g, s, si);
							continue;
						}
					}
					set_due(&g, s, si);     /* answer the challenge */
					continue;
				}
				if (st < 700)
					by_status[st] += cnt;
				if (st == 200) {
					if (cnt) {
						n_ok++;
						/* open loop: from the schedule (coordinated omission) */
						record(t - (sl->sched_ns ? sl->sched_ns : sl->start_ns));
						record_in(hist_send, t - sl->start_ns);
					}
				} else {
					n_other += cnt;
					u->nonce[0] = 0;
				}
				unit_end(&g, s, si);
			}
		}
	}
	/* open loop: what the drain did not see finish counts as timed out */
	for (unsigned s = 0; open_loop && s < o.socks; s++)
		for (unsigned i = 0; i < socks[s].nslots; i++)
			n_timeout += socks[s].slots[i].busy && socks[s].slots[i].counted;
	if (!ended) {
		cpu1 = cpu_s();
		scpu1 = proc_cpu_s(o.server_pid);
		wait1 = runq_wait_ns();
	}
	double secs = (double)(t_end - t_measure) / 1e9;
	double cpu = cpu1 - cpu0;
	double scpu = scpu0 >= 0 && scpu1 >= 0 ? scpu1 - scpu0 : -1;
	printf("authbench: %s:%u realm=%s mode=%s algorithm=%s sockets=%u outstanding=%u "
	       "users=%u duration=%.1fs",
	       inet_ntoa(o.dest.sin_addr), ntohs(o.dest.sin_port), o.realm,
	       o.mode == M_PAIR ? "pair" : "refresh", o.alg, o.socks, o.conc, o.users, secs);
	if (open_loop)
		printf(" open_loop rate=%.0f tick_us=%u", o.rate, o.tick_us);
	printf("\n");
	printf("%s_per_s=%.0f ok=%" PRIu64 " non200=%" PRIu64 " timeouts=%" PRIu64
	       " stray=%" PRIu64 " sent=%" PRIu64 " rechallenged=%" PRIu64 " (stale=%" PRIu64
	       ") requests_per_unit=%.2f\n",
	       o.mode == M_PAIR ? "pairs" : "refreshes", (double)n_ok / secs, n_ok, n_other,
	       n_timeout, n_stray, n_sent, n_rechal, n_stale,
	       n_ok ? (double)n_sent / (double)n_ok : 0.0);
	if (n_unsent)
		printf("unsent=%" PRIu64 " (refused by sendmmsg)\n", n_unsent);
	if (n_other) {
		printf("non200_by_status:");
		for (unsigned k = 100; k < 700; k++)
			if (by_status[k] && k != 200)
				printf(" %u=%" PRIu64, k, by_status[k]);
		if (n_noalg)
			printf(" (401 without a %s challenge: %" PRIu64 ")", o.alg, n_noalg);
		printf("\n");
	}
	if (open_loop)
		printf("offered_per_s=%.0f offered=%" PRIu64 " started=%" PRIu64
		       " skipped=%" PRIu64 " (all %u slots busy at the scheduled time)\n",
		       (double)n_offered / secs, n_offered, n_started, n_skipped, o.conc);
	printf("latency_ms p50=%.3f p90=%.3f p99=%.3f p999=%.3f max<=%.3f%s\n",
	       pct(n_ok, 0.50), pct(n_ok, 0.90), pct(n_ok, 0.99), pct(n_ok, 0.999),
	       pct(n_ok, 1.0), open_loop ? " (from the scheduled start)" : "");
	if (open_loop) {
		printf("latency_from_send_ms p50=%.3f p90=%.3f p99=%.3f p999=%.3f max<=%.3f\n",
		       pct_in(hist_send, n_ok, 0.50), pct_in(hist_send, n_ok, 0.90),
		       pct_in(hist_send, n_ok, 0.99), pct_in(hist_send, n_ok, 0.999),
		       pct_in(hist_send, n_ok, 1.0));
		/* the generator's own delay: tick, batching, being descheduled */
		printf("send_lag_ms p50=%.3f p99=%.3f p999=%.3f max<=%.3f\n",
		       pct_in(hist_lag, n_started, 0.50), pct_in(hist_lag, n_started, 0.99),
		       pct_in(hist_lag, n_started, 0.999), pct_in(hist_lag, n_started, 1.0));
	}
	printf("generator_cpu_s=%.2f (%.0f%% of one core)", cpu, 100.0 * cpu / secs);
	if (wait0 >= 0 && wait1 >= 0)
		printf(" generator_runq_wait_ms=%.1f", (wait1 - wait0) / 1e6);
	printf("\n");
	/* a generator near a full core measures itself, not the server */
	if (cpu / secs > 0.90)
		printf("generator_saturated=yes: the figure is a lower bound of the server's rate\n");
	if (scpu >= 0)
		printf("server_cpu_s=%.2f server_cpu_us_per_unit=%.1f\n", scpu,
		       n_ok ? scpu * 1e6 / (double)n_ok : 0.0);
	return n_ok ? 0 : 1;
}
