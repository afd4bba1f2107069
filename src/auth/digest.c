#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "auth/digest.h"
#include "base/ct.h"

static const EVP_MD *mds[AUTH_H__COUNT];
/* Per hash, a context initialised once and never written again: a hash
 * starts with EVP_MD_CTX_copy_ex from it, which skips what
 * EVP_DigestInit_ex2 does each time (ENGINE table lookup, freeing and
 * allocating the provider context, then its init). Copying only reads
 * the template, so workers share it. NULL: fall back to Init. */
static EVP_MD_CTX *tmpl[AUTH_H__COUNT];
static pthread_once_t mds_once = PTHREAD_ONCE_INIT;

static void mds_fetch(void)
{
	/* "SHA512-256" is FIPS 180-4 SHA-512/256 with its own IVs — not
	 * SHA-512 truncated (RFC 7616 erratum 4897). */
	mds[AUTH_H_MD5] = EVP_MD_fetch(NULL, "MD5", NULL);
	mds[AUTH_H_SHA256] = EVP_MD_fetch(NULL, "SHA256", NULL);
	mds[AUTH_H_SHA512_256] = EVP_MD_fetch(NULL, "SHA512-256", NULL);
	for (int h = 0; h < AUTH_H__COUNT; h++) {
		if (!mds[h])
			continue;
		tmpl[h] = EVP_MD_CTX_new();
		if (tmpl[h] && !EVP_DigestInit_ex2(tmpl[h], mds[h], NULL)) {
			EVP_MD_CTX_free(tmpl[h]);
			tmpl[h] = NULL;
		}
	}
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

/* Two hex digits per byte value, lower case. */
#define HXD(v) ((v) < 10 ? '0' + (v) : 'a' - 10 + (v))
#define HX1(i) { HXD((i) >> 4), HXD((i) & 15) }
#define HX4(i) HX1(i), HX1((i) + 1), HX1((i) + 2), HX1((i) + 3)
#define HX16(i) HX4(i), HX4((i) + 4), HX4((i) + 8), HX4((i) + 12)
#define HX64(i) HX16(i), HX16((i) + 16), HX16((i) + 32), HX16((i) + 48)
static const char hex2[256][2] = { HX64(0), HX64(64), HX64(128), HX64(192) };

void digest_tohex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		memcpy(out + 2 * i, hex2[in[i]], 2);
	out[2 * n] = '\0';
}

/* Input gathered into one stack buffer so that a typical digest string
 * ("HA1:nonce:nc:cnonce:qop:HA2", < 450 bytes) is one EVP_DigestUpdate
 * instead of one per part and per ':'. Longer input is flushed as it
 * comes; a part of GATHER bytes or more goes straight to the hash. */
#define GATHER 512

struct gather {
	EVP_MD_CTX *ctx;
	size_t n;              /* bytes waiting in b */
	size_t used;           /* high-water mark of b, wiped at the end */
	bool bad;
	unsigned char b[GATHER];
};

static void g_flush(struct gather *g)
{
	if (g->n && !EVP_DigestUpdate(g->ctx, g->b, g->n))
		g->bad = true;
	if (g->n > g->used)
		g->used = g->n;
	g->n = 0;
}

static void g_put(struct gather *g, const void *p, size_t n)
{
	if (!n)
		return;
	if (n > GATHER - g->n) {
		g_flush(g);
		if (n >= GATHER) {
			if (!EVP_DigestUpdate(g->ctx, p, n))
				g->bad = true;
			return;
		}
	}
	memcpy(g->b + g->n, p, n);
	g->n += n;
}

static int h_start(EVP_MD_CTX *ctx, enum auth_hash h)
{
	const EVP_MD *md = digest_md(h);
	if (!md)
		return -EIO;
	if (tmpl[h])
		return EVP_MD_CTX_copy_ex(ctx, tmpl[h]) ? 0 : -EIO;
	return EVP_DigestInit_ex2(ctx, md, NULL) ? 0 : -EIO;
}

