/* Digest computations (RFC 7616 §3.4.1-§3.4.3, RFC 2617 §3.2.2, RFC 2069)
 * over OpenSSL EVP. Everything in lower-case hex, as it goes on the wire. */
#ifndef SW_AUTH_DIGEST_H
#define SW_AUTH_DIGEST_H

#include <openssl/evp.h>
#include "auth/auth-t.h"
#include "base/str-t.h"

#define DIGEST_HEX_MAX 65          /* 64 hex digits + NUL (SHA-256, SHA-512/256) */

/* The EVP digest of h, fetched once per process (OpenSSL 3 explicit fetch
 * is far cheaper than the implicit one per call); NULL when unavailable. */
const EVP_MD *digest_md(enum auth_hash h);
/* Output length in bytes: 16 or 32. */
unsigned digest_len(enum auth_hash h);

/* n bytes → 2n lower-case hex digits and a NUL. */
void digest_tohex(const unsigned char *in, size_t n, char *out);

/* H(p0 ":" p1 ":" … ) in hex into out (DIGEST_HEX_MAX). ctx is the
 * caller's scratch context, one per thread, reused across calls and
 * algorithms (NULL allocates one per call: fine off the hot path). Each
 * hash starts by copying a per-algorithm context initialised once per
 * process, and the parts are gathered so that a short input is one
 * EVP_DigestUpdate. 0, -ENOMEM or -EIO. */
int digest_join(EVP_MD_CTX *ctx, enum auth_hash h, const struct sw_str *parts, unsigned n,
		char *out);

/* HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2). */
int digest_ha1(EVP_MD_CTX *ctx, enum auth_hash h, struct sw_str user, struct sw_str realm,
	       struct sw_str password, char *out);
/* userhash = H(username ":" realm) (RFC 7616 §3.4.4). */
int digest_userhash(EVP_MD_CTX *ctx, enum auth_hash h, struct sw_str user, struct sw_str realm,
		    char *out);

struct digest_in {
	enum auth_algo algo;
	struct sw_str ha1;         /* stored HA1, hex (H(user:realm:password)) */
	struct sw_str nonce;
	struct sw_str cnonce;
	struct sw_str nc;
	struct sw_str qop;         /* "auth", "auth-int", or empty for RFC 2069 */
	struct sw_str method;
	struct sw_str uri;         /* digest-uri as sent */
	struct sw_str body;        /* entity body for auth-int */
};

/* The request-digest the client should have sent:
 *   -sess: A1 = HA1 ":" nonce ":" cnonce  (RFC 7616 §3.4.2)
 *   A2 = method ":" uri [":" H(body)]     (auth-int, §3.4.3)
 *   response = H(H(A1) ":" nonce ":" nc ":" cnonce ":" qop ":" H(A2))
 *   or H(H(A1) ":" nonce ":" H(A2)) without qop (RFC 2069).
 * Two hashes for qop=auth, three for auth-int or -sess, four for both.
 * ctx as for digest_join. */
int digest_response(EVP_MD_CTX *ctx, const struct digest_in *in, char *out);

#endif
