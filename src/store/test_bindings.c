/* Unit tests: binding journal format (CRC32C, records, torn and damaged
 * files), replay (highest seq wins, tombstones, expiry), write failures,
 * fsync mode, compaction under concurrent writers, crashes at every step
 * of a compaction (SIGKILL in a forked child), and the bindings.db import. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/bindings.h"
#include "store/journal.h"

#define NOW 1700000000LL

/* ---- a small owner: AOR "sip:uK@x" is entry K, partition K % NPARTS ---- */

#define NPARTS 8
#define NAORS 512

struct ent {
	uint64_t seq;
	unsigned n;               /* bindings */
	uint32_t cseq;            /* of the first binding */
	int64_t exp;
	char contact[64];
	bool seen;
};

struct owner {
	pthread_mutex_t mu[NPARTS];
	struct ent e[NAORS];
	unsigned loads, tomb_loads, bad_reports;
	char last_report[160];
	struct sw_bstore *s;
};

static int aor_index(struct sw_str aor)
{
	char b[32];
	if (aor.len >= sizeof(b) || aor.len < 6)
		return -1;
	memcpy(b, aor.p, aor.len);
	b[aor.len] = 0;
	int k = -1;
	if (sscanf(b, "sip:u%d@x", &k) != 1 || k < 0 || k >= NAORS)
		return -1;
	return k;
}

static int o_load(void *ctx, const struct bstore_rec *rec)
{
	struct owner *o = ctx;
	int k = aor_index(rec->aor);
	if (k < 0)
		return 0;
	o->loads++;
	if (rec->n == 0)
		o->tomb_loads++;
	struct ent *e = &o->e[k];
	if (e->seen && e->seq >= rec->seq)
		return 0;
	e->seen = true;
	e->seq = rec->seq;
	e->n = rec->n;
	e->cseq = rec->n ? rec->b[0].cseq : 0;
	e->exp = rec->n ? rec->b[0].expires_at : 0;
	snprintf(e->contact, sizeof(e->contact), "%.*s", rec->n ? (int)rec->b[0].contact.len : 0,
		 rec->n ? rec->b[0].contact.p : "");
	return 0;
}

static struct bstore_binding mkbind(const char *contact, uint32_t cseq, int64_t exp)
{
	struct bstore_binding b;
	memset(&b, 0, sizeof(b));
	b.contact = (struct sw_str){ contact, strlen(contact) };
	b.call_id = SW_STR_LIT("cid@x");
	b.user_agent = SW_STR_LIT("UA/1");
	b.instance = SW_STR_LIT("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>");
	b.path = SW_STR_LIT("<sip:edge.example.net;lr>");
	b.cseq = cseq;
	b.reg_id = 2;
	b.q = 500;
	b.expires_at = exp;
	b.family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", b.addr);
	b.port = 5070;
	b.proto = 1;
	b.worker = 3;
	return b;
}

static int o_dump(void *ctx, unsigned part, struct bstore_dump *d, int64_t now_s)
{
	struct owner *o = ctx;
	int rc = 0;
	pthread_mutex_lock(&o->mu[part]);
	bstore_dump_mark(d, part);
	for (unsigned k = part; rc == 0 && k < NAORS; k += NPARTS) {
		struct ent *e = &o->e[k];
		if (!e->seen || e->n == 0 || e->exp <= now_s)
			continue;
		char aor[32];
		snprintf(aor, sizeof(aor), "sip:u%u@x", k);
		struct bstore_binding b = mkbind(e->contact, e->cseq, e->exp);
		struct bstore_rec rec = { { aor, strlen(aor) }, e->seq, 1, &b };
		rc = bstore_dump_add(d, &rec);
	}
	pthread_mutex_unlock(&o->mu[part]);
	return rc;
}

static void o_report(void *ctx, const char *file, uint64_t off, const char *what, int err)
{
	struct owner *o = ctx;
	if (err == -EBADMSG)
		o->bad_reports++;
	snprintf(o->last_report, sizeof(o->last_report), "%s@%llu: %s", file,
		 (unsigned long long)off, what);
}

static void o_init(struct owner *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < NPARTS; i++)
		pthread_mutex_init(&o->mu[i], NULL);
}

/* Change AOR k the way the registrar does: under the partition lock,
 * journal first, memory after. n == 0: remove. */
static int o_set(struct owner *o, unsigned writer, unsigned k, unsigned n, uint32_t cseq, int64_t exp)
{
	char aor[32], contact[64];
	snprintf(aor, sizeof(aor), "sip:u%u@x", k);
	snprintf(contact, sizeof(contact), "sip:u%u@192.0.2.%u:%u", k, k % 250, cseq);
	struct bstore_binding b = mkbind(contact, cseq, exp);
	struct bstore_rec rec = { { aor, strlen(aor) }, 0, n ? 1 : 0, &b };
	unsigned part = k % NPARTS;
	uint64_t seq = 0;
	pthread_mutex_lock(&o->mu[part]);
	int rc = bstore_append(o->s, part, writer, &rec, &seq);
	if (rc == 0) {
		struct ent *e = &o->e[k];
		e->seen = true;
		e->seq = seq;
		e->n = n ? 1 : 0;
		e->cseq = cseq;
		e->exp = exp;
		snprintf(e->contact, sizeof(e->contact), "%s", contact);
	}
	pthread_mutex_unlock(&o->mu[part]);
	return rc;
}

