/* Server transactions (RFC 3261 §17.2): matching, state machines, timers.
 *
 * One table per worker, created once: `cap` compact entries (128 bytes) in
 * one array, an open-addressing index over them, a free list, and a timer
 * wheel of deadlines. Completed non-INVITE transactions live for
 * Timer J = 64*T1 (32 s), so at 30k REGISTER/s a table holds ~1M entries:
 * the entry keeps only what matching and the timers need, and the stored
 * reply lives in a size-classed slab allocated on demand under a byte
 * budget (sip_txn_set_reply_memory), for non-INVITE transactions without
 * the fields the TU copies from the request (sip_txn_respond_copied).
 *
 * Matching (§17.2.3) compares a 128-bit keyed hash of the serialized key
 * (branch, sent-by, method; or the RFC 2543 fields) plus its length, not a
 * copy of it: SipHash-2-4's 128-bit output under a random key (a key over
 * 512 bytes: two 64-bit SipHashes under independent keys over per-part
 * digests); SipHash is a PRF, so without the keys a peer can do no
 * better than guess: a forged match (a request absorbed as another's
 * retransmission) has probability 2^-128 per attempt, and an accidental
 * one among 2^20 live entries ~2^-108. The serialization is injective
 * (every part is length-prefixed), so equal hashes of distinct keys are
 * only such collisions. RFC 2543 To tags are kept as one 64-bit keyed
 * hash each; they are only compared after the 128-bit key matched.
 *
 * Lifetime: a transaction that terminates (timer, ACK on a reliable
 * transport, 2xx to INVITE, final on a reliable non-INVITE) is unlinked at
 * once and its slot is reclaimed at the next sip_txn_receive() or
 * sip_txn_tick(); a TU must not keep a struct sip_txn * across those calls
 * once the transaction may have ended (at the latest 64*T1 after creation
 * without a reply). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sip/txn.h"

#define KEY_BUF 512            /* keys serialized up to this are hashed whole */
#define REPLY_MAX 65536        /* largest stored reply */
#define NIL UINT32_MAX
#define NEVER UINT64_MAX
/* An INVITE that got a provisional waits for its TU; a TU that never sends
 * the final must not leak the slot. Longer than a proxy's Timer C
 * (> 3 min, RFC 3261 §16.6 item 11), restarted by every provisional. */
#define PROCEEDING_GUARD_MS 240000u

/* Reply slabs: 64 KiB chunks carved into blocks of one size class (64-byte
 * steps to 2 KiB, then 3, 4, 6, 8 KiB); a larger reply gets a chunk of its
 * own. A block is named by a 32-bit ref: chunk index << 10 | offset / 64. */
#define SLAB_CHUNK 65536u
#define GRAIN 64u
#define SMALL_MAX 2048u
#define NCLASS (SMALL_MAX / GRAIN + 4)
#define CLASS_BIG 0xffu
#define REF_NONE UINT32_MAX
#define CHUNKS_MAX ((1u << 22) - 1)

static const char cookie[] = "z9hG4bK"; /* RFC 3261 §8.1.1.7 */

enum {
	F_USED = 1,
	F_ZOMBIE = 2,           /* terminated, slot not yet reclaimed */
	F_INVITE = 4,
	F_COOKIE = 8,           /* RFC 3261 branch matching, else RFC 2543 */
	F_RELIABLE = 16,
	F_TIMED = 32,           /* filed in the timer wheel */
};

struct sip_txn {
	uint64_t h1, h2;        /* 128-bit keyed hash of the key */
	uint64_t end_at;        /* Timer H / I / J, or the unanswered limit */
	uint64_t g_at;          /* Timer G (INVITE, unreliable, Completed) */
	uint64_t req_tag;       /* the request's To tag (RFC 2543): 0 = none */
	uint64_t resp_tag;      /* the To tag we answered with (ACK, §17.2.3) */
	uint32_t hole;          /* the reply's copied fields go here, 0 = none */
	uint32_t spare;         /* unused (keeps two cache lines) */
	uint32_t klen;          /* full serialized key length */
	uint32_t next;          /* free / zombie list */
	uint32_t tnext;         /* timer wheel slot list (F_TIMED) */
	uint32_t g_ivl;
	uint32_t reply_ref;     /* REF_NONE = no reply stored */
	uint32_t reply_len;
	uint32_t conn_id;       /* struct sip_txn_dest, compacted */
	int32_t fd;
	uint16_t last_status;
	uint8_t state;
	uint8_t flags;
	uint8_t proto;
	uint8_t alen;
	uint16_t tslot;         /* the wheel slot it is filed in */
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} addr;
	uint32_t tprev;
};

_Static_assert(sizeof(struct sip_txn) == 128, "two cache lines per transaction");

/* Index: linear probing over twice as many slots as entries (load <= 0.5),
 * each slot the entry's index + 1 (0 = empty) and the low 32 bits of its
 * h1, so probing compares within the slot array and touches an entry only
 * when its hash matches; removal shifts the cluster back (no tombstones).
 * With chained buckets every lookup and every expiry walked entries at
 * random addresses in a table of 10^6 (a cache and TLB miss each): the
 * busiest lines of the whole server at 60k REGISTER/s. The keys are keyed
 * SipHash outputs, so a peer cannot aim collisions at one cluster. */
struct ixslot {
	uint32_t ref;
	uint32_t h;
};

struct slab_chunk {
	char *mem;
	uint32_t size;          /* bytes (SLAB_CHUNK, or a big reply's length) */
	uint32_t live;          /* blocks handed out */
	uint32_t carved;        /* bytes carved so far */
	uint32_t next_free;     /* unused directory slot list */
	uint8_t cls;
};

struct slab_class {
	uint32_t free_head;     /* doubly linked through the free blocks */
	uint32_t cur;           /* chunk being carved, or NIL */
};

