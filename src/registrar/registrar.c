/* Registrar: RFC 3261 §10.3 over a sharded, locked location table, made
 * durable by the binding journal (store/bindings.h).
 *
 * Memory layout (issue 6: 1M bindings in <= 512 MB). struct reg_binding is
 * only the exchange format (~1.9 KB, fixed arrays). Internally a binding is
 * one allocation: an 80-byte header (expiry, CSeq, q, reg-id, received
 * address as family + 16 bytes + port, transport, connection, worker, five
 * 16-bit lengths) followed by its strings packed back to back (Contact,
 * Path, instance, Call-ID, User-Agent, each NUL-terminated). The AOR is
 * stored once per AOR record, not per binding. A typical phone costs about
 * 80 + 200 bytes + malloc overhead; 1M of them stay well under 512 MB.
 *
 * Locking: 64 shards, each a mutex and a chained hash table keyed by
 * SipHash(canonical AOR) under a random key (AORs are attacker data).
 * A shard is also the store's partition: its sequence counter and journal
 * generation are used under the shard lock only.
 *
 * All or nothing (§10.3, last paragraph): a REGISTER's change is computed
 * aside, then the AOR's whole new state is appended to the calling
 * worker's journal segment under the shard lock (into the page cache), and only
 * when that succeeded is it applied to the table. A failed write changes
 * nothing and the worker answers 500; a 200 therefore always names a
 * change that survives kill -9 (and power loss with [registrar] fsync). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "base/lock.h"
#include "base/clock.h"
#include "base/siphash.h"
#include "base/str.h"
#include "registrar/registrar.h"
#include "sip/fields.h"
#include "sip/parse.h"
#include "store/bindings.h"

#define REG_SHARDS 64

struct rb {
	struct rb *next;
	int64_t expires_at;
	uint32_t cseq;
	int32_t reg_id;
	int32_t fd;
	uint32_t conn_id;
	int16_t q;
	uint16_t worker;
	uint16_t port;
	uint8_t family, proto, reliable;
	uint8_t arena;            /* allocated from a load arena chunk */
	uint8_t addr[16];
	uint16_t l_contact, l_path, l_instance, l_callid, l_ua;
	char s[];
};

struct ra {
	struct ra *next;
	uint64_t hash;
	uint64_t seq;             /* journal seq of the state in memory */
	struct rb *list;
	uint16_t n;
	uint16_t aor_len;
	uint8_t arena;
	char aor[];
};

/* Start-up arena: the bindings loaded from the journal are carved out of
 * 2 MB chunks (transparent huge pages) instead of two mallocs each — at
 * 1M bindings malloc and its page faults were half of the load. Each
 * chunk counts its live objects; freeing one (a refresh replaces it)
 * decrements, and the last one unmaps the chunk once the load is over. */
#define ARENA_CHUNK (2u << 20)

struct chunk {
	atomic_uint live;
	atomic_bool sealed;       /* the load is over: unmap when live drops to 0 */
};

struct arena {
	struct chunk *cur;
	size_t used;
	struct chunk **all;
	unsigned n, cap;
};

struct shard {
	pthread_mutex_t mu;
	struct ra **buckets;
	size_t mask;
};

struct sw_registrar {
	struct reg_conf conf;
	struct sw_hkey key;
	struct sw_bstore *store;
	atomic_uint nbindings;
	struct bstore_binding dump_bind[REG_HARD_PER_AOR];  /* the compaction thread's */
	struct arena arena;       /* while loading */
	struct loadq *lq;         /* while loading */
	struct shard shards[REG_SHARDS];
};

_Static_assert(REG_HARD_PER_AOR == BSTORE_MAX_BINDINGS, "a journal record holds an AOR's bindings");
_Static_assert(REG_SHARDS <= BSTORE_MAX_PARTS, "a shard is a store partition");

void reg_conf_default(struct reg_conf *c)
{
	c->min_expires = 60;
	c->max_expires = 3600;
	c->default_expires = 3600;
	c->max_bindings_per_aor = 10;
	c->max_bindings = 1000000;
	c->max_contacts = 16;
}

size_t registrar_hdrs_cap(const struct reg_conf *c)
{
	/* One Contact line per binding (URI, expires, q, instance, reg-id),
	 * plus Path, Date and Min-Expires. */
	size_t per = REG_CONTACT_MAX + REG_INSTANCE_MAX + 96;
	return (size_t)c->max_bindings_per_aor * per + REG_PATH_MAX + 128;
}

/* ---- allocation ---- */

