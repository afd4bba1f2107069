/* Persistent binding store: an append-only journal written by the workers
 * and a snapshot rewritten in the background.
 *
 * Durability: bstore_append returns only after the record is in the
 * kernel's page cache, in the worker's own segment file: encoded straight
 * into a shared mapping of the file (no system call per record), or,
 * where the file system cannot preallocate, with one write(). The page
 * cache belongs to the kernel, so the record survives the death of the
 * process (kill -9, crash, OOM kill); the registrar sends its 200 after
 * that. With conf.fsync the record's pages are also synced before the
 * return (msync / fdatasync: power loss, kernel crash). Every record
 * carries a CRC32C, so a partial record is never read as a whole one.
 *
 * Mapped segments: the file is extended with fallocate (blocks really
 * reserved, so a full disk is an error here and never a SIGBUS on a
 * store) by SEG_CHUNK at a time and mapped a window at a time; it ends in
 * zeroes until a clean close truncates it to its records. The reader
 * takes a zero tail for the end of the file. A failed extension or
 * mapping writes nothing. (Measured: the write() per REGISTER was ~10 %
 * of the server's CPU in steady-state refreshes.)
 *
 * Generations: each partition (registrar shard) carries the generation
 * its records go to, read and changed only under the partition's lock
 * (held by the caller). bindings.snap at generation S holds everything
 * written to segments of generations below S; replay = snapshot + every
 * segment of generation >= S, and for each AOR the highest seq wins.
 *
 * Compaction to T = (highest generation in use) + 1, on the store's
 * thread: for each partition, under its lock, mark it T and copy its AORs
 * (with their seqs) into bindings.snap.tmp. A write the owner makes under
 * that lock after the mark goes to a segment of T, so every record in a
 * segment below T was in memory when its partition was copied. Then
 * fdatasync, rename to bindings.snap, fsync the directory, and only then
 * unlink the segments below T. A crash before the rename leaves the old
 * snapshot and all segments (T's included: replayed, highest seq wins); a
 * crash after it leaves a snapshot that covers the old segments, deleted
 * at the next open. A failed compaction leaves partitions at T and the
 * old files in place, which is a state of the same kind.
 *
 * Sequence numbers: per partition, bumped under its lock; at open every
 * partition starts above the highest seq on disk, so a run's records beat
 * the ones before it. An AOR stays in one partition for a process's life. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/thread.h"
#include "store/bindings.h"
#include "store/journal.h"
#include "store/migrate.h"

#define SNAP_NAME "bindings.snap"
#define SNAP_TMP "bindings.snap.tmp"
#define LEGACY_DB "bindings.db"

struct bpart {
	uint64_t seq;              /* last seq handed out */
	uint64_t gen;              /* where this partition's records go */
} __attribute__((aligned(64)));  /* workers on different shards: no false sharing */

/* Preallocation step and mapping window of a segment. */
#define SEG_CHUNK (1u << 20)

struct wslot {
	int fd;
	bool dir_synced;           /* fsync mode: the new file's name is durable */
	bool nomap;                /* no fallocate here: one write() per record */
	uint64_t gen;
	uint64_t size;             /* header + records: where the next one goes */
	uint64_t alloc;            /* file size (mapped: preallocated) */
	uint8_t *map;              /* the file's bytes [map_off, map_off + map_len) */
	uint64_t map_off;
	size_t map_len;
};

/* One per writer id; touched only by that writer's thread, except
 * `appended`, which the compaction thread reads. */
struct bwriter {
	struct wslot slot[2];      /* a compaction may span two generations */
	uint8_t *buf;
	size_t cap;
	_Atomic uint64_t appended; /* bytes appended since open */
	int inj_err;               /* tests: fail the next append */
	size_t inj_partial;
};

struct bstore_dump {
	struct sw_bstore *s;
	uint64_t gen;
	uint8_t *buf;
	size_t len, cap;
	uint64_t records;
	int err;
};

struct sw_bstore {
	char *dir;
	int dirfd;
	struct bstore_conf conf;
	struct bstore_hooks h;
	struct bpart parts[BSTORE_MAX_PARTS];
	struct bwriter *_Atomic w[BSTORE_MAX_WRITERS];
	_Atomic uint64_t snap_gen;  /* segments below it are gone (or going) */

