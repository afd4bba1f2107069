#ifndef SW_SERVER_DEMO_H
#define SW_SERVER_DEMO_H

#include <stddef.h>

/* Write ./var/sipwarden.ini from the embedded default when absent and put
 * its path in path. 0 or -1 (reason printed). */
int demo_prepare(char *path, size_t cap);

#endif
