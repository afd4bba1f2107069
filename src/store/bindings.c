/* Persistent binding store: SQLite in WAL mode with group commit.
 *
 * Durability: the database runs in WAL mode with synchronous=NORMAL by
 * default. A COMMIT then write()s the transaction's frames to the -wal file
 * before sqlite3_step() returns; only the fsync is deferred to checkpoints.
 * Data handed to the kernel by write() survives the death of the process
 * (kill -9, crash, OOM kill) because the page cache belongs to the kernel,
 * so every committed transaction is back after a restart. Only a power loss
 * or kernel crash can drop the last transactions; sync_full (synchronous=
 * FULL, one fsync per commit — cheap here because commits are grouped)
 * closes that gap too. The registrar sends its 200 only after the commit
 * callback, so a 200 on the wire implies a committed row.
 *
 * Concurrency: the connection is used by one thread at a time — the opener
 * while loading, then only the commit thread. Workers touch nothing but the
 * queue (one mutex, held for a few pointer moves). */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "store/bindings.h"

enum op_kind { OP_UPSERT = 1, OP_DELETE, OP_PURGE };

struct bstore_op {
	struct bstore_op *next;
	enum op_kind kind;
	uint64_t ticket;           /* set on the last op of a group */
	bstore_done_fn done;
	void *ctx;
	int64_t purge_before;
	struct bstore_row row;     /* slices into data[] */
	char data[];
};

struct sw_bstore {
	sqlite3 *db;
	sqlite3_stmt *st_upsert, *st_delete, *st_purge;
	sqlite3_stmt *st_begin, *st_commit, *st_rollback;

