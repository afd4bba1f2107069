#ifndef SW_CONFIG_CONFIG_H
#define SW_CONFIG_CONFIG_H

#include <stdio.h>
#include "config/config-t.h"

void config_defaults(struct sw_config *c);
/* Load and validate path. 0, or -EINVAL with diag naming file and line. */
int config_load(const char *path, struct sw_config *c, struct sw_config_diag *diag);
/* Print warnings about weak choices to out ("warning: FILE: …"); returns how many. */
unsigned config_check(const struct sw_config *c, FILE *out);
/* The realm serving host (case-insensitive), or NULL. */
const struct sw_realm *config_realm(const struct sw_config *c, const char *host, size_t len);

#endif