/* ---- a temporary data_dir ---- */

struct tdir {
	char dir[64];
};

static void td_make(struct tdir *t)
{
	const char *base = getenv("TMPDIR");
	snprintf(t->dir, sizeof(t->dir), "%s/swstoreXXXXXX", base && strlen(base) < 40 ? base : "/tmp");
	assert_non_null(mkdtemp(t->dir));
}

static void td_path(const struct tdir *t, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", t->dir, name);
}

static void td_rm(struct tdir *t)
{
	DIR *d = opendir(t->dir);
	struct dirent *e;
	char p[400];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", t->dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(t->dir);
}

static bool td_exists(const struct tdir *t, const char *name)
{
	char p[256];
	struct stat st;
	td_path(t, name, p, sizeof(p));
	return stat(p, &st) == 0;
}

static long td_size(const struct tdir *t, const char *name)
{
	char p[256];
	struct stat st;
	td_path(t, name, p, sizeof(p));
	return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static unsigned td_count_segments(const struct tdir *t)
{
	DIR *d = opendir(t->dir);
	struct dirent *e;
	unsigned n = 0;
	while (d && (e = readdir(d)))
		n += strncmp(e->d_name, "bindings-", 9) == 0;
	if (d)
		closedir(d);
	return n;
}

static void td_write(const struct tdir *t, const char *name, const void *p, size_t n)
{
	char path[256];
	td_path(t, name, path, sizeof(path));
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static struct sw_bstore *o_open(struct owner *o, const struct tdir *t, const struct bstore_conf *c,
				int64_t now, int *err)
{
	struct bstore_conf def;
	if (!c) {
		bstore_conf_default(&def);
		def.no_thread = true;
		c = &def;
	}
	struct bstore_hooks h = { .nparts = NPARTS, .load = o_load, .dump = o_dump, .ctx = o,
				  .report = o_report, .report_ctx = o };
	o->s = bstore_open(t->dir, c, &h, now, err);
	return o->s;
}

/* ---- format ---- */

static void test_crc32c(void **state)
{
	(void)state;
	/* RFC 3720 appendix B.4 check value */
	assert_int_equal(sw_crc32c(0, "123456789", 9), 0xE3069283u);
	uint8_t zeros[32] = { 0 };
	assert_int_equal(sw_crc32c(0, zeros, 32), 0x8A9136AAu);
	/* incremental = one shot, across the 8-byte steps */
	const char *txt = "The quick brown fox jumps over the lazy dog";
	uint32_t one = sw_crc32c(0, txt, strlen(txt));
	assert_int_equal(sw_crc32c(sw_crc32c(0, txt, 5), txt + 5, strlen(txt) - 5), one);
}

static size_t enc(const struct bstore_rec *r, uint8_t *out, size_t cap)
{
	ssize_t n = bj_rec_encode(r, out, cap);
	assert_true(n > 0);
	assert_int_equal((size_t)n, bj_rec_size(r));
	return (size_t)n;
}

static void test_record_roundtrip(void **state)
{
	(void)state;
	uint8_t buf[4096];
	struct bstore_binding b[3];
	b[0] = mkbind("sip:a@192.0.2.7:5070", 7, NOW + 60);
	b[1] = mkbind("sip:a@[2001:db8::1]", 8, NOW + 61);
	b[1].family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", b[1].addr);
	b[1].q = -1;
	b[1].reg_id = -1;
	b[2] = mkbind("sip:a@host", 9, NOW + 62);
	b[2].family = 0;
	memset(b[2].addr, 0, 16);
	b[2].path = SW_STR_LIT("");
	struct bstore_rec r = { SW_STR_LIT("sip:a@example.com"), 42, 3, b };
	size_t n = enc(&r, buf, sizeof(buf));
	assert_int_equal(bj_rec_encode(&r, buf, n - 1), -EMSGSIZE);

	struct bj_reader *rd = malloc(sizeof(*rd));
	struct bstore_rec out;
	bj_reader_init(rd, buf, n, 0);
	assert_int_equal(bj_next(rd, &out), BJ_REC);
	assert_int_equal(out.seq, 42);
	assert_int_equal(out.n, 3);
	assert_memory_equal(out.aor.p, "sip:a@example.com", out.aor.len);
	for (unsigned i = 0; i < 3; i++) {
		const struct bstore_binding *x = &out.b[i], *y = &b[i];
		assert_int_equal(x->contact.len, y->contact.len);
		assert_memory_equal(x->contact.p, y->contact.p, y->contact.len);
		assert_int_equal(x->path.len, y->path.len);
		assert_int_equal(x->instance.len, y->instance.len);
		assert_int_equal(x->expires_at, y->expires_at);
		assert_int_equal(x->cseq, y->cseq);
		assert_int_equal(x->reg_id, y->reg_id);
		assert_int_equal(x->q, y->q);
		assert_int_equal(x->family, y->family);
		assert_memory_equal(x->addr, y->addr, 16);
		assert_int_equal(x->port, y->port);
		assert_int_equal(x->proto, y->proto);
		assert_int_equal(x->worker, y->worker);
	}
	assert_int_equal(bj_next(rd, &out), BJ_END);
	/* A tombstone is a record without bindings. */
	struct bstore_rec t = { SW_STR_LIT("sip:a@example.com"), 43, 0, NULL };
	n = enc(&t, buf, sizeof(buf));
	bj_reader_init(rd, buf, n, 0);
	assert_int_equal(bj_next(rd, &out), BJ_REC);
	assert_int_equal(out.n, 0);
	assert_int_equal(out.seq, 43);
	/* Limits the encoder refuses. */
	struct bstore_rec big = { SW_STR_LIT("sip:a@x"), 1, BSTORE_MAX_BINDINGS + 1, b };
	assert_int_equal(bj_rec_size(&big), 0);
	b[0].family = 99;
	struct bstore_rec badfam = { SW_STR_LIT("sip:a@x"), 1, 1, b };
	assert_int_equal(bj_rec_encode(&badfam, buf, sizeof(buf)), -EINVAL);
	free(rd);
}

static void test_header(void **state)
{
	(void)state;
	uint8_t h[BJ_HDR_LEN];
	uint64_t gen = 0;
	bj_hdr_encode(h, BJ_SEGMENT, 77);
	assert_int_equal(bj_hdr_check(h, sizeof(h), BJ_SEGMENT, &gen), 0);
	assert_int_equal(gen, 77);
	assert_int_equal(bj_hdr_check(h, sizeof(h), BJ_SNAPSHOT, &gen), -EBADMSG);   /* magic */
	assert_int_equal(bj_hdr_check(h, sizeof(h) - 1, BJ_SEGMENT, &gen), -EBADMSG); /* short */
	h[9] ^= 1;
	assert_int_equal(bj_hdr_check(h, sizeof(h), BJ_SEGMENT, &gen), -EBADMSG);     /* CRC */
	/* Another version with a valid CRC: refused, not misread. */
	bj_hdr_encode(h, BJ_SEGMENT, 77);
	h[4] = 2;
	uint32_t crc = sw_crc32c(0, h, 16);
	memcpy(h + 16, &crc, 4);
	assert_int_equal(bj_hdr_check(h, sizeof(h), BJ_SEGMENT, &gen), -EPROTO);
}

/* Three records; damage in the middle is skipped, the others are kept;
 * every possible torn tail of the last one is detected. */
static void test_reader_damage(void **state)
{
	(void)state;
	uint8_t buf[4096];
	size_t off[4] = { 0 };
	struct bstore_binding b = mkbind("sip:x@192.0.2.1", 1, NOW + 100);
	for (unsigned i = 0; i < 3; i++) {
		char aor[16];
		snprintf(aor, sizeof(aor), "sip:u%u@x", i);
		struct bstore_rec r = { { aor, strlen(aor) }, i + 1, 1, &b };
		off[i + 1] = off[i] + enc(&r, buf + off[i], sizeof(buf) - off[i]);
	}
	struct bj_reader *rd = malloc(sizeof(*rd));
	struct bstore_rec out;

	/* a flipped byte inside the second record's body */
	uint8_t dmg[4096];
	memcpy(dmg, buf, off[3]);
	dmg[off[1] + 20] ^= 0x40;
	bj_reader_init(rd, dmg, off[3], 0);
	assert_int_equal(bj_next(rd, &out), BJ_REC);
	assert_int_equal(out.seq, 1);
	assert_int_equal(bj_next(rd, &out), BJ_BAD);
	assert_int_equal(rd->bad_off, off[1]);
	assert_int_equal(rd->bad_len, off[2] - off[1]);
	assert_string_equal(rd->bad_why, "record checksum mismatch");
	assert_false(rd->bad_tail);
	assert_int_equal(bj_next(rd, &out), BJ_REC);
	assert_int_equal(out.seq, 3);
	assert_int_equal(bj_next(rd, &out), BJ_END);

	/* garbage between records */
	memcpy(dmg, buf, off[1]);
	memcpy(dmg + off[1], "SWr1garbage", 11);
	memcpy(dmg + off[1] + 11, buf + off[1], off[3] - off[1]);
	bj_reader_init(rd, dmg, off[3] + 11, 0);
	assert_int_equal(bj_next(rd, &out), BJ_REC);
	assert_int_equal(bj_next(rd, &out), BJ_BAD);
	assert_int_equal(rd->bad_len, 11);
	assert_int_equal(bj_next(rd, &out), BJ_REC);
	assert_int_equal(out.seq, 2);

	/* every torn tail */
	for (size_t cut = off[2] + 1; cut < off[3]; cut++) {
		bj_reader_init(rd, buf, cut, 0);
		assert_int_equal(bj_next(rd, &out), BJ_REC);
		assert_int_equal(bj_next(rd, &out), BJ_REC);
		assert_int_equal(bj_next(rd, &out), BJ_BAD);
		assert_true(rd->bad_tail);
		assert_int_equal(rd->bad_off, off[2]);
		assert_int_equal(rd->good_end, off[2]);
		assert_int_equal(bj_next(rd, &out), BJ_END);
	}
	free(rd);
}

/* ---- store ---- */

static void seg_file(const struct tdir *t, const char *name, enum bj_kind kind, uint64_t gen,
		     const struct bstore_rec *recs, unsigned n, size_t chop)
{
	uint8_t *buf = malloc(1 << 16);
	size_t len = BJ_HDR_LEN;
	bj_hdr_encode(buf, kind, gen);
	for (unsigned i = 0; i < n; i++)
		len += enc(&recs[i], buf + len, (1 << 16) - len);
	td_write(t, name, buf, len - chop);
	free(buf);
}

static void test_replay_order(void **state)
{
	(void)state;
	struct tdir t;
	struct owner *o = malloc(sizeof(*o));
	int err;
	td_make(&t);
	struct bstore_binding b1 = mkbind("sip:old@192.0.2.1", 1, NOW + 100);
	struct bstore_binding b2 = mkbind("sip:new@192.0.2.2", 2, NOW + 100);
	struct bstore_binding bx = mkbind("sip:exp@192.0.2.3", 3, NOW - 1);
	/* u1: seq 9 in a segment of worker 0, seq 5 in worker 1's: 9 wins
	 * whatever the order. u2: tombstone (seq 8) beats the snapshot's 4.
	 * u3: its only binding expired. u4: only in the snapshot. */
	struct bstore_rec snap[] = {
		{ SW_STR_LIT("sip:u2@x"), 4, 1, &b1 },
		{ SW_STR_LIT("sip:u4@x"), 3, 1, &b1 },
	};
	struct bstore_rec w0[] = {
		{ SW_STR_LIT("sip:u1@x"), 9, 1, &b2 },
		{ SW_STR_LIT("sip:u3@x"), 10, 1, &bx },
	};
	struct bstore_rec w1[] = {
		{ SW_STR_LIT("sip:u1@x"), 5, 1, &b1 },
		{ SW_STR_LIT("sip:u2@x"), 8, 0, NULL },
	};
	seg_file(&t, "bindings.snap", BJ_SNAPSHOT, 3, snap, 2, 0);
	seg_file(&t, "bindings-0-3.log", BJ_SEGMENT, 3, w0, 2, 0);
	seg_file(&t, "bindings-1-4.log", BJ_SEGMENT, 4, w1, 2, 0);
	seg_file(&t, "bindings-1-2.log", BJ_SEGMENT, 2, w1, 1, 0);  /* stale: below the snapshot */
	td_write(&t, "bindings.snap.tmp", "junk", 4);               /* a compaction that died */

	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o->e[1].seq, 9);
	assert_string_equal(o->e[1].contact, "sip:new@192.0.2.2");
	assert_int_equal(o->e[2].seq, 8);
	assert_int_equal(o->e[2].n, 0);
	assert_int_equal(o->e[3].n, 0);           /* expired: arrives without bindings */
	assert_int_equal(o->e[4].n, 1);
	assert_false(td_exists(&t, "bindings-1-2.log"));
	assert_false(td_exists(&t, "bindings.snap.tmp"));
	struct bstore_stats st;
	bstore_stats(o->s, &st);
	assert_int_equal(st.segments, 2);
	assert_int_equal(st.gen, 5);              /* above everything found */
	assert_int_equal(st.records, 6);
	/* A new run's records beat every older one. */
	assert_int_equal(o_set(o, 0, 1, 1, 77, NOW + 500), 0);
	assert_true(o->e[1].seq > 10);
	bstore_close(o->s);
	assert_true(td_exists(&t, "bindings-0-5.log"));

	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o->e[1].cseq, 77);
	assert_int_equal(o->e[2].n, 0);
	/* one process per data_dir */
	struct owner *o2 = malloc(sizeof(*o2));
	o_init(o2);
	assert_null(o_open(o2, &t, NULL, NOW, &err));
	assert_int_equal(err, -EBUSY);
	free(o2);
	bstore_close(o->s);
	td_rm(&t);
	free(o);
}