	pthread_mutex_t cmu;       /* one compaction at a time; what follows */
	uint64_t cur_gen;          /* highest generation a partition has */
	uint64_t journal_base;     /* live segment bytes found at open */
	uint64_t appended_mark;    /* sum of `appended` at the last compaction */
	uint64_t snap_size;
	struct bstore_stats st;

	/* Segments a worker stopped using because a compaction covered them:
	 * their last close() frees the (unlinked) file's page cache, tens of
	 * ms for a 64 MB journal (helper-19's trace), so the store's thread
	 * closes them, not the worker. */
	pthread_mutex_t gmu;
	struct wslot *graves;
	unsigned ngraves, gcap;

	pthread_mutex_t mu;        /* the thread's sleep */
	pthread_cond_t cv;
	bool stop, started;
	pthread_t thread;
};

void bstore_conf_default(struct bstore_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->fsync = false;
	c->compact_min_bytes = 64ull << 20;
	c->compact_ratio = 2;
	c->check_ms = 1000;
	c->retry_ms = 60000;
}

static void report(struct sw_bstore *s, const char *file, uint64_t off, const char *what, int err)
{
	if (s->h.report)
		s->h.report(s->h.report_ctx, file, off, what, err);
}

static void test_kill(struct sw_bstore *s, int step)
{
	if (s->conf.kill_at == step)
		raise(SIGKILL);
}

static void seg_name(char *out, size_t cap, unsigned w, uint64_t gen)
{
	snprintf(out, cap, "bindings-%u-%llu.log", w, (unsigned long long)gen);
}

/* "bindings-W-G.log" -> W, G; false for any other name. */
static bool seg_parse(const char *name, unsigned *w, uint64_t *gen)
{
	static const char pre[] = "bindings-";
	const char *p = name;
	uint64_t v[2] = { 0, 0 };
	if (strncmp(p, pre, sizeof(pre) - 1) != 0)
		return false;
	p += sizeof(pre) - 1;
	for (int i = 0; i < 2; i++) {
		const char *d = p;
		while (*p >= '0' && *p <= '9' && p - d < 19)
			v[i] = v[i] * 10 + (uint64_t)(*p++ - '0');
		/* canonical only (no leading zero): seg_name gives it back */
		if (p == d || (*d == '0' && p - d > 1) || *p != (i == 0 ? '-' : '.'))
			return false;
		p++;
	}
	if (strcmp(p, "log") != 0 || v[0] >= BSTORE_MAX_WRITERS)
		return false;
	*w = (unsigned)v[0];
	*gen = v[1];
	return true;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- the workers' side ---- */

static struct bwriter *writer_get(struct sw_bstore *s, unsigned id)
{
	struct bwriter *w = atomic_load_explicit(&s->w[id], memory_order_acquire);
	if (w)
		return w;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	for (int i = 0; i < 2; i++)
		w->slot[i].fd = -1;
	atomic_store_explicit(&s->w[id], w, memory_order_release);
	return w;
}

static void slot_close(struct wslot *sl)
{
	if (sl->map)
		munmap(sl->map, sl->map_len);
	/* the preallocated zero tail goes (the reader would skip it anyway) */
	if (sl->fd >= 0 && !sl->nomap && sl->alloc > sl->size)
		(void)!ftruncate(sl->fd, (off_t)sl->size);
	if (sl->fd >= 0)
		close(sl->fd);
	*sl = (struct wslot){ .fd = -1 };
}

static void slot_bury(struct sw_bstore *s, struct wslot *sl);

/* Map the file so that [size, size + need) is inside the window,
 * preallocating as needed. -EOPNOTSUPP when the file system cannot
 * preallocate (the slot then writes); other errors leave nothing
 * written.
 *
 * A window switch happens every ~0.25 s at 30 000 REGISTERs/s and ran on
 * the worker: mmap with MAP_POPULATE (read-faulting the 256 pages at
 * once) ~0.35 ms, and munmap of the written window ~0.35 ms, in one
 * request's path (measured with a timing probe). The pages now fault in
 * one by one as records reach them (~20 µs each on the project's VM,
 * once per ~30 records), and the old window is unmapped by the store's
 * thread; what is left per switch is ~80 µs (fallocate, mmap). */
static int slot_window(struct sw_bstore *s, struct wslot *sl, size_t need)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t start = sl->size & ~(page - 1);
	size_t len = SEG_CHUNK;
	while (start + len < sl->size + need)
		len += SEG_CHUNK;
	if (start + len > sl->alloc) {
		int rc;
		do
			rc = fallocate(sl->fd, 0, (off_t)sl->alloc, (off_t)(start + len - sl->alloc));
		while (rc < 0 && errno == EINTR);
		if (rc < 0)
			return errno == EINVAL || errno == ENOSYS ? -EOPNOTSUPP : -errno;
		sl->alloc = start + len;
	}
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, sl->fd, (off_t)start);
	if (m == MAP_FAILED)
		return -errno;
	/* no readahead: the first fault would read (zero-fill) the whole
	 * window ahead, ~0.3 ms in one request's path */
	(void)madvise(m, len, MADV_RANDOM);
	if (sl->map) {
		struct wslot old = { .fd = -1, .map = sl->map, .map_len = sl->map_len };
		if (s->started)
			slot_bury(s, &old);
		else
			munmap(old.map, old.map_len);
	}
	sl->map = m;
	sl->map_off = start;
	sl->map_len = len;
	return 0;
}

