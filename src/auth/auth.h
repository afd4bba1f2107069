/* Digest authentication engine (issue 3; RFC 7616, RFC 8760, RFC 3261 §22).
 *
 *   struct sw_auth     one per process: config, credential snapshot, nonce
 *                      secret, nonce-count table, failure counters. Shared
 *                      by all workers; internally locked.
 *   struct auth_worker one per worker thread: hash and HMAC scratch.
 *
 * Library code: no logging. Every verdict carries a static reason code and
 * fields that are safe to log (never HA1, response, nonce secret, password). */
#ifndef SW_AUTH_AUTH_H
#define SW_AUTH_AUTH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/auth-t.h"
#include "config/config-t.h"
#include "sip/sip-t.h"
#include "store/creds-t.h"

struct sip_auth_memo;

struct sw_auth;
struct auth_worker;

enum auth_outcome {
	AUTH_OK = 0,      /* authenticated and allowed to act for the AOR */
	AUTH_CHALLENGE,   /* answer status (401/407) with hdrs (one challenge per algorithm) */
	AUTH_REJECT,      /* answer status (403, or 400 for malformed credentials) */
	AUTH_ERROR,       /* answer status (503 + Retry-After in hdrs, or 500) */
};

/* Reason codes (static strings, for logs and metrics labels). */
#define AUTH_R_OK "ok"
#define AUTH_R_NO_CREDENTIALS "no-credentials"
#define AUTH_R_MALFORMED "malformed"
#define AUTH_R_REALM_MISMATCH "realm-mismatch"
#define AUTH_R_ALG_NOT_ALLOWED "alg-not-allowed"
#define AUTH_R_QOP_MISSING "qop-missing"
#define AUTH_R_QOP_NOT_ALLOWED "qop-not-allowed"
#define AUTH_R_BAD_NONCE "bad-nonce"
#define AUTH_R_STALE "stale"
#define AUTH_R_OPAQUE_MISMATCH "opaque-mismatch"
#define AUTH_R_URI_MISMATCH "uri-mismatch"
#define AUTH_R_UNKNOWN_USER "unknown-user"
#define AUTH_R_DISABLED "disabled"
#define AUTH_R_NO_HASH "no-hash-for-alg"
#define AUTH_R_BAD_RESPONSE "bad-response"
#define AUTH_R_NC_REPLAY "nc-replay"
#define AUTH_R_NONCE_REUSED "nonce-reused"
#define AUTH_R_USERNAME_MISMATCH "username-mismatch"
#define AUTH_R_TOO_MANY_FAILURES "too-many-failures"
#define AUTH_R_STORE_UNAVAILABLE "store-unavailable"
#define AUTH_R_INTERNAL "internal"
#define AUTH_R_UNKNOWN_REALM "unknown-realm"

#define AUTH_HDRS_MAX 2048

struct auth_result {
	enum auth_outcome outcome;
	unsigned status;            /* 0 for OK; 400, 401, 403, 407, 500, 503 */
	const char *reason;         /* AUTH_R_* */
	bool stale;                 /* the challenge says stale=true */
	bool md5_warn;              /* accepted with MD5 under md5 = warn: log and count it */
	/* Header lines for the response, each "Name: value\r\n":
	 * WWW-Authenticate / Proxy-Authenticate (CHALLENGE), Retry-After (503). */
	char hdrs[AUTH_HDRS_MAX];
	size_t hdrs_len;

	/* Safe to log. */
	char user[CREDS_USER_MAX];  /* username as sent (unquoted), or the one a userhash named */
	bool userhash;              /* the client sent a userhash */
	int realm_idx;              /* index into cfg->realms, -1 unknown */
	const char *realm;          /* realm name, or NULL */
	const char *algorithm;      /* "SHA-256", … as used by the client; NULL when none */
	const char *profile;        /* challenge profile chosen, NULL for the realm's default */
	struct sw_str user_agent;   /* points into the message */
	/* AUTH_OK: the AOR the Auth ID acted for ("1001@pbx.example.com"),
	 * different from user when a mapping allowed it. */
	char aor[CREDS_USER_MAX + CREDS_REALM_MAX];
	bool mapped;                /* the AOR was allowed by an explicit mapping */
};

/* [auth] nonce_slots, or the default for USERS credentials (see auth.c). */
uint32_t auth_nonce_slots(const struct sw_auth_conf *ac, size_t users);

/* Open the engine: reads the digest settings from cfg (kept by pointer;
 * must outlive the engine), opens <data_dir>/credentials.db (created if
 * absent) and loads the nonce secret ([auth] nonce_secret or
 * nonce_secret_file, else <data_dir>/nonce.secret, generated 0600 when
 * absent). data_dir NULL: no database (see auth_set_snapshot) and, without
 * a configured secret, a random per-process one.
 * NULL on failure with *err = -errno and a reason in why. */
struct sw_auth *auth_open(const struct sw_config *cfg, const char *data_dir, int *err,
			  char *why, size_t whycap);
void auth_close(struct sw_auth *a);

/* Per worker thread scratch; NULL on allocation failure. */
struct auth_worker *auth_worker_new(struct sw_auth *a);
void auth_worker_free(struct auth_worker *w);

/* The realm a request addresses: the Request-URI host for REGISTER
 * (RFC 3261 §10.3), else the From host. -1 when none is served. */
int auth_realm_for(const struct sw_config *cfg, const struct sip_msg *m);

/* Verify the request's Authorization (proxy = false; 401/WWW-Authenticate)
 * or Proxy-Authorization (proxy = true; 407/Proxy-Authenticate) for realm
 * realm_idx (see auth_realm_for), src being the transport source address
 * and now wall-clock seconds. Then check the identity binding: the Auth ID
 * must own the To AOR (REGISTER) or From AOR (other methods).
 * Always fills res; returns 0, or -EINVAL on misuse (no message). */
int auth_check(struct auth_worker *w, const struct sip_msg *m, const struct sockaddr *src,
	       int realm_idx, bool proxy, int64_t now, struct auth_result *res);
/* The same, reusing memo (may be NULL) for the field it was parsed from. */
int auth_check_memo(struct auth_worker *w, const struct sip_msg *m,
		    const struct sip_auth_memo *memo, const struct sockaddr *src, int realm_idx,
		    bool proxy, int64_t now, struct auth_result *res);

/* A fresh challenge without looking at credentials (e.g. for a policy that
 * demands digest on top of another method). */
int auth_challenge(struct auth_worker *w, const struct sip_msg *m, const struct sockaddr *src,
		   int realm_idx, bool proxy, int64_t now, struct auth_result *res);

/* Pick up credential changes now (auth_check does it by itself at most
 * once a second, unless the reloader runs). 0, or -errno when the store is
 * unavailable. */
int auth_reload(struct sw_auth *a);
/* Check credentials.db every 0.1 s on a thread of its own and swap in
 * the new snapshot there, so no worker ever builds one on the request
 * path (a million users take about a second). Normal priority: a disabled
 * user must stop working promptly even on a busy server. Stopped by
 * auth_close. 0 or -errno; without a database nothing to do. */
int auth_start_reloader(struct sw_auth *a);
/* Without a database: serve this snapshot (ownership passes). */
void auth_set_snapshot(struct sw_auth *a, struct creds_snap *s);
/* Whether credentials can currently be checked. */
bool auth_store_available(struct sw_auth *a);

#endif
