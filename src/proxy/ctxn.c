/* Client transactions (RFC 3261 §17.1); see ctxn.h.
 *
 * One array of `cap` entries, chained hash buckets of entry indexes keyed
 * by SipHash of our own branch (we chose it, but a peer's response names
 * it, so lookups stay keyed and exact), a free list and a binary min-heap
 * of deadlines. An entry is freed the moment it terminates; TUs hold
 * handles (index + generation), never pointers across events. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/siphash.h"
#include "base/str.h"
#include "proxy/ctxn.h"
#include "sip/build.h"
#include "sip/parse.h"

#define NIL UINT32_MAX
#define NEVER UINT64_MAX
#define REQ_INLINE 3072

struct ptx {
	uint32_t next;          /* bucket chain or free list */
	uint32_t heap_pos;      /* NIL when no deadline */
	uint32_t gen;
	uint32_t idx;
	uint32_t owner, owner_gen;
	uint64_t hash;
	uint64_t deadline;      /* min of the three below */
	uint64_t rt_at;         /* Timer A / E: next retransmission */
	uint64_t end_at;        /* B / F / D / K / M */
	uint64_t tu_at;         /* TU deadline */
	uint32_t rt_ivl;
	enum ptx_state state;
	enum sip_method method;
	bool used;
	unsigned status;
	struct sip_txn_dest dest;
	uint8_t blen;
	char branch[PTX_BRANCH_MAX];
	size_t len;
	char *heap;             /* request over REQ_INLINE */
	char req[REQ_INLINE];
};

struct ptx_table {
	struct sw_hkey key;
	struct sip_timers tm;
	struct sip_limits lim;
	unsigned cap, live;
	uint32_t mask;
	uint32_t *bucket;
	uint32_t *heap;
	unsigned nheap;
	uint32_t free_head;
	struct ptx *e;
	struct sip_hdr *hdrs;   /* scratch for re-parsing a stored request */
};

/* --- heap ------------------------------------------------------------- */

static void heap_swap(struct ptx_table *t, unsigned a, unsigned b)
{
	uint32_t x = t->heap[a];
	t->heap[a] = t->heap[b];
	t->heap[b] = x;
	t->e[t->heap[a]].heap_pos = a;
	t->e[t->heap[b]].heap_pos = b;
}

static void heap_up(struct ptx_table *t, unsigned i)
{
	while (i > 0) {
		unsigned p = (i - 1) / 2;
		if (t->e[t->heap[p]].deadline <= t->e[t->heap[i]].deadline)
			break;
		heap_swap(t, i, p);
		i = p;
	}
}

static void heap_down(struct ptx_table *t, unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		if (l < t->nheap && t->e[t->heap[l]].deadline < t->e[t->heap[m]].deadline)
			m = l;
		if (r < t->nheap && t->e[t->heap[r]].deadline < t->e[t->heap[m]].deadline)
			m = r;
		if (m == i)
			break;
		heap_swap(t, i, m);
		i = m;
	}
}

static void heap_remove(struct ptx_table *t, struct ptx *x)
{
	unsigned i = x->heap_pos;
	if (i == NIL)
		return;
	t->nheap--;
	if (i != t->nheap) {
		t->heap[i] = t->heap[t->nheap];
		t->e[t->heap[i]].heap_pos = i;
		heap_down(t, i);
		heap_up(t, i);
	}
	x->heap_pos = NIL;
}

static void timers_set(struct ptx_table *t, struct ptx *x)
{
	uint64_t d = x->rt_at;
	if (x->end_at < d)
		d = x->end_at;
	if (x->tu_at < d)
		d = x->tu_at;
	if (d == NEVER) {
		heap_remove(t, x);
		return;
	}
	x->deadline = d;
	if (x->heap_pos == NIL) {
		x->heap_pos = t->nheap;
		t->heap[t->nheap++] = (uint32_t)(x - t->e);
		heap_up(t, x->heap_pos);
	} else {
		heap_down(t, x->heap_pos);
		heap_up(t, x->heap_pos);
	}
}