/* Hand a covered segment, or a written window (fd -1), to the store's
 * thread (or close it here when the list cannot grow). */
static void slot_bury(struct sw_bstore *s, struct wslot *sl)
{
	pthread_mutex_lock(&s->gmu);
	if (s->ngraves == s->gcap) {
		unsigned cap = s->gcap ? s->gcap * 2 : 8;
		struct wslot *g = realloc(s->graves, cap * sizeof(*g));
		if (g) {
			s->graves = g;
			s->gcap = cap;
		}
	}
	bool kept = s->ngraves < s->gcap;
	if (kept)
		s->graves[s->ngraves++] = *sl;
	pthread_mutex_unlock(&s->gmu);
	if (kept)
		*sl = (struct wslot){ .fd = -1 };
	else
		slot_close(sl);
}

/* Close what the workers buried: windows, and segments whose files are
 * unlinked (no truncation). */
static void graves_close(struct sw_bstore *s)
{
	pthread_mutex_lock(&s->gmu);
	struct wslot *g = s->graves;
	unsigned n = s->ngraves;
	s->graves = NULL;
	s->ngraves = s->gcap = 0;
	pthread_mutex_unlock(&s->gmu);
	for (unsigned i = 0; i < n; i++) {
		if (g[i].map)
			munmap(g[i].map, g[i].map_len);
		if (g[i].fd >= 0)
			close(g[i].fd);
	}
	free(g);
}

/* The open segment of generation gen for writer id, opened (created) on
 * first use. Files below snap_gen were deleted by a compaction: buried. */
static struct wslot *slot_for(struct sw_bstore *s, struct bwriter *w, unsigned id, uint64_t gen,
			      int *err)
{
	uint64_t sg = atomic_load_explicit(&s->snap_gen, memory_order_acquire);
	struct wslot *pick = NULL;
	for (int i = 0; i < 2; i++) {
		struct wslot *sl = &w->slot[i];
		if (sl->fd >= 0 && sl->gen < sg)
			slot_bury(s, sl);
		if (sl->fd >= 0 && sl->gen == gen)
			return sl;
	}
	for (int i = 0; i < 2 && !pick; i++)
		if (w->slot[i].fd < 0)
			pick = &w->slot[i];
	if (!pick) {
		pick = w->slot[0].gen < w->slot[1].gen ? &w->slot[0] : &w->slot[1];
		slot_close(pick);
	}
	char name[64];
	seg_name(name, sizeof(name), id, gen);
	/* Never through a symlink planted in data_dir. */
	int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		*err = -errno;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	*pick = (struct wslot){ .fd = fd, .gen = gen, .size = (uint64_t)st.st_size,
				.alloc = (uint64_t)st.st_size, .dir_synced = st.st_size > 0 };
	return pick;
}

/* fsync mode: the record's pages (and the new file's name) on disk; len
 * = the record's bytes in the mapping, 0 = it was written with pwrite. */
