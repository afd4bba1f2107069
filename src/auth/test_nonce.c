/* Stateless nonces (nonce.c): the HMAC-SHA-256 with its precomputed key
 * schedule against RFC 4231 and against OpenSSL's own HMAC (EVP_Q_mac) for
 * every key and message length that changes the construction's path;
 * golden v1 nonces and opaque (independently computed with Python's hmac
 * module) so the wire format cannot drift; round trips; every tampered
 * character and bit rejected; realm, secret and address binding; the
 * issue time as the caller's expiry check sees it; the slot table. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth/nonce.h"
#include "base/str.h"

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void unhex(const char *h, uint8_t *out, size_t *n)
{
	size_t l = strlen(h) / 2;
	for (size_t i = 0; i < l; i++) {
		unsigned v;
		assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	*n = l;
}

static void key32(uint8_t k[32])
{
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)i;
}

static struct nonce_mac *mac32(void)
{
	uint8_t k[32];
	key32(k);
	struct nonce_mac *m = nonce_mac_new(k, sizeof(k));
	assert_non_null(m);
	return m;
}

static struct sockaddr_in v4(const char *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(5060) };
	assert_int_equal(inet_pton(AF_INET, s, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6 v6(const char *s)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(5060) };
	assert_int_equal(inet_pton(AF_INET6, s, &a.sin6_addr), 1);
	return a;
}

#define SA(x) ((const struct sockaddr *)&(x))

/* ---- the HMAC itself ---- */

/* RFC 4231 §4.2-§4.8 (case 5 is truncated to 128 bits there). */
static const struct {
	const char *key, *data, *mac;   /* key, data in hex; data "" = text */
	const char *text;
} rfc4231[] = {
	{ "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", NULL,
	  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", "Hi There" },
	{ "4a656665", NULL, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
	  "what do ya want for nothing?" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
	  "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", NULL },
	{ "0102030405060708090a0b0c0d0e0f10111213141516171819",
	  "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
	  "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", NULL },
	{ "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", NULL, "a3b6167473100ee06e0c796c2955552b",
	  "Test With Truncation" },
	{ NULL, NULL, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
	  "Test Using Larger Than Block-Size Key - Hash Key First" },
	{ NULL, NULL, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
	  "This is a test using a larger than block-size key and a larger than block-size data. "
	  "The key needs to be hashed before being used by the HMAC algorithm." },
};

static void test_rfc4231(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc4231) / sizeof(rfc4231[0]); i++) {
		uint8_t key[200], data[200], want[32], got[32];
		size_t kl, dl, wl;
		if (rfc4231[i].key) {
			unhex(rfc4231[i].key, key, &kl);
		} else { /* cases 6 and 7: 131 bytes of 0xaa */
			kl = 131;
			memset(key, 0xaa, kl);
		}
		if (rfc4231[i].data) {
			unhex(rfc4231[i].data, data, &dl);
		} else {
			dl = strlen(rfc4231[i].text);
			memcpy(data, rfc4231[i].text, dl);
		}
		unhex(rfc4231[i].mac, want, &wl);
		struct nonce_mac *m = nonce_mac_new(key, kl);
		assert_non_null(m);
		assert_int_equal(nonce_hmac(m, data, dl, got), 0);
		if (memcmp(got, want, wl))
			fail_msg("RFC 4231 case %zu", i + 1);
		/* a worker's copy computes the same */
		struct nonce_mac *d = nonce_mac_dup(m);
		assert_non_null(d);
		memset(got, 0, sizeof(got));
		assert_int_equal(nonce_hmac(d, data, dl, got), 0);
		assert_memory_equal(got, want, wl);
		nonce_mac_free(d);
		nonce_mac_free(m);
	}
}

/* Key lengths around the block (64) and message lengths around one and
 * two compressions (55/56, 119/120): the same as OpenSSL's HMAC. */
