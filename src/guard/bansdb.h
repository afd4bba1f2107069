/* bans.db: the guard's persistent bans (SQLite, WAL). Used by the guard's
 * writer thread and by `sipwarden ban`, each through its own connection;
 * a commit by one is seen by the other through PRAGMA data_version. */
#ifndef SW_GUARD_BANSDB_H
#define SW_GUARD_BANSDB_H

#include <stdbool.h>
#include <stdint.h>
#include "guard/guard-t.h"

struct guard_db;

/* Open or create path (mode 0600). 0 or -EIO / -errno. */
int gdb_open(const char *path, struct guard_db **out);
void gdb_close(struct guard_db *d);

int gdb_begin(struct guard_db *d);
int gdb_commit(struct guard_db *d);
void gdb_rollback(struct guard_db *d);

/* Insert or replace one row. */
int gdb_put(struct guard_db *d, const struct guard_ban_row *r);
/* Rows deleted (0 when none) or -EIO. */
int gdb_del(struct guard_db *d, bool user, const char *target);
/* Delete every row, history included. Rows deleted or -EIO. */
int gdb_flush(struct guard_db *d);
/* Forget rows whose ban ended before before_ms. Rows deleted or -EIO. */
int gdb_purge(struct guard_db *d, int64_t before_ms);

typedef int (*gdb_row_fn)(void *ctx, const struct guard_ban_row *r);
/* fn for every row with until_ms > min_until_ms (INT64_MIN: all), most
 * recent ban first; a non-zero return from fn stops and is returned. */
int gdb_each(struct guard_db *d, int64_t min_until_ms, gdb_row_fn fn, void *ctx);

/* PRAGMA data_version: changes when another connection commits. */
int gdb_data_version(struct guard_db *d, int64_t *out);

#endif