/* Torn tail truncated on open, damage in the middle reported with file
 * and offset while the good records are kept; another version refused. */
static void test_open_damage(void **state)
{
	(void)state;
	struct tdir t;
	struct owner *o = malloc(sizeof(*o));
	int err;
	td_make(&t);
	struct bstore_binding b = mkbind("sip:a@192.0.2.1", 1, NOW + 100);
	struct bstore_rec r[] = {
		{ SW_STR_LIT("sip:u1@x"), 1, 1, &b },
		{ SW_STR_LIT("sip:u2@x"), 2, 1, &b },
		{ SW_STR_LIT("sip:u3@x"), 3, 1, &b },
	};
	seg_file(&t, "bindings-0-1.log", BJ_SEGMENT, 1, r, 3, 5);   /* last record torn */
	long full = td_size(&t, "bindings-0-1.log");
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_true(o->e[1].seen && o->e[2].seen);
	assert_false(o->e[3].seen);
	assert_int_equal(o->bad_reports, 1);
	assert_non_null(strstr(o->last_report, "bindings-0-1.log@"));
	assert_true(td_size(&t, "bindings-0-1.log") < full);
	assert_int_equal(td_size(&t, "bindings-0-1.log"), full - (long)bj_rec_size(&r[2]) + 5);
	bstore_close(o->s);

	/* flip a byte in u2's record: u1 and u3 (appended again) survive */
	char p[256];
	uint8_t rb[512];
	td_path(&t, "bindings-0-1.log", p, sizeof(p));
	int fd = open(p, O_RDWR | O_APPEND);
	assert_true(fd >= 0);
	size_t rn = enc(&r[2], rb, sizeof(rb));
	assert_int_equal(write(fd, rb, rn), (ssize_t)rn);
	close(fd);
	fd = open(p, O_RDWR);   /* pwrite ignores the offset under O_APPEND */
	uint8_t x;
	off_t at = BJ_HDR_LEN + (off_t)bj_rec_size(&r[0]) + 16;
	assert_int_equal(pread(fd, &x, 1, at), 1);
	x ^= 0xFF;
	assert_int_equal(pwrite(fd, &x, 1, at), 1);
	close(fd);
	seg_file(&t, "bindings-1-1.log", BJ_SEGMENT, 1, &r[2], 1, 0);
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_true(o->e[1].seen);
	assert_false(o->e[2].seen);
	assert_true(o->e[3].seen);
	assert_int_equal(o->bad_reports, 1);
	char want[128];
	snprintf(want, sizeof(want), "bindings-0-1.log@%zu: record checksum mismatch: skipped, later records kept",
		 (size_t)BJ_HDR_LEN + bj_rec_size(&r[0]));
	assert_string_equal(o->last_report, want);
	bstore_close(o->s);

	/* a damaged header: the records behind it are still found */
	td_path(&t, "bindings-1-1.log", p, sizeof(p));
	fd = open(p, O_RDWR);
	assert_int_equal(pwrite(fd, "XXXX", 4, 0), 4);
	close(fd);
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_true(o->e[3].seen);
	bstore_close(o->s);

	/* another format version: the open fails rather than misreading */
	uint8_t h[BJ_HDR_LEN];
	bj_hdr_encode(h, BJ_SNAPSHOT, 1);
	h[4] = 9;
	uint32_t crc = sw_crc32c(0, h, 16);
	memcpy(h + 16, &crc, 4);
	td_write(&t, "bindings.snap", h, sizeof(h));
	o_init(o);
	assert_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(err, -EPROTO);
	td_rm(&t);
	free(o);
}