static void test_vs_openssl_hmac(void **state)
{
	(void)state;
	static const size_t klens[] = { 0, 1, 16, 31, 32, 63, 64, 65, 100, 131, 200 };
	static const size_t mlens[] = { 0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 5000 };
	uint8_t key[200], *msg = malloc(5000);
	assert_non_null(msg);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < 5000; i++)
		msg[i] = (uint8_t)(i * 13 + 1);
	for (size_t a = 0; a < sizeof(klens) / sizeof(klens[0]); a++) {
		struct nonce_mac *m = nonce_mac_new(key, klens[a]);
		assert_non_null(m);
		for (size_t b = 0; b < sizeof(mlens) / sizeof(mlens[0]); b++) {
			uint8_t got[32], want[32];
			size_t wl = 0;
			assert_int_equal(nonce_hmac(m, msg, mlens[b], got), 0);
			/* EVP_Q_mac refuses a NULL key; a zero-length one is fine */
			assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, klens[a],
						  msg, mlens[b], want, sizeof(want), &wl));
			assert_int_equal(wl, 32);
			if (memcmp(got, want, 32))
				fail_msg("key %zu bytes, message %zu bytes", klens[a], mlens[b]);
		}
		nonce_mac_free(m);
	}
	free(msg);
	nonce_mac_free(NULL);
}

/* ---- golden nonces: v1 wire format, unchanged since issue 3 ----
 * key 00 01 .. 1f, t 1700000000, slot 5, gen 7, realm pbx.example.com;
 * HMAC-SHA-256(key, "sipwarden-nonce-v1\0" | 0x1F | t(5) | slot(4) |
 * gen(4) | 00 0f | realm | addr) computed with Python's hmac module. */
static void test_golden(void **state)
{
	(void)state;
	struct nonce_mac *m = mac32();
	struct sockaddr_in a4 = v4("192.0.2.1");
	struct sockaddr_in6 a6 = v6("2001:db8::1");
	static const struct {
		uint8_t flags;
		int fam;
		const char *want;
	} rows[] = {
		{ 0, 0, "EABlU_EAAAAABQAAAAdCR6yxGOlTXNMG_IkoI1jW" },
		{ NONCE_F_IP, AF_INET, "EQBlU_EAAAAABQAAAAcRGz_zeYni2-t-ApJLMCbT" },
		{ NONCE_F_IP, AF_INET6, "EQBlU_EAAAAABQAAAAdhag2rVjQDPY8a3CYjZE2V" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct sockaddr *src = rows[i].fam == AF_INET ? SA(a4) :
					     rows[i].fam == AF_INET6 ? SA(a6) : NULL;
		struct nonce_fields f = { .t = 1700000000, .slot = 5, .gen = 7, .flags = rows[i].flags }, o;
		char out[NONCE_LEN + 1];
		assert_int_equal(nonce_make(m, &f, SW_STR_LIT("pbx.example.com"), src, out), 0);
		assert_string_equal(out, rows[i].want);
		assert_int_equal(nonce_open(m, sw_str_c(rows[i].want), SW_STR_LIT("pbx.example.com"), src, &o), 0);
		assert_true(o.t == f.t && o.slot == 5 && o.gen == 7 && o.flags == f.flags);
	}
	/* opaque: base64url(HMAC(key, "sipwarden-opaque-v1\0" realm))[:22] */
	char op[23];
	assert_int_equal(nonce_opaque(m, SW_STR_LIT("pbx.example.com"), op), 0);
	assert_string_equal(op, "jSzebnBWvBaptrF6HjHgFN");
	nonce_mac_free(m);
}

/* The MAC of a nonce recomputed with OpenSSL's HMAC, for realms that take
 * the one-buffer path and the three-update path. */
static void ref_nonce(const uint8_t *key, size_t kl, const struct nonce_fields *f, struct sw_str realm,
		      const uint8_t *ab, size_t al, char out[NONCE_LEN + 1])
{
	uint8_t raw[30], msg[19 + 14 + 2 + 1024 + 17], mac[32];
	size_t n = 0, ml = 0;
	raw[0] = (uint8_t)(0x10 | f->flags);
	for (int i = 0; i < 5; i++)
		raw[1 + i] = (uint8_t)((uint64_t)f->t >> (8 * (4 - i)));
	for (int i = 0; i < 4; i++) {
		raw[6 + i] = (uint8_t)(f->slot >> (8 * (3 - i)));
		raw[10 + i] = (uint8_t)(f->gen >> (8 * (3 - i)));
	}
	memcpy(msg, "sipwarden-nonce-v1", 19);
	n = 19;
	memcpy(msg + n, raw, 14);
	n += 14;
	msg[n++] = (uint8_t)(realm.len >> 8);
	msg[n++] = (uint8_t)realm.len;
	assert_true(realm.len <= 1024);
	memcpy(msg + n, realm.p, realm.len);
	n += realm.len;
	memcpy(msg + n, ab, al);
	n += al;
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, kl, msg, n, mac, 32, &ml));
	memcpy(raw + 14, mac, 16);
	for (size_t i = 0, o = 0; i < 30; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
		out[o++] = b64u[v >> 18];
		out[o++] = b64u[(v >> 12) & 63];
		out[o++] = b64u[(v >> 6) & 63];
		out[o++] = b64u[v & 63];
	}
	out[NONCE_LEN] = '\0';
}