static struct chunk *chunk_new(void)
{
	/* Aligned to its size, so an object finds its chunk by masking. */
	uint8_t *m = mmap(NULL, 2 * ARENA_CHUNK, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	uintptr_t start = ((uintptr_t)m + ARENA_CHUNK - 1) & ~(uintptr_t)(ARENA_CHUNK - 1);
	size_t head = start - (uintptr_t)m;
	if (head)
		munmap(m, head);
	munmap((uint8_t *)start + ARENA_CHUNK, ARENA_CHUNK - head);
	madvise((void *)start, ARENA_CHUNK, MADV_HUGEPAGE);
	struct chunk *c = (struct chunk *)start;
	atomic_init(&c->live, 0);
	atomic_init(&c->sealed, false);
	return c;
}

/* Zeroed memory: from the arena when given (fresh pages), else calloc. */
static void *obj_alloc(struct arena *ar, size_t n, uint8_t *from_arena)
{
	*from_arena = 0;
	n = (n + 15) & ~(size_t)15;
	if (!ar || n > ARENA_CHUNK / 4)
		return calloc(1, n);
	if (!ar->cur || ARENA_CHUNK - ar->used < n) {
		if (ar->n == ar->cap) {
			unsigned cap = ar->cap ? ar->cap * 2 : 64;
			struct chunk **all = realloc(ar->all, cap * sizeof(*all));
			if (!all)
				return calloc(1, n);
			ar->all = all;
			ar->cap = cap;
		}
		struct chunk *c = chunk_new();
		if (!c)
			return calloc(1, n);
		ar->all[ar->n++] = c;
		ar->cur = c;
		ar->used = 64;
	}
	void *p = (uint8_t *)ar->cur + ar->used;
	ar->used += n;
	atomic_fetch_add_explicit(&ar->cur->live, 1, memory_order_relaxed);
	*from_arena = 1;
	return p;
}

static void obj_free(void *p, uint8_t from_arena)
{
	if (!p)
		return;
	if (!from_arena) {
		free(p);
		return;
	}
	struct chunk *c = (struct chunk *)((uintptr_t)p & ~(uintptr_t)(ARENA_CHUNK - 1));
	if (atomic_fetch_sub_explicit(&c->live, 1, memory_order_acq_rel) == 1 &&
	    atomic_load_explicit(&c->sealed, memory_order_acquire))
		munmap(c, ARENA_CHUNK);
}

/* The load is over: chunks now die with their last object. */
static void arena_seal(struct arena *ar)
{
	for (unsigned i = 0; i < ar->n; i++) {
		struct chunk *c = ar->all[i];
		atomic_store(&c->sealed, true);
		if (atomic_load(&c->live) == 0)
			munmap(c, ARENA_CHUNK);
	}
	free(ar->all);
	memset(ar, 0, sizeof(*ar));
}

static void rb_free(struct rb *b)
{
	if (b)
		obj_free(b, b->arena);
}

static void ra_free(struct ra *a)
{
	if (a)
		obj_free(a, a->arena);
}

/* ---- compact bindings ---- */

static struct sw_str rb_contact(const struct rb *b)
{
	return sw_str_mk(b->s, b->l_contact);
}
static struct sw_str rb_path(const struct rb *b)
{
	return sw_str_mk(b->s + b->l_contact + 1, b->l_path);
}
static struct sw_str rb_instance(const struct rb *b)
{
	return sw_str_mk(b->s + b->l_contact + b->l_path + 2, b->l_instance);
}
static struct sw_str rb_callid(const struct rb *b)
{
	return sw_str_mk(b->s + b->l_contact + b->l_path + b->l_instance + 3, b->l_callid);
}
static struct sw_str rb_ua(const struct rb *b)
{
	return sw_str_mk(b->s + b->l_contact + b->l_path + b->l_instance + b->l_callid + 4,
			 b->l_ua);
}

static char *put(char *w, struct sw_str s)
{
	if (s.len)
		memcpy(w, s.p, s.len);
	w[s.len] = '\0';
	return w + s.len + 1;
}

/* Lengths are checked by the callers against the REG_*_MAX limits. */
static struct rb *rb_new(struct arena *ar, struct sw_str contact, struct sw_str path,
			 struct sw_str instance, struct sw_str call_id, struct sw_str ua)
{
	uint8_t in_arena;
	struct rb *b = obj_alloc(ar, sizeof(*b) + contact.len + path.len + instance.len +
				 call_id.len + ua.len + 5, &in_arena);
	if (!b)
		return NULL;
	b->arena = in_arena;
	b->l_contact = (uint16_t)contact.len;
	b->l_path = (uint16_t)path.len;
	b->l_instance = (uint16_t)instance.len;
	b->l_callid = (uint16_t)call_id.len;
	b->l_ua = (uint16_t)ua.len;
	char *w = b->s;
	w = put(w, contact);
	w = put(w, path);
	w = put(w, instance);
	w = put(w, call_id);
	put(w, ua);
	b->fd = -1;
	return b;
}

static void rb_set_src(struct rb *b, const struct sip_txn_dest *src, uint16_t worker)
{
	b->worker = worker;
	if (!src)
		return;
	b->conn_id = src->conn_id;
	b->proto = src->proto;
	b->reliable = src->reliable;
	b->fd = src->fd;
	if (src->addr.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&src->addr;
		b->family = AF_INET;
		memcpy(b->addr, &in->sin_addr, 4);
		b->port = ntohs(in->sin_port);
	} else if (src->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&src->addr;
		b->family = AF_INET6;
		memcpy(b->addr, &in6->sin6_addr, 16);
		b->port = ntohs(in6->sin6_port);
	}
}

static void rb_to_bind(const struct rb *b, struct bstore_binding *r)
{
	r->contact = rb_contact(b);
	r->instance = rb_instance(b);
	r->call_id = rb_callid(b);
	r->path = rb_path(b);
	r->user_agent = rb_ua(b);
	r->expires_at = b->expires_at;
	r->cseq = b->cseq;
	r->reg_id = b->reg_id;
	r->q = b->q;
	r->proto = b->proto;
	r->family = b->family;
	memcpy(r->addr, b->addr, sizeof(r->addr));
	r->port = b->port;
	r->worker = b->worker;
}

static void copy_cstr(char *dst, size_t cap, struct sw_str s)
{
	size_t n = s.len < cap ? s.len : cap - 1;   /* cannot happen: sizes checked on entry */
	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

static void rb_export(const struct ra *a, const struct rb *b, struct reg_binding *out)
{
	memset(out, 0, sizeof(*out));
	copy_cstr(out->aor, sizeof(out->aor), sw_str_mk(a->aor, a->aor_len));
	copy_cstr(out->contact, sizeof(out->contact), rb_contact(b));
	copy_cstr(out->path, sizeof(out->path), rb_path(b));
	copy_cstr(out->instance, sizeof(out->instance), rb_instance(b));
	copy_cstr(out->call_id, sizeof(out->call_id), rb_callid(b));
	copy_cstr(out->user_agent, sizeof(out->user_agent), rb_ua(b));
	out->cseq = b->cseq;
	out->reg_id = b->reg_id;
	out->q = b->q;
	out->expires_at = b->expires_at;
	out->worker = b->worker;
	out->received.conn_id = b->conn_id;
	out->received.proto = b->proto;
	out->received.reliable = b->reliable;
	out->received.fd = b->fd;
	if (b->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&out->received.addr;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, b->addr, 4);
		in->sin_port = htons(b->port);
		out->received.alen = sizeof(*in);
	} else if (b->family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->received.addr;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, b->addr, 16);
		in6->sin6_port = htons(b->port);
		out->received.alen = sizeof(*in6);
	}
}

/* ---- AOR canonical form (RFC 3261 §10.3 step 5) ---- */

static bool user_char_ok(unsigned char c)
{
	/* unreserved / user-unreserved (RFC 3261 §25.1): kept literal. */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("-_.!~*'()&=+$,;?/", c) != NULL;
}

/* Escapes are decoded so that equivalent spellings share one key, then
 * re-encoded where the grammar requires it (always upper-case hex), so
 * the key is printable and an escaped NUL cannot truncate it (RFC 4475
 * §3.1.1.4 escnull). Parameters and the password are dropped. */
