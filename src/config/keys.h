/* Helpers shared by the per-section key parsers (auth_keys.c,
 * guard_keys.c, proxy_keys.c). */
#ifndef SW_CONFIG_KEYS_H
#define SW_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Format a reason into why (when given); returns -EINVAL, so a parser can
 * `return config_why(why, cap, "...")`. */
int config_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* yes/no, true/false, on/off, 1/0 (case-insensitive, surrounding blanks
 * ignored); 0 or -EINVAL. */
int config_yesno(const char *v, bool *out);

/* Is this the key (or option) called name? Key names are plain words,
 * some of which contain "nonce", "secret" or "password": this is never
 * a comparison of secret material (those use sw_ct_eq). */
static inline bool config_key_is(const char *key, const char *name)
{
	return strcmp(key, name) == 0;
}

#endif
