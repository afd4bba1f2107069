/* Credential store: SQLite file <data_dir>/credentials.db (issue 3) and
 * immutable in-memory snapshots for the request path (DESIGN.md: a
 * read-mostly credential snapshot swapped atomically on reload). */
#ifndef SW_STORE_CREDS_H
#define SW_STORE_CREDS_H

#include <stddef.h>
#include <stdint.h>
#include "base/str-t.h"
#include "store/creds-t.h"

#define CREDS_DB_FILE "credentials.db"

/* 0, -ENOENT (no file and no CREDS_OPEN_CREATE), -EIO, -ENOMEM. */
int creds_db_open(const char *path, unsigned flags, struct creds_db **out);
void creds_db_close(struct creds_db *db);
/* True when the file at the path is no longer the one this connection has
 * open (deleted or replaced). */
bool creds_db_gone(struct creds_db *db);
/* Changes committed by other connections bump this (PRAGMA data_version). */
int creds_db_version(struct creds_db *db, uint64_t *v);

int creds_db_get(struct creds_db *db, const char *user, const char *realm, struct creds_row *out);
int creds_db_insert(struct creds_db *db, const struct creds_row *r);       /* -EEXIST */
int creds_db_update(struct creds_db *db, const struct creds_row *r);       /* -ENOENT */
int creds_db_delete(struct creds_db *db, const char *user, const char *realm);
int creds_db_set_enabled(struct creds_db *db, const char *user, const char *realm, bool on);
/* Rows ordered by realm, username; fn returning non-zero stops with that value. */
int creds_db_foreach(struct creds_db *db, int (*fn)(void *ctx, const struct creds_row *r),
		     void *ctx);
int creds_db_begin(struct creds_db *db);
int creds_db_commit(struct creds_db *db);
void creds_db_rollback(struct creds_db *db);

/* Snapshots. */
int creds_snap_load(struct creds_db *db, struct creds_snap **out);
int creds_snap_build(const struct creds_row *rows, size_t n, struct creds_snap **out);
void creds_snap_free(struct creds_snap *s);
size_t creds_snap_count(const struct creds_snap *s);
/* Exact (case-sensitive) username and realm; NULL when absent. */
const struct creds_ent *creds_snap_find(const struct creds_snap *s, struct sw_str user,
					struct sw_str realm);
/* By userhash (hex, case-insensitive) for algorithm column alg. */
const struct creds_ent *creds_snap_find_uh(const struct creds_snap *s, unsigned alg,
					   struct sw_str realm, struct sw_str uh);

/* An entry's fields. Hashes are binary, creds_hash_len(alg) bytes (the
 * hex of the DB is decoded once, at load); NULL when the column is empty
 * or was not valid hex. The pointers live as long as the snapshot. */
unsigned creds_hash_len(unsigned alg);                  /* 16 or 32 */
const char *creds_ent_user(const struct creds_ent *e);  /* NUL-terminated, e->ulen */
const char *creds_ent_aors(const struct creds_ent *e);  /* NUL-terminated, e->alen */
bool creds_ent_enabled(const struct creds_ent *e);
const unsigned char *creds_ent_ha1(const struct creds_ent *e, unsigned alg);
const unsigned char *creds_ent_uh(const struct creds_ent *e, unsigned alg);

/* Lower-case hex of the right length for column alg (32 or 64 digits). */
bool creds_hex_valid(unsigned alg, const char *hex);

#endif
