/* The guard (see guard.h): tables, the phases, bans and their persistence.
 *
 * Tables. Everything keyed by a peer's data hashes with SipHash-2-4 under
 * a random key (DESIGN.md "Architecture"). 64 shards per table, chosen by
 * the top bits of the hash; each shard is an open-addressing array of
 * fixed size with linear probing and backward-shift deletion, so no table
 * ever grows: when a shard is full, CLOCK (second chance) picks a victim.
 *   ip      per source (IPv4 address / IPv6 prefix): GCRA state per class
 *           and for the flood budget, "known" (has authenticated)
 *   user    per authid@realm: GCRA state per class
 *   ipfail, userfail   sliding window of failure times, offence history
 *   ipbans, userbans   active bans, read without locks (below)
 *
 * Bans are read on every datagram, written rarely: each shard of a ban
 * table is guarded by a sequence counter (seqlock). Readers load the
 * counter, probe with relaxed atomic loads, and retry if the counter moved
 * or was odd; writers take the shard mutex and bump the counter around
 * their change. The slot array never moves, so a reader can never touch
 * freed memory, and nothing is allocated after guard_open.
 *
 * Rates use GCRA (the virtual scheduling algorithm of ITU-T I.371, a
 * token bucket expressed as one "theoretical arrival time"): one word per
 * bucket and a direct Retry-After.
 *
 * Persistence: bans go to <data_dir>/bans.db through a queue to a writer
 * thread, so no worker waits on disk. The same thread polls PRAGMA
 * data_version once a second and, when another process (the CLI)
 * committed, re-reads the active bans and applies additions and removals.
 * A ban made in memory carries the sequence number of its queued write;
 * a re-read removes only bans whose write was already taken by the writer
 * before it read the table, so a fresh ban is never lost to a race. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/lock.h"
#include "base/net.h"
#include "base/siphash.h"
#include "base/str.h"
#include "base/thread.h"
#include "guard/bansdb.h"
#include "guard/geo.h"
#include "guard/guard.h"
#include "sip/parse.h"

#if defined(__x86_64__) || defined(__i386__)
static inline void cpu_relax(void) { __builtin_ia32_pause(); }
#else
static inline void cpu_relax(void) { }
#endif

#define SHARDS 64
#define SHARD_OF(h) ((unsigned)((h) >> 58))
#define MAX_THREADS 64         /* counter slots; more threads share one */
#define EV_CAP 1024
#define WQ_CAP 4096
#define POLL_MS 1000           /* bans.db re-read at most this often */
#define PURGE_MS 60000

struct gkey {
	uint64_t a, b;
};

/* ---- locked tables ---- */

struct rhdr {
	uint64_t hash;
	struct gkey k;
	uint8_t used;
	uint8_t ref;               /* CLOCK reference bit */
};

struct iprec {
	struct rhdr h;
	uint64_t tat[GUARD_C__COUNT + 1];  /* µs; [GUARD_C__COUNT] = flood budget */
	uint32_t flood_over;       /* packets refused in the current flood */
	bool known;                /* authenticated successfully at least once */
};

struct userrec {
	struct rhdr h;
	uint64_t tat[GUARD_C__COUNT];
};

struct failrec {
	struct rhdr h;
	uint32_t ring[GUARD_MAX_BAN_AFTER];   /* failure times, wall seconds */
	uint8_t head, n;
	uint32_t offences;
	uint32_t last_ban_end_s;
};

struct rshard {
	pthread_mutex_t mu;
	unsigned n, cap, mask, hand;
	unsigned char *slots;
} __attribute__((aligned(64)));

struct rtab {
	struct rshard sh[SHARDS];
	size_t stride;
	_Atomic unsigned total;   /* entries in all shards (read without a lock) */
};

/* ---- ban tables (seqlock) ---- */

struct bslot {
	_Atomic uint64_t a, b;
	_Atomic uint64_t until;    /* wall ms; 0 = empty slot */
};

struct bmeta {
	uint64_t hash;
	uint64_t seq;              /* writer-queue sequence; 0 = persisted or not persisted */
	int64_t created_ms;
	uint32_t offences;
	uint16_t reason;
};

struct bshard {
	atomic_uint seq;
	pthread_mutex_t mu;
	unsigned n, cap, mask;
	struct bslot *slots;
	struct bmeta *meta;
	char (*names)[GUARD_NAME_MAX];   /* user bans only */
} __attribute__((aligned(64)));

struct banset {
	struct bshard sh[SHARDS];
	atomic_uint count;
	bool user;
};

struct cslot {
	_Atomic uint64_t c[GUARD_S__COUNT];
} __attribute__((aligned(64)));

struct wop {
	bool del;
	struct guard_ban_row row;
};

struct sw_guard {
	struct sw_guard_conf conf;
	uint64_t gid;
	struct sw_hkey hkey, ukey2;
	struct guard_geo *geo;

	struct rtab ip, user, ipfail, userfail;
	struct banset ipbans, userbans;

	struct cslot slots[MAX_THREADS];
	struct cslot shared;
	atomic_uint nslots;

	pthread_mutex_t ev_mu;
	struct guard_event *ev;
	unsigned ev_head, ev_n;

	/* persistence */
	struct guard_db *db;
	pthread_t writer;
	bool writer_started;
	pthread_mutex_t wq_mu;
	pthread_cond_t wq_wake, wq_done;
	struct wop *wq, *wbatch;
	unsigned wq_head, wq_n;
	_Atomic uint64_t ban_seq;
	uint64_t cycle_start, cycle_done;
	bool sync_req, stop;
	_Atomic uint64_t tick_now;
	int64_t dv_open;           /* data_version read before loading */
};

static _Atomic uint64_t next_gid = 1;
static _Thread_local uint64_t tls_gid;
static _Thread_local struct cslot *tls_slot;

static const char *const reason_names[GUARD_R__COUNT] = {
	[GUARD_R_NONE] = "none",
	[GUARD_R_BANNED_IP] = "banned-ip",
	[GUARD_R_BANNED_USER] = "banned-user",
	[GUARD_R_TOO_BIG] = "too-big",
	[GUARD_R_FLOOD] = "flood",
	[GUARD_R_METHOD] = "method-not-allowed",
	[GUARD_R_SCANNER] = "scanner",
	[GUARD_R_GEO] = "geo",
	[GUARD_R_RATE_IP] = "rate-ip",
	[GUARD_R_RATE_USER] = "rate-user",
	[GUARD_R_AUTH_FAILURES] = "auth-failures",
	[GUARD_R_ADMIN] = "admin",
	[GUARD_R_EXPIRED] = "expired",
};

static const char *const counter_names[GUARD_S__COUNT] = {
	[GUARD_S_ALLOWED] = "allowed",
	[GUARD_S_RATE_LIMITED] = "rate_limited",
	[GUARD_S_BANNED_IP_DROP] = "banned_ip_dropped",
	[GUARD_S_BANNED_USER] = "banned_user_refused",
	[GUARD_S_FLOOD] = "flood",
	[GUARD_S_TOO_BIG] = "too_big",
	[GUARD_S_METHOD] = "method_refused",
	[GUARD_S_SCANNER] = "scanner_dropped",
	[GUARD_S_GEO] = "geo_refused",
	[GUARD_S_AUTH_FAILURES] = "auth_failures",
	[GUARD_S_BANS] = "bans",
	[GUARD_S_UNBANS] = "unbans",
	[GUARD_S_ADMIN_CHANGES] = "admin_changes",
	[GUARD_S_EVICTIONS] = "evictions",
	[GUARD_S_PERSIST_LOST] = "persist_lost",
	[GUARD_S_EVENTS_LOST] = "events_lost",
};

const char *guard_reason_str(enum guard_reason r)
{
	return (unsigned)r < GUARD_R__COUNT && reason_names[r] ? reason_names[r] : "unknown";
}

