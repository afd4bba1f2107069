/* Server transactions (RFC 3261 §17.2): matching, state machines, timers.
 *
 * One table per worker, created once: `cap` entries in one array, chained
 * hash buckets of entry indexes, a free list, and a binary min-heap of
 * deadlines. Keys are hashed with SipHash under the worker's key (the
 * branch, Call-ID and URI are attacker text) and always compared exactly
 * against a bounded copy kept in the entry. Nothing is allocated per
 * request except a stored reply larger than the inline slot.
 *
 * Lifetime: a transaction that terminates (timer, ACK on a reliable
 * transport, 2xx to INVITE, final on a reliable non-INVITE) is unlinked at
 * once and its slot is reclaimed at the next sip_txn_receive() or
 * sip_txn_tick(); a TU must not keep a struct sip_txn * across those calls
 * once the transaction may have ended (at the latest 64*T1 after creation
 * without a reply). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sip/txn.h"

#define KEY_MAX 384            /* serialized key kept per entry */
#define TAG_MAX 64             /* To-tag bytes kept per entry */
#define REPLY_INLINE 1024      /* stored reply without allocation */
#define REPLY_MAX 65536        /* largest stored reply (heap fallback) */
#define NIL UINT32_MAX
#define NEVER UINT64_MAX
/* An INVITE that got a provisional waits for its TU; a TU that never sends
 * the final must not leak the slot. Longer than a proxy's Timer C
 * (> 3 min, RFC 3261 §16.6 item 11), restarted by every provisional. */
#define PROCEEDING_GUARD_MS 240000u

static const char cookie[] = "z9hG4bK"; /* RFC 3261 §8.1.1.7 */

/* A bounded copy of a tag: exact when len <= TAG_MAX, otherwise the
 * prefix, the length and a keyed hash must all agree. */
struct tagcopy {
	bool present;
	uint32_t len;
	uint64_t h;
	char p[TAG_MAX];
};

struct sip_txn {
	uint64_t hash;          /* bucket hash of the key */
	uint64_t hash2;         /* second keyed hash, overlong keys only */
	uint64_t deadline;      /* min(end_at, g_at): heap order */
	uint64_t end_at;        /* Timer H / I / J, or the unanswered limit */
	uint64_t g_at;          /* Timer G (INVITE, unreliable, Completed) */
	uint32_t g_ivl;
	uint32_t klen;          /* full serialized key length */
	uint32_t next;          /* bucket chain, or free / zombie list */
	uint32_t heap_pos;      /* NIL when no timer is armed */
	enum sip_txn_state state;
	bool used;
	bool zombie;            /* terminated, slot not yet reclaimed */
	bool invite;
	bool cookie;            /* RFC 3261 branch matching, else RFC 2543 */
	unsigned last_status;
	struct sip_txn_dest dest;
	size_t reply_len;       /* 0 = no reply yet */
	char *reply_heap;       /* replies over REPLY_INLINE */
	size_t heap_cap;
	struct tagcopy req_tag; /* the request's To tag (RFC 2543 matching) */
	struct tagcopy resp_tag;/* the To tag we answered with (ACK, §17.2.3) */
	char key[KEY_MAX];
	char reply[REPLY_INLINE];
};

struct sip_txn_table {
	struct sw_hkey k1, k2;
	struct sip_timers tm;
	unsigned cap;
	unsigned live;
	uint32_t mask;
	uint32_t *bucket;
	uint32_t *heap;
	unsigned nheap;
	uint32_t free_head;
	uint32_t zombie_head;
	uint32_t fresh;          /* entries [fresh, cap) never used yet */
	struct sip_txn *e;
};

/* --- keys ------------------------------------------------------------ */

struct kpart {
	const void *p;
	size_t n;
	bool lower;
};

struct tkey {
	uint64_t hash, hash2;
	uint32_t len;
	bool overlong;
	char buf[KEY_MAX];
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

/* Serialize parts as (u32 length, bytes); hash the serialization when it
 * fits, else hash per-part digests under both keys and keep the prefix. */
static void key_build(const struct sip_txn_table *t, const struct kpart *parts, unsigned n,
		      struct tkey *k)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += 4 + (uint64_t)parts[i].n;
	k->overlong = total > KEY_MAX;
	k->len = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;

