/* SQLite credential store and in-memory snapshots (issue 3). */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/ct.h"
#include "base/siphash.h"
#include "base/str.h"
#include "store/creds.h"

struct creds_db {
	sqlite3 *db;
	char *path;
	dev_t dev;
	ino_t ino;
};


static const char schema[] =
	"CREATE TABLE IF NOT EXISTS credentials ("
	" username TEXT NOT NULL,"
	" realm TEXT NOT NULL,"
	" ha1_md5 TEXT NOT NULL DEFAULT '',"
	" ha1_sha256 TEXT NOT NULL DEFAULT '',"
	" ha1_sha512_256 TEXT NOT NULL DEFAULT '',"
	" uh_md5 TEXT NOT NULL DEFAULT '',"
	" uh_sha256 TEXT NOT NULL DEFAULT '',"
	" uh_sha512_256 TEXT NOT NULL DEFAULT '',"
	" enabled INTEGER NOT NULL DEFAULT 1,"
	" aors TEXT NOT NULL DEFAULT '',"
	" updated INTEGER NOT NULL DEFAULT 0,"
	" source TEXT NOT NULL DEFAULT '',"
	" PRIMARY KEY (username, realm));"
	"PRAGMA user_version = 1;";

#define ROW_COLS "username, realm, ha1_md5, ha1_sha256, ha1_sha512_256, uh_md5, uh_sha256, " \
	"uh_sha512_256, enabled, aors, updated, source"

static int sq_err(int rc)
{
	switch (rc) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return -EIO;
	}
}

