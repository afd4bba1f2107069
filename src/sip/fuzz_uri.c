/* libFuzzer target for the URI parser and comparison (STYLE.md §11):
 * no crash, every slice inside the input, and a SIP URI equals itself. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "base/str.h"
#include "sip/fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_bounds(struct sw_str s, const char *p, size_t n)
{
	if (s.p && s.len && (s.p < p || s.p + s.len > p + n))
		abort();
}

static void check(const struct sip_uri *u, const char *p, size_t n)
{
	in_bounds(u->raw, p, n);
	in_bounds(u->scheme_str, p, n);
	in_bounds(u->user, p, n);
	in_bounds(u->password, p, n);
	in_bounds(u->host, p, n);
	in_bounds(u->params, p, n);
	in_bounds(u->headers, p, n);
	in_bounds(u->transport, p, n);
	in_bounds(u->maddr, p, n);
	in_bounds(u->user_param, p, n);
	in_bounds(u->opaque, p, n);
	if ((u->scheme == SIP_URI_SIP || u->scheme == SIP_URI_SIPS) && !sip_uri_addr_eq(u, u))
		abort();
	if (u->scheme == SIP_URI_SIP || u->scheme == SIP_URI_SIPS) {
		char out[256];
		if (sip_unescape(u->user, out, sizeof(out)) == -EBADMSG)
			abort();   /* the parser validated every escape */
	}
	struct sw_str v;
	(void)sip_param_get(u->params, "transport", &v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct sip_uri a, b;

	int ra = sip_uri_parse(sw_str_mk(p, size), &a);
	if (ra == 0)
		check(&a, p, size);
	/* two URIs separated by the first '|' compare symmetrically */
	const char *bar = memchr(p, '|', size);
	if (bar) {
		size_t la = (size_t)(bar - p);
		if (sip_uri_parse(sw_str_mk(p, la), &a) == 0 &&
		    sip_uri_parse(sw_str_mk(bar + 1, size - la - 1), &b) == 0) {
			check(&a, p, la);
			check(&b, bar + 1, size - la - 1);
			if (sip_uri_addr_eq(&a, &b) != sip_uri_addr_eq(&b, &a))
				abort();
		}
	}
	return 0;
}
