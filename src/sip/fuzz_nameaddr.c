/* libFuzzer target for name-addr / addr-spec (From, To, Route...) and
 * Contact lists (STYLE.md §11): no crash, slices inside the input,
 * cached values in their documented ranges. */
#include <stdint.h>
#include <stdlib.h>

#include "base/str.h"
#include "sip/fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_bounds(struct sw_str s, const char *p, size_t n)
{
	if (s.p && s.len && (s.p < p || s.p + s.len > p + n))
		abort();
}

static void check(const struct sip_nameaddr *na, const char *p, size_t n)
{
	in_bounds(na->raw, p, n);
	in_bounds(na->display, p, n);
	in_bounds(na->uri.raw, p, n);
	in_bounds(na->params, p, n);
	in_bounds(na->tag, p, n);
	in_bounds(na->instance, p, n);
	if (na->q < -1 || na->q > 1000 || na->expires < -1 || na->expires > UINT32_MAX ||
	    na->reg_id < -1 || na->reg_id > INT32_MAX)
		abort();
	if (!na->star && na->uri.raw.len == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct sip_nameaddr na;

	if (sip_nameaddr_parse(sw_str_mk(p, size), &na) == 0)
		check(&na, p, size);

	struct sw_str rest = sw_str_mk(p, size), e;
	while (sip_list_next(&rest, &e) == 1) {
		in_bounds(e, p, size);
		if (sip_contact_parse(e, &na) == 0)
			check(&na, p, size);
	}
	return 0;
}
