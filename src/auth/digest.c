#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "auth/digest.h"
#include "base/ct.h"

static const EVP_MD *mds[AUTH_H__COUNT];
static pthread_once_t mds_once = PTHREAD_ONCE_INIT;

static void mds_fetch(void)
{
	/* "SHA512-256" is FIPS 180-4 SHA-512/256 with its own IVs — not
	 * SHA-512 truncated (RFC 7616 erratum 4897). */
	mds[AUTH_H_MD5] = EVP_MD_fetch(NULL, "MD5", NULL);
	mds[AUTH_H_SHA256] = EVP_MD_fetch(NULL, "SHA256", NULL);
	mds[AUTH_H_SHA512_256] = EVP_MD_fetch(NULL, "SHA512-256", NULL);
}

const EVP_MD *digest_md(enum auth_hash h)
{
	pthread_once(&mds_once, mds_fetch);
	return (unsigned)h < AUTH_H__COUNT ? mds[h] : NULL;
}

unsigned digest_len(enum auth_hash h)
{
	return h == AUTH_H_MD5 ? 16 : 32;
}

void digest_tohex(const unsigned char *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int digest_join(EVP_MD_CTX *ctx, enum auth_hash h, const struct sw_str *parts, unsigned n,
		char *out)
{
	const EVP_MD *md = digest_md(h);
	EVP_MD_CTX *own = NULL;
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	int rc = -EIO;

	if (!md)
		return -EIO;
	if (!ctx) {
		own = ctx = EVP_MD_CTX_new();
		if (!ctx)
			return -ENOMEM;
	}
	if (!EVP_DigestInit_ex2(ctx, md, NULL))
		goto out;
	for (unsigned i = 0; i < n; i++) {
		if (i && !EVP_DigestUpdate(ctx, ":", 1))
			goto out;
		if (parts[i].len && !EVP_DigestUpdate(ctx, parts[i].p, parts[i].len))
			goto out;
	}
	if (!EVP_DigestFinal_ex(ctx, d, &dl) || dl != digest_len(h))
		goto out;
	digest_tohex(d, dl, out);
	rc = 0;
out:
	sw_cleanse(d, sizeof(d));
	EVP_MD_CTX_free(own);
	return rc;
}

int digest_ha1(EVP_MD_CTX *ctx, enum auth_hash h, struct sw_str user, struct sw_str realm,
	       struct sw_str password, char *out)
{
	struct sw_str parts[3] = { user, realm, password };
	return digest_join(ctx, h, parts, 3, out);
}

int digest_userhash(EVP_MD_CTX *ctx, enum auth_hash h, struct sw_str user, struct sw_str realm,
		    char *out)
{
	struct sw_str parts[2] = { user, realm };
	return digest_join(ctx, h, parts, 2, out);
}

int digest_response(EVP_MD_CTX *ctx, const struct digest_in *in, char *out)
{
	enum auth_hash h = AUTH_ALGO_HASH(in->algo);
	char ha1s[DIGEST_HEX_MAX], ha2[DIGEST_HEX_MAX], hbody[DIGEST_HEX_MAX];
	struct sw_str ha1 = in->ha1;
	int rc;

	if (AUTH_ALGO_SESS(in->algo)) {
		struct sw_str a1[3] = { in->ha1, in->nonce, in->cnonce };
		rc = digest_join(ctx, h, a1, 3, ha1s);
		if (rc)
			goto out;
		ha1 = (struct sw_str){ ha1s, 2 * digest_len(h) };
	}
	if (in->qop.len == 8 && memcmp(in->qop.p, "auth-int", 8) == 0) {
		/* RFC 7616 §3.4.3: H(entity-body) over the real body. */
		rc = digest_join(ctx, h, &in->body, 1, hbody);
		if (rc)
			goto out;
		struct sw_str a2[3] = { in->method, in->uri, { hbody, 2 * digest_len(h) } };
		rc = digest_join(ctx, h, a2, 3, ha2);
	} else {
		struct sw_str a2[2] = { in->method, in->uri };
		rc = digest_join(ctx, h, a2, 2, ha2);
	}
	if (rc)
		goto out;
	struct sw_str hx = { ha2, 2 * digest_len(h) };
	if (in->qop.len) {
		struct sw_str r[6] = { ha1, in->nonce, in->nc, in->cnonce, in->qop, hx };
		rc = digest_join(ctx, h, r, 6, out);
	} else {
		struct sw_str r[3] = { ha1, in->nonce, hx };
		rc = digest_join(ctx, h, r, 3, out);
	}
out:
	sw_cleanse(ha1s, sizeof(ha1s));
	return rc;
}
