/* The typed, read-only configuration (DESIGN.md "Config"). Filled once by
 * config_load, never written afterwards. */
#ifndef SW_CONFIG_CONFIG_T_H
#define SW_CONFIG_CONFIG_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/auth-t.h"
#include "base/net.h"
#include "guard/guard-t.h"
#include "proxy/proxy-t.h"
#include "registrar/registrar-t.h"
#include "sip/sip-t.h"
#include "sip/txn-t.h"
#include "transport/transport-t.h"

#define SW_MAX_LISTEN 16
#define SW_MAX_REALMS 64
#define SW_MAX_CIDRS 256
#define SW_NAME_MAX 256
#define SW_PATH_MAX 1024

struct sw_listen {
	enum sw_proto proto;
	struct sockaddr_storage addr;
	socklen_t alen;
	char text[80];             /* "udp:127.0.0.1:5060" as written */
};

struct sw_realm {
	char name[SW_NAME_MAX];    /* the served domain, lower-case */
	unsigned line;             /* where it was defined */
};

struct sw_config {
	char path[SW_PATH_MAX];
	/* [server] */
	struct sw_listen listen[SW_MAX_LISTEN];
	unsigned nlisten;
	unsigned workers;          /* 0 = one per CPU */
	unsigned rt_priority;      /* workers at SCHED_FIFO with this priority; 0 = normal */
	char data_dir[SW_PATH_MAX];
	int log_level;             /* enum sw_log_level */
	char server_name[64];      /* Server / User-Agent header value */
	char run_user[64];         /* user/group: drop to them after binding; "" = stay */
	char run_group[64];
	/* [limits] */
	struct sip_limits limits;
	unsigned max_transactions; /* per worker */
	uint64_t txn_memory;       /* stored replies, all workers together (bytes) */
	/* [tcp] */
	struct sw_tp_conf tp;
	/* [timers] */
	struct sip_timers timers;
	/* [registrar] */
	struct reg_conf reg;
	struct sw_cidr reg_trust[SW_MAX_CIDRS];  /* who may register before auth exists */
	unsigned nreg_trust;
	unsigned unknown_domain_status;          /* 403 (default) or 404 */
	/* [realm NAME] */
	struct sw_realm realms[SW_MAX_REALMS];
	unsigned nrealms;
	/* [realm NAME] digest keys, [profile NAME], [auth] (config/auth_keys.c) */
	struct sw_auth_conf auth;
	/* [guard] (config/guard_keys.c) */
	struct sw_guard_conf guard;
	/* [upstream NAME], [trunk NAME], [proxy] (config/proxy_keys.c) */
	struct sw_proxy_conf proxy;
};

/* A diagnostic from loading or checking: "FILE:LINE: text". */
struct sw_config_diag {
	char text[512];
};

#endif