/* A failed write (short, or an error) leaves nothing behind and the next
 * append works; with fsync on, appends are fdatasync'd. */
static void test_write_failure_and_fsync(void **state)
{
	(void)state;
	struct tdir t;
	struct owner *o = malloc(sizeof(*o));
	struct bstore_conf c;
	int err;
	td_make(&t);
	bstore_conf_default(&c);
	c.no_thread = true;
	c.fsync = true;
	o_init(o);
	assert_non_null(o_open(o, &t, &c, NOW, &err));
	assert_int_equal(o_set(o, 2, 1, 1, 1, NOW + 100), 0);
	long size = td_size(&t, "bindings-2-1.log");
	assert_true(size > BJ_HDR_LEN);

	bstore_inject_write_error(o->s, 2, ENOSPC, 30);   /* 30 bytes reach the file */
	assert_int_equal(o_set(o, 2, 2, 1, 5, NOW + 100), -ENOSPC);
	assert_false(o->e[2].seen);                       /* the owner applied nothing */
	assert_int_equal(td_size(&t, "bindings-2-1.log"), size);
	bstore_inject_write_error(o->s, 2, EIO, 0);
	assert_int_equal(o_set(o, 2, 2, 1, 6, NOW + 100), -EIO);
	assert_int_equal(td_size(&t, "bindings-2-1.log"), size);
	/* a failure on a fresh file's first write (header included) */
	bstore_inject_write_error(o->s, 3, ENOSPC, 10);
	assert_int_equal(o_set(o, 3, 3, 1, 1, NOW + 100), -ENOSPC);
	assert_int_equal(td_size(&t, "bindings-3-1.log"), 0);
	assert_int_equal(o_set(o, 3, 3, 1, 2, NOW + 100), 0);
	assert_int_equal(o_set(o, 2, 2, 1, 7, NOW + 100), 0);
	bstore_close(o->s);

	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o->bad_reports, 0);
	assert_int_equal(o->e[2].cseq, 7);
	assert_int_equal(o->e[3].cseq, 2);
	assert_int_equal(o->loads, 3);
	bstore_close(o->s);
	td_rm(&t);
	free(o);
}

