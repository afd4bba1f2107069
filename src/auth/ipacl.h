/* IP access lists: longest-prefix match of a source address over many
 * CIDR prefixes, IPv4 and IPv6 (issue 4: trunks admitted by address).
 *
 * A binary trie over 128-bit keys (IPv4 as ::ffff:a.b.c.d, so an IPv4
 * prefix /n is the IPv6 prefix /96+n and IPv4-mapped sources match it).
 * Lookup walks at most 128 nodes whatever the number of prefixes; nodes
 * live in one array, grown only while the list is built (at start-up),
 * never on the request path. Read-only after building: any number of
 * threads may look up concurrently. */
#ifndef SW_AUTH_IPACL_H
#define SW_AUTH_IPACL_H

#include <stdint.h>
#include <sys/socket.h>

#include "base/net.h"

struct sw_ipacl;

struct sw_ipacl *sw_ipacl_new(void);
void sw_ipacl_free(struct sw_ipacl *a);

/* Add a prefix with a value >= 0 (e.g. a trunk index). The same prefix
 * added twice: -EEXIST (the first value stays). -ENOMEM, -EINVAL. */
int sw_ipacl_add(struct sw_ipacl *a, const struct sw_cidr *c, int32_t value);

/* Value of the longest prefix containing sa, or -1 when none does. */
int32_t sw_ipacl_lookup(const struct sw_ipacl *a, const struct sockaddr *sa);
/* Same, with the matched prefix length (0..128 in the v6 key space). */
int32_t sw_ipacl_lookup_len(const struct sw_ipacl *a, const struct sockaddr *sa, unsigned *bits);

unsigned sw_ipacl_count(const struct sw_ipacl *a);

#endif
