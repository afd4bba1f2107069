/* SipHash-2-4: keyed hash for every table indexed by attacker data
 * (IPs, usernames, Call-IDs, branches) — DESIGN.md "Architecture". */
#ifndef SW_BASE_SIPHASH_H
#define SW_BASE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct sw_hkey {
	uint64_t k0, k1;
};

uint64_t sw_siphash(const struct sw_hkey *key, const void *data, size_t len);
/* The 128-bit output variant (one pass; out[0] = the first 8 output bytes
 * read little-endian, out[1] the next 8). */
void sw_siphash128(const struct sw_hkey *key, const void *data, size_t len, uint64_t out[2]);
/* Fill a key from the OS CSPRNG; 0 or -errno. */
int sw_hkey_random(struct sw_hkey *key);

#endif
