/* Addresses and CIDR prefixes, IPv4 and IPv6. */
#ifndef SW_BASE_NET_H
#define SW_BASE_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "base/str-t.h"

struct sw_cidr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t bits;
	uint8_t addr[16]; /* network byte order, host bits zeroed */
};

/* "203.0.113.0/24", "2001:db8::/32", or a bare address (full length). */
int sw_cidr_parse(struct sw_str s, struct sw_cidr *out);
/* IPv4-mapped IPv6 sources match IPv4 prefixes. */
bool sw_cidr_match(const struct sw_cidr *c, const struct sockaddr *sa);
bool sw_cidr_list_match(const struct sw_cidr *list, unsigned n, const struct sockaddr *sa);

/* "ADDR:PORT" or "[V6]:PORT" into a sockaddr; 0 or -EINVAL. */
int sw_sockaddr_parse(struct sw_str s, struct sockaddr_storage *ss, socklen_t *len);
/* Numeric host only ("1.2.3.4" / "2001:db8::1"); returns length written. */
/* "a.b.c.d" of 4 network-order bytes into out (NUL-terminated); returns
 * the length. */
size_t sw_ipv4_fmt(const uint8_t a[4], char out[16]);
size_t sw_sockaddr_host(const struct sockaddr *sa, char *buf, size_t cap);
uint16_t sw_sockaddr_port(const struct sockaddr *sa);
/* "1.2.3.4:5060" or "[::1]:5060". */
size_t sw_sockaddr_fmt(const struct sockaddr *sa, char *buf, size_t cap);
socklen_t sw_sockaddr_len(const struct sockaddr *sa);

#endif
