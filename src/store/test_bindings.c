/* Unit tests: SQLite binding store, group commit and reload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store/bindings.h"

struct tmpdb {
	char dir[64];
	char path[128];
};

static void tmpdb_make(struct tmpdb *t)
{
	const char *base = getenv("TMPDIR");
	snprintf(t->dir, sizeof(t->dir), "%s/swstoreXXXXXX", base && strlen(base) < 40 ? base : "/tmp");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/bindings.db", t->dir);
}

static void tmpdb_rm(struct tmpdb *t)
{
	char p[160];
	static const char *const sfx[] = { "", "-wal", "-shm" };
	for (unsigned i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", t->path, sfx[i]);
		unlink(p);
	}
	rmdir(t->dir);
}

static long long count_rows(const char *path, const char *where)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[256];
	long long n = -1;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM bindings %s", where ? where : "");
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

struct done_log {
	pthread_mutex_t mu;
	unsigned n_ok, n_fail;
	uint64_t last;
};

static void on_done(void *ctx, uint64_t ticket, int rc)
{
	struct done_log *d = ctx;
	pthread_mutex_lock(&d->mu);
	if (rc == 0)
		d->n_ok++;
	else
		d->n_fail++;
	d->last = ticket;
	pthread_mutex_unlock(&d->mu);
}

static struct bstore_row mkrow(const char *aor, const char *contact, int64_t exp)
{
	struct bstore_row r;
	memset(&r, 0, sizeof(r));
	r.aor = (struct sw_str){ aor, strlen(aor) };
	r.contact = (struct sw_str){ contact, strlen(contact) };
	r.call_id = SW_STR_LIT("cid@x");
	r.user_agent = SW_STR_LIT("UA/1");
	r.instance = SW_STR_LIT("");
	r.path = SW_STR_LIT("<sip:edge.example.net;lr>");
	r.cseq = 7;
	r.reg_id = 2;
	r.q = 500;
	r.expires_at = exp;
	r.family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", r.addr);
	r.port = 5070;
	r.proto = 1;
	r.conn_id = 42;
	r.worker = 3;
	return r;
}

struct loaded {
	unsigned n;
	struct bstore_row first;
	char contact[128], path[128];
};

static int on_row(void *ctx, const struct bstore_row *r)
{
	struct loaded *l = ctx;
	if (l->n++ == 0) {
		l->first = *r;
		snprintf(l->contact, sizeof(l->contact), "%.*s", SW_STR_FMT(r->contact));
		snprintf(l->path, sizeof(l->path), "%.*s", SW_STR_FMT(r->path));
	}
	return 0;
}

static void submit1(struct sw_bstore *s, struct bstore_op *op, uint64_t ticket,
		    struct done_log *d)
{
	assert_non_null(op);
	assert_int_equal(bstore_submit(s, &op, 1, ticket, on_done, d), 0);
}

static void test_roundtrip(void **state)
{
	struct tmpdb t;
	struct done_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct loaded l = { 0 };
	int err;

	tmpdb_make(&t);
	struct sw_bstore *s = bstore_open(t.path, NULL, 1000, NULL, NULL, &err);
	assert_non_null(s);
	struct bstore_row r1 = mkrow("sip:a@example.com", "sip:a@192.0.2.7:5070", 5000);
	struct bstore_row r2 = mkrow("sip:a@example.com", "sip:a@192.0.2.8", 5000);
	struct bstore_row r3 = mkrow("sip:b@example.com", "sip:b@192.0.2.9", 1500);
	struct bstore_op *ops[2] = { bstore_op_upsert(&r1), bstore_op_upsert(&r2) };
	assert_int_equal(bstore_submit(s, ops, 2, 11, on_done, &d), 0);
	submit1(s, bstore_op_upsert(&r3), 12, &d);
	submit1(s, bstore_op_delete(r2.aor, r2.contact), 13, &d);
	bstore_flush(s);
	assert_int_equal(d.n_ok, 3);
	assert_int_equal(d.n_fail, 0);
	assert_int_equal(bstore_pending(s), 0);
	bstore_close(s);
	assert_int_equal(count_rows(t.path, NULL), 2);

	/* Reopen at t=2000: b expired and is deleted, a comes back intact. */
	s = bstore_open(t.path, NULL, 2000, on_row, &l, &err);
	assert_non_null(s);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.contact, "sip:a@192.0.2.7:5070");
	assert_string_equal(l.path, "<sip:edge.example.net;lr>");
	assert_int_equal(l.first.expires_at, 5000);
	assert_int_equal(l.first.cseq, 7);
	assert_int_equal(l.first.reg_id, 2);
	assert_int_equal(l.first.q, 500);
	assert_int_equal(l.first.family, AF_INET);
	assert_int_equal(l.first.port, 5070);
	assert_int_equal(l.first.worker, 3);
	assert_memory_equal(l.first.addr, r1.addr, 4);
	bstore_close(s);
	assert_int_equal(count_rows(t.path, NULL), 1);
	tmpdb_rm(&t);
}