struct sip_txn_table {
	struct sw_hkey k1, k2;
	struct sip_timers tm;
	unsigned cap;
	unsigned live;
	uint32_t mask;
	struct ixslot *ix;
	/* timer wheel: WHEEL_SLOTS lists of entries whose deadline falls in
	 * that WHEEL_MS slice (modulo the wheel's turn), a bit per non-empty
	 * slot, and the absolute slice processed up to */
	uint32_t *whead;
	uint64_t *wbits;
	uint64_t wcur;
	bool wstarted;
	unsigned ntimed;
	uint32_t free_head;
	uint32_t zombie_head;
	uint32_t fresh;          /* entries [fresh, cap) never used yet */
	struct sip_txn *e;
	/* reply slabs */
	size_t rbudget, rused;
	uint64_t rfail;
	struct slab_chunk *chunk;
	uint32_t nchunk, chunk_cap, chunk_free;
	struct slab_class cls[NCLASS];
	/* slab chunks come from one reserved region (see arena_get) */
	char *arena;
	size_t arena_len;
	uint32_t arena_used;     /* chunks carved from it so far */
	uint32_t arena_free;     /* released chunks, linked through their memory */
};

/* --- reply slabs ----------------------------------------------------- */

static const uint32_t big_class_size[4] = { 3072, 4096, 6144, 8192 };

static unsigned class_of(size_t len)
{
	if (len <= SMALL_MAX)
		return len ? (unsigned)((len - 1) / GRAIN) : 0;
	for (unsigned i = 0; i < 4; i++)
		if (len <= big_class_size[i])
			return SMALL_MAX / GRAIN + i;
	return CLASS_BIG;
}

static uint32_t class_size(unsigned c)
{
	return c < SMALL_MAX / GRAIN ? (c + 1) * GRAIN : big_class_size[c - SMALL_MAX / GRAIN];
}

static char *ref_ptr(const struct sip_txn_table *t, uint32_t ref)
{
	return t->chunk[ref >> 10].mem + (size_t)(ref & 1023u) * GRAIN;
}

/* free blocks hold (prev, next) refs in their first 8 bytes */
static void fl_get(const struct sip_txn_table *t, uint32_t ref, uint32_t *prev, uint32_t *next)
{
	const char *p = ref_ptr(t, ref);
	memcpy(prev, p, 4);
	memcpy(next, p + 4, 4);
}

static void fl_set_prev(const struct sip_txn_table *t, uint32_t ref, uint32_t prev)
{
	memcpy(ref_ptr(t, ref), &prev, 4);
}

static void fl_set_next(const struct sip_txn_table *t, uint32_t ref, uint32_t next)
{
	memcpy(ref_ptr(t, ref) + 4, &next, 4);
}

static void fl_unlink(struct sip_txn_table *t, struct slab_class *c, uint32_t ref)
{
	uint32_t prev, next;
	fl_get(t, ref, &prev, &next);
	if (prev != REF_NONE)
		fl_set_next(t, prev, next);
	else
		c->free_head = next;
	if (next != REF_NONE)
		fl_set_prev(t, next, prev);
}

/* Slab chunks (SLAB_CHUNK bytes) are carved from one region reserved for
 * the whole reply budget (address space only: MAP_NORESERVE, pages appear
 * when first written) and advised onto transparent huge pages. With
 * malloc'd chunks the replies of a busy worker (~900 000 kept for Timer J
 * at 28 000 REGISTER pairs/s, ~520 MB) sat on 4 KiB pages spread over
 * glibc arenas: more TLB misses on the hot path, and more pages for the
 * kernel's page scanners (the VM's DAMON thread, bench/RESULTS.md). A
 * released chunk stays resident and is reused first (malloc kept its
 * memory too). Falls back to malloc if the region cannot be reserved or
 * is used up (the budget grew after the reservation). */
static char *arena_get(struct sip_txn_table *t)
{
	if (!t->arena && t->arena_len == 0) {
		size_t len = (t->rbudget + SLAB_CHUNK - 1) / SLAB_CHUNK * SLAB_CHUNK;
		if (len > (size_t)CHUNKS_MAX * SLAB_CHUNK)
			len = (size_t)CHUNKS_MAX * SLAB_CHUNK;
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			       -1, 0);
		t->arena_len = len;   /* tried once */
		if (p == MAP_FAILED)
			return NULL;
		(void)madvise(p, len, MADV_HUGEPAGE);
		t->arena = p;
	}
	if (!t->arena)
		return NULL;
	if (t->arena_free != NIL) {
		uint32_t i = t->arena_free;
		char *m = t->arena + (size_t)i * SLAB_CHUNK;
		memcpy(&t->arena_free, m, sizeof(t->arena_free));
		return m;
	}
	if ((size_t)(t->arena_used + 1) * SLAB_CHUNK > t->arena_len)
		return NULL;
	return t->arena + (size_t)t->arena_used++ * SLAB_CHUNK;
}

static bool arena_has(const struct sip_txn_table *t, const char *m)
{
	return t->arena && m >= t->arena && m < t->arena + t->arena_len;
}

static void arena_put(struct sip_txn_table *t, char *m)
{
	uint32_t i = (uint32_t)((size_t)(m - t->arena) / SLAB_CHUNK);
	memcpy(m, &t->arena_free, sizeof(t->arena_free));
	t->arena_free = i;
}

static uint32_t chunk_new(struct sip_txn_table *t, uint32_t size, uint8_t cls)
{
	if (t->rused + size > t->rbudget)
		return NIL;
	uint32_t ci;
	if (t->chunk_free != NIL) {
		ci = t->chunk_free;
	} else {
		if (t->nchunk >= CHUNKS_MAX)
			return NIL;
		if (t->nchunk == t->chunk_cap) {
			uint32_t nc = t->chunk_cap ? t->chunk_cap * 2 : 64;
			struct slab_chunk *d = realloc(t->chunk, (size_t)nc * sizeof(*d));
			if (!d)
				return NIL;
			t->chunk = d;
			t->chunk_cap = nc;
		}
		ci = t->nchunk;
	}
	char *mem = size == SLAB_CHUNK ? arena_get(t) : NULL;
	if (!mem)
		mem = malloc(size);
	if (!mem)
		return NIL;
	if (ci == t->chunk_free)
		t->chunk_free = t->chunk[ci].next_free;
	else
		t->nchunk++;
	t->chunk[ci] = (struct slab_chunk){ mem, size, 0, 0, NIL, cls };
	t->rused += size;
	return ci;
}

