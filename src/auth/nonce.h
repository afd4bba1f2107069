/* Stateless nonces and the bounded nonce-count table (DESIGN.md "Digest
 * requirements"; RFC 7616 §3.3 and §5.4). */
#ifndef SW_AUTH_NONCE_H
#define SW_AUTH_NONCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "auth/auth-t.h"
#include "base/str-t.h"

/* version(1) | issue time(5, s) | slot(4) | generation(4) | HMAC(16),
 * base64url without padding: 30 bytes → 40 characters, always. */
#define NONCE_RAW 30
#define NONCE_LEN 40

#define NONCE_F_IP 1u           /* client address is under the MAC */

struct nonce_fields {
	int64_t t;                  /* issue time, wall seconds */
	uint32_t slot;
	uint32_t gen;
	uint8_t flags;              /* NONCE_F_* */
};

/* HMAC-SHA-256 (RFC 2104) under the nonce secret, with the key schedule
 * done once: two SHA-256 states that have absorbed K^ipad and K^opad, and
 * a scratch context. A MAC then costs two state copies and the
 * compressions of the message, with no EVP_MAC layer and no key
 * processing. One per thread (the scratch context is written on every
 * call): make one with nonce_mac_new, give each worker nonce_mac_dup. */
struct nonce_mac;

/* NULL when out of memory or SHA-256 is unavailable. The key may be any
 * length (longer than 64 bytes is hashed first, as RFC 2104 says). */
struct nonce_mac *nonce_mac_new(const uint8_t *key, size_t len);
struct nonce_mac *nonce_mac_dup(const struct nonce_mac *m);
void nonce_mac_free(struct nonce_mac *m);      /* wipes the keyed states; NULL ok */

/* HMAC-SHA-256(key, msg) in full (RFC 4231 vectors test it). 0 or -EIO. */
int nonce_hmac(struct nonce_mac *m, const void *msg, size_t len, uint8_t out[32]);

/* MAC over the fields, the realm and (NONCE_F_IP) the client address.
 * -EINVAL: realm over 65535 bytes, or NONCE_F_IP without a v4/v6 src. */
int nonce_make(struct nonce_mac *m, const struct nonce_fields *f, struct sw_str realm,
	       const struct sockaddr *src, char out[NONCE_LEN + 1]);
/* 0; -EBADMSG when it is not one of ours by shape; -EPERM when the MAC
 * does not verify (forged, other realm, other address, other secret). */
int nonce_open(struct nonce_mac *m, struct sw_str nonce, struct sw_str realm,
	       const struct sockaddr *src, struct nonce_fields *f);
/* The fields by shape only (no MAC check): -EBADMSG as nonce_open. */
int nonce_peek(struct sw_str nonce, struct nonce_fields *f);

/* opaque for a realm: base64url(HMAC(secret, "opaque" realm))[:22]. */
int nonce_opaque(struct nonce_mac *m, struct sw_str realm, char out[23]);

/* The slot table: each issued nonce takes the next slot (round robin) and
 * bumps its generation; a nonce whose slot has moved on is stale. Per slot
 * the highest nc seen and a 64-bit window below it (out-of-order requests
 * over several connections are legal; a repeated nc is not). Sharded locks:
 * workers verify concurrently.
 *
 * A worker takes the ring's slots NONCE_CHUNK at a time through its own
 * cursor (one shared atomic add per chunk, not per challenge), and a
 * chunk's slots share one lock on a cache line of its own, so two workers
 * issuing and verifying nonces do not write the same cache lines. */
struct nonce_tab;

#define NONCE_CHUNK 64u

struct nonce_cursor {
	uint32_t next, end;         /* zero-initialised: takes a chunk on first use */
};

/* nslots rounded up to a power of two (1024..NONCE_SLOTS_MAX). The table
 * is zero pages until slots are issued: its size is the longest a nonce
 * can stay live (the last nslots challenges), not memory spent up front. */
struct nonce_tab *nonce_tab_new(uint32_t nslots);
uint32_t nonce_tab_slots(const struct nonce_tab *t);
void nonce_tab_free(struct nonce_tab *t);
void nonce_tab_issue(struct nonce_tab *t, struct nonce_cursor *c, uint32_t *slot, uint32_t *gen);
bool nonce_tab_live(struct nonce_tab *t, uint32_t slot, uint32_t gen);
/* Record a use. nc = 0: no qop (RFC 2069), the nonce is good once.
 * 0; -ESTALE when the slot was reused; -EALREADY on a replayed nc (or a
 * second use of a one-time nonce). */
int nonce_tab_use(struct nonce_tab *t, uint32_t slot, uint32_t gen, uint32_t nc);

/* A nonce already proven ours need not be HMAC-verified again (~6k
 * instructions a request): the slot keeps a 128-bit keyed fingerprint
 * (SipHash-2-4-128 under a random key of the table) of the nonce text, the
 * realm and (NONCE_F_IP) the client address, set when the nonce is issued
 * or first verified. A request whose nonce has the live slot's fingerprint
 * carries exactly the text that was issued for that realm and address;
 * anything else goes through nonce_open. */
struct nonce_fp {
	uint64_t a, b;
};
void nonce_tab_fp(const struct nonce_tab *t, struct sw_str nonce, struct sw_str realm,
		  const struct sockaddr *src, bool ip, struct nonce_fp *out);
/* Keep fp for (slot, gen) if that generation is still the slot's. */
void nonce_tab_seal(struct nonce_tab *t, uint32_t slot, uint32_t gen, const struct nonce_fp *fp);
/* (slot, gen) is live and holds fp. */
bool nonce_tab_known(struct nonce_tab *t, uint32_t slot, uint32_t gen, const struct nonce_fp *fp);

#endif
