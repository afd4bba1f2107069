#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "base/net.h"
#include "base/str.h"

int sw_cidr_parse(struct sw_str s, struct sw_cidr *out)
{
	char host[64];
	s = sw_str_trim(s);
	const char *slash = memchr(s.p, '/', s.len);
	struct sw_str h = slash ? sw_str_mk(s.p, (size_t)(slash - s.p)) : s;
	if (sw_str_copy(h, host, sizeof(host)) < 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	unsigned maxbits;
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		maxbits = 128;
	} else {
		return -EINVAL;
	}
	uint64_t bits = maxbits;
	if (slash) {
		struct sw_str b = sw_str_mk(slash + 1, s.len - (size_t)(slash + 1 - s.p));
		if (sw_str_to_u64(b, maxbits, &bits) < 0)
			return -EINVAL;
	}
	out->bits = (uint8_t)bits;
	for (unsigned i = 0; i < 16; i++) {
		unsigned lo = i * 8;
		if (lo >= bits)
			out->addr[i] = 0;
		else if (lo + 8 > bits)
			out->addr[i] &= (uint8_t)(0xff << (8 - (bits - lo)));
	}
	return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *net, unsigned bits)
{
	unsigned full = bits / 8, rem = bits % 8;
	if (memcmp(a, net, full) != 0)
		return false;
	if (rem == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rem));
	return (a[full] & mask) == net[full];
}

bool sw_cidr_match(const struct sw_cidr *c, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		return c->family == AF_INET && prefix_eq((const uint8_t *)&in->sin_addr, c->addr, c->bits);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		if (c->family == AF_INET6)
			return prefix_eq(a, c->addr, c->bits);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return prefix_eq(a + 12, c->addr, c->bits);
	}
	return false;
}

bool sw_cidr_list_match(const struct sw_cidr *list, unsigned n, const struct sockaddr *sa)
{
	for (unsigned i = 0; i < n; i++)
		if (sw_cidr_match(&list[i], sa))
			return true;
	return false;
}

int sw_sockaddr_parse(struct sw_str s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	struct sw_str h, p;
	memset(ss, 0, sizeof(*ss));
	if (s.len && s.p[0] == '[') {
		const char *rb = memchr(s.p, ']', s.len);
		if (!rb || (size_t)(rb - s.p) + 2 > s.len || rb[1] != ':')
			return -EINVAL;
		h = sw_str_mk(s.p + 1, (size_t)(rb - s.p - 1));
		p = sw_str_mk(rb + 2, s.len - (size_t)(rb + 2 - s.p));
	} else {
		const char *c = NULL;
		for (size_t i = s.len; i > 0; i--)
			if (s.p[i - 1] == ':') {
				c = s.p + i - 1;
				break;
			}
		if (!c)
			return -EINVAL;
		h = sw_str_mk(s.p, (size_t)(c - s.p));
		p = sw_str_mk(c + 1, s.len - (size_t)(c + 1 - s.p));
	}
	uint64_t port;
	if (sw_str_to_u64(p, 65535, &port) < 0 || sw_str_copy(h, host, sizeof(host)) < 0)
		return -EINVAL;
	struct sockaddr_in *in = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

size_t sw_ipv4_fmt(const uint8_t a[4], char out[16])
{
	/* Dotted quad without inet_ntop's formatted printing (issue 6: every reply with
	 * ;received= formats the source address). */
	size_t n = 0;
	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];
		if (i)
			out[n++] = '.';
		if (v >= 100)
			out[n++] = (char)('0' + v / 100);
		if (v >= 10)
			out[n++] = (char)('0' + v / 10 % 10);
		out[n++] = (char)('0' + v % 10);
	}
	out[n] = '\0';
	return n;
}

size_t sw_sockaddr_host(const struct sockaddr *sa, char *buf, size_t cap)
{
	if (sa->sa_family == AF_INET && cap >= 16)
		return sw_ipv4_fmt((const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf);
	const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
						  : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if (!inet_ntop(sa->sa_family, a, buf, (socklen_t)cap)) {
		if (cap)
			buf[0] = '\0';
		return 0;
	}
	return strlen(buf);
}

uint16_t sw_sockaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

size_t sw_sockaddr_fmt(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[64];
	sw_sockaddr_host(sa, host, sizeof(host));
	int n = snprintf(buf, cap, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
			 (unsigned)sw_sockaddr_port(sa));
	return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

socklen_t sw_sockaddr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}