ssize_t registrar_aor(const struct sip_uri *u, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	char user[REG_AOR_MAX];
	ssize_t ulen = 0;
	size_t o = 0;

	if (u->scheme != SIP_URI_SIP && u->scheme != SIP_URI_SIPS)
		return -EINVAL;
	if (u->host.len == 0)
		return -EBADMSG;
	if (sw_str_present(u->user) && u->user.len) {
		ulen = sip_unescape(u->user, user, sizeof(user));
		if (ulen == -ENOSPC)
			return -ENAMETOOLONG;
		if (ulen < 0)
			return -EBADMSG;
	}
#define OUT(c) do { if (o + 1 >= cap) return -ENAMETOOLONG; out[o++] = (c); } while (0)
	const char *scheme = u->scheme == SIP_URI_SIPS ? "sips:" : "sip:";
	for (const char *p = scheme; *p; p++)
		OUT(*p);
	for (ssize_t i = 0; i < ulen; i++) {
		unsigned char c = (unsigned char)user[i];
		if (user_char_ok(c)) {
			OUT((char)c);
		} else {
			OUT('%');
			OUT(hex[c >> 4]);
			OUT(hex[c & 15]);
		}
	}
	if (ulen > 0)
		OUT('@');
	if (u->host_v6)
		OUT('[');
	for (size_t i = 0; i < u->host.len; i++) {
		char c = u->host.p[i];
		OUT((c >= 'A' && c <= 'Z') ? (char)(c + 32) : c);
	}
	if (u->host_v6)
		OUT(']');
	if (u->port) {
		char d[6];
		int n = 0;
		for (unsigned v = u->port; v; v /= 10)
			d[n++] = (char)('0' + v % 10);
		OUT(':');
		while (n)
			OUT(d[--n]);
	}
#undef OUT
	out[o] = '\0';
	return (ssize_t)o;
}

/* ---- the table ---- */

static struct shard *shard_of(struct sw_registrar *r, uint64_t h)
{
	return &r->shards[h & (REG_SHARDS - 1)];
}

static struct ra **bucket_of(struct shard *sh, uint64_t h)
{
	return &sh->buckets[(h >> 6) & sh->mask];
}

static struct ra *ra_find(struct shard *sh, uint64_t h, const char *aor, size_t len)
{
	for (struct ra *a = *bucket_of(sh, h); a; a = a->next)
		if (a->hash == h && a->aor_len == len && memcmp(a->aor, aor, len) == 0)
			return a;
	return NULL;
}

static struct ra *ra_new(struct arena *ar, uint64_t h, const char *aor, size_t len)
{
	uint8_t in_arena;
	struct ra *a = obj_alloc(ar, sizeof(*a) + len + 1, &in_arena);
	if (!a)
		return NULL;
	a->arena = in_arena;
	a->hash = h;
	a->aor_len = (uint16_t)len;
	memcpy(a->aor, aor, len);
	return a;
}

static void ra_link(struct shard *sh, struct ra *a)
{
	struct ra **bp = bucket_of(sh, a->hash);
	a->next = *bp;
	*bp = a;
}

