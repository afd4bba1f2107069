#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "auth/nonce.h"
#include "base/ct.h"

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

static int b64u_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

static int b64u_dec(const char *in, size_t n, uint8_t *out)
{
	for (size_t i = 0, o = 0; i < n; i += 4) {
		uint32_t v = 0;
		for (int k = 0; k < 4; k++) {
			int x = b64u_val(in[i + k]);
			if (x < 0)
				return -EBADMSG;
			v = v << 6 | (uint32_t)x;
		}
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	return 0;
}

EVP_MAC_CTX *nonce_mac_new(const uint8_t *key, size_t len)
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	char dg[] = "SHA256";
	OSSL_PARAM p[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, dg, 0),
			   OSSL_PARAM_construct_end() };
	EVP_MAC_free(m);
	if (ctx && !EVP_MAC_init(ctx, key, len, p)) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
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

static int mac_over(EVP_MAC_CTX *mac, const uint8_t *hdr, size_t hl, struct sw_str realm,
		    const struct sockaddr *src, bool ip, uint8_t out[32])
{
	static const char label[] = "sipwarden-nonce-v1";
	uint8_t rl[2] = { (uint8_t)(realm.len >> 8), (uint8_t)realm.len };
	uint8_t ab[17];
	size_t al = ip ? addr_bytes(src, ab) : 0, ol = 0;

	if (realm.len > 0xffff || (ip && !al))
		return -EINVAL;
	if (!EVP_MAC_init(mac, NULL, 0, NULL) ||
	    !EVP_MAC_update(mac, (const uint8_t *)label, sizeof(label)) ||
	    !EVP_MAC_update(mac, hdr, hl) || !EVP_MAC_update(mac, rl, 2) ||
	    (realm.len && !EVP_MAC_update(mac, (const uint8_t *)realm.p, realm.len)) ||
	    (al && !EVP_MAC_update(mac, ab, al)) || !EVP_MAC_final(mac, out, &ol, 32) || ol != 32)
		return -EIO;
	return 0;
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

int nonce_make(EVP_MAC_CTX *mac, const struct nonce_fields *f, struct sw_str realm,
	       const struct sockaddr *src, char out[NONCE_LEN + 1])
{
	uint8_t raw[NONCE_RAW], m[32];
	raw[0] = (uint8_t)(NONCE_VERSION << 4 | (f->flags & 0x0f));
	put_be(raw + 1, (uint64_t)f->t, 5);
	put_be(raw + 6, f->slot, 4);
	put_be(raw + 10, f->gen, 4);
	int rc = mac_over(mac, raw, 14, realm, src, f->flags & NONCE_F_IP, m);
	if (rc)
		return rc;
	memcpy(raw + 14, m, 16);
	b64u_enc(raw, NONCE_RAW, out);
	out[NONCE_LEN] = '\0';
	return 0;
}

int nonce_open(EVP_MAC_CTX *mac, struct sw_str nonce, struct sw_str realm,
	       const struct sockaddr *src, struct nonce_fields *f)
{
	uint8_t raw[NONCE_RAW], m[32];
	if (nonce.len != NONCE_LEN || b64u_dec(nonce.p, NONCE_LEN, raw) < 0)
		return -EBADMSG;
	if (raw[0] >> 4 != NONCE_VERSION)
		return -EBADMSG;
	f->flags = raw[0] & 0x0f;
	f->t = (int64_t)get_be(raw + 1, 5);
	f->slot = (uint32_t)get_be(raw + 6, 4);
	f->gen = (uint32_t)get_be(raw + 10, 4);
	int rc = mac_over(mac, raw, 14, realm, src, f->flags & NONCE_F_IP, m);
	if (rc == -EINVAL)
		return -EPERM; /* bound to an address family we cannot see */
	if (rc)
		return rc;
	return sw_ct_eq(m, raw + 14, 16) ? 0 : -EPERM;
}

int nonce_opaque(EVP_MAC_CTX *mac, struct sw_str realm, char out[23])
{
	static const char label[] = "sipwarden-opaque-v1";
	uint8_t m[32];
	size_t ol = 0;
	char enc[24];
	if (!EVP_MAC_init(mac, NULL, 0, NULL) ||
	    !EVP_MAC_update(mac, (const uint8_t *)label, sizeof(label)) ||
	    (realm.len && !EVP_MAC_update(mac, (const uint8_t *)realm.p, realm.len)) ||
	    !EVP_MAC_final(mac, m, &ol, 32))
		return -EIO;
	b64u_enc(m, 18, enc);
	memcpy(out, enc, 22);
	out[22] = '\0';
	return 0;
}

/* ---- slot table ---- */

struct nonce_slot {
	uint32_t gen;
	uint32_t nc_max;       /* highest nc accepted; 0 none yet */
	uint64_t window;       /* bit i: nc_max - i was seen */
	bool once_used;        /* used without qop */
};

struct nonce_tab {
	struct nonce_slot *slots;
	uint32_t mask;
	_Atomic uint32_t next;
	pthread_mutex_t shard[NONCE_SHARDS];
};

struct nonce_tab *nonce_tab_new(uint32_t nslots)
{
	uint32_t n = 1024;
	while (n < nslots && n < (1u << 24))
		n <<= 1;
	struct nonce_tab *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->slots = calloc(n, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return NULL;
	}
	t->mask = n - 1;
	for (int i = 0; i < NONCE_SHARDS; i++)
		pthread_mutex_init(&t->shard[i], NULL);
	return t;
}

void nonce_tab_free(struct nonce_tab *t)
{
	if (!t)
		return;
	for (int i = 0; i < NONCE_SHARDS; i++)
		pthread_mutex_destroy(&t->shard[i]);
	free(t->slots);
	free(t);
}

void nonce_tab_issue(struct nonce_tab *t, uint32_t *slot, uint32_t *gen)
{
	uint32_t s = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed) & t->mask;
	pthread_mutex_t *mx = &t->shard[s % NONCE_SHARDS];
	pthread_mutex_lock(mx);
	struct nonce_slot *sl = &t->slots[s];
	sl->gen++;
	sl->nc_max = 0;
	sl->window = 0;
	sl->once_used = false;
	*slot = s;
	*gen = sl->gen;
	pthread_mutex_unlock(mx);
}

bool nonce_tab_live(struct nonce_tab *t, uint32_t slot, uint32_t gen)
{
	if (slot > t->mask)
		return false;
	pthread_mutex_t *mx = &t->shard[slot % NONCE_SHARDS];
	pthread_mutex_lock(mx);
	bool live = t->slots[slot].gen == gen;
	pthread_mutex_unlock(mx);
	return live;
}

int nonce_tab_use(struct nonce_tab *t, uint32_t slot, uint32_t gen, uint32_t nc)
{
	int rc = 0;
	if (slot > t->mask)
		return -ESTALE;
	pthread_mutex_t *mx = &t->shard[slot % NONCE_SHARDS];
	pthread_mutex_lock(mx);
	struct nonce_slot *s = &t->slots[slot];
	if (s->gen != gen) {
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