static void chunk_release(struct sip_txn_table *t, uint32_t ci)
{
	struct slab_chunk *ch = &t->chunk[ci];
	if (arena_has(t, ch->mem))
		arena_put(t, ch->mem);
	else
		free(ch->mem);
	t->rused -= ch->size;
	ch->mem = NULL;
	ch->next_free = t->chunk_free;
	t->chunk_free = ci;
}

static uint32_t slab_alloc(struct sip_txn_table *t, size_t len)
{
	unsigned c = class_of(len);
	if (c == CLASS_BIG) {
		uint32_t ci = chunk_new(t, (uint32_t)len, CLASS_BIG);
		if (ci == NIL)
			return REF_NONE;
		t->chunk[ci].live = 1;
		return ci << 10;
	}
	struct slab_class *sc = &t->cls[c];
	uint32_t ref = sc->free_head;
	if (ref != REF_NONE) {
		fl_unlink(t, sc, ref);
		t->chunk[ref >> 10].live++;
		return ref;
	}
	uint32_t bs = class_size(c);
	if (sc->cur == NIL || t->chunk[sc->cur].carved + bs > SLAB_CHUNK) {
		uint32_t ci = chunk_new(t, SLAB_CHUNK, (uint8_t)c);
		if (ci == NIL)
			return REF_NONE;
		sc->cur = ci;
	}
	struct slab_chunk *ch = &t->chunk[sc->cur];
	ref = sc->cur << 10 | ch->carved / GRAIN;
	ch->carved += bs;
	ch->live++;
	return ref;
}

static void slab_free(struct sip_txn_table *t, uint32_t ref)
{
	uint32_t ci = ref >> 10;
	struct slab_chunk *ch = &t->chunk[ci];
	if (ch->cls == CLASS_BIG) {
		chunk_release(t, ci);
		return;
	}
	struct slab_class *sc = &t->cls[ch->cls];
	fl_set_prev(t, ref, REF_NONE);
	fl_set_next(t, ref, sc->free_head);
	if (sc->free_head != REF_NONE)
		fl_set_prev(t, sc->free_head, ref);
	sc->free_head = ref;
	if (--ch->live)
		return;
	if (ci == sc->cur)
		sc->cur = NIL;
	/* an empty chunk goes back to the budget, so a shift between reply
	 * sizes cannot strand memory in a class no longer used */
	uint32_t bs = class_size(ch->cls);
	for (uint32_t off = 0; off + bs <= ch->carved; off += bs)
		fl_unlink(t, sc, ci << 10 | off / GRAIN);
	chunk_release(t, ci);
}

/* --- keys ------------------------------------------------------------ */

struct kpart {
	const void *p;
	size_t n;
	bool lower;
};

struct tkey {
	uint64_t h1, h2;
	uint32_t len;
};