static void test_roundtrip(void **state)
{
	(void)state;
	uint8_t key[32];
	key32(key);
	struct nonce_mac *m = mac32();
	struct sockaddr_in a4 = v4("198.51.100.77");
	struct sockaddr_in6 a6 = v6("2001:db8:85a3::8a2e:370:7334");
	static const uint8_t ab4[5] = { 4, 198, 51, 100, 77 };
	uint8_t ab6[17] = { 6 };
	memcpy(ab6 + 1, a6.sin6_addr.s6_addr, 16);
	char longrealm[1025];
	memset(longrealm, 'r', 1024);
	longrealm[1024] = '\0';
	const char *realms[] = { "", "a", "pbx.example.com", "a-realm-that-is-forty-bytes-long.example", longrealm };
	const int64_t ts[] = { 0, 1, 1700000000, (1ll << 40) - 1 };
	const uint32_t sl[] = { 0, 1, 65535, 0xffffffffu };

	for (size_t r = 0; r < sizeof(realms) / sizeof(realms[0]); r++)
		for (size_t t = 0; t < sizeof(ts) / sizeof(ts[0]); t++)
			for (size_t s = 0; s < sizeof(sl) / sizeof(sl[0]); s++)
				for (int b = 0; b < 3; b++) {
					struct nonce_fields f = { .t = ts[t], .slot = sl[s], .gen = sl[3 - s],
								  .flags = b ? NONCE_F_IP : 0 }, o;
					const struct sockaddr *src = b == 1 ? SA(a4) : b == 2 ? SA(a6) : NULL;
					char out[NONCE_LEN + 1], want[NONCE_LEN + 1];
					struct sw_str realm = sw_str_c(realms[r]);
					assert_int_equal(nonce_make(m, &f, realm, src, out), 0);
					assert_int_equal(strlen(out), NONCE_LEN);
					ref_nonce(key, 32, &f, realm, b == 1 ? ab4 : ab6, b ? (b == 1 ? 5 : 17) : 0, want);
					assert_string_equal(out, want);
					memset(&o, 0xee, sizeof(o));
					assert_int_equal(nonce_open(m, sw_str_c(out), realm, src, &o), 0);
					assert_true(o.t == f.t && o.slot == f.slot && o.gen == f.gen && o.flags == f.flags);
				}
	/* a realm the 2-byte length cannot carry */
	char *huge = malloc(0x10000);
	assert_non_null(huge);
	memset(huge, 'x', 0x10000);
	struct nonce_fields f = { .t = 1 };
	char out[NONCE_LEN + 1];
	assert_int_equal(nonce_make(m, &f, sw_str_mk(huge, 0x10000), NULL, out), -EINVAL);
	assert_int_equal(nonce_make(m, &f, sw_str_mk(huge, 0xffff), NULL, out), 0);
	free(huge);
	nonce_mac_free(m);
}

/* Every character replaced by each of the 63 other base64url characters,
 * every bit of the 30 raw bytes flipped, bad characters and lengths: never
 * accepted. */
