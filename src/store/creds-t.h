/* Credential store types (issue 3): HA1 per algorithm, never a password. */
#ifndef SW_STORE_CREDS_T_H
#define SW_STORE_CREDS_T_H

#include <stdbool.h>
#include <stdint.h>

/* Per-algorithm columns, in the order of enum auth_hash (auth/auth-t.h):
 * MD5, SHA-256, SHA-512-256. */
#define CREDS_ALGS 3
#define CREDS_USER_MAX 128
#define CREDS_REALM_MAX 256
#define CREDS_HEX_MAX 65      /* 64 hex digits + NUL */
#define CREDS_AORS_MAX 1024

/* One row as stored. Hex strings are lower-case; "" when absent. */
struct creds_row {
	char username[CREDS_USER_MAX];
	char realm[CREDS_REALM_MAX];
	char ha1[CREDS_ALGS][CREDS_HEX_MAX];   /* H(username:realm:password) */
	char uh[CREDS_ALGS][CREDS_HEX_MAX];    /* H(username:realm), RFC 7616 §3.4.4 */
	bool enabled;
	/* Other AORs this Auth ID may act for: "1001, 1002@other.example" —
	 * a bare user means "in the same realm" (issue 3, identity binding). */
	char aors[CREDS_AORS_MAX];
	int64_t updated;                       /* wall-clock seconds */
	char source[16];                       /* "cli", "kamailio" */
};

/* One entry of an in-memory snapshot (issue 6: built for 1M users). Entries
 * live back to back in one arena per snapshot, 4-byte aligned, no
 * allocation per user. Read them through the creds_ent_* accessors
 * (creds.h). After the header: the username and the AORs, each
 * NUL-terminated (first, so a lookup touches one cache line), then the
 * present hashes in binary (16 bytes for MD5, 32 for the others), HA1s
 * then userhashes, in column order. */
struct creds_ent {
	uint32_t realm;      /* index into the snapshot's realm table */
	uint16_t alen;       /* strlen(aors) < CREDS_AORS_MAX */
	uint8_t ulen;        /* strlen(user) < CREDS_USER_MAX */
	uint8_t flags;       /* CREDS_ENT_* */
	unsigned char d[];
};

#define CREDS_ENT_ENABLED 0x01u
#define CREDS_ENT_HA1(alg) (0x02u << (alg))
#define CREDS_ENT_UH(alg) (0x02u << (CREDS_ALGS + (alg)))

struct creds_db;     /* one SQLite connection */
struct creds_snap;   /* immutable snapshot with keyed-hash indexes */

#define CREDS_OPEN_CREATE 1u   /* create the file (0600) and schema */

#endif
