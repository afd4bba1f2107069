/* Stateless nonces and the bounded nonce-count table (DESIGN.md "Digest
 * requirements"; RFC 7616 §3.3 and §5.4). */
#ifndef SW_AUTH_NONCE_H
#define SW_AUTH_NONCE_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
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

/* An HMAC-SHA-256 context keyed with the secret; dup one per worker. */
EVP_MAC_CTX *nonce_mac_new(const uint8_t *key, size_t len);

/* MAC over the fields, the realm and (NONCE_F_IP) the client address. */
int nonce_make(EVP_MAC_CTX *mac, const struct nonce_fields *f, struct sw_str realm,
	       const struct sockaddr *src, char out[NONCE_LEN + 1]);
/* 0; -EBADMSG when it is not one of ours by shape; -EPERM when the MAC
 * does not verify (forged, other realm, other address, other secret). */
int nonce_open(EVP_MAC_CTX *mac, struct sw_str nonce, struct sw_str realm,
	       const struct sockaddr *src, struct nonce_fields *f);

/* opaque for a realm: base64url(HMAC(secret, "opaque" realm))[:22]. */
int nonce_opaque(EVP_MAC_CTX *mac, struct sw_str realm, char out[23]);

/* The slot table: each issued nonce takes the next slot (round robin) and
 * bumps its generation; a nonce whose slot has moved on is stale. Per slot
 * the highest nc seen and a 64-bit window below it (out-of-order requests
 * over several connections are legal; a repeated nc is not). Sharded locks:
 * workers verify concurrently. */
struct nonce_tab;

struct nonce_tab *nonce_tab_new(uint32_t nslots);   /* rounded up to a power of two */
void nonce_tab_free(struct nonce_tab *t);
void nonce_tab_issue(struct nonce_tab *t, uint32_t *slot, uint32_t *gen);
bool nonce_tab_live(struct nonce_tab *t, uint32_t slot, uint32_t gen);
/* Record a use. nc = 0: no qop (RFC 2069), the nonce is good once.
 * 0; -ESTALE when the slot was reused; -EALREADY on a replayed nc (or a
 * second use of a one-time nonce). */
int nonce_tab_use(struct nonce_tab *t, uint32_t slot, uint32_t gen, uint32_t nc);

#endif