const char *guard_counter_name(enum guard_counter c)
{
	return (unsigned)c < GUARD_S__COUNT ? counter_names[c] : "unknown";
}

static enum guard_reason reason_parse(const char *s)
{
	for (unsigned i = 0; i < GUARD_R__COUNT; i++)
		if (strcmp(s, reason_names[i]) == 0)
			return (enum guard_reason)i;
	return GUARD_R_ADMIN;
}

uint64_t guard_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- counters: one slot per thread, written only by it ---- */

static struct cslot *my_slot(struct sw_guard *g)
{
	if (tls_gid == g->gid)
		return tls_slot;
	unsigned i = atomic_fetch_add(&g->nslots, 1);
	tls_gid = g->gid;
	tls_slot = i < MAX_THREADS ? &g->slots[i] : NULL;
	return tls_slot;
}

static void count(struct sw_guard *g, enum guard_counter c)
{
	struct cslot *s = my_slot(g);
	if (s)
		atomic_store_explicit(&s->c[c], atomic_load_explicit(&s->c[c], memory_order_relaxed) + 1,
				      memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&g->shared.c[c], 1, memory_order_relaxed);
}

/* ---- events ---- */

static void emit(struct sw_guard *g, enum guard_event_type type, bool user, const char *target,
		 enum guard_reason reason, uint32_t duration_s, uint32_t offences)
{
	pthread_mutex_lock(&g->ev_mu);
	if (g->ev_n == EV_CAP) {
		pthread_mutex_unlock(&g->ev_mu);
		count(g, GUARD_S_EVENTS_LOST);
		return;
	}
	struct guard_event *e = &g->ev[(g->ev_head + g->ev_n++) % EV_CAP];
	*e = (struct guard_event){ .type = type, .user = user, .reason = reason,
				   .duration_s = duration_s, .offences = offences };
	snprintf(e->target, sizeof(e->target), "%s", target);
	pthread_mutex_unlock(&g->ev_mu);
}

unsigned guard_events(struct sw_guard *g, struct guard_event *out, unsigned cap)
{
	unsigned n = 0;
	pthread_mutex_lock(&g->ev_mu);
	while (n < cap && g->ev_n) {
		out[n++] = g->ev[g->ev_head];
		g->ev_head = (g->ev_head + 1) % EV_CAP;
		g->ev_n--;
	}
	pthread_mutex_unlock(&g->ev_mu);
	return n;
}

/* ---- keys ---- */

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static void key_from_bytes(const uint8_t b[16], struct gkey *k)
{
	memcpy(&k->a, b, 8);
	memcpy(&k->b, b + 8, 8);
}

static void mask_v6(uint8_t b[16], unsigned bits)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
		b[i] &= (uint8_t)(0xff00u >> keep);
	}
}

/* An IPv4 source (or IPv4-mapped IPv6) is keyed by its address, an IPv6
 * source by its prefix: one host usually owns a whole /64. */
