/* Binding journal record format: see journal.h for the layout.
 *
 * CRC32C is written here rather than taken from a library: Debian ships
 * no CRC32C in the libraries we already link (OpenSSL and SQLite have
 * none), and the hardware instruction plus a bitwise fallback is a few
 * lines. The reader trusts nothing: every length is checked against the
 * record and the record against BJ_REC_MAX before a byte is used. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "store/journal.h"

static const uint8_t seg_magic[4] = { 'S', 'W', 'B', 'J' };
static const uint8_t snap_magic[4] = { 'S', 'W', 'B', 'S' };
static const uint8_t rec_magic[4] = { 'S', 'W', 'r', '1' };

/* ---- CRC32C ---- */

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = ~crc;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return ~c32;
}

static bool have_hw(void)
{
	return __builtin_cpu_supports("sse4.2");
}
#else
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	return crc32c_sw(crc, p, n);
}

static bool have_hw(void)
{
	return false;
}
#endif

uint32_t sw_crc32c(uint32_t crc, const void *p, size_t n)
{
	/* Threads racing on the first call compute the same answer. */
	static _Atomic int hw = -1;
	int v = atomic_load_explicit(&hw, memory_order_relaxed);
	if (v < 0) {
		v = have_hw();
		atomic_store_explicit(&hw, v, memory_order_relaxed);
	}
	return v ? crc32c_hw(crc, p, n) : crc32c_sw(crc, p, n);
}

/* ---- little-endian helpers ---- */

static uint8_t *put16(uint8_t *w, uint16_t v)
{
	w[0] = (uint8_t)v;
	w[1] = (uint8_t)(v >> 8);
	return w + 2;
}

static uint8_t *put32(uint8_t *w, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		w[i] = (uint8_t)(v >> (8 * i));
	return w + 4;
}