int creds_db_open(const char *path, unsigned flags, struct creds_db **out)
{
	struct creds_db *d = calloc(1, sizeof(*d));
	struct stat st;
	int rc;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->path = strdup(path);
	if (!d->path) {
		free(d);
		return -ENOMEM;
	}
	if (flags & CREDS_OPEN_CREATE) {
		/* Create it 0600 ourselves: SQLite would use 0644 & umask. */
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
			goto fail;
		}
		close(fd);
	}
	if (stat(path, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	rc = sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = sq_err(rc);
		goto fail;
	}
	sqlite3_busy_timeout(d->db, 2000);
	if (flags & CREDS_OPEN_CREATE) {
		/* WAL: the server keeps reading while the CLI writes. */
		rc = sqlite3_exec(d->db, "PRAGMA journal_mode=WAL;", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(d->db, schema, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			rc = sq_err(rc);
			goto fail;
		}
	} else {
		/* The server side: fail fast rather than stall a worker. */
		sqlite3_busy_timeout(d->db, 200);
		sqlite3_stmt *st2;
		rc = sqlite3_prepare_v2(d->db, "SELECT 1 FROM credentials LIMIT 1", -1, &st2, NULL);
		if (rc != SQLITE_OK) {
			rc = sq_err(rc) == -EIO ? -ENOENT : sq_err(rc);
			goto fail;
		}
		sqlite3_finalize(st2);
	}
	*out = d;
	return 0;
fail:
	creds_db_close(d);
	return rc < 0 ? rc : -EIO;
}

void creds_db_close(struct creds_db *d)
{
	if (!d)
		return;
	sqlite3_close_v2(d->db);
	free(d->path);
	free(d);
}

bool creds_db_gone(struct creds_db *d)
{
	struct stat st;
	if (stat(d->path, &st) < 0)
		return true;
	return st.st_dev != d->dev || st.st_ino != d->ino;
}

int creds_db_version(struct creds_db *d, uint64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(d->db, "PRAGMA data_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_err(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : (sq_err(rc) ? sq_err(rc) : -EIO);
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
	if (n >= cap)
		n = 0; /* oversized values never come from us: treat as absent */
	if (n)
		memcpy(dst, t, n);
	dst[n] = '\0';
}

static void row_read(sqlite3_stmt *st, struct creds_row *r)
{
	memset(r, 0, sizeof(*r));
	col_copy(st, 0, r->username, sizeof(r->username));
	col_copy(st, 1, r->realm, sizeof(r->realm));
	for (int a = 0; a < CREDS_ALGS; a++) {
		col_copy(st, 2 + a, r->ha1[a], sizeof(r->ha1[a]));
		col_copy(st, 5 + a, r->uh[a], sizeof(r->uh[a]));
	}
	r->enabled = sqlite3_column_int(st, 8) != 0;
	col_copy(st, 9, r->aors, sizeof(r->aors));
	r->updated = sqlite3_column_int64(st, 10);
	col_copy(st, 11, r->source, sizeof(r->source));
}

static void row_bind(sqlite3_stmt *st, const struct creds_row *r)
{
	sqlite3_bind_text(st, 1, r->username, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, r->realm, -1, SQLITE_TRANSIENT);
	for (int a = 0; a < CREDS_ALGS; a++) {
		sqlite3_bind_text(st, 3 + a, r->ha1[a], -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 6 + a, r->uh[a], -1, SQLITE_TRANSIENT);
	}
	sqlite3_bind_int(st, 9, r->enabled);
	sqlite3_bind_text(st, 10, r->aors, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 11, r->updated);
	sqlite3_bind_text(st, 12, r->source, -1, SQLITE_TRANSIENT);
}

int creds_db_get(struct creds_db *d, const char *user, const char *realm, struct creds_row *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(d->db, "SELECT " ROW_COLS " FROM credentials "
				    "WHERE username = ?1 AND realm = ?2", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_err(rc);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, realm, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_read(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : (sq_err(rc) ? sq_err(rc) : -EIO);
}

static int exec_row(struct creds_db *d, const char *sql, const struct creds_row *r, int *changes)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_err(rc);
	row_bind(st, r);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sq_err(rc) ? sq_err(rc) : -EIO;
	*changes = sqlite3_changes(d->db);
	return 0;
}

int creds_db_insert(struct creds_db *d, const struct creds_row *r)
{
	int ch;
	return exec_row(d, "INSERT INTO credentials (" ROW_COLS ") VALUES "
			"(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", r, &ch);
}

int creds_db_update(struct creds_db *d, const struct creds_row *r)
{
	int ch = 0;
	int rc = exec_row(d, "UPDATE credentials SET ha1_md5 = ?3, ha1_sha256 = ?4, "
			  "ha1_sha512_256 = ?5, uh_md5 = ?6, uh_sha256 = ?7, uh_sha512_256 = ?8, "
			  "enabled = ?9, aors = ?10, updated = ?11, source = ?12 "
			  "WHERE username = ?1 AND realm = ?2", r, &ch);
	if (rc)
		return rc;
	return ch ? 0 : -ENOENT;
}

static int exec_key(struct creds_db *d, const char *sql, const char *user, const char *realm,
		    int extra)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_err(rc);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, realm, -1, SQLITE_STATIC);
	if (extra >= 0)
		sqlite3_bind_int(st, 3, extra);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sq_err(rc) ? sq_err(rc) : -EIO;
	return sqlite3_changes(d->db) ? 0 : -ENOENT;
}

int creds_db_delete(struct creds_db *d, const char *user, const char *realm)
{
	return exec_key(d, "DELETE FROM credentials WHERE username = ?1 AND realm = ?2", user, realm, -1);
}

int creds_db_set_enabled(struct creds_db *d, const char *user, const char *realm, bool on)
{
	return exec_key(d, "UPDATE credentials SET enabled = ?3 WHERE username = ?1 AND realm = ?2",
			user, realm, on ? 1 : 0);
}

int creds_db_foreach(struct creds_db *d, int (*fn)(void *ctx, const struct creds_row *r), void *ctx)
{
	sqlite3_stmt *st;
	struct creds_row *r = malloc(sizeof(*r));
	int rc, ret = 0;

	if (!r)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(d->db, "SELECT " ROW_COLS " FROM credentials ORDER BY realm, username",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		free(r);
		return sq_err(rc);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_read(st, r);
		ret = fn(ctx, r);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = sq_err(rc) ? sq_err(rc) : -EIO;
	sqlite3_finalize(st);
	sw_cleanse(r, sizeof(*r));
	free(r);
	return ret;
}

int creds_db_begin(struct creds_db *d)
{
	return sq_err(sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
}

int creds_db_commit(struct creds_db *d)
{
	return sq_err(sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL));
}

void creds_db_rollback(struct creds_db *d)
{
	sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Hex digit value + 1, 0 for anything else. Stored hashes are lower-case
 * (what `user add` writes); a userhash from the wire may be either case. */
static const uint8_t hex_lc[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7,
	['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
	['e'] = 15, ['f'] = 16,
};
static const uint8_t hex_any[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7,
	['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
	['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15,
	['F'] = 16,
};

unsigned creds_hash_len(unsigned alg)
{
	return alg == 0 ? 16u : 32u;
}

/* Validate and decode 2*n hex digits into n bytes in one pass. */
static bool hex_decode(const uint8_t *tab, const char *hex, size_t hlen, size_t n,
		       unsigned char *out)
{
	unsigned bad = 0;
	if (hlen != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned hi = tab[(unsigned char)hex[2 * i]], lo = tab[(unsigned char)hex[2 * i + 1]];
		bad |= (hi == 0) | (lo == 0);
		out[i] = (unsigned char)(((hi - 1) << 4) | ((lo - 1) & 15));
	}
	return !bad;
}

bool creds_hex_valid(unsigned alg, const char *hex)
{
	size_t want = 2 * creds_hash_len(alg);
	for (size_t i = 0; i < want; i++)
		if (!hex_lc[(unsigned char)hex[i]])   /* stops at the NUL */
			return false;
	return hex[want] == '\0';
}

/* ---- snapshots ----
 *
 * Built for 1M users (issue 6): one pass over the rows appends each entry
 * to one arena (hashes decoded to binary on the way) and its keys to two
 * lists; then each list becomes an open-addressing index, (realm, user)
 * and (algorithm, userhash), sized once and filled in home-slot order
 * (radix sort), so building it streams through memory instead of missing
 * the cache on every insert. Slots hold the entry's arena offset and 32
 * bits of its SipHash (keyed: usernames and userhashes come from the
 * wire), so a probe rarely touches an entry that is not the one sought. */

#define ENT_ALIGN 4u
#define ARENA_MAX ((size_t)(UINT32_MAX - 1) * ENT_ALIGN)

struct slot {
	uint32_t ref;       /* arena offset / ENT_ALIGN + 1; 0 = empty */
	uint32_t tag;       /* high 32 bits of the key's SipHash */
};

struct index {
	struct slot *t;
	size_t mask, n;
};

struct realm {
	uint32_t off, len;  /* in rstr */
};

struct keys {               /* an index's slots before the index exists */
	struct slot *v;
	size_t n, cap;
};

struct creds_snap {
	unsigned char *arena;        /* entries, back to back */
	size_t used, cap, n;
	struct index users;          /* (realm, user) */
	struct index uhs;            /* (alg, binary userhash); realm checked on hit */
	struct keys kusers, kuhs;    /* build only */
	struct index rix;            /* realm string → realm id + 1 (build only) */
	char *rstr;                  /* realm strings, NUL-terminated */
	size_t rused, rcap;
	struct realm *realms;
	size_t nrealm, realm_cap;
	uint32_t last_realm;         /* rows come grouped: skip the lookup */
	bool have_last;
	struct sw_hkey key;
};

/* Blocks of BLK_BIG bytes or more (the arena, indexes and key lists of a
 * large store) are anonymous mappings of their own, advised to use
 * transparent huge pages as a whole (512x fewer page faults while
 * building, far fewer TLB misses per lookup; advising part of a malloc
 * block would split its mapping and make realloc copy) and grown with
 * mremap, without a copy. Smaller ones come from malloc. Contents are
 * zero when new. The kind follows from the size, so callers pass it. */
#define BLK_BIG ((size_t)2 << 20)

static size_t blk_round(size_t n)
{
	return n >= BLK_BIG ? (n + 4095) & ~(size_t)4095 : n;
}

static void *blk_map(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, n, MADV_HUGEPAGE);   /* advice only */
	return p;
}

static void *blk_alloc(size_t n)
{
	n = blk_round(n);
	return n >= BLK_BIG ? blk_map(n) : calloc(1, n ? n : 1);
}

/* To a larger size; old contents kept, the rest zero. NULL: p unchanged. */
static void *blk_grow(void *p, size_t old, size_t n)
{
	old = blk_round(old);
	n = blk_round(n);
	if (old >= BLK_BIG) {
		void *q = mremap(p, old, n, MREMAP_MAYMOVE);
		return q == MAP_FAILED ? NULL : q;
	}
	void *q = blk_alloc(n);
	if (q && old)
		memcpy(q, p, old);
	if (q)
		free(p);
	return q;
}

static void blk_free(void *p, size_t n)
{
	n = blk_round(n);
	if (n >= BLK_BIG)
		munmap(p, n);
	else
		free(p);
}

/* Give back the end of a block (a mapped one only: the others are small). */
static size_t blk_trim(void *p, size_t cap, size_t used)
{
	cap = blk_round(cap);
	used = blk_round(used);
	if (used >= BLK_BIG && used < cap && mremap(p, cap, used, 0) != MAP_FAILED)
		return used;
	return cap;
}

static int idx_init(struct index *x, size_t cap)
{
	x->t = blk_alloc(cap * sizeof(*x->t));
	x->mask = cap - 1;
	x->n = 0;
	return x->t ? 0 : -ENOMEM;
}

static void idx_place(struct slot *t, size_t mask, struct slot v)
{
	for (size_t i = v.tag & mask;; i = (i + 1) & mask)
		if (!t[i].ref) {
			t[i] = v;
			return;
		}
}

/* Insert one key, doubling at 3/4 full; the home slot comes from the
 * 32-bit tag, so growing needs no hashing again. */
static int idx_put(struct index *x, uint64_t h, uint32_t ref)
{
	if ((x->n + 1) * 4 > (x->mask + 1) * 3) {
		size_t cap = (x->mask + 1) * 2;
		if (cap > (size_t)1 << 32)
			return -E2BIG;
		struct slot *t = blk_alloc(cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i <= x->mask; i++)
			if (x->t[i].ref)
				idx_place(t, cap - 1, x->t[i]);
		blk_free(x->t, (x->mask + 1) * sizeof(*x->t));
		x->t = t;
		x->mask = cap - 1;
	}
	idx_place(x->t, x->mask, (struct slot){ ref, (uint32_t)(h >> 32) });
	x->n++;
	return 0;
}

static int keys_add(struct keys *k, uint64_t h, uint32_t ref)
{
	if (k->n == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 1024;
		struct slot *v = blk_grow(k->v, k->cap * sizeof(*v), nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		k->v = v;
		k->cap = nc;
	}
	k->v[k->n++] = (struct slot){ ref, (uint32_t)(h >> 32) };
	return 0;
}

/* LSD radix sort of v by (tag & mask), two passes of at most 16 bits. */
static int keys_sort(struct slot *v, size_t n, unsigned bits)
{
	unsigned lo = bits / 2, hi = bits - lo;
	struct slot *tmp = blk_alloc(n * sizeof(*tmp));
	size_t *cnt = malloc(((size_t)1 << hi) * sizeof(*cnt));
	if (!tmp || !cnt) {
		if (tmp)
			blk_free(tmp, n * sizeof(*tmp));
		free(cnt);
		return -ENOMEM;
	}
	struct slot *src = v, *dst = tmp;
	for (unsigned pass = 0; pass < 2; pass++) {
		unsigned shift = pass ? lo : 0, w = pass ? hi : lo;
		size_t nb = (size_t)1 << w, sum = 0;
		uint32_t m = (uint32_t)(nb - 1);
		memset(cnt, 0, nb * sizeof(*cnt));
		for (size_t i = 0; i < n; i++)
			cnt[(src[i].tag >> shift) & m]++;
		for (size_t b = 0; b < nb; b++) {
			size_t c = cnt[b];
			cnt[b] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[cnt[(src[i].tag >> shift) & m]++] = src[i];
		struct slot *t = src;
		src = dst;
		dst = t;
	}
	/* two passes: the result is back in v */
	blk_free(tmp, n * sizeof(*tmp));
	free(cnt);
	return 0;
}

/* The index over k's slots, at most 3/4 full (linear probing; the tag
 * check keeps long probes in the index, away from the entries). Placing
 * the keys in home-slot order is the same table as inserting them one by
 * one, written front to back. */
static int idx_build(struct index *x, struct keys *k)
{
	size_t cap = 16;
	unsigned bits = 4;
	int rc;
	while (cap * 3 < k->n * 4 + 4) {
		cap *= 2;
		bits++;
	}
	if (bits > 32)
		return -E2BIG;
	if (x->t)
		blk_free(x->t, (x->mask + 1) * sizeof(*x->t));
	rc = idx_init(x, cap);
	if (!rc && k->n)
		rc = keys_sort(k->v, k->n, bits);
	if (rc)
		return rc;
	size_t next = 0, wrap = 0;
	for (size_t j = 0; j < k->n; j++) {
		size_t i = k->v[j].tag & x->mask;
		if (i < next)
			i = next;
		if (i > x->mask)
			k->v[wrap++] = k->v[j];   /* runs off the end: wraps to the front */
		else {
			x->t[i] = k->v[j];
			next = i + 1;
		}
	}
	for (size_t j = 0; j < wrap; j++)
		idx_place(x->t, x->mask, k->v[j]);
	x->n = k->n;
	if (k->v)
		blk_free(k->v, k->cap * sizeof(*k->v));
	*k = (struct keys){ 0 };
	return 0;
}

static inline const struct creds_ent *ent_at(const struct creds_snap *s, uint32_t ref)
{
	return (const struct creds_ent *)(const void *)(s->arena + (size_t)(ref - 1) * ENT_ALIGN);
}

/* SipHash of a "\0" b: the realm and the user (or userhash) of a key. */
static uint64_t key_hash(const struct sw_hkey *k, const char *a, size_t alen, const void *b,
			 size_t blen)
{
	unsigned char buf[CREDS_REALM_MAX + CREDS_USER_MAX + 2];
	if (alen + blen + 1 > sizeof(buf))
		return 0;
	if (alen)
		memcpy(buf, a, alen);
	buf[alen] = '\0';
	if (blen)
		memcpy(buf + alen + 1, b, blen);
	return sw_siphash(k, buf, alen + 1 + blen);
}

static uint64_t uh_hash(const struct sw_hkey *k, unsigned alg, const unsigned char *bin)
{
	unsigned char buf[33];
	unsigned n = creds_hash_len(alg);
	buf[0] = (unsigned char)alg;
	memcpy(buf + 1, bin, n);
	return sw_siphash(k, buf, n + 1u);
}

static bool realm_eq(const struct creds_snap *s, uint32_t id, const char *p, size_t len)
{
	const struct realm *r = &s->realms[id];
	return r->len == len && (!len || memcmp(s->rstr + r->off, p, len) == 0);
}

/* The id of a realm, added when new. */
static int realm_id(struct creds_snap *s, const char *p, size_t len, uint32_t *id)
{
	if (s->have_last && realm_eq(s, s->last_realm, p, len)) {
		*id = s->last_realm;
		return 0;
	}
	uint64_t h = sw_siphash(&s->key, p, len);
	uint32_t tag = (uint32_t)(h >> 32);
	for (size_t i = tag & s->rix.mask; s->rix.t[i].ref; i = (i + 1) & s->rix.mask)
		if (s->rix.t[i].tag == tag && realm_eq(s, s->rix.t[i].ref - 1, p, len)) {
			*id = s->last_realm = s->rix.t[i].ref - 1;
			s->have_last = true;
			return 0;
		}
	if (s->nrealm >= UINT32_MAX - 1)
		return -E2BIG;
	if (s->nrealm == s->realm_cap) {
		size_t nc = s->realm_cap ? s->realm_cap * 2 : 8;
		struct realm *r = realloc(s->realms, nc * sizeof(*r));
		if (!r)
			return -ENOMEM;
		s->realms = r;
		s->realm_cap = nc;
	}
	if (s->rused + len + 1 > s->rcap) {
		size_t nc = s->rcap ? s->rcap * 2 : 1024;
		while (nc < s->rused + len + 1)
			nc *= 2;
		if (nc > UINT32_MAX)
			return -E2BIG;
		char *r = realloc(s->rstr, nc);
		if (!r)
			return -ENOMEM;
		s->rstr = r;
		s->rcap = nc;
	}
	if (len)
		memcpy(s->rstr + s->rused, p, len);
	s->rstr[s->rused + len] = '\0';
	s->realms[s->nrealm] = (struct realm){ (uint32_t)s->rused, (uint32_t)len };
	s->rused += len + 1;
	int rc = idx_put(&s->rix, h, (uint32_t)s->nrealm + 1);
	if (rc)
		return rc;
	*id = s->last_realm = (uint32_t)s->nrealm++;
	s->have_last = true;
	return 0;
}

/* One row, as the DB gives it (lengths, not NULs). Hex columns that are
 * empty or not valid lower-case hex of the right length count as absent. */
struct row_view {
	const char *user, *realm, *aors;
	size_t ulen, rlen, alen;
	const char *hex[2 * CREDS_ALGS];       /* ha1 per alg, then uh per alg */
	size_t hlen[2 * CREDS_ALGS];
	bool enabled;
};

static size_t col_len(unsigned col)
{
	return creds_hash_len(col % CREDS_ALGS);
}

static int snap_put(struct creds_snap *s, const struct row_view *v)
{
	size_t need = sizeof(struct creds_ent) + v->ulen + 1 + v->alen + 1 + 2 * (16 + 32 + 32);
	uint32_t rid;
	int rc;

	if (s->n >= UINT32_MAX - 1 || s->used + need + ENT_ALIGN > ARENA_MAX)
		return -E2BIG;
	if (s->used + need > s->cap) {
		/* Doubling; a large block grows by mremap, without a copy. */
		size_t nc = s->cap ? s->cap * 2 : 64 * 1024;
		while (nc < s->used + need)
			nc *= 2;
		unsigned char *a = blk_grow(s->arena, s->cap, nc);
		if (!a)
			return -ENOMEM;
		s->arena = a;
		s->cap = nc;
	}
	rc = realm_id(s, v->realm, v->rlen, &rid);
	if (rc)
		return rc;

	struct creds_ent *e = (struct creds_ent *)(void *)(s->arena + s->used);
	e->realm = rid;
	e->alen = (uint16_t)v->alen;
	e->ulen = (uint8_t)v->ulen;
	e->flags = v->enabled ? CREDS_ENT_ENABLED : 0;
	unsigned char *p = e->d;
	if (v->ulen)
		memcpy(p, v->user, v->ulen);
	p[v->ulen] = '\0';
	p += v->ulen + 1;
	if (v->alen)
		memcpy(p, v->aors, v->alen);
	p[v->alen] = '\0';
	p += v->alen + 1;
	/* Decode straight into the entry; an invalid column is overwritten. */
	for (unsigned c = 0; c < 2 * CREDS_ALGS; c++)
		if (hex_decode(hex_lc, v->hex[c], v->hlen[c], col_len(c), p)) {
			e->flags |= (uint8_t)(0x02u << c);
			p += col_len(c);
		}
	size_t off = s->used;
	uint32_t ref = (uint32_t)(off / ENT_ALIGN + 1);
	s->used = (size_t)(p - s->arena);
	s->used = (s->used + ENT_ALIGN - 1) & ~(size_t)(ENT_ALIGN - 1);
	s->n++;

	rc = keys_add(&s->kusers, key_hash(&s->key, v->realm, v->rlen, v->user, v->ulen), ref);
	for (unsigned a = 0; a < CREDS_ALGS && !rc; a++) {
		const unsigned char *uh = creds_ent_uh(e, a);
		if (uh)
			rc = keys_add(&s->kuhs, uh_hash(&s->key, a, uh), ref);
	}
	return rc;
}

static struct creds_snap *snap_new(void)
{
	struct creds_snap *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (sw_hkey_random(&s->key) < 0 || idx_init(&s->rix, 16)) {
		creds_snap_free(s);
		return NULL;
	}
	return s;
}

/* Build the indexes; give back what the doubling left over. */
static int snap_finish(struct creds_snap *s)
{
	int rc = idx_build(&s->users, &s->kusers);
	if (!rc)
		rc = idx_build(&s->uhs, &s->kuhs);
	if (rc)
		return rc;
	if (s->arena)
		s->cap = blk_trim(s->arena, s->cap, s->used);
	blk_free(s->rix.t, (s->rix.mask + 1) * sizeof(*s->rix.t));   /* build only */
	s->rix.t = NULL;
	return 0;
}

void creds_snap_free(struct creds_snap *s)
{
	if (!s)
		return;
	if (s->arena) {
		sw_cleanse(s->arena, s->used);   /* HA1s are password equivalents */
		blk_free(s->arena, s->cap);
	}
	struct index *ix[] = { &s->users, &s->uhs, &s->rix };
	for (size_t i = 0; i < sizeof(ix) / sizeof(ix[0]); i++)
		if (ix[i]->t)
			blk_free(ix[i]->t, (ix[i]->mask + 1) * sizeof(*ix[i]->t));
	if (s->kusers.v)
		blk_free(s->kusers.v, s->kusers.cap * sizeof(*s->kusers.v));
	if (s->kuhs.v)
		blk_free(s->kuhs.v, s->kuhs.cap * sizeof(*s->kuhs.v));
	free(s->rstr);
	free(s->realms);
	free(s);
}

static size_t cstr_len(const char *p, size_t cap)
{
	size_t n = strnlen(p, cap);
	return n < cap ? n : 0;
}

int creds_snap_build(const struct creds_row *rows, size_t n, struct creds_snap **out)
{
	struct creds_snap *s = snap_new();
	int rc = 0;
	*out = NULL;
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		const struct creds_row *r = &rows[i];
		struct row_view v = {
			.user = r->username, .ulen = cstr_len(r->username, sizeof(r->username)),
			.realm = r->realm, .rlen = cstr_len(r->realm, sizeof(r->realm)),
			.aors = r->aors, .alen = cstr_len(r->aors, sizeof(r->aors)),
			.enabled = r->enabled,
		};
		for (unsigned a = 0; a < CREDS_ALGS; a++) {
			v.hex[a] = r->ha1[a];
			v.hlen[a] = cstr_len(r->ha1[a], sizeof(r->ha1[a]));
			v.hex[CREDS_ALGS + a] = r->uh[a];
			v.hlen[CREDS_ALGS + a] = cstr_len(r->uh[a], sizeof(r->uh[a]));
		}
		rc = snap_put(s, &v);
	}
	if (!rc)
		rc = snap_finish(s);
	if (rc) {
		creds_snap_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* A text column as a slice; NULL, over-long (cap includes the NUL, as in
 * struct creds_row) or NUL-embedding values read as they did when rows
 * were copied into creds_row: cut at the NUL, "" when too long. */
static const char *col_view(sqlite3_stmt *st, int i, size_t cap, size_t *len)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
	if (n >= cap || !t) {
		*len = 0;
		return "";
	}
	*len = strnlen(t, n);
	return t;
}

int creds_snap_load(struct creds_db *d, struct creds_snap **out)
{
	sqlite3_stmt *st = NULL;
	struct creds_snap *s = snap_new();
	int rc;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	/* One statement, one pass, no ORDER BY (a sort of every row): a
	 * statement reads one consistent snapshot of the DB on its own. */
	rc = sqlite3_prepare_v2(d->db, "SELECT username, realm, ha1_md5, ha1_sha256, "
				"ha1_sha512_256, uh_md5, uh_sha256, uh_sha512_256, enabled, aors "
				"FROM credentials", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = sq_err(rc) ? sq_err(rc) : -EIO;
		goto fail;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct row_view v;
		v.user = col_view(st, 0, CREDS_USER_MAX, &v.ulen);
		v.realm = col_view(st, 1, CREDS_REALM_MAX, &v.rlen);
		for (int c = 0; c < 2 * CREDS_ALGS; c++)
			v.hex[c] = col_view(st, 2 + c, CREDS_HEX_MAX, &v.hlen[c]);
		v.enabled = sqlite3_column_int(st, 8) != 0;
		v.aors = col_view(st, 9, CREDS_AORS_MAX, &v.alen);
		rc = snap_put(s, &v);
		if (rc)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		rc = sq_err(rc) ? sq_err(rc) : -EIO;
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = snap_finish(s);
	if (rc)
		goto fail;
	*out = s;
	return 0;
fail:
	sqlite3_finalize(st);
	creds_snap_free(s);
	return rc;
}

size_t creds_snap_count(const struct creds_snap *s)
{
	return s ? s->n : 0;
}

const struct creds_ent *creds_snap_find(const struct creds_snap *s, struct sw_str user,
					struct sw_str realm)
{
	if (!s || !s->users.t || user.len >= CREDS_USER_MAX || realm.len >= CREDS_REALM_MAX)
		return NULL;
	uint32_t tag = (uint32_t)(key_hash(&s->key, realm.p, realm.len, user.p, user.len) >> 32);
	const struct index *x = &s->users;
	for (size_t i = tag & x->mask; x->t[i].ref; i = (i + 1) & x->mask) {
		if (x->t[i].tag != tag)
			continue;
		const struct creds_ent *e = ent_at(s, x->t[i].ref);
		if (e->ulen == user.len && (!user.len || !memcmp(e->d, user.p, user.len)) &&
		    realm_eq(s, e->realm, realm.p, realm.len))
			return e;
	}
	return NULL;
}

const struct creds_ent *creds_snap_find_uh(const struct creds_snap *s, unsigned alg,
					   struct sw_str realm, struct sw_str uh)
{
	unsigned char bin[32];
	const struct creds_ent *found = NULL;

	if (!s || alg >= CREDS_ALGS || !s->uhs.t || realm.len >= CREDS_REALM_MAX ||
	    !hex_decode(hex_any, uh.p, uh.len, creds_hash_len(alg), bin))
		return NULL;
	uint32_t tag = (uint32_t)(uh_hash(&s->key, alg, bin) >> 32);
	const struct index *x = &s->uhs;
	for (size_t i = tag & x->mask; x->t[i].ref; i = (i + 1) & x->mask) {
		if (x->t[i].tag != tag)
			continue;
		const struct creds_ent *e = ent_at(s, x->t[i].ref);
		const unsigned char *h = creds_ent_uh(e, alg);
		if (h && realm_eq(s, e->realm, realm.p, realm.len) &&
		    sw_ct_eq(h, bin, creds_hash_len(alg))) {
			found = e;
			break;
		}
	}
	sw_cleanse(bin, sizeof(bin));
	return found;
}

/* ---- entry fields ---- */

static const unsigned char *ent_col(const struct creds_ent *e, unsigned col)
{
	if (!(e->flags & (0x02u << col)))
		return NULL;
	const unsigned char *p = e->d + e->ulen + 1 + e->alen + 1;
	for (unsigned c = 0; c < col; c++)
		if (e->flags & (0x02u << c))
			p += col_len(c);
	return p;
}

const char *creds_ent_user(const struct creds_ent *e)
{
	return (const char *)e->d;
}

const char *creds_ent_aors(const struct creds_ent *e)
{
	return (const char *)e->d + e->ulen + 1;
}

bool creds_ent_enabled(const struct creds_ent *e)
{
	return e->flags & CREDS_ENT_ENABLED;
}

const unsigned char *creds_ent_ha1(const struct creds_ent *e, unsigned alg)
{
	return alg < CREDS_ALGS ? ent_col(e, alg) : NULL;
}

const unsigned char *creds_ent_uh(const struct creds_ent *e, unsigned alg)
{
	return alg < CREDS_ALGS ? ent_col(e, CREDS_ALGS + alg) : NULL;
}