/* --- table ------------------------------------------------------------ */

struct ptx_table *ptx_table_new(unsigned cap, const struct sip_timers *tm,
				const struct sip_limits *lim)
{
	if (cap == 0 || cap > (1u << 24))
		return NULL;
	struct ptx_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->tm = *tm;
	t->lim = *lim;
	t->cap = cap;
	uint32_t nb = 16;
	while (nb < cap)
		nb <<= 1;
	t->mask = nb - 1;
	t->bucket = malloc(nb * sizeof(*t->bucket));
	t->heap = malloc(cap * sizeof(*t->heap));
	t->e = calloc(cap, sizeof(*t->e)); /* pages are touched only as slots get used */
	t->hdrs = calloc(lim->max_headers, sizeof(*t->hdrs));
	if (!t->bucket || !t->heap || !t->e || !t->hdrs || sw_hkey_random(&t->key) < 0) {
		ptx_table_free(t);
		return NULL;
	}
	for (uint32_t i = 0; i < nb; i++)
		t->bucket[i] = NIL;
	for (uint32_t i = 0; i < cap; i++) {
		t->e[i].next = i + 1 < cap ? i + 1 : NIL;
		t->e[i].heap_pos = NIL;
		t->e[i].idx = i;
	}
	t->free_head = 0;
	return t;
}

void ptx_table_free(struct ptx_table *t)
{
	if (!t)
		return;
	if (t->e)
		for (unsigned i = 0; i < t->cap; i++)
			free(t->e[i].heap);
	free(t->bucket);
	free(t->heap);
	free(t->e);
	free(t->hdrs);
	free(t);
}

unsigned ptx_count(const struct ptx_table *t)
{
	return t->live;
}

/* INVITE and CANCEL share a branch (§9.1): the method is part of the key;
 * every method other than INVITE and CANCEL is one class here, since our
 * branches are unique per request we send. */
static uint64_t key_hash(const struct ptx_table *t, struct sw_str branch, enum sip_method m)
{
	char buf[PTX_BRANCH_MAX + 1];
	size_t n = branch.len < PTX_BRANCH_MAX ? branch.len : PTX_BRANCH_MAX;
	memcpy(buf, branch.p, n);
	buf[n] = (char)(m == SIP_M_INVITE ? 'I' : m == SIP_M_CANCEL ? 'C' : 'N');
	return sw_siphash(&t->key, buf, n + 1);
}

static bool same_class(enum sip_method a, enum sip_method b)
{
	bool ai = a == SIP_M_INVITE, bi = b == SIP_M_INVITE;
	bool ac = a == SIP_M_CANCEL, bc = b == SIP_M_CANCEL;
	return ai == bi && ac == bc;
}

static struct ptx *find(struct ptx_table *t, struct sw_str branch, enum sip_method m)
{
	if (!branch.p || branch.len == 0 || branch.len > PTX_BRANCH_MAX)
		return NULL;
	uint64_t h = key_hash(t, branch, m);
	for (uint32_t i = t->bucket[h & t->mask]; i != NIL; i = t->e[i].next) {
		struct ptx *x = &t->e[i];
		if (x->hash == h && x->blen == branch.len && same_class(x->method, m) &&
		    memcmp(x->branch, branch.p, branch.len) == 0)
			return x;
	}
	return NULL;
}

static void unlink_bucket(struct ptx_table *t, struct ptx *x)
{
	uint32_t idx = (uint32_t)(x - t->e);
	uint32_t *pp = &t->bucket[x->hash & t->mask];
	while (*pp != NIL) {
		if (*pp == idx) {
			*pp = x->next;
			return;
		}
		pp = &t->e[*pp].next;
	}
}

static void release(struct ptx_table *t, struct ptx *x)
{
	if (!x->used)
		return;
	heap_remove(t, x);
	unlink_bucket(t, x);
	x->used = false;
	x->state = PTX_TERMINATED;
	x->gen++;
	x->next = t->free_head;
	t->free_head = (uint32_t)(x - t->e);
	t->live--;
}