static int slot_sync(struct sw_bstore *s, struct wslot *sl, size_t len)
{
	int rc;
	if (len) {
		uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
		uint64_t from = sl->size & ~(page - 1);
		rc = msync(sl->map + (from - sl->map_off), sl->size + len - from, MS_SYNC);
	} else {
		rc = fdatasync(sl->fd);
	}
	if (rc < 0)
		return -errno;
	if (!sl->dir_synced && fsync(s->dirfd) < 0)
		return -errno;
	sl->dir_synced = true;
	return 0;
}

/* The record with one write() (no preallocation, or a test's injected
 * failure). A failed or short write is cut off again with ftruncate. */
static int append_write(struct sw_bstore *s, struct bwriter *w, struct wslot *sl,
			const struct bstore_rec *r, size_t hdr, size_t need)
{
	if (w->cap < hdr + need) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < hdr + need)
			cap *= 2;
		uint8_t *nb = realloc(w->buf, cap);
		if (!nb)
			return -ENOMEM;
		w->buf = nb;
		w->cap = cap;
	}
	if (hdr)
		bj_hdr_encode(w->buf, BJ_SEGMENT, sl->gen);
	if (bj_rec_encode(r, w->buf + hdr, w->cap - hdr) < 0)
		return -EINVAL;
	size_t len = hdr + need;
	off_t at = (off_t)sl->size;
	ssize_t n;
	int err;
	if (w->inj_err) {
		size_t k = w->inj_partial < len ? w->inj_partial : len - 1;
		n = k ? pwrite(sl->fd, w->buf, k, at) : -1;
		err = -w->inj_err;
		w->inj_err = 0;
	} else {
		do
			n = pwrite(sl->fd, w->buf, len, at);
		while (n < 0 && errno == EINTR);
		err = n < 0 ? -errno : -EIO;   /* short: the disk is full, or worse */
	}
	if (n == (ssize_t)len && s->conf.fsync && (err = slot_sync(s, sl, 0)) != 0)
		n = -2;
	if (n != (ssize_t)len) {
		/* Nothing of this record may stay: zero it in a preallocated
		 * file, cut the file back otherwise. If even that fails, close
		 * it; the next open appends after the remnant, which the reader
		 * skips (CRC, resynchronisation). */
		if (n > 0 && sl->alloc > sl->size) {
			static const uint8_t zero[4096];
			for (size_t o = 0; o < (size_t)n; o += sizeof(zero)) {
				size_t c = (size_t)n - o < sizeof(zero) ? (size_t)n - o : sizeof(zero);
				if (pwrite(sl->fd, zero, c, at + (off_t)o) != (ssize_t)c) {
					slot_close(sl);
					break;
				}
			}
		} else if (n != -1 && ftruncate(sl->fd, at) < 0) {
			slot_close(sl);
		}
		return err;
	}
	if (sl->size + len > sl->alloc)
		sl->alloc = sl->size + len;
	return 0;
}

int bstore_append(struct sw_bstore *s, unsigned part, unsigned writer,
		  const struct bstore_rec *rec, uint64_t *seq)
{
	if (!s || part >= s->h.nparts || writer >= BSTORE_MAX_WRITERS || !rec)
		return -EINVAL;
	struct bpart *pt = &s->parts[part];
	struct bwriter *w = writer_get(s, writer);
	if (!w)
		return -ENOMEM;
	struct bstore_rec r = *rec;
	/* Bumped even when the write fails: a record that could not be cut
	 * off again must not share its seq with the next one. */
	r.seq = ++pt->seq;
	size_t need = bj_rec_size(&r);
	if (!need)
		return -EINVAL;
	int err = 0;
	struct wslot *sl = slot_for(s, w, writer, pt->gen, &err);
	if (!sl)
		return err;
	size_t hdr = sl->size == 0 ? BJ_HDR_LEN : 0;
	size_t len = hdr + need;
	/* a test's injected failure takes the write path, which can fail */
	bool mapped = !sl->nomap && !w->inj_err;
	if (mapped && sl->size + len > sl->map_off + sl->map_len) {
		int rc = slot_window(s, sl, len);
		if (rc == -EOPNOTSUPP)
			mapped = false, sl->nomap = true;
		else if (rc)
			return rc;
	}
	if (mapped) {
		/* Encoded in place: in the page cache once this returns. */
		uint8_t *dst = sl->map + (sl->size - sl->map_off);
		if (hdr)
			bj_hdr_encode(dst, BJ_SEGMENT, pt->gen);
		if (bj_rec_encode(&r, dst + hdr, need) < 0) {
			memset(dst, 0, len);
			return -EINVAL;
		}
		if (s->conf.fsync && (err = slot_sync(s, sl, len)) != 0) {
			memset(dst, 0, len);
			return err;
		}
	} else if ((err = append_write(s, w, sl, &r, hdr, need)) != 0) {
		return err;
	}
	sl->size += len;
	atomic_store_explicit(&w->appended,
			      atomic_load_explicit(&w->appended, memory_order_relaxed) + len,
			      memory_order_relaxed);
	*seq = r.seq;
	return 0;
}

