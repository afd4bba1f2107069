/* cryptobench: the per-request crypto of digest authentication, before
 * and after issue 6's rewrite, in one binary (bench/README.md).
 *
 * "old" is the code of src/auth/nonce.c and src/auth/digest.c as of
 * commit ed9578f, kept here verbatim as static functions (EVP_MAC HMAC
 * re-initialised per call with one update per field; EVP_DigestInit_ex2 and
 * one update per part and per ':'); "new" calls the library. Before timing,
 * every op checks that old and new give the same bytes.
 *
 *   cryptobench [-n N] [-r ROUNDS] [-l] [-o OP/VARIANT]
 *
 * Without -o: every op, old and new interleaved, ROUNDS rounds of N calls
 * each, median ns per call. With -o (e.g. -o nonce/new): one warm-up call,
 * then N calls inside measure() — for
 *   valgrind --tool=callgrind --toggle-collect=measure … -o OP/VARIANT
 * whose total Ir / N is instructions per call (bench/crypto_bench.sh). */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/digest.h"
#include "auth/nonce.h"
#include "base/ct.h"
#include "base/str.h"

/* ================= old: nonce.c as of ed9578f (MAC part) ================= */

#define NONCE_VERSION 1

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64u_enc(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0, o = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64u[v >> 18];
		out[o++] = b64u[(v >> 12) & 63];
		out[o++] = b64u[(v >> 6) & 63];
		out[o++] = b64u[v & 63];
	}
}

static int b64u_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

static int b64u_dec(const char *in, size_t n, uint8_t *out)
{
	for (size_t i = 0, o = 0; i < n; i += 4) {
		uint32_t v = 0;
		for (int k = 0; k < 4; k++) {
			int x = b64u_val(in[i + k]);
			if (x < 0)
				return -EBADMSG;
			v = v << 6 | (uint32_t)x;
		}
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	return 0;
}

static EVP_MAC_CTX *old_mac_new(const uint8_t *key, size_t len)
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	char dg[] = "SHA256";
	OSSL_PARAM p[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, dg, 0),
			   OSSL_PARAM_construct_end() };
	EVP_MAC_free(m);
	if (ctx && !EVP_MAC_init(ctx, key, len, p)) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

static size_t addr_bytes(const struct sockaddr *sa, uint8_t out[17])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		out[0] = 4;
		memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 5;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (!memcmp(a, mapped, 12)) {
			out[0] = 4;
			memcpy(out + 1, a + 12, 4);
			return 5;
		}
		out[0] = 6;
		memcpy(out + 1, a, 16);
		return 17;
	}
	return 0;
}

