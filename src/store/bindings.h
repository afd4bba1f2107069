/* Persistent binding store: an append-only journal written by the workers
 * themselves (one segment file per worker, each change stored into its
 * shared mapping, no system call and no shared lock) and a snapshot rewritten in the background (compaction).
 * docs/internals.md "Durable registrations" explains the protocol.
 *
 * data_dir/bindings.snap        whole table at generation G
 * data_dir/bindings-W-G.log     changes of worker W in generation G */
#ifndef SW_STORE_BINDINGS_H
#define SW_STORE_BINDINGS_H

#include "store/bindings-t.h"

void bstore_conf_default(struct bstore_conf *c);

/* Open the store in dir: import bindings.db once when there is no
 * journal yet (then renamed bindings.db.imported), load the snapshot and
 * every live segment through hooks->load (records of expired bindings
 * arrive without them), delete stale files, and start the compaction
 * thread. Damaged ranges are reported and skipped; a file of another
 * format version fails the open (-EPROTO); a data_dir another process
 * holds, too (-EBUSY: flock on the directory). NULL with *err. */
struct sw_bstore *bstore_open(const char *dir, const struct bstore_conf *conf,
			      const struct bstore_hooks *hooks, int64_t now_s, int *err);
/* Stop the thread and close the files (no compaction at close). */
void bstore_close(struct sw_bstore *s);

/* Append rec (its seq is assigned here: the partition's next number) to
 * writer's segment. The caller holds the partition's lock, and uses each
 * writer id from one thread at a time. Encoded into the segment's shared
 * mapping (one write() where the file system cannot preallocate), plus an
 * msync/fdatasync with conf.fsync. 0 and *seq, or -errno: then nothing of the
 * record stays in the file (a short write is cut off again), and the
 * caller must not apply the change. */
int bstore_append(struct sw_bstore *s, unsigned part, unsigned writer,
		  const struct bstore_rec *rec, uint64_t *seq);

/* Compaction callbacks (see bstore_dump_fn). */
void bstore_dump_mark(struct bstore_dump *d, unsigned part);
int bstore_dump_add(struct bstore_dump *d, const struct bstore_rec *rec);

/* Run a compaction now on the calling thread (tests, migration); 0 or
 * -errno. Serialised with the thread's own. */
int bstore_compact(struct sw_bstore *s, int64_t now_s);

void bstore_stats(struct sw_bstore *s, struct bstore_stats *out);

/* Tests: the next append of writer fails with err after writing
 * `partial` bytes of its record (a short write, a full disk). */
void bstore_inject_write_error(struct sw_bstore *s, unsigned writer, int err, size_t partial);

#endif