void bstore_inject_write_error(struct sw_bstore *s, unsigned writer, int err, size_t partial)
{
	struct bwriter *w = writer < BSTORE_MAX_WRITERS ? writer_get(s, writer) : NULL;
	if (w) {
		w->inj_err = err > 0 ? err : -err;
		w->inj_partial = partial;
	}
}

/* ---- compaction ---- */

void bstore_dump_mark(struct bstore_dump *d, unsigned part)
{
	if (part < d->s->h.nparts)
		d->s->parts[part].gen = d->gen;
}

int bstore_dump_add(struct bstore_dump *d, const struct bstore_rec *rec)
{
	size_t need = bj_rec_size(rec);
	if (!need)
		return d->err = -EINVAL;
	if (d->cap - d->len < need) {
		size_t cap = d->cap ? d->cap : 1 << 20;
		while (cap - d->len < need)
			cap *= 2;
		uint8_t *nb = realloc(d->buf, cap);
		if (!nb)
			return d->err = -ENOMEM;
		d->buf = nb;
		d->cap = cap;
	}
	bj_rec_encode(rec, d->buf + d->len, need);
	d->len += need;
	d->records++;
	return 0;
}

static uint64_t sum_appended(struct sw_bstore *s)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < BSTORE_MAX_WRITERS; i++) {
		struct bwriter *w = atomic_load_explicit(&s->w[i], memory_order_acquire);
		if (w)
			t += atomic_load_explicit(&w->appended, memory_order_relaxed);
	}
	return t;
}

/* The directory's entries, through a descriptor of its own (a dup would
 * share the read position). */
static DIR *dir_list(struct sw_bstore *s)
{
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d && fd >= 0)
		close(fd);
	return d;
}

/* Unlink every segment of a generation below gen. */
static void drop_segments_below(struct sw_bstore *s, uint64_t gen)
{
	DIR *d = dir_list(s);
	if (!d)
		return;
	struct dirent *e;
	bool first = true;
	while ((e = readdir(d))) {
		unsigned w;
		uint64_t g;
		if (seg_parse(e->d_name, &w, &g) && g < gen) {
			if (unlinkat(s->dirfd, e->d_name, 0) < 0 && errno != ENOENT)
				report(s, e->d_name, 0, "cannot delete a compacted segment", -errno);
			if (first)
				test_kill(s, 4);
			first = false;
		}
	}
	closedir(d);
}