static int ip_key(const struct sw_guard *g, const struct sockaddr *sa, struct gkey *k)
{
	uint8_t b[16];
	if (sa->sa_family == AF_INET) {
		memcpy(b, v4mapped, 12);
		memcpy(b + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(b, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		if (memcmp(b, v4mapped, 12) != 0)
			mask_v6(b, g->conf.ipv6_prefix);
	} else {
		return -EAFNOSUPPORT;
	}
	key_from_bytes(b, k);
	return 0;
}

static uint64_t ip_hash(const struct sw_guard *g, const struct gkey *k)
{
	return sw_siphash(&g->hkey, k, sizeof(*k));
}

static struct sw_str user_trunc(struct sw_str u)
{
	/* The key is computed from what bans.db can hold. */
	if (u.len > GUARD_NAME_MAX - 1)
		u.len = GUARD_NAME_MAX - 1;
	return u;
}

static uint64_t user_key(const struct sw_guard *g, struct sw_str u, struct gkey *k)
{
	u = user_trunc(u);
	k->a = sw_siphash(&g->hkey, u.p, u.len);
	k->b = sw_siphash(&g->ukey2, u.p, u.len);
	return k->a;
}

static void key_text(const struct sw_guard *g, const struct gkey *k, char *out, size_t cap)
{
	uint8_t b[16];
	char host[INET6_ADDRSTRLEN];
	memcpy(b, &k->a, 8);
	memcpy(b + 8, &k->b, 8);
	if (memcmp(b, v4mapped, 12) == 0) {
		inet_ntop(AF_INET, b + 12, host, sizeof(host));
		snprintf(out, cap, "%s", host);
		return;
	}
	inet_ntop(AF_INET6, b, host, sizeof(host));
	if (g->conf.ipv6_prefix < 128)
		snprintf(out, cap, "%s/%u", host, g->conf.ipv6_prefix);
	else
		snprintf(out, cap, "%s", host);
}

/* "192.0.2.1" | "2001:db8::1" | "2001:db8::/64" → key. */
static int text_key(unsigned ipv6_prefix, const char *in, uint8_t b[16], unsigned *fam)
{
	struct sw_cidr c;
	if (sw_cidr_parse(sw_str_trim(sw_str_c(in)), &c) < 0)
		return -EINVAL;
	*fam = c.family;
	if (c.family == AF_INET) {
		if (c.bits != 32)
			return -EINVAL;
		memcpy(b, v4mapped, 12);
		memcpy(b + 12, c.addr, 4);
		return 0;
	}
	memcpy(b, c.addr, 16);
	if (memcmp(b, v4mapped, 12) == 0)
		return c.bits == 128 ? 0 : -EINVAL;
	if (c.bits < ipv6_prefix)
		return -EINVAL;
	mask_v6(b, ipv6_prefix);
	return 0;
}

int guard_target_norm(const char *in, unsigned ipv6_prefix, char *out, size_t cap)
{
	uint8_t b[16];
	unsigned fam;
	char host[INET6_ADDRSTRLEN];
	if (ipv6_prefix == 0 || ipv6_prefix > 128 || text_key(ipv6_prefix, in, b, &fam) < 0)
		return -EINVAL;
	int n;
	if (memcmp(b, v4mapped, 12) == 0) {
		inet_ntop(AF_INET, b + 12, host, sizeof(host));
		n = snprintf(out, cap, "%s", host);
	} else {
		inet_ntop(AF_INET6, b, host, sizeof(host));
		n = ipv6_prefix < 128 ? snprintf(out, cap, "%s/%u", host, ipv6_prefix)
				      : snprintf(out, cap, "%s", host);
	}
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

static bool trusted(const struct sw_guard *g, const struct sockaddr *sa)
{
	return g->conf.ntrusted && sw_cidr_list_match(g->conf.trusted, g->conf.ntrusted, sa);
}

/* A key's address as a sockaddr, for the trusted check of admin bans. */
static void key_sockaddr(const struct gkey *k, struct sockaddr_in6 *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin6_family = AF_INET6;
	memcpy(&sa->sin6_addr, &k->a, 8);
	memcpy((char *)&sa->sin6_addr + 8, &k->b, 8);
}

/* ---- locked tables ---- */

/* A shard holds 1/64 of the configured size plus 25 %: keys never spread
 * perfectly evenly, and a table sized for N should hold N. */
static unsigned shard_cap(uint32_t total)
{
	uint64_t cap = ((uint64_t)total * 5 / 4 + SHARDS - 1) / SHARDS;
	return cap < 4 ? 4 : (unsigned)cap;
}

static int rtab_init(struct rtab *t, uint32_t total, size_t stride)
{
	unsigned cap = shard_cap(total);
	unsigned nslots = 8;
	while (nslots < cap + cap / 3 + 1) /* load factor at most 3/4 */
		nslots <<= 1;
	t->stride = stride;
	for (unsigned i = 0; i < SHARDS; i++) {
		struct rshard *s = &t->sh[i];
		pthread_mutex_init(&s->mu, NULL);
		s->cap = cap;
		s->mask = nslots - 1;
		s->slots = calloc(nslots, stride);
		if (!s->slots)
			return -ENOMEM;
	}
	return 0;
}

static void rtab_free(struct rtab *t)
{
	for (unsigned i = 0; i < SHARDS; i++) {
		free(t->sh[i].slots);
		pthread_mutex_destroy(&t->sh[i].mu);
	}
}

static inline struct rhdr *rslot(const struct rtab *t, const struct rshard *s, unsigned i)
{
	return (struct rhdr *)(void *)(s->slots + (size_t)i * t->stride);
}

static struct rshard *rtab_lock(struct rtab *t, uint64_t h)
{
	struct rshard *s = &t->sh[SHARD_OF(h)];
	sw_mutex_lock(&s->mu);
	return s;
}

static struct rhdr *rtab_find(struct rtab *t, struct rshard *s, uint64_t h, const struct gkey *k)
{
	if (!s->n)
		return NULL;   /* e.g. no failures anywhere: no cache miss in the slots */
	for (unsigned i = (unsigned)h & s->mask, n = 0; n <= s->mask; i = (i + 1) & s->mask, n++) {
		struct rhdr *e = rslot(t, s, i);
		if (!e->used)
			return NULL;
		if (e->hash == h && e->k.a == k->a && e->k.b == k->b) {
			e->ref = 1;
			return e;
		}
	}
	return NULL;
}

/* Backward-shift deletion (Knuth vol. 3, 6.4 Algorithm R): no tombstones. */
static void rtab_del_at(struct rtab *t, struct rshard *s, unsigned i)
{
	unsigned j = i;
	for (;;) {
		j = (j + 1) & s->mask;
		struct rhdr *e = rslot(t, s, j);
		if (!e->used)
			break;
		unsigned home = (unsigned)e->hash & s->mask;
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		memcpy(rslot(t, s, i), e, t->stride);
		i = j;
	}
	memset(rslot(t, s, i), 0, t->stride);
	s->n--;
	atomic_fetch_sub_explicit(&t->total, 1, memory_order_relaxed);
}

/* CLOCK: skip (and clear) recently used entries, evict the first that was
 * not touched since the hand last passed. Two turns always find one. */
static void rtab_evict(struct rtab *t, struct rshard *s)
{
	for (unsigned n = 0; n < 2 * (s->mask + 1); n++) {
		unsigned i = s->hand;
		s->hand = (s->hand + 1) & s->mask;
		struct rhdr *e = rslot(t, s, i);
		if (!e->used)
			continue;
		if (e->ref) {
			e->ref = 0;
			continue;
		}
		rtab_del_at(t, s, i);
		return;
	}
}

/* Find or create (zeroed) under the shard lock. */
static struct rhdr *rtab_get(struct sw_guard *g, struct rtab *t, struct rshard *s, uint64_t h,
			     const struct gkey *k, bool create)
{
	struct rhdr *e = rtab_find(t, s, h, k);
	if (e || !create)
		return e;
	if (s->n >= s->cap) {
		rtab_evict(t, s);
		count(g, GUARD_S_EVICTIONS);
	}
	unsigned i = (unsigned)h & s->mask;
	while (rslot(t, s, i)->used)
		i = (i + 1) & s->mask;
	e = rslot(t, s, i);
	memset(e, 0, t->stride);
	e->used = 1;
	e->ref = 1;
	e->hash = h;
	e->k = *k;
	s->n++;
	atomic_fetch_add_explicit(&t->total, 1, memory_order_relaxed);
	return e;
}

static unsigned rtab_count(struct rtab *t)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SHARDS; i++) {
		sw_mutex_lock(&t->sh[i].mu);
		n += t->sh[i].n;
		pthread_mutex_unlock(&t->sh[i].mu);
	}
	return n;
}

/* ---- ban tables ---- */

static int bs_init(struct banset *bs, uint32_t total, bool user)
{
	unsigned cap = shard_cap(total);
	unsigned nslots = 8;
	while (nslots < cap + cap / 3 + 1)
		nslots <<= 1;
	bs->user = user;
	for (unsigned i = 0; i < SHARDS; i++) {
		struct bshard *s = &bs->sh[i];
		pthread_mutex_init(&s->mu, NULL);
		s->cap = cap;
		s->mask = nslots - 1;
		s->slots = calloc(nslots, sizeof(*s->slots));
		s->meta = calloc(nslots, sizeof(*s->meta));
		if (user)
			s->names = calloc(nslots, sizeof(*s->names));
		if (!s->slots || !s->meta || (user && !s->names))
			return -ENOMEM;
	}
	return 0;
}

static void bs_free(struct banset *bs)
{
	for (unsigned i = 0; i < SHARDS; i++) {
		free(bs->sh[i].slots);
		free(bs->sh[i].meta);
		free(bs->sh[i].names);
		pthread_mutex_destroy(&bs->sh[i].mu);
	}
}

/* Lock-free: the hot path of guard_pre. */
static bool bs_lookup(struct banset *bs, uint64_t h, const struct gkey *k, uint64_t now)
{
	struct bshard *s = &bs->sh[SHARD_OF(h)];
	for (;;) {
		unsigned s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (s1 & 1) {
			cpu_relax();
			continue;
		}
		bool hit = false;
		for (unsigned i = (unsigned)h & s->mask, n = 0; n <= s->mask; i = (i + 1) & s->mask, n++) {
			struct bslot *sl = &s->slots[i];
			uint64_t until = atomic_load_explicit(&sl->until, memory_order_relaxed);
			if (!until)
				break;
			if (atomic_load_explicit(&sl->a, memory_order_relaxed) == k->a &&
			    atomic_load_explicit(&sl->b, memory_order_relaxed) == k->b) {
				hit = until > now;
				break;
			}
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) == s1)
			return hit;
	}
}