static void test_tamper(void **state)
{
	(void)state;
	struct nonce_mac *m = mac32();
	struct sockaddr_in a4 = v4("192.0.2.1");
	struct nonce_fields f = { .t = 1700000000, .slot = 42, .gen = 9, .flags = NONCE_F_IP }, o;
	const struct sw_str realm = SW_STR_LIT("pbx.example.com");
	char good[NONCE_LEN + 1], bad[NONCE_LEN + 1];
	assert_int_equal(nonce_make(m, &f, realm, SA(a4), good), 0);
	assert_int_equal(nonce_open(m, sw_str_c(good), realm, SA(a4), &o), 0);

	unsigned tried = 0;
	for (int i = 0; i < NONCE_LEN; i++)
		for (int c = 0; c < 64; c++) {
			if (b64u[c] == good[i])
				continue;
			memcpy(bad, good, sizeof(bad));
			bad[i] = b64u[c];
			int rc = nonce_open(m, sw_str_c(bad), realm, SA(a4), &o);
			if (rc != -EPERM && rc != -EBADMSG)
				fail_msg("char %d → %c accepted (%d)", i, b64u[c], rc);
			tried++;
		}
	assert_int_equal(tried, NONCE_LEN * 63);

	/* bit flips in the raw bytes, re-encoded */
	uint8_t raw[NONCE_RAW];
	for (int i = 0, o2 = 0; i < NONCE_LEN; i += 4) {
		uint32_t v = 0;
		for (int k = 0; k < 4; k++)
			v = v << 6 | (uint32_t)(strchr(b64u, good[i + k]) - b64u);
		raw[o2++] = (uint8_t)(v >> 16);
		raw[o2++] = (uint8_t)(v >> 8);
		raw[o2++] = (uint8_t)v;
	}
	for (int bit = 0; bit < NONCE_RAW * 8; bit++) {
		uint8_t r2[NONCE_RAW];
		memcpy(r2, raw, sizeof(r2));
		r2[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		for (size_t i = 0, o3 = 0; i < NONCE_RAW; i += 3) {
			uint32_t v = (uint32_t)r2[i] << 16 | (uint32_t)r2[i + 1] << 8 | r2[i + 2];
			bad[o3++] = b64u[v >> 18];
			bad[o3++] = b64u[(v >> 12) & 63];
			bad[o3++] = b64u[(v >> 6) & 63];
			bad[o3++] = b64u[v & 63];
		}
		bad[NONCE_LEN] = '\0';
		int rc = nonce_open(m, sw_str_c(bad), realm, SA(a4), &o);
		/* the flags bit: the unbound variant must fail its MAC too */
		if (rc != -EPERM && rc != -EBADMSG)
			fail_msg("bit %d accepted (%d)", bit, rc);
		rc = nonce_open(m, sw_str_c(bad), realm, NULL, &o);
		if (rc != -EPERM && rc != -EBADMSG)
			fail_msg("bit %d accepted without address (%d)", bit, rc);
	}

	/* shape */
	static const char *const shapes[] = { "+", "/", "=", " ", ".", "\"", "\xc3" };
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		memcpy(bad, good, sizeof(bad));
		bad[17] = shapes[s][0];
		assert_int_equal(nonce_open(m, sw_str_c(bad), realm, SA(a4), &o), -EBADMSG);
	}
	assert_int_equal(nonce_open(m, sw_str_mk(good, NONCE_LEN - 1), realm, SA(a4), &o), -EBADMSG);
	assert_int_equal(nonce_open(m, sw_str_mk(good, 0), realm, SA(a4), &o), -EBADMSG);
	assert_int_equal(nonce_open(m, SW_STR_NULL, realm, SA(a4), &o), -EBADMSG);
	char longer[NONCE_LEN + 5];
	snprintf(longer, sizeof(longer), "%sAAAA", good);
	assert_int_equal(nonce_open(m, sw_str_c(longer), realm, SA(a4), &o), -EBADMSG);
	/* another version nibble */
	memcpy(bad, good, sizeof(bad));
	bad[0] = 'I';   /* 0x20 >> 2: version 2 */
	assert_int_equal(nonce_open(m, sw_str_c(bad), realm, SA(a4), &o), -EBADMSG);
	nonce_mac_free(m);
}

