/* SQLite credential store and in-memory snapshots (issue 3). */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
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

bool creds_hex_valid(unsigned alg, const char *hex)
{
	size_t want = alg == 0 ? 32 : 64, n = strlen(hex);
	if (n != want)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
			return false;
	return true;
}

/* ---- snapshots ---- */

struct creds_snap {
	struct creds_ent *ents;
	char **strs;                 /* one block per entry: user\0realm\0aors\0 */
	size_t n, cap;
	uint32_t *idx;               /* (user, realm) → entry + 1; 0 empty */
	uint32_t *uh[CREDS_ALGS];    /* (userhash, realm) → entry + 1 */
	size_t mask;
	struct sw_hkey key;          /* keyed hash: usernames are attacker data */
};

static uint64_t key_hash(const struct sw_hkey *k, struct sw_str a, struct sw_str b, bool lower)
{
	char buf[CREDS_REALM_MAX + CREDS_USER_MAX + 2];
	if (a.len + b.len + 1 > sizeof(buf))
		return 0;
	memcpy(buf, a.p, a.len);
	buf[a.len] = '\0';
	for (size_t i = 0; i < b.len; i++) {
		char c = b.p[i];
		buf[a.len + 1 + i] = (lower && c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	return sw_siphash(k, buf, a.len + 1 + b.len);
}

static int snap_add(struct creds_snap *s, const struct creds_row *r)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct creds_ent *e = realloc(s->ents, nc * sizeof(*e));
		if (!e)
			return -ENOMEM;
		s->ents = e;
		char **st = realloc(s->strs, nc * sizeof(*st));
		if (!st)
			return -ENOMEM;
		s->strs = st;
		s->cap = nc;
	}
	if (s->n >= UINT32_MAX - 1)
		return -E2BIG;
	size_t ul = strlen(r->username), rl = strlen(r->realm), al = strlen(r->aors);
	char *blk = malloc(ul + rl + al + 3);
	if (!blk)
		return -ENOMEM;
	memcpy(blk, r->username, ul + 1);
	memcpy(blk + ul + 1, r->realm, rl + 1);
	memcpy(blk + ul + rl + 2, r->aors, al + 1);
	struct creds_ent *e = &s->ents[s->n];
	memset(e, 0, sizeof(*e));
	e->user = blk;
	e->realm = blk + ul + 1;
	e->aors = blk + ul + rl + 2;
	e->ulen = (uint16_t)ul;
	e->rlen = (uint16_t)rl;
	e->enabled = r->enabled;
	for (int a = 0; a < CREDS_ALGS; a++) {
		if (creds_hex_valid((unsigned)a, r->ha1[a])) {
			memcpy(e->ha1[a], r->ha1[a], strlen(r->ha1[a]) + 1);
			e->ha1_len[a] = (uint8_t)strlen(r->ha1[a]);
		}
		if (creds_hex_valid((unsigned)a, r->uh[a]))
			memcpy(e->uh[a], r->uh[a], strlen(r->uh[a]) + 1);
	}
	s->strs[s->n++] = blk;
	return 0;
}

static void idx_put(uint32_t *t, size_t mask, uint64_t h, uint32_t v)
{
	for (size_t i = h & mask;; i = (i + 1) & mask)
		if (!t[i]) {
			t[i] = v;
			return;
		}
}

static int snap_index(struct creds_snap *s)
{
	size_t cap = 16;
	while (cap < s->n * 2 + 1)
		cap *= 2;
	s->mask = cap - 1;
	s->idx = calloc(cap, sizeof(uint32_t));
	if (!s->idx)
		return -ENOMEM;
	for (int a = 0; a < CREDS_ALGS; a++) {
		s->uh[a] = calloc(cap, sizeof(uint32_t));
		if (!s->uh[a])
			return -ENOMEM;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct creds_ent *e = &s->ents[i];
		struct sw_str realm = { e->realm, e->rlen };
		idx_put(s->idx, s->mask, key_hash(&s->key, realm, (struct sw_str){ e->user, e->ulen }, false),
			(uint32_t)i + 1);
		for (int a = 0; a < CREDS_ALGS; a++)
			if (e->uh[a][0])
				idx_put(s->uh[a], s->mask, key_hash(&s->key, realm, sw_str_c(e->uh[a]), false),
					(uint32_t)i + 1);
	}
	return 0;
}

static struct creds_snap *snap_new(void)
{
	struct creds_snap *s = calloc(1, sizeof(*s));
	if (s && sw_hkey_random(&s->key) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

void creds_snap_free(struct creds_snap *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->strs[i]);
	if (s->ents)
		sw_cleanse(s->ents, s->n * sizeof(*s->ents));
	free(s->ents);
	free(s->strs);
	free(s->idx);
	for (int a = 0; a < CREDS_ALGS; a++)
		free(s->uh[a]);
	free(s);
}

int creds_snap_build(const struct creds_row *rows, size_t n, struct creds_snap **out)
{
	struct creds_snap *s = snap_new();
	int rc = 0;
	*out = NULL;
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++)
		rc = snap_add(s, &rows[i]);
	if (!rc)
		rc = snap_index(s);
	if (rc) {
		creds_snap_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int snap_add_cb(void *ctx, const struct creds_row *r)
{
	return snap_add(ctx, r);
}

int creds_snap_load(struct creds_db *d, struct creds_snap **out)
{
	struct creds_snap *s = snap_new();
	int rc;
	*out = NULL;
	if (!s)
		return -ENOMEM;
	/* One read transaction, so the snapshot is consistent. */
	rc = sq_err(sqlite3_exec(d->db, "BEGIN", NULL, NULL, NULL));
	if (!rc) {
		rc = creds_db_foreach(d, snap_add_cb, s);
		sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
	}
	if (!rc)
		rc = snap_index(s);
	if (rc) {
		creds_snap_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

size_t creds_snap_count(const struct creds_snap *s)
{
	return s ? s->n : 0;
}

const struct creds_ent *creds_snap_find(const struct creds_snap *s, struct sw_str user,
					struct sw_str realm)
{
	if (!s || !s->idx || user.len >= CREDS_USER_MAX || realm.len >= CREDS_REALM_MAX)
		return NULL;
	uint64_t h = key_hash(&s->key, realm, user, false);
	for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
		uint32_t v = s->idx[i];
		if (!v)
			return NULL;
		const struct creds_ent *e = &s->ents[v - 1];
		if (e->ulen == user.len && e->rlen == realm.len && !memcmp(e->user, user.p, user.len) &&
		    !memcmp(e->realm, realm.p, realm.len))
			return e;
	}
}

const struct creds_ent *creds_snap_find_uh(const struct creds_snap *s, unsigned alg,
					   struct sw_str realm, struct sw_str uh)
{
	if (!s || alg >= CREDS_ALGS || !s->uh[alg] || uh.len != (alg ? 64u : 32u) ||
	    realm.len >= CREDS_REALM_MAX)
		return NULL;
	char low[CREDS_HEX_MAX];
	for (size_t i = 0; i < uh.len; i++) {
		char c = uh.p[i];
		low[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	struct sw_str l = { low, uh.len };
	uint64_t h = key_hash(&s->key, realm, l, false);
	for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
		uint32_t v = s->uh[alg][i];
		if (!v)
			return NULL;
		const struct creds_ent *e = &s->ents[v - 1];
		if (e->rlen == realm.len && !memcmp(e->realm, realm.p, realm.len) &&
		    sw_ct_eq(e->uh[alg], low, uh.len) && e->uh[alg][uh.len] == '\0')
			return e;
	}
}
