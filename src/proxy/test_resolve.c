/* RFC 2782 ordering of SRV records (resolve.c); the resolution itself is
 * tested end to end against a DNS server on loopback
 * (tests/integration/test_proxy.py). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/resolve.h"

static uint32_t rnd_value;
static uint32_t rnd_fixed(uint32_t bound)
{
	return rnd_value % bound;
}

static void test_priority_first(void **state)
{
	struct pxr_srv s[] = { { 20, 0, 1 }, { 10, 0, 2 }, { 30, 5, 3 }, { 10, 0, 4 } };
	unsigned idx[4];
	rnd_value = 0;
	pxr_srv_order(s, 4, idx, rnd_fixed);
	assert_int_equal(s[idx[0]].priority, 10);
	assert_int_equal(s[idx[1]].priority, 10);
	assert_int_equal(idx[2], 0);
	assert_int_equal(idx[3], 2);
}

/* Inside one priority the running sum of weights picks: with weights
 * 10 and 90, rnd 0..10 picks the first, 11..100 the second. */
static void test_weights(void **state)
{
	struct pxr_srv s[] = { { 1, 10, 1 }, { 1, 90, 2 } };
	unsigned idx[2];
	static const struct { uint32_t rnd; unsigned first; } rows[] = {
		{ 0, 0 }, { 5, 0 }, { 10, 0 }, { 11, 1 }, { 60, 1 }, { 100, 1 },
	};
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		rnd_value = rows[i].rnd;
		pxr_srv_order(s, 2, idx, rnd_fixed);
		assert_int_equal(idx[0], rows[i].first);
		assert_int_equal(idx[1], 1 - rows[i].first);
	}
}

/* Weight 0 comes first in the sums, so it is chosen only on rnd 0. */
static void test_zero_weight(void **state)
{
	struct pxr_srv s[] = { { 1, 50, 1 }, { 1, 0, 2 } };
	unsigned idx[2];
	rnd_value = 0;
	pxr_srv_order(s, 2, idx, rnd_fixed);
	assert_int_equal(idx[0], 1);
	rnd_value = 1;
	pxr_srv_order(s, 2, idx, rnd_fixed);
	assert_int_equal(idx[0], 0);
	assert_int_equal(idx[1], 1);
}

static void test_resolver_lifecycle(void **state)
{
	struct event_base *b = event_base_new();
	int err = 1;
	struct pxr *r = pxr_new(b, "127.0.0.1:9", NULL, NULL, &err);
	assert_non_null(r);
	assert_int_equal(err, 0);
	pxr_free(r);
	r = pxr_new(b, "not an address", NULL, NULL, &err);
	assert_null(r);
	assert_int_equal(err, -EINVAL);
	event_base_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_priority_first),
		cmocka_unit_test(test_weights),
		cmocka_unit_test(test_zero_weight),
		cmocka_unit_test(test_resolver_lifecycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
