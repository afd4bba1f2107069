/* libFuzzer target for Via values (one or more via-parms), and the list,
 * params, CSeq and decimal parsers they share (STYLE.md §11). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "sip/fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_bounds(struct sw_str s, const char *p, size_t n)
{
	if (s.p && s.len && (s.p < p || s.p + s.len > p + n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct sw_str rest = sw_str_mk(p, size), e;
	unsigned guard = 0;
	int r;

	while ((r = sip_list_next(&rest, &e)) == 1) {
		struct sip_via v;
		in_bounds(e, p, size);
		if (++guard > size + 1)
			abort();   /* the iterator must always advance */
		if (sip_via_parse(e, &v) == 0) {
			in_bounds(v.raw, p, size);
			if (!sw_str_eq(v.proto, SW_STR_LIT("SIP/2.0")))
				in_bounds(v.proto, p, size);
			in_bounds(v.transport, p, size);
			in_bounds(v.host, p, size);
			in_bounds(v.params, p, size);
			in_bounds(v.branch, p, size);
			in_bounds(v.received, p, size);
			in_bounds(v.maddr, p, size);
			if (v.host.len == 0 || v.transport.len == 0)
				abort();
		}
	}
	if (r != 0 && r != -EBADMSG)
		abort();

	struct sw_str ps = sw_str_mk(p, size);
	struct sip_param prm;
	guard = 0;
	while (sip_params_next(&ps, &prm) == 1) {
		in_bounds(prm.name, p, size);
		in_bounds(prm.value, p, size);
		if (prm.name.len == 0 || ++guard > size)
			abort();
	}

	struct sip_cseq c;
	if (sip_cseq_parse(sw_str_mk(p, size), &c) == 0)
		in_bounds(c.method_name, p, size);
	uint64_t u;
	(void)sip_uint_parse(sw_str_mk(p, size), UINT32_MAX, &u);
	char out[64];
	(void)sip_unescape(sw_str_mk(p, size), out, sizeof(out));
	return 0;
}