static void ra_unlink_free(struct shard *sh, struct ra *a)
{
	for (struct ra **pp = bucket_of(sh, a->hash); *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	ra_free(a);
}

/* Reserve n more bindings in the whole table (max_bindings). */
static bool count_reserve(struct sw_registrar *r, unsigned n)
{
	unsigned cur = atomic_load(&r->nbindings);
	do {
		if (cur > r->conf.max_bindings || n > r->conf.max_bindings - cur)
			return false;
	} while (!atomic_compare_exchange_weak(&r->nbindings, &cur, cur + n));
	return true;
}

/* ---- loading (journal replay) and compaction ---- */

static void ra_clear(struct sw_registrar *r, struct ra *a)
{
	for (struct rb *b = a->list, *bn; b; b = bn) {
		bn = b->next;
		rb_free(b);
	}
	if (a->n)
		atomic_fetch_sub(&r->nbindings, a->n);
	a->list = NULL;
	a->n = 0;
}

/* Records are loaded in batches so that the table's cache misses overlap:
 * at 1M AORs two misses per record (bucket slot, then the AOR at its head)
 * were ~40 % of the load. A batch copies what it holds (the store's
 * buffers move on), prefetches each bucket slot as it comes, then each
 * head AOR, then applies the records in order. */
#define LQ_RECS 16
#define LQ_BINDS 256
#define LQ_BYTES (64u << 10)

struct loadq {
	unsigned n, nb;
	size_t used;
	uint64_t h[LQ_RECS];
	struct bstore_rec rec[LQ_RECS];
	struct bstore_binding b[LQ_BINDS];
	char buf[LQ_BYTES];
};

static int load_one(struct sw_registrar *r, const struct bstore_rec *rec, uint64_t h);

static int lq_flush(struct sw_registrar *r)
{
	struct loadq *q = r->lq;
	int rc = 0;
	if (!q)
		return 0;
	for (unsigned i = 0; i < q->n; i++) {
		struct ra *head = *bucket_of(shard_of(r, q->h[i]), q->h[i]);
		if (head)
			__builtin_prefetch(head);
	}
	for (unsigned i = 0; rc == 0 && i < q->n; i++)
		rc = load_one(r, &q->rec[i], q->h[i]);
	q->n = q->nb = 0;
	q->used = 0;
	return rc;
}

static struct sw_str lq_put(struct loadq *q, struct sw_str s)
{
	struct sw_str d = { q->buf + q->used, s.len };
	if (s.len)
		memcpy(q->buf + q->used, s.p, s.len);
	q->used += s.len;
	return d;
}

static int load_end(void *ctx)
{
	return lq_flush(ctx);
}

static int load_rec(void *ctx, const struct bstore_rec *rec)
{
	struct sw_registrar *r = ctx;
	struct loadq *q = r->lq;

	if (rec->aor.len == 0 || rec->aor.len >= REG_AOR_MAX)
		return 0;
	uint64_t h = sw_siphash(&r->key, rec->aor.p, rec->aor.len);
	size_t bytes = rec->aor.len;
	for (unsigned i = 0; i < rec->n; i++)
		bytes += rec->b[i].contact.len + rec->b[i].instance.len + rec->b[i].call_id.len +
			 rec->b[i].path.len + rec->b[i].user_agent.len;
	if (!q || rec->n > LQ_BINDS || bytes > LQ_BYTES) {
		int rc = lq_flush(r);
		return rc ? rc : load_one(r, rec, h);
	}
	if (q->n == LQ_RECS || q->nb + rec->n > LQ_BINDS || q->used + bytes > LQ_BYTES) {
		int rc = lq_flush(r);
		if (rc)
			return rc;
	}
	__builtin_prefetch(bucket_of(shard_of(r, h), h));
	struct bstore_rec *d = &q->rec[q->n];
	q->h[q->n++] = h;
	d->aor = lq_put(q, rec->aor);
	d->seq = rec->seq;
	d->n = rec->n;
	d->b = &q->b[q->nb];
	for (unsigned i = 0; i < rec->n; i++) {
		struct bstore_binding *b = &q->b[q->nb++];
		*b = rec->b[i];
		b->contact = lq_put(q, b->contact);
		b->instance = lq_put(q, b->instance);
		b->call_id = lq_put(q, b->call_id);
		b->path = lq_put(q, b->path);
		b->user_agent = lq_put(q, b->user_agent);
	}
	return 0;
}

/* One record from the snapshot or a segment: the AOR's state when its seq
 * is the highest seen so far. An AOR left without bindings stays in the
 * table until the load ends, so that an older record read later cannot
 * bring it back (records come in no particular order). */
static int load_one(struct sw_registrar *r, const struct bstore_rec *rec, uint64_t h)
{
	struct shard *sh = shard_of(r, h);
	struct ra *a = ra_find(sh, h, rec->aor.p, rec->aor.len);
	if (a && a->seq >= rec->seq)
		return 0;
	if (!a) {
		a = ra_new(&r->arena, h, rec->aor.p, rec->aor.len);
		if (!a)
			return -ENOMEM;
		ra_link(sh, a);
	} else {
		ra_clear(r, a);
	}
	a->seq = rec->seq;
	struct rb **tail = &a->list;
	for (unsigned i = 0; i < rec->n && a->n < r->conf.max_bindings_per_aor; i++) {
		const struct bstore_binding *row = &rec->b[i];
		/* Records are ours, but a damaged or hand-made one must not
		 * break limits. */
		if (row->contact.len == 0 || row->contact.len >= REG_CONTACT_MAX ||
		    row->path.len >= REG_PATH_MAX || row->instance.len >= REG_INSTANCE_MAX ||
		    row->call_id.len >= REG_CALLID_MAX || row->user_agent.len >= REG_UA_MAX)
			continue;
		if (!count_reserve(r, 1))
			return 0;
		struct rb *b = rb_new(&r->arena, row->contact, row->path, row->instance,
				      row->call_id, row->user_agent);
		if (!b) {
			atomic_fetch_sub(&r->nbindings, 1);
			return -ENOMEM;
		}
		b->expires_at = row->expires_at;
		b->cseq = row->cseq;
		b->reg_id = row->reg_id;
		b->q = row->q;
		b->proto = row->proto;
		b->family = row->family;
		memcpy(b->addr, row->addr, sizeof(b->addr));
		b->port = row->port;
		b->worker = row->worker;
		/* Connections and sockets died with the old process: a stale
		 * conn_id could name some other peer's new connection. */
		b->conn_id = 0;
		b->fd = -1;
		b->reliable = row->proto != 0;
		*tail = b;
		tail = &b->next;
		a->n++;
	}
	return 0;
}

/* After the load: drop the AORs that ended without bindings. */
static void sweep_empty(struct sw_registrar *r)
{
	for (unsigned i = 0; i < REG_SHARDS; i++) {
		struct shard *sh = &r->shards[i];
		for (size_t j = 0; j <= sh->mask; j++) {
			for (struct ra **ap = &sh->buckets[j]; *ap;) {
				struct ra *a = *ap;
				if (a->n == 0) {
					*ap = a->next;
					ra_clear(r, a);
					ra_free(a);
				} else {
					ap = &a->next;
				}
			}
		}
	}
}

/* Compaction (store thread): one shard into the snapshot, under its lock.
 * Expired bindings are left out; an AOR without live ones is not written
 * (older records of it disappear with the segments this replaces). */
static int dump_shard(void *ctx, unsigned part, struct bstore_dump *d, int64_t now_s)
{
	struct sw_registrar *r = ctx;
	struct shard *sh = &r->shards[part];
	int rc = 0;

	sw_mutex_lock(&sh->mu);
	bstore_dump_mark(d, part);
	for (size_t j = 0; rc == 0 && j <= sh->mask; j++) {
		for (struct ra *a = sh->buckets[j]; rc == 0 && a; a = a->next) {
			unsigned n = 0;
			for (struct rb *b = a->list; b && n < REG_HARD_PER_AOR; b = b->next)
				if (b->expires_at > now_s)
					rb_to_bind(b, &r->dump_bind[n++]);
			if (!n)
				continue;
			struct bstore_rec rec = { sw_str_mk(a->aor, a->aor_len), a->seq, n,
						  r->dump_bind };
			rc = bstore_dump_add(d, &rec);
		}
	}
	pthread_mutex_unlock(&sh->mu);
	return rc;
}

static void free_all(struct sw_registrar *r)
{
	for (unsigned i = 0; i < REG_SHARDS; i++) {
		struct shard *sh = &r->shards[i];
		if (!sh->buckets)
			continue;
		for (size_t j = 0; j <= sh->mask; j++) {
			for (struct ra *a = sh->buckets[j], *an; a; a = an) {
				an = a->next;
				for (struct rb *b = a->list, *bn; b; b = bn) {
					bn = b->next;
					rb_free(b);
				}
				ra_free(a);
			}
		}
		free(sh->buckets);
		pthread_mutex_destroy(&sh->mu);
	}
}

struct sw_registrar *registrar_open(const struct reg_conf *conf, const char *data_dir,
				    const struct bstore_conf *store_conf, bstore_report_fn report,
				    void *report_ctx, int *err)
{
	struct reg_conf defc;
	struct bstore_conf sc;
	struct sw_registrar *r;
	int rc;

	if (!conf) {
		reg_conf_default(&defc);
		conf = &defc;
	}
	if (conf->max_bindings_per_aor == 0 || conf->max_bindings_per_aor > REG_HARD_PER_AOR ||
	    conf->max_contacts == 0 || conf->max_contacts > REG_HARD_CONTACTS ||
	    conf->max_bindings == 0 || conf->min_expires > conf->max_expires ||
	    conf->max_expires == 0 || !data_dir) {
		rc = -EINVAL;
		goto fail;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto fail;
	}
	r->conf = *conf;
	if (r->conf.default_expires > r->conf.max_expires)
		r->conf.default_expires = r->conf.max_expires;
	atomic_init(&r->nbindings, 0);
	rc = sw_hkey_random(&r->key);
	if (rc)
		goto fail_free;

	/* About two AOR chains per bucket at the table's capacity. */
	size_t nb = 16;
	while (nb < conf->max_bindings / REG_SHARDS / 2 && nb < (1u << 20))
		nb <<= 1;
	for (unsigned i = 0; i < REG_SHARDS; i++) {
		struct shard *sh = &r->shards[i];
		sh->buckets = calloc(nb, sizeof(*sh->buckets));
		if (!sh->buckets) {
			rc = -ENOMEM;
			goto fail_tab;
		}
		sh->mask = nb - 1;
		pthread_mutex_init(&sh->mu, NULL);
	}

	if (store_conf)
		sc = *store_conf;
	else
		bstore_conf_default(&sc);
	sc.fsync = sc.fsync || conf->fsync;
	struct bstore_hooks hooks = { .nparts = REG_SHARDS, .load = load_rec, .load_end = load_end,
				      .dump = dump_shard, .report = report, .report_ctx = report_ctx,
				      .ctx = r };
	r->lq = malloc(sizeof(*r->lq));   /* NULL: records go one by one */
	if (r->lq)
		r->lq->n = r->lq->nb = 0, r->lq->used = 0;
	r->store = bstore_open(data_dir, &sc, &hooks, sw_wall_s(), &rc);
	free(r->lq);
	r->lq = NULL;
	if (!r->store) {
		arena_seal(&r->arena);
		goto fail_tab;
	}
	sweep_empty(r);
	arena_seal(&r->arena);
	if (err)
		*err = 0;
	return r;

fail_tab:
	free_all(r);
fail_free:
	free(r);
fail:
	if (err)
		*err = rc;
	return NULL;
}

void registrar_close(struct sw_registrar *r)
{
	if (!r)
		return;
	bstore_close(r->store);   /* stops the compaction thread first */
	free_all(r);
	free(r);
}

void registrar_store_stats(struct sw_registrar *r, struct bstore_stats *out)
{
	bstore_stats(r->store, out);
}

int registrar_compact(struct sw_registrar *r, int64_t now_s)
{
	return bstore_compact(r->store, now_s);
}

void registrar_inject_write_error(struct sw_registrar *r, uint16_t worker, int err, size_t partial)
{
	bstore_inject_write_error(r->store, worker, err, partial);
}

unsigned registrar_count(struct sw_registrar *r)
{
	return atomic_load(&r->nbindings);
}

/* ---- response headers ---- */

struct hout {
	char *p;
	size_t cap, len;
	bool overflow;
};

static void h_put(struct hout *h, const char *s, size_t n)
{
	if (!h->p || h->overflow)
		return;
	if (n > h->cap - h->len) {
		h->overflow = true;
		return;
	}
	memcpy(h->p + h->len, s, n);
	h->len += n;
}

static void h_str(struct hout *h, struct sw_str s)
{
	h_put(h, s.p, s.len);
}

static void h_cstr(struct hout *h, const char *s)
{
	h_put(h, s, strlen(s));
}

static void h_u64(struct hout *h, uint64_t v)
{
	char d[20];
	int n = 0;
	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n) {
		char c = d[--n];
		h_put(h, &c, 1);
	}
}

