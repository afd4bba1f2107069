#include <assert.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "auth/digest.h"
#include "auth/nonce.h"
#include "base/ct.h"
#include "base/lock.h"
#include "base/siphash.h"

#define NONCE_VERSION 1
#define NONCE_SHARDS 64

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* n must be a multiple of 3 here (all our uses are). */
static void b64u_enc(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0, o = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64u[v >> 18];
		out[o++] = b64u[(v >> 12) & 63];
		out[o++] = b64u[(v >> 6) & 63];
		out[o++] = b64u[v & 63];
	}
}

/* Value + 1 of each base64url character; 0: not one. */
static const uint8_t b64u_rev[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
	['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
	['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
	['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
	['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
	['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
	['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

/* n must be a multiple of 4. Every character is looked up before the
 * verdict; out holds garbage on -EBADMSG. */
static int b64u_dec(const char *in, size_t n, uint8_t *out)
{
	unsigned bad = 0;
	for (size_t i = 0, o = 0; i < n; i += 4) {
		uint32_t a = b64u_rev[(uint8_t)in[i]], b = b64u_rev[(uint8_t)in[i + 1]],
			 c = b64u_rev[(uint8_t)in[i + 2]], d = b64u_rev[(uint8_t)in[i + 3]];
		bad |= !a | !b | !c | !d;
		uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	return bad ? -EBADMSG : 0;
}

/* ---- HMAC-SHA-256 with a precomputed key schedule (RFC 2104) ---- */

#define HMAC_BLOCK 64           /* SHA-256 block size */
#define HMAC_OUT 32

struct nonce_mac {
	EVP_MD_CTX *ipad;       /* SHA-256 having absorbed K0 ^ 0x36.. (read only) */
	EVP_MD_CTX *opad;       /* SHA-256 having absorbed K0 ^ 0x5c.. (read only) */
	EVP_MD_CTX *work;       /* scratch, one MAC at a time */
};

static struct nonce_mac *mac_alloc(void)
{
	struct nonce_mac *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->ipad = EVP_MD_CTX_new();
	m->opad = EVP_MD_CTX_new();
	m->work = EVP_MD_CTX_new();
	if (!m->ipad || !m->opad || !m->work) {
		nonce_mac_free(m);
		return NULL;
	}
	return m;
}

void nonce_mac_free(struct nonce_mac *m)
{
	if (!m)
		return;
	/* The provider wipes a digest state when it frees it. */
	EVP_MD_CTX_free(m->ipad);
	EVP_MD_CTX_free(m->opad);
	EVP_MD_CTX_free(m->work);
	free(m);
}

struct nonce_mac *nonce_mac_new(const uint8_t *key, size_t len)
{
	const EVP_MD *md = digest_md(AUTH_H_SHA256);
	uint8_t k0[HMAC_BLOCK] = { 0 }, pad[HMAC_BLOCK];
	struct nonce_mac *m = md ? mac_alloc() : NULL;
	bool ok = m != NULL;

	/* K0: the key, or H(key) when longer than a block, zero-padded. */
	if (ok && len > HMAC_BLOCK) {
		unsigned kl = 0;
		ok = EVP_DigestInit_ex2(m->work, md, NULL) && EVP_DigestUpdate(m->work, key, len) &&
		     EVP_DigestFinal_ex(m->work, k0, &kl) && kl == HMAC_OUT;
	} else if (ok && len) {
		memcpy(k0, key, len);
	}
	for (int i = 0; ok && i < HMAC_BLOCK; i++)
		pad[i] = k0[i] ^ 0x36;
	ok = ok && EVP_DigestInit_ex2(m->ipad, md, NULL) &&
	     EVP_DigestUpdate(m->ipad, pad, HMAC_BLOCK);
	for (int i = 0; ok && i < HMAC_BLOCK; i++)
		pad[i] = k0[i] ^ 0x5c;
	ok = ok && EVP_DigestInit_ex2(m->opad, md, NULL) &&
	     EVP_DigestUpdate(m->opad, pad, HMAC_BLOCK);
	sw_cleanse(k0, sizeof(k0));
	sw_cleanse(pad, sizeof(pad));
	if (!ok) {
		nonce_mac_free(m);
		return NULL;
	}
	return m;
}

struct nonce_mac *nonce_mac_dup(const struct nonce_mac *src)
{
	struct nonce_mac *m = mac_alloc();
	if (m && (!EVP_MD_CTX_copy_ex(m->ipad, src->ipad) ||
		  !EVP_MD_CTX_copy_ex(m->opad, src->opad))) {
		nonce_mac_free(m);
		return NULL;
	}
	return m;
}

/* HMAC over up to three pieces (the nonce's prefix, its realm, its
 * address) without gathering them first. */
static int hmac3(struct nonce_mac *m, const void *a, size_t al, const void *b, size_t bl,
		 const void *c, size_t cl, uint8_t out[HMAC_OUT])
{
	uint8_t in[HMAC_OUT];
	unsigned il = 0, ol = 0;
	int rc = -EIO;

	if (!EVP_MD_CTX_copy_ex(m->work, m->ipad) || (al && !EVP_DigestUpdate(m->work, a, al)) ||
	    (bl && !EVP_DigestUpdate(m->work, b, bl)) || (cl && !EVP_DigestUpdate(m->work, c, cl)) ||
	    !EVP_DigestFinal_ex(m->work, in, &il) || il != HMAC_OUT)
		goto out;
	if (!EVP_MD_CTX_copy_ex(m->work, m->opad) || !EVP_DigestUpdate(m->work, in, HMAC_OUT) ||
	    !EVP_DigestFinal_ex(m->work, out, &ol) || ol != HMAC_OUT)
		goto out;
	rc = 0;
out:
	sw_cleanse(in, sizeof(in));
	return rc;
}

int nonce_hmac(struct nonce_mac *m, const void *msg, size_t len, uint8_t out[32])
{
	return hmac3(m, msg, len, NULL, 0, NULL, 0, out);
}

/* Address bytes; IPv4-mapped IPv6 counts as IPv4 so a dual-stack socket
 * does not break the binding. */
static size_t addr_bytes(const struct sockaddr *sa, uint8_t out[17])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		out[0] = 4;
		memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 5;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (!memcmp(a, mapped, 12)) {
			out[0] = 4;
			memcpy(out + 1, a + 12, 4);
			return 5;
		}
		out[0] = 6;
		memcpy(out + 1, a, 16);
		return 17;
	}
	return 0;
}

/* HMAC(label "\0" | version+flags | t | slot | gen | realm length (2) |
 * realm | address bytes (NONCE_F_IP)). Gathered into one buffer so the
 * message (55 bytes with a 15-byte realm and an IPv4 binding) is one
 * update and, up to 55 bytes, one compression. */
static int mac_over(struct nonce_mac *mac, const uint8_t hdr[14], struct sw_str realm,
		    const struct sockaddr *src, bool ip, uint8_t out[HMAC_OUT])
{
	static const char label[] = "sipwarden-nonce-v1";
	uint8_t buf[160], ab[17];
	size_t al = ip ? addr_bytes(src, ab) : 0, n = sizeof(label) + 14;

	if (realm.len > 0xffff || (ip && !al))
		return -EINVAL;
	memcpy(buf, label, sizeof(label));
	memcpy(buf + sizeof(label), hdr, 14);
	buf[n++] = (uint8_t)(realm.len >> 8);
	buf[n++] = (uint8_t)realm.len;
	if (realm.len + al > sizeof(buf) - n) /* a long realm: three updates */
		return hmac3(mac, buf, n, realm.p, realm.len, ab, al, out);
	if (realm.len)
		memcpy(buf + n, realm.p, realm.len);
	n += realm.len;
	memcpy(buf + n, ab, al);
	return hmac3(mac, buf, n + al, NULL, 0, NULL, 0, out);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

int nonce_make(struct nonce_mac *mac, const struct nonce_fields *f, struct sw_str realm,
	       const struct sockaddr *src, char out[NONCE_LEN + 1])
{
	uint8_t raw[NONCE_RAW], m[32];
	raw[0] = (uint8_t)(NONCE_VERSION << 4 | (f->flags & 0x0f));
	put_be(raw + 1, (uint64_t)f->t, 5);
	put_be(raw + 6, f->slot, 4);
	put_be(raw + 10, f->gen, 4);
	int rc = mac_over(mac, raw, realm, src, f->flags & NONCE_F_IP, m);
	if (rc)
		return rc;
	memcpy(raw + 14, m, 16);
	b64u_enc(raw, NONCE_RAW, out);
	out[NONCE_LEN] = '\0';
	return 0;
}

static int fields_of(struct sw_str nonce, uint8_t raw[NONCE_RAW], struct nonce_fields *f)
{
	if (nonce.len != NONCE_LEN || b64u_dec(nonce.p, NONCE_LEN, raw) < 0)
		return -EBADMSG;
	if (raw[0] >> 4 != NONCE_VERSION)
		return -EBADMSG;
	f->flags = raw[0] & 0x0f;
	f->t = (int64_t)get_be(raw + 1, 5);
	f->slot = (uint32_t)get_be(raw + 6, 4);
	f->gen = (uint32_t)get_be(raw + 10, 4);
	return 0;
}

int nonce_peek(struct sw_str nonce, struct nonce_fields *f)
{
	uint8_t raw[NONCE_RAW];
	return fields_of(nonce, raw, f);
}

int nonce_open(struct nonce_mac *mac, struct sw_str nonce, struct sw_str realm,
	       const struct sockaddr *src, struct nonce_fields *f)
{
	uint8_t raw[NONCE_RAW], m[32];
	if (fields_of(nonce, raw, f) < 0)
		return -EBADMSG;
	int rc = mac_over(mac, raw, realm, src, f->flags & NONCE_F_IP, m);
	if (rc == -EINVAL)
		return -EPERM; /* bound to an address family we cannot see */
	if (rc)
		return rc;
	return sw_ct_eq(m, raw + 14, 16) ? 0 : -EPERM;
}

int nonce_opaque(struct nonce_mac *mac, struct sw_str realm, char out[23])
{
	static const char label[] = "sipwarden-opaque-v1";
	uint8_t m[HMAC_OUT];
	char enc[24];
	if (hmac3(mac, label, sizeof(label), realm.p, realm.len, NULL, 0, m))
		return -EIO;
	b64u_enc(m, 18, enc);
	memcpy(out, enc, 22);
	out[22] = '\0';
	return 0;
}

/* ---- slot table ---- */

struct nonce_slot {
	uint32_t gen;          /* issues so far; the nonce's generation adds gen_base */
	uint32_t nc_max;       /* highest nc accepted; 0 none yet */
	uint64_t window;       /* bit i: nc_max - i was seen */
	struct nonce_fp fp;    /* of this generation's nonce; zero = none yet */
	bool once_used;        /* used without qop */
};

struct nonce_shard {
	pthread_mutex_t mu;
} __attribute__((aligned(64)));

struct nonce_tab {
	struct nonce_slot *slots;
	uint32_t mask;
	uint64_t gk[2];        /* generation offsets (gen_base) */
	struct sw_hkey fk;     /* fingerprint key */
	_Atomic uint32_t next __attribute__((aligned(64)));   /* next chunk */
	struct nonce_shard shard[NONCE_SHARDS];
};

/* A chunk's slots share a lock (and, mostly, cache lines): the worker that
 * issued them is also the one that usually verifies them. */
static pthread_mutex_t *shard_of(struct nonce_tab *t, uint32_t slot)
{
	return &t->shard[(slot / NONCE_CHUNK) % NONCE_SHARDS].mu;
}

/* Every slot starts at its own random-looking generation: a nonce issued
 * by an earlier run of this process, or by another node sharing the
 * secret, must not find its (slot, generation) live here and be replayed
 * once. The offset is computed, not stored, so the table is zero pages
 * until a slot is first issued (a table sized for a million users costs
 * no memory before they come). A keyed mix, not a PRF: nonces are MACed,
 * so knowing offsets forges nothing; the offsets only have to differ from
 * the last run's, and the key is new each start. */
static uint32_t gen_base(const struct nonce_tab *t, uint32_t slot)
{
	uint64_t x = (uint64_t)slot ^ t->gk[0];
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	x ^= t->gk[1];
	return (uint32_t)(x ^ (x >> 32));
}

struct nonce_tab *nonce_tab_new(uint32_t nslots)
{
	uint32_t n = 1024;
	while (n < nslots && n < NONCE_SLOTS_MAX)
		n <<= 1;
	struct nonce_tab *t = aligned_alloc(64, sizeof(*t));
	if (!t)
		return NULL;
	memset(t, 0, sizeof(*t));
	t->slots = calloc(n, sizeof(*t->slots));   /* large: fresh zero pages */
	if (!t->slots) {
		free(t);
		return NULL;
	}
	t->mask = n - 1;
	struct sw_hkey k;
	if (sw_hkey_random(&k) != 0 || sw_hkey_random(&t->fk) != 0) {
		free(t->slots);
		free(t);
		return NULL;
	}
	static_assert(sizeof(k) >= sizeof(t->gk), "generation key");
	memcpy(t->gk, &k, sizeof(t->gk));
	sw_cleanse(&k, sizeof(k));
	for (int i = 0; i < NONCE_SHARDS; i++)
		pthread_mutex_init(&t->shard[i].mu, NULL);
	return t;
}

uint32_t nonce_tab_slots(const struct nonce_tab *t)
{
	return t->mask + 1;
}

void nonce_tab_free(struct nonce_tab *t)
{
	if (!t)
		return;
	for (int i = 0; i < NONCE_SHARDS; i++)
		pthread_mutex_destroy(&t->shard[i].mu);
	free(t->slots);
	free(t);
}

void nonce_tab_issue(struct nonce_tab *t, struct nonce_cursor *c, uint32_t *slot, uint32_t *gen)
{
	if (c->next == c->end) {
		c->next = atomic_fetch_add_explicit(&t->next, NONCE_CHUNK, memory_order_relaxed);
		c->end = c->next + NONCE_CHUNK;
	}
	uint32_t s = c->next++ & t->mask;
	pthread_mutex_t *mx = shard_of(t, s);
	sw_mutex_lock(mx);
	struct nonce_slot *sl = &t->slots[s];
	sl->gen++;
	sl->nc_max = 0;
	sl->window = 0;
	sl->fp = (struct nonce_fp){ 0, 0 };
	sl->once_used = false;
	*slot = s;
	*gen = sl->gen + gen_base(t, s);
	pthread_mutex_unlock(mx);
}

bool nonce_tab_live(struct nonce_tab *t, uint32_t slot, uint32_t gen)
{
	if (slot > t->mask)
		return false;
	pthread_mutex_t *mx = shard_of(t, slot);
	sw_mutex_lock(mx);
	bool live = t->slots[slot].gen + gen_base(t, slot) == gen;
	pthread_mutex_unlock(mx);
	return live;
}

int nonce_tab_use(struct nonce_tab *t, uint32_t slot, uint32_t gen, uint32_t nc)
{
	int rc = 0;
	if (slot > t->mask)
		return -ESTALE;
	pthread_mutex_t *mx = shard_of(t, slot);
	sw_mutex_lock(mx);
	struct nonce_slot *s = &t->slots[slot];
	if (s->gen + gen_base(t, slot) != gen) {
		rc = -ESTALE;
	} else if (nc == 0) {
		/* RFC 2069 has no nc: the nonce is good for one request. */
		if (s->once_used || s->nc_max)
			rc = -EALREADY;
		else
			s->once_used = true;
	} else if (s->once_used) {
		rc = -EALREADY;
	} else if (nc > s->nc_max) {
		uint32_t d = nc - s->nc_max;
		s->window = d >= 64 ? 0 : s->window << d;
		s->window |= 1;
		s->nc_max = nc;
	} else {
		/* RFC 7616 §3.4.6 / §5.4: a repeated nc is a replay; older ones
		 * are fine once, inside the window. */
		uint32_t d = s->nc_max - nc;
		if (d >= 64 || (s->window >> d) & 1)
			rc = -EALREADY;
		else
			s->window |= 1ull << d;
	}
	pthread_mutex_unlock(mx);
	return rc;
}

void nonce_tab_fp(const struct nonce_tab *t, struct sw_str nonce, struct sw_str realm,
		  const struct sockaddr *src, bool ip, struct nonce_fp *out)
{
	/* nonce text (fixed length), realm, address: injective as laid out */
	uint8_t buf[NONCE_LEN + 2 + 256 + 17];
	size_t n = 0;
	uint8_t ab[17];
	size_t al = ip ? addr_bytes(src, ab) : 0;
	if (nonce.len != NONCE_LEN || realm.len > 256) {
		*out = (struct nonce_fp){ 0, 0 };   /* never sealed: nonce_open decides */
		return;
	}
	memcpy(buf, nonce.p, NONCE_LEN);
	n = NONCE_LEN;
	buf[n++] = (uint8_t)(realm.len >> 8);
	buf[n++] = (uint8_t)realm.len;
	memcpy(buf + n, realm.p, realm.len);
	n += realm.len;
	memcpy(buf + n, ab, al);
	n += al;
	uint64_t h[2];
	sw_siphash128(&t->fk, buf, n, h);
	out->a = h[0];
	out->b = h[1] | 1;   /* never the "none" value */
}

void nonce_tab_seal(struct nonce_tab *t, uint32_t slot, uint32_t gen, const struct nonce_fp *fp)
{
	if (slot > t->mask || !fp->b)
		return;
	pthread_mutex_t *mx = shard_of(t, slot);
	sw_mutex_lock(mx);
	struct nonce_slot *s = &t->slots[slot];
	if (s->gen + gen_base(t, slot) == gen)
		s->fp = *fp;
	pthread_mutex_unlock(mx);
}

bool nonce_tab_known(struct nonce_tab *t, uint32_t slot, uint32_t gen, const struct nonce_fp *fp)
{
	if (slot > t->mask || !fp->b)
		return false;
	pthread_mutex_t *mx = shard_of(t, slot);
	sw_mutex_lock(mx);
	const struct nonce_slot *s = &t->slots[slot];
	bool known = s->gen + gen_base(t, slot) == gen && sw_ct_eq(&s->fp, fp, sizeof(*fp));
	pthread_mutex_unlock(mx);
	return known;
}