int ptx_start(struct ptx_table *t, const char *req, size_t len, enum sip_method method,
	      struct sw_str branch, const struct sip_txn_dest *dest, uint32_t owner,
	      uint32_t gen, uint64_t now_ms, struct ptx **out)
{
	*out = NULL;
	if (!branch.p || branch.len == 0 || branch.len > PTX_BRANCH_MAX || method == SIP_M_ACK)
		return -EINVAL;
	if (len > t->lim.max_msg)
		return -EMSGSIZE;
	if (find(t, branch, method))
		return -EEXIST;
	if (t->free_head == NIL)
		return -ENOSPC;
	struct ptx *x = &t->e[t->free_head];
	char *store = x->req;
	if (len > REQ_INLINE) {
		char *nb = realloc(x->heap, len);
		if (!nb)
			return -ENOMEM;
		x->heap = nb;
		store = nb;
	}
	t->free_head = x->next;
	t->live++;
	memcpy(store, req, len);
	x->len = len;
	x->used = true;
	x->method = method;
	x->owner = owner;
	x->owner_gen = gen;
	x->status = 0;
	x->dest = *dest;
	x->blen = (uint8_t)branch.len;
	memcpy(x->branch, branch.p, branch.len);
	x->hash = key_hash(t, branch, method);
	x->next = t->bucket[x->hash & t->mask];
	t->bucket[x->hash & t->mask] = (uint32_t)(x - t->e);
	x->heap_pos = NIL;
	x->tu_at = NEVER;
	/* §17.1.1.2 / §17.1.2.2: A / E start at T1 on unreliable transports;
	 * B / F = 64*T1 on all. */
	x->state = method == SIP_M_INVITE ? PTX_CALLING : PTX_TRYING;
	x->rt_ivl = t->tm.t1_ms;
	x->rt_at = dest->reliable ? NEVER : now_ms + t->tm.t1_ms;
	x->end_at = now_ms + 64ull * t->tm.t1_ms;
	timers_set(t, x);
	*out = x;
	return 0;
}

static const char *req_of(const struct ptx *x)
{
	return x->len > REQ_INLINE ? x->heap : x->req;
}

/* Re-parse the stored request (ours: it parses). */
static int parse_stored(struct ptx_table *t, const struct ptx *x, struct sip_msg *m)
{
	struct sip_perr err;
	ssize_t n = sip_parse(req_of(x), x->len, SIP_PARSE_DGRAM, &t->lim, t->hdrs,
			      t->lim.max_headers, m, &err);
	return n < 0 ? (int)n : 0;
}

static void put_field(struct sip_out *o, const char *name, struct sw_str v)
{
	sip_out_cstr(o, name);
	sip_out_str(o, v);
	sip_out_cstr(o, "\r\n");
}

/* ACK (§17.1.1.3) or CANCEL (§9.1) from the stored INVITE: Request-URI,
 * top Via, Route, From, Call-ID, CSeq number of the INVITE; To from the
 * response (ACK) or the INVITE (CANCEL). */
static int build_from(struct ptx_table *t, const struct ptx *x, const char *method,
		      const struct sip_msg *resp, struct sip_out *o)
{
	struct sip_msg m;
	int rc = parse_stored(t, x, &m);
	if (rc < 0)
		return rc;
	const struct sip_hdr *to = NULL;
	if (resp)
		to = sip_hdr_get(resp, SIP_H_TO);
	if (!to)
		to = sip_hdr_get(&m, SIP_H_TO);
	const struct sip_hdr *from = sip_hdr_get(&m, SIP_H_FROM);
	if (!to || !from)
		return -EBADMSG;
	sip_out_cstr(o, method);
	sip_out_cstr(o, " ");
	sip_out_str(o, m.ruri.raw);
	sip_out_cstr(o, " SIP/2.0\r\n");
	put_field(o, "Via: ", m.via1.raw);
	for (const struct sip_hdr *h = sip_hdr_get(&m, SIP_H_ROUTE); h; h = sip_hdr_next(&m, h))
		put_field(o, "Route: ", h->value);
	sip_out_cstr(o, "Max-Forwards: 70\r\n");
	put_field(o, "From: ", from->value);
	put_field(o, "To: ", to->value);
	put_field(o, "Call-ID: ", m.call_id);
	sip_out_cstr(o, "CSeq: ");
	sip_out_u64(o, m.cseq.num);
	sip_out_cstr(o, " ");
	sip_out_cstr(o, method);
	sip_out_cstr(o, "\r\nContent-Length: 0\r\n\r\n");
	return o->overflow ? -ENOSPC : 0;
}

