/* Slices: a pointer and a length into someone else's buffer (STYLE.md §1). */
#ifndef SW_BASE_STR_T_H
#define SW_BASE_STR_T_H

#include <stddef.h>

struct sw_str {
	const char *p;
	size_t len;
};

#define SW_STR_NULL ((struct sw_str){ NULL, 0 })
#define SW_STR_LIT(s) ((struct sw_str){ (s), sizeof(s) - 1 })
/* printf("%.*s", SW_STR_FMT(s)) */
#define SW_STR_FMT(s) (int)(s).len, (s).p

#endif
