/* Stateful forwarding helpers (RFC 3261 §16): the request builder, our
 * Via branch and loop detection, the signed Record-Route, Via removal on
 * responses and best-response selection. Pure functions over parsed
 * messages and caller buffers: no I/O, no allocation, no logging. */
#ifndef SW_PROXY_FWD_H
#define SW_PROXY_FWD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/siphash.h"
#include "base/str-t.h"
#include "sip/sip-t.h"
#include "sip/txn-t.h"

#define PROXY_KEY_LEN 32

/* Keys of one process (or cluster): branch/loop hashing and the
 * Record-Route MAC. */
struct proxy_keys {
	struct sw_hkey branch;
	uint8_t rr[PROXY_KEY_LEN];
};

/* Derive both keys from a 32-byte secret (HMAC-SHA-256 with labels). */
void proxy_keys_derive(struct proxy_keys *k, const uint8_t secret[PROXY_KEY_LEN]);

/* --- Via branch (§16.6 item 8) and loop detection (§16.3 item 4) ------ */

#define PROXY_BRANCH_MAX 48
/* "z9hG4bKsw" + worker (2 hex) + unique (16 hex) + "." + loop hash (16 hex) */
size_t proxy_branch(const struct proxy_keys *k, unsigned worker, uint64_t counter,
		    uint64_t loop, char out[PROXY_BRANCH_MAX]);
/* The worker that created one of our branches, or -1 when it is not ours. */
int proxy_branch_worker(struct sw_str branch);
/* Hash of what §16.6 item 8 lists: Request-URI, From tag, To tag, Call-ID,
 * CSeq number, Route values, Proxy-Require, Proxy-Authorization. */
uint64_t proxy_loop_hash(const struct proxy_keys *k, const struct sip_msg *m);
/* §16.3 item 4: a Via of ours whose loop hash equals this request's: the
 * request came back unchanged (a loop, 482), not a spiral. */
bool proxy_loop_detect(const struct proxy_keys *k, const struct sip_msg *m);

/* --- Flow tokens and Record-Route ------------------------------------- */

/* Where one side of a dialog is reached (a NAT'd phone's received address
 * or connection), carried in our Record-Route (as RFC 5626 §5.3 does). */
struct proxy_flow {
	bool set;
	uint8_t proto;         /* enum sw_proto */
	uint32_t conn_id;
	struct sockaddr_storage addr;
	socklen_t alen;
};
#define PROXY_FLOW_MAX 64
size_t proxy_flow_encode(const struct proxy_flow *f, char out[PROXY_FLOW_MAX]);
int proxy_flow_decode(struct sw_str s, struct proxy_flow *f);

#define PROXY_RR_MAX 512
/* "<sip:HOST:PORT;transport=T;lr[;swf=FLOW];swrr=MAC>" — MAC =
 * HMAC-SHA-256(rr key, Call-ID, dialog tag, flow), truncated to 128 bits:
 * only sipwarden can mint a Route that proves dialog membership. host is
 * written as given (brackets added for IPv6). Returns the length, 0 when
 * it does not fit. */
size_t proxy_rr_build(const struct proxy_keys *k, struct sw_str host, uint16_t port,
		      const char *transport, struct sw_str call_id, struct sw_str tag,
		      const struct proxy_flow *flow, char out[PROXY_RR_MAX]);

/* The first Route value of m, parsed: its URI (out) and whether it
 * carries our parameters. */
enum proxy_route_kind {
	PROXY_ROUTE_NONE,      /* no Route header */
	PROXY_ROUTE_OTHER,     /* a Route, not one of ours */
	PROXY_ROUTE_OURS,      /* ours, MAC valid for this dialog */
	PROXY_ROUTE_FORGED,    /* carries swrr, MAC invalid */
};
/* Check the top Route (§16.4): ours when it carries swrr with a valid MAC
 * for (Call-ID, From tag or To tag, flow). *flow gets the flow token. */
enum proxy_route_kind proxy_route_check(const struct proxy_keys *k, const struct sip_msg *m,
					struct proxy_flow *flow, struct sip_uri *top);
/* The n-th Route value (0-based) as a URI; 1 found, 0 none, <0 malformed. */
int proxy_route_nth(const struct sip_msg *m, unsigned n, struct sip_uri *u);

/* --- The forwarded request (§16.6) ------------------------------------ */

struct fwd_opts {
	struct sw_str ruri;        /* new Request-URI (§16.6 item 2); .p NULL = keep */
	struct sw_str via;         /* our via-parm, e.g. "SIP/2.0/UDP 192.0.2.1:5060;branch=…" */
	const struct sockaddr *src;/* the previous hop: received/rport on its Via (§18.2.1, RFC 3581) */
	unsigned skip_routes;      /* leading Route values naming us, removed (§16.4, §16.12) */
	struct sw_str rr;          /* Record-Route value to add on top (§16.6 item 4) */
	struct sw_str realm;       /* remove Proxy-Authorization for this realm (our credentials) */
	bool strip_identity;       /* remove P-Asserted-/P-Preferred-Identity (RFC 3325 §5) */
	struct sw_str pai;         /* P-Asserted-Identity value to add (RFC 3325 §9.1) */
	struct sw_str extra;       /* more header lines, "Name: value\r\n" each */
};

/* Copy m (§16.6 item 1) with the changes of opts: Max-Forwards - 1 (70
 * when absent, item 3; the caller answered 483 at 0), our Via on top (item
 * 8), Content-Length recomputed. 0 or -ENOSPC. */
int fwd_build(struct sip_out *o, const struct sip_msg *m, const struct fwd_opts *opts);

/* A response without its top via-parm (ours), §16.7 step 3. 0, -ENOSPC,
 * -EINVAL when there is no Via left to send it to. */
int fwd_response(struct sip_out *o, const struct sip_msg *resp);

/* --- Response context (§16.7) ----------------------------------------- */

/* Step 6: the index of the best final among n (300-699; 408 for a branch
 * that timed out): a 6xx wins, else the lowest class, preferring 401,
 * 407, 415, 420 and 484 within 4xx. -1 when n == 0. */
int proxy_best(const unsigned *status, unsigned n);
/* The status to send for a chosen best: 503 becomes 500 (step 6). */
unsigned proxy_best_status(unsigned status);

#endif
