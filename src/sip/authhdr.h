/* Authorization / Proxy-Authorization / WWW-Authenticate /
 * Proxy-Authenticate bodies (RFC 7235 §2.1, RFC 3261 §25.1, RFC 7616 §3.3
 * and §3.4). Pure syntax: slices into the header value, no allocation, the
 * input is never written (STYLE.md §1, §2). Policy lives in src/auth. */
#ifndef SW_SIP_AUTHHDR_H
#define SW_SIP_AUTHHDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "base/str-t.h"

/* The auth-params a digest server or client looks at. */
enum sip_ap {
	SIP_AP_USERNAME = 0,
	SIP_AP_USERNAME_EXT,   /* username* (RFC 7616 §3.4.4, RFC 8187 ext-value) */
	SIP_AP_REALM,
	SIP_AP_NONCE,
	SIP_AP_URI,
	SIP_AP_RESPONSE,
	SIP_AP_ALGORITHM,
	SIP_AP_CNONCE,
	SIP_AP_OPAQUE,
	SIP_AP_QOP,
	SIP_AP_NC,
	SIP_AP_USERHASH,
	SIP_AP_STALE,
	SIP_AP_DOMAIN,
	SIP_AP_CHARSET,
	SIP_AP_RSPAUTH,
	SIP_AP_NEXTNONCE,
	SIP_AP__COUNT
};

/* Bounds on what a peer can make us walk (STYLE.md §8). */
#define SIP_AUTH_MAX_PARAMS 32

enum sip_auth_scheme { SIP_AUTH_OTHER = 0, SIP_AUTH_DIGEST, SIP_AUTH_BEARER, SIP_AUTH_BASIC };

struct sip_auth {
	enum sip_auth_scheme scheme;
	struct sw_str scheme_str;
	/* token68 form (Bearer, Basic): the token; .p NULL otherwise. */
	struct sw_str token68;
	/* Known params: the value without its quotes; .p NULL when absent.
	 * A quoted value may still hold quoted-pairs (bit set in `escaped`):
	 * use sip_auth_unq() before comparing or hashing it. */
	struct sw_str v[SIP_AP__COUNT];
	uint32_t quoted;       /* bit i: v[i] was a quoted-string */
	uint32_t escaped;      /* bit i: v[i] holds at least one quoted-pair */
	unsigned nparams;      /* all auth-params, known or not */
};

/* One credentials field parsed ahead of authentication (for the guard's
 * per-user checks), so auth_check_memo need not parse it again. */
struct sip_auth_memo {
	const struct sip_hdr *h;   /* the field parsed; NULL = nothing kept */
	int rc;                    /* what sip_auth_parse returned for it */
	struct sip_auth a;
};

/* Parse one credentials or challenge value: auth-scheme, then a token68 or
 * a comma-separated list of auth-params (token = token / quoted-string),
 * LWS (including folded line breaks) allowed around ',' and '='.
 * Empty list elements are skipped (RFC 7230 §7). A known param appearing
 * twice is an error (RFC 7235 §2.1: each name only once).
 * Returns 0 or -EBADMSG; -EMSGSIZE above SIP_AUTH_MAX_PARAMS params. */
int sip_auth_parse(struct sw_str value, struct sip_auth *out);

/* Unquote a param value: drops the backslash of every quoted-pair. Returns
 * the slice unchanged when it has none (no copy), or a slice of out.
 * -ENOSPC when out is too small. */
int sip_auth_unq(const struct sip_auth *a, enum sip_ap ap, char *out, size_t cap,
		 struct sw_str *res);

/* Decode an RFC 8187 ext-value "UTF-8''J%C3%A4s" (charset UTF-8 only, as
 * RFC 7616 §3.4.4 requires) into out; returns the length or -EBADMSG /
 * -ENOSPC. */
ssize_t sip_auth_extvalue(struct sw_str v, char *out, size_t cap);

const char *sip_ap_name(enum sip_ap ap);

#endif