static void test_purge_and_busy(void **state)
{
	struct tmpdb t;
	struct done_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct bstore_conf c;
	int err;

	tmpdb_make(&t);
	bstore_conf_default(&c);
	c.queue_cap = 2;
	struct sw_bstore *s = bstore_open(t.path, &c, 0, NULL, NULL, &err);
	assert_non_null(s);
	struct bstore_row r1 = mkrow("sip:a@example.com", "sip:x@h1", 100);
	struct bstore_row r2 = mkrow("sip:a@example.com", "sip:x@h2", 300);
	submit1(s, bstore_op_upsert(&r1), 1, &d);
	submit1(s, bstore_op_upsert(&r2), 2, &d);
	bstore_flush(s);
	submit1(s, bstore_op_purge(200), 3, &d);
	bstore_flush(s);
	assert_int_equal(d.n_ok, 3);
	assert_int_equal(count_rows(t.path, NULL), 1);

	/* More ops in one group than the queue holds: refused, still ours. */
	struct bstore_op *ops[3] = { bstore_op_purge(1), bstore_op_purge(2), bstore_op_purge(3) };
	assert_int_equal(bstore_submit(s, ops, 3, 4, on_done, &d), -EBUSY);
	for (unsigned i = 0; i < 3; i++)
		bstore_op_free(ops[i]);
	bstore_close(s);
	tmpdb_rm(&t);
}

/* A failing transaction completes every ticket of the batch with rc < 0. */
static void test_db_failure(void **state)
{
	struct tmpdb t;
	struct done_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
	sqlite3 *db;
	int err;

	tmpdb_make(&t);
	struct sw_bstore *s = bstore_open(t.path, NULL, 0, NULL, NULL, &err);
	assert_non_null(s);
	assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TRIGGER nope BEFORE INSERT ON bindings"
				      " WHEN NEW.aor LIKE '%fail%' BEGIN SELECT RAISE(ABORT, 'x'); END",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct bstore_row r = mkrow("sip:fail@example.com", "sip:x@h1", 100);
	submit1(s, bstore_op_upsert(&r), 9, &d);
	bstore_flush(s);
	assert_int_equal(d.n_fail, 1);
	assert_int_equal(d.last, 9);
	r = mkrow("sip:ok@example.com", "sip:x@h1", 100);
	submit1(s, bstore_op_upsert(&r), 10, &d);
	bstore_flush(s);
	assert_int_equal(d.n_ok, 1);
	bstore_close(s);
	assert_int_equal(count_rows(t.path, NULL), 1);
	tmpdb_rm(&t);
}

struct writer {
	struct sw_bstore *s;
	struct done_log *d;
	unsigned id, n;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char aor[64], contact[64];
	for (unsigned i = 0; i < w->n; i++) {
		snprintf(aor, sizeof(aor), "sip:u%u-%u@example.com", w->id, i);
		snprintf(contact, sizeof(contact), "sip:c@192.0.2.%u", i % 250);
		struct bstore_row r = mkrow(aor, contact, 99999);
		struct bstore_op *op = bstore_op_upsert(&r);
		while (bstore_submit(w->s, &op, 1, (uint64_t)w->id << 32 | (i + 1), on_done, w->d) == -EBUSY)
			usleep(100);
	}
	return NULL;
}

static void test_group_commit_threads(void **state)
{
	struct tmpdb t;
	struct done_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct bstore_conf c;
	pthread_t th[2];
	struct writer w[2];
	int err;

	tmpdb_make(&t);
	bstore_conf_default(&c);
	c.queue_cap = 256;
	struct sw_bstore *s = bstore_open(t.path, &c, 0, NULL, NULL, &err);
	assert_non_null(s);
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct writer){ s, &d, i + 1, 2000 };
		pthread_create(&th[i], NULL, writer_main, &w[i]);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	bstore_close(s);
	assert_int_equal(d.n_ok, 4000);
	assert_int_equal(d.n_fail, 0);
	assert_int_equal(count_rows(t.path, NULL), 4000);
	tmpdb_rm(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_purge_and_busy),
		cmocka_unit_test(test_db_failure),
		cmocka_unit_test(test_group_commit_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