static int old_mac_over(EVP_MAC_CTX *mac, const uint8_t *hdr, size_t hl, struct sw_str realm,
			const struct sockaddr *src, bool ip, uint8_t out[32])
{
	static const char label[] = "sipwarden-nonce-v1";
	uint8_t rl[2] = { (uint8_t)(realm.len >> 8), (uint8_t)realm.len };
	uint8_t ab[17];
	size_t al = ip ? addr_bytes(src, ab) : 0, ol = 0;

	if (realm.len > 0xffff || (ip && !al))
		return -EINVAL;
	if (!EVP_MAC_init(mac, NULL, 0, NULL) ||
	    !EVP_MAC_update(mac, (const uint8_t *)label, sizeof(label)) ||
	    !EVP_MAC_update(mac, hdr, hl) || !EVP_MAC_update(mac, rl, 2) ||
	    (realm.len && !EVP_MAC_update(mac, (const uint8_t *)realm.p, realm.len)) ||
	    (al && !EVP_MAC_update(mac, ab, al)) || !EVP_MAC_final(mac, out, &ol, 32) || ol != 32)
		return -EIO;
	return 0;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int old_nonce_make(EVP_MAC_CTX *mac, const struct nonce_fields *f, struct sw_str realm,
			  const struct sockaddr *src, char out[NONCE_LEN + 1])
{
	uint8_t raw[NONCE_RAW], m[32];
	raw[0] = (uint8_t)(NONCE_VERSION << 4 | (f->flags & 0x0f));
	put_be(raw + 1, (uint64_t)f->t, 5);
	put_be(raw + 6, f->slot, 4);
	put_be(raw + 10, f->gen, 4);
	int rc = old_mac_over(mac, raw, 14, realm, src, f->flags & NONCE_F_IP, m);
	if (rc)
		return rc;
	memcpy(raw + 14, m, 16);
	b64u_enc(raw, NONCE_RAW, out);
	out[NONCE_LEN] = '\0';
	return 0;
}

static int old_nonce_open(EVP_MAC_CTX *mac, struct sw_str nonce, struct sw_str realm,
			  const struct sockaddr *src, struct nonce_fields *f)
{
	uint8_t raw[NONCE_RAW], m[32];
	if (nonce.len != NONCE_LEN || b64u_dec(nonce.p, NONCE_LEN, raw) < 0)
		return -EBADMSG;
	if (raw[0] >> 4 != NONCE_VERSION)
		return -EBADMSG;
	f->flags = raw[0] & 0x0f;
	f->t = (int64_t)get_be(raw + 1, 5);
	f->slot = (uint32_t)get_be(raw + 6, 4);
	f->gen = (uint32_t)get_be(raw + 10, 4);
	int rc = old_mac_over(mac, raw, 14, realm, src, f->flags & NONCE_F_IP, m);
	if (rc == -EINVAL)
		return -EPERM;
	if (rc)
		return rc;
	return sw_ct_eq(m, raw + 14, 16) ? 0 : -EPERM;
}

/* ================= old: digest.c as of ed9578f ================= */

static void old_tohex(const unsigned char *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int old_digest_join(EVP_MD_CTX *ctx, enum auth_hash h, const struct sw_str *parts, unsigned n,
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
	old_tohex(d, dl, out);
	rc = 0;
out:
	sw_cleanse(d, sizeof(d));
	EVP_MD_CTX_free(own);
	return rc;
}

static int old_digest_response(EVP_MD_CTX *ctx, const struct digest_in *in, char *out)
{
	enum auth_hash h = AUTH_ALGO_HASH(in->algo);
	char ha1s[DIGEST_HEX_MAX], ha2[DIGEST_HEX_MAX], hbody[DIGEST_HEX_MAX];
	struct sw_str ha1 = in->ha1;
	int rc;

	if (AUTH_ALGO_SESS(in->algo)) {
		struct sw_str a1[3] = { in->ha1, in->nonce, in->cnonce };
		rc = old_digest_join(ctx, h, a1, 3, ha1s);
		if (rc)
			goto out;
		ha1 = (struct sw_str){ ha1s, 2 * digest_len(h) };
	}
	if (in->qop.len == 8 && memcmp(in->qop.p, "auth-int", 8) == 0) {
		rc = old_digest_join(ctx, h, &in->body, 1, hbody);
		if (rc)
			goto out;
		struct sw_str a2[3] = { in->method, in->uri, { hbody, 2 * digest_len(h) } };
		rc = old_digest_join(ctx, h, a2, 3, ha2);
	} else {
		struct sw_str a2[2] = { in->method, in->uri };
		rc = old_digest_join(ctx, h, a2, 2, ha2);
	}
	if (rc)
		goto out;
	struct sw_str hx = { ha2, 2 * digest_len(h) };
	if (in->qop.len) {
		struct sw_str r[6] = { ha1, in->nonce, in->nc, in->cnonce, in->qop, hx };
		rc = old_digest_join(ctx, h, r, 6, out);
	} else {
		struct sw_str r[3] = { ha1, in->nonce, hx };
		rc = old_digest_join(ctx, h, r, 3, out);
	}
out:
	sw_cleanse(ha1s, sizeof(ha1s));
	return rc;
}

/* ================= the ops ================= */

/* What one authenticated REGISTER pair of bench/authbench costs in crypto:
 * realm bench.test, nonce issued at 1700000000, a cnonce like authbench's,
 * REGISTER sip:bench.test, nc 00000001, qop=auth. */
#define REALM "bench.test"

static EVP_MAC_CTX *g_old_mac;
static struct nonce_mac *g_new_mac;
static EVP_MD_CTX *g_md;
static struct sockaddr_in g_a4;
static struct sockaddr_in6 g_a6;
static char g_ha1[AUTH_H__COUNT][DIGEST_HEX_MAX];
static char g_body[301];
static char g_cnonce[128][24];      /* like authbench's, made before timing */
static volatile unsigned g_sink;

struct op {
	const char *name;
	enum auth_algo algo;      /* digest ops */
	int bind;                 /* nonce ops: 0 none, 4 IPv4, 6 IPv6 */
	bool nonce, digest;
	const char *qop;
};

static const struct op ops[] = {
	{ "nonce", 0, 0, true, false, NULL },
	{ "nonce-ip4", 0, 4, true, false, NULL },
	{ "nonce-ip6", 0, 6, true, false, NULL },
	{ "digest-MD5", AUTH_MD5, 0, false, true, "auth" },
	{ "digest-SHA-256", AUTH_SHA256, 0, false, true, "auth" },
	{ "digest-SHA-512-256", AUTH_SHA512_256, 0, false, true, "auth" },
	{ "digest-MD5-sess", AUTH_MD5_SESS, 0, false, true, "auth" },
	{ "digest-SHA-256-auth-int", AUTH_SHA256, 0, false, true, "auth-int" },
	{ "pair-MD5", AUTH_MD5, 0, true, true, "auth" },
	{ "pair-SHA-256", AUTH_SHA256, 0, true, true, "auth" },
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

static const struct sockaddr *op_src(const struct op *o)
{
	return o->bind == 4 ? (const struct sockaddr *)&g_a4 :
	       o->bind == 6 ? (const struct sockaddr *)&g_a6 : NULL;
}

/* One call = what the server does for one pair: nonce_make for the 401,
 * nonce_open for the authenticated REGISTER, then digest_response. out
 * gets the nonce and the response for the old/new comparison. */
static int run1(const struct op *o, bool old, uint32_t i, char *out)
{
	struct nonce_fields f = { .t = 1700000000, .slot = i, .gen = 1 + (i >> 16),
				  .flags = o->bind ? NONCE_F_IP : 0 }, g;
	char nonce[NONCE_LEN + 1] = "EABlU_EAAAAABQAAAAdCR6yxGOlTXNMG_IkoI1jW";
	char resp[DIGEST_HEX_MAX] = "";
	const struct sockaddr *src = op_src(o);
	int rc;

	if (o->nonce) {
		rc = old ? old_nonce_make(g_old_mac, &f, SW_STR_LIT(REALM), src, nonce) :
			   nonce_make(g_new_mac, &f, SW_STR_LIT(REALM), src, nonce);
		if (rc)
			return rc;
		rc = old ? old_nonce_open(g_old_mac, sw_str_mk(nonce, NONCE_LEN), SW_STR_LIT(REALM), src, &g) :
			   nonce_open(g_new_mac, sw_str_mk(nonce, NONCE_LEN), SW_STR_LIT(REALM), src, &g);
		if (rc || g.slot != f.slot)
			return rc ? rc : -EPROTO;
	}
	if (o->digest) {
		enum auth_hash h = AUTH_ALGO_HASH(o->algo);
		struct digest_in in = {
			.algo = o->algo,
			.ha1 = sw_str_mk(g_ha1[h], 2 * digest_len(h)),
			.nonce = sw_str_mk(nonce, NONCE_LEN),
			.cnonce = sw_str_c(g_cnonce[i & 127]),
			.nc = SW_STR_LIT("00000001"),
			.qop = sw_str_c(o->qop),
			.method = SW_STR_LIT("REGISTER"),
			.uri = SW_STR_LIT("sip:" REALM),
			.body = sw_str_mk(g_body, 300),
		};
		rc = old ? old_digest_response(g_md, &in, resp) : digest_response(g_md, &in, resp);
		if (rc)
			return rc;
	}
	if (out)
		snprintf(out, 2 * DIGEST_HEX_MAX, "%s %s", o->nonce ? nonce : "-", resp);
	g_sink += (unsigned)nonce[NONCE_LEN - 1] + (unsigned)resp[0];
	return 0;
}

/* The measured loop; callgrind's --toggle-collect names it. */
__attribute__((noinline)) static int measure(const struct op *o, bool old, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (run1(o, old, i, NULL))
			return -1;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void setup(void)
{
	uint8_t key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0xa5 ^ i);
	g_old_mac = old_mac_new(key, sizeof(key));
	g_new_mac = nonce_mac_new(key, sizeof(key));
	g_md = EVP_MD_CTX_new();
	if (!g_old_mac || !g_new_mac || !g_md) {
		fprintf(stderr, "cryptobench: OpenSSL setup failed\n");
		exit(1);
	}
	g_a4 = (struct sockaddr_in){ .sin_family = AF_INET };
	inet_pton(AF_INET, "127.0.1.7", &g_a4.sin_addr);
	g_a6 = (struct sockaddr_in6){ .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "2001:db8:85a3::8a2e:370:7334", &g_a6.sin6_addr);
	for (int h = 0; h < AUTH_H__COUNT; h++)
		if (digest_ha1(NULL, (enum auth_hash)h, SW_STR_LIT("u000001"), SW_STR_LIT(REALM),
			       SW_STR_LIT("pw000001"), g_ha1[h])) {
			fprintf(stderr, "cryptobench: HA1 failed\n");
			exit(1);
		}
	for (unsigned i = 0; i < 128; i++)
		snprintf(g_cnonce[i], sizeof(g_cnonce[i]), "c%08x%06x", i, i * 7919u & 0xffffff);
	for (int i = 0; i < 300; i++)
		g_body[i] = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"[i % 31];
}

/* Old and new give the same bytes (nonce and response) for 1000 calls. */
static void check_same(const struct op *o)
{
	for (uint32_t i = 0; i < 1000; i++) {
		char a[2 * DIGEST_HEX_MAX], b[2 * DIGEST_HEX_MAX];
		if (run1(o, true, i, a) || run1(o, false, i, b) || strcmp(a, b)) {
			fprintf(stderr, "cryptobench: %s: old and new differ at %u\n", o->name, i);
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	uint32_t n = 200000, rounds = 5;
	const char *only = NULL;
	int c;

	while ((c = getopt(argc, argv, "n:r:o:l")) != -1) {
		switch (c) {
		case 'n':
			n = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			only = optarg;
			break;
		case 'l':
			for (size_t i = 0; i < NOPS; i++)
				printf("%s/old\n%s/new\n", ops[i].name, ops[i].name);
			return 0;
		default:
			fprintf(stderr, "usage: cryptobench [-n N] [-r ROUNDS] [-l] [-o OP/old|OP/new]\n");
			return 2;
		}
	}
	if (!n || !rounds || rounds > 99)
		return 2;
	setup();
	for (size_t i = 0; i < NOPS; i++)
		check_same(&ops[i]);

	if (only) {
		const char *sl = strrchr(only, '/');
		for (size_t i = 0; sl && i < NOPS; i++) {
			if (strlen(ops[i].name) != (size_t)(sl - only) || strncmp(ops[i].name, only, (size_t)(sl - only)))
				continue;
			bool old = !strcmp(sl + 1, "old");
			run1(&ops[i], old, 0, NULL);   /* warm-up, outside measure() */
			uint64_t t0 = now_ns();
			if (measure(&ops[i], old, n))
				return 1;
			printf("%s %u calls %.1f ns/call\n", only, n, (double)(now_ns() - t0) / n);
			return 0;
		}
		fprintf(stderr, "cryptobench: no op %s (-l lists them)\n", only);
		return 2;
	}

	printf("%-26s %12s %12s %7s   (median of %u rounds x %u calls, old/new interleaved)\n",
	       "op (one call)", "old ns", "new ns", "new/old", rounds, n);
	for (size_t i = 0; i < NOPS; i++) {
		double t[2][99];
		run1(&ops[i], true, 0, NULL);
		run1(&ops[i], false, 0, NULL);
		for (uint32_t r = 0; r < rounds; r++)
			for (int v = 0; v < 2; v++) {
				bool old = (r & 1) ? v == 1 : v == 0;
				uint64_t t0 = now_ns();
				if (measure(&ops[i], old, n))
					return 1;
				t[old ? 0 : 1][r] = (double)(now_ns() - t0) / n;
			}
		qsort(t[0], rounds, sizeof(double), cmp_d);
		qsort(t[1], rounds, sizeof(double), cmp_d);
		double o = t[0][rounds / 2], w = t[1][rounds / 2];
		printf("%-26s %12.1f %12.1f %7.2f\n", ops[i].name, o, w, w / o);
	}
	nonce_mac_free(g_new_mac);
	EVP_MAC_CTX_free(g_old_mac);
	EVP_MD_CTX_free(g_md);
	return 0;
}