static int compact_locked(struct sw_bstore *s, int64_t now_s)
{
	graves_close(s);   /* the last compaction's, when there is no thread */
	struct bstore_dump d = { .s = s, .gen = s->cur_gen + 1 };
	uint8_t hdr[BJ_HDR_LEN];
	struct stat st;
	int rc;

	int fd = openat(s->dirfd, SNAP_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	bj_hdr_encode(hdr, BJ_SNAPSHOT, d.gen);
	rc = write_all(fd, hdr, sizeof(hdr));
	/* From the first mark on, partitions may be at d.gen: the next
	 * compaction must go above it whatever happens here. */
	s->cur_gen = d.gen;
	for (unsigned p = 0; rc == 0 && p < s->h.nparts; p++) {
		d.len = 0;
		rc = s->h.dump(s->h.ctx, p, &d, now_s);
		if (rc == 0)
			rc = d.err;
		if (rc == 0 && s->parts[p].gen != d.gen)
			rc = -EINVAL;   /* the owner did not mark it: a bug */
		if (rc == 0)
			rc = write_all(fd, d.buf, d.len);
		if (p == s->h.nparts / 2)
			test_kill(s, 1);
	}
	uint64_t mark = sum_appended(s);
	free(d.buf);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	if (rc == 0 && fstat(fd, &st) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0) {
		test_kill(s, 2);
		if (renameat(s->dirfd, SNAP_TMP, s->dirfd, SNAP_NAME) < 0)
			rc = -errno;
	}
	if (rc) {
		unlinkat(s->dirfd, SNAP_TMP, 0);
		return rc;
	}
	test_kill(s, 3);
	/* The rename must be on disk before the segments it replaces go. */
	if (fsync(s->dirfd) < 0)
		return -errno;
	atomic_store_explicit(&s->snap_gen, d.gen, memory_order_release);
	drop_segments_below(s, d.gen);
	s->journal_base = 0;
	s->appended_mark = mark;
	s->snap_size = (uint64_t)st.st_size;
	s->st.snap_bytes = s->snap_size;
	s->st.compactions++;
	s->st.gen = d.gen;
	return 0;
}

int bstore_compact(struct sw_bstore *s, int64_t now_s)
{
	pthread_mutex_lock(&s->cmu);
	int rc = compact_locked(s, now_s);
	pthread_mutex_unlock(&s->cmu);
	return rc;
}

static bool compaction_due(struct sw_bstore *s)
{
	pthread_mutex_lock(&s->cmu);
	uint64_t journal = s->journal_base + sum_appended(s) - s->appended_mark;
	uint64_t limit = s->snap_size * s->conf.compact_ratio;
	if (limit < s->conf.compact_min_bytes)
		limit = s->conf.compact_min_bytes;
	pthread_mutex_unlock(&s->cmu);
	return journal > limit;
}

static void *compact_main(void *arg)
{
	struct sw_bstore *s = arg;
	unsigned wait_ms = s->conf.check_ms;

	/* Compaction copies a shard under its lock: at normal priority on a
	 * worker's core, a worker waiting for that lock waited out this
	 * thread's slice. */
	sw_thread_background("sw-compact");
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		sw_cond_wait_ms(&s->cv, &s->mu, wait_ms);
		if (s->stop)
			break;
		pthread_mutex_unlock(&s->mu);
		graves_close(s);
		wait_ms = s->conf.check_ms;
		if (compaction_due(s)) {
			int rc = bstore_compact(s, (int64_t)time(NULL));
			if (rc) {
				report(s, SNAP_NAME, 0, "compaction failed; retrying later", rc);
				wait_ms = s->conf.retry_ms;
			}
		}
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- open: replay ---- */

struct seg {
	unsigned w;
	uint64_t gen;
	char name[64];
};

struct scan {
	bool have_snap, have_db;
	struct seg *segs;
	unsigned nsegs, cap;
};

static int scan_dir(struct sw_bstore *s, struct scan *sc)
{
	DIR *d = dir_list(s);
	if (!d)
		return -errno;
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d))) {
		unsigned w;
		uint64_t g;
		if (strcmp(e->d_name, SNAP_NAME) == 0) {
			sc->have_snap = true;
		} else if (strcmp(e->d_name, LEGACY_DB) == 0) {
			sc->have_db = true;
		} else if (strcmp(e->d_name, SNAP_TMP) == 0) {
			unlinkat(s->dirfd, SNAP_TMP, 0);   /* a compaction that died */
		} else if (seg_parse(e->d_name, &w, &g)) {
			if (sc->nsegs == sc->cap) {
				unsigned cap = sc->cap ? sc->cap * 2 : 16;
				struct seg *n = realloc(sc->segs, cap * sizeof(*n));
				if (!n) {
					rc = -ENOMEM;
					break;
				}
				sc->segs = n;
				sc->cap = cap;
			}
			struct seg *sg = &sc->segs[sc->nsegs++];
			sg->w = w;
			sg->gen = g;
			seg_name(sg->name, sizeof(sg->name), w, g);
		}
	}
	closedir(d);
	return rc;
}

struct replay {
	int64_t now_s;
	uint64_t max_seq;
};

/* Load one file. *gen: the header's generation (snapshot), left alone when
 * the header is damaged. Returns 0, -EPROTO, or the load hook's error. */
