/* RFC 3263 §4 resolution of a next hop named by a host name (NAPTR → SRV
 * → A/AAAA) with c-ares, driven by a worker's event loop: c-ares' sockets
 * and timeouts become libevent events (ARES_OPT_SOCK_STATE_CB), nothing
 * blocks. One resolver per worker, not thread-safe. Library code: no
 * logging, results through a callback. Caching is the caller's (the TTL
 * comes with the result). */
#ifndef SW_PROXY_RESOLVE_H
#define SW_PROXY_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "base/str-t.h"
#include "proxy/proxy-t.h"

#define PXR_MAX_TARGETS 16

struct pxr_target {
	struct sockaddr_storage addr;   /* with the port */
	socklen_t alen;
	uint8_t proto;                  /* enum sw_proto: 0 UDP, 1 TCP */
};

/* Addresses to try in order: NAPTR order/preference, then SRV priority
 * with weighted random order inside one priority (RFC 2782), then the
 * addresses of each SRV target. */
struct pxr_result {
	int err;           /* 0, -ENOENT (no usable record), -ETIMEDOUT, -EIO */
	unsigned n;
	uint32_t ttl_s;    /* smallest TTL of the records used */
	struct pxr_target t[PXR_MAX_TARGETS];
};

struct pxr;
typedef void (*pxr_done_fn)(void *ctx, uint32_t cookie, const struct pxr_result *res);

/* servers: "IP[:PORT],..." (c-ares CSV syntax) or NULL/"" for
 * /etc/resolv.conf. *err: 0 or -errno. */
struct pxr *pxr_new(struct event_base *base, const char *servers, pxr_done_fn done, void *ctx,
		    int *err);
/* Pending lookups end without calling done. */
void pxr_free(struct pxr *r);

/* Start resolving hop (its host is a name, not an IP literal); done(ctx,
 * cookie, result) is called from the event loop — or from inside this
 * call when c-ares answers at once (/etc/hosts, a bad name). RFC 3263 §4.1/§4.2: a port or ;transport= skips NAPTR; a
 * port also skips SRV. 0 or -errno. */
int pxr_resolve(struct pxr *r, const struct proxy_hop *hop, uint32_t cookie);
unsigned pxr_pending(const struct pxr *r);

/* RFC 2782 order of n SRV records (priority ascending; inside a priority,
 * weighted random: rnd(sum) picks the next). Writes the order as indexes
 * into idx. Exposed for tests. */
struct pxr_srv {
	uint16_t priority, weight, port;
};
void pxr_srv_order(const struct pxr_srv *srv, unsigned n, unsigned *idx,
		   uint32_t (*rnd)(uint32_t bound));

#endif