static char lc(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static void le32(uint8_t *o, uint64_t v)
{
	for (int i = 0; i < 4; i++)
		o[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *o, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		o[i] = (uint8_t)(v >> (8 * i));
}

#define KPARTS 9

/* Serialize parts as (u32 length, bytes) and hash the serialization under
 * both keys when it fits KEY_BUF; else hash per-part digests (a separate
 * domain: leading 0xff) under both keys. */
static void key_build(const struct sip_txn_table *t, const struct kpart *parts, unsigned n,
		      struct tkey *k)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += 4 + (uint64_t)parts[i].n;
	k->len = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;

	if (total <= KEY_BUF) {
		char buf[KEY_BUF];
		size_t off = 0;
		for (unsigned i = 0; i < n; i++) {
			le32((uint8_t *)buf + off, parts[i].n);
			off += 4;
			const char *p = parts[i].p;
			if (parts[i].lower)
				for (size_t j = 0; j < parts[i].n; j++)
					buf[off + j] = lc(p[j]);
			else if (parts[i].n)
				memcpy(buf + off, p, parts[i].n);
			off += parts[i].n;
		}
		uint64_t h[2];
		sw_siphash128(&t->k1, buf, off, h);   /* one pass, 128 bits */
		k->h1 = h[0];
		k->h2 = h[1];
		return;
	}
	uint8_t d1[KPARTS * 12 + 1], d2[KPARTS * 12 + 1];
	size_t dl = 0;
	d1[dl] = d2[dl] = 0xff; /* domain apart from short keys */
	dl++;
	for (unsigned i = 0; i < n; i++) {
		const void *p = parts[i].p;
		char low[256];
		/* lowercase short parts (hosts); a host over 255 octets is no
		 * DNS name and is hashed as sent */
		if (parts[i].lower && parts[i].n <= sizeof(low)) {
			for (size_t j = 0; j < parts[i].n; j++)
				low[j] = lc(((const char *)p)[j]);
			p = low;
		}
		le64(d1 + dl, sw_siphash(&t->k1, p ? p : "", parts[i].n));
		le64(d2 + dl, sw_siphash(&t->k2, p ? p : "", parts[i].n));
		le32(d1 + dl + 8, parts[i].n);
		le32(d2 + dl + 8, parts[i].n);
		dl += 12;
	}
	k->h1 = sw_siphash(&t->k1, d1, dl);
	k->h2 = sw_siphash(&t->k2, d2, dl);
}

static bool has_cookie(struct sw_str b)
{
	/* RFC 4475 badbranch: a bare "z9hG4bK" is not RFC 3261 */
	return b.p && b.len > sizeof(cookie) - 1 && memcmp(b.p, cookie, sizeof(cookie) - 1) == 0;
}

/* RFC 3261 §17.2.3. `cls` is the method whose transaction is looked for:
 * the request's own, INVITE for ACK and for a CANCEL's target (§9.2). */
static bool key_for(const struct sip_txn_table *t, const struct sip_msg *m,
		    enum sip_method cls, struct tkey *k)
{
	struct kpart parts[KPARTS];
	unsigned n = 0;
	uint8_t c = (uint8_t)cls;
	uint8_t port[2] = { (uint8_t)(m->via1.port >> 8), (uint8_t)m->via1.port };
	uint8_t cs[4];
	bool ck = has_cookie(m->via1.branch);

	le32(cs, m->cseq.num);
	parts[n++] = (struct kpart){ ck ? "C" : "L", 1, false };
	parts[n++] = (struct kpart){ &c, 1, false };
	if (ck) {
		/* branch + sent-by + method */
		parts[n++] = (struct kpart){ m->via1.branch.p, m->via1.branch.len, false };
		parts[n++] = (struct kpart){ m->via1.host.p, m->via1.host.len, true };
		parts[n++] = (struct kpart){ port, 2, false };
	} else {
		/* RFC 2543: Request-URI, From tag, Call-ID, CSeq number, top Via;
		 * the To tag is compared apart (it differs for the ACK). */
		parts[n++] = (struct kpart){ m->ruri.raw.p, m->ruri.raw.len, false };
		parts[n++] = (struct kpart){ m->from.tag.p, m->from.tag.len, false };
		parts[n++] = (struct kpart){ m->call_id.p, m->call_id.len, false };
		parts[n++] = (struct kpart){ cs, 4, false };
		parts[n++] = (struct kpart){ m->via1.raw.p, m->via1.raw.len, false };
	}
	/* extension methods are told apart by name */
	if (cls == SIP_M_UNKNOWN)
		parts[n++] = (struct kpart){ m->method_name.p, m->method_name.len, false };
	key_build(t, parts, n, k);
	return ck;
}

/* A To tag as one keyed hash: 0 = absent, odd = present (so an empty tag
 * differs from none). Only RFC 2543 matching reads it. */
static uint64_t tag_hash(const struct sip_txn_table *t, struct sw_str tag)
{
	if (!tag.p)
		return 0;
	return sw_siphash(&t->k2, tag.p, tag.len) | 1u;
}

enum tagchk { TAG_NONE, TAG_REQ, TAG_RESP };

static struct sip_txn *lookup(struct sip_txn_table *t, const struct tkey *k, bool ck,
			      enum tagchk chk, struct sw_str tag)
{
	uint64_t th = 0;
	bool th_done = false;
	uint32_t h = (uint32_t)k->h1;
	for (uint32_t i = h & t->mask; t->ix[i].ref; i = (i + 1) & t->mask) {
		if (t->ix[i].h != h)
			continue;
		struct sip_txn *x = &t->e[t->ix[i].ref - 1];
		if (x->h1 != k->h1 || x->h2 != k->h2 || x->klen != k->len)
			continue;
		if (!ck && chk != TAG_NONE) {
			if (!th_done) {
				th = tag_hash(t, tag);
				th_done = true;
			}
			if ((chk == TAG_REQ ? x->req_tag : x->resp_tag) != th)
				continue;
		}
		return x;
	}
	return NULL;
}

static void ix_insert(struct sip_txn_table *t, const struct sip_txn *x)
{
	uint32_t h = (uint32_t)x->h1, i = h & t->mask;
	while (t->ix[i].ref)
		i = (i + 1) & t->mask;
	t->ix[i] = (struct ixslot){ (uint32_t)(x - t->e) + 1, h };
}

static void ix_remove(struct sip_txn_table *t, const struct sip_txn *x)
{
	uint32_t ref = (uint32_t)(x - t->e) + 1, m = t->mask;
	uint32_t i = (uint32_t)x->h1 & m;
	while (t->ix[i].ref != ref) {
		if (!t->ix[i].ref)
			return;  /* not indexed */
		i = (i + 1) & m;
	}
	/* backward shift: a later slot of the cluster whose home is not in
	 * (i, j] moves into the hole */
	for (uint32_t j = i;;) {
		j = (j + 1) & m;
		if (!t->ix[j].ref)
			break;
		uint32_t home = t->ix[j].h & m;
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		t->ix[i] = t->ix[j];
		i = j;
	}
	t->ix[i] = (struct ixslot){ 0, 0 };
}

static void dest_get(const struct sip_txn *x, struct sip_txn_dest *d)
{
	memset(d, 0, sizeof(*d));
	memcpy(&d->addr, &x->addr, x->alen);
	d->alen = x->alen;
	d->conn_id = x->conn_id;
	d->proto = x->proto;
	d->reliable = (x->flags & F_RELIABLE) != 0;
	d->fd = x->fd;
}

static void dest_put(struct sip_txn *x, const struct sip_txn_dest *d)
{
	if (!d) {
		memset(&x->addr, 0, sizeof(x->addr));
		x->alen = 0;
		x->conn_id = 0;
		x->proto = 0;
		x->fd = 0;
		return;
	}
	/* SIP runs over IPv4/IPv6 only: a sockaddr_in6 holds either */
	size_t n = d->alen < sizeof(x->addr) ? d->alen : sizeof(x->addr);
	memset(&x->addr, 0, sizeof(x->addr));
	memcpy(&x->addr, &d->addr, n);
	x->alen = (uint8_t)n;
	x->conn_id = d->conn_id;
	x->proto = d->proto;
	x->fd = d->fd;
	if (d->reliable)
		x->flags |= F_RELIABLE;
}

/* --- timer wheel -----------------------------------------------------
 *
 * A deadline d is filed in slot (d / WHEEL_MS) mod WHEEL_SLOTS, in a
 * doubly linked list of entry indexes; filing and removal are O(1) and
 * touch the entry and its neighbours only (a binary heap of 10^6 entries
 * took ~20 cache misses per expiry: a fifth of the CPU at 60k
 * REGISTER/s). A tick walks the slots from the last one it processed up
 * to now's and fires the entries whose deadline has come, so firing stays
 * exact to the millisecond; entries a whole turn (WHEEL_SLOTS * WHEEL_MS,
 * 262 s) or more ahead wait in their slot until their turn comes. */

#define WHEEL_MS 4u
#define WHEEL_SLOTS 65536u   /* a power of two: tslot is 16 bits */
/* Most timers one sip_txn_tick fires: at 60k REGISTER/s a 20 ms tick
 * would end ~1 200 transactions at once (a cache miss or two each), and a
 * request arriving meanwhile waits for all of them (helper-19's p99
 * trace); the caller comes back at once for the rest. */
#define TICK_MAX_FIRE 256u

static uint64_t deadline(const struct sip_txn *x)
{
	return x->end_at < x->g_at ? x->end_at : x->g_at;
}

static void wheel_bit(struct sip_txn_table *t, unsigned slot, bool on)
{
	uint64_t b = 1ull << (slot & 63);
	if (on)
		t->wbits[slot >> 6] |= b;
	else
		t->wbits[slot >> 6] &= ~b;
}

static void wheel_remove(struct sip_txn_table *t, struct sip_txn *x)
{
	if (!(x->flags & F_TIMED))
		return;
	if (x->tprev != NIL)
		t->e[x->tprev].tnext = x->tnext;
	else if ((t->whead[x->tslot] = x->tnext) == NIL)
		wheel_bit(t, x->tslot, false);
	if (x->tnext != NIL)
		t->e[x->tnext].tprev = x->tprev;
	x->flags &= (uint8_t)~F_TIMED;
	t->ntimed--;
}

/* Re-file x after its timers changed. */
static void timers_set(struct sip_txn_table *t, struct sip_txn *x)
{
	uint64_t d = deadline(x);
	if (d == NEVER) {
		wheel_remove(t, x);
		return;
	}
	uint64_t abs = d / WHEEL_MS;
	if (abs < t->wcur)
		abs = t->wcur;  /* already due: the next tick fires it */
	unsigned slot = (unsigned)(abs & (WHEEL_SLOTS - 1));
	if ((x->flags & F_TIMED) && x->tslot == slot)
		return;          /* e.g. Trying -> Completed within a slice */
	wheel_remove(t, x);
	uint32_t idx = (uint32_t)(x - t->e);
	x->tslot = (uint16_t)slot;
	x->tprev = NIL;
	x->tnext = t->whead[slot];
	if (x->tnext != NIL)
		t->e[x->tnext].tprev = idx;
	else
		wheel_bit(t, slot, true);
	t->whead[slot] = idx;
	x->flags |= F_TIMED;
	t->ntimed++;
}

/* The first non-empty slot at or after `from` (circular), or -1. */
static int wheel_next_slot(const struct sip_txn_table *t, unsigned from)
{
	unsigned nw = WHEEL_SLOTS / 64;
	unsigned w = from >> 6;
	uint64_t bits = t->wbits[w] & (~0ull << (from & 63));
	for (unsigned i = 0; i <= nw; i++) {
		if (bits)
			return (int)((w << 6) + (unsigned)__builtin_ctzll(bits));
		w = (w + 1) & (nw - 1);
		bits = t->wbits[w];
	}
	return -1;
}

/* The earliest deadline filed: slots are visited in time order from the
 * current one; a slot's entries of later turns are only a fallback. */
static uint64_t wheel_earliest(const struct sip_txn_table *t)
{
	if (!t->ntimed)
		return NEVER;
	uint64_t later = NEVER;
	unsigned cur = (unsigned)(t->wcur & (WHEEL_SLOTS - 1));
	unsigned from = cur;
	for (unsigned seen = 0; seen < WHEEL_SLOTS;) {
		int s = wheel_next_slot(t, from);
		if (s < 0)
			break;
		unsigned dist = ((unsigned)s - cur) & (WHEEL_SLOTS - 1);
		if (dist < seen)
			break;   /* wrapped around */
		uint64_t abs = t->wcur + dist, best = NEVER;
		for (uint32_t i = t->whead[s]; i != NIL; i = t->e[i].tnext) {
			uint64_t d = deadline(&t->e[i]);
			if (d / WHEEL_MS <= abs) {
				if (d < best)
					best = d;
			} else if (d < later) {
				later = d;
			}
		}
		if (best != NEVER)
			return best;
		seen = dist + 1;
		from = (unsigned)(s + 1) & (WHEEL_SLOTS - 1);
	}
	return later;
}

/* --- lifecycle ------------------------------------------------------- */

static void terminate(struct sip_txn_table *t, struct sip_txn *x)
{
	if (x->flags & F_ZOMBIE)
		return;
	x->state = SIP_TXN_TERMINATED;
	ix_remove(t, x);
	wheel_remove(t, x);
	x->end_at = x->g_at = NEVER;
	x->flags |= F_ZOMBIE;
	x->next = t->zombie_head;
	t->zombie_head = (uint32_t)(x - t->e);
	t->live--;
}

static void reclaim(struct sip_txn_table *t)
{
	while (t->zombie_head != NIL) {
		struct sip_txn *x = &t->e[t->zombie_head];
		t->zombie_head = x->next;
		if (x->reply_ref != REF_NONE)
			slab_free(t, x->reply_ref);
		x->reply_ref = REF_NONE;
		x->reply_len = 0;
		x->hole = 0;
		x->flags = 0;
		x->next = t->free_head;
		t->free_head = (uint32_t)(x - t->e);
	}
}

/* The entry array and the index are large (10^6 entries: 128 + 16 MB) and
 * read at random: zeroed anonymous memory on transparent huge pages where
 * the kernel allows (advice only), so a lookup costs a cache miss but
 * rarely a page walk as well. */
static void *big_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (n >= (2u << 20))
		(void)madvise(p, n, MADV_HUGEPAGE);
	return p;
}

