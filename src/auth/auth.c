/* Digest authentication engine (issue 3). See auth.h for the contract. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"

/* Longest cnonce accepted (quotes excluded). */
#define AUTH_CNONCE_MAX 256
#include "auth/digest.h"
#include "auth/nonce.h"
#include "base/clock.h"
#include "base/ct.h"
#include "base/siphash.h"
#include "base/str.h"
#include "base/thread.h"
#include "config/auth_keys.h"
#include "sip/authhdr.h"
#include "sip/fields.h"
#include "store/creds.h"

#define SECRET_FILE "nonce.secret"
#define DEFAULT_RETRY_AFTER 5
#define POLL_MS 1000
/* The reloader thread checks more often: a PRAGMA data_version costs
 * microseconds off the request path, and a user added by the CLI is
 * usable within 0.1 s even under continuous traffic. */
#define RELOADER_POLL_MS 100
#define FUTURE_SKEW 30          /* seconds a clustered peer's clock may lead */
#define FAIL_SLOTS 4096
#define FAIL_SHARDS 16
#define FAIL_WINDOW 600         /* seconds a failure is remembered */

_Static_assert(CREDS_ALGS == AUTH_H__COUNT, "store columns follow enum auth_hash");

struct realm_rt {
	const struct auth_realm_conf *rc;
	struct sw_str name;
	char opaque[23];
};

struct fail_ent {
	uint64_t key;
	uint32_t n;
	int64_t last;
};

#define AUTH_READERS 272       /* workers (<= 256) plus tests and tools */

struct reader_slot {
	_Alignas(64) _Atomic uint64_t seq;   /* odd: inside a snapshot read */
	_Atomic bool taken;
};

struct sw_auth {
	const struct sw_config *cfg;
	struct realm_rt realms[AUTH_MAX_REALMS];
	unsigned nrealms;
	struct nonce_mac *mac;            /* keyed master; workers dup it */
	struct nonce_tab *nonces;
	char dummy_ha1[AUTH_H__COUNT][DIGEST_HEX_MAX];
	uint32_t retry_after;

	/* failures per (source, realm, username) for after_failure = reject */
	struct sw_hkey fkey;
	struct fail_ent fails[FAIL_SLOTS];
	pthread_mutex_t fail_mx[FAIL_SHARDS];

	/* credential store */
	char *db_path;                    /* NULL: snapshot given by auth_set_snapshot */
	pthread_mutex_t reload_mx;        /* guards db, db_version */
	struct creds_db *db;
	uint64_t db_version;
	bool loaded;
	_Atomic uint64_t next_poll_ms;
	/* the reloader thread (auth_start_reloader); workers then never poll */
	_Atomic bool reloader_on;
	bool reloader_stop;
	pthread_t reloader;
	pthread_mutex_t rl_mx;
	pthread_cond_t rl_cv;
	/* The snapshot is read without a shared lock (issue 6: a read-write
	 * lock's reader count was a cache line every worker wrote on every
	 * authenticated request). Each worker owns a reader slot on its own
	 * cache line: its count is odd while it uses the snapshot. A writer
	 * swaps the pointer, then waits for every slot it saw odd to move on
	 * before freeing the old snapshot. */
	_Atomic(struct creds_snap *) snap;
	pthread_mutex_t swap_mx;          /* one writer at a time */
	struct reader_slot readers[AUTH_READERS];
	_Atomic bool avail;
};

struct auth_worker {
	struct sw_auth *a;
	struct reader_slot *rs;           /* this worker's slot in a->readers */
	EVP_MD_CTX *md;
	struct nonce_mac *mac;
	struct nonce_cursor nc;           /* this worker's run of nonce slots */
};

/* ---- small helpers ---- */