int ptx_build_cancel(struct ptx_table *t, const struct ptx *x, struct sip_out *out)
{
	if (x->method != SIP_M_INVITE)
		return -EINVAL;
	return build_from(t, x, "CANCEL", NULL, out);
}

static void send_ack(struct ptx_table *t, struct ptx *x, const struct sip_msg *resp,
		     ptx_send_fn send, void *ctx)
{
	char buf[8192];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof(buf));
	if (build_from(t, x, "ACK", resp, &o) == 0)
		send(ctx, &x->dest, o.buf, o.len);
}

enum ptx_rx ptx_receive(struct ptx_table *t, const struct sip_msg *resp, uint64_t now_ms,
			ptx_send_fn send, void *ctx, struct ptx **out)
{
	*out = NULL;
	if (resp->is_request)
		return PTX_RX_NOMATCH;
	struct ptx *x = find(t, resp->via1.branch, resp->cseq.method);
	if (!x)
		return PTX_RX_NOMATCH;
	*out = x;
	unsigned st = resp->status;
	if (x->method == SIP_M_INVITE) {
		switch (x->state) {
		case PTX_CALLING:
		case PTX_PROCEEDING:
			x->status = st;
			x->rt_at = NEVER; /* §17.1.1.2: any response stops Timer A */
			if (st < 200) {
				x->state = PTX_PROCEEDING;
				/* Timer B runs in Calling only; Timer C is the TU's */
				x->end_at = NEVER;
			} else if (st < 300) {
				/* RFC 6026 §7.2: Accepted, Timer M = 64*T1 */
				x->state = PTX_ACCEPTED;
				x->end_at = now_ms + 64ull * t->tm.t1_ms;
				x->tu_at = NEVER;
			} else {
				send_ack(t, x, resp, send, ctx);
				x->state = PTX_COMPLETED;
				x->tu_at = NEVER;
				/* Timer D: >= 32 s unreliable (64*T1 here, so short
				 * test timers shorten it too), 0 reliable */
				x->end_at = x->dest.reliable ? now_ms : now_ms + 64ull * t->tm.t1_ms;
			}
			timers_set(t, x);
			return PTX_RX_DELIVER;
		case PTX_ACCEPTED:
			/* RFC 6026 §7.2: every 2xx goes to the TU (forwarded) */
			return st >= 200 && st < 300 ? PTX_RX_DELIVER : PTX_RX_ABSORB;
		case PTX_COMPLETED:
			if (st >= 300)
				send_ack(t, x, resp, send, ctx); /* §17.1.1.2 */
			return PTX_RX_ABSORB;
		default:
			return PTX_RX_ABSORB;
		}
	}
	switch (x->state) {
	case PTX_TRYING:
	case PTX_PROCEEDING:
		x->status = st;
		if (st < 200) {
			/* §17.1.2.2: Proceeding, E continues at T2 */
			if (x->state == PTX_TRYING && !x->dest.reliable)
				x->rt_ivl = t->tm.t2_ms;
			x->state = PTX_PROCEEDING;
			timers_set(t, x);
			return PTX_RX_DELIVER;
		}
		x->state = PTX_COMPLETED;
		x->rt_at = NEVER;
		x->tu_at = NEVER;
		/* Timer K: T4 unreliable, 0 reliable */
		x->end_at = x->dest.reliable ? now_ms : now_ms + t->tm.t4_ms;
		timers_set(t, x);
		return PTX_RX_DELIVER;
	default:
		return PTX_RX_ABSORB;
	}
}

