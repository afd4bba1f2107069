/* Digest authentication types: configuration and results (issue 3).
 * Types only (STYLE.md §4); prototypes are in auth/auth.h. */
#ifndef SW_AUTH_AUTH_T_H
#define SW_AUTH_AUTH_T_H

#include <stdbool.h>
#include <stdint.h>

#include "base/net.h"
#include "base/str-t.h"

/* Hash functions of RFC 7616 §3.2 / RFC 8760 §2. The order is the order
 * of the per-algorithm columns of the credential store (store/creds-t.h). */
enum auth_hash { AUTH_H_MD5 = 0, AUTH_H_SHA256, AUTH_H_SHA512_256, AUTH_H__COUNT };

/* Algorithm tokens: hash * 2 + sess ("MD5", "MD5-sess", "SHA-256", …). */
enum auth_algo {
	AUTH_MD5 = 0,
	AUTH_MD5_SESS,
	AUTH_SHA256,
	AUTH_SHA256_SESS,
	AUTH_SHA512_256,
	AUTH_SHA512_256_SESS,
	AUTH_ALGO__COUNT
};
#define AUTH_ALGO_HASH(a) ((enum auth_hash)((a) >> 1))
#define AUTH_ALGO_SESS(a) (((a) & 1) != 0)

/* Algorithms in preference order (RFC 8760 §2.4: one challenge each). */
struct auth_alglist {
	uint8_t n;
	uint8_t v[AUTH_ALGO__COUNT];   /* enum auth_algo */
};

enum auth_md5_policy { AUTH_MD5_ALLOW = 0, AUTH_MD5_WARN, AUTH_MD5_DENY };
enum auth_after_failure { AUTH_FAIL_RECHALLENGE = 0, AUTH_FAIL_REJECT };

#define AUTH_QOP_AUTH 1u
#define AUTH_QOP_AUTH_INT 2u

#define AUTH_MAX_REALMS 64
#define AUTH_MAX_PROFILES 16
#define AUTH_MAX_UA_GLOBS 8
#define AUTH_MAX_PROFILE_CIDRS 16
#define AUTH_MAX_IDMAPS 256
#define AUTH_ID_MAX 128
#define AUTH_SECRET_MAX 64

/* [realm NAME] digest settings. */
struct auth_realm_conf {
	bool set;                      /* a key was given (else defaults apply) */
	struct auth_alglist algs;      /* algorithms = SHA-256, MD5 */
	uint8_t md5;                   /* enum auth_md5_policy; md5 = warn */
	uint8_t qop;                   /* AUTH_QOP_* bits; qop = auth */
	bool allow_no_qop;             /* RFC 2069 clients, one-time nonces */
	bool userhash;                 /* offer userhash=true (RFC 7616 §3.4.4) */
	bool bind_nonce_to_ip;
	bool opaque;                   /* send and require opaque */
	bool identity_check;           /* Auth ID must own the From/To AOR */
	uint32_t nonce_lifetime;       /* seconds */
	uint8_t after_failure;         /* enum auth_after_failure */
	uint32_t max_failures;         /* with AUTH_FAIL_REJECT: 403 from this many */
	uint32_t min_password;         /* `user add` refuses shorter passwords */
};

/* identity = AUTHID:AOR-USER — Auth ID may act for that AOR in the realm. */
struct auth_idmap {
	uint16_t realm;                /* index into sw_config.realms[] */
	char auth_id[AUTH_ID_MAX];
	char aor_user[AUTH_ID_MAX];
};

/* [profile NAME]: which challenges a class of device gets, chosen by what
 * the request shows (User-Agent, source), never by whether a user exists. */
struct auth_profile {
	char name[64];
	char ua[AUTH_MAX_UA_GLOBS][128];      /* match_user_agent globs */
	unsigned nua;
	struct sw_cidr src[AUTH_MAX_PROFILE_CIDRS]; /* match_source */
	unsigned nsrc;
	struct auth_alglist algs;             /* algorithms (required) */
	uint8_t qop;                          /* 0 = the realm's */
	unsigned line;
};

/* [auth] nonce_slots bounds (the nonce ring, auth/nonce.h) */
#define NONCE_SLOTS_MAX (1u << 24)
#define NONCE_SLOTS_MIN 65536u

struct sw_auth_conf {
	struct auth_realm_conf realm[AUTH_MAX_REALMS]; /* parallel to sw_config.realms[] */
	struct auth_profile profiles[AUTH_MAX_PROFILES];
	unsigned nprofiles;
	struct auth_idmap idmaps[AUTH_MAX_IDMAPS];
	unsigned nidmaps;
	/* [auth] */
	uint8_t nonce_secret[AUTH_SECRET_MAX];
	uint8_t nonce_secret_len;             /* 0: nonce_secret_file or data_dir */
	char nonce_secret_file[1024];
	uint32_t nonce_slots;                 /* 0 = default: twice the users at start-up,
					       * at least NONCE_SLOTS_MIN (auth_nonce_slots) */
	uint32_t retry_after;                 /* 503 Retry-After; 0 = default (5 s) */
};

#endif