static void test_realm_and_secret(void **state)
{
	(void)state;
	struct nonce_mac *m = mac32();
	struct nonce_fields f = { .t = 1700000000, .slot = 1, .gen = 1 }, o;
	char n[NONCE_LEN + 1];
	assert_int_equal(nonce_make(m, &f, SW_STR_LIT("pbx.example.com"), NULL, n), 0);
	static const char *const others[] = { "PBX.example.com", "pbx.example.co", "pbx.example.com.",
					      "", "pbx.example.org", "xpbx.example.com" };
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		assert_int_equal(nonce_open(m, sw_str_c(n), sw_str_c(others[i]), NULL, &o), -EPERM);

	/* another secret, one bit apart */
	uint8_t k[32];
	key32(k);
	k[31] ^= 1;
	struct nonce_mac *m2 = nonce_mac_new(k, sizeof(k));
	assert_non_null(m2);
	assert_int_equal(nonce_open(m2, sw_str_c(n), SW_STR_LIT("pbx.example.com"), NULL, &o), -EPERM);
	/* the opaque values differ per realm and per secret */
	char o1[23], o2[23], o3[23];
	assert_int_equal(nonce_opaque(m, SW_STR_LIT("pbx.example.com"), o1), 0);
	assert_int_equal(nonce_opaque(m, SW_STR_LIT("pbx.example.org"), o2), 0);
	assert_int_equal(nonce_opaque(m2, SW_STR_LIT("pbx.example.com"), o3), 0);
	assert_string_not_equal(o1, o2);
	assert_string_not_equal(o1, o3);
	assert_int_equal(strlen(o1), 22);
	nonce_mac_free(m2);
	nonce_mac_free(m);
}

static void test_ip_binding(void **state)
{
	(void)state;
	struct nonce_mac *m = mac32();
	const struct sw_str realm = SW_STR_LIT("pbx.example.com");
	struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2"), a_port = a;
	struct sockaddr_in6 a_mapped = v6("::ffff:192.0.2.1"), c = v6("2001:db8::1"), d = v6("2001:db8::2");
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct nonce_fields f = { .t = 1700000000, .slot = 3, .gen = 4, .flags = NONCE_F_IP }, o;
	char n4[NONCE_LEN + 1], n6[NONCE_LEN + 1], nfree[NONCE_LEN + 1];
	a_port.sin_port = htons(40000);

	assert_int_equal(nonce_make(m, &f, realm, SA(a), n4), 0);
	assert_int_equal(nonce_open(m, sw_str_c(n4), realm, SA(a), &o), 0);
	assert_int_equal(o.flags, NONCE_F_IP);
	assert_int_equal(nonce_open(m, sw_str_c(n4), realm, SA(a_port), &o), 0);   /* port is not bound */
	assert_int_equal(nonce_open(m, sw_str_c(n4), realm, SA(a_mapped), &o), 0); /* dual-stack socket */
	assert_int_equal(nonce_open(m, sw_str_c(n4), realm, SA(b), &o), -EPERM);
	assert_int_equal(nonce_open(m, sw_str_c(n4), realm, SA(c), &o), -EPERM);
	assert_int_equal(nonce_open(m, sw_str_c(n4), realm, NULL, &o), -EPERM);
	assert_int_equal(nonce_open(m, sw_str_c(n4), realm, (const struct sockaddr *)&un, &o), -EPERM);

	assert_int_equal(nonce_make(m, &f, realm, SA(c), n6), 0);
	assert_int_equal(nonce_open(m, sw_str_c(n6), realm, SA(c), &o), 0);
	assert_int_equal(nonce_open(m, sw_str_c(n6), realm, SA(d), &o), -EPERM);
	assert_int_equal(nonce_open(m, sw_str_c(n6), realm, SA(a), &o), -EPERM);

	/* bound without an address to bind to */
	assert_int_equal(nonce_make(m, &f, realm, NULL, nfree), -EINVAL);
	assert_int_equal(nonce_make(m, &f, realm, (const struct sockaddr *)&un, nfree), -EINVAL);

	/* unbound: any address */
	f.flags = 0;
	assert_int_equal(nonce_make(m, &f, realm, SA(a), nfree), 0);
	assert_int_equal(nonce_open(m, sw_str_c(nfree), realm, SA(b), &o), 0);
	assert_int_equal(nonce_open(m, sw_str_c(nfree), realm, SA(d), &o), 0);
	assert_int_equal(nonce_open(m, sw_str_c(nfree), realm, NULL, &o), 0);
	nonce_mac_free(m);
}

