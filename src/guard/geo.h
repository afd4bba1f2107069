/* Country lookup in a MaxMind DB (GeoLite2-Country format) via
 * libmaxminddb. The opened DB is read-only and safe to share between
 * threads (libmaxminddb docs: MMDB_s is not modified by lookups). */
#ifndef SW_GUARD_GEO_H
#define SW_GUARD_GEO_H

#include <sys/socket.h>

struct guard_geo;

/* 0, -ENOENT (no such file), -EINVAL (not a MaxMind DB) or -ENOMEM. */
int geo_open(const char *path, struct guard_geo **out);
void geo_close(struct guard_geo *geo);
/* ISO 3166-1 alpha-2 code, upper-case, into cc[3]: 0, or -ENOENT when the
 * DB has no country for the address. */
int geo_country(struct guard_geo *geo, const struct sockaddr *sa, char cc[3]);

#endif