static uint8_t *put64(uint8_t *w, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		w[i] = (uint8_t)(v >> (8 * i));
	return w + 8;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* family on disk: 0, 4 or 6 (AF_* values differ between systems) */
#define FAM_V4 4
#define FAM_V6 6
/* AF_INET / AF_INET6 on Linux; the store is only built there. */
#define SW_AF_INET 2
#define SW_AF_INET6 10

static size_t addr_len(uint8_t family)
{
	return family == SW_AF_INET ? 4 : family == SW_AF_INET6 ? 16 : 0;
}

/* fixed part of a binding: expires, cseq, reg_id, q, port, worker, proto, family */
#define BIND_FIXED (8 + 4 + 4 + 2 + 2 + 2 + 1 + 1 + 10)

/* ---- encoder ---- */

static size_t body_size(const struct bstore_rec *r)
{
	if (r->n > BSTORE_MAX_BINDINGS || r->aor.len > 0xFFFF)
		return 0;
	size_t n = 8 + 2 + 2 + r->aor.len;
	for (unsigned i = 0; i < r->n; i++) {
		const struct bstore_binding *b = &r->b[i];
		const struct sw_str *s[5] = { &b->contact, &b->instance, &b->call_id, &b->path,
					      &b->user_agent };
		if (b->family != 0 && b->family != SW_AF_INET && b->family != SW_AF_INET6)
			return 0;
		n += BIND_FIXED + addr_len(b->family);
		for (int k = 0; k < 5; k++) {
			if (s[k]->len > 0xFFFF)
				return 0;
			n += s[k]->len;
		}
	}
	return n > BJ_REC_MAX ? 0 : n;
}

size_t bj_rec_size(const struct bstore_rec *r)
{
	size_t n = body_size(r);
	return n ? BJ_REC_HDR + n : 0;
}

static uint8_t *put_bytes(uint8_t *w, struct sw_str s)
{
	if (s.len)
		memcpy(w, s.p, s.len);
	return w + s.len;
}

ssize_t bj_rec_encode(const struct bstore_rec *r, uint8_t *out, size_t cap)
{
	size_t body = body_size(r);
	if (!body)
		return -EINVAL;
	if (cap < BJ_REC_HDR + body)
		return -EMSGSIZE;
	uint8_t *w = out + BJ_REC_HDR;
	w = put64(w, r->seq);
	w = put16(w, (uint16_t)r->aor.len);
	w = put16(w, (uint16_t)r->n);
	w = put_bytes(w, r->aor);
	for (unsigned i = 0; i < r->n; i++) {
		const struct bstore_binding *b = &r->b[i];
		w = put64(w, (uint64_t)b->expires_at);
		w = put32(w, b->cseq);
		w = put32(w, (uint32_t)b->reg_id);
		w = put16(w, (uint16_t)b->q);
		w = put16(w, b->port);
		w = put16(w, b->worker);
		*w++ = b->proto;
		*w++ = b->family == SW_AF_INET ? FAM_V4 : b->family == SW_AF_INET6 ? FAM_V6 : 0;
		size_t al = addr_len(b->family);
		memcpy(w, b->addr, al);
		w += al;
		w = put16(w, (uint16_t)b->contact.len);
		w = put16(w, (uint16_t)b->instance.len);
		w = put16(w, (uint16_t)b->call_id.len);
		w = put16(w, (uint16_t)b->path.len);
		w = put16(w, (uint16_t)b->user_agent.len);
		w = put_bytes(w, b->contact);
		w = put_bytes(w, b->instance);
		w = put_bytes(w, b->call_id);
		w = put_bytes(w, b->path);
		w = put_bytes(w, b->user_agent);
	}
	memcpy(out, rec_magic, 4);
	put32(out + 4, (uint32_t)body);
	uint32_t crc = sw_crc32c(0, out + 4, 4);
	put32(out + 8, sw_crc32c(crc, out + BJ_REC_HDR, body));
	return (ssize_t)(BJ_REC_HDR + body);
}

void bj_hdr_encode(uint8_t out[BJ_HDR_LEN], enum bj_kind kind, uint64_t gen)
{
	memcpy(out, kind == BJ_SNAPSHOT ? snap_magic : seg_magic, 4);
	put16(out + 4, BJ_VERSION);
	put16(out + 6, BJ_HDR_LEN);
	put64(out + 8, gen);
	put32(out + 16, sw_crc32c(0, out, 16));
	put32(out + 20, 0);
}

int bj_hdr_check(const uint8_t *p, size_t len, enum bj_kind kind, uint64_t *gen)
{
	if (len < BJ_HDR_LEN || memcmp(p, kind == BJ_SNAPSHOT ? snap_magic : seg_magic, 4) != 0 ||
	    get32(p + 16) != sw_crc32c(0, p, 16))
		return -EBADMSG;
	if (get16(p + 4) != BJ_VERSION || get16(p + 6) != BJ_HDR_LEN)
		return -EPROTO;
	*gen = get64(p + 8);
	return 0;
}

/* ---- reader ---- */

void bj_reader_init(struct bj_reader *rd, const uint8_t *p, size_t len, size_t off)
{
	rd->p = p;
	rd->len = len;
	rd->off = off > len ? len : off;
	rd->good_end = rd->off;
	rd->bad_off = rd->bad_len = 0;
	rd->bad_why = NULL;
	rd->bad_tail = false;
	rd->zero_tail = 0;
}

/* Decode a body whose CRC already holds; false when its structure does
 * not (a writer bug or a crafted file: never trust the CRC alone). */
static bool decode_body(struct bj_reader *rd, const uint8_t *p, size_t n, struct bstore_rec *rec)
{
	const uint8_t *end = p + n;
	if (n < 12)
		return false;
	rec->seq = get64(p);
	size_t aor_len = get16(p + 8);
	unsigned nb = get16(p + 10);
	p += 12;
	if (nb > BSTORE_MAX_BINDINGS || aor_len == 0 || (size_t)(end - p) < aor_len)
		return false;
	rec->aor = (struct sw_str){ (const char *)p, aor_len };
	p += aor_len;
	for (unsigned i = 0; i < nb; i++) {
		struct bstore_binding *b = &rd->b[i];
		if ((size_t)(end - p) < BIND_FIXED)
			return false;
		memset(b, 0, sizeof(*b));
		b->expires_at = (int64_t)get64(p);
		b->cseq = get32(p + 8);
		b->reg_id = (int32_t)get32(p + 12);
		b->q = (int16_t)get16(p + 16);
		b->port = get16(p + 18);
		b->worker = get16(p + 20);
		b->proto = p[22];
		uint8_t fam = p[23];
		if (fam != 0 && fam != FAM_V4 && fam != FAM_V6)
			return false;
		b->family = fam == FAM_V4 ? SW_AF_INET : fam == FAM_V6 ? SW_AF_INET6 : 0;
		size_t al = addr_len(b->family);
		p += 24;
		if ((size_t)(end - p) < al + 10)
			return false;
		memcpy(b->addr, p, al);
		p += al;
		size_t l[5];
		size_t total = 0;
		for (int k = 0; k < 5; k++) {
			l[k] = get16(p + 2 * k);
			total += l[k];
		}
		p += 10;
		if ((size_t)(end - p) < total)
			return false;
		struct sw_str *s[5] = { &b->contact, &b->instance, &b->call_id, &b->path,
					&b->user_agent };
		for (int k = 0; k < 5; k++) {
			*s[k] = (struct sw_str){ (const char *)p, l[k] };
			p += l[k];
		}
	}
	if (p != end)
		return false;
	rec->n = nb;
	rec->b = rd->b;
	return true;
}

/* A whole, valid record at off? Its total size in *size. A probe (while
 * resynchronising) checks the structure before the CRC: garbage fails
 * the cheap test first, so crafted input cannot make every candidate
 * cost a CRC over a megabyte. */
static const char *rec_at(struct bj_reader *rd, size_t off, struct bstore_rec *rec, size_t *size,
			  bool probe)
{
	size_t left = rd->len - off;
	const uint8_t *p = rd->p + off;
	if (left < BJ_REC_HDR)
		return "torn record header";
	if (memcmp(p, rec_magic, 4) != 0)
		return "bad record magic";
	uint32_t body = get32(p + 4);
	if (body > BJ_REC_MAX)
		return "record length over the limit";
	if (body > left - BJ_REC_HDR)
		return "torn record";
	if (probe && !decode_body(rd, p + BJ_REC_HDR, body, rec))
		return "malformed record";
	uint32_t crc = sw_crc32c(sw_crc32c(0, p + 4, 4), p + BJ_REC_HDR, body);
	if (crc != get32(p + 8))
		return "record checksum mismatch";
	if (!probe && !decode_body(rd, p + BJ_REC_HDR, body, rec))
		return "malformed record";
	*size = BJ_REC_HDR + body;
	return NULL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

enum bj_next_rc bj_next(struct bj_reader *rd, struct bstore_rec *rec)
{
	size_t size;
	if (rd->off >= rd->len)
		return BJ_END;
	/* A preallocated segment ends in zeroes (the writer died before its
	 * clean close truncated them): the end, not damage. */
	if (rd->p[rd->off] == 0 && all_zero(rd->p + rd->off, rd->len - rd->off)) {
		rd->zero_tail = rd->len - rd->off;
		rd->off = rd->len;
		return BJ_END;
	}
	const char *why = rec_at(rd, rd->off, rec, &size, false);
	if (!why) {
		rd->off += size;
		rd->good_end = rd->off;
		return BJ_REC;
	}
	/* Damage: skip to the next offset where a whole record verifies. */
	size_t from = rd->off;
	size_t o = from + 1;
	for (;;) {
		const uint8_t *m = o + 4 <= rd->len ?
			memmem(rd->p + o, rd->len - o, rec_magic, 4) : NULL;
		if (!m) {
			o = rd->len;
			break;
		}
		o = (size_t)(m - rd->p);
		struct bstore_rec probe;
		if (!rec_at(rd, o, &probe, &size, true))
			break;
		o++;
	}
	rd->bad_off = from;
	rd->bad_len = o - from;
	rd->bad_why = why;
	rd->bad_tail = o == rd->len;
	rd->off = o;
	return BJ_BAD;
}
