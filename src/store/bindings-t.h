/* Persistent binding store (append-only journal + snapshot) — types.
 * The store knows records, not SIP: the registrar above it decides what a
 * binding is (DESIGN.md "Layout": store/ sits below registrar/). */
#ifndef SW_STORE_BINDINGS_T_H
#define SW_STORE_BINDINGS_T_H

#include <stdbool.h>
#include <stdint.h>

#include "store/journal-t.h"

/* Partitions (the registrar's shards) and writers (worker ids). */
#define BSTORE_MAX_PARTS 256
#define BSTORE_MAX_WRITERS 1024

struct sw_bstore;
struct bstore_dump;            /* a snapshot being written (compaction) */

/* Replay: one record that may win for its AOR (highest seq wins; the
 * owner keeps tombstones — n == 0 — until the load ends so that an older
 * record met later cannot bring the AOR back). Expired bindings are
 * already removed. Non-zero fails the open. */
typedef int (*bstore_load_fn)(void *ctx, const struct bstore_rec *rec);
/* After the last record (before any compaction, on the opener's thread):
 * an owner that batches records applies what it holds. Non-zero fails
 * the open. */
typedef int (*bstore_load_end_fn)(void *ctx);
/* Compaction, once per partition on the store's thread: take the
 * partition's lock, call bstore_dump_mark(d, part), then
 * bstore_dump_add(d, rec) for each AOR with unexpired bindings, unlock.
 * Non-zero aborts the compaction (nothing is lost: see bindings.c). */
typedef int (*bstore_dump_fn)(void *ctx, unsigned part, struct bstore_dump *d, int64_t now_s);
/* Problems worth a log line: a damaged file (name, offset, what), a
 * failed compaction. Called from the opener or the store's thread. */
typedef void (*bstore_report_fn)(void *ctx, const char *file, uint64_t off, const char *what,
				 int err);

struct bstore_conf {
	bool fsync;                /* fdatasync each append (power-loss durability) */
	uint64_t compact_min_bytes;/* compact when the journal exceeds max(this, */
	unsigned compact_ratio;    /* ratio × last snapshot size); 64 MB and 2 */
	unsigned check_ms;         /* how often the thread looks (1000) */
	unsigned retry_ms;         /* after a failed compaction (60000) */
	bool no_thread;            /* tests: compaction only via bstore_compact */
	bool no_lock;              /* tests: read files another store holds (the
				    * data_dir lock is otherwise exclusive) */
	int kill_at;               /* tests: SIGKILL at compaction step N (0 = off) */
};

struct bstore_hooks {
	unsigned nparts;           /* 1..BSTORE_MAX_PARTS */
	bstore_load_fn load;
	bstore_load_end_fn load_end;  /* may be NULL */
	bstore_dump_fn dump;
	void *ctx;                 /* for load and dump */
	bstore_report_fn report;   /* may be NULL */
	void *report_ctx;
};

/* What the store found and did at open (for the start-up log line). */
struct bstore_stats {
	uint64_t snap_bytes, journal_bytes;
	unsigned segments;         /* live segment files replayed */
	uint64_t records;          /* records read (snapshot + segments) */
	uint64_t imported;         /* rows imported from bindings.db */
	uint64_t damaged;          /* damaged ranges skipped */
	uint64_t gen;              /* generation workers write now */
	uint64_t compactions;      /* finished since open */
};

#endif