	pthread_mutex_t mu;
	pthread_cond_t wake;       /* commit thread: work arrived or stop */
	pthread_cond_t idle;       /* flushers: a batch finished */
	struct bstore_op *head, *tail;
	unsigned queued;           /* in the list */
	unsigned inflight;         /* taken by the commit thread, not done yet */
	unsigned cap;
	bool stop;
	bool thread_started;
	pthread_t thread;
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS bindings ("
	" aor TEXT NOT NULL,"
	" contact TEXT NOT NULL,"
	" instance TEXT NOT NULL DEFAULT '',"
	" reg_id INTEGER NOT NULL DEFAULT -1,"
	" q INTEGER NOT NULL DEFAULT -1,"
	" expires_at INTEGER NOT NULL,"
	" call_id TEXT NOT NULL,"
	" cseq INTEGER NOT NULL,"
	" path TEXT NOT NULL DEFAULT '',"
	" user_agent TEXT NOT NULL DEFAULT '',"
	" recv_addr TEXT NOT NULL DEFAULT '',"
	" recv_port INTEGER NOT NULL DEFAULT 0,"
	" proto INTEGER NOT NULL DEFAULT 0,"
	" conn_id INTEGER NOT NULL DEFAULT 0,"
	" worker INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (aor, contact)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS bindings_expires ON bindings(expires_at);";

static const char upsert_sql[] =
	"INSERT OR REPLACE INTO bindings (aor, contact, instance, reg_id, q, expires_at,"
	" call_id, cseq, path, user_agent, recv_addr, recv_port, proto, conn_id, worker)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
static const char select_sql[] =
	"SELECT aor, contact, instance, reg_id, q, expires_at, call_id, cseq, path,"
	" user_agent, recv_addr, recv_port, proto, conn_id, worker FROM bindings";

void bstore_conf_default(struct bstore_conf *c)
{
	c->queue_cap = 65536;
	c->sync_full = false;
}

/* ---- ops ---- */

static struct bstore_op *op_alloc(enum op_kind kind, size_t extra)
{
	struct bstore_op *op = calloc(1, sizeof(*op) + extra);
	if (op)
		op->kind = kind;
	return op;
}

static struct sw_str put(char **w, struct sw_str s)
{
	struct sw_str r = { *w, s.len };
	if (s.len)
		memcpy(*w, s.p, s.len);
	(*w)[s.len] = '\0';
	*w += s.len + 1;
	return r;
}

struct bstore_op *bstore_op_upsert(const struct bstore_row *row)
{
	size_t n = row->aor.len + row->contact.len + row->instance.len + row->call_id.len +
		   row->path.len + row->user_agent.len + 6;
	struct bstore_op *op = op_alloc(OP_UPSERT, n);
	if (!op)
		return NULL;
	char *w = op->data;
	op->row = *row;
	op->row.aor = put(&w, row->aor);
	op->row.contact = put(&w, row->contact);
	op->row.instance = put(&w, row->instance);
	op->row.call_id = put(&w, row->call_id);
	op->row.path = put(&w, row->path);
	op->row.user_agent = put(&w, row->user_agent);
	return op;
}

struct bstore_op *bstore_op_delete(struct sw_str aor, struct sw_str contact)
{
	struct bstore_op *op = op_alloc(OP_DELETE, aor.len + contact.len + 2);
	if (!op)
		return NULL;
	char *w = op->data;
	op->row.aor = put(&w, aor);
	op->row.contact = put(&w, contact);
	return op;
}

struct bstore_op *bstore_op_purge(int64_t now_s)
{
	struct bstore_op *op = op_alloc(OP_PURGE, 0);
	if (op)
		op->purge_before = now_s;
	return op;
}

void bstore_op_free(struct bstore_op *op)
{
	free(op);
}

/* ---- SQLite ---- */

static int bind_str(sqlite3_stmt *st, int i, struct sw_str s)
{
	return sqlite3_bind_text(st, i, s.len ? s.p : "", (int)s.len, SQLITE_STATIC);
}

static int apply_op(struct sw_bstore *s, const struct bstore_op *op)
{
	sqlite3_stmt *st;
	const struct bstore_row *r = &op->row;
	int rc = SQLITE_OK;

	switch (op->kind) {
	case OP_UPSERT: {
		char host[INET6_ADDRSTRLEN] = "";
		if (r->family == AF_INET || r->family == AF_INET6)
			inet_ntop(r->family, r->addr, host, sizeof(host));
		st = s->st_upsert;
		rc |= bind_str(st, 1, r->aor);
		rc |= bind_str(st, 2, r->contact);
		rc |= bind_str(st, 3, r->instance);
		rc |= sqlite3_bind_int(st, 4, r->reg_id);
		rc |= sqlite3_bind_int(st, 5, r->q);
		rc |= sqlite3_bind_int64(st, 6, r->expires_at);
		rc |= bind_str(st, 7, r->call_id);
		rc |= sqlite3_bind_int64(st, 8, r->cseq);
		rc |= bind_str(st, 9, r->path);
		rc |= bind_str(st, 10, r->user_agent);
		rc |= sqlite3_bind_text(st, 11, host, -1, SQLITE_TRANSIENT);
		rc |= sqlite3_bind_int(st, 12, r->port);
		rc |= sqlite3_bind_int(st, 13, r->proto);
		rc |= sqlite3_bind_int64(st, 14, r->conn_id);
		rc |= sqlite3_bind_int(st, 15, r->worker);
		break;
	}
	case OP_DELETE:
		st = s->st_delete;
		rc |= bind_str(st, 1, r->aor);
		rc |= bind_str(st, 2, r->contact);
		break;
	case OP_PURGE:
		st = s->st_purge;
		rc |= sqlite3_bind_int64(st, 1, op->purge_before);
		break;
	default:
		return -EINVAL;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int exec1(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* One transaction for the whole batch (group commit). */
static int commit_batch(struct sw_bstore *s, const struct bstore_op *ops)
{
	int rc = exec1(s->st_begin);
	for (const struct bstore_op *op = ops; rc == 0 && op; op = op->next)
		rc = apply_op(s, op);
	if (rc == 0)
		rc = exec1(s->st_commit);
	if (rc != 0 && !sqlite3_get_autocommit(s->db))
		exec1(s->st_rollback);
	return rc;
}

static void *commit_main(void *arg)
{
	struct sw_bstore *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->head && !s->stop)
			pthread_cond_wait(&s->wake, &s->mu);
		if (!s->head && s->stop)
			break;
		/* Everything queued since the last commit goes into this one. */
		struct bstore_op *batch = s->head;
		unsigned n = s->queued;
		s->head = s->tail = NULL;
		s->queued = 0;
		s->inflight = n;
		pthread_mutex_unlock(&s->mu);

		int rc = commit_batch(s, batch);
		if (rc != 0) {
			/* Failed tickets are reported newest first, so a caller
			 * undoing them in memory unwinds stacked changes in order. */
			struct bstore_op *rev = NULL;
			for (struct bstore_op *op = batch, *next; op; op = next) {
				next = op->next;
				op->next = rev;
				rev = op;
			}
			batch = rev;
		}
		for (struct bstore_op *op = batch, *next; op; op = next) {
			next = op->next;
			if (op->ticket && op->done)
				op->done(op->ctx, op->ticket, rc);
			free(op);
		}

		pthread_mutex_lock(&s->mu);
		s->inflight = 0;
		pthread_cond_broadcast(&s->idle);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int load_rows(struct sw_bstore *s, int64_t now_s, bstore_row_fn fn, void *ctx)
{
	sqlite3_stmt *st = NULL;
	int rc;

	/* Expired rows are of no use to anyone: drop them before loading. */
	sqlite3_bind_int64(s->st_purge, 1, now_s);
	rc = exec1(s->st_purge);
	sqlite3_clear_bindings(s->st_purge);
	if (rc)
		return rc;
	if (!fn)
		return 0;
	if (sqlite3_prepare_v2(s->db, select_sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct bstore_row r;
		memset(&r, 0, sizeof(r));
#define COL_STR(i) ((struct sw_str){ (const char *)sqlite3_column_text(st, i), \
				     (size_t)sqlite3_column_bytes(st, i) })
		r.aor = COL_STR(0);
		r.contact = COL_STR(1);
		r.instance = COL_STR(2);
		r.reg_id = sqlite3_column_int(st, 3);
		r.q = (int16_t)sqlite3_column_int(st, 4);
		r.expires_at = sqlite3_column_int64(st, 5);
		r.call_id = COL_STR(6);
		r.cseq = (uint32_t)sqlite3_column_int64(st, 7);
		r.path = COL_STR(8);
		r.user_agent = COL_STR(9);
		const char *host = (const char *)sqlite3_column_text(st, 10);
		if (host && inet_pton(AF_INET, host, r.addr) == 1)
			r.family = AF_INET;
		else if (host && inet_pton(AF_INET6, host, r.addr) == 1)
			r.family = AF_INET6;
		r.port = (uint16_t)sqlite3_column_int(st, 11);
		r.proto = (uint8_t)sqlite3_column_int(st, 12);
		r.conn_id = (uint32_t)sqlite3_column_int64(st, 13);
		r.worker = (uint16_t)sqlite3_column_int(st, 14);
#undef COL_STR
		if (!r.aor.p || !r.contact.p)
			continue;
		int frc = fn(ctx, &r);
		if (frc) {
			sqlite3_finalize(st);
			return frc;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static void db_close(struct sw_bstore *s)
{
	sqlite3_finalize(s->st_upsert);
	sqlite3_finalize(s->st_delete);
	sqlite3_finalize(s->st_purge);
	sqlite3_finalize(s->st_begin);
	sqlite3_finalize(s->st_commit);
	sqlite3_finalize(s->st_rollback);
	sqlite3_close(s->db);
}

struct sw_bstore *bstore_open(const char *path, const struct bstore_conf *conf, int64_t now_s,
			      bstore_row_fn fn, void *ctx, int *err)
{
	struct bstore_conf defc;
	struct sw_bstore *s;
	int rc = -EIO;

	if (!conf) {
		bstore_conf_default(&defc);
		conf = &defc;
	}
	if (!path || conf->queue_cap == 0) {
		rc = -EINVAL;
		goto fail;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto fail;
	}
	s->cap = conf->queue_cap;

	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail_db;
	sqlite3_busy_timeout(s->db, 5000);
	/* WAL: readers (admin CLI) never block the commit thread; see the
	 * durability note at the top for synchronous=NORMAL. */
	if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, conf->sync_full ? "PRAGMA synchronous=FULL" :
			 "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail_db;
	if (sqlite3_prepare_v2(s->db, upsert_sql, -1, &s->st_upsert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "DELETE FROM bindings WHERE aor = ?1 AND contact = ?2",
			       -1, &s->st_delete, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "DELETE FROM bindings WHERE expires_at <= ?1",
			       -1, &s->st_purge, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "BEGIN IMMEDIATE", -1, &s->st_begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->st_commit, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "ROLLBACK", -1, &s->st_rollback, NULL) != SQLITE_OK)
		goto fail_db;

	rc = load_rows(s, now_s, fn, ctx);
	if (rc)
		goto fail_db;

	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->idle, NULL);
	rc = -pthread_create(&s->thread, NULL, commit_main, s);
	if (rc) {
		pthread_cond_destroy(&s->idle);
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->mu);
		goto fail_db;
	}
	s->thread_started = true;
	if (err)
		*err = 0;
	return s;

fail_db:
	db_close(s);
	free(s);
fail:
	if (err)
		*err = rc;
	return NULL;
}

int bstore_submit(struct sw_bstore *s, struct bstore_op **ops, unsigned n, uint64_t ticket,
		  bstore_done_fn done, void *ctx)
{
	if (n == 0)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		ops[i]->next = i + 1 < n ? ops[i + 1] : NULL;
		ops[i]->ticket = 0;
	}
	ops[n - 1]->ticket = ticket;
	ops[n - 1]->done = done;
	ops[n - 1]->ctx = ctx;

	pthread_mutex_lock(&s->mu);
	if (s->stop) {
		pthread_mutex_unlock(&s->mu);
		return -EPIPE;
	}
	/* Bounded: ops waiting plus the batch being written (STYLE.md §8). */
	if (n > s->cap || s->queued + s->inflight > s->cap - n) {
		pthread_mutex_unlock(&s->mu);
		return -EBUSY;
	}
	if (s->tail)
		s->tail->next = ops[0];
	else
		s->head = ops[0];
	s->tail = ops[n - 1];
	s->queued += n;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void bstore_flush(struct sw_bstore *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->head || s->inflight)
		pthread_cond_wait(&s->idle, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

unsigned bstore_pending(struct sw_bstore *s)
{
	pthread_mutex_lock(&s->mu);
	unsigned n = s->queued + s->inflight;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void bstore_close(struct sw_bstore *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->mu);
		/* The thread drains the queue before it exits. */
		pthread_join(s->thread, NULL);
		pthread_cond_destroy(&s->idle);
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->mu);
	}
	db_close(s);
	free(s);
}
