/* The authentication phase (DESIGN.md "Authentication methods"). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/net.h"
#include "base/str.h"
#include "config/config.h"
#include "guard/guard.h"
#include "sip/authhdr.h"
#include "registrar/registrar.h"
#include "server/pipeline-int.h"
#include "server/server.h"
#include "sip/build.h"
#include "sip/fields.h"
#include "sip/parse.h"
#include "sip/txn.h"
#include "transport/transport.h"

/* a is NULL when the source was trusted and no digest check ran. */
static void log_auth(struct req *r, const struct auth_result *a, bool trusted)
{
	/* One line per verdict (issue 3). A challenge to a request without
	 * credentials is the normal first leg: debug. Never logged: the
	 * response hash, nonce secret, HA1 or password (none are in *a). */
	enum sw_log_level lvl = SW_LOG_WARN;
	if (trusted) /* no digest ran: *a is not filled in, never read it */
		lvl = SW_LOG_INFO;
	else if (a->outcome == AUTH_OK)
		lvl = a->md5_warn ? SW_LOG_WARN : SW_LOG_INFO;
	else if (a->outcome == AUTH_CHALLENGE && (strcmp(a->reason, AUTH_R_NO_CREDENTIALS) == 0 ||
						   strcmp(a->reason, AUTH_R_STALE) == 0))
		lvl = SW_LOG_DEBUG;
	if (!sw_log_enabled(lvl))
		return;
	struct sw_logline l;
	char src[64];
	sw_sockaddr_fmt(req_src(r), src, sizeof(src));
	sw_log_begin(&l, lvl, trusted || a->outcome == AUTH_OK ? "auth.ok" : "auth.fail");
	sw_log_cstr(&l, "reason", trusted ? "trusted-source" : a->reason);
	sw_log_str(&l, "method", r->m->method_name);
	if (!trusted) {
		sw_log_int(&l, "status", a->status);
		sw_log_cstr(&l, "user", a->user);
		if (a->userhash)
			sw_log_cstr(&l, "userhash", "yes");
		sw_log_cstr(&l, "realm", a->realm ? a->realm : "-");
		sw_log_cstr(&l, "algorithm", a->algorithm ? a->algorithm : "-");
		if (a->profile)
			sw_log_cstr(&l, "profile", a->profile);
		if (a->outcome == AUTH_OK && a->mapped)
			sw_log_cstr(&l, "aor", a->aor);
		if (a->md5_warn)
			sw_log_cstr(&l, "md5", "warn");
		if (a->stale)
			sw_log_cstr(&l, "stale", "true");
	}
	sw_log_cstr(&l, "src", src);
	sw_log_cstr(&l, "transport", r->rx->from.reliable ? "tcp" : "udp");
	const struct sip_hdr *ua = sip_hdr_get(r->m, SIP_H_USER_AGENT);
	if (ua)
		sw_log_str(&l, "ua", ua->value);
	sw_log_end(&l);
}

/* "username@realm" of the first digest credentials (Authorization, or
 * Proxy-Authorization for a proxy), for per-user rate limits and bans.
 * Only syntax is looked at here: a user who cannot authenticate still
 * gets a bucket of their own, and a ban key. */
