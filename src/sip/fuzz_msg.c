/* libFuzzer target (STYLE.md §11): one datagram through sip_parse and,
 * when it parses, sip_validate_all; then the same bytes as a stream. */
#include <stdint.h>
#include <stddef.h>

#include "sip/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sip_hdr hdrs[128];
	struct sip_limits lim;
	struct sip_msg m;
	struct sip_perr err;
	const char *buf = (const char *)data;

	sip_limits_default(&lim);
	if (sip_parse(buf, size, SIP_PARSE_DGRAM, &lim, hdrs, 128, &m, &err) > 0)
		(void)sip_validate_all(&m, &err);
	ssize_t n = sip_parse(buf, size, SIP_PARSE_STREAM, &lim, hdrs, 128, &m, &err);
	if (n > 0) {
		if ((size_t)n > size)
			__builtin_trap();
		(void)sip_validate_all(&m, &err);
	}
	return 0;
}