static void bs_wbegin(struct bshard *s)
{
	atomic_store_explicit(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void bs_wend(struct bshard *s)
{
	atomic_store_explicit(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1,
			      memory_order_release);
}

static int bs_find(struct bshard *s, uint64_t h, const struct gkey *k)
{
	for (unsigned i = (unsigned)h & s->mask, n = 0; n <= s->mask; i = (i + 1) & s->mask, n++) {
		struct bslot *sl = &s->slots[i];
		if (!atomic_load_explicit(&sl->until, memory_order_relaxed))
			return -1;
		if (atomic_load_explicit(&sl->a, memory_order_relaxed) == k->a &&
		    atomic_load_explicit(&sl->b, memory_order_relaxed) == k->b)
			return (int)i;
	}
	return -1;
}

static void bs_copy(struct bshard *s, unsigned to, unsigned from)
{
	struct bslot *d = &s->slots[to], *f = &s->slots[from];
	atomic_store_explicit(&d->a, atomic_load_explicit(&f->a, memory_order_relaxed), memory_order_relaxed);
	atomic_store_explicit(&d->b, atomic_load_explicit(&f->b, memory_order_relaxed), memory_order_relaxed);
	atomic_store_explicit(&d->until, atomic_load_explicit(&f->until, memory_order_relaxed),
			      memory_order_relaxed);
	s->meta[to] = s->meta[from];
	if (s->names)
		memcpy(s->names[to], s->names[from], GUARD_NAME_MAX);
}

/* Within a write section. */
static void bs_del_at(struct banset *bs, struct bshard *s, unsigned i)
{
	unsigned j = i;
	for (;;) {
		j = (j + 1) & s->mask;
		if (!atomic_load_explicit(&s->slots[j].until, memory_order_relaxed))
			break;
		unsigned home = (unsigned)s->meta[j].hash & s->mask;
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		bs_copy(s, i, j);
		i = j;
	}
	atomic_store_explicit(&s->slots[i].until, 0, memory_order_relaxed);
	atomic_store_explicit(&s->slots[i].a, 0, memory_order_relaxed);
	atomic_store_explicit(&s->slots[i].b, 0, memory_order_relaxed);
	memset(&s->meta[i], 0, sizeof(s->meta[i]));
	s->n--;
	atomic_fetch_sub(&bs->count, 1);
}

/* Insert or update. 1 = new ban, 0 = updated, -ENOSPC when the shard is
 * full of bans that outlast this one. */
static int bs_put(struct banset *bs, uint64_t h, const struct gkey *k, uint64_t until,
		  const struct bmeta *meta, const char *name)
{
	struct bshard *s = &bs->sh[SHARD_OF(h)];
	int rc = 0;
	sw_mutex_lock(&s->mu);
	bs_wbegin(s);
	int i = bs_find(s, h, k);
	if (i < 0) {
		if (s->n >= s->cap) {
			/* Full: replace the ban that ends first, if it ends before this one. */
			unsigned victim = 0;
			uint64_t vu = UINT64_MAX;
			for (unsigned j = 0; j <= s->mask; j++) {
				uint64_t u = atomic_load_explicit(&s->slots[j].until, memory_order_relaxed);
				if (u && u < vu) {
					vu = u;
					victim = j;
				}
			}
			if (vu >= until) {
				rc = -ENOSPC;
				goto out;
			}
			bs_del_at(bs, s, victim);
		}
		unsigned j = (unsigned)h & s->mask;
		while (atomic_load_explicit(&s->slots[j].until, memory_order_relaxed))
			j = (j + 1) & s->mask;
		i = (int)j;
		atomic_store_explicit(&s->slots[i].a, k->a, memory_order_relaxed);
		atomic_store_explicit(&s->slots[i].b, k->b, memory_order_relaxed);
		s->n++;
		atomic_fetch_add(&bs->count, 1);
		rc = 1;
	}
	atomic_store_explicit(&s->slots[i].until, until, memory_order_relaxed);
	s->meta[i] = *meta;
	s->meta[i].hash = h;
	if (s->names)
		snprintf(s->names[i], GUARD_NAME_MAX, "%s", name ? name : "");
out:
	bs_wend(s);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static bool bs_remove(struct banset *bs, uint64_t h, const struct gkey *k)
{
	struct bshard *s = &bs->sh[SHARD_OF(h)];
	sw_mutex_lock(&s->mu);
	int i = bs_find(s, h, k);
	if (i >= 0) {
		bs_wbegin(s);
		bs_del_at(bs, s, (unsigned)i);
		bs_wend(s);
	}
	pthread_mutex_unlock(&s->mu);
	return i >= 0;
}

static void bs_target(const struct sw_guard *g, const struct banset *bs, const struct bshard *s,
		      unsigned i, char *out, size_t cap)
{
	if (bs->user) {
		snprintf(out, cap, "%s", s->names[i]);
		return;
	}
	struct gkey k = { atomic_load_explicit(&s->slots[i].a, memory_order_relaxed),
			  atomic_load_explicit(&s->slots[i].b, memory_order_relaxed) };
	key_text(g, &k, out, cap);
}

/* ---- persistence queue ---- */

/* Queue a write; returns its sequence number, or 0 when not queued. */
static uint64_t persist(struct sw_guard *g, bool del, bool user, const char *target, uint64_t until_ms,
			uint64_t created_ms, enum guard_reason reason, uint32_t offences)
{
	if (!g->db)
		return 0;
	uint64_t seq = 0;
	pthread_mutex_lock(&g->wq_mu);
	if (g->wq_n < WQ_CAP && !g->stop) {
		struct wop *op = &g->wq[(g->wq_head + g->wq_n++) % WQ_CAP];
		op->del = del;
		op->row = (struct guard_ban_row){ .user = user, .until_ms = (int64_t)until_ms,
						  .created_ms = (int64_t)created_ms, .offences = offences };
		snprintf(op->row.target, sizeof(op->row.target), "%s", target);
		snprintf(op->row.reason, sizeof(op->row.reason), "%s", guard_reason_str(reason));
		seq = atomic_fetch_add(&g->ban_seq, 1) + 1;
		pthread_cond_signal(&g->wq_wake);
	}
	pthread_mutex_unlock(&g->wq_mu);
	if (!seq)
		count(g, GUARD_S_PERSIST_LOST);
	return seq;
}

/* ---- bans ---- */

static uint32_t ban_duration(const struct sw_guard_conf *c, uint32_t offences)
{
	uint64_t d = c->ban_time_s;
	for (uint32_t i = 1; i < offences && d < c->ban_max_time_s; i++)
		d *= c->ban_escalation ? c->ban_escalation : 1;
	return (uint32_t)(d > c->ban_max_time_s ? c->ban_max_time_s : d);
}

/* One more offence for this key; returns the offence count (1 = first, or
 * first since ban_forget). */
static uint32_t offence(struct sw_guard *g, struct rtab *fail, uint64_t h, const struct gkey *k,
			uint64_t now, uint32_t *duration_s)
{
	uint32_t now_s = (uint32_t)(now / 1000);
	struct rshard *s = rtab_lock(fail, h);
	struct failrec *f = (struct failrec *)rtab_get(g, fail, s, h, k, true);
	if (f->offences && now_s - f->last_ban_end_s > g->conf.ban_forget_s)
		f->offences = 0;
	f->offences++;
	uint32_t off = f->offences;
	*duration_s = ban_duration(&g->conf, off);
	f->last_ban_end_s = now_s + *duration_s;
	f->n = 0;
	pthread_mutex_unlock(&s->mu);
	return off;
}

/* Ban an address key (or a user) for duration_s; true when it was not
 * banned before. Emits the event, queues the write. */
static bool do_ban(struct sw_guard *g, bool user, uint64_t h, const struct gkey *k, const char *name,
		   uint32_t duration_s, uint32_t offences, enum guard_reason reason, uint64_t now)
{
	struct banset *bs = user ? &g->userbans : &g->ipbans;
	char target[GUARD_NAME_MAX];
	if (user)
		snprintf(target, sizeof(target), "%s", name);
	else
		key_text(g, k, target, sizeof(target));
	uint64_t until = now + (uint64_t)duration_s * 1000u;
	struct bmeta meta = { .created_ms = (int64_t)now, .offences = offences, .reason = (uint16_t)reason };
	meta.seq = persist(g, false, user, target, until, now, reason, offences);
	int rc = bs_put(bs, h, k, until, &meta, target);
	if (rc < 0)
		return false;
	if (rc == 1) {
		count(g, GUARD_S_BANS);
		emit(g, GUARD_EV_BAN, user, target, reason, duration_s, offences);
	}
	return rc == 1;
}

static bool ban_ip(struct sw_guard *g, uint64_t h, const struct gkey *k, enum guard_reason reason,
		   uint64_t now)
{
	if (bs_lookup(&g->ipbans, h, k, now))
		return false; /* already banned (a concurrent worker was first) */
	uint32_t dur;
	uint32_t off = offence(g, &g->ipfail, h, k, now, &dur);
	return do_ban(g, false, h, k, NULL, dur, off, reason, now);
}

/* ---- phases ---- */

/* GCRA: allowed when the new theoretical arrival time stays within
 * burst intervals of now; else *wait_us is how long until it would be. */
static bool gcra(uint64_t *tat, uint64_t now_us, uint64_t t_us, uint32_t burst, uint64_t *wait_us)
{
	uint64_t next = (*tat > now_us ? *tat : now_us) + t_us;
	uint64_t limit = now_us + (uint64_t)burst * t_us;
	if (next > limit) {
		*wait_us = next - limit;
		return false;
	}
	*tat = next;
	return true;
}

struct guard_verdict guard_pre(struct sw_guard *g, const struct sockaddr *src, size_t len, uint64_t now)
{
	struct guard_verdict v = { 0 };
	struct gkey k;
	if (!g->conf.enabled || ip_key(g, src, &k) < 0)
		return v;
	uint64_t h = 0;
	bool hashed = false;
	if (atomic_load_explicit(&g->ipbans.count, memory_order_relaxed)) {
		h = ip_hash(g, &k);
		hashed = true;
		if (bs_lookup(&g->ipbans, h, &k, now)) {
			count(g, GUARD_S_BANNED_IP_DROP);
			v.action = GUARD_DROP;
			v.reason = GUARD_R_BANNED_IP;
			return v;
		}
	}
	if (len > g->conf.max_datagram) {
		count(g, GUARD_S_TOO_BIG);
		v.action = GUARD_DROP;
		v.reason = GUARD_R_TOO_BIG;
		return v;
	}
	if (!g->conf.flood_pps || trusted(g, src))
		return v;
	if (!hashed)
		h = ip_hash(g, &k);

	uint64_t now_us = now * 1000u, wait;
	bool ok, ban = false;
	struct rshard *s = rtab_lock(&g->ip, h);
	struct iprec *r = (struct iprec *)rtab_get(g, &g->ip, s, h, &k, true);
	uint64_t *tat = &r->tat[GUARD_C__COUNT];
	if (*tat <= now_us)
		r->flood_over = 0; /* the budget refilled: a new episode */
	ok = gcra(tat, now_us, 1000000u / g->conf.flood_pps, g->conf.flood_burst, &wait);
	if (!ok && ++r->flood_over >= g->conf.flood_pps && g->conf.flood_ban) {
		/* A second's worth of packets over budget: ban, the cheapest answer. */
		r->flood_over = 0;
		ban = true;
	}
	pthread_mutex_unlock(&s->mu);
	if (ok)
		return v;
	count(g, GUARD_S_FLOOD);
	v.reason = GUARD_R_FLOOD;
	if (ban)
		v.banned = ban_ip(g, h, &k, GUARD_R_FLOOD, now);
	switch (g->conf.flood_action) {
	case GUARD_FLOOD_403:
		v.action = GUARD_REPLY;
		v.status = 403;
		break;
	case GUARD_FLOOD_TARPIT:
		v.action = GUARD_TARPIT;
		v.status = 403;
		v.delay_ms = g->conf.tarpit_ms;
		break;
	default:
		v.action = GUARD_DROP;
		break;
	}
	return v;
}

static bool ua_is_scanner(const struct sw_guard *g, const struct sip_msg *m)
{
	if (!g->conf.nua)
		return false;
	for (const struct sip_hdr *h = sip_hdr_get(m, SIP_H_USER_AGENT); h; h = sip_hdr_next(m, h))
		for (unsigned i = 0; i < g->conf.nua; i++)
			if (sw_glob_imatch(g->conf.ua_buf + g->conf.ua_off[i], h->value))
				return true;
	return false;
}

static bool country_in(char list[][3], unsigned n, const char cc[3])
{
	for (unsigned i = 0; i < n; i++)
		if (list[i][0] == cc[0] && list[i][1] == cc[1])
			return true;
	return false;
}

static bool geo_refused(struct sw_guard *g, const struct sockaddr *src)
{
	char cc[3];
	if (geo_country(g->geo, src, cc) < 0)
		return g->conf.geo_unknown_deny;
	if (country_in(g->conf.geo_deny, g->conf.ngeo_deny, cc))
		return true;
	return g->conf.ngeo_allow && !country_in(g->conf.geo_allow, g->conf.ngeo_allow, cc);
}

struct guard_verdict guard_filter(struct sw_guard *g, const struct sip_msg *m,
				  const struct sockaddr *src, uint64_t now)
{
	struct guard_verdict v = { 0 };
	if (!g->conf.enabled || !m->is_request)
		return v;
	bool trust = trusted(g, src);
	if (!trust && ua_is_scanner(g, m)) {
		count(g, GUARD_S_SCANNER);
		struct gkey k;
		v.action = GUARD_DROP;
		v.reason = GUARD_R_SCANNER;
		if (ip_key(g, src, &k) == 0)
			v.banned = ban_ip(g, ip_hash(g, &k), &k, GUARD_R_SCANNER, now);
		return v;
	}
	if (m->method == SIP_M_UNKNOWN || !(g->conf.methods & (1u << m->method))) {
		count(g, GUARD_S_METHOD);
		v.reason = GUARD_R_METHOD;
		if (m->method == SIP_M_ACK || !g->conf.unknown_method_status) {
			v.action = GUARD_DROP; /* ACK is never answered (RFC 3261 §17.2.3) */
		} else {
			v.action = GUARD_REPLY;
			v.status = g->conf.unknown_method_status;
		}
		return v;
	}
	if (g->geo && !trust && (m->method == SIP_M_REGISTER || m->method == SIP_M_INVITE) &&
	    geo_refused(g, src)) {
		count(g, GUARD_S_GEO);
		v.reason = GUARD_R_GEO;
		v.action = g->conf.geo_status ? GUARD_REPLY : GUARD_DROP;
		v.status = g->conf.geo_status;
	}
	return v;
}

static enum guard_class method_class(enum sip_method m)
{
	return m == SIP_M_REGISTER ? GUARD_C_REGISTER : m == SIP_M_INVITE ? GUARD_C_INVITE : GUARD_C_OTHER;
}

static struct guard_verdict limited(struct sw_guard *g, enum guard_reason reason, uint64_t wait_us)
{
	struct guard_verdict v = { .reason = reason };
	count(g, GUARD_S_RATE_LIMITED);
	if (g->conf.over_limit_drop) {
		v.action = GUARD_DROP;
		return v;
	}
	/* RFC 3261 §21.5.4: 503 with Retry-After, so the client backs off. */
	v.action = GUARD_REPLY;
	v.status = 503;
	uint64_t s = (wait_us + 999999u) / 1000000u;
	v.retry_after_s = s < 1 ? 1 : s > 3600 ? 3600 : (uint32_t)s;
	return v;
}

struct guard_verdict guard_rate(struct sw_guard *g, const struct sip_msg *m,
				const struct sockaddr *src, struct sw_str user, uint64_t now)
{
	struct guard_verdict v = { 0 };
	struct gkey k;
	if (!g->conf.enabled || !m->is_request || m->method == SIP_M_ACK || trusted(g, src) ||
	    ip_key(g, src, &k) < 0) {
		count(g, GUARD_S_ALLOWED);
		return v;
	}
	enum guard_class c = method_class(m->method);
	uint64_t now_us = now * 1000u, wait = 0;
	const struct guard_rate_conf *rc = &g->conf.ip[c];
	if (rc->per_hour) {
		uint64_t h = ip_hash(g, &k);
		uint64_t t_us = 3600000000ull / rc->per_hour;
		uint32_t burst = rc->burst;
		struct rshard *s = rtab_lock(&g->ip, h);
		struct iprec *r = (struct iprec *)rtab_get(g, &g->ip, s, h, &k, true);
		if (g->conf.greylist && !r->known) {
			t_us *= g->conf.greylist_divisor;
			burst = burst / g->conf.greylist_divisor ? burst / g->conf.greylist_divisor : 1;
		}
		bool ok = gcra(&r->tat[c], now_us, t_us, burst, &wait);
		pthread_mutex_unlock(&s->mu);
		if (!ok)
			return limited(g, GUARD_R_RATE_IP, wait);
	}
	rc = &g->conf.user[c];
	if (user.len && rc->per_hour) {
		struct gkey uk;
		uint64_t h = user_key(g, user, &uk);
		struct rshard *s = rtab_lock(&g->user, h);
		struct userrec *r = (struct userrec *)rtab_get(g, &g->user, s, h, &uk, true);
		bool ok = gcra(&r->tat[c], now_us, 3600000000ull / rc->per_hour, rc->burst, &wait);
		pthread_mutex_unlock(&s->mu);
		if (!ok)
			return limited(g, GUARD_R_RATE_USER, wait);
	}
	count(g, GUARD_S_ALLOWED);
	return v;
}

/* Sliding window (exact): the ring keeps the last `threshold` failure
 * times; a ban when it is full and its oldest lies within the window. */
static bool fail_hit(struct sw_guard *g, struct rtab *t, uint64_t h, const struct gkey *k,
		     uint32_t threshold, uint64_t now)
{
	uint32_t now_s = (uint32_t)(now / 1000);
	if (threshold > GUARD_MAX_BAN_AFTER)
		threshold = GUARD_MAX_BAN_AFTER;
	struct rshard *s = rtab_lock(t, h);
	struct failrec *f = (struct failrec *)rtab_get(g, t, s, h, k, true);
	if (f->head >= threshold || f->n > threshold)
		f->head = f->n = 0; /* the threshold changed (IP became known) */
	f->ring[f->head] = now_s;
	f->head = (uint8_t)((f->head + 1) % threshold);
	if (f->n < threshold)
		f->n++;
	/* With the ring full, head now points at the oldest entry. */
	bool hit = f->n == threshold && now_s - f->ring[f->head % threshold] < g->conf.ban_window_s;
	if (hit) {
		f->n = 0;
		f->head = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return hit;
}

static bool ip_known(struct sw_guard *g, uint64_t h, const struct gkey *k)
{
	struct rshard *s = rtab_lock(&g->ip, h);
	struct iprec *r = (struct iprec *)rtab_get(g, &g->ip, s, h, k, false);
	bool known = r && r->known;
	pthread_mutex_unlock(&s->mu);
	return known;
}

int guard_auth_failed(struct sw_guard *g, const struct sockaddr *src, struct sw_str user,
		      enum guard_auth_fail why, uint64_t now)
{
	(void)why; /* every kind counts the same; the pipeline logs which */
	count(g, GUARD_S_AUTH_FAILURES);
	struct gkey k;
	if (!g->conf.enabled || !g->conf.ban_after || trusted(g, src) || ip_key(g, src, &k) < 0)
		return 0;
	int res = 0;
	uint64_t h = ip_hash(g, &k);
	uint32_t thr = ip_known(g, h, &k) ? g->conf.ban_after_known : g->conf.ban_after;
	if (fail_hit(g, &g->ipfail, h, &k, thr, now) && ban_ip(g, h, &k, GUARD_R_AUTH_FAILURES, now))
		res |= GUARD_BANNED_IP;
	if (user.len) {
		struct gkey uk;
		uint64_t uh = user_key(g, user, &uk);
		if (fail_hit(g, &g->userfail, uh, &uk, g->conf.ban_after, now) &&
		    !bs_lookup(&g->userbans, uh, &uk, now)) {
			char name[GUARD_NAME_MAX];
			sw_str_copy(user_trunc(user), name, sizeof(name));
			uint32_t dur;
			uint32_t off = offence(g, &g->userfail, uh, &uk, now, &dur);
			if (do_ban(g, true, uh, &uk, name, dur, off, GUARD_R_AUTH_FAILURES, now))
				res |= GUARD_BANNED_USER;
		}
	}
	return res;
}

void guard_auth_ok(struct sw_guard *g, const struct sockaddr *src, struct sw_str user, uint64_t now)
{
	struct gkey k;
	(void)now;
	/* A trusted source is never rate-limited, greylisted or banned: its
	 * "known" mark would only cost a locked table write per request. */
	if (!trusted(g, src) && ip_key(g, src, &k) == 0) {
		uint64_t h = ip_hash(g, &k);
		struct rshard *s = rtab_lock(&g->ip, h);
		struct iprec *r = (struct iprec *)rtab_get(g, &g->ip, s, h, &k, true);
		r->known = true;
		pthread_mutex_unlock(&s->mu);
		/* The IP's failure window is kept: one valid account must not
		 * reset the count of guesses against the others. */
	}
	/* no failures recorded anywhere (the usual case): nothing to reset,
	 * and no two hashes of the name */
	if (user.len && atomic_load_explicit(&g->userfail.total, memory_order_relaxed)) {
		struct gkey uk;
		uint64_t h = user_key(g, user, &uk);
		struct rshard *s = rtab_lock(&g->userfail, h);
		struct failrec *f = (struct failrec *)rtab_get(g, &g->userfail, s, h, &uk, false);
		if (f) {
			f->n = 0;
			f->head = 0;
		}
		pthread_mutex_unlock(&s->mu);
	}
}

bool guard_user_banned(struct sw_guard *g, struct sw_str user, const struct sockaddr *src, uint64_t now)
{
	if (!g->conf.enabled || !user.len || !atomic_load_explicit(&g->userbans.count, memory_order_relaxed))
		return false;
	struct gkey uk, k;
	uint64_t uh = user_key(g, user, &uk);
	if (!bs_lookup(&g->userbans, uh, &uk, now) || trusted(g, src))
		return false;
	if (ip_key(g, src, &k) == 0 && ip_known(g, ip_hash(g, &k), &k))
		return false;
	count(g, GUARD_S_BANNED_USER);
	return true;
}

bool guard_ip_banned(struct sw_guard *g, const struct sockaddr *src, uint64_t now)
{
	struct gkey k;
	if (ip_key(g, src, &k) < 0)
		return false;
	return bs_lookup(&g->ipbans, ip_hash(g, &k), &k, now);
}

/* Target text → key and hash. */
static int target_key(struct sw_guard *g, const char *target, bool user, struct gkey *k, uint64_t *h,
		      char *norm, size_t cap)
{
	if (user) {
		struct sw_str u = sw_str_trim(sw_str_c(target));
		if (!u.len || u.len >= GUARD_NAME_MAX)
			return -EINVAL;
		*h = user_key(g, u, k);
		sw_str_copy(u, norm, cap);
		return 0;
	}
	uint8_t b[16];
	unsigned fam;
	if (text_key(g->conf.ipv6_prefix, target, b, &fam) < 0)
		return -EINVAL;
	key_from_bytes(b, k);
	*h = ip_hash(g, k);
	key_text(g, k, norm, cap);
	struct sockaddr_in6 sa;
	key_sockaddr(k, &sa);
	return trusted(g, (const struct sockaddr *)&sa) ? -EPERM : 0;
}

int guard_ban(struct sw_guard *g, const char *target, bool user, uint32_t duration_s,
	      enum guard_reason reason, uint64_t now)
{
	struct gkey k;
	uint64_t h;
	char norm[GUARD_NAME_MAX];
	int rc = target_key(g, target, user, &k, &h, norm, sizeof(norm));
	if (rc < 0)
		return rc;
	uint32_t dur;
	uint32_t off = offence(g, user ? &g->userfail : &g->ipfail, h, &k, now, &dur);
	if (duration_s)
		dur = duration_s;
	struct banset *bs = user ? &g->userbans : &g->ipbans;
	do_ban(g, user, h, &k, norm, dur, off, reason, now);
	return bs_lookup(bs, h, &k, now) ? 0 : -ENOSPC;
}

int guard_unban(struct sw_guard *g, const char *target, bool user)
{
	struct gkey k;
	uint64_t h;
	char norm[GUARD_NAME_MAX];
	int rc = target_key(g, target, user, &k, &h, norm, sizeof(norm));
	if (rc < 0 && rc != -EPERM)
		return rc;
	persist(g, true, user, norm, 0, 0, GUARD_R_ADMIN, 0);
	if (!bs_remove(user ? &g->userbans : &g->ipbans, h, &k))
		return -ENOENT;
	count(g, GUARD_S_UNBANS);
	emit(g, GUARD_EV_UNBAN, user, norm, GUARD_R_ADMIN, 0, 0);
	return 0;
}

static void expire(struct sw_guard *g, struct banset *bs, uint64_t now)
{
	if (!atomic_load_explicit(&bs->count, memory_order_relaxed))
		return;
	for (unsigned si = 0; si < SHARDS; si++) {
		struct bshard *s = &bs->sh[si];
		sw_mutex_lock(&s->mu);
		for (unsigned i = 0; i <= s->mask && s->n;) {
			uint64_t u = atomic_load_explicit(&s->slots[i].until, memory_order_relaxed);
			if (!u || u > now) {
				i++;
				continue;
			}
			char target[GUARD_NAME_MAX];
			bs_target(g, bs, s, i, target, sizeof(target));
			uint32_t off = s->meta[i].offences;
			bs_wbegin(s);
			bs_del_at(bs, s, i); /* slot i may now hold a shifted entry: look again */
			bs_wend(s);
			count(g, GUARD_S_UNBANS);
			emit(g, GUARD_EV_UNBAN, bs->user, target, GUARD_R_EXPIRED, 0, off);
		}
		pthread_mutex_unlock(&s->mu);
	}
}

void guard_tick(struct sw_guard *g, uint64_t now)
{
	atomic_store(&g->tick_now, now);
	expire(g, &g->ipbans, now);
	expire(g, &g->userbans, now);
}

void guard_stats(struct sw_guard *g, struct guard_stats *out)
{
	memset(out, 0, sizeof(*out));
	unsigned n = atomic_load(&g->nslots);
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	for (unsigned c = 0; c < GUARD_S__COUNT; c++) {
		uint64_t sum = atomic_load_explicit(&g->shared.c[c], memory_order_relaxed);
		for (unsigned i = 0; i < n; i++)
			sum += atomic_load_explicit(&g->slots[i].c[c], memory_order_relaxed);
		out->c[c] = sum;
	}
	out->ip_bans = atomic_load(&g->ipbans.count);
	out->user_bans = atomic_load(&g->userbans.count);
}

size_t guard_allow_hdr(const struct sw_guard *g, char *buf, size_t cap)
{
	size_t n = 0;
	int w = snprintf(buf, cap, "Allow: ");
	if (w < 0 || (size_t)w >= cap)
		return 0;
	n = (size_t)w;
	bool first = true;
	for (unsigned m = 1; m < SIP_M__COUNT; m++) {
		if (!(g->conf.methods & (1u << m)))
			continue;
		w = snprintf(buf + n, cap - n, "%s%s", first ? "" : ", ", sip_method_str((enum sip_method)m));
		if (w < 0 || (size_t)w >= cap - n)
			return 0;
		n += (size_t)w;
		first = false;
	}
	w = snprintf(buf + n, cap - n, "\r\n");
	if (w < 0 || (size_t)w >= cap - n)
		return 0;
	return n + (size_t)w;
}

bool guard_geo_enabled(const struct sw_guard *g)
{
	return g->geo != NULL;
}

/* ---- bans.db: load at start, the writer thread, re-reads ---- */

static uint64_t writer_now(struct sw_guard *g)
{
	uint64_t t = atomic_load(&g->tick_now);
	return t ? t : guard_now_ms();
}

/* A row → in-memory ban (no write back: it came from the DB). seq 0: a
 * later re-read may remove it. Returns 1 when newly banned. */
static int apply_row(struct sw_guard *g, const struct guard_ban_row *r, uint64_t now)
{
	struct gkey k;
	uint64_t h;
	char norm[GUARD_NAME_MAX];
	if (target_key(g, r->target, r->user, &k, &h, norm, sizeof(norm)) < 0)
		return 0; /* unparsable or trusted: never applied */
	if (r->until_ms <= (int64_t)now)
		return 0;
	struct bmeta meta = { .created_ms = r->created_ms, .offences = r->offences,
			      .reason = (uint16_t)reason_parse(r->reason) };
	struct banset *bs = r->user ? &g->userbans : &g->ipbans;
	/* Unchanged rows are left alone. */
	struct bshard *s = &bs->sh[SHARD_OF(h)];
	sw_mutex_lock(&s->mu);
	int i = bs_find(s, h, &k);
	bool same = i >= 0 && atomic_load_explicit(&s->slots[i].until, memory_order_relaxed) ==
				      (uint64_t)r->until_ms;
	pthread_mutex_unlock(&s->mu);
	if (same)
		return 0;
	return bs_put(bs, h, &k, (uint64_t)r->until_ms, &meta, norm) == 1;
}

struct load_ctx {
	struct sw_guard *g;
	uint64_t now;
	unsigned loaded;
};

static int load_row(void *ctx, const struct guard_ban_row *r)
{
	struct load_ctx *lc = ctx;
	struct sw_guard *g = lc->g;
	struct gkey k;
	uint64_t h;
	char norm[GUARD_NAME_MAX];
	if (target_key(g, r->target, r->user, &k, &h, norm, sizeof(norm)) < 0)
		return 0;
	/* Offence history, for escalation across restarts. */
	struct rtab *t = r->user ? &g->userfail : &g->ipfail;
	struct rshard *s = rtab_lock(t, h);
	struct failrec *f = (struct failrec *)rtab_get(g, t, s, h, &k, true);
	f->offences = r->offences;
	f->last_ban_end_s = (uint32_t)(r->until_ms / 1000);
	pthread_mutex_unlock(&s->mu);
	lc->loaded += (unsigned)apply_row(g, r, lc->now);
	return 0;
}

struct seen {
	bool user;
	struct gkey k;
};

static int seen_cmp(const void *x, const void *y)
{
	const struct seen *a = x, *b = y;
	if (a->user != b->user)
		return a->user ? 1 : -1;
	if (a->k.a != b->k.a)
		return a->k.a < b->k.a ? -1 : 1;
	return a->k.b < b->k.b ? -1 : a->k.b > b->k.b;
}

struct sync_ctx {
	struct sw_guard *g;
	uint64_t now;
	struct seen *seen;
	size_t n, cap;
};

static int sync_row(void *ctx, const struct guard_ban_row *r)
{
	struct sync_ctx *sc = ctx;
	struct sw_guard *g = sc->g;
	struct gkey k;
	uint64_t h;
	char norm[GUARD_NAME_MAX];
	if (target_key(g, r->target, r->user, &k, &h, norm, sizeof(norm)) < 0)
		return 0;
	if (sc->n == sc->cap)
		return 1; /* more rows than the tables hold: stop here */
	sc->seen[sc->n++] = (struct seen){ r->user, k };
	if (apply_row(g, r, sc->now) == 1) {
		count(g, GUARD_S_ADMIN_CHANGES);
		uint64_t left = (uint64_t)r->until_ms - sc->now;
		emit(g, GUARD_EV_BAN, r->user, norm, GUARD_R_ADMIN, (uint32_t)(left / 1000), r->offences);
	}
	return 0;
}

/* Drop in-memory bans that bans.db no longer has, among those whose
 * write the writer took before it read the table (seq <= upto). */
static void sync_removed(struct sw_guard *g, struct banset *bs, const struct sync_ctx *sc, uint64_t upto)
{
	for (unsigned si = 0; si < SHARDS; si++) {
		struct bshard *s = &bs->sh[si];
		sw_mutex_lock(&s->mu);
		for (unsigned i = 0; i <= s->mask && s->n;) {
			if (!atomic_load_explicit(&s->slots[i].until, memory_order_relaxed) ||
			    s->meta[i].seq > upto) {
				i++;
				continue;
			}
			struct seen key = { bs->user, { atomic_load_explicit(&s->slots[i].a, memory_order_relaxed),
							atomic_load_explicit(&s->slots[i].b, memory_order_relaxed) } };
			if (bsearch(&key, sc->seen, sc->n, sizeof(key), seen_cmp)) {
				i++;
				continue;
			}
			char target[GUARD_NAME_MAX];
			bs_target(g, bs, s, i, target, sizeof(target));
			bs_wbegin(s);
			bs_del_at(bs, s, i);
			bs_wend(s);
			count(g, GUARD_S_ADMIN_CHANGES);
			count(g, GUARD_S_UNBANS);
			emit(g, GUARD_EV_UNBAN, bs->user, target, GUARD_R_ADMIN, 0, 0);
		}
		pthread_mutex_unlock(&s->mu);
	}
}

static void resync(struct sw_guard *g, uint64_t upto)
{
	struct sync_ctx sc = { .g = g, .now = writer_now(g) };
	sc.cap = (size_t)g->conf.ban_table_size + g->conf.ban_table_size / 4 + 16;
	sc.seen = malloc(sc.cap * sizeof(*sc.seen));
	if (!sc.seen)
		return;
	int rc = gdb_each(g->db, (int64_t)sc.now, sync_row, &sc);
	if (rc >= 0) {
		/* A table cut short (rc == 1) must not be taken for deletions. */
		qsort(sc.seen, sc.n, sizeof(*sc.seen), seen_cmp);
		if (rc == 0) {
			sync_removed(g, &g->ipbans, &sc, upto);
			sync_removed(g, &g->userbans, &sc, upto);
		}
	}
	free(sc.seen);
}

static void write_batch(struct sw_guard *g, struct wop *ops, unsigned n)
{
	if (!n)
		return;
	int rc = gdb_begin(g->db);
	for (unsigned i = 0; i < n && rc == 0; i++)
		rc = ops[i].del ? (gdb_del(g->db, ops[i].row.user, ops[i].row.target) < 0 ? -EIO : 0)
				: gdb_put(g->db, &ops[i].row);
	if (rc == 0)
		rc = gdb_commit(g->db);
	if (rc < 0) {
		gdb_rollback(g->db);
		for (unsigned i = 0; i < n; i++)
			count(g, GUARD_S_PERSIST_LOST);
	}
}

static void *writer_main(void *arg)
{
	struct sw_guard *g = arg;
	int64_t dv_last = g->dv_open;
	uint64_t last_poll = 0, last_purge = 0;
	sw_thread_background("sw-guard-db");
	pthread_mutex_lock(&g->wq_mu);
	for (;;) {
		if (!g->wq_n && !g->sync_req && !g->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += POLL_MS / 1000;
			pthread_cond_timedwait(&g->wq_wake, &g->wq_mu, &ts);
		}
		bool stop = g->stop, forced = g->sync_req;
		g->sync_req = false;
		g->cycle_start++;
		unsigned n = 0;
		while (g->wq_n) {
			g->wbatch[n++] = g->wq[g->wq_head];
			g->wq_head = (g->wq_head + 1) % WQ_CAP;
			g->wq_n--;
		}
		uint64_t upto = atomic_load(&g->ban_seq);
		pthread_mutex_unlock(&g->wq_mu);

		write_batch(g, g->wbatch, n);
		uint64_t mono;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		mono = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
		if (!stop && (forced || mono - last_poll >= POLL_MS)) {
			int64_t dv;
			last_poll = mono;
			if (gdb_data_version(g->db, &dv) == 0 && dv != dv_last) {
				dv_last = dv;
				resync(g, upto);
			}
		}
		if (!stop && mono - last_purge >= PURGE_MS) {
			last_purge = mono;
			gdb_purge(g->db, (int64_t)writer_now(g) - (int64_t)g->conf.ban_forget_s * 1000);
		}

		pthread_mutex_lock(&g->wq_mu);
		g->cycle_done++;
		pthread_cond_broadcast(&g->wq_done);
		if (stop && !g->wq_n)
			break;
	}
	pthread_mutex_unlock(&g->wq_mu);
	return NULL;
}

void guard_sync(struct sw_guard *g)
{
	if (!g->writer_started)
		return;
	pthread_mutex_lock(&g->wq_mu);
	uint64_t want = g->cycle_start + 1;
	g->sync_req = true;
	pthread_cond_signal(&g->wq_wake);
	while (g->cycle_done < want && !g->stop)
		pthread_cond_wait(&g->wq_done, &g->wq_mu);
	pthread_mutex_unlock(&g->wq_mu);
}

/* ---- open / close ---- */

struct sw_guard *guard_open(const struct sw_guard_conf *conf, const char *data_dir, int *err)
{
	int rc = -ENOMEM;
	struct sw_guard *g = calloc(1, sizeof(*g));
	if (!g)
		goto fail_nog;
	g->conf = *conf;
	if (g->conf.ipv6_prefix == 0 || g->conf.ipv6_prefix > 128)
		g->conf.ipv6_prefix = 64;
	if (!g->conf.greylist_divisor)
		g->conf.greylist_divisor = 1;
	g->gid = atomic_fetch_add(&next_gid, 1);
	pthread_mutex_init(&g->ev_mu, NULL);
	pthread_mutex_init(&g->wq_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wq_wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&g->wq_done, NULL);
	if ((rc = sw_hkey_random(&g->hkey)) < 0 || (rc = sw_hkey_random(&g->ukey2)) < 0)
		goto fail;
	rc = -ENOMEM;
	g->ev = calloc(EV_CAP, sizeof(*g->ev));
	if (!g->ev || rtab_init(&g->ip, conf->ip_table_size, sizeof(struct iprec)) < 0 ||
	    rtab_init(&g->user, conf->user_table_size, sizeof(struct userrec)) < 0 ||
	    rtab_init(&g->ipfail, conf->fail_table_size, sizeof(struct failrec)) < 0 ||
	    rtab_init(&g->userfail, conf->fail_table_size, sizeof(struct failrec)) < 0 ||
	    bs_init(&g->ipbans, conf->ban_table_size, false) < 0 ||
	    bs_init(&g->userbans, conf->ban_table_size / 4, true) < 0)
		goto fail;
	if (conf->geo_db[0] && (rc = geo_open(conf->geo_db, &g->geo)) < 0)
		goto fail;
	if (data_dir) {
		char path[GUARD_PATH_MAX + 16];
		if (snprintf(path, sizeof(path), "%s/bans.db", data_dir) >= (int)sizeof(path)) {
			rc = -ENAMETOOLONG;
			goto fail;
		}
		if ((rc = gdb_open(path, &g->db)) < 0)
			goto fail;
		rc = -ENOMEM;
		g->wq = calloc(WQ_CAP, sizeof(*g->wq));
		g->wbatch = calloc(WQ_CAP, sizeof(*g->wbatch));
		if (!g->wq || !g->wbatch)
			goto fail;
		struct load_ctx lc = { .g = g, .now = guard_now_ms() };
		/* Read the version first: a commit after it triggers a re-read. */
		if (gdb_data_version(g->db, &g->dv_open) < 0 || gdb_each(g->db, INT64_MIN, load_row, &lc) < 0) {
			rc = -EIO;
			goto fail;
		}
		if ((rc = -pthread_create(&g->writer, NULL, writer_main, g)) < 0)
			goto fail;
		g->writer_started = true;
	}
	*err = 0;
	return g;
fail:
	guard_close(g);
fail_nog:
	*err = rc;
	return NULL;
}

void guard_close(struct sw_guard *g)
{
	if (!g)
		return;
	if (g->writer_started) {
		pthread_mutex_lock(&g->wq_mu);
		g->stop = true;
		pthread_cond_signal(&g->wq_wake);
		pthread_mutex_unlock(&g->wq_mu);
		pthread_join(g->writer, NULL);
	}
	gdb_close(g->db);
	geo_close(g->geo);
	free(g->wq);
	free(g->wbatch);
	free(g->ev);
	rtab_free(&g->ip);
	rtab_free(&g->user);
	rtab_free(&g->ipfail);
	rtab_free(&g->userfail);
	bs_free(&g->ipbans);
	bs_free(&g->userbans);
	pthread_mutex_destroy(&g->ev_mu);
	pthread_mutex_destroy(&g->wq_mu);
	pthread_cond_destroy(&g->wq_wake);
	pthread_cond_destroy(&g->wq_done);
	free(g);
}

unsigned guard_table_count(struct sw_guard *g, bool user)
{
	return rtab_count(user ? &g->user : &g->ip);
}