/* ---- compaction ---- */

struct wargs {
	struct owner *o;
	int64_t now;
	unsigned writer, n;
	unsigned seed;
	unsigned fails;
};

static void *writer_main(void *arg)
{
	struct wargs *a = arg;
	for (unsigned i = 0; i < a->n; i++) {
		unsigned k = (unsigned)rand_r(&a->seed) % NAORS;
		unsigned n = (unsigned)rand_r(&a->seed) % 5 != 0;   /* one in five removes */
		if (o_set(a->o, a->writer, k, n, i + 1, a->now + 1000) != 0)
			a->fails++;
	}
	return NULL;
}

static void snapshot_table(const struct owner *o, struct ent *out)
{
	for (unsigned k = 0; k < NAORS; k++) {
		out[k] = o->e[k];
		if (!out[k].seen || out[k].n == 0) {
			memset(&out[k], 0, sizeof(out[k]));
			continue;
		}
		out[k].seq = 0;
		out[k].seen = true;
	}
}

static void assert_same(const struct ent *want, const struct owner *o)
{
	for (unsigned k = 0; k < NAORS; k++) {
		bool live = o->e[k].seen && o->e[k].n;
		if (!want[k].seen) {
			if (live)
				fail_msg("u%u: loaded but removed", k);
			continue;
		}
		if (!live || o->e[k].cseq != want[k].cseq || strcmp(o->e[k].contact, want[k].contact))
			fail_msg("u%u: want cseq %u, loaded %s cseq %u", k, want[k].cseq,
				 live ? "live" : "nothing", o->e[k].cseq);
	}
}

