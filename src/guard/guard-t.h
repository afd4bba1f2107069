/* Abuse defences (DESIGN.md "Abuse defences", issue 5): types only.
 * The config loader fills struct sw_guard_conf; the pipeline receives
 * struct guard_verdict from each guard phase and carries it out. */
#ifndef SW_GUARD_GUARD_T_H
#define SW_GUARD_GUARD_T_H

#include <stdbool.h>
#include <stdint.h>

#include "base/net.h"
#include "sip/sip-t.h"

#define GUARD_MAX_TRUSTED 256
#define GUARD_MAX_UA 64           /* scanner User-Agent patterns */
#define GUARD_UA_BUF 2048         /* their text, NUL-separated */
#define GUARD_MAX_COUNTRIES 64    /* per list (geo_allow, geo_deny) */
#define GUARD_MAX_BAN_AFTER 32    /* sliding window holds this many failures */
#define GUARD_NAME_MAX 128        /* ban target text: address or user@realm */
#define GUARD_PATH_MAX 1024

/* What the pipeline does with a message. */
enum guard_action {
	GUARD_PASS = 0,
	GUARD_DROP,        /* silently, unread when from guard_pre */
	GUARD_REPLY,       /* answer statelessly with .status (403, 405, 503) */
	GUARD_TARPIT,      /* answer .status after .delay_ms, or drop if unable */
};

/* Why: stable names (guard_reason_str) for logs, bans.db and metrics. */
enum guard_reason {
	GUARD_R_NONE = 0,
	GUARD_R_BANNED_IP,      /* source is banned */
	GUARD_R_BANNED_USER,    /* user is banned (guard_user_banned) */
	GUARD_R_TOO_BIG,        /* datagram above max_datagram */
	GUARD_R_FLOOD,          /* per-IP packet budget exceeded */
	GUARD_R_METHOD,         /* method not in the allow-list */
	GUARD_R_SCANNER,        /* scanner User-Agent */
	GUARD_R_GEO,            /* country refused */
	GUARD_R_RATE_IP,        /* per-IP token bucket empty */
	GUARD_R_RATE_USER,      /* per-user token bucket empty */
	GUARD_R_AUTH_FAILURES,  /* too many failed authentications */
	GUARD_R_ADMIN,          /* `sipwarden ban add/del/flush` */
	GUARD_R_EXPIRED,        /* a ban ran out (unban events) */
	GUARD_R__COUNT
};

struct guard_verdict {
	enum guard_action action;
	enum guard_reason reason;
	uint16_t status;          /* REPLY / TARPIT: the status to answer */
	uint32_t retry_after_s;   /* status 503: the Retry-After value */
	uint32_t delay_ms;        /* TARPIT */
	bool banned;              /* this call banned the source just now */
};

/* Flags returned by guard_auth_failed. */
#define GUARD_BANNED_IP 1
#define GUARD_BANNED_USER 2

/* Why an authentication failed (only these count; a 401 challenge for a
 * request without credentials is not a failure). */
enum guard_auth_fail {
	GUARD_AF_BAD_CREDENTIALS = 0,  /* wrong response, unknown or disabled user */
	GUARD_AF_BAD_NONCE,            /* forged or foreign nonce (not merely stale) */
	GUARD_AF_NC_REPLAY,            /* nonce-count reused */
};

enum guard_class { GUARD_C_REGISTER = 0, GUARD_C_INVITE, GUARD_C_OTHER, GUARD_C__COUNT };

struct guard_rate_conf {
	uint32_t per_hour;        /* sustained rate, events per hour (0 = unlimited) */
	uint32_t burst;           /* bucket size, events */
};

enum guard_flood_action { GUARD_FLOOD_DROP = 0, GUARD_FLOOD_403, GUARD_FLOOD_TARPIT };

struct sw_guard_conf {
	bool enabled;
	struct sw_cidr trusted[GUARD_MAX_TRUSTED];   /* never limited, never banned */
	unsigned ntrusted;
	uint8_t ipv6_prefix;      /* IPv6 sources are keyed (rated, banned) per prefix */

