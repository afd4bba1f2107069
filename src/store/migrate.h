/* One-time import of the SQLite binding store (bindings.db, before the
 * journal) — private to src/store. */
#ifndef SW_STORE_MIGRATE_H
#define SW_STORE_MIGRATE_H

#include <stdint.h>

#include "store/bindings-t.h"

/* Call fn once per AOR of `path` with its unexpired rows (at most
 * BSTORE_MAX_BINDINGS each), seq = ++*seq. A database without the table
 * imports nothing. 0, a non-zero value from fn, or -EIO. */
int bstore_import_sqlite(const char *path, int64_t now_s, bstore_load_fn fn, void *ctx,
			 uint64_t *seq, uint64_t *rows);

#endif