static void test_compaction_concurrent(void **state)
{
	(void)state;
	struct tdir t;
	struct owner *o = malloc(sizeof(*o));
	struct ent *want = malloc(NAORS * sizeof(*want));
	struct bstore_conf c;
	int err;
	/* the thread compacts at the real time: bindings must outlive it */
	int64_t now = (int64_t)time(NULL);
	td_make(&t);
	bstore_conf_default(&c);
	c.compact_min_bytes = 16 << 10;           /* tiny: the thread compacts often */
	c.check_ms = 2;
	o_init(o);
	assert_non_null(o_open(o, &t, &c, now, &err));
	pthread_t th[3];
	struct wargs wa[3];
	for (unsigned i = 0; i < 3; i++) {
		wa[i] = (struct wargs){ o, now, i, 4000, 17 + i, 0 };
		pthread_create(&th[i], NULL, writer_main, &wa[i]);
	}
	/* and explicit compactions from here meanwhile */
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(bstore_compact(o->s, now), 0);
	for (unsigned i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(wa[i].fails, 0);
	}
	struct bstore_stats st;
	bstore_stats(o->s, &st);
	assert_true(st.compactions >= 5);
	snapshot_table(o, want);
	bstore_close(o->s);
	/* old generations are gone: at most the live ones of 3 writers, two
	 * generations each */
	assert_true(td_count_segments(&t) <= 6);

	o_init(o);
	assert_non_null(o_open(o, &t, NULL, now, &err));
	assert_int_equal(o->bad_reports, 0);
	assert_same(want, o);
	/* and once more after a compaction without writers */
	assert_int_equal(bstore_compact(o->s, now), 0);
	bstore_close(o->s);
	assert_int_equal(td_count_segments(&t), 0);
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, now, &err));
	assert_same(want, o);
	/* expired bindings leave at compaction */
	assert_int_equal(bstore_compact(o->s, now + 2000), 0);
	bstore_close(o->s);
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, now, &err));
	assert_int_equal(o->loads, 0);
	bstore_close(o->s);
	td_rm(&t);
	free(want);
	free(o);
}

/* Crash (SIGKILL) at each step of a compaction while records are written
 * before and during it: nothing acknowledged may be lost. */
static void test_crash_mid_compaction(void **state)
{
	(void)state;
	for (int step = 1; step <= 4; step++) {
		struct tdir t;
		struct owner *o = malloc(sizeof(*o));
		struct ent *want = malloc(NAORS * sizeof(*want));
		int err;
		td_make(&t);
		/* a first run leaves a snapshot and segments of two generations */
		o_init(o);
		assert_non_null(o_open(o, &t, NULL, NOW, &err));
		for (unsigned k = 0; k < 200; k++)
			assert_int_equal(o_set(o, k % 3, k, 1, 1, NOW + 1000), 0);
		assert_int_equal(bstore_compact(o->s, NOW), 0);
		for (unsigned k = 0; k < 300; k += 2)
			assert_int_equal(o_set(o, k % 3, k, k % 4 != 0, 2, NOW + 1000), 0);
		bstore_close(o->s);

		/* The child: reload, write more, then die inside a compaction.
		 * What it wrote is known here because it is deterministic. */
		o_init(o);
		assert_non_null(o_open(o, &t, NULL, NOW, &err));
		for (unsigned k = 1; k < 400; k += 3)
			assert_int_equal(o_set(o, 1, k, 1, 3, NOW + 1000), 0);
		snapshot_table(o, want);
		bstore_close(o->s);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct bstore_conf c;
			bstore_conf_default(&c);
			c.no_thread = true;
			c.kill_at = step;
			struct owner *co = malloc(sizeof(*co));
			o_init(co);
			if (!o_open(co, &t, &c, NOW, &err))
				_exit(3);
			for (unsigned k = 5; k < 50; k++)
				if (o_set(co, 0, k, 1, 4, NOW + 1000) != 0)
					_exit(4);
			bstore_compact(co->s, NOW);
			_exit(5);   /* the kill did not happen */
		}
		int ws;
		assert_int_equal(waitpid(pid, &ws, 0), pid);
		if (!WIFSIGNALED(ws) || WTERMSIG(ws) != SIGKILL)
			fail_msg("step %d: child did not die by SIGKILL (status %d)", step, ws);
		for (unsigned k = 5; k < 50; k++) {
			char contact[64];
			snprintf(contact, sizeof(contact), "sip:u%u@192.0.2.%u:%u", k, k % 250, 4);
			want[k].seen = true;
			want[k].cseq = 4;
			snprintf(want[k].contact, sizeof(want[k].contact), "%s", contact);
		}
		o_init(o);
		assert_non_null(o_open(o, &t, NULL, NOW, &err));
		assert_int_equal(o->bad_reports, 0);
		assert_same(want, o);
		bstore_close(o->s);
		/* and the state stays loadable after one more compaction */
		o_init(o);
		assert_non_null(o_open(o, &t, NULL, NOW, &err));
		assert_int_equal(bstore_compact(o->s, NOW), 0);
		bstore_close(o->s);
		o_init(o);
		assert_non_null(o_open(o, &t, NULL, NOW, &err));
		assert_same(want, o);
		bstore_close(o->s);
		td_rm(&t);
		free(want);
		free(o);
	}
}

