/* Proxy and trunk configuration types (issue 4). Types only (STYLE.md §4):
 * config/proxy_keys.c fills them, src/proxy and src/server read them. */
#ifndef SW_PROXY_PROXY_T_H
#define SW_PROXY_PROXY_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/net.h"

#define PROXY_MAX_UPSTREAMS 8
#define PROXY_MAX_TRUNKS 64
#define PROXY_MAX_CIDRS 8192       /* over all trunks */
#define PROXY_MAX_PREFIXES 8       /* number prefixes per trunk */
#define PROXY_NAME_MAX 64
#define PROXY_HOST_MAX 256

/* How a trunk proves itself (DESIGN.md "Authentication methods"). */
enum proxy_trunk_auth {
	TRUNK_AUTH_IP = 0,         /* source address in `match` */
	TRUNK_AUTH_DIGEST,         /* digest only (407), address not checked */
	TRUNK_AUTH_IP_AND_DIGEST,  /* both */
	TRUNK_AUTH_IP_OR_DIGEST,   /* the address, else digest (dynamic-IP carriers) */
};

/* A next hop named by a SIP URI: sip:HOST[:PORT][;transport=udp|tcp]. */
struct proxy_hop {
	char host[PROXY_HOST_MAX];  /* as written, brackets stripped */
	uint16_t port;              /* 0 = 5060 / SRV */
	uint8_t proto;              /* enum sw_proto: UDP or TCP */
	bool explicit_proto;        /* ;transport= was given */
	bool literal;               /* host is an IP address: no DNS (RFC 3263 §4.2) */
	struct sockaddr_storage addr; /* when literal */
	socklen_t alen;
};

struct proxy_upstream_conf {
	char name[PROXY_NAME_MAX];
	struct proxy_hop hop;
};

struct proxy_trunk_conf {
	char name[PROXY_NAME_MAX];
	uint8_t auth;                          /* enum proxy_trunk_auth */
	char user[PROXY_NAME_MAX];             /* digest user of the trunk (default: name) */
	bool has_uri;
	struct proxy_hop hop;                  /* uri = where calls to the trunk go */
	char domain[PROXY_HOST_MAX];           /* R-URI host that selects this trunk, "" none */
	char prefix[PROXY_MAX_PREFIXES][32];   /* R-URI user prefixes that select it */
	unsigned nprefix;
	unsigned ncidrs;                       /* how many of cidrs[] are ours */
};

struct proxy_trunk_cidr {
	struct sw_cidr c;
	uint16_t trunk;
};

struct sw_proxy_conf {
	bool on;                   /* an [upstream], [trunk] or [proxy] section exists */
	bool record_route;         /* [proxy] record_route (default yes) */
	bool rechallenge_in_dialog;/* re-INVITE/UPDATE/BYE from users get a 407 too */
	bool local_calls;          /* no upstream: user → user via the location table */
	uint32_t timer_c_s;        /* RFC 3261 §16.6 item 11, > 3 min; default 180 */
	uint32_t health_interval_s;/* OPTIONS to each upstream; default 10, 0 = off */
	uint32_t down_s;           /* an upstream that failed is skipped this long (30) */
	uint32_t max_branches;     /* parallel forks per request (default 8) */
	uint32_t max_calls;        /* proxied transactions per worker (default 4096) */
	char secret_file[1024];    /* Record-Route / branch key; "" = <data_dir>/proxy.key */
	char dns_servers[256];     /* RFC 3263 lookups: "IP[:PORT],..."; "" = /etc/resolv.conf */
	struct proxy_upstream_conf up[PROXY_MAX_UPSTREAMS];
	unsigned nup;
	struct proxy_trunk_conf trunks[PROXY_MAX_TRUNKS];
	unsigned ntrunks;
	struct proxy_trunk_cidr cidrs[PROXY_MAX_CIDRS];
	unsigned ncidrs;
};

#endif