static int replay_file(struct sw_bstore *s, struct replay *rp, const char *name,
		       enum bj_kind kind, uint64_t *gen, uint64_t *size_out)
{
	bool rw = kind == BJ_SEGMENT;
	int fd = openat(s->dirfd, name, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && rw && errno == EACCES) {
		rw = false;
		fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int rc = -errno;
		if (fd >= 0)
			close(fd);
		report(s, name, 0, "cannot read", rc);
		return 0;
	}
	*size_out = (uint64_t)st.st_size;
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		close(fd);
		return 0;
	}
	size_t len = (size_t)st.st_size;
	const uint8_t *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED) {
		int rc = -errno;
		close(fd);
		report(s, name, 0, "cannot map", rc);
		return 0;
	}
	madvise((void *)p, len, MADV_SEQUENTIAL);

	size_t off = BJ_HDR_LEN;
	uint64_t g;
	int rc = bj_hdr_check(p, len, kind, &g);
	if (rc == -EPROTO) {
		report(s, name, 0, "written by another format version: refusing to load", rc);
		goto out;
	}
	if (rc < 0) {
		/* Damaged header: still look for whole records in the rest. */
		report(s, name, 0, "damaged file header", rc);
		off = 0;
		rc = 0;
	} else {
		*gen = g;
	}
	struct bj_reader *rd = malloc(sizeof(*rd));
	if (!rd) {
		rc = -ENOMEM;
		goto out;
	}
	bj_reader_init(rd, p, len, off);
	struct bstore_rec rec;
	enum bj_next_rc nr;
	size_t cut = 0;
	while (rc == 0 && (nr = bj_next(rd, &rec)) != BJ_END) {
		if (nr == BJ_BAD) {
			char what[96];
			s->st.damaged++;
			snprintf(what, sizeof(what), "%s%s", rd->bad_why,
				 rd->bad_tail ? ", nothing valid after it (torn tail): dropped" :
				 ": skipped, later records kept");
			report(s, name, rd->bad_off, what, -EBADMSG);
			if (rd->bad_tail && off)
				cut = rd->bad_off;
			continue;
		}
		s->st.records++;
		if (rec.seq > rp->max_seq)
			rp->max_seq = rec.seq;
		/* Expired bindings are dropped; an AOR left with none is a
		 * tombstone for older records. */
		unsigned k = 0;
		for (unsigned i = 0; i < rec.n; i++)
			if (rd->b[i].expires_at > rp->now_s)
				rd->b[k++] = rd->b[i];
		rec.n = k;
		rc = s->h.load(s->h.ctx, &rec);
	}
	/* A preallocated zero tail (the writer was killed) is left alone: the
	 * file is never appended to again, and it is not journal bytes. */
	if (rd->zero_tail < len)
		*size_out = len - rd->zero_tail;
	free(rd);
	if (rc == 0 && cut && rw && ftruncate(fd, (off_t)cut) == 0)
		*size_out = cut;
out:
	munmap((void *)p, len);
	close(fd);
	return rc;
}

static int import_legacy(struct sw_bstore *s, struct replay *rp)
{
	uint64_t rows = 0;
	size_t n = strlen(s->dir) + sizeof("/" LEGACY_DB);
	char *path = malloc(n);
	if (!path)
		return -ENOMEM;
	snprintf(path, n, "%s/" LEGACY_DB, s->dir);
	int rc = bstore_import_sqlite(path, rp->now_s, s->h.load, s->h.ctx, &rp->max_seq, &rows);
	free(path);
	s->st.imported = rows;
	return rc;
}

static void rename_legacy(struct sw_bstore *s)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	for (unsigned i = 0; i < 3; i++) {
		char from[32], to[48];
		snprintf(from, sizeof(from), LEGACY_DB "%s", sfx[i]);
		snprintf(to, sizeof(to), LEGACY_DB ".imported%s", sfx[i]);
		if (renameat(s->dirfd, from, s->dirfd, to) < 0 && errno != ENOENT)
			report(s, from, 0, "imported, but cannot be renamed", -errno);
	}
}