/* Segments are preallocated and written through a shared mapping, a
 * window at a time: records across several windows survive the writer's
 * SIGKILL (no clean close: the file ends in zeroes, which the reader takes
 * for its end, not for damage), and a clean close leaves exactly the
 * records (header + their sizes, no zero tail). */
static void test_mapped_windows(void **state)
{
	(void)state;
	enum { ROUNDS = 60 };   /* 60 x 512 records of ~100 bytes: > 2 windows */
	struct tdir t;
	struct owner *o = malloc(sizeof(*o));
	struct ent *want = malloc(NAORS * sizeof(*want));
	int err;
	td_make(&t);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		o_init(o);
		if (!o_open(o, &t, NULL, NOW, &err))
			_exit(3);
		for (unsigned r = 1; r <= ROUNDS; r++)
			for (unsigned k = 0; k < NAORS; k++)
				if (o_set(o, 0, k, (k + r) % 7 != 0, r, NOW + 1000) != 0)
					_exit(4);
		raise(SIGKILL);
		_exit(5);
	}
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	long killed_size = td_size(&t, "bindings-0-1.log");
	assert_true(killed_size >= 2 * (1 << 20));
	assert_int_equal(killed_size % 4096, 0);   /* preallocated: ends in a zero tail */

	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o->bad_reports, 0);
	for (unsigned k = 0; k < NAORS; k++) {
		bool live = o->e[k].seen && o->e[k].n;
		assert_int_equal(live, (k + ROUNDS) % 7 != 0);
		if (live)
			assert_int_equal(o->e[k].cseq, ROUNDS);
	}
	snapshot_table(o, want);
	/* a clean close: the new run's segment holds exactly its records */
	size_t expect = BJ_HDR_LEN;
	for (unsigned k = 0; k < 100; k++) {
		char aor[32], contact[64];
		snprintf(aor, sizeof(aor), "sip:u%u@x", k);
		snprintf(contact, sizeof(contact), "sip:u%u@192.0.2.%u:%u", k, k % 250, 99u);
		struct bstore_binding b = mkbind(contact, 99, NOW + 1000);
		struct bstore_rec rec = { { aor, strlen(aor) }, 0, 1, &b };
		expect += bj_rec_size(&rec);
		assert_int_equal(o_set(o, 1, k, 1, 99, NOW + 1000), 0);
	}
	bstore_close(o->s);
	assert_int_equal(td_size(&t, "bindings-1-2.log"), (long)expect);
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o->bad_reports, 0);
	for (unsigned k = 0; k < 100; k++)
		assert_int_equal(o->e[k].cseq, 99);
	bstore_close(o->s);
	td_rm(&t);
	free(want);
	free(o);
}

/* Mappings of segment files in this process. */
static unsigned segment_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, "/bindings-") != NULL;
	if (f)
		fclose(f);
	return n;
}

/* A written window is unmapped by the store's thread, not by the writer
 * that moved past it (munmap of a written megabyte: ~0.35 ms in one
 * request's path), and without a thread by the writer at once, so
 * mappings never pile up. */
static void test_window_unmapped_by_store(void **state)
{
	(void)state;
	enum { ROUNDS = 100 };  /* 100 x 512 records of ~100 bytes: ~5 windows */
	struct tdir t;
	struct owner *o = malloc(sizeof(*o));
	struct bstore_conf c;
	int err;
	int64_t now = (int64_t)time(NULL);
	for (unsigned phase = 0; phase < 3; phase++) {
		td_make(&t);
		bstore_conf_default(&c);
		c.compact_min_bytes = 1ull << 40;   /* no compaction: only windows */
		c.check_ms = phase == 0 ? 600000 : 2;
		c.no_thread = phase == 2;
		o_init(o);
		assert_non_null(o_open(o, &t, &c, now, &err));
		unsigned most = 0;
		for (unsigned r = 1; r <= ROUNDS; r++) {
			for (unsigned k = 0; k < NAORS; k++)
				assert_int_equal(o_set(o, 0, k, 1, r, now + 1000), 0);
			unsigned n = segment_maps();
			most = n > most ? n : most;
		}
		if (phase == 0) {
			/* the thread sleeps: the writer left every old window mapped */
			assert_true(segment_maps() >= 4);
		} else if (phase == 1) {
			/* the thread unmaps them within a few of its rounds */
			for (unsigned i = 0; i < 200 && segment_maps() > 1; i++)
				usleep(10000);
			assert_int_equal(segment_maps(), 1);
		} else {
			assert_int_equal(most, 1);
		}
		bstore_close(o->s);
		assert_int_equal(segment_maps(), 0);
		o_init(o);
		assert_non_null(o_open(o, &t, NULL, now, &err));
		assert_int_equal(o->bad_reports, 0);
		for (unsigned k = 0; k < NAORS; k++)
			assert_int_equal(o->e[k].cseq, ROUNDS);
		bstore_close(o->s);
		td_rm(&t);
	}
	free(o);
}

/* Open descriptors of this process on deleted segment files. */
static unsigned deleted_segment_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned n = 0;
	while (d && (e = readdir(d))) {
		char p[300], l[512];
		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		ssize_t k = readlink(p, l, sizeof(l) - 1);
		if (k <= 0)
			continue;
		l[k] = '\0';
		n += strstr(l, "/bindings-") && strstr(l, "(deleted)");
	}
	if (d)
		closedir(d);
	return n;
}