static void h_i64(struct hout *h, int64_t v)
{
	if (v < 0) {
		h_put(h, "-", 1);
		h_u64(h, (uint64_t)0 - (uint64_t)v);
	} else {
		h_u64(h, (uint64_t)v);
	}
}

/* q is kept as thousandths: 500 -> "0.5", 1000 -> "1" (RFC 3261 §20.10). */
static void h_q(struct hout *h, int q)
{
	char b[6] = { (char)('0' + q / 1000), '.', (char)('0' + q / 100 % 10),
		      (char)('0' + q / 10 % 10), (char)('0' + q % 10), 0 };
	size_t n = 5;
	while (n > 2 && b[n - 1] == '0')
		n--;
	if (n == 2)
		n = 1;
	h_put(h, b, n);
}

/* Date: RFC 3261 §20.17, rfc1123-date, always GMT. */
static void h_date(struct hout *h, int64_t now_s)
{
	static const char days[] = "SunMonTueWedThuFriSat";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	time_t t = (time_t)now_s;
	struct tm tm;
	char b[40];

	if (!gmtime_r(&t, &tm))
		return;
	size_t n = 0;
	memcpy(b + n, "Date: ", 6), n += 6;
	memcpy(b + n, days + 3 * tm.tm_wday, 3), n += 3;
	b[n++] = ',';
	b[n++] = ' ';
	b[n++] = (char)('0' + tm.tm_mday / 10);
	b[n++] = (char)('0' + tm.tm_mday % 10);
	b[n++] = ' ';
	memcpy(b + n, months + 3 * tm.tm_mon, 3), n += 3;
	b[n++] = ' ';
	int y = tm.tm_year + 1900;
	b[n++] = (char)('0' + y / 1000 % 10);
	b[n++] = (char)('0' + y / 100 % 10);
	b[n++] = (char)('0' + y / 10 % 10);
	b[n++] = (char)('0' + y % 10);
	b[n++] = ' ';
	int hms[3] = { tm.tm_hour, tm.tm_min, tm.tm_sec };
	for (int i = 0; i < 3; i++) {
		b[n++] = (char)('0' + hms[i] / 10);
		b[n++] = (char)('0' + hms[i] % 10);
		b[n++] = i < 2 ? ':' : ' ';
	}
	memcpy(b + n, "GMT\r\n", 5), n += 5;
	h_put(h, b, n);
}

static void h_contact(struct hout *h, const struct rb *b, int64_t now_s)
{
	int64_t left = b->expires_at - now_s;
	h_cstr(h, "Contact: <");
	h_str(h, rb_contact(b));
	h_cstr(h, ">;expires=");
	h_i64(h, left > 0 ? left : 0);
	if (b->q >= 0) {
		h_cstr(h, ";q=");
		h_q(h, b->q);
	}
	/* RFC 5626 §6: the UA finds its own flows by instance and reg-id. */
	if (b->l_instance) {
		h_cstr(h, ";+sip.instance=");
		h_str(h, rb_instance(b));
	}
	if (b->reg_id >= 0) {
		h_cstr(h, ";reg-id=");
		h_i64(h, b->reg_id);
	}
	h_cstr(h, "\r\n");
}

/* ---- request processing ---- */

/* One Contact of the request, checked and with its expiry settled. */
struct req_contact {
	struct sip_nameaddr na;
	uint32_t expires;         /* after clamping; 0 removes */
};

/* One binding of the AOR while the request is applied tentatively
 * (RFC 3261 §10.3: all updates commit or none). */
struct slot {
	struct rb *old;           /* binding before the request, or NULL */
	struct rb *new;           /* replacement/addition, or NULL */
	bool removed;             /* old is dropped (and new is NULL) */
	bool touched;             /* already set by an earlier Contact of this request */
};

static bool pvalue_eq(struct sw_str a, struct sw_str b)
{
	if (sw_str_present(a) != sw_str_present(b))
		return false;
	return sw_str_ieq(a, b);
}

/* RFC 3261 §19.1.4: user, ttl, method, maddr and transport must match when
 * present in either URI; any other parameter only when present in both;
 * header components must be present in both and match. */
