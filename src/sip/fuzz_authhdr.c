/* libFuzzer target: auth header bodies (STYLE.md §11). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sip/authhdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sip_auth a;
	char buf[512];
	struct sw_str v = { (const char *)data, size };

	if (sip_auth_parse(v, &a) == 0) {
		for (int i = 0; i < SIP_AP__COUNT; i++) {
			struct sw_str r;
			if (!a.v[i].p)
				continue;
			/* Every slice lies inside the input. */
			if (a.v[i].p < v.p || a.v[i].p + a.v[i].len > v.p + v.len)
				abort();
			if (sip_auth_unq(&a, (enum sip_ap)i, buf, sizeof(buf), &r) == 0 && r.len > a.v[i].len)
				abort();
		}
		if (a.v[SIP_AP_USERNAME_EXT].p)
			(void)sip_auth_extvalue(a.v[SIP_AP_USERNAME_EXT], buf, sizeof(buf));
	}
	return 0;
}
