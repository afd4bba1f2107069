#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/str.h"

static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}


/* Eight octets with 'A'..'Z' lowered, the others unchanged (SWAR: a
 * byte's high bit says "at least 'A'" / "above 'Z'"; octets >= 0x80 are
 * left out by the final mask). */
static inline uint64_t lower8(uint64_t x)
{
	const uint64_t h = 0x8080808080808080ull, l7 = 0x7f7f7f7f7f7f7f7full;
	uint64_t v = x & l7;
	uint64_t ge_a = v + 0x3f3f3f3f3f3f3f3full;   /* 0x80 - 'A' */
	uint64_t gt_z = v + 0x2525252525252525ull;   /* 0x80 - 'Z' - 1 */
	uint64_t upper = ge_a & ~gt_z & ~x & h;
	return x | (upper >> 2);
}

bool sw_str_ieq_n(const char *a, const char *b, size_t n)
{
	/* Header and parameter names mostly arrive in the case they are
	 * compared with: a word at a time, folded only when it differs. */
	for (; n >= 8; a += 8, b += 8, n -= 8) {
		uint64_t x, y;
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y && lower8(x) != lower8(y))
			return false;
	}
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i] && lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

bool sw_str_iprefix(struct sw_str s, const char *prefix)
{
	size_t n = strlen(prefix);
	return s.len >= n && sw_str_ieq(sw_str_mk(s.p, n), sw_str_mk(prefix, n));
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct sw_str sw_str_trim(struct sw_str s)
{
	while (s.len && is_ws(s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len && is_ws(s.p[s.len - 1]))
		s.len--;
	return s;
}

int sw_str_to_u64(struct sw_str s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (s.len == 0)
		return -EINVAL;
	for (size_t i = 0; i < s.len; i++) {
		unsigned d = (unsigned char)s.p[i] - '0';
		if (d > 9)
			return -EINVAL;
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int sw_str_copy(struct sw_str s, char *dst, size_t cap)
{
	if (cap == 0 || s.len >= cap)
		return -ENOSPC;
	if (s.len)
		memcpy(dst, s.p, s.len);
	dst[s.len] = '\0';
	return 0;
}

static bool glob_at(const char *pat, const char *s, size_t len, unsigned depth)
{
	if (depth > 64)
		return false;
	for (; *pat; pat++) {
		if (*pat == '*') {
			while (pat[1] == '*')
				pat++;
			if (!pat[1])
				return true;
			for (size_t i = 0; i <= len; i++)
				if (glob_at(pat + 1, s + i, len - i, depth + 1))
					return true;
			return false;
		}
		if (len == 0)
			return false;
		if (*pat != '?' && lower(*pat) != lower(*s))
			return false;
		s++;
		len--;
	}
	return len == 0;
}

bool sw_glob_imatch(const char *pattern, struct sw_str s)
{
	return glob_at(pattern, s.p ? s.p : "", s.len, 0);
}
