/* libFuzzer target (STYLE.md §11): TCP framing fed incrementally. The
 * first bytes are chunk sizes; the rest is the stream, delivered in those
 * chunks into a fixed buffer the way a transport would, framing and
 * parsing every complete message and dropping it from the buffer. The
 * frame length must not depend on where the chunks were cut. */
#include <errno.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "sip/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCHUNK 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[70000];
	static struct sip_hdr hdrs[128];
	struct sip_limits lim;
	struct sip_perr err;
	struct sip_msg m;

	if (size < NCHUNK)
		return 0;
	sip_limits_default(&lim);
	lim.max_msg = 4096;
	const uint8_t *cut = data;
	const char *in = (const char *)data + NCHUNK;
	size_t inlen = size - NCHUNK, off = 0, have = 0;
	unsigned ci = 0;

	while (off < inlen) {
		size_t c = (size_t)cut[ci++ % NCHUNK] + 1;
		if (c > inlen - off)
			c = inlen - off;
		if (have + c > sizeof(buf))
			return 0;
		memcpy(buf + have, in + off, c);
		have += c;
		off += c;
		for (;;) {
			ssize_t n = sip_frame(buf, have, &lim, &err);
			if (n == -EAGAIN)
				break;
			if (n < 0)
				return 0;   /* the transport closes the connection */
			if ((size_t)n > have || n == 0)
				__builtin_trap();
			/* whole-buffer framing gives the same length */
			ssize_t n2 = sip_parse(buf, have, SIP_PARSE_STREAM, &lim, hdrs, 128, &m, &err);
			if (n2 > 0 && n2 != n)
				__builtin_trap();
			if (n2 > 0)
				(void)sip_validate_all(&m, &err);
			memmove(buf, buf + n, have - (size_t)n);
			have -= (size_t)n;
		}
	}
	return 0;
}
