/* Registrar (RFC 3261 §10.3) types. */
#ifndef SW_REGISTRAR_REGISTRAR_T_H
#define SW_REGISTRAR_REGISTRAR_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sip/txn-t.h"

struct reg_conf {
	uint32_t min_expires;         /* 423 below this (default 60) */
	uint32_t max_expires;         /* clamp (default 3600) */
	uint32_t default_expires;     /* no Expires anywhere (default 3600) */
	uint32_t max_bindings_per_aor;/* default 10 */
	uint32_t max_bindings;        /* whole table (default 1 000 000) */
	uint32_t max_contacts;        /* Contact values accepted in one REGISTER (default 16) */
	bool fsync;                   /* fdatasync the journal before each 200 (default no) */
};

/* One binding, owned copies (it outlives the message). Sizes are bounded;
 * a longer value makes the REGISTER fail with 400, never truncates. */
#define REG_AOR_MAX 256
#define REG_CONTACT_MAX 512
#define REG_PATH_MAX 512
#define REG_INSTANCE_MAX 128
#define REG_CALLID_MAX 256
#define REG_UA_MAX 128

/* Hard ceilings for reg_conf (registrar_open refuses more): they size
 * the per-request work arrays. */
#define REG_HARD_PER_AOR 128
#define REG_HARD_CONTACTS 64

struct reg_binding {
	char aor[REG_AOR_MAX];            /* "sip:user@domain", canonical (§10.3 step 5) */
	char contact[REG_CONTACT_MAX];    /* the Contact URI as registered (params kept) */
	char path[REG_PATH_MAX];          /* Path header values, comma-joined, "" if none */
	char instance[REG_INSTANCE_MAX];  /* +sip.instance, "" if none */
	char call_id[REG_CALLID_MAX];
	char user_agent[REG_UA_MAX];
	uint32_t cseq;
	int32_t reg_id;                   /* -1 none */
	int16_t q;                        /* 0..1000, -1 none */
	int64_t expires_at;               /* wall-clock seconds */
	/* how to reach it behind NAT: received address, transport, connection */
	struct sip_txn_dest received;
	uint16_t worker;                  /* worker owning received.conn_id */
};

/* Result of processing a REGISTER. */
struct reg_result {
	unsigned status;          /* 200, 400, 403, 423, 500, 503 */
	const char *reason;       /* reason code for the log: "ok", "interval-too-brief", … */
	/* Extra header lines for the response, "Name: value\r\n" each
	 * (Contact list with expires, Min-Expires, Path, Date). */
	char *hdrs;
	size_t hdrs_len;
	size_t hdrs_cap;
	int err;                  /* -errno of a failed journal write (status 500) */
	unsigned bindings;        /* bindings of the AOR after the change */
};

struct sw_registrar; /* shared by all workers; internally sharded and locked */

#endif