static void big_free(void *p, size_t n)
{
	if (p)
		munmap(p, n);
}

void sip_timers_default(struct sip_timers *tm)
{
	/* RFC 3261 §17.1.1.1 and Table 4 */
	tm->t1_ms = 500;
	tm->t2_ms = 4000;
	tm->t4_ms = 5000;
}

struct sip_txn_table *sip_txn_table_new(unsigned cap, const struct sw_hkey *key,
					const struct sip_timers *timers)
{
	if (cap == 0 || cap > (1u << 24) || !key)
		return NULL;
	struct sip_txn_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	uint32_t nb = 1;
	while (nb < 2 * cap)
		nb <<= 1;
	t->k1 = *key;
	/* an independent key for the second hash of overlong keys and tags */
	t->k2.k0 = sw_siphash(key, "sip-txn-k2/0", 12);
	t->k2.k1 = sw_siphash(key, "sip-txn-k2/1", 12);
	if (timers)
		t->tm = *timers;
	else
		sip_timers_default(&t->tm);
	/* a zero T1 would make Timer G spin */
	if (t->tm.t1_ms == 0)
		t->tm.t1_ms = 1;
	if (t->tm.t2_ms < t->tm.t1_ms)
		t->tm.t2_ms = t->tm.t1_ms;
	t->cap = cap;
	t->mask = nb - 1;
	t->ix = big_alloc((size_t)nb * sizeof(*t->ix));
	t->e = big_alloc((size_t)cap * sizeof(*t->e));
	t->whead = malloc(WHEEL_SLOTS * sizeof(*t->whead));
	t->wbits = calloc(WHEEL_SLOTS / 64, sizeof(*t->wbits));
	if (!t->ix || !t->whead || !t->wbits || !t->e) {
		sip_txn_table_free(t);
		return NULL;
	}
	for (uint32_t i = 0; i < WHEEL_SLOTS; i++)
		t->whead[i] = NIL;
	/* Entries are handed out from `fresh` upwards before the free list is
	 * used, and an empty index slot is all zeroes, so the table's pages
	 * (anonymous, untouched) cost no memory and no start-up time until
	 * traffic needs them. */
	t->fresh = 0;
	t->free_head = NIL;
	t->zombie_head = NIL;
	/* by default as much reply memory as the old inline 1 KiB slots, and
	 * room for a few chunks and one largest reply in a small table */
	t->rbudget = (size_t)cap * 1024u + 16u * SLAB_CHUNK;
	t->chunk_free = NIL;
	t->arena_free = NIL;
	for (unsigned c = 0; c < NCLASS; c++)
		t->cls[c] = (struct slab_class){ REF_NONE, NIL };
	return t;
}

