/* Digest settings in the config file: [realm NAME], [profile NAME], [auth]
 * (issue 3). Called by the loader in config.c for every key of those
 * sections; the results land in sw_config.auth (auth/auth-t.h). */
#ifndef SW_CONFIG_AUTH_KEYS_H
#define SW_CONFIG_AUTH_KEYS_H

#include <stddef.h>
#include <stdio.h>
#include "config/config-t.h"

/* kind: "realm" | "profile" | "auth"; name: the section name or "".
 * 0, -ENOENT for an unknown key, or -EINVAL with a short reason in why
 * (the caller prefixes file:line). */
int config_auth_key(struct sw_config *c, const char *kind, const char *name,
		    const char *key, const char *value, char *why, size_t whycap);

/* Cross-checks once the whole file is read (profiles match something,
 * algorithm lists not emptied by md5 = deny, secrets consistent).
 * 0 or -EINVAL with why. */
int config_auth_finish(const struct sw_config *c, char *why, size_t whycap);

/* `sipwarden check`: warnings about weak digest choices; returns how many. */
unsigned config_auth_warn(const struct sw_config *c, FILE *out);

/* Settings of realm idx (defaults when the section set no digest key). */
const struct auth_realm_conf *config_auth_realm(const struct sw_config *c, unsigned idx);
void auth_realm_conf_defaults(struct auth_realm_conf *r);

/* "SHA-256" → AUTH_SHA256 (case-insensitive); -1 when unknown. */
int auth_algo_parse(struct sw_str s);
const char *auth_algo_name(unsigned algo);
/* "SHA-512-256, SHA-256-sess, MD5" */
int auth_alglist_parse(const char *value, struct auth_alglist *out, char *why, size_t whycap);

#endif