/* Expiry is the caller's rule over the issue time the MAC protects
 * (auth.c: now - t > nonce_lifetime → stale; t > now + skew → bad): the
 * time comes back exactly, and moving it is a forgery. */
static void test_expiry(void **state)
{
	(void)state;
	struct nonce_mac *m = mac32();
	const struct sw_str realm = SW_STR_LIT("pbx.example.com");
	const int64_t issued = 1700000000, lifetime = 300;
	struct nonce_fields f = { .t = issued, .slot = 8, .gen = 2 }, o;
	char n[NONCE_LEN + 1];
	assert_int_equal(nonce_make(m, &f, realm, NULL, n), 0);
	assert_int_equal(nonce_open(m, sw_str_c(n), realm, NULL, &o), 0);
	assert_true(o.t == issued);
	assert_false(issued + lifetime - o.t > lifetime);       /* at the limit: fresh */
	assert_true(issued + lifetime + 1 - o.t > lifetime);    /* one second on: stale */

	/* a client that rewrites the time to look fresh: characters 1-7
	 * carry t; re-encode it one lifetime later */
	uint8_t raw[NONCE_RAW];
	for (int i = 0, k = 0; i < NONCE_LEN; i += 4) {
		uint32_t v = 0;
		for (int j = 0; j < 4; j++)
			v = v << 6 | (uint32_t)(strchr(b64u, n[i + j]) - b64u);
		raw[k++] = (uint8_t)(v >> 16);
		raw[k++] = (uint8_t)(v >> 8);
		raw[k++] = (uint8_t)v;
	}
	uint64_t t2 = (uint64_t)(issued + lifetime);
	for (int i = 0; i < 5; i++)
		raw[1 + i] = (uint8_t)(t2 >> (8 * (4 - i)));
	char forged[NONCE_LEN + 1];
	for (size_t i = 0, k = 0; i < NONCE_RAW; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
		forged[k++] = b64u[v >> 18];
		forged[k++] = b64u[(v >> 12) & 63];
		forged[k++] = b64u[(v >> 6) & 63];
		forged[k++] = b64u[v & 63];
	}
	forged[NONCE_LEN] = '\0';
	assert_int_equal(nonce_open(m, sw_str_c(forged), realm, NULL, &o), -EPERM);
	nonce_mac_free(m);
}

/* The slot table (RFC 7616 §3.4.6 / §5.4): reuse makes a nonce stale, nc
 * must not repeat, a no-qop nonce is good once. */