static int whyf(char *why, size_t cap, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int whyf(char *why, size_t cap, int err, const char *fmt, ...)
{
	va_list ap;
	if (why && cap) {
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return err;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex_decode(struct sw_str s, uint8_t *out, size_t cap, size_t *outlen)
{
	if (s.len % 2 || s.len / 2 > cap)
		return -EINVAL;
	for (size_t i = 0; i < s.len; i += 2) {
		int h = hexval(s.p[i]), l = hexval(s.p[i + 1]);
		if (h < 0 || l < 0)
			return -EINVAL;
		out[i / 2] = (uint8_t)(h << 4 | l);
	}
	*outlen = s.len / 2;
	return 0;
}

/* ---- nonce secret ---- */

static int secret_read(const char *path, uint8_t *key, size_t *klen, char *why, size_t whycap)
{
	char buf[2 * AUTH_SECRET_MAX + 8];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
		close(fd);
		return whyf(why, whycap, -EPERM, "%s: readable by group or others (chmod 600)", path);
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return whyf(why, whycap, -EIO, "%s: cannot read", path);
	struct sw_str s = sw_str_trim(sw_str_mk(buf, (size_t)n));
	int rc = s.len < 32 ? -EINVAL : hex_decode(s, key, AUTH_SECRET_MAX, klen);
	sw_cleanse(buf, sizeof(buf));
	if (rc)
		return whyf(why, whycap, -EINVAL, "%s: expected 32 to %d hex digits", path,
			    2 * AUTH_SECRET_MAX);
	return 0;
}

/* <data_dir>/nonce.secret: created 0600 with 32 random bytes when absent.
 * Copy it to every node of a cluster (or set [auth] nonce_secret). */
static int secret_load_or_create(const char *path, uint8_t *key, size_t *klen, char *why,
				 size_t whycap)
{
	int rc = secret_read(path, key, klen, why, whycap);
	if (rc != -ENOENT)
		return rc;
	uint8_t k[32];
	char hex[65];
	if (RAND_bytes(k, sizeof(k)) != 1)
		return whyf(why, whycap, -EIO, "no random bytes for the nonce secret");
	digest_tohex(k, sizeof(k), hex);
	hex[64] = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		sw_cleanse(k, sizeof(k));
		sw_cleanse(hex, sizeof(hex));
		if (errno == EEXIST) /* another process won the race */
			return secret_read(path, key, klen, why, whycap);
		return whyf(why, whycap, -errno, "%s: cannot create: %s", path, strerror(errno));
	}
	ssize_t w = write(fd, hex, sizeof(hex));
	rc = (w == (ssize_t)sizeof(hex) && fsync(fd) == 0) ? 0 : -EIO;
	close(fd);
	sw_cleanse(hex, sizeof(hex));
	if (rc) {
		unlink(path);
		sw_cleanse(k, sizeof(k));
		return whyf(why, whycap, rc, "%s: cannot write", path);
	}
	memcpy(key, k, sizeof(k));
	*klen = sizeof(k);
	sw_cleanse(k, sizeof(k));
	return 0;
}

/* ---- credential snapshot ---- */

static void snap_swap(struct sw_auth *a, struct creds_snap *s)
{
	pthread_mutex_lock(&a->swap_mx);
	struct creds_snap *old = atomic_exchange(&a->snap, s);
	/* Readers that may still hold `old` are those inside a read now. */
	for (unsigned i = 0; i < AUTH_READERS; i++) {
		struct reader_slot *r = &a->readers[i];
		uint64_t v = atomic_load(&r->seq);
		while ((v & 1) && atomic_load(&r->seq) == v)
			sched_yield();
	}
	pthread_mutex_unlock(&a->swap_mx);
	creds_snap_free(old);
}

static const struct creds_snap *snap_enter(struct auth_worker *w)
{
	struct reader_slot *r = w->rs;
	atomic_store_explicit(&r->seq, atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	/* The odd count must be visible before the pointer is read (pairs
	 * with the exchange in snap_swap). */
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(&w->a->snap, memory_order_acquire);
}

static void snap_leave(struct auth_worker *w)
{
	struct reader_slot *r = w->rs;
	atomic_store_explicit(&r->seq, atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
			      memory_order_release);
}

/* Under reload_mx. */
static int poll_locked(struct sw_auth *a, bool force)
{
	uint64_t v = 0;
	int rc;

	if (!a->db_path)
		return atomic_load(&a->avail) ? 0 : -ENOENT;
	if (a->db && creds_db_gone(a->db)) {
		creds_db_close(a->db);
		a->db = NULL;
	}
	if (!a->db) {
		rc = creds_db_open(a->db_path, 0, &a->db);
		if (rc)
			goto down;
		a->loaded = false;
	}
	rc = creds_db_version(a->db, &v);
	if (rc)
		goto down;
	if (!a->loaded || v != a->db_version || force) {
		struct creds_snap *s;
		rc = creds_snap_load(a->db, &s);
		if (rc)
			goto down;
		snap_swap(a, s);
		a->db_version = v;
		a->loaded = true;
	}
	atomic_store(&a->avail, true);
	return 0;
down:
	/* Stop answering from an old snapshot: a deleted or disabled user
	 * must not keep working while the store is away. */
	creds_db_close(a->db);
	a->db = NULL;
	atomic_store(&a->avail, false);
	snap_swap(a, NULL);
	return rc;
}

static void maybe_poll(struct sw_auth *a)
{
	uint64_t now = sw_now_ms();
	if (!a->db_path || atomic_load_explicit(&a->reloader_on, memory_order_relaxed) ||
	    now < atomic_load_explicit(&a->next_poll_ms, memory_order_relaxed))
		return;
	/* One worker checks; the others carry on with the current snapshot. */
	if (pthread_mutex_trylock(&a->reload_mx))
		return;
	if (now >= atomic_load(&a->next_poll_ms)) {
		atomic_store(&a->next_poll_ms, now + POLL_MS);
		poll_locked(a, false);
	}
	pthread_mutex_unlock(&a->reload_mx);
}

static void *reloader_main(void *arg)
{
	struct sw_auth *a = arg;
	sw_thread_name("sw-creds");
	pthread_mutex_lock(&a->rl_mx);
	while (!a->reloader_stop) {
		sw_cond_wait_ms(&a->rl_cv, &a->rl_mx, RELOADER_POLL_MS);
		if (a->reloader_stop)
			break;
		pthread_mutex_unlock(&a->rl_mx);
		pthread_mutex_lock(&a->reload_mx);
		poll_locked(a, false);
		pthread_mutex_unlock(&a->reload_mx);
		pthread_mutex_lock(&a->rl_mx);
	}
	pthread_mutex_unlock(&a->rl_mx);
	return NULL;
}

int auth_start_reloader(struct sw_auth *a)
{
	if (!a->db_path || atomic_load(&a->reloader_on))
		return 0;
	a->reloader_stop = false;
	int rc = pthread_create(&a->reloader, NULL, reloader_main, a);
	if (rc)
		return -rc;
	atomic_store(&a->reloader_on, true);
	return 0;
}

static void reloader_stop(struct sw_auth *a)
{
	if (!atomic_load(&a->reloader_on))
		return;
	pthread_mutex_lock(&a->rl_mx);
	a->reloader_stop = true;
	pthread_cond_signal(&a->rl_cv);
	pthread_mutex_unlock(&a->rl_mx);
	pthread_join(a->reloader, NULL);
	atomic_store(&a->reloader_on, false);
}

int auth_reload(struct sw_auth *a)
{
	pthread_mutex_lock(&a->reload_mx);
	int rc = poll_locked(a, false);
	atomic_store(&a->next_poll_ms, sw_now_ms() + POLL_MS);
	pthread_mutex_unlock(&a->reload_mx);
	return rc;
}

void auth_set_snapshot(struct sw_auth *a, struct creds_snap *s)
{
	snap_swap(a, s);
	atomic_store(&a->avail, s != NULL);
}

bool auth_store_available(struct sw_auth *a)
{
	return atomic_load(&a->avail);
}

/* ---- open / close ---- */

/* A nonce stays live until the ring has issued nonce_slots newer ones. The
 * default keeps two challenges' worth per user provisioned at start-up
 * (a registration and a call, each within nonce_lifetime), at least
 * NONCE_SLOTS_MIN: with a fixed 65 536 a million phones re-registering
 * with nc+1 found their nonce long recycled, and every refresh took a
 * stale 401 and a second round trip. Slots cost memory only once issued. */
uint32_t auth_nonce_slots(const struct sw_auth_conf *ac, size_t users)
{
	if (ac->nonce_slots)
		return ac->nonce_slots;
	if (users > NONCE_SLOTS_MAX / 2)
		return NONCE_SLOTS_MAX;
	uint32_t want = (uint32_t)users * 2;
	return want < NONCE_SLOTS_MIN ? NONCE_SLOTS_MIN : want;
}

struct sw_auth *auth_open(const struct sw_config *cfg, const char *data_dir, int *err,
			  char *why, size_t whycap)
{
	/* reader slots are cache-line aligned: so is the engine */
	struct sw_auth *a = aligned_alloc(64, (sizeof(*a) + 63) / 64 * 64);
	if (a)
		memset(a, 0, sizeof(*a));
	uint8_t key[AUTH_SECRET_MAX];
	size_t klen = 0;
	char path[SW_PATH_MAX + 32];
	int rc = -ENOMEM;

	if (why && whycap)
		why[0] = '\0';
	if (!a)
		goto fail_early;
	a->cfg = cfg;
	pthread_mutex_init(&a->reload_mx, NULL);
	/* Reload must not starve behind a steady stream of readers. */
	pthread_mutex_init(&a->swap_mx, NULL);
	pthread_mutex_init(&a->rl_mx, NULL);
	pthread_cond_init(&a->rl_cv, NULL);
	for (int i = 0; i < FAIL_SHARDS; i++)
		pthread_mutex_init(&a->fail_mx[i], NULL);

	rc = config_auth_finish(cfg, why, whycap);
	if (rc)
		goto fail;
	if (!digest_md(AUTH_H_MD5) || !digest_md(AUTH_H_SHA256) || !digest_md(AUTH_H_SHA512_256)) {
		rc = whyf(why, whycap, -ENOSYS, "OpenSSL lacks MD5, SHA-256 or SHA-512/256");
		goto fail;
	}
	a->nrealms = cfg->nrealms < AUTH_MAX_REALMS ? cfg->nrealms : AUTH_MAX_REALMS;

	const struct sw_auth_conf *ac = &cfg->auth;
	if (ac->nonce_secret_len) {
		memcpy(key, ac->nonce_secret, ac->nonce_secret_len);
		klen = ac->nonce_secret_len;
	} else if (ac->nonce_secret_file[0]) {
		rc = secret_read(ac->nonce_secret_file, key, &klen, why, whycap);
		if (rc == -ENOENT)
			whyf(why, whycap, rc, "%s: no such file", ac->nonce_secret_file);
		if (rc)
			goto fail;
	} else if (data_dir) {
		snprintf(path, sizeof(path), "%s/%s", data_dir, SECRET_FILE);
		rc = secret_load_or_create(path, key, &klen, why, whycap);
		if (rc)
			goto fail;
	} else {
		klen = 32;
		if (RAND_bytes(key, (int)klen) != 1) {
			rc = whyf(why, whycap, -EIO, "no random bytes");
			goto fail;
		}
	}
	a->mac = nonce_mac_new(key, klen);
	sw_cleanse(key, sizeof(key));
	if (!a->mac) {
		rc = whyf(why, whycap, -EIO, "HMAC-SHA-256 unavailable");
		goto fail;
	}
	for (unsigned i = 0; i < a->nrealms; i++) {
		struct realm_rt *r = &a->realms[i];
		r->rc = config_auth_realm(cfg, i);
		r->name = sw_str_c(cfg->realms[i].name);
		if (nonce_opaque(a->mac, r->name, r->opaque) < 0) {
			rc = whyf(why, whycap, -EIO, "HMAC failed");
			goto fail;
		}
	}
	a->retry_after = ac->retry_after ? ac->retry_after : DEFAULT_RETRY_AFTER;
	/* A dummy HA1 per hash, used for unknown users so that they cost the
	 * same work as a wrong password (issue 3, enumeration). */
	for (int h = 0; h < AUTH_H__COUNT; h++) {
		uint8_t d[32];
		if (RAND_bytes(d, sizeof(d)) != 1) {
			rc = -EIO;
			goto fail;
		}
		digest_tohex(d, digest_len((enum auth_hash)h), a->dummy_ha1[h]);
	}
	rc = sw_hkey_random(&a->fkey);
	if (rc)
		goto fail;

	if (data_dir) {
		snprintf(path, sizeof(path), "%s/%s", data_dir, CREDS_DB_FILE);
		a->db_path = strdup(path);
		if (!a->db_path) {
			rc = -ENOMEM;
			goto fail;
		}
		/* Create the file and schema so the server starts on an empty
		 * data_dir; `user add` fills it while we run. */
		struct creds_db *db;
		rc = creds_db_open(path, CREDS_OPEN_CREATE, &db);
		if (rc) {
			whyf(why, whycap, rc, "%s: cannot open: %s", path, strerror(-rc));
			goto fail;
		}
		creds_db_close(db);
		rc = auth_reload(a);
		if (rc) {
			whyf(why, whycap, rc, "%s: cannot load credentials: %s", path, strerror(-rc));
			goto fail;
		}
	} else {
		struct creds_snap *s;
		rc = creds_snap_build(NULL, 0, &s);
		if (rc)
			goto fail;
		auth_set_snapshot(a, s);
	}
	const struct creds_snap *loaded = atomic_load(&a->snap);
	a->nonces = nonce_tab_new(auth_nonce_slots(ac, loaded ? creds_snap_count(loaded) : 0));
	if (!a->nonces) {
		rc = -ENOMEM;
		goto fail;
	}
	*err = 0;
	return a;
fail:
	sw_cleanse(key, sizeof(key));
	auth_close(a);
fail_early:
	*err = rc < 0 ? rc : -EINVAL;
	return NULL;
}

void auth_close(struct sw_auth *a)
{
	if (!a)
		return;
	reloader_stop(a);
	creds_db_close(a->db);
	creds_snap_free(atomic_load(&a->snap));
	nonce_mac_free(a->mac);
	nonce_tab_free(a->nonces);
	free(a->db_path);
	pthread_mutex_destroy(&a->reload_mx);
	pthread_mutex_destroy(&a->swap_mx);
	pthread_mutex_destroy(&a->rl_mx);
	pthread_cond_destroy(&a->rl_cv);
	for (int i = 0; i < FAIL_SHARDS; i++)
		pthread_mutex_destroy(&a->fail_mx[i]);
	sw_cleanse(a->dummy_ha1, sizeof(a->dummy_ha1));
	free(a);
}

struct auth_worker *auth_worker_new(struct sw_auth *a)
{
	struct auth_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->a = a;
	for (unsigned i = 0; i < AUTH_READERS && !w->rs; i++) {
		bool no = false;
		if (atomic_compare_exchange_strong(&a->readers[i].taken, &no, true))
			w->rs = &a->readers[i];
	}
	if (!w->rs) {
		free(w);
		return NULL;
	}
	w->md = EVP_MD_CTX_new();
	w->mac = nonce_mac_dup(a->mac);
	if (!w->md || !w->mac) {
		auth_worker_free(w);
		return NULL;
	}
	return w;
}

void auth_worker_free(struct auth_worker *w)
{
	if (!w)
		return;
	EVP_MD_CTX_free(w->md);
	nonce_mac_free(w->mac);
	if (w->rs)
		atomic_store(&w->rs->taken, false);
	free(w);
}

/* ---- failure counters ---- */

static uint64_t fail_key(struct sw_auth *a, const struct sockaddr *src, unsigned realm,
			 struct sw_str user)
{
	uint8_t buf[32 + CREDS_USER_MAX];
	size_t n = 0;
	char host[64];
	size_t hl = src ? sw_sockaddr_host(src, host, sizeof(host)) : 0;
	if (hl > sizeof(host))
		hl = 0;
	memcpy(buf, host, hl < 30 ? hl : 30);
	n = hl < 30 ? hl : 30;
	buf[n++] = (uint8_t)realm;
	buf[n++] = 0;
	size_t ul = user.len < CREDS_USER_MAX ? user.len : CREDS_USER_MAX;
	memcpy(buf + n, user.p, ul);
	return sw_siphash(&a->fkey, buf, n + ul) | 1;
}

/* Count a failure and return the count in the window. */
static uint32_t fail_bump(struct sw_auth *a, uint64_t key, int64_t now)
{
	unsigned i = (unsigned)(key % FAIL_SLOTS);
	pthread_mutex_t *mx = &a->fail_mx[i % FAIL_SHARDS];
	pthread_mutex_lock(mx);
	struct fail_ent *e = &a->fails[i];
	if (e->key != key || now - e->last > FAIL_WINDOW) {
		e->key = key;
		e->n = 0;
	}
	if (e->n < UINT32_MAX)
		e->n++;
	e->last = now;
	uint32_t n = e->n;
	pthread_mutex_unlock(mx);
	return n;
}

static void fail_clear(struct sw_auth *a, uint64_t key)
{
	unsigned i = (unsigned)(key % FAIL_SLOTS);
	pthread_mutex_t *mx = &a->fail_mx[i % FAIL_SHARDS];
	pthread_mutex_lock(mx);
	if (a->fails[i].key == key)
		a->fails[i].key = 0;
	pthread_mutex_unlock(mx);
}

/* ---- challenge ---- */

struct sel {
	struct auth_alglist algs;   /* after md5 = deny */
	uint8_t qop;
	const char *profile;
};

static struct sw_str user_agent(const struct sip_msg *m)
{
	int i = m->first[SIP_H_USER_AGENT];
	if (i < 0 || (unsigned)i >= m->nhdrs)
		return SW_STR_NULL;
	return m->hdrs[i].value;
}

/* Profiles by what the request shows — never by whether the user exists. */
static void select_sel(const struct sw_auth *a, const struct realm_rt *r, const struct sip_msg *m,
		       const struct sockaddr *src, struct sel *out)
{
	const struct sw_auth_conf *ac = &a->cfg->auth;
	const struct auth_alglist *algs = &r->rc->algs;
	struct sw_str ua = user_agent(m);

	out->qop = r->rc->qop;
	out->profile = NULL;
	for (unsigned i = 0; i < ac->nprofiles; i++) {
		const struct auth_profile *p = &ac->profiles[i];
		bool ua_ok = !p->nua, src_ok = !p->nsrc;
		for (unsigned k = 0; k < p->nua && !ua_ok && ua.p; k++)
			ua_ok = sw_glob_imatch(p->ua[k], ua);
		if (p->nsrc && src)
			src_ok = sw_cidr_list_match(p->src, p->nsrc, src);
		if (ua_ok && src_ok) {
			algs = &p->algs;
			if (p->qop)
				out->qop = p->qop;
			out->profile = p->name;
			break;
		}
	}
	out->algs.n = 0;
	for (unsigned i = 0; i < algs->n; i++)
		if (r->rc->md5 != AUTH_MD5_DENY || AUTH_ALGO_HASH(algs->v[i]) != AUTH_H_MD5)
			out->algs.v[out->algs.n++] = algs->v[i];
}

struct hb {
	char *p;
	size_t cap, len;
	bool over;
};

static void hb_put(struct hb *b, const char *s, size_t n)
{
	if (b->over || b->len + n >= b->cap) {
		b->over = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void hb_cstr(struct hb *b, const char *s)
{
	hb_put(b, s, strlen(s));
}

static void res_init(struct auth_result *res, int realm_idx, const struct sip_msg *m)
{
	res->outcome = AUTH_ERROR;
	res->status = 500;
	res->reason = AUTH_R_INTERNAL;
	res->stale = false;
	res->md5_warn = false;
	res->hdrs[0] = '\0';
	res->hdrs_len = 0;
	res->user[0] = '\0';
	res->userhash = false;
	res->realm_idx = realm_idx;
	res->realm = NULL;
	res->algorithm = NULL;
	res->profile = NULL;
	res->user_agent = m ? user_agent(m) : SW_STR_NULL;
	res->aor[0] = '\0';
	res->mapped = false;
}

/* RFC 8760 §2.4: one challenge per algorithm, preferred first, all with
 * the same nonce. The bytes depend on the realm, the profile, the time
 * and the slot only — never on a username. */
static void challenge(struct auth_worker *w, const struct realm_rt *r, const struct sel *sel,
		      const struct sockaddr *src, bool proxy, int64_t now, bool stale,
		      const char *reason, struct auth_result *res)
{
	struct nonce_fields f = { .t = now };
	char nonce[NONCE_LEN + 1];
	struct hb b = { res->hdrs, sizeof(res->hdrs), 0, false };

	nonce_tab_issue(w->a->nonces, &w->nc, &f.slot, &f.gen);
	if (r->rc->bind_nonce_to_ip && src)
		f.flags |= NONCE_F_IP;
	if (nonce_make(w->mac, &f, r->name, src, nonce) < 0)
		goto internal;
	struct nonce_fp fp;
	nonce_tab_fp(w->a->nonces, sw_str_mk(nonce, NONCE_LEN), r->name, src, f.flags & NONCE_F_IP, &fp);
	nonce_tab_seal(w->a->nonces, f.slot, f.gen, &fp);
	for (unsigned i = 0; i < sel->algs.n; i++) {
		hb_cstr(&b, proxy ? "Proxy-Authenticate: Digest realm=\"" : "WWW-Authenticate: Digest realm=\"");
		hb_put(&b, r->name.p, r->name.len);
		hb_cstr(&b, "\", nonce=\"");
		hb_cstr(&b, nonce);
		if (r->rc->opaque) {
			hb_cstr(&b, "\", opaque=\"");
			hb_cstr(&b, r->opaque);
		}
		hb_cstr(&b, "\", algorithm=");
		hb_cstr(&b, auth_algo_name(sel->algs.v[i]));
		if (sel->qop == (AUTH_QOP_AUTH | AUTH_QOP_AUTH_INT))
			hb_cstr(&b, ", qop=\"auth,auth-int\"");
		else if (sel->qop == AUTH_QOP_AUTH_INT)
			hb_cstr(&b, ", qop=\"auth-int\"");
		else
			hb_cstr(&b, ", qop=\"auth\"");
		if (stale)
			hb_cstr(&b, ", stale=true");
		if (r->rc->userhash)
			hb_cstr(&b, ", userhash=true");
		hb_cstr(&b, "\r\n");
	}
	if (b.over)
		goto internal;
	res->hdrs_len = b.len;
	res->outcome = AUTH_CHALLENGE;
	res->status = proxy ? 407 : 401;
	res->stale = stale;
	res->reason = reason;
	return;
internal:
	res->hdrs[0] = '\0';
	res->hdrs_len = 0;
	res->outcome = AUTH_ERROR;
	res->status = 500;
	res->reason = AUTH_R_INTERNAL;
}

static void reject(struct auth_result *res, unsigned status, const char *reason)
{
	res->hdrs[0] = '\0';
	res->hdrs_len = 0;
	res->outcome = AUTH_REJECT;
	res->status = status;
	res->reason = reason;
}

static void unavailable(struct sw_auth *a, struct auth_result *res)
{
	struct hb b = { res->hdrs, sizeof(res->hdrs), 0, false };
	char n[16];
	snprintf(n, sizeof(n), "%u", a->retry_after);
	hb_cstr(&b, "Retry-After: ");
	hb_cstr(&b, n);
	hb_cstr(&b, "\r\n");
	res->hdrs_len = b.len;
	res->outcome = AUTH_ERROR;
	res->status = 503;
	res->reason = AUTH_R_STORE_UNAVAILABLE;
}

int auth_realm_for(const struct sw_config *cfg, const struct sip_msg *m)
{
	struct sw_str host = m->method == SIP_M_REGISTER ? m->ruri.host : m->from.uri.host;
	for (unsigned i = 0; i < cfg->nrealms; i++)
		if (sw_str_ieq(sw_str_c(cfg->realms[i].name), host))
			return (int)i;
	return -1;
}

static const struct realm_rt *realm_get(struct sw_auth *a, int idx)
{
	return idx >= 0 && (unsigned)idx < a->nrealms ? &a->realms[idx] : NULL;
}

int auth_challenge(struct auth_worker *w, const struct sip_msg *m, const struct sockaddr *src,
		   int realm_idx, bool proxy, int64_t now, struct auth_result *res)
{
	const struct realm_rt *r;
	struct sel sel;

	if (!w || !m || !res)
		return -EINVAL;
	res_init(res, realm_idx, m);
	r = realm_get(w->a, realm_idx);
	if (!r) {
		reject(res, 403, AUTH_R_UNKNOWN_REALM);
		return 0;
	}
	res->realm = r->name.p;
	select_sel(w->a, r, m, src, &sel);
	res->profile = sel.profile;
	challenge(w, r, &sel, src, proxy, now, false, AUTH_R_NO_CREDENTIALS, res);
	return 0;
}

/* ---- verification ---- */

/* Does list (comma-separated "user" or "user@host") name this AOR? */
static bool aor_in_list(const char *list, struct sw_str user, struct sw_str host, bool same_realm)
{
	const char *p = list;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		struct sw_str it = sw_str_trim(sw_str_mk(p, n));
		const char *at = it.len ? memchr(it.p, '@', it.len) : NULL;
		if (at) {
			struct sw_str iu = sw_str_mk(it.p, (size_t)(at - it.p));
			struct sw_str ih = sw_str_mk(at + 1, it.len - iu.len - 1);
			if (sw_str_eq(iu, user) && sw_str_ieq(ih, host))
				return true;
		} else if (it.len && same_realm && sw_str_eq(it, user)) {
			return true;
		}
		p = e ? e + 1 : p + n;
	}
	return false;
}

/* Append s to out[*n] (cap bytes in all), cut as snprintf would cut. */
static void put_cut(char *out, size_t cap, size_t *n, struct sw_str s)
{
	size_t room = *n + 1 < cap ? cap - *n - 1 : 0;
	size_t k = s.len < room ? s.len : room;
	if (k)
		memcpy(out + *n, s.p, k);
	*n += k;
	out[*n] = '\0';
}

/* Identity binding (issue 3): may auth_id act for the AOR of this request? */
static bool identity_ok(struct sw_auth *a, unsigned ridx, const struct realm_rt *r,
			const struct sip_msg *m, const char *auth_id, const char *aors,
			struct auth_result *res)
{
	const struct sip_uri *u = m->method == SIP_M_REGISTER ? &m->to.uri : &m->from.uri;
	char ubuf[CREDS_USER_MAX];
	struct sw_str id = sw_str_c(auth_id);

	if (u->scheme != SIP_URI_SIP && u->scheme != SIP_URI_SIPS)
		return !r->rc->identity_check;
	ssize_t ul = sip_unescape(u->user, ubuf, sizeof(ubuf));
	if (ul < 0)
		return !r->rc->identity_check;
	struct sw_str user = sw_str_mk(ubuf, (size_t)ul);
	size_t an = 0;   /* "user@host" (no printf per request) */
	put_cut(res->aor, sizeof(res->aor), &an, user);
	put_cut(res->aor, sizeof(res->aor), &an, SW_STR_LIT("@"));
	put_cut(res->aor, sizeof(res->aor), &an, u->host);
	if (!r->rc->identity_check)
		return true;
	bool same_realm = sw_str_ieq(u->host, r->name);
	if (same_realm && sw_str_eq(user, id))
		return true;
	res->mapped = true;
	const struct sw_auth_conf *ac = &a->cfg->auth;
	for (unsigned i = 0; i < ac->nidmaps; i++) {
		const struct auth_idmap *mp = &ac->idmaps[i];
		if (mp->realm == ridx && !strcmp(mp->auth_id, auth_id) &&
		    aor_in_list(mp->aor_user, user, u->host, same_realm))
			return true;
	}
	if (aor_in_list(aors, user, u->host, same_realm))
		return true;
	res->mapped = false;
	return false;
}

/* RFC 3261 §22.4 / RFC 7616 §3.4.6: digest-uri names the Request-URI. */
static bool uri_ok(struct sw_str uri, const struct sip_msg *m)
{
	struct sip_uri u;
	if (sw_str_eq(uri, m->ruri.raw))
		return true;
	if (sip_uri_parse(uri, &u) < 0)
		return false;
	return sip_uri_addr_eq(&u, &m->ruri);
}

static int parse_nc(struct sw_str s, uint32_t *nc)
{
	uint32_t v = 0;
	if (s.len != 8) /* RFC 7616 §3.4: nc-value = 8LHEX */
		return -EBADMSG;
	for (size_t i = 0; i < 8; i++) {
		int x = hexval(s.p[i]);
		if (x < 0)
			return -EBADMSG;
		v = v << 4 | (uint32_t)x;
	}
	if (!v)
		return -EBADMSG;
	*nc = v;
	return 0;
}

/* Pick the credentials for our realm among all Authorization fields. */
static int find_creds(const struct sip_msg *m, const struct sip_auth_memo *memo,
		      enum sip_hdr_id hid, struct sw_str realm, struct sip_auth *out,
		      const char **why)
{
	bool bad = false, other = false;
	char rb[CREDS_REALM_MAX];
	for (unsigned i = 0; i < m->nhdrs; i++) {
		if (m->hdrs[i].id != hid)
			continue;
		struct sw_str rv;
		int rc;
		if (memo && memo->h == &m->hdrs[i]) {
			rc = memo->rc;
			*out = memo->a;
		} else {
			rc = sip_auth_parse(m->hdrs[i].value, out);
		}
		if (rc < 0) {
			bad = true;
			continue;
		}
		if (out->scheme != SIP_AUTH_DIGEST)
			continue; /* Bearer and others belong to other phases */
		if (!out->v[SIP_AP_REALM].p || sip_auth_unq(out, SIP_AP_REALM, rb, sizeof(rb), &rv) < 0) {
			bad = true;
			continue;
		}
		if (sw_str_eq(rv, realm))
			return 0;
		other = true;
	}
	*why = bad ? AUTH_R_MALFORMED : other ? AUTH_R_REALM_MISMATCH : AUTH_R_NO_CREDENTIALS;
	return -ENOENT;
}

static bool is_true(struct sw_str s)
{
	return sw_str_ieq_c(s, "true");
}

int auth_check(struct auth_worker *w, const struct sip_msg *m, const struct sockaddr *src,
	       int realm_idx, bool proxy, int64_t now, struct auth_result *res)
{
	return auth_check_memo(w, m, NULL, src, realm_idx, proxy, now, res);
}

int auth_check_memo(struct auth_worker *w, const struct sip_msg *m,
		    const struct sip_auth_memo *memo, const struct sockaddr *src, int realm_idx,
		    bool proxy, int64_t now, struct auth_result *res)
{
	struct sw_auth *a;
	const struct realm_rt *r;
	struct sel sel;
	struct sip_auth c;
	const char *why = NULL;
	char ubuf[CREDS_USER_MAX * 3], nbuf[NONCE_LEN + 8], cbuf[256], ribuf[1024];
	char expect[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX], aors[CREDS_AORS_MAX];
	struct sw_str user, nonce, uri, cnonce = SW_STR_NULL, qop = SW_STR_NULL, ncs = SW_STR_NULL;
	uint32_t nc = 0;
	int algo;

	if (!w || !m || !res)
		return -EINVAL;
	a = w->a;
	res_init(res, realm_idx, m);
	r = realm_get(a, realm_idx);
	if (!r) {
		reject(res, 403, AUTH_R_UNKNOWN_REALM);
		return 0;
	}
	res->realm = r->name.p;
	select_sel(a, r, m, src, &sel);
	res->profile = sel.profile;

	if (find_creds(m, memo, proxy ? SIP_H_PROXY_AUTHORIZATION : SIP_H_AUTHORIZATION, r->name,
		       &c, &why)) {
		if (!strcmp(why, AUTH_R_MALFORMED))
			reject(res, 400, why);
		else
			challenge(w, r, &sel, src, proxy, now, false, why, res);
		return 0;
	}

	/* algorithm: absent means MD5 (RFC 7616 §3.3). */
	algo = c.v[SIP_AP_ALGORITHM].p ? auth_algo_parse(c.v[SIP_AP_ALGORITHM]) : AUTH_MD5;
	if (algo >= 0)
		res->algorithm = auth_algo_name((unsigned)algo);
	bool allowed = false;
	for (unsigned i = 0; algo >= 0 && i < sel.algs.n; i++)
		allowed |= sel.algs.v[i] == algo;
	if (!allowed) {
		challenge(w, r, &sel, src, proxy, now, false, AUTH_R_ALG_NOT_ALLOWED, res);
		return 0;
	}
	enum auth_hash h = AUTH_ALGO_HASH(algo);

	/* Required parameters. */
	bool has_user = c.v[SIP_AP_USERNAME].p, has_ext = c.v[SIP_AP_USERNAME_EXT].p;
	res->userhash = c.v[SIP_AP_USERHASH].p && is_true(c.v[SIP_AP_USERHASH]);
	if (has_user == has_ext || (has_ext && res->userhash) || !c.v[SIP_AP_NONCE].p ||
	    !c.v[SIP_AP_URI].p || !c.v[SIP_AP_RESPONSE].p) {
		reject(res, 400, AUTH_R_MALFORMED);
		return 0;
	}
	if (has_ext) {
		/* RFC 7616 §3.4.4: username*=UTF-8''… for names outside ASCII. */
		ssize_t n = sip_auth_extvalue(c.v[SIP_AP_USERNAME_EXT], ubuf, sizeof(ubuf));
		if (n < 0) {
			reject(res, 400, AUTH_R_MALFORMED);
			return 0;
		}
		user = sw_str_mk(ubuf, (size_t)n);
	} else if (sip_auth_unq(&c, SIP_AP_USERNAME, ubuf, sizeof(ubuf), &user) < 0) {
		reject(res, 400, AUTH_R_MALFORMED);
		return 0;
	}
	sw_str_copy(user.len < sizeof(res->user) ? user : sw_str_mk(user.p, sizeof(res->user) - 1),
		    res->user, sizeof(res->user));
	if (sip_auth_unq(&c, SIP_AP_NONCE, nbuf, sizeof(nbuf), &nonce) < 0 ||
	    sip_auth_unq(&c, SIP_AP_URI, ribuf, sizeof(ribuf), &uri) < 0) {
		reject(res, 400, AUTH_R_MALFORMED);
		return 0;
	}

	/* qop (RFC 7616 §3.4): auth or auth-int with nc and cnonce; none only
	 * for RFC 2069 clients where allowed. */
	if (c.v[SIP_AP_QOP].p) {
		qop = c.v[SIP_AP_QOP];
		uint8_t bit = sw_str_eq(qop, SW_STR_LIT("auth")) ? AUTH_QOP_AUTH :
			      sw_str_eq(qop, SW_STR_LIT("auth-int")) ? AUTH_QOP_AUTH_INT : 0;
		if (!(bit & sel.qop)) {
			challenge(w, r, &sel, src, proxy, now, false, AUTH_R_QOP_NOT_ALLOWED, res);
			return 0;
		}
		ncs = c.v[SIP_AP_NC];
		/* A cnonce is a client nonce, not a payload: real clients send
		 * 8-64 characters. Bound it so nobody makes us hash kilobytes
		 * per request (STYLE.md §8). */
		if (!ncs.p || !c.v[SIP_AP_CNONCE].p || parse_nc(ncs, &nc) < 0 ||
		    c.v[SIP_AP_CNONCE].len > AUTH_CNONCE_MAX ||
		    sip_auth_unq(&c, SIP_AP_CNONCE, cbuf, sizeof(cbuf), &cnonce) < 0) {
			reject(res, 400, AUTH_R_MALFORMED);
			return 0;
		}
	} else {
		if (!r->rc->allow_no_qop) {
			challenge(w, r, &sel, src, proxy, now, false, AUTH_R_QOP_MISSING, res);
			return 0;
		}
		if (AUTH_ALGO_SESS(algo)) { /* -sess needs a cnonce */
			reject(res, 400, AUTH_R_MALFORMED);
			return 0;
		}
	}

	/* Nonce: ours, for this realm (and address), not from the future. */
	/* A nonce whose slot holds its fingerprint was issued (or verified)
	 * here for this realm and address: no HMAC again (nonce.h). */
	struct nonce_fields nf;
	struct nonce_fp fp = { 0, 0 };
	bool known = nonce_peek(nonce, &nf) == 0;
	if (known) {
		nonce_tab_fp(a->nonces, nonce, r->name, src, nf.flags & NONCE_F_IP, &fp);
		known = nonce_tab_known(a->nonces, nf.slot, nf.gen, &fp);
	}
	if ((!known && nonce_open(w->mac, nonce, r->name, src, &nf) < 0) ||
	    nf.t > now + FUTURE_SKEW) {
		challenge(w, r, &sel, src, proxy, now, false, AUTH_R_BAD_NONCE, res);
		return 0;
	}
	bool stale = now - nf.t > (int64_t)r->rc->nonce_lifetime;
	if (!known && !stale) {
		stale = !nonce_tab_live(a->nonces, nf.slot, nf.gen);
		if (!stale)   /* proven by its MAC: the next use of it is cheap */
			nonce_tab_seal(a->nonces, nf.slot, nf.gen, &fp);
	}

	if (r->rc->opaque) {
		struct sw_str o = c.v[SIP_AP_OPAQUE];
		if (!o.p || o.len != 22 || !sw_ct_eq(o.p, r->opaque, 22)) {
			challenge(w, r, &sel, src, proxy, now, false, AUTH_R_OPAQUE_MISMATCH, res);
			return 0;
		}
	}
	if (!uri_ok(uri, m)) {
		/* RFC 2617 §3.2.2.5: 400 when the URIs differ. */
		reject(res, 400, AUTH_R_URI_MISMATCH);
		return 0;
	}

	maybe_poll(a);
	if (!atomic_load(&a->avail)) {
		unavailable(a, res);
		return 0;
	}

	/* From here on, unknown, disabled and known users take the same path
	 * and the same hash work; only the HA1 differs (a random dummy). */
	const char *fail = NULL;
	bool match;
	aors[0] = '\0';
	const struct creds_snap *snap = snap_enter(w);
	const struct creds_ent *e = res->userhash ? creds_snap_find_uh(snap, h, r->name, user) :
				    creds_snap_find(snap, user, r->name);
	const unsigned char *hb = NULL;   /* the snapshot keeps HA1 in binary */
	char ha1[DIGEST_HEX_MAX];
	if (!e)
		fail = AUTH_R_UNKNOWN_USER;
	else if (!creds_ent_enabled(e))
		fail = AUTH_R_DISABLED;
	else if (!(hb = creds_ent_ha1(e, h)))
		fail = AUTH_R_NO_HASH;
	if (hb)
		digest_tohex(hb, digest_len(h), ha1);
	else
		memcpy(ha1, a->dummy_ha1[h], sizeof(ha1));
	struct digest_in din = {
		.algo = (enum auth_algo)algo,
		.ha1 = { ha1, 2 * digest_len(h) },
		.nonce = nonce,
		.cnonce = cnonce,
		.nc = ncs,
		.qop = qop,
		.method = m->method_name,
		.uri = uri,
		.body = m->body,
	};
	int rc = digest_response(w->md, &din, expect);
	sw_cleanse(ha1, sizeof(ha1));
	if (!rc && e && !fail) {
		memcpy(res->user, creds_ent_user(e), (size_t)e->ulen + 1u);
		size_t an = 0;
		put_cut(aors, sizeof(aors), &an, sw_str_c(creds_ent_aors(e)));
	}
	snap_leave(w);
	if (rc) {
		sw_cleanse(expect, sizeof(expect));
		res->outcome = AUTH_ERROR;
		res->status = 500;
		res->reason = AUTH_R_INTERNAL;
		return 0;
	}
	/* The response in lower case, compared in constant time. */
	struct sw_str rs = c.v[SIP_AP_RESPONSE];
	size_t want = 2 * digest_len(h);
	memset(got, 0, sizeof(got));
	for (size_t i = 0; i < rs.len && i < want; i++) {
		char ch = rs.p[i];
		got[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	match = sw_ct_eq(got, expect, want) && rs.len == want;
	sw_cleanse(expect, sizeof(expect));
	sw_cleanse(got, sizeof(got));
	if (!match && !fail)
		fail = AUTH_R_BAD_RESPONSE;
	uint64_t fkey = fail_key(a, src, (unsigned)realm_idx, user);

	if (fail) {
		if (r->rc->after_failure == AUTH_FAIL_REJECT &&
		    fail_bump(a, fkey, now) >= r->rc->max_failures) {
			reject(res, 403, fail);
			return 0;
		}
		challenge(w, r, &sel, src, proxy, now, false, fail, res);
		return 0;
	}
	/* RFC 7616 §3.3: stale=true only when the digest itself was right. */
	if (stale) {
		challenge(w, r, &sel, src, proxy, now, true, AUTH_R_STALE, res);
		return 0;
	}
	rc = nonce_tab_use(a->nonces, nf.slot, nf.gen, qop.p ? nc : 0);
	if (rc == -ESTALE) {
		challenge(w, r, &sel, src, proxy, now, true, AUTH_R_STALE, res);
		return 0;
	}
	if (rc == -EALREADY) {
		/* A replayed (nonce, nc): a fresh nonce costs an honest client
		 * one round trip and gives a replayer nothing. */
		challenge(w, r, &sel, src, proxy, now, true,
			  qop.p ? AUTH_R_NC_REPLAY : AUTH_R_NONCE_REUSED, res);
		return 0;
	}
	if (r->rc->after_failure == AUTH_FAIL_REJECT)
		fail_clear(a, fkey);

	if (!identity_ok(a, (unsigned)realm_idx, r, m, res->user, aors, res)) {
		reject(res, 403, AUTH_R_USERNAME_MISMATCH);
		return 0;
	}
	res->md5_warn = h == AUTH_H_MD5 && r->rc->md5 == AUTH_MD5_WARN;
	res->outcome = AUTH_OK;
	res->status = 0;
	res->reason = AUTH_R_OK;
	return 0;
}
