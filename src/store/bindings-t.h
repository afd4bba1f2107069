/* Persistent binding store (SQLite, WAL, group commit) — types.
 * The store knows rows, not SIP: the registrar above it decides what a
 * binding is (DESIGN.md "Layout": store/ sits below registrar/). */
#ifndef SW_STORE_BINDINGS_T_H
#define SW_STORE_BINDINGS_T_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str-t.h"

/* One row of table `bindings`. Slices point into the op that carries the
 * row, or into SQLite's column memory while a load callback runs. */
struct bstore_row {
	struct sw_str aor;         /* canonical AOR */
	struct sw_str contact;     /* Contact URI as registered; key with aor */
	struct sw_str instance;    /* +sip.instance, empty when none */
	struct sw_str call_id;
	struct sw_str path;        /* Path values comma-joined, empty when none */
	struct sw_str user_agent;
	int64_t expires_at;        /* wall-clock seconds */
	uint32_t cseq;
	int32_t reg_id;            /* -1 none */
	int16_t q;                 /* 0..1000, -1 none */
	uint8_t proto;             /* transport the REGISTER came over */
	uint8_t family;            /* AF_INET / AF_INET6 / 0 = no received address */
	uint8_t addr[16];          /* received address, network order */
	uint16_t port;             /* received port */
	uint32_t conn_id;          /* informational after a restart */
	uint16_t worker;
};

struct bstore_conf {
	unsigned queue_cap;        /* ops waiting to be committed (default 65536) */
	bool sync_full;            /* PRAGMA synchronous=FULL: survive power loss too */
};

struct bstore_op;              /* one change, owned by the queue once submitted */
struct sw_bstore;

/* Called on the commit thread once a ticket's changes are committed (rc 0)
 * or their transaction failed (rc < 0). Tickets of a committed batch are
 * reported in submission order, those of a failed batch newest first. */
typedef void (*bstore_done_fn)(void *ctx, uint64_t ticket, int rc);
/* Called for each unexpired row while the store opens; non-zero stops the
 * load and fails the open with that value. */
typedef int (*bstore_row_fn)(void *ctx, const struct bstore_row *row);

#endif