static void test_slots(void **state)
{
	(void)state;
	struct nonce_tab *t = nonce_tab_new(10);   /* rounded up to 1024 */
	assert_non_null(t);
	uint32_t s0, g0, s, g;
	struct nonce_cursor cur = { 0 };
	nonce_tab_issue(t, &cur, &s0, &g0);
	assert_true(nonce_tab_live(t, s0, g0));
	assert_false(nonce_tab_live(t, s0, g0 + 1));
	assert_false(nonce_tab_live(t, 1u << 30, g0));

	static const struct {
		uint32_t nc;
		int rc;
	} seq[] = { { 1, 0 }, { 1, -EALREADY }, { 3, 0 }, { 2, 0 }, { 2, -EALREADY },
		    { 100, 0 }, { 37, 0 }, { 36, -EALREADY }, { 0, -EALREADY } };
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
		if (nonce_tab_use(t, s0, g0, seq[i].nc) != seq[i].rc)
			fail_msg("step %zu: nc %u", i, seq[i].nc);

	nonce_tab_issue(t, &cur, &s, &g);
	assert_int_equal(nonce_tab_use(t, s, g, 0), 0);
	assert_int_equal(nonce_tab_use(t, s, g, 0), -EALREADY);
	assert_int_equal(nonce_tab_use(t, s, g, 1), -EALREADY);

	/* 1024 more issues wrap round to s0 */
	for (int i = 0; i < 1023; i++)
		nonce_tab_issue(t, &cur, &s, &g);
	assert_int_equal(s, s0);
	assert_false(nonce_tab_live(t, s0, g0));
	assert_int_equal(nonce_tab_use(t, s0, g0, 101), -ESTALE);
	assert_int_equal(nonce_tab_use(t, s, g, 1), 0);
	assert_int_equal(nonce_tab_use(t, 1u << 30, g, 1), -ESTALE);
	nonce_tab_free(t);
	nonce_tab_free(NULL);
}

/* Two workers' cursors take disjoint runs of NONCE_CHUNK slots, and
 * together they still go round the whole ring before a slot is reused. */
static void test_slot_chunks(void **state)
{
	(void)state;
	struct nonce_tab *t = nonce_tab_new(1024);
	struct nonce_cursor a = { 0 }, b = { 0 };
	static bool used[1024];
	uint32_t s, g, first_a = 0, first_b = 0;
	assert_non_null(t);
	for (unsigned i = 0; i < 512; i++) {
		nonce_tab_issue(t, &a, &s, &g);
		if (i == 0)
			first_a = s;
		assert_false(used[s]);
		used[s] = true;
		nonce_tab_issue(t, &b, &s, &g);
		if (i == 0)
			first_b = s;
		assert_false(used[s]);
		used[s] = true;
		if (i < NONCE_CHUNK)
			assert_int_equal(s, first_b + i);   /* b's run is contiguous */
	}
	assert_int_equal(first_b - first_a, NONCE_CHUNK);
	nonce_tab_issue(t, &a, &s, &g);   /* the ring is round: a slot of the first runs */
	assert_true(s < 2 * NONCE_CHUNK);
	nonce_tab_free(t);
}

/* Fingerprints: a sealed nonce is known for its realm and (bound) address
 * only, a different text or a reissued slot is not, and a fingerprint is
 * not accepted for a generation it was not sealed for. */
static void test_slot_fingerprint(void **state)
{
	(void)state;
	struct nonce_tab *t = nonce_tab_new(1024);
	struct nonce_cursor c = { 0 };
	struct sockaddr_in a1 = { .sin_family = AF_INET }, a2 = { .sin_family = AF_INET };
	a1.sin_addr.s_addr = htonl(0xc0000201);
	a2.sin_addr.s_addr = htonl(0xc0000202);
	const struct sockaddr *s1 = (const struct sockaddr *)&a1, *s2 = (const struct sockaddr *)&a2;
	struct sw_str n1 = SW_STR_LIT("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1");
	struct sw_str n2 = SW_STR_LIT("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2");
	struct sw_str r1 = SW_STR_LIT("example.com"), r2 = SW_STR_LIT("example.org");
	struct nonce_fp fp, x;
	uint32_t s, g;
	assert_int_equal(n1.len, NONCE_LEN);

	nonce_tab_issue(t, &c, &s, &g);
	nonce_tab_fp(t, n1, r1, s1, true, &fp);
	assert_false(nonce_tab_known(t, s, g, &fp));   /* not sealed yet */
	nonce_tab_seal(t, s, g + 1, &fp);               /* another generation: ignored */
	assert_false(nonce_tab_known(t, s, g, &fp));
	nonce_tab_seal(t, s, g, &fp);
	assert_true(nonce_tab_known(t, s, g, &fp));
	assert_false(nonce_tab_known(t, s, g + 1, &fp));
	nonce_tab_fp(t, n2, r1, s1, true, &x);
	assert_false(nonce_tab_known(t, s, g, &x));
	nonce_tab_fp(t, n1, r2, s1, true, &x);
	assert_false(nonce_tab_known(t, s, g, &x));
	nonce_tab_fp(t, n1, r1, s2, true, &x);
	assert_false(nonce_tab_known(t, s, g, &x));
	nonce_tab_fp(t, n1, r1, s2, false, &x);        /* not bound: any address */
	nonce_tab_fp(t, n1, r1, s1, false, &fp);
	assert_memory_equal(&x, &fp, sizeof(fp));
	/* the slot's next generation forgets the fingerprint */
	nonce_tab_fp(t, n1, r1, s1, true, &fp);
	for (int i = 0; i < 1024; i++)
		nonce_tab_issue(t, &c, &s, &g);
	assert_false(nonce_tab_known(t, s, g, &fp));
	/* another table (restart, other node) has other keys */
	struct nonce_tab *u = nonce_tab_new(1024);
	nonce_tab_fp(u, n1, r1, s1, true, &x);
	assert_memory_not_equal(&x, &fp, sizeof(fp));
	nonce_tab_free(u);
	nonce_tab_free(t);
}

