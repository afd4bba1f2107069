/* Persistent binding store: one SQLite database in WAL mode, written only
 * by a dedicated commit thread that applies everything queued since its
 * last commit in one transaction (group commit). Workers never touch the
 * disk: they submit ops and are told on completion. */
#ifndef SW_STORE_BINDINGS_H
#define SW_STORE_BINDINGS_H

#include "store/bindings-t.h"

void bstore_conf_default(struct bstore_conf *c);

/* Open (create) the database, delete rows expired at now_s, call fn for
 * every remaining row, then start the commit thread. NULL with *err set
 * (-errno, -EIO for SQLite errors) on failure. */
struct sw_bstore *bstore_open(const char *path, const struct bstore_conf *conf, int64_t now_s,
			      bstore_row_fn fn, void *ctx, int *err);
/* Commit everything still queued (completing its tickets), stop the
 * thread and close the database. */
void bstore_close(struct sw_bstore *s);

/* Ops own copies of what they carry; NULL when out of memory. */
struct bstore_op *bstore_op_upsert(const struct bstore_row *row);
struct bstore_op *bstore_op_delete(struct sw_str aor, struct sw_str contact);
/* Delete every row with expires_at <= now_s. */
struct bstore_op *bstore_op_purge(int64_t now_s);
void bstore_op_free(struct bstore_op *op);

/* Queue n ops as one group: they land in the same transaction, in order,
 * after every op submitted before. When ticket != 0, done(ctx, ticket, rc)
 * is called once the group is committed or has failed. On success the
 * store owns the ops; -EBUSY when the queue cannot take n more (the caller
 * still owns them), -EPIPE after close began. Never blocks on disk. */
int bstore_submit(struct sw_bstore *s, struct bstore_op **ops, unsigned n, uint64_t ticket,
		  bstore_done_fn done, void *ctx);

/* Wait until everything submitted so far is committed (tests, shutdown). */
void bstore_flush(struct sw_bstore *s);
/* Ops queued or being committed right now. */
unsigned bstore_pending(struct sw_bstore *s);

#endif
