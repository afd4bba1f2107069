#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "base/str.h"
#include "config/keys.h"

int config_why(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	if (why && cap) {
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int config_yesno(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	struct sw_str s = sw_str_trim(sw_str_c(v));
	for (unsigned i = 0; i < 4; i++) {
		if (sw_str_ieq_c(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (sw_str_ieq_c(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}