static bool uri_params_eq(const struct sip_uri *a, const struct sip_uri *b)
{
	static const char *const strict[] = { "user", "ttl", "method", "maddr", "transport" };
	for (unsigned i = 0; i < sizeof(strict) / sizeof(strict[0]); i++) {
		struct sw_str va = SW_STR_NULL, vb = SW_STR_NULL;
		int ha = sip_param_get(a->params, strict[i], &va);
		int hb = sip_param_get(b->params, strict[i], &vb);
		if (ha != hb || (ha == 1 && !pvalue_eq(va, vb)))
			return false;
	}
	struct sw_str rest = a->params;
	struct sip_param p;
	int rc;
	while ((rc = sip_params_next(&rest, &p)) == 1) {
		char name[64];
		struct sw_str vb = SW_STR_NULL;
		if (sw_str_copy(p.name, name, sizeof(name)) != 0)
			return false;
		if (sip_param_get(b->params, name, &vb) == 1 && !pvalue_eq(p.value, vb))
			return false;
	}
	if (rc < 0)
		return false;
	return sw_str_present(a->headers) == sw_str_present(b->headers) &&
	       sw_str_eq(a->headers, b->headers);
}

static bool contact_matches(const struct req_contact *c, const struct rb *b)
{
	const struct sip_nameaddr *na = &c->na;
	/* RFC 5626 §6: with +sip.instance and reg-id the binding is the
	 * (AOR, instance, reg-id) triple, whatever the Contact URI. */
	if (sw_str_present(na->instance) && na->reg_id >= 0)
		return b->reg_id == na->reg_id && sw_str_ieq(rb_instance(b), na->instance);
	/* a refresh sends the Contact as it sent it before: the same text is
	 * the same URI (§19.1.4), without parsing the stored one */
	if (sw_str_eq(rb_contact(b), na->uri.raw))
		return true;
	struct sip_uri stored;
	if (sip_uri_parse(rb_contact(b), &stored) != 0)
		return sw_str_eq(rb_contact(b), na->uri.raw);
	return sip_uri_addr_eq(&na->uri, &stored) && uri_params_eq(&na->uri, &stored);
}

static void res_set(struct reg_result *res, unsigned status, const char *reason)
{
	res->status = status;
	res->reason = reason;
}

static bool supports_path(const struct sip_msg *m)
{
	struct sip_hdr_iter it;
	struct sw_str e;
	sip_hdr_iter_init(&it, m, SIP_H_SUPPORTED);
	while (sip_hdr_iter_next(&it, &e) == 1)
		if (sw_str_ieq_c(sw_str_trim(e), "path"))
			return true;
	return false;
}

/* Path values (RFC 3327 §5.3), comma-joined in order. */
static int collect_path(const struct sip_msg *m, char *buf, size_t cap, size_t *len)
{
	struct sip_hdr_iter it;
	struct sw_str e;
	size_t n = 0;
	int rc;

	sip_hdr_iter_init(&it, m, SIP_H_PATH);
	while ((rc = sip_hdr_iter_next(&it, &e)) == 1) {
		struct sip_nameaddr na;
		if (e.len == 0 || sip_nameaddr_parse(e, &na) != 0)
			return -EBADMSG;
		if (e.len + (n ? 1 : 0) >= cap - n)
			return -ENAMETOOLONG;
		if (n)
			buf[n++] = ',';
		memcpy(buf + n, e.p, e.len);
		n += e.len;
	}
	if (rc < 0)
		return -EBADMSG;
	buf[n] = '\0';
	*len = n;
	return 0;
}

/* Everything that can be refused before the table is touched. */
struct req {
	char aor[REG_AOR_MAX];
	size_t aor_len;
	uint64_t hash;
	char path[REG_PATH_MAX];
	size_t path_len;
	bool path_echo;
	struct sw_str ua;
	bool star;
	unsigned n;
	struct req_contact c[REG_HARD_CONTACTS];
	struct bstore_binding bind[REG_HARD_PER_AOR];   /* the journal record */
};

static void check_request(struct sw_registrar *r, const struct sip_msg *m, struct req *q,
			  struct reg_result *res)
{
	const struct reg_conf *cf = &r->conf;
	struct sip_hdr_iter it;
	struct sw_str e;
	bool too_brief = false;
	int rc;

	/* §10.3 step 5: the AOR is the To URI, and only sip/sips work here. */
	ssize_t al = registrar_aor(&m->to.uri, q->aor, sizeof(q->aor));
	if (al < 0) {
		res_set(res, 400, al == -ENAMETOOLONG ? "aor-too-long" :
			al == -EINVAL ? "aor-not-sip" : "bad-aor");
		return;
	}
	q->aor_len = (size_t)al;
	q->hash = sw_siphash(&r->key, q->aor, q->aor_len);

	if (m->call_id.len == 0 || m->call_id.len >= REG_CALLID_MAX) {
		res_set(res, 400, "bad-call-id");
		return;
	}
	const struct sip_hdr *ua = sip_hdr_get(m, SIP_H_USER_AGENT);
	q->ua = ua ? ua->value : SW_STR_LIT("");
	if (q->ua.len >= REG_UA_MAX) {
		res_set(res, 400, "user-agent-too-long");
		return;
	}
	rc = collect_path(m, q->path, sizeof(q->path), &q->path_len);
	if (rc) {
		res_set(res, 400, rc == -ENAMETOOLONG ? "path-too-long" : "bad-path");
		return;
	}
	q->path_echo = q->path_len && supports_path(m);

	sip_hdr_iter_init(&it, m, SIP_H_CONTACT);
	while ((rc = sip_hdr_iter_next(&it, &e)) == 1) {
		if (q->n >= cf->max_contacts) {
			res_set(res, 400, "too-many-contacts");
			return;
		}
		struct req_contact *c = &q->c[q->n++];
		if (e.len == 0 || sip_contact_parse(e, &c->na) != 0) {
			res_set(res, 400, "bad-contact");
			return;
		}
		if (c->na.star) {
			q->star = true;
			continue;
		}
		if (c->na.uri.scheme != SIP_URI_SIP && c->na.uri.scheme != SIP_URI_SIPS) {
			res_set(res, 400, "contact-not-sip");
			return;
		}
		if (c->na.uri.raw.len >= REG_CONTACT_MAX) {
			res_set(res, 400, "contact-too-long");
			return;
		}
		if (sw_str_present(c->na.instance) && c->na.instance.len >= REG_INSTANCE_MAX) {
			res_set(res, 400, "instance-too-long");
			return;
		}
		if (c->na.reg_id > INT32_MAX) {
			res_set(res, 400, "bad-reg-id");
			return;
		}
		/* §10.3 step 7: contact expires param, else Expires, else default. */
		int64_t x = c->na.expires >= 0 ? c->na.expires :
			    m->expires >= 0 ? m->expires : (int64_t)cf->default_expires;
		if (x > 0 && x < cf->min_expires)
			too_brief = true;
		if (x > cf->max_expires)
			x = cf->max_expires;
		c->expires = (uint32_t)x;
	}
	if (rc < 0) {
		res_set(res, 400, "bad-contact");
		return;
	}
	/* §10.3 step 6: '*' only alone and only with Expires: 0. */
	if (q->star && q->n != 1) {
		res_set(res, 400, "star-not-alone");
		return;
	}
	if (q->star && m->expires != 0) {
		res_set(res, 400, "star-needs-expires-0");
		return;
	}
	/* §10.3 step 7 / §21.4.17: too brief -> 423 with our minimum. */
	if (too_brief) {
		res_set(res, 423, "interval-too-brief");
		return;
	}
	res_set(res, 0, NULL);
}

