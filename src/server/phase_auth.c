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
#include "registrar/registrar.h"
#include "server/pipeline-int.h"
#include "server/server.h"
#include "sip/build.h"
#include "sip/fields.h"
#include "sip/parse.h"
#include "sip/txn.h"
#include "transport/transport.h"

static void log_auth(struct req *r, const struct auth_result *a, bool trusted)
{
	/* One line per verdict (issue 3). A challenge to a request without
	 * credentials is the normal first leg: debug. Never logged: the
	 * response hash, nonce secret, HA1 or password (none are in *a). */
	enum sw_log_level lvl = SW_LOG_WARN;
	if (trusted || a->outcome == AUTH_OK)
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

/* Authentication phase (DESIGN.md "Authentication methods"). Networks in
 * [registrar] trust register without a password (trunk-like devices);
 * everyone else proves a digest secret (RFC 3261 §22, 401 as registrar). */
bool phase_authenticate(struct req *r, bool proxy)
{
	struct sw_worker *w = r->w;
	const struct sw_config *cfg = w->cfg;
	struct auth_result a;
	if (sw_cidr_list_match(cfg->reg_trust, cfg->nreg_trust, req_src(r))) {
		log_auth(r, &a, true);
		return true;
	}
	auth_check(w->aw, r->m, req_src(r), auth_realm_for(cfg, r->m), proxy, sw_wall_s(), &a);
	log_auth(r, &a, false);
	if (a.outcome == AUTH_OK)
		return true;
	r->why = a.reason;
	r->quiet = true; /* the auth line above is this request's log line */
	struct sip_out o;
	reply_begin(r, &o, a.status, NULL);
	sip_out_put(&o, a.hdrs, a.hdrs_len);
	reply_finish(r, &o, a.status);
	return false;
}