/* Finish the hash in ctx and write it in hex. */
static int h_final_hex(EVP_MD_CTX *ctx, enum auth_hash h, char *out)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	int rc = -EIO;
	if (EVP_DigestFinal_ex(ctx, d, &dl) && dl == digest_len(h)) {
		digest_tohex(d, dl, out);
		rc = 0;
	}
	sw_cleanse(d, sizeof(d));
	return rc;
}

/* H(p0 ":" p1 ":" …) on a caller's context. */
static int join(EVP_MD_CTX *ctx, enum auth_hash h, const struct sw_str *parts, unsigned n,
		char *out)
{
	struct gather g;
	int rc = h_start(ctx, h);
	if (rc)
		return rc;
	g.ctx = ctx;
	g.n = g.used = 0;
	g.bad = false;
	for (unsigned i = 0; i < n; i++) {
		if (i)
			g_put(&g, ":", 1);
		g_put(&g, parts[i].p, parts[i].len);
	}
	g_flush(&g);
	rc = g.bad ? -EIO : h_final_hex(ctx, h, out);
	sw_cleanse(g.b, g.used);   /* may hold an HA1 or a password */
	return rc;
}

int digest_join(EVP_MD_CTX *ctx, enum auth_hash h, const struct sw_str *parts, unsigned n,
		char *out)
{
	if (ctx)
		return join(ctx, h, parts, n, out);
	EVP_MD_CTX *own = EVP_MD_CTX_new();
	if (!own)
		return -ENOMEM;
	int rc = join(own, h, parts, n, out);
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

static int response(EVP_MD_CTX *ctx, const struct digest_in *in, char *out)
{
	enum auth_hash h = AUTH_ALGO_HASH(in->algo);
	size_t hl = 2 * (size_t)digest_len(h);
	char ha1s[DIGEST_HEX_MAX], ha2[DIGEST_HEX_MAX], hbody[DIGEST_HEX_MAX];
	struct sw_str ha1 = in->ha1;
	int rc;

	if (AUTH_ALGO_SESS(in->algo)) {
		struct sw_str a1[3] = { in->ha1, in->nonce, in->cnonce };
		rc = join(ctx, h, a1, 3, ha1s);
		if (rc)
			goto out;
		ha1 = (struct sw_str){ ha1s, hl };
	}
	if (in->qop.len == 8 && memcmp(in->qop.p, "auth-int", 8) == 0) {
		/* RFC 7616 §3.4.3: H(entity-body) over the real body, which
		 * is hashed where it lies (it can be large). */
		rc = h_start(ctx, h);
		if (!rc && in->body.len && !EVP_DigestUpdate(ctx, in->body.p, in->body.len))
			rc = -EIO;
		if (!rc)
			rc = h_final_hex(ctx, h, hbody);
		if (rc)
			goto out;
		struct sw_str a2[3] = { in->method, in->uri, { hbody, hl } };
		rc = join(ctx, h, a2, 3, ha2);
	} else {
		struct sw_str a2[2] = { in->method, in->uri };
		rc = join(ctx, h, a2, 2, ha2);
	}
	if (rc)
		goto out;
	struct sw_str hx = { ha2, hl };
	if (in->qop.len) {
		struct sw_str r[6] = { ha1, in->nonce, in->nc, in->cnonce, in->qop, hx };
		rc = join(ctx, h, r, 6, out);
	} else {
		struct sw_str r[3] = { ha1, in->nonce, hx };
		rc = join(ctx, h, r, 3, out);
	}
out:
	sw_cleanse(ha1s, sizeof(ha1s));
	return rc;
}

int digest_response(EVP_MD_CTX *ctx, const struct digest_in *in, char *out)
{
	if (ctx)
		return response(ctx, in, out);
	EVP_MD_CTX *own = EVP_MD_CTX_new();
	if (!own)
		return -ENOMEM;
	int rc = response(own, in, out);
	EVP_MD_CTX_free(own);
	return rc;
}
