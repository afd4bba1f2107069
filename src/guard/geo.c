/* MaxMind DB country lookups (see geo.h). */
#include <errno.h>
#include <maxminddb.h>
#include <stdlib.h>
#include <string.h>

#include "guard/geo.h"

struct guard_geo {
	MMDB_s mmdb;
};

int geo_open(const char *path, struct guard_geo **out)
{
	struct guard_geo *geo = calloc(1, sizeof(*geo));
	if (!geo)
		return -ENOMEM;
	int rc = MMDB_open(path, MMDB_MODE_MMAP, &geo->mmdb);
	if (rc != MMDB_SUCCESS) {
		free(geo);
		return rc == MMDB_FILE_OPEN_ERROR ? -ENOENT : rc == MMDB_OUT_OF_MEMORY_ERROR ? -ENOMEM : -EINVAL;
	}
	*out = geo;
	return 0;
}

void geo_close(struct guard_geo *geo)
{
	if (!geo)
		return;
	MMDB_close(&geo->mmdb);
	free(geo);
}

static int iso_code(MMDB_entry_s *entry, const char *where, char cc[3])
{
	MMDB_entry_data_s d;
	if (MMDB_get_value(entry, &d, where, "iso_code", NULL) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
		return -ENOENT;
	for (int i = 0; i < 2; i++) {
		char ch = d.utf8_string[i];
		cc[i] = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
	}
	cc[2] = '\0';
	return 0;
}

int geo_country(struct guard_geo *geo, const struct sockaddr *sa, char cc[3])
{
	int mmdb_err = 0;
	MMDB_lookup_result_s res = MMDB_lookup_sockaddr(&geo->mmdb, sa, &mmdb_err);
	if (mmdb_err != MMDB_SUCCESS || !res.found_entry)
		return -ENOENT;
	/* GeoLite2-Country: "country", else the registered country (anycast,
	 * satellite providers). */
	if (iso_code(&res.entry, "country", cc) == 0)
		return 0;
	return iso_code(&res.entry, "registered_country", cc);
}