void sip_txn_table_free(struct sip_txn_table *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->nchunk; i++)
		if (!arena_has(t, t->chunk[i].mem))
			free(t->chunk[i].mem); /* released chunks hold NULL */
	free(t->chunk);
	if (t->arena)
		munmap(t->arena, t->arena_len);
	big_free(t->e, (size_t)t->cap * sizeof(*t->e));
	big_free(t->ix, ((size_t)t->mask + 1) * sizeof(*t->ix));
	free(t->whead);
	free(t->wbits);
	free(t);
}

unsigned sip_txn_count(const struct sip_txn_table *t)
{
	return t->live;
}

static struct sip_txn *txn_new(struct sip_txn_table *t, const struct tkey *k, bool ck,
			       const struct sip_msg *m, const struct sip_txn_dest *src,
			       uint64_t now_ms)
{
	struct sip_txn *x;
	if (t->free_head != NIL) {
		x = &t->e[t->free_head];
		t->free_head = x->next;
	} else if (t->fresh < t->cap) {
		x = &t->e[t->fresh++];
	} else {
		return NULL;
	}

	x->h1 = k->h1;
	x->h2 = k->h2;
	x->klen = k->len;
	x->flags = F_USED | (ck ? F_COOKIE : 0) | (m->method == SIP_M_INVITE ? F_INVITE : 0);
	/* §17.2.1: INVITE starts in Proceeding; §17.2.2: others in Trying */
	x->state = (x->flags & F_INVITE) ? SIP_TXN_PROCEEDING : SIP_TXN_TRYING;
	x->last_status = 0;
	x->reply_ref = REF_NONE;
	x->reply_len = 0;
	x->hole = 0;
	x->g_ivl = 0;
	x->g_at = NEVER;
	/* never answered: dropped after 64*T1, when any client gave up
	 * (Timer B / F, §17.1.1.2, §17.1.2.2) */
	x->end_at = now_ms + 64ull * t->tm.t1_ms;
	if (!t->wstarted) {
		t->wcur = now_ms / WHEEL_MS;
		t->wstarted = true;
	}
	dest_put(x, src);
	/* RFC 2543 only; in a dialog the response carries the request's To tag */
	x->req_tag = ck ? 0 : tag_hash(t, m->to.tag);
	x->resp_tag = x->req_tag;

	ix_insert(t, x);
	timers_set(t, x);
	t->live++;
	return x;
}

enum sip_txn_match sip_txn_receive(struct sip_txn_table *t, const struct sip_msg *m,
				   const struct sip_txn_dest *src, uint64_t now_ms,
				   struct sip_txn **out)
{
	struct tkey k;
	*out = NULL;
	reclaim(t);
	if (!m->is_request)
		return SIP_TXN_NO_MATCH;

	if (m->method == SIP_M_ACK) {
		/* §17.2.3: the ACK for a non-2xx final has the INVITE's branch;
		 * RFC 2543: its To tag is the one we answered with. An ACK for a
		 * 2xx is a new transaction to nobody: the TU's (§17.2.1). */
		bool ck = key_for(t, m, SIP_M_INVITE, &k);
		struct sip_txn *x = lookup(t, &k, ck, TAG_RESP, m->to.tag);
		if (!x || !(x->flags & F_INVITE))
			return SIP_TXN_NO_MATCH;
		*out = x;
		if (x->state == SIP_TXN_COMPLETED) {
			/* §17.2.1: Confirmed; Timer I = T4, zero when reliable */
			x->state = SIP_TXN_CONFIRMED;
			x->g_at = NEVER;
			if (x->flags & F_RELIABLE) {
				terminate(t, x);
			} else {
				x->end_at = now_ms + t->tm.t4_ms;
				timers_set(t, x);
			}
		}
		return SIP_TXN_ACK_ABSORBED;
	}