static void write_headers(struct hout *h, const struct req *q, struct slot *sl, unsigned ns,
			  int64_t now_s)
{
	for (unsigned i = 0; i < ns; i++) {
		const struct rb *b = sl[i].new ? sl[i].new : sl[i].removed ? NULL : sl[i].old;
		if (b && b->expires_at > now_s)
			h_contact(h, b, now_s);
	}
	/* RFC 3327 §5.3: Path copied into the 200 when the UA supports it. */
	if (q->path_echo) {
		h_cstr(h, "Path: ");
		h_put(h, q->path, q->path_len);
		h_cstr(h, "\r\n");
	}
	h_date(h, now_s);
}

int registrar_register(struct sw_registrar *r, const struct sip_msg *m,
		       const struct sip_txn_dest *src, uint16_t worker, int64_t now_s,
		       struct reg_result *res)
{
	struct slot sl[REG_HARD_PER_AOR + REG_HARD_CONTACTS];
	struct hout h;
	unsigned ns = 0, n_old = 0, final = 0, reserved = 0;
	struct ra *a, *fresh = NULL;
	struct req *q;

	if (!r || !m || !res)
		return -EINVAL;
	h = (struct hout){ res->hdrs, res->hdrs ? res->hdrs_cap : 0, 0, false };
	res->hdrs_len = 0;
	res->err = 0;
	res->bindings = 0;
	if (!m->is_request || m->method != SIP_M_REGISTER) {
		res_set(res, 400, "not-register");
		return 0;
	}
	/* ~35 KB of parsed contacts and the record: heap, not a worker's
	 * stack; not zeroed (check_request sets what it reads). */
	q = malloc(sizeof(*q));
	if (!q) {
		res_set(res, 500, "no-memory");
		return 0;
	}
	q->n = 0;
	q->star = false;
	check_request(r, m, q, res);
	if (res->status) {
		if (res->status == 423) {
			h_cstr(&h, "Min-Expires: ");
			h_u64(&h, r->conf.min_expires);
			h_cstr(&h, "\r\n");
			res->hdrs_len = h.overflow ? 0 : h.len;
		}
		free(q);
		return 0;
	}

	struct shard *sh = shard_of(r, q->hash);
	sw_mutex_lock(&sh->mu);
	a = ra_find(sh, q->hash, q->aor, q->aor_len);
	for (struct rb *b = a ? a->list : NULL; b; b = b->next) {
		sl[ns++] = (struct slot){ .old = b };
		n_old++;
	}

	if (q->n == 0) {
		/* §10.3 step 8 query: no change, list what is bound. */
		write_headers(&h, q, sl, ns, now_s);
		for (unsigned i = 0; i < ns; i++)
			final += sl[i].old->expires_at > now_s;
		goto reply_ok;
	}

	/* Expired bindings leave with this change. */
	for (unsigned i = 0; i < ns; i++)
		if (sl[i].old->expires_at <= now_s)
			sl[i].removed = true;

	if (q->star) {
		/* §10.3 step 6: each binding goes unless the same Call-ID came with
		 * a CSeq not higher than the stored one; then nothing changes. */
		for (unsigned i = 0; i < ns; i++) {
			struct rb *b = sl[i].old;
			if (sl[i].removed)
				continue;
			if (sw_str_eq(rb_callid(b), m->call_id) && m->cseq.num <= b->cseq) {
				res_set(res, 500, "cseq-out-of-order");
				goto abort;
			}
			sl[i].removed = true;
		}
	}

	for (unsigned k = 0; k < q->n && !q->star; k++) {
		struct req_contact *c = &q->c[k];
		struct slot *s = NULL;
		for (unsigned i = 0; i < ns && !s; i++) {
			struct rb *b = sl[i].new ? sl[i].new : sl[i].removed ? NULL : sl[i].old;
			if (b && contact_matches(c, b))
				s = &sl[i];
		}
		/* §10.3 step 7: same Call-ID needs a higher CSeq, else the
		 * whole request fails (500 — see the end of §10.3). */
		if (s && !s->touched && sw_str_eq(rb_callid(s->old), m->call_id) &&
		    m->cseq.num <= s->old->cseq) {
			res_set(res, 500, "cseq-out-of-order");
			goto abort;
		}
		if (c->expires == 0) {
			if (s) {
				free(s->new);
				s->new = NULL;
				s->removed = true;
				s->touched = true;
			}
			continue;
		}
		struct sw_str inst = sw_str_present(c->na.instance) ? c->na.instance : SW_STR_LIT("");
		struct rb *nb = rb_new(NULL, c->na.uri.raw, sw_str_mk(q->path, q->path_len), inst,
				       m->call_id, q->ua);
		if (!nb) {
			res_set(res, 500, "no-memory");
			goto abort;
		}
		nb->expires_at = now_s + c->expires;
		nb->cseq = m->cseq.num;
		nb->reg_id = c->na.reg_id >= 0 ? (int32_t)c->na.reg_id : -1;
		nb->q = (int16_t)(c->na.q >= 0 && c->na.q <= 1000 ? c->na.q : -1);
		rb_set_src(nb, src, worker);
		if (!s) {
			s = &sl[ns++];   /* ns <= n_old + k: the array has room */
			*s = (struct slot){ 0 };
		} else {
			free(s->new);
		}
		*s = (struct slot){ .old = s->old, .new = nb, .touched = true };
	}