/* A restarted process (a new table) or another node must not find a
 * nonce's (slot, generation) live: generations start at random. */
static void test_slots_fresh_table(void **state)
{
	(void)state;
	struct nonce_tab *a = nonce_tab_new(1024), *b = nonce_tab_new(1024);
	assert_non_null(a);
	assert_non_null(b);
	unsigned live = 0;
	struct nonce_cursor ca = { 0 }, cb = { 0 };
	for (int i = 0; i < 1024; i++) {
		/* both hand out nonces; b's clients are others than a's */
		uint32_t s, g, sb, gb;
		nonce_tab_issue(a, &ca, &s, &g);
		nonce_tab_issue(b, &cb, &sb, &gb);
		live += nonce_tab_live(b, s, g);
		assert_int_equal(nonce_tab_use(b, s, g, 1), -ESTALE);
	}
	assert_int_equal(live, 0);
	nonce_tab_free(a);
	nonce_tab_free(b);
}

/* Resident KiB of this process (statm's second field, in pages). */
static long resident_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &res) != 2)
		res = -1;
	fclose(f);
	return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A table sized for millions of users costs nothing until its slots are
 * issued (generations start at computed offsets, not written ones), and
 * a slot far into it works like the first. */
static void test_slots_lazy(void **state)
{
	(void)state;
	long before = resident_kib();
	struct nonce_tab *t = nonce_tab_new(1u << 22);
	assert_non_null(t);
	assert_int_equal(nonce_tab_slots(t), 1u << 22);
	long after = resident_kib();
	/* 4M slots of 40 bytes: 160 MB if written at creation */
	assert_true(before > 0 && after > 0);
	if (after - before > 64 * 1024)
		fail_msg("creating the table made %ld KiB resident", after - before);
	struct nonce_cursor c = { .next = (1u << 22) - 3, .end = 1u << 22 };
	uint32_t s, g, s2, g2;
	nonce_tab_issue(t, &c, &s, &g);
	assert_int_equal(s, (1u << 22) - 3);
	assert_true(nonce_tab_live(t, s, g));
	assert_int_equal(nonce_tab_use(t, s, g, 1), 0);
	nonce_tab_issue(t, &c, &s2, &g2);
	assert_int_equal(s2, s + 1);
	assert_false(nonce_tab_live(t, s2, g));   /* each slot its own offset */
	assert_int_equal(nonce_tab_use(t, s2, g2, 1), 0);
	nonce_tab_free(t);
	struct nonce_tab *big = nonce_tab_new(UINT32_MAX);   /* capped */
	assert_non_null(big);
	assert_int_equal(nonce_tab_slots(big), NONCE_SLOTS_MAX);
	nonce_tab_free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4231),
		cmocka_unit_test(test_vs_openssl_hmac),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_realm_and_secret),
		cmocka_unit_test(test_ip_binding),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_slots_fresh_table),
		cmocka_unit_test(test_slots_lazy),
		cmocka_unit_test(test_slot_chunks),
		cmocka_unit_test(test_slot_fingerprint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