static int load_all(struct sw_bstore *s, int64_t now_s)
{
	struct scan sc = { 0 };
	struct replay rp = { .now_s = now_s };
	uint64_t snap_gen = 0, max_gen = 0, sz = 0;
	bool import = false;
	int rc = scan_dir(s, &sc);
	if (rc)
		goto out;

	if (sc.have_snap) {
		rc = replay_file(s, &rp, SNAP_NAME, BJ_SNAPSHOT, &snap_gen, &sz);
		if (rc)
			goto out;
		s->snap_size = sz;
		s->st.snap_bytes = sz;
	}
	max_gen = snap_gen;
	for (unsigned i = 0; i < sc.nsegs; i++) {
		struct seg *sg = &sc.segs[i];
		if (sg->gen < snap_gen) {
			/* Covered by the snapshot: a compaction died before this
			 * unlink. */
			unlinkat(s->dirfd, sg->name, 0);
			continue;
		}
		uint64_t hg = sg->gen;
		rc = replay_file(s, &rp, sg->name, BJ_SEGMENT, &hg, &sz);
		if (rc)
			goto out;
		if (hg != sg->gen)
			report(s, sg->name, 0, "header generation differs from the file name", -EBADMSG);
		if (sg->gen > max_gen)
			max_gen = sg->gen;
		s->journal_base += sz;
		s->st.journal_bytes += sz;
		s->st.segments++;
	}
	if (sc.have_db) {
		if (!sc.have_snap && sc.nsegs == 0) {
			rc = import_legacy(s, &rp);
			if (rc)
				goto out;
			import = true;
		} else {
			report(s, LEGACY_DB, 0, "left alone: the binding journal exists", 0);
		}
	}

	if (s->h.load_end && (rc = s->h.load_end(s->h.ctx)) != 0)
		goto out;

	/* A new run writes new files: a generation above everything found. */
	s->cur_gen = max_gen + 1;
	atomic_store(&s->snap_gen, snap_gen);
	for (unsigned p = 0; p < s->h.nparts; p++) {
		s->parts[p].gen = s->cur_gen;
		s->parts[p].seq = rp.max_seq;
	}
	s->st.gen = s->cur_gen;
	if (import) {
		/* The imported table becomes the first snapshot; only then is
		 * bindings.db moved away. */
		rc = compact_locked(s, now_s);
		if (rc)
			goto out;
		rename_legacy(s);
	}
out:
	free(sc.segs);
	return rc;
}

struct sw_bstore *bstore_open(const char *dir, const struct bstore_conf *conf,
			      const struct bstore_hooks *hooks, int64_t now_s, int *err)
{
	struct bstore_conf defc;
	struct sw_bstore *s = NULL;
	int rc;

	if (!conf) {
		bstore_conf_default(&defc);
		conf = &defc;
	}
	if (!dir || !hooks || !hooks->load || !hooks->dump || hooks->nparts == 0 ||
	    hooks->nparts > BSTORE_MAX_PARTS || conf->check_ms == 0) {
		rc = -EINVAL;
		goto fail;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto fail;
	}
	s->conf = *conf;
	s->h = *hooks;
	pthread_mutex_init(&s->cmu, NULL);
	pthread_mutex_init(&s->gmu, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->dir = strdup(dir);
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!s->dir)
		errno = ENOMEM;
	if (s->dirfd < 0 || !s->dir) {
		rc = -errno;
		goto fail_free;
	}
	/* One process per data_dir: a second one would write segments of the
	 * same names and delete the first one's in its compactions. */
	if (!conf->no_lock && flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail_free;
	}
	rc = load_all(s, now_s);
	if (rc)
		goto fail_free;
	if (!conf->no_thread) {
		rc = -pthread_create(&s->thread, NULL, compact_main, s);
		if (rc)
			goto fail_free;
		s->started = true;
	}
	if (err)
		*err = 0;
	return s;

fail_free:
	bstore_close(s);
fail:
	if (err)
		*err = rc;
	return NULL;
}

void bstore_stats(struct sw_bstore *s, struct bstore_stats *out)
{
	pthread_mutex_lock(&s->cmu);
	*out = s->st;
	out->journal_bytes = s->journal_base + sum_appended(s) - s->appended_mark;
	pthread_mutex_unlock(&s->cmu);
}

void bstore_close(struct sw_bstore *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	for (unsigned i = 0; i < BSTORE_MAX_WRITERS; i++) {
		struct bwriter *w = atomic_load(&s->w[i]);
		if (!w)
			continue;
		for (int k = 0; k < 2; k++)
			slot_close(&w->slot[k]);
		free(w->buf);
		free(w);
	}
	graves_close(s);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->dir);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->cmu);
	pthread_mutex_destroy(&s->gmu);
	free(s);
}
