#ifndef SW_SERVER_DEMO_H
#define SW_SERVER_DEMO_H

#include <stddef.h>

/* Write ./var/sipwarden.ini from the embedded default when absent and put
 * its path in path. 1 when it was written now, 0 when it existed, -1 on
 * error (reason printed). */
int demo_prepare(char *path, size_t cap);
/* The demo's one user, 1000@demo.sipwarden.test, with a generated password
 * printed once. 0 or -1. */
struct sw_config;
int demo_user(const struct sw_config *cfg);

#endif
