/* bans.db (see bansdb.h). WAL so the CLI and the server's writer thread
 * work at the same time; busy_timeout so that a short overlap waits
 * instead of failing. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard/bansdb.h"

struct guard_db {
	sqlite3 *db;
	sqlite3_stmt *st_put, *st_del, *st_flush, *st_purge, *st_each, *st_dv;
};

static const char schema_sql[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS bans ("
	" kind TEXT NOT NULL,"            /* 'ip' or 'user' */
	" target TEXT NOT NULL,"          /* address, IPv6 prefix, or user@realm */
	" until_ms INTEGER NOT NULL,"     /* wall clock; the row stays after expiry */
	" created_ms INTEGER NOT NULL,"   /* for escalation until ban_forget */
	" reason TEXT NOT NULL,"
	" offences INTEGER NOT NULL DEFAULT 1,"
	" PRIMARY KEY (kind, target)) WITHOUT ROWID;";

static int prep(struct guard_db *d, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(d->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -EIO;
}

int gdb_open(const char *path, struct guard_db **out)
{
	struct guard_db *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	/* Create with 0600 ourselves: SQLite would use the umask. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = -errno;
		free(d);
		return e;
	}
	close(fd);
	int rc = -EIO;
	if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(d->db, 2000);
	if (sqlite3_exec(d->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (prep(d, "INSERT OR REPLACE INTO bans (kind, target, until_ms, created_ms, reason, offences)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &d->st_put) < 0 ||
	    prep(d, "DELETE FROM bans WHERE kind = ?1 AND target = ?2", &d->st_del) < 0 ||
	    prep(d, "DELETE FROM bans", &d->st_flush) < 0 ||
	    prep(d, "DELETE FROM bans WHERE until_ms < ?1", &d->st_purge) < 0 ||
	    prep(d, "SELECT kind, target, until_ms, created_ms, reason, offences FROM bans"
		    " WHERE until_ms > ?1 ORDER BY until_ms DESC", &d->st_each) < 0 ||
	    prep(d, "PRAGMA data_version", &d->st_dv) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	gdb_close(d);
	return rc;
}

void gdb_close(struct guard_db *d)
{
	if (!d)
		return;
	sqlite3_finalize(d->st_put);
	sqlite3_finalize(d->st_del);
	sqlite3_finalize(d->st_flush);
	sqlite3_finalize(d->st_purge);
	sqlite3_finalize(d->st_each);
	sqlite3_finalize(d->st_dv);
	sqlite3_close(d->db);
	free(d);
}

static int exec(struct guard_db *d, const char *sql)
{
	return sqlite3_exec(d->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int gdb_begin(struct guard_db *d)
{
	return exec(d, "BEGIN IMMEDIATE");
}

int gdb_commit(struct guard_db *d)
{
	return exec(d, "COMMIT");
}

void gdb_rollback(struct guard_db *d)
{
	exec(d, "ROLLBACK");
}

/* Run a statement without result rows; changes or -EIO. */
static int run(struct guard_db *d, sqlite3_stmt *st, int bind_rc)
{
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : SQLITE_ERROR;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? sqlite3_changes(d->db) : -EIO;
}

int gdb_put(struct guard_db *d, const struct guard_ban_row *r)
{
	sqlite3_stmt *st = d->st_put;
	int rc = sqlite3_bind_text(st, 1, r->user ? "user" : "ip", -1, SQLITE_STATIC);
	rc |= sqlite3_bind_text(st, 2, r->target, -1, SQLITE_TRANSIENT);
	rc |= sqlite3_bind_int64(st, 3, r->until_ms);
	rc |= sqlite3_bind_int64(st, 4, r->created_ms);
	rc |= sqlite3_bind_text(st, 5, r->reason, -1, SQLITE_TRANSIENT);
	rc |= sqlite3_bind_int64(st, 6, r->offences);
	int n = run(d, st, rc);
	return n < 0 ? n : 0;
}

int gdb_del(struct guard_db *d, bool user, const char *target)
{
	sqlite3_stmt *st = d->st_del;
	int rc = sqlite3_bind_text(st, 1, user ? "user" : "ip", -1, SQLITE_STATIC);
	rc |= sqlite3_bind_text(st, 2, target, -1, SQLITE_TRANSIENT);
	return run(d, st, rc);
}

int gdb_flush(struct guard_db *d)
{
	return run(d, d->st_flush, SQLITE_OK);
}

int gdb_purge(struct guard_db *d, int64_t before_ms)
{
	return run(d, d->st_purge, sqlite3_bind_int64(d->st_purge, 1, before_ms));
}

int gdb_each(struct guard_db *d, int64_t min_until_ms, gdb_row_fn fn, void *ctx)
{
	sqlite3_stmt *st = d->st_each;
	int rc = 0, s;
	if (sqlite3_bind_int64(st, 1, min_until_ms) != SQLITE_OK)
		return -EIO;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct guard_ban_row r = { 0 };
		const char *kind = (const char *)sqlite3_column_text(st, 0);
		const char *target = (const char *)sqlite3_column_text(st, 1);
		const char *reason = (const char *)sqlite3_column_text(st, 4);
		r.user = kind && strcmp(kind, "user") == 0;
		snprintf(r.target, sizeof(r.target), "%s", target ? target : "");
		r.until_ms = sqlite3_column_int64(st, 2);
		r.created_ms = sqlite3_column_int64(st, 3);
		snprintf(r.reason, sizeof(r.reason), "%s", reason ? reason : "");
		int64_t off = sqlite3_column_int64(st, 5);
		r.offences = off < 0 ? 0 : off > UINT32_MAX ? UINT32_MAX : (uint32_t)off;
		if ((rc = fn(ctx, &r)) != 0)
			break;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = -EIO;
	sqlite3_reset(st);
	return rc;
}

int gdb_data_version(struct guard_db *d, int64_t *out)
{
	int rc = sqlite3_step(d->st_dv);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(d->st_dv, 0);
	sqlite3_reset(d->st_dv);
	return rc == SQLITE_ROW ? 0 : -EIO;
}
