#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <openssl/rand.h>

#include "base/siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);      \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                         \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                         \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);      \
	} while (0)

static uint64_t load64le(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* SipHash-2-4; wide = the 128-bit output variant (a second finalisation
 * after v1 ^= 0xdd), with v1 ^= 0xee at the start and v2 ^= 0xee instead
 * of 0xff, as in the reference implementation. */
static inline uint64_t sip24(const struct sw_hkey *key, const void *data, size_t len, bool wide,
			     uint64_t *hi)
{
	const unsigned char *in = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ key->k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ key->k1 ^ (wide ? 0xee : 0);
	uint64_t v2 = 0x6c7967656e657261ULL ^ key->k0;
	uint64_t v3 = 0x7465646279746573ULL ^ key->k1;
	size_t full = len & ~(size_t)7;

	for (size_t i = 0; i < full; i += 8) {
		uint64_t m = load64le(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)in[full + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= wide ? 0xee : 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	uint64_t lo = v0 ^ v1 ^ v2 ^ v3;
	if (wide) {
		v1 ^= 0xdd;
		SIPROUND;
		SIPROUND;
		SIPROUND;
		SIPROUND;
		*hi = v0 ^ v1 ^ v2 ^ v3;
	}
	return lo;
}

uint64_t sw_siphash(const struct sw_hkey *key, const void *data, size_t len)
{
	return sip24(key, data, len, false, NULL);
}

void sw_siphash128(const struct sw_hkey *key, const void *data, size_t len, uint64_t out[2])
{
	out[0] = sip24(key, data, len, true, &out[1]);
}

int sw_hkey_random(struct sw_hkey *key)
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	key->k0 = load64le(b);
	key->k1 = load64le(b + 8);
	memset(b, 0, sizeof(b));
	return 0;
}
