/* Longest-prefix match over CIDR prefixes (see ipacl.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ipacl.h"

#define NIL UINT32_MAX
/* 128 bits * prefixes bounds the nodes; refuse absurd lists. */
#define MAX_NODES (1u << 26)

struct node {
	uint32_t child[2];
	int32_t value;         /* -1: no prefix ends here */
};

struct sw_ipacl {
	struct node *n;
	uint32_t len, cap;
	unsigned count;
};

struct sw_ipacl *sw_ipacl_new(void)
{
	struct sw_ipacl *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->cap = 64;
	a->n = malloc(a->cap * sizeof(*a->n));
	if (!a->n) {
		free(a);
		return NULL;
	}
	a->n[0] = (struct node){ { NIL, NIL }, -1 };
	a->len = 1;
	return a;
}

void sw_ipacl_free(struct sw_ipacl *a)
{
	if (!a)
		return;
	free(a->n);
	free(a);
}

unsigned sw_ipacl_count(const struct sw_ipacl *a)
{
	return a->count;
}

static int node_new(struct sw_ipacl *a, uint32_t *out)
{
	if (a->len == a->cap) {
		if (a->cap >= MAX_NODES)
			return -ENOMEM;
		struct node *nn = realloc(a->n, (size_t)a->cap * 2 * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		a->n = nn;
		a->cap *= 2;
	}
	a->n[a->len] = (struct node){ { NIL, NIL }, -1 };
	*out = a->len++;
	return 0;
}

static inline unsigned bit_at(const uint8_t k[16], unsigned i)
{
	return (k[i >> 3] >> (7 - (i & 7))) & 1u;
}

int sw_ipacl_add(struct sw_ipacl *a, const struct sw_cidr *c, int32_t value)
{
	uint8_t k[16] = { 0 };
	unsigned bits;
	if (value < 0)
		return -EINVAL;
	if (c->family == AF_INET && c->bits <= 32) {
		k[10] = k[11] = 0xff;
		memcpy(k + 12, c->addr, 4);
		bits = 96u + c->bits;
	} else if (c->family == AF_INET6 && c->bits <= 128) {
		memcpy(k, c->addr, 16);
		bits = c->bits;
	} else {
		return -EINVAL;
	}
	uint32_t cur = 0;
	for (unsigned i = 0; i < bits; i++) {
		unsigned b = bit_at(k, i);
		if (a->n[cur].child[b] == NIL) {
			uint32_t nx;
			int rc = node_new(a, &nx);
			if (rc < 0)
				return rc;
			a->n[cur].child[b] = nx; /* a->n may have moved: index again */
		}
		cur = a->n[cur].child[b];
	}
	if (a->n[cur].value >= 0)
		return -EEXIST;
	a->n[cur].value = value;
	a->count++;
	return 0;
}

int32_t sw_ipacl_lookup_len(const struct sw_ipacl *a, const struct sockaddr *sa, unsigned *bits)
{
	uint8_t k[16] = { 0 };
	if (sa->sa_family == AF_INET) {
		k[10] = k[11] = 0xff;
		memcpy(k + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(k, ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr, 16);
	} else {
		return -1;
	}
	int32_t best = a->n[0].value;
	unsigned best_len = 0;
	uint32_t cur = 0;
	for (unsigned i = 0; i < 128; i++) {
		cur = a->n[cur].child[bit_at(k, i)];
		if (cur == NIL)
			break;
		if (a->n[cur].value >= 0) {
			best = a->n[cur].value;
			best_len = i + 1;
		}
	}
	if (bits)
		*bits = best_len;
	return best;
}

int32_t sw_ipacl_lookup(const struct sw_ipacl *a, const struct sockaddr *sa)
{
	return sw_ipacl_lookup_len(a, sa, NULL);
}
