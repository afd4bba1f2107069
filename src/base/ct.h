/* The one constant-time compare for secrets (STYLE.md §9). */
#ifndef SW_BASE_CT_H
#define SW_BASE_CT_H

#include <stdbool.h>
#include <stddef.h>

/* True when a and b (both n bytes) are equal; time depends only on n. */
bool sw_ct_eq(const void *a, const void *b, size_t n);
/* Wipe secret material; not optimised away. */
void sw_cleanse(void *p, size_t n);

#endif