	/* auth-failure bans */
	uint32_t ban_after;       /* failures ... */
	uint32_t ban_after_known; /* ... from an IP that has authenticated before */
	uint32_t ban_window_s;    /* ... within this many seconds */
	uint32_t ban_time_s;      /* first ban */
	uint32_t ban_max_time_s;  /* escalation cap */
	uint32_t ban_escalation;  /* factor per repeat offence */
	uint32_t ban_forget_s;    /* offences older than this are forgotten */

	/* token buckets per source IP and per user, per method class */
	struct guard_rate_conf ip[GUARD_C__COUNT];
	struct guard_rate_conf user[GUARD_C__COUNT];
	bool over_limit_drop;     /* false: 503 + Retry-After */
	bool greylist;            /* unknown IPs get rate / greylist_divisor */
	uint32_t greylist_divisor;

	/* flood: packets per IP before parsing */
	uint32_t flood_pps;
	uint32_t flood_burst;
	enum guard_flood_action flood_action;
	uint32_t tarpit_ms;
	bool flood_ban;           /* a sustained flood bans the source */
	uint32_t max_datagram;

	/* filters */
	uint32_t methods;         /* bit (1u << enum sip_method) per allowed method */
	uint16_t unknown_method_status;  /* 405, or 0 = drop */
	char ua_buf[GUARD_UA_BUF];
	uint16_t ua_off[GUARD_MAX_UA];
	unsigned nua;

	/* geo ACL for REGISTER and INVITE; off when geo_db is empty */
	char geo_db[GUARD_PATH_MAX];
	char geo_allow[GUARD_MAX_COUNTRIES][3];
	unsigned ngeo_allow;
	char geo_deny[GUARD_MAX_COUNTRIES][3];
	unsigned ngeo_deny;
	bool geo_unknown_deny;    /* addresses the DB does not know (private, loopback) */
	uint16_t geo_status;      /* 403, or 0 = drop */

	/* table sizes: every table is bounded (STYLE.md §8) */
	uint32_t ip_table_size;
	uint32_t user_table_size;
	uint32_t fail_table_size;
	uint32_t ban_table_size;
};

/* Decision counters (guard_stats). */
enum guard_counter {
	GUARD_S_ALLOWED = 0,      /* passed guard_rate */
	GUARD_S_RATE_LIMITED,
	GUARD_S_BANNED_IP_DROP,   /* dropped unread: banned source */
	GUARD_S_BANNED_USER,      /* 403: banned user */
	GUARD_S_FLOOD,
	GUARD_S_TOO_BIG,
	GUARD_S_METHOD,
	GUARD_S_SCANNER,
	GUARD_S_GEO,
	GUARD_S_AUTH_FAILURES,
	GUARD_S_BANS,             /* bans made by the guard */
	GUARD_S_UNBANS,           /* expired or lifted */
	GUARD_S_ADMIN_CHANGES,    /* applied from bans.db */
	GUARD_S_EVICTIONS,        /* records pushed out of a full table */
	GUARD_S_PERSIST_LOST,     /* writes dropped: queue full or disk error */
	GUARD_S_EVENTS_LOST,
	GUARD_S__COUNT
};

struct guard_stats {
	uint64_t c[GUARD_S__COUNT];
	uint32_t ip_bans, user_bans;
};

/* A ban or unban, for the one log line the pipeline writes about it. */
enum guard_event_type { GUARD_EV_BAN = 1, GUARD_EV_UNBAN };

struct guard_event {
	enum guard_event_type type;
	bool user;                /* target is a user, else an address/prefix */
	enum guard_reason reason;
	uint32_t duration_s;      /* bans */
	uint32_t offences;
	char target[GUARD_NAME_MAX];
};

/* One row of bans.db, for `sipwarden ban list`. */
struct guard_ban_row {
	bool user;
	char target[GUARD_NAME_MAX];
	int64_t until_ms;         /* wall clock */
	int64_t created_ms;
	char reason[32];
	uint32_t offences;
};

#endif