const char *req_auth_user(struct req *r)
{
	char *buf = r->auth_user;
	size_t cap = sizeof(r->auth_user);
	if (r->auth_user_done)
		return buf;
	r->auth_user_done = true;
	buf[0] = '\0';
	enum sip_hdr_id id = r->m->method == SIP_M_REGISTER ? SIP_H_AUTHORIZATION
							     : SIP_H_PROXY_AUTHORIZATION;
	for (const struct sip_hdr *h = sip_hdr_get(r->m, id); h; h = sip_hdr_next(r->m, h)) {
		struct sip_auth_memo *mo = &r->auth_memo;
		struct sip_auth a_other, *a = mo->h ? &a_other : &mo->a;
		struct sw_str user, realm;
		char ubuf[256], rbuf[256];
		int rc = sip_auth_parse(h->value, a);
		if (!mo->h) {
			mo->h = h;   /* authentication reuses the first one */
			mo->rc = rc;
		}
		if (rc < 0 || a->scheme != SIP_AUTH_DIGEST || !a->v[SIP_AP_USERNAME].p ||
		    !a->v[SIP_AP_REALM].p)
			continue;
		if (sip_auth_unq(a, SIP_AP_USERNAME, ubuf, sizeof(ubuf), &user) < 0 ||
		    sip_auth_unq(a, SIP_AP_REALM, rbuf, sizeof(rbuf), &realm) < 0)
			continue;
		if (user.len + realm.len + 2 <= cap) {
			memcpy(buf, user.p, user.len);
			buf[user.len] = '@';
			memcpy(buf + user.len + 1, realm.p, realm.len);
			buf[user.len + 1 + realm.len] = '\0';
		} else {
			snprintf(buf, cap, "%.*s@%.*s", SW_STR_FMT(user), SW_STR_FMT(realm));
		}
		return buf;
	}
	return buf;
}

/* Which failures count towards a ban (issue 5): wrong credentials, forged
 * nonces and replays — never a plain challenge or a stale nonce. */
static int guard_failure(const char *reason)
{
	static const struct {
		const char *reason;
		enum guard_auth_fail why;
	} map[] = {
		{ AUTH_R_BAD_RESPONSE, GUARD_AF_BAD_CREDENTIALS },
		{ AUTH_R_UNKNOWN_USER, GUARD_AF_BAD_CREDENTIALS },
		{ AUTH_R_DISABLED, GUARD_AF_BAD_CREDENTIALS },
		{ AUTH_R_NO_HASH, GUARD_AF_BAD_CREDENTIALS },
		{ AUTH_R_USERNAME_MISMATCH, GUARD_AF_BAD_CREDENTIALS },
		{ AUTH_R_BAD_NONCE, GUARD_AF_BAD_NONCE },
		{ AUTH_R_OPAQUE_MISMATCH, GUARD_AF_BAD_NONCE },
		{ AUTH_R_NC_REPLAY, GUARD_AF_NC_REPLAY },
		{ AUTH_R_NONCE_REUSED, GUARD_AF_NC_REPLAY },
	};
	for (unsigned i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(reason, map[i].reason) == 0)
			return (int)map[i].why;
	return -1;
}

/* Authentication phase (DESIGN.md "Authentication methods"). Networks in
 * [registrar] trust register without a password (trunk-like devices);
 * everyone else proves a digest secret (RFC 3261 §22, 401 as registrar). */
bool phase_authenticate(struct req *r, bool proxy)
{
	struct sw_worker *w = r->w;
	const struct sw_config *cfg = w->cfg;
	struct sw_guard *g = w->srv->guard;
	struct auth_result a;
	const char *user = req_auth_user(r);

	if (sw_cidr_list_match(cfg->reg_trust, cfg->nreg_trust, req_src(r))) {
		log_auth(r, NULL, true);
		guard_auth_ok(g, req_src(r), sw_str_c(user), r->gnow);
		return true;
	}
	if (user[0] && guard_user_banned(g, sw_str_c(user), req_src(r), r->gnow)) {
		r->why = "user-banned";
		reply(r, 403, NULL, NULL);
		return false;
	}
	auth_check_memo(w->aw, r->m, &r->auth_memo, req_src(r), auth_realm_for(cfg, r->m), proxy,
			sw_wall_s(), &a);
	log_auth(r, &a, false);
	if (a.outcome == AUTH_OK) {
		guard_auth_ok(g, req_src(r), sw_str_c(user), r->gnow);
		return true;
	}
	int why = guard_failure(a.reason);
	if (why >= 0)
		guard_auth_failed(g, req_src(r), sw_str_c(user), (enum guard_auth_fail)why, r->gnow);
	r->why = a.reason;
	r->quiet = true; /* the auth line above is this request's log line */
	struct sip_out o;
	reply_begin(r, &o, a.status, NULL);
	sip_out_put(&o, a.hdrs, a.hdrs_len);
	reply_finish(r, &o, a.status);
	return false;
}