	enum sip_method cls = m->method;
	bool ck = key_for(t, m, cls, &k);
	struct sip_txn *x = lookup(t, &k, ck, TAG_REQ, m->to.tag);
	if (x) {
		*out = x;
		switch (x->state) {
		case SIP_TXN_PROCEEDING:
			/* §17.2.1: resend the latest provisional, if any */
			return x->reply_len ? SIP_TXN_RETRANSMIT : SIP_TXN_PENDING;
		case SIP_TXN_COMPLETED:
			/* §17.2.1, §17.2.2: resend the final (absorb when the
			 * reply could not be kept: reply memory spent) */
			return x->reply_len ? SIP_TXN_RETRANSMIT : SIP_TXN_PENDING;
		case SIP_TXN_TRYING:   /* §17.2.2: discard */
		case SIP_TXN_CONFIRMED:/* §17.2.1: absorbed */
		default:
			return SIP_TXN_PENDING;
		}
	}
	x = txn_new(t, &k, ck, m, src, now_ms);
	if (!x)
		return SIP_TXN_FULL;
	*out = x;
	return SIP_TXN_NEW;
}

struct sip_txn *sip_txn_find_cancelled(struct sip_txn_table *t, const struct sip_msg *cancel)
{
	struct tkey k;
	/* §9.2: match as in §17.2.3 with the method taken as INVITE; the
	 * CANCEL's To equals the INVITE's (§9.1) */
	bool ck = key_for(t, cancel, SIP_M_INVITE, &k);
	struct sip_txn *x = lookup(t, &k, ck, TAG_REQ, cancel->to.tag);
	return x && (x->flags & F_INVITE) ? x : NULL;
}

static bool tok_char(char c)
{
	return c != ';' && c != ',' && c != ' ' && c != '\t' && c != '\r' && c != '\n' &&
	       c != '>' && c != '\0';
}

/* The To tag of a reply (RFC 2543 ACK matching, §17.2.3). A light scan:
 * the TU built the reply, normally with sip_resp_begin(). */
static struct sw_str reply_to_tag(const char *r, size_t len)
{
	const char *p = r, *end = r + len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		if (le == p || (le - p == 1 && *p == '\r'))
			break; /* end of headers */
		const char *q = p;
		bool to = false;
		if (le - q >= 2 && lc(q[0]) == 't' && lc(q[1]) == 'o') {
			q += 2;
			to = true;
		} else if (le - q >= 1 && lc(q[0]) == 't') {
			q += 1;
			to = true;
		}
		while (to && q < le && (*q == ' ' || *q == '\t'))
			q++;
		if (to && q < le && *q == ':') {
			/* header params follow the address: after '>' if any */
			const char *s = q + 1;
			const char *gt = memchr(s, '>', (size_t)(le - s));
			if (gt)
				s = gt + 1;
			while (s < le) {
				const char *semi = memchr(s, ';', (size_t)(le - s));
				if (!semi)
					break;
				s = semi + 1;
				while (s < le && (*s == ' ' || *s == '\t'))
					s++;
				if (le - s >= 3 && lc(s[0]) == 't' && lc(s[1]) == 'a' && lc(s[2]) == 'g') {
					const char *v = s + 3;
					while (v < le && (*v == ' ' || *v == '\t'))
						v++;
					if (v < le && *v == '=') {
						v++;
						while (v < le && (*v == ' ' || *v == '\t'))
							v++;
						const char *ve = v;
						while (ve < le && tok_char(*ve))
							ve++;
						return (struct sw_str){ v, (size_t)(ve - v) };
					}
				}
			}
			return SW_STR_NULL;
		}
		p = eol ? eol + 1 : end;
	}
	return SW_STR_NULL;
}

/* Replace the stored reply: resp without the bytes [hole, hole + gap)
 * (gap 0 = all of it). When the reply budget is spent the old reply is
 * dropped and -ENOBUFS returned; the state machine still moves. */
static int store_reply(struct sip_txn_table *t, struct sip_txn *x, const char *resp, size_t len,
		       size_t hole, size_t gap)
{
	size_t keep = len - gap;
	uint32_t old = x->reply_ref;
	if (old == REF_NONE || class_of(keep) == CLASS_BIG || class_of(keep) != class_of(x->reply_len)) {
		if (old != REF_NONE)
			slab_free(t, old);
		x->reply_len = 0;
		x->hole = 0;
		x->reply_ref = slab_alloc(t, keep);
		if (x->reply_ref == REF_NONE) {
			t->rfail++;
			return -ENOBUFS;
		}
	}
	char *p = ref_ptr(t, x->reply_ref);
	memmove(p, resp, gap ? hole : len);
	if (gap)
		memmove(p + hole, resp + hole + gap, len - hole - gap);
	x->reply_len = (uint32_t)keep;
	x->hole = gap ? (uint32_t)hole : 0;
	return 0;
}

int sip_txn_respond_copied(struct sip_txn_table *t, struct sip_txn *x, const char *resp,
			   size_t len, unsigned status, uint64_t now_ms, size_t hole, size_t gap)
{
	if (!x || !(x->flags & F_USED) || (x->flags & F_ZOMBIE) || status < 100 || status > 699 || (!resp && len))
		return -EINVAL;
	if (x->state != SIP_TXN_TRYING && x->state != SIP_TXN_PROCEEDING)
		return -EALREADY; /* a final was sent already */
	if (len == 0 || len > REPLY_MAX)
		return len ? -EMSGSIZE : -EINVAL;
	/* Timer G resends an INVITE's final with no request at hand: whole */
	if (gap && (hole == 0 || hole + gap > len || gap == len || (x->flags & F_INVITE)))
		gap = 0;
	int rc = store_reply(t, x, resp, len, hole, gap);
	x->last_status = (uint16_t)status;
	if (!(x->flags & F_COOKIE) && !x->req_tag)
		x->resp_tag = tag_hash(t, reply_to_tag(resp, len));

	if (status < 200) {
		x->state = SIP_TXN_PROCEEDING;
		if (x->flags & F_INVITE)
			x->end_at = now_ms + PROCEEDING_GUARD_MS;
		/* non-INVITE keeps its 64*T1 limit: the client's Timer F */
	} else if ((x->flags & F_INVITE) && status < 300) {
		/* §17.2.1: 2xx ends the transaction; the TU retransmits it */
		terminate(t, x);
		return rc;
	} else if (x->flags & F_INVITE) {
		/* §17.2.1: Completed; Timer G (unreliable) and Timer H */
		x->state = SIP_TXN_COMPLETED;
		if (!(x->flags & F_RELIABLE)) {
			x->g_ivl = t->tm.t1_ms;
			x->g_at = now_ms + x->g_ivl;
		}
		x->end_at = now_ms + 64ull * t->tm.t1_ms;
	} else {
		/* §17.2.2: Completed; Timer J = 64*T1, zero when reliable */
		x->state = SIP_TXN_COMPLETED;
		if (x->flags & F_RELIABLE) {
			terminate(t, x);
			return rc;
		}
		x->end_at = now_ms + 64ull * t->tm.t1_ms;
	}
	timers_set(t, x);
	return rc;
}

