/* Unit tests for the longest-prefix IP access list (ipacl.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth/ipacl.h"
#include "base/str.h"

static void sa_of(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;
	if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
	in6->sin6_family = AF_INET6;
}

static void add(struct sw_ipacl *a, const char *cidr, int32_t v)
{
	struct sw_cidr c;
	assert_int_equal(sw_cidr_parse(sw_str_c(cidr), &c), 0);
	assert_int_equal(sw_ipacl_add(a, &c, v), 0);
}

static void test_table(void **state)
{
	(void)state;
	struct sw_ipacl *a = sw_ipacl_new();
	assert_non_null(a);
	add(a, "203.0.113.0/24", 1);
	add(a, "203.0.113.128/25", 2);
	add(a, "203.0.113.200", 3);
	add(a, "10.0.0.0/8", 4);
	add(a, "2001:db8::/32", 5);
	add(a, "2001:db8:1::/48", 6);
	static const struct {
		const char *ip;
		int32_t want;
		unsigned bits;
	} rows[] = {
		{ "203.0.113.1", 1, 96 + 24 },
		{ "203.0.113.129", 2, 96 + 25 },
		{ "203.0.113.200", 3, 128 },
		{ "203.0.114.1", -1, 0 },
		{ "10.255.255.255", 4, 104 },
		{ "11.0.0.0", -1, 0 },
		{ "2001:db8::1", 5, 32 },
		{ "2001:db8:1:2::1", 6, 48 },
		{ "2001:db9::1", -1, 0 },
		{ "::ffff:203.0.113.7", 1, 120 }, /* v4-mapped source, v4 prefix */
		{ "::1", -1, 0 },
	};
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage ss;
		unsigned bits = 999;
		sa_of(rows[i].ip, &ss);
		int32_t v = sw_ipacl_lookup_len(a, (const struct sockaddr *)&ss, &bits);
		if (v != rows[i].want || bits != rows[i].bits)
			fail_msg("%s: got %d/%u, want %d/%u", rows[i].ip, v, bits, rows[i].want,
				 rows[i].bits);
	}
	assert_int_equal(sw_ipacl_count(a), 6);
	sw_ipacl_free(a);
}

static void test_duplicates_and_default(void **state)
{
	(void)state;
	struct sw_ipacl *a = sw_ipacl_new();
	struct sw_cidr c;
	struct sockaddr_storage ss;
	assert_int_equal(sw_cidr_parse(sw_str_c("192.0.2.0/24"), &c), 0);
	assert_int_equal(sw_ipacl_add(a, &c, 1), 0);
	assert_int_equal(sw_ipacl_add(a, &c, 2), -EEXIST);
	assert_int_equal(sw_ipacl_add(a, &c, -5), -EINVAL);
	sa_of("192.0.2.9", &ss);
	assert_int_equal(sw_ipacl_lookup(a, (const struct sockaddr *)&ss), 1);
	/* ::/0 is the default route of the whole key space, IPv4 included */
	add(a, "::/0", 7);
	sa_of("198.51.100.1", &ss);
	assert_int_equal(sw_ipacl_lookup(a, (const struct sockaddr *)&ss), 7);
	sa_of("192.0.2.9", &ss);
	assert_int_equal(sw_ipacl_lookup(a, (const struct sockaddr *)&ss), 1);
	/* 0.0.0.0/0 covers IPv4 only */
	struct sw_ipacl *b = sw_ipacl_new();
	add(b, "0.0.0.0/0", 9);
	sa_of("8.8.8.8", &ss);
	assert_int_equal(sw_ipacl_lookup(b, (const struct sockaddr *)&ss), 9);
	sa_of("2001:db8::1", &ss);
	assert_int_equal(sw_ipacl_lookup(b, (const struct sockaddr *)&ss), -1);
	struct sockaddr un = { .sa_family = AF_UNIX };
	assert_int_equal(sw_ipacl_lookup(b, &un), -1);
	sw_ipacl_free(b);
	sw_ipacl_free(a);
}

/* Thousands of random prefixes against a brute-force longest match. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

#define NPFX 5000

static void test_random_vs_bruteforce(void **state)
{
	(void)state;
	static struct sw_cidr list[NPFX];
	static int32_t val[NPFX];
	unsigned n = 0;
	struct sw_ipacl *a = sw_ipacl_new();
	while (n < NPFX) {
		struct sw_cidr c = { 0 };
		if (rnd() & 1) {
			c.family = AF_INET;
			c.bits = (uint8_t)(8 + rnd() % 25);
			uint32_t ip = htonl((10u << 24) | (rnd() & 0x00ffffffu));
			memcpy(c.addr, &ip, 4);
		} else {
			c.family = AF_INET6;
			c.bits = (uint8_t)(16 + rnd() % 113);
			c.addr[0] = 0x20;
			c.addr[1] = 0x01;
			for (int i = 2; i < 16; i++)
				c.addr[i] = (uint8_t)(i < 6 ? rnd() & 3 : rnd());
		}
		/* zero host bits the way sw_cidr_parse does */
		unsigned maxb = c.family == AF_INET ? 32 : 128;
		for (unsigned i = 0; i < maxb / 8; i++) {
			unsigned lo = i * 8;
			if (lo >= c.bits)
				c.addr[i] = 0;
			else if (lo + 8 > c.bits)
				c.addr[i] &= (uint8_t)(0xff << (8 - (c.bits - lo)));
		}
		if (sw_ipacl_add(a, &c, (int32_t)n) == -EEXIST)
			continue;
		list[n] = c;
		val[n] = (int32_t)n;
		n++;
	}
	assert_int_equal(sw_ipacl_count(a), NPFX);
	for (unsigned t = 0; t < 20000; t++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		if (t & 1) {
			struct sockaddr_in *in = (void *)&ss;
			in->sin_family = AF_INET;
			in->sin_addr.s_addr = htonl((10u << 24) | (rnd() & 0x00ffffffu));
		} else {
			struct sockaddr_in6 *in6 = (void *)&ss;
			in6->sin6_family = AF_INET6;
			/* start from a listed prefix so that matches happen */
			const struct sw_cidr *c = &list[rnd() % NPFX];
			if (c->family == AF_INET6)
				memcpy(in6->sin6_addr.s6_addr, c->addr, 16);
			in6->sin6_addr.s6_addr[0] = 0x20;
			in6->sin6_addr.s6_addr[1] = 0x01;
			in6->sin6_addr.s6_addr[15] ^= (uint8_t)rnd();
		}
		int32_t want = -1;
		int best = -1;
		for (unsigned i = 0; i < n; i++)
			if (sw_cidr_match(&list[i], (const struct sockaddr *)&ss) &&
			    (int)list[i].bits + (list[i].family == AF_INET ? 96 : 0) > best) {
				best = list[i].bits + (list[i].family == AF_INET ? 96 : 0);
				want = val[i];
			}
		assert_int_equal(sw_ipacl_lookup(a, (const struct sockaddr *)&ss), want);
	}
	sw_ipacl_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_duplicates_and_default),
		cmocka_unit_test(test_random_vs_bruteforce),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