	size_t off = 0;
	for (unsigned i = 0; i < n && off < KEY_MAX; i++) {
		uint8_t l[4];
		le32(l, parts[i].n);
		for (unsigned j = 0; j < 4 && off < KEY_MAX; j++)
			k->buf[off++] = (char)l[j];
		const char *p = parts[i].p;
		for (size_t j = 0; j < parts[i].n && off < KEY_MAX; j++)
			k->buf[off++] = parts[i].lower ? lc(p[j]) : p[j];
	}
	if (!k->overlong) {
		k->hash = sw_siphash(&t->k1, k->buf, off);
		k->hash2 = 0;
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
	k->hash = sw_siphash(&t->k1, d1, dl);
	k->hash2 = sw_siphash(&t->k2, d2, dl);
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

static void tag_set(const struct sip_txn_table *t, struct tagcopy *tc, struct sw_str tag)
{
	tc->present = tag.p != NULL;
	tc->len = tag.len > UINT32_MAX ? UINT32_MAX : (uint32_t)tag.len;
	size_t n = tag.len < TAG_MAX ? tag.len : TAG_MAX;
	if (n)
		memcpy(tc->p, tag.p, n);
	tc->h = tag.len > TAG_MAX ? sw_siphash(&t->k2, tag.p, tag.len) : 0;
}

static bool tag_eq(const struct sip_txn_table *t, const struct tagcopy *tc, struct sw_str tag)
{
	if (tc->present != (tag.p != NULL) || tc->len != tag.len)
		return false;
	size_t n = tag.len < TAG_MAX ? tag.len : TAG_MAX;
	if (n && memcmp(tc->p, tag.p, n) != 0)
		return false;
	return tag.len <= TAG_MAX || tc->h == sw_siphash(&t->k2, tag.p, tag.len);
}

enum tagchk { TAG_NONE, TAG_REQ, TAG_RESP };

static bool key_eq(const struct sip_txn *x, const struct tkey *k)
{
	if (x->hash != k->hash || x->klen != k->len)
		return false;
	size_t n = k->len < KEY_MAX ? k->len : KEY_MAX;
	if (memcmp(x->key, k->buf, n) != 0)
		return false;
	/* beyond the kept prefix only the second keyed hash can tell */
	return !k->overlong || x->hash2 == k->hash2;
}

static struct sip_txn *lookup(struct sip_txn_table *t, const struct tkey *k, bool ck,
			      enum tagchk chk, struct sw_str tag)
{
	for (uint32_t i = t->bucket[k->hash & t->mask]; i != NIL; i = t->e[i].next) {
		struct sip_txn *x = &t->e[i];
		if (!key_eq(x, k))
			continue;
		if (!ck && chk == TAG_REQ && !tag_eq(t, &x->req_tag, tag))
			continue;
		if (!ck && chk == TAG_RESP && !tag_eq(t, &x->resp_tag, tag))
			continue;
		return x;
	}
	return NULL;
}

static void hash_unlink(struct sip_txn_table *t, struct sip_txn *x)
{
	uint32_t idx = (uint32_t)(x - t->e);
	uint32_t *pp = &t->bucket[x->hash & t->mask];
	while (*pp != NIL) {
		if (*pp == idx) {
			*pp = x->next;
			x->next = NIL;
			return;
		}
		pp = &t->e[*pp].next;
	}
}

/* --- timer heap ------------------------------------------------------ */

static void heap_swap(struct sip_txn_table *t, unsigned a, unsigned b)
{
	uint32_t ia = t->heap[a], ib = t->heap[b];
	t->heap[a] = ib;
	t->heap[b] = ia;
	t->e[ib].heap_pos = a;
	t->e[ia].heap_pos = b;
}

static uint64_t hdl(const struct sip_txn_table *t, unsigned pos)
{
	return t->e[t->heap[pos]].deadline;
}

static void heap_up(struct sip_txn_table *t, unsigned pos)
{
	while (pos > 0) {
		unsigned parent = (pos - 1) / 2;
		if (hdl(t, parent) <= hdl(t, pos))
			break;
		heap_swap(t, parent, pos);
		pos = parent;
	}
}

static void heap_down(struct sip_txn_table *t, unsigned pos)
{
	for (;;) {
		unsigned l = 2 * pos + 1, r = l + 1, m = pos;
		if (l < t->nheap && hdl(t, l) < hdl(t, m))
			m = l;
		if (r < t->nheap && hdl(t, r) < hdl(t, m))
			m = r;
		if (m == pos)
			return;
		heap_swap(t, pos, m);
		pos = m;
	}
}

static void heap_remove(struct sip_txn_table *t, struct sip_txn *x)
{
	unsigned pos = x->heap_pos;
	if (pos == NIL)
		return;
	unsigned last = --t->nheap;
	if (pos != last) {
		heap_swap(t, pos, last);
		heap_down(t, pos);
		heap_up(t, pos);
	}
	x->heap_pos = NIL;
}

/* Re-file x after its timers changed. */
static void timers_set(struct sip_txn_table *t, struct sip_txn *x)
{
	uint64_t d = x->end_at < x->g_at ? x->end_at : x->g_at;
	if (d == NEVER) {
		heap_remove(t, x);
		x->deadline = NEVER;
		return;
	}
	x->deadline = d;
	if (x->heap_pos == NIL) {
		x->heap_pos = t->nheap;
		t->heap[t->nheap++] = (uint32_t)(x - t->e);
	}
	heap_down(t, x->heap_pos);
	heap_up(t, x->heap_pos);
}

/* --- lifecycle ------------------------------------------------------- */

static void terminate(struct sip_txn_table *t, struct sip_txn *x)
{
	if (x->zombie)
		return;
	x->state = SIP_TXN_TERMINATED;
	hash_unlink(t, x);
	heap_remove(t, x);
	x->end_at = x->g_at = x->deadline = NEVER;
	x->zombie = true;
	x->next = t->zombie_head;
	t->zombie_head = (uint32_t)(x - t->e);
	t->live--;
}

static void reclaim(struct sip_txn_table *t)
{
	while (t->zombie_head != NIL) {
		struct sip_txn *x = &t->e[t->zombie_head];
		t->zombie_head = x->next;
		free(x->reply_heap);
		x->reply_heap = NULL;
		x->heap_cap = 0;
		x->reply_len = 0;
		x->used = false;
		x->zombie = false;
		x->next = t->free_head;
		t->free_head = (uint32_t)(x - t->e);
	}
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
	while (nb < cap)
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
	t->bucket = malloc(nb * sizeof(*t->bucket));
	t->heap = malloc(cap * sizeof(*t->heap));
	t->e = calloc(cap, sizeof(*t->e));
	if (!t->bucket || !t->heap || !t->e) {
		sip_txn_table_free(t);
		return NULL;
	}
	for (uint32_t i = 0; i < nb; i++)
		t->bucket[i] = NIL;
	/* Entries are handed out from `fresh` upwards before the free list is
	 * used, so the table's pages (calloc'd, untouched) cost no memory and
	 * no start-up time until traffic needs them. */
	t->fresh = 0;
	t->free_head = NIL;
	t->zombie_head = NIL;
	return t;
}

void sip_txn_table_free(struct sip_txn_table *t)
{
	if (!t)
		return;
	if (t->e)
		for (unsigned i = 0; i < t->fresh; i++)
			free(t->e[i].reply_heap);
	free(t->e);
	free(t->heap);
	free(t->bucket);
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

	x->hash = k->hash;
	x->hash2 = k->hash2;
	x->klen = k->len;
	memcpy(x->key, k->buf, k->len < KEY_MAX ? k->len : KEY_MAX);
	x->used = true;
	x->zombie = false;
	x->cookie = ck;
	x->invite = m->method == SIP_M_INVITE;
	/* §17.2.1: INVITE starts in Proceeding; §17.2.2: others in Trying */
	x->state = x->invite ? SIP_TXN_PROCEEDING : SIP_TXN_TRYING;
	x->last_status = 0;
	x->reply_len = 0;
	x->g_ivl = 0;
	x->g_at = NEVER;
	/* never answered: dropped after 64*T1, when any client gave up
	 * (Timer B / F, §17.1.1.2, §17.1.2.2) */
	x->end_at = now_ms + 64ull * t->tm.t1_ms;
	x->deadline = NEVER;
	x->heap_pos = NIL;
	if (src)
		x->dest = *src;
	else
		memset(&x->dest, 0, sizeof(x->dest));
	tag_set(t, &x->req_tag, m->to.tag);
	/* in a dialog the response carries the request's To tag */
	x->resp_tag = x->req_tag;

	x->next = t->bucket[k->hash & t->mask];
	t->bucket[k->hash & t->mask] = (uint32_t)(x - t->e);
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
		if (!x || !x->invite)
			return SIP_TXN_NO_MATCH;
		*out = x;
		if (x->state == SIP_TXN_COMPLETED) {
			/* §17.2.1: Confirmed; Timer I = T4, zero when reliable */
			x->state = SIP_TXN_CONFIRMED;
			x->g_at = NEVER;
			if (x->dest.reliable) {
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
			/* §17.2.1, §17.2.2: resend the final */
			return SIP_TXN_RETRANSMIT;
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
	return x && x->invite ? x : NULL;
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

static int store_reply(struct sip_txn *x, const char *resp, size_t len)
{
	if (len <= REPLY_INLINE) {
		memcpy(x->reply, resp, len);
		free(x->reply_heap);
		x->reply_heap = NULL;
		x->heap_cap = 0;
	} else {
		if (x->heap_cap < len) {
			char *p = malloc(len);
			if (!p)
				return -ENOMEM;
			free(x->reply_heap);
			x->reply_heap = p;
			x->heap_cap = len;
		}
		memcpy(x->reply_heap, resp, len);
	}
	x->reply_len = len;
	return 0;
}

int sip_txn_respond(struct sip_txn_table *t, struct sip_txn *x, const char *resp,
		    size_t len, unsigned status, uint64_t now_ms)
{
	if (!x || !x->used || x->zombie || status < 100 || status > 699 || (!resp && len))
		return -EINVAL;
	if (x->state != SIP_TXN_TRYING && x->state != SIP_TXN_PROCEEDING)
		return -EALREADY; /* a final was sent already */
	if (len == 0 || len > REPLY_MAX)
		return len ? -EMSGSIZE : -EINVAL;
	int rc = store_reply(x, resp, len);
	if (rc < 0)
		return rc;
	x->last_status = status;
	if (!x->cookie && !x->req_tag.present) {
		const char *r = x->reply_heap ? x->reply_heap : x->reply;
		tag_set(t, &x->resp_tag, reply_to_tag(r, len));
	}

	if (status < 200) {
		x->state = SIP_TXN_PROCEEDING;
		if (x->invite)
			x->end_at = now_ms + PROCEEDING_GUARD_MS;
		/* non-INVITE keeps its 64*T1 limit: the client's Timer F */
	} else if (x->invite && status < 300) {
		/* §17.2.1: 2xx ends the transaction; the TU retransmits it */
		terminate(t, x);
		return 0;
	} else if (x->invite) {
		/* §17.2.1: Completed; Timer G (unreliable) and Timer H */
		x->state = SIP_TXN_COMPLETED;
		if (!x->dest.reliable) {
			x->g_ivl = t->tm.t1_ms;
			x->g_at = now_ms + x->g_ivl;
		}
		x->end_at = now_ms + 64ull * t->tm.t1_ms;
	} else {
		/* §17.2.2: Completed; Timer J = 64*T1, zero when reliable */
		x->state = SIP_TXN_COMPLETED;
		if (x->dest.reliable) {
			terminate(t, x);
			return 0;
		}
		x->end_at = now_ms + 64ull * t->tm.t1_ms;
	}
	timers_set(t, x);
	return 0;
}

const char *sip_txn_reply(const struct sip_txn *x, size_t *len)
{
	*len = x->reply_len;
	if (!x->reply_len)
		return NULL;
	return x->reply_heap ? x->reply_heap : x->reply;
}

const struct sip_txn_dest *sip_txn_dest(const struct sip_txn *x)
{
	return &x->dest;
}

enum sip_txn_state sip_txn_state(const struct sip_txn *x)
{
	return x->state;
}

bool sip_txn_is_invite(const struct sip_txn *x)
{
	return x->invite;
}

uint64_t sip_txn_tick(struct sip_txn_table *t, uint64_t now_ms, sip_txn_send_fn send, void *ctx)
{
	reclaim(t);
	while (t->nheap && hdl(t, 0) <= now_ms) {
		struct sip_txn *x = &t->e[t->heap[0]];
		if (x->end_at <= now_ms) {
			/* Timer H, I, J, or never answered */
			terminate(t, x);
			continue;
		}
		/* Timer G (§17.2.1): resend the final, T1 doubling up to T2 */
		if (send && x->reply_len)
			send(ctx, &x->dest, x->reply_heap ? x->reply_heap : x->reply, x->reply_len);
		uint32_t ivl = x->g_ivl * 2;
		x->g_ivl = ivl < t->tm.t2_ms ? ivl : t->tm.t2_ms;
		x->g_at += x->g_ivl;
		if (x->g_at <= now_ms) /* a late tick does not burst */
			x->g_at = now_ms + x->g_ivl;
		timers_set(t, x);
	}
	return t->nheap ? hdl(t, 0) - now_ms : NEVER;
}