int sip_txn_respond(struct sip_txn_table *t, struct sip_txn *x, const char *resp,
		    size_t len, unsigned status, uint64_t now_ms)
{
	return sip_txn_respond_copied(t, x, resp, len, status, now_ms, 0, 0);
}

int sip_txn_forget(struct sip_txn_table *t, struct sip_txn *x)
{
	if (!x || !(x->flags & F_USED) || (x->flags & F_ZOMBIE) || (x->flags & F_INVITE))
		return -EINVAL;
	if (x->state != SIP_TXN_TRYING && x->state != SIP_TXN_PROCEEDING)
		return -EALREADY;
	terminate(t, x);
	return 0;
}

const char *sip_txn_reply(const struct sip_txn_table *t, const struct sip_txn *x, size_t *len)
{
	*len = x->reply_len;
	if (!x->reply_len)
		return NULL;
	return ref_ptr(t, x->reply_ref);
}

size_t sip_txn_reply_hole(const struct sip_txn *x)
{
	return x->hole;
}

unsigned sip_txn_status(const struct sip_txn *x)
{
	return x->last_status;
}

void sip_txn_dest_get(const struct sip_txn *x, struct sip_txn_dest *out)
{
	dest_get(x, out);
}

const struct sip_txn_dest *sip_txn_dest(const struct sip_txn *x)
{
	/* entries keep the address compacted; valid until the next call in
	 * this thread (sip_txn_dest_get has no such limit) */
	static _Thread_local struct sip_txn_dest scratch;
	dest_get(x, &scratch);
	return &scratch;
}

enum sip_txn_state sip_txn_state(const struct sip_txn *x)
{
	return (enum sip_txn_state)x->state;
}

bool sip_txn_is_invite(const struct sip_txn *x)
{
	return (x->flags & F_INVITE) != 0;
}

void sip_txn_set_reply_memory(struct sip_txn_table *t, size_t bytes)
{
	t->rbudget = bytes;
}

void sip_txn_get_stats(const struct sip_txn_table *t, struct sip_txn_stats *s)
{
	s->live = t->live;
	s->cap = t->cap;
	s->touched = t->fresh;
	s->entry_bytes = sizeof(struct sip_txn);
	s->table_bytes = (size_t)t->fresh * sizeof(struct sip_txn) +
			 ((size_t)t->mask + 1) * sizeof(struct ixslot) +
			 WHEEL_SLOTS * sizeof(uint32_t) + WHEEL_SLOTS / 8;
	s->reply_bytes = t->rused;
	s->reply_budget = t->rbudget;
	s->reply_nomem = t->rfail;
}

/* Fire x if its deadline has come: Timer H, I, J or the unanswered limit
 * end it; Timer G resends the final (§17.2.1, T1 doubling up to T2). */
static void fire(struct sip_txn_table *t, struct sip_txn *x, uint64_t now_ms,
		 sip_txn_send_fn send, void *ctx)
{
	if (x->end_at <= now_ms) {
		terminate(t, x);
		return;
	}
	if (x->g_at > now_ms)
		return;
	if (send && x->reply_len) {
		struct sip_txn_dest d;
		dest_get(x, &d);
		send(ctx, &d, ref_ptr(t, x->reply_ref), x->reply_len);
	}
	uint32_t ivl = x->g_ivl * 2;
	x->g_ivl = ivl < t->tm.t2_ms ? ivl : t->tm.t2_ms;
	x->g_at += x->g_ivl;
	if (x->g_at <= now_ms) /* a late tick does not burst */
		x->g_at = now_ms + x->g_ivl;
	timers_set(t, x);
}

uint64_t sip_txn_tick(struct sip_txn_table *t, uint64_t now_ms, sip_txn_send_fn send, void *ctx)
{
	reclaim(t);
	uint64_t now_abs = now_ms / WHEEL_MS;
	if (!t->wstarted) {
		t->wcur = now_abs;
		t->wstarted = true;
	}
	unsigned fired = 0;
	uint64_t stop = now_abs;
	if (now_abs >= t->wcur && t->ntimed) {
		/* every slot from the last processed one to now's, each once */
		uint64_t n = now_abs - t->wcur;
		if (n >= WHEEL_SLOTS)
			n = WHEEL_SLOTS - 1;
		for (uint64_t a = now_abs - n; a <= now_abs && t->ntimed; a++) {
			unsigned slot = (unsigned)(a & (WHEEL_SLOTS - 1));
			for (uint32_t i = t->whead[slot]; i != NIL && fired < TICK_MAX_FIRE;) {
				struct sip_txn *x = &t->e[i];
				i = x->tnext;  /* firing re-files or unlinks x */
				if (deadline(x) <= now_ms) {
					fire(t, x, now_ms, send, ctx);
					fired++;
				}
			}
			if (fired >= TICK_MAX_FIRE) {
				stop = a;   /* the rest of this slot at the next call */
				break;
			}
		}
	}
	if (stop > t->wcur)
		t->wcur = stop;
	/* what this tick ended is freed here, not by the next request */
	reclaim(t);
	if (fired >= TICK_MAX_FIRE)
		return 0;   /* more is due: call again soon, not in one long batch */
	uint64_t next = wheel_earliest(t);
	return next == NEVER ? NEVER : next > now_ms ? next - now_ms : 0;
}
