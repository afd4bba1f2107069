/* Unit tests for base/str: the case-insensitive compare against a
 * byte-at-a-time reference, for every pair of octets at every position of
 * a word and in the tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"

static bool ref_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

static void test_ieq_all_octets(void **state)
{
	(void)state;
	char a[19], b[19];
	/* positions 0..7 lie in the first word, 8..15 in the second, 16..18
	 * in the tail */
	for (unsigned pos = 0; pos < sizeof(a); pos++) {
		for (unsigned x = 0; x < 256; x++) {
			for (unsigned y = 0; y < 256; y++) {
				memset(a, 'q', sizeof(a));
				memset(b, 'Q', sizeof(b));
				a[pos] = (char)x;
				b[pos] = (char)y;
				bool want = ref_ieq(a, b, sizeof(a));
				if (sw_str_ieq_n(a, b, sizeof(a)) != want)
					fail_msg("pos %u: 0x%02x vs 0x%02x", pos, x, y);
			}
		}
	}
	assert_true(sw_str_ieq_c(SW_STR_LIT("Proxy-Authorization"), "proxy-authorization"));
	assert_false(sw_str_ieq_c(SW_STR_LIT("Proxy-Authorization"), "proxy-authorizatioN "));
	assert_false(sw_str_ieq_c(SW_STR_LIT("[@`{"), "{`@["));   /* neighbours of the letters */
	assert_true(sw_str_ieq_c(SW_STR_LIT(""), ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ieq_all_octets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