uint64_t ptx_tick(struct ptx_table *t, uint64_t now_ms, ptx_send_fn send,
		  ptx_timeout_fn on_timeout, void *ctx)
{
	while (t->nheap > 0) {
		struct ptx *x = &t->e[t->heap[0]];
		if (x->deadline > now_ms)
			return x->deadline - now_ms;
		bool waiting = x->state == PTX_CALLING || x->state == PTX_TRYING ||
			       x->state == PTX_PROCEEDING;
		if (x->end_at <= now_ms || (waiting && x->tu_at <= now_ms)) {
			enum ptx_timeout why = x->end_at <= now_ms
				? (x->method == SIP_M_INVITE ? PTX_TO_B : PTX_TO_F) : PTX_TO_TU;
			heap_remove(t, x);
			if (waiting) {
				/* B / F / TU deadline: the TU synthesizes its 408 */
				x->state = PTX_TERMINATED;
				on_timeout(ctx, x, why);
			}
			/* D / K / M, or after the TU was told: gone */
			release(t, x);
			continue;
		}
		if (x->tu_at <= now_ms)
			x->tu_at = NEVER; /* a deadline after the final: moot */
		if (x->rt_at <= now_ms) {
			/* Timer A doubles without cap (§17.1.1.2); Timer E doubles
			 * up to T2, or stays T2 once Proceeding (§17.1.2.2) */
			send(ctx, &x->dest, req_of(x), x->len);
			if (x->method == SIP_M_INVITE) {
				x->rt_ivl *= 2;
			} else if (x->state == PTX_PROCEEDING) {
				x->rt_ivl = t->tm.t2_ms;
			} else {
				x->rt_ivl *= 2;
				if (x->rt_ivl > t->tm.t2_ms)
					x->rt_ivl = t->tm.t2_ms;
			}
			x->rt_at = now_ms + x->rt_ivl;
		}
		timers_set(t, x);
	}
	return NEVER;
}

void ptx_set_deadline(struct ptx_table *t, struct ptx *x, uint64_t at_ms)
{
	if (!x->used)
		return;
	x->tu_at = at_ms;
	timers_set(t, x);
}

void ptx_abandon(struct ptx_table *t, struct ptx *x)
{
	if (x->used && x->state != PTX_TERMINATED)
		release(t, x);
}

uint64_t ptx_handle(const struct ptx *x)
{
	/* never 0, so a TU may use 0 for "none" */
	return ((uint64_t)x->gen << 32 | x->idx) + 1;
}

struct ptx *ptx_lookup(struct ptx_table *t, uint64_t handle)
{
	if (handle == 0)
		return NULL;
	handle--;
	uint32_t idx = (uint32_t)handle;
	if (idx >= t->cap)
		return NULL;
	struct ptx *x = &t->e[idx];
	return x->used && x->gen == (uint32_t)(handle >> 32) ? x : NULL;
}

enum ptx_state ptx_state(const struct ptx *x)
{
	return x->state;
}

enum sip_method ptx_method(const struct ptx *x)
{
	return x->method;
}

void ptx_owner(const struct ptx *x, uint32_t *owner, uint32_t *gen)
{
	*owner = x->owner;
	*gen = x->owner_gen;
}

const struct sip_txn_dest *ptx_dest(const struct ptx *x)
{
	return &x->dest;
}

const char *ptx_request(const struct ptx *x, size_t *len)
{
	*len = x->len;
	return req_of(x);
}

struct sw_str ptx_branch(const struct ptx *x)
{
	return sw_str_mk(x->branch, x->blen);
}

unsigned ptx_status(const struct ptx *x)
{
	return x->status;
}
