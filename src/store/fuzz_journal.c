/* libFuzzer target for the binding journal reader (STYLE.md §11): any
 * file contents as a segment or a snapshot. No crash, every slice inside
 * the input, progress on every call, and each record read re-encodes to
 * the very bytes it came from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_bounds(struct sw_str s, const uint8_t *p, size_t n)
{
	if (s.len && ((const uint8_t *)s.p < p || (const uint8_t *)s.p + s.len > p + n))
		abort();
}

static uint8_t scratch[BJ_REC_HDR + BJ_REC_MAX];

static void read_all(const uint8_t *data, size_t size, size_t off)
{
	static struct bj_reader rd;
	struct bstore_rec rec;
	enum bj_next_rc rc;

	bj_reader_init(&rd, data, size, off);
	for (;;) {
		size_t before = rd.off;
		rc = bj_next(&rd, &rec);
		if (rc == BJ_END)
			break;
		if (rd.off <= before || rd.off > size || rd.good_end > rd.off)
			abort();
		if (rc == BJ_BAD) {
			if (rd.bad_off != before || rd.bad_len == 0 || !rd.bad_why ||
			    rd.bad_off + rd.bad_len != rd.off)
				abort();
			continue;
		}
		in_bounds(rec.aor, data, size);
		for (unsigned i = 0; i < rec.n; i++) {
			const struct bstore_binding *b = &rec.b[i];
			in_bounds(b->contact, data, size);
			in_bounds(b->instance, data, size);
			in_bounds(b->call_id, data, size);
			in_bounds(b->path, data, size);
			in_bounds(b->user_agent, data, size);
		}
		ssize_t n = bj_rec_encode(&rec, scratch, sizeof(scratch));
		if (n != (ssize_t)(rd.off - before) || memcmp(scratch, data + before, (size_t)n) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t gen;
	int seg = bj_hdr_check(data, size, BJ_SEGMENT, &gen);
	int snap = bj_hdr_check(data, size, BJ_SNAPSHOT, &gen);
	/* As the store does: after a good header, else from the first byte. */
	read_all(data, size, seg == 0 || snap == 0 ? BJ_HDR_LEN : 0);
	return 0;
}