/* A worker never does the last close() of a segment a compaction covered
 * (it frees the file's page cache: tens of ms): it hands it to the store,
 * whose thread (here: the next compaction) closes it. */
static void test_covered_segment_closed_by_store(void **state)
{
	(void)state;
	struct tdir t;
	struct owner *o = malloc(sizeof(*o));
	int err;
	td_make(&t);
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o_set(o, 0, 1, 1, 1, NOW + 100), 0);   /* segment of gen 1 open */
	assert_int_equal(bstore_compact(o->s, NOW), 0);         /* covers and unlinks it */
	assert_int_equal(deleted_segment_fds(), 1);             /* still held by writer 0 */
	assert_int_equal(o_set(o, 0, 2, 1, 1, NOW + 100), 0);   /* the worker moves on... */
	assert_int_equal(deleted_segment_fds(), 1);             /* ...without closing it */
	assert_int_equal(bstore_compact(o->s, NOW), 0);         /* the store closes it */
	assert_int_equal(deleted_segment_fds(), 1);             /* (now gen 2's, covered) */
	bstore_close(o->s);
	assert_int_equal(deleted_segment_fds(), 0);
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_true(o->e[1].seen && o->e[2].seen);
	assert_int_equal(o->bad_reports, 0);
	bstore_close(o->s);
	td_rm(&t);
	free(o);
}

/* ---- bindings.db of earlier versions ---- */

static void test_import_sqlite(void **state)
{
	(void)state;
	struct tdir t;
	struct owner *o = malloc(sizeof(*o));
	char p[256];
	sqlite3 *db;
	int err;
	td_make(&t);
	td_path(&t, "bindings.db", p, sizeof(p));
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	char sql[1200];
	snprintf(sql, sizeof(sql),
		 "PRAGMA journal_mode=WAL;"
		 "CREATE TABLE bindings (aor TEXT NOT NULL, contact TEXT NOT NULL,"
		 " instance TEXT NOT NULL DEFAULT '', reg_id INTEGER NOT NULL DEFAULT -1,"
		 " q INTEGER NOT NULL DEFAULT -1, expires_at INTEGER NOT NULL, call_id TEXT NOT NULL,"
		 " cseq INTEGER NOT NULL, path TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '',"
		 " recv_addr TEXT NOT NULL DEFAULT '', recv_port INTEGER NOT NULL DEFAULT 0,"
		 " proto INTEGER NOT NULL DEFAULT 0, conn_id INTEGER NOT NULL DEFAULT 0,"
		 " worker INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (aor, contact)) WITHOUT ROWID;"
		 "INSERT INTO bindings VALUES ('sip:u1@x','sip:a@192.0.2.1','',-1,-1,%lld,'c1',5,'','UA','192.0.2.9',5060,0,0,0);"
		 "INSERT INTO bindings VALUES ('sip:u1@x','sip:b@192.0.2.2','',-1,-1,%lld,'c1',5,'','UA','2001:db8::9',5060,1,0,0);"
		 "INSERT INTO bindings VALUES ('sip:u2@x','sip:c@192.0.2.3','',-1,-1,%lld,'c2',9,'','UA','',0,0,0,0);"
		 "INSERT INTO bindings VALUES ('sip:u3@x','sip:d@192.0.2.4','',-1,-1,%lld,'c3',1,'','UA','',0,0,0,0);",
		 NOW + 100, NOW + 100, NOW + 200, NOW - 5);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o->loads, 2);             /* u1 (two rows), u2; u3 expired */
	assert_int_equal(o->e[1].n, 2);
	assert_int_equal(o->e[2].cseq, 9);
	assert_false(o->e[3].seen);
	struct bstore_stats st;
	bstore_stats(o->s, &st);
	assert_int_equal(st.imported, 3);
	bstore_close(o->s);
	assert_false(td_exists(&t, "bindings.db"));
	assert_true(td_exists(&t, "bindings.db.imported"));
	assert_true(td_exists(&t, "bindings.snap"));

	/* next start: from the snapshot, nothing imported again */
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o->loads, 2);
	assert_int_equal(o->e[2].cseq, 9);
	bstore_stats(o->s, &st);
	assert_int_equal(st.imported, 0);
	bstore_close(o->s);

	/* an empty bindings.db (no table) imports nothing and still moves */
	td_rm(&t);
	td_make(&t);
	td_write(&t, "bindings.db", "", 0);
	o_init(o);
	assert_non_null(o_open(o, &t, NULL, NOW, &err));
	assert_int_equal(o->loads, 0);
	bstore_close(o->s);
	assert_true(td_exists(&t, "bindings.db.imported"));
	td_rm(&t);
	free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_reader_damage),
		cmocka_unit_test(test_replay_order),
		cmocka_unit_test(test_open_damage),
		cmocka_unit_test(test_write_failure_and_fsync),
		cmocka_unit_test(test_compaction_concurrent),
		cmocka_unit_test(test_crash_mid_compaction),
		cmocka_unit_test(test_mapped_windows),
		cmocka_unit_test(test_window_unmapped_by_store),
		cmocka_unit_test(test_covered_segment_closed_by_store),
		cmocka_unit_test(test_import_sqlite),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
