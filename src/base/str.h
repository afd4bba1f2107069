#ifndef SW_BASE_STR_H
#define SW_BASE_STR_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "base/str-t.h"

/* Inline (issue 6): on the request path these compare against literals,
 * so the compiler folds strlen() and a length mismatch costs one compare. */
static inline struct sw_str sw_str_c(const char *cstr)
{
	return (struct sw_str){ cstr, cstr ? strlen(cstr) : 0 };
}
static inline struct sw_str sw_str_mk(const char *p, size_t len)
{
	return (struct sw_str){ p, len };
}
static inline bool sw_str_present(struct sw_str s) { return s.p != NULL; }

static inline bool sw_str_eq(struct sw_str a, struct sw_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
/* ASCII case-insensitive equality (SIP tokens, header names, hosts). */
bool sw_str_ieq_n(const char *a, const char *b, size_t n);
static inline bool sw_str_ieq(struct sw_str a, struct sw_str b)
{
	return a.len == b.len && sw_str_ieq_n(a.p, b.p, a.len);
}
static inline bool sw_str_ieq_c(struct sw_str a, const char *cstr)
{
	return sw_str_ieq(a, sw_str_c(cstr));
}
bool sw_str_iprefix(struct sw_str s, const char *prefix);
struct sw_str sw_str_trim(struct sw_str s);   /* SP, HT, CR, LF both ends */
/* Decimal unsigned without sign; -ERANGE above max, -EINVAL on junk. */
int sw_str_to_u64(struct sw_str s, uint64_t max, uint64_t *out);
/* Copy into a NUL-terminated buffer; -ENOSPC when it does not fit. */
int sw_str_copy(struct sw_str s, char *dst, size_t cap);
/* Glob with '*' and '?' (case-insensitive), for User-Agent patterns. */
bool sw_glob_imatch(const char *pattern, struct sw_str s);

#endif
