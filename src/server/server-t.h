/* The running server: shared state (read-only config, registrar) and the
 * per-worker state (event loop, transports, transaction table). */
#ifndef SW_SERVER_SERVER_T_H
#define SW_SERVER_SERVER_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/siphash.h"
#include "config/config-t.h"
#include "registrar/registrar-t.h"
#include "sip/sip-t.h"
#include "sip/txn-t.h"

struct event_base;
struct event;
struct sw_tp;
struct sip_txn;
struct sip_txn_table;
struct sw_auth;
struct sw_guard;
struct sw_proxy;   /* issue 4: route_proxy.c */
struct sw_pxw;
struct auth_worker;

/* Replies held back by the tarpit flood policy. */
#define SW_TARPIT_MAX 256
#define SW_TARPIT_BYTES 2048
struct sw_tarpit {
	uint64_t due_ms;        /* monotonic */
	struct sip_txn_dest dest;
	uint16_t len;           /* 0 = free slot */
	char buf[SW_TARPIT_BYTES];
};

struct sw_server;

struct sw_worker {
	unsigned id;
	struct sw_server *srv;
	const struct sw_config *cfg;
	pthread_t thread;
	struct event_base *base;
	struct sw_tp *tp;
	struct sip_txn_table *txns;
	struct auth_worker *aw;
	struct event *tick_ev;

	/* failed journal writes: rate-limited log (route_register.c) */
	uint64_t jfail_logged_ms;
	unsigned jfail_quiet;
	struct sw_tarpit *tarpit;          /* SW_TARPIT_MAX slots */
	unsigned ntarpit;

	/* scratch, reused for every message: no allocation per request */
	struct sip_hdr *hdrs;
	char *out;
	size_t out_cap;
	char *extra;
	size_t extra_cap;

	/* counters (read by metrics later; written only by this worker) */
	uint64_t rx_msgs, rx_bad, tx_msgs, retrans_absorbed;
	uint64_t nomem_told;               /* replies not kept, as of the last warning */
	uint64_t nomem_warn_ms;            /* when that warning was logged */

	struct sw_pxw *px;                 /* issue 4: proxy contexts, client txns, hand-off */
};

struct sw_server {
	const struct sw_config *cfg;
	struct sw_registrar *reg;
	struct sw_auth *auth;              /* digest engine (credentials, nonces) */
	struct sw_guard *guard;            /* rate limits, bans, filters */
	struct sw_proxy *proxy;            /* issue 4: keys, trunk ACL, upstream health */
	struct sw_hkey tag_key;            /* To-tags: same for every retransmission */
	struct sw_hkey txn_key;
	unsigned nworkers;
	struct sw_worker *workers;
	atomic_bool stopping;
};

#endif
