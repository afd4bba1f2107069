/* [guard] settings (issue 5): defaults and the keys of the section. The
 * results land in sw_config.guard (guard/guard-t.h); config.c calls
 * guard_conf_default from config_defaults and config_guard_key for every
 * key of [guard]. */
#ifndef SW_CONFIG_GUARD_KEYS_H
#define SW_CONFIG_GUARD_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "guard/guard-t.h"

struct sw_config;

/* Secure defaults: everything on, geo off (no DB). */
void guard_conf_default(struct sw_guard_conf *g);
/* One key of [guard]: 0, -ENOENT for an unknown key, or -EINVAL with a
 * short reason in why (the caller prefixes file:line). */
int guard_conf_key(struct sw_guard_conf *g, const char *key, const char *value, char *why,
		   size_t whycap);
/* Checks across keys once the file is read; 0 or -EINVAL with why. */
int guard_conf_finish(const struct sw_guard_conf *g, char *why, size_t whycap);
/* `sipwarden check`: notes and warnings about [guard]; returns warnings. */
unsigned guard_conf_warn(const struct sw_guard_conf *g, const char *path, FILE *out);

/* The same on a whole config (c->guard). */
int config_guard_key(struct sw_config *c, const char *key, const char *value, char *why,
		     size_t whycap);

/* "90" (seconds), "30s", "10m", "1h", "2d" → seconds; 0 or -EINVAL. */
int guard_duration_parse(const char *s, uint32_t *out);

#endif
