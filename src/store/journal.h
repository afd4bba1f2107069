/* Binding journal record format: encoder and reader, pure functions over
 * buffers (no I/O). See docs/internals.md "Durable registrations".
 *
 * File  = header (BJ_HDR_LEN) then records.
 * Header: "SWBJ" (segment) or "SWBS" (snapshot), u16 version, u16 header
 *         length, u64 generation, u32 CRC32C of the first 16 bytes, u32 0.
 * Record: "SWr1", u32 body length, u32 CRC32C over (length, body), body:
 *         u64 seq, u16 AOR length, u16 binding count, AOR bytes, then per
 *         binding: i64 expires_at, u32 cseq, i32 reg_id, i16 q, u16 port,
 *         u16 worker, u8 proto, u8 family (0, 4 or 6), the address (0, 4
 *         or 16 bytes), u16 lengths of contact, instance, call_id, path,
 *         user_agent, then those bytes. Integers little-endian. */
#ifndef SW_STORE_JOURNAL_H
#define SW_STORE_JOURNAL_H

#include <sys/types.h>

#include "store/journal-t.h"

/* CRC32C (Castagnoli), SSE4.2 instruction when the CPU has it. */
uint32_t sw_crc32c(uint32_t crc, const void *p, size_t n);

/* Bytes the record takes on disk (header included); 0 when it breaks a
 * format limit (more than BSTORE_MAX_BINDINGS, a string over 65535 bytes,
 * an unknown family, a body over BJ_REC_MAX). */
size_t bj_rec_size(const struct bstore_rec *r);
/* Encode into out (cap bytes); returns the size or -EMSGSIZE/-EINVAL. */
ssize_t bj_rec_encode(const struct bstore_rec *r, uint8_t *out, size_t cap);

void bj_hdr_encode(uint8_t out[BJ_HDR_LEN], enum bj_kind kind, uint64_t gen);
/* 0 and *gen, -EBADMSG (bad magic, short, CRC), -EPROTO (valid header of
 * another format version: refuse rather than misread it). */
int bj_hdr_check(const uint8_t *p, size_t len, enum bj_kind kind, uint64_t *gen);

/* Records of a file image after its header (or of any buffer). */
void bj_reader_init(struct bj_reader *rd, const uint8_t *p, size_t len, size_t off);
/* Next record (BJ_REC), end (BJ_END: also at a run of zero bytes to the
 * end, a preallocated segment's unused tail, counted in rd->zero_tail),
 * or a damaged range skipped (BJ_BAD):
 * the reader then resynchronises on the next record whose magic, length
 * and CRC hold, so good records after damage are kept. rec->b points into
 * rd->b and stays valid until the next call. */
enum bj_next_rc bj_next(struct bj_reader *rd, struct bstore_rec *rec);

#endif
