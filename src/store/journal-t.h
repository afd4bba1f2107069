/* Binding journal: the on-disk record format (types).
 * The store knows records of "an AOR and its bindings", not SIP: the
 * registrar above it decides what a binding means (DESIGN.md "Layout"). */
#ifndef SW_STORE_JOURNAL_T_H
#define SW_STORE_JOURNAL_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str-t.h"

/* Most bindings one record carries (the registrar's REG_HARD_PER_AOR). */
#define BSTORE_MAX_BINDINGS 128
/* Largest record body accepted by the writer and the reader. A record at
 * the registrar's limits (128 bindings, every string at its maximum) is
 * about 210 KB; anything larger on disk is corruption. */
#define BJ_REC_MAX (1u << 20)

/* File header: magic, version, header length, generation, CRC32C. */
#define BJ_HDR_LEN 24
#define BJ_VERSION 1
/* Record header: magic, body length, CRC32C over (length, body). */
#define BJ_REC_HDR 12

enum bj_kind {
	BJ_SEGMENT = 1,            /* bindings-W-G.log: appended by worker W */
	BJ_SNAPSHOT = 2,           /* bindings.snap: whole table at generation G */
};

/* One binding as stored. Slices point into the record being read or into
 * the caller's memory while a record is written. */
struct bstore_binding {
	struct sw_str contact;     /* Contact URI as registered */
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
	uint16_t worker;
};

/* The whole state of one AOR after a change; n == 0 is a tombstone. */
struct bstore_rec {
	struct sw_str aor;
	uint64_t seq;              /* higher wins at replay */
	unsigned n;
	const struct bstore_binding *b;
};

/* Reading a file image (mmap'd or in memory). */
struct bj_reader {
	const uint8_t *p;
	size_t len;
	size_t off;                /* next byte to look at */
	size_t good_end;           /* end of the last whole record */
	/* set when bj_next returns BJ_BAD: the skipped range and why */
	size_t bad_off, bad_len;
	const char *bad_why;
	bool bad_tail;             /* nothing valid follows the bad range */
	size_t zero_tail;          /* zero bytes that ended the file (preallocated) */
	struct bstore_binding b[BSTORE_MAX_BINDINGS];
};

enum bj_next_rc {
	BJ_END = 0,                /* no more records */
	BJ_REC = 1,                /* *rec holds the next record */
	BJ_BAD = 2,                /* bytes skipped: bad_off/bad_len/bad_why */
};

#endif
