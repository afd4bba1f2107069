/* Proxy settings in the config file (issue 4): [upstream NAME],
 * [trunk NAME] and [proxy]. Called by the loader in config.c for every key
 * of those sections; the results land in sw_config.proxy (proxy/proxy-t.h). */
#ifndef SW_CONFIG_PROXY_KEYS_H
#define SW_CONFIG_PROXY_KEYS_H

#include <stddef.h>
#include "config/config-t.h"

void proxy_conf_default(struct sw_proxy_conf *p);

/* kind: "upstream" | "trunk" | "proxy"; name: the section name or "".
 * 0, -ENOENT for an unknown key, or -EINVAL with a short reason in why
 * (the caller prefixes file:line). */
int config_proxy_key(struct sw_config *c, const char *kind, const char *name,
		     const char *key, const char *value, char *why, size_t whycap);

/* Cross-checks once the whole file is read (every upstream has a uri,
 * every trunk a way to admit it). 0 or -EINVAL with why. */
int config_proxy_finish(struct sw_config *c, char *why, size_t whycap);

/* "sip:HOST[:PORT][;transport=udp|tcp]" → hop. 0 or -EINVAL with why. */
int proxy_hop_parse(const char *uri, struct proxy_hop *h, char *why, size_t whycap);

#endif