	/* (AOR, Contact text) is the row key on disk: when two bindings end up
	 * with the same text (an instance/reg-id flow moved onto a URI bound
	 * without one), the one this request wrote wins. */
	for (unsigned i = 0; i < ns; i++) {
		struct rb *bi = sl[i].new ? sl[i].new : sl[i].removed ? NULL : sl[i].old;
		for (unsigned j = i + 1; bi && j < ns; j++) {
			struct rb *bj = sl[j].new ? sl[j].new : sl[j].removed ? NULL : sl[j].old;
			if (!bj || !sw_str_eq(rb_contact(bi), rb_contact(bj)))
				continue;
			struct slot *lose = sl[j].new ? &sl[i] : &sl[j];
			free(lose->new);
			lose->new = NULL;
			lose->removed = true;
			if (lose == &sl[i])
				break;
		}
	}
	for (unsigned i = 0; i < ns; i++)
		final += sl[i].new || (sl[i].old && !sl[i].removed);
	if (final > r->conf.max_bindings_per_aor && final > n_old) {
		res_set(res, 403, "too-many-bindings");
		goto abort;
	}
	if (final > n_old) {
		if (!count_reserve(r, final - n_old)) {
			res_set(res, 503, "table-full");
			goto abort;
		}
		reserved = final - n_old;
	}

	write_headers(&h, q, sl, ns, now_s);
	if (h.overflow) {
		res_set(res, 500, "reply-too-large");
		goto abort;
	}
	if (!a && final) {
		fresh = ra_new(NULL, q->hash, q->aor, q->aor_len);
		if (!fresh) {
			res_set(res, 500, "no-memory");
			goto abort;
		}
	}

	/* The journal gets the AOR's new state first (under the shard lock,
	 * so the seq order is the table's order); memory only after it. */
	bool changed = false;
	unsigned nb = 0;
	for (unsigned i = 0; i < ns; i++) {
		struct slot *s = &sl[i];
		struct rb *keep = s->new ? s->new : s->removed ? NULL : s->old;
		changed |= s->new || (s->old && s->removed);
		if (keep && nb < REG_HARD_PER_AOR)
			rb_to_bind(keep, &q->bind[nb++]);
	}
	uint64_t seq = 0;
	if (changed) {
		struct bstore_rec rec = { sw_str_mk(q->aor, q->aor_len), 0, nb, q->bind };
		int rc = nb == final ? bstore_append(r->store, (unsigned)(q->hash & (REG_SHARDS - 1)),
						     worker, &rec, &seq) : -EINVAL;
		if (rc) {
			res->err = rc;
			res_set(res, 500, "journal-write-failed");
			free(fresh);
			goto abort;
		}
	}

	/* Commit to memory: the new list in slot order. */
	if (fresh) {
		ra_link(sh, fresh);
		a = fresh;
	}
	if (a && changed) {
		struct rb **tail = &a->list;
		a->seq = seq;
		for (unsigned i = 0; i < ns; i++) {
			struct slot *s = &sl[i];
			struct rb *keep = s->new ? s->new : s->removed ? NULL : s->old;
			if (s->old && s->old != keep)
				rb_free(s->old);
			if (keep) {
				*tail = keep;
				tail = &keep->next;
			}
		}
		*tail = NULL;
		a->n = (uint16_t)final;
		if (final == 0)
			ra_unlink_free(sh, a);
	}
	if (final < n_old)
		atomic_fetch_sub(&r->nbindings, n_old - final);

reply_ok:
	pthread_mutex_unlock(&sh->mu);
	res->bindings = final;
	res->hdrs_len = h.overflow ? 0 : h.len;
	res_set(res, h.overflow ? 500 : 200, h.overflow ? "reply-too-large" : "ok");
	free(q);
	return 0;

abort:
	pthread_mutex_unlock(&sh->mu);
	if (reserved)
		atomic_fetch_sub(&r->nbindings, reserved);
	for (unsigned i = 0; i < ns; i++)
		free(sl[i].new);
	res->hdrs_len = 0;
	free(q);
	return 0;
}

unsigned registrar_lookup(struct sw_registrar *r, struct sw_str aor, int64_t now_s,
			  struct reg_binding *out, unsigned cap)
{
	char canon[REG_AOR_MAX];
	struct sip_uri u;
	unsigned n = 0;

	/* Accept any spelling of the AOR: canonicalise like REGISTER does. */
	if (sip_uri_parse(aor, &u) == 0) {
		ssize_t l = registrar_aor(&u, canon, sizeof(canon));
		if (l < 0)
			return 0;
		aor = sw_str_mk(canon, (size_t)l);
	}
	uint64_t hsh = sw_siphash(&r->key, aor.p, aor.len);
	struct shard *sh = shard_of(r, hsh);
	sw_mutex_lock(&sh->mu);
	struct ra *a = ra_find(sh, hsh, aor.p, aor.len);
	for (struct rb *b = a ? a->list : NULL; b && n < cap; b = b->next) {
		if (b->expires_at <= now_s)
			continue;
		rb_export(a, b, &out[n++]);
	}
	pthread_mutex_unlock(&sh->mu);

	/* Highest q first (RFC 3261 §16.6 step 1 orders targets by q); an
	 * absent q ranks as 1.0. Insertion sort: n <= max_bindings_per_aor. */
	for (unsigned i = 1; i < n; i++) {
		for (unsigned j = i; j > 0; j--) {
			int qa = out[j - 1].q < 0 ? 1000 : out[j - 1].q;
			int qb = out[j].q < 0 ? 1000 : out[j].q;
			if (qa >= qb)
				break;
			struct reg_binding t;
			memcpy(&t, &out[j], sizeof(t));
			memcpy(&out[j], &out[j - 1], sizeof(t));
			memcpy(&out[j - 1], &t, sizeof(t));
		}
	}
	return n;
}

unsigned registrar_purge(struct sw_registrar *r, int64_t now_s)
{
	unsigned gone = 0;

	for (unsigned i = 0; i < REG_SHARDS; i++) {
		struct shard *sh = &r->shards[i];
		sw_mutex_lock(&sh->mu);
		for (size_t j = 0; j <= sh->mask; j++) {
			for (struct ra **ap = &sh->buckets[j]; *ap;) {
				struct ra *a = *ap;
				for (struct rb **bp = &a->list; *bp;) {
					struct rb *b = *bp;
					if (b->expires_at <= now_s) {
						*bp = b->next;
						rb_free(b);
						a->n--;
						gone++;
					} else {
						bp = &b->next;
					}
				}
				if (!a->list) {
					*ap = a->next;
					ra_free(a);
				} else {
					ap = &a->next;
				}
			}
		}
		pthread_mutex_unlock(&sh->mu);
	}
	if (!gone)
		return 0;
	atomic_fetch_sub(&r->nbindings, gone);

	/* Memory only: the journal's records of these bindings carry their
	 * expiry, so they are dropped at the next load or compaction. */
	return gone;
}
