/* [guard] keys (see guard_keys.h). Defaults follow DESIGN.md "Abuse
 * defences": 5 failures in 60 s → 10 min ban, ×4 per repeat offence up
 * to 24 h; limits per IP sized so that a NAT'd office of 200 phones
 * refreshing every minute (two REGISTERs each with the challenge) stays
 * well inside them. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "config/config-t.h"
#include "config/guard_keys.h"
#include "config/keys.h"

/* enum sip_method order (sip/sip-t.h); config sits below sip/, so the
 * names are listed here as config.c does for transports. */
static const char *const method_names[] = {
	NULL, "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE",
	"PRACK", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
};
_Static_assert(sizeof(method_names) / sizeof(method_names[0]) == SIP_M__COUNT, "method table");

static const char default_methods[] =
	"INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE";

/* User-Agent values of the usual SIP scanners (sipvicious and forks,
 * sipcli, VaxSIP, pplsip, sundayddr, iWar, SIVuS, Gulp, smap, PortSIP SDK). */
static const char default_uas[] =
	"friendly-scanner*, sipvicious*, *sipvicious*, sipcli*, VaxSIPUserAgent*, pplsip*, "
	"sundayddr*, iWar*, SIVuS*, Gulp*, sipv*, smap*, PortSIP VoIP SDK*, "
	"*friendly-scanner*";

/* Split "a, b ,c" into trimmed non-empty items; fn returns 0 or -EINVAL. */
static int each_item(const char *value, int (*fn)(void *ctx, struct sw_str item), void *ctx)
{
	struct sw_str rest = sw_str_c(value);
	while (rest.len) {
		const char *comma = memchr(rest.p, ',', rest.len);
		size_t l = comma ? (size_t)(comma - rest.p) : rest.len;
		struct sw_str item = sw_str_trim(sw_str_mk(rest.p, l));
		rest = comma ? sw_str_mk(comma + 1, rest.len - l - 1) : sw_str_mk(rest.p + l, 0);
		int rc;
		if (item.len && (rc = fn(ctx, item)) < 0)
			return rc;
	}
	return 0;
}

static int add_method(void *ctx, struct sw_str item)
{
	uint32_t *mask = ctx;
	for (unsigned i = 1; i < SIP_M__COUNT; i++)
		if (sw_str_eq(item, sw_str_c(method_names[i]))) { /* RFC 3261 §7.1: case-sensitive */
			*mask |= 1u << i;
			return 0;
		}
	return -EINVAL;
}

static int add_ua(void *ctx, struct sw_str item)
{
	struct sw_guard_conf *g = ctx;
	size_t used = g->nua ? g->ua_off[g->nua - 1] + strlen(g->ua_buf + g->ua_off[g->nua - 1]) + 1 : 0;
	if (g->nua == GUARD_MAX_UA || used + item.len + 1 > GUARD_UA_BUF)
		return -ENOSPC;
	memcpy(g->ua_buf + used, item.p, item.len);
	g->ua_buf[used + item.len] = '\0';
	g->ua_off[g->nua++] = (uint16_t)used;
	return 0;
}

struct clist {
	char (*list)[3];
	unsigned *n;
};

static int add_country(void *ctx, struct sw_str item)
{
	struct clist *cl = ctx;
	if (item.len != 2)
		return -EINVAL;
	char cc[3];
	for (int i = 0; i < 2; i++) {
		char ch = item.p[i];
		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 32);
		if (ch < 'A' || ch > 'Z')
			return -EINVAL;
		cc[i] = ch;
	}
	cc[2] = '\0';
	if (*cl->n == GUARD_MAX_COUNTRIES)
		return -ENOSPC;
	memcpy(cl->list[(*cl->n)++], cc, 3);
	return 0;
}

static int add_cidr(void *ctx, struct sw_str item)
{
	struct sw_guard_conf *g = ctx;
	if (g->ntrusted == GUARD_MAX_TRUSTED)
		return -ENOSPC;
	if (sw_cidr_parse(item, &g->trusted[g->ntrusted]) < 0)
		return -EINVAL;
	g->ntrusted++;
	return 0;
}

void guard_conf_default(struct sw_guard_conf *g)
{
	memset(g, 0, sizeof(*g));
	g->enabled = true;
	g->ipv6_prefix = 64;
	g->ban_after = 5;
	g->ban_after_known = 20;
	g->ban_window_s = 60;
	g->ban_time_s = 600;
	g->ban_max_time_s = 86400;
	g->ban_escalation = 4;
	g->ban_forget_s = 86400;
	/* per IP: rate per hour, burst. REGISTER leaves room for an office of
	 * 200 phones behind one NAT booting at once after a power cut (two
	 * requests each with the challenge); brute force is stopped by the
	 * per-user buckets and the failure bans, not by this. */
	g->ip[GUARD_C_REGISTER] = (struct guard_rate_conf){ 50 * 3600, 500 };
	g->ip[GUARD_C_INVITE] = (struct guard_rate_conf){ 10 * 3600, 50 };
	g->ip[GUARD_C_OTHER] = (struct guard_rate_conf){ 50 * 3600, 200 };
	/* per user (authid@realm) */
	g->user[GUARD_C_REGISTER] = (struct guard_rate_conf){ 2 * 3600, 20 };
	g->user[GUARD_C_INVITE] = (struct guard_rate_conf){ 5 * 3600, 20 };
	g->user[GUARD_C_OTHER] = (struct guard_rate_conf){ 20 * 3600, 100 };
	g->over_limit_drop = false;
	g->greylist = true;
	g->greylist_divisor = 4;
	g->flood_pps = 300;
	g->flood_burst = 600;
	g->flood_action = GUARD_FLOOD_DROP;
	g->tarpit_ms = 2000;
	g->flood_ban = true;
	g->max_datagram = 65535;
	each_item(default_methods, add_method, &g->methods);
	g->unknown_method_status = 405;
	each_item(default_uas, add_ua, g);
	g->geo_unknown_deny = false;
	g->geo_status = 403;
	g->ip_table_size = 131072;
	g->user_table_size = 65536;
	g->fail_table_size = 32768;
	g->ban_table_size = 65536;
}

int guard_duration_parse(const char *s, uint32_t *out)
{
	struct sw_str v = sw_str_trim(sw_str_c(s));
	uint64_t mult = 1, n;
	if (v.len && (v.p[v.len - 1] < '0' || v.p[v.len - 1] > '9')) {
		switch (v.p[v.len - 1]) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: return -EINVAL;
		}
		v.len--;
	}
	if (sw_str_to_u64(v, 365ull * 86400, &n) < 0 || n * mult > 365ull * 86400)
		return -EINVAL;
	*out = (uint32_t)(n * mult);
	return 0;
}

/* "20" or "20/s", "600/m", "100/h"; "0" or "off" = unlimited. */
static int rate_parse(const char *s, uint32_t *per_hour)
{
	struct sw_str v = sw_str_trim(sw_str_c(s));
	if (sw_str_eq(v, SW_STR_LIT("off"))) {
		*per_hour = 0;
		return 0;
	}
	uint64_t mult = 3600, n;
	const char *slash = memchr(v.p, '/', v.len);
	if (slash) {
		struct sw_str unit = sw_str_trim(sw_str_mk(slash + 1, v.len - (size_t)(slash + 1 - v.p)));
		if (sw_str_eq(unit, SW_STR_LIT("s")))
			mult = 3600;
		else if (sw_str_eq(unit, SW_STR_LIT("m")) || sw_str_eq(unit, SW_STR_LIT("min")))
			mult = 60;
		else if (sw_str_eq(unit, SW_STR_LIT("h")))
			mult = 1;
		else
			return -EINVAL;
		v = sw_str_trim(sw_str_mk(v.p, (size_t)(slash - v.p)));
	}
	if (sw_str_to_u64(v, 1000000ull * 3600, &n) < 0 || n * mult > 1000000ull * 3600)
		return -EINVAL;
	*per_hour = (uint32_t)(n * mult);
	return 0;
}

static int uint_key(const char *key, const char *value, uint64_t min, uint64_t max, uint64_t *out,
		    char *why, size_t whycap)
{
	if (sw_str_to_u64(sw_str_trim(sw_str_c(value)), max, out) < 0 || *out < min)
		return config_why(why, whycap, "%s: expected a whole number from %llu to %llu, got \"%s\"", key,
			       (unsigned long long)min, (unsigned long long)max, value);
	return 0;
}

struct rate_key {
	const char *name;
	bool user;
	enum guard_class cls;
	bool burst;
};

static const struct rate_key rate_keys[] = {
	{ "rate_register", false, GUARD_C_REGISTER, false },
	{ "burst_register", false, GUARD_C_REGISTER, true },
	{ "rate_invite", false, GUARD_C_INVITE, false },
	{ "burst_invite", false, GUARD_C_INVITE, true },
	{ "rate_other", false, GUARD_C_OTHER, false },
	{ "burst_other", false, GUARD_C_OTHER, true },
	{ "rate_user_register", true, GUARD_C_REGISTER, false },
	{ "burst_user_register", true, GUARD_C_REGISTER, true },
	{ "rate_user_invite", true, GUARD_C_INVITE, false },
	{ "burst_user_invite", true, GUARD_C_INVITE, true },
	{ "rate_user_other", true, GUARD_C_OTHER, false },
	{ "burst_user_other", true, GUARD_C_OTHER, true },
};

struct dur_key {
	const char *name;
	size_t off;
	uint32_t min, max;
};

#define DUR(n, f, lo, hi) { n, offsetof(struct sw_guard_conf, f), lo, hi }
static const struct dur_key dur_keys[] = {
	DUR("ban_window", ban_window_s, 1, 86400),
	DUR("ban_time", ban_time_s, 1, 365 * 86400),
	DUR("ban_max_time", ban_max_time_s, 1, 365 * 86400),
	DUR("ban_forget", ban_forget_s, 1, 365 * 86400),
};

struct num_key {
	const char *name;
	size_t off;
	uint32_t min, max;
};

#define NUM(n, f, lo, hi) { n, offsetof(struct sw_guard_conf, f), lo, hi }
static const struct num_key num_keys[] = {
	NUM("ban_after", ban_after, 0, GUARD_MAX_BAN_AFTER),
	NUM("ban_after_known", ban_after_known, 1, GUARD_MAX_BAN_AFTER),
	NUM("ban_escalation", ban_escalation, 1, 100),
	NUM("greylist_divisor", greylist_divisor, 1, 100),
	NUM("flood_packets_per_s", flood_pps, 0, 1000000),
	NUM("flood_burst", flood_burst, 1, 10000000),
	NUM("max_datagram", max_datagram, 512, 65535),
	NUM("ip_table_size", ip_table_size, 256, 100000000),
	NUM("user_table_size", user_table_size, 256, 100000000),
	NUM("fail_table_size", fail_table_size, 256, 100000000),
	NUM("ban_table_size", ban_table_size, 256, 10000000),
};

int guard_conf_key(struct sw_guard_conf *g, const char *key, const char *value, char *why,
		   size_t whycap)
{
	uint64_t n;
	int rc;
	for (size_t i = 0; i < sizeof(rate_keys) / sizeof(rate_keys[0]); i++) {
		const struct rate_key *r = &rate_keys[i];
		if (strcmp(key, r->name) != 0)
			continue;
		struct guard_rate_conf *rc_ = r->user ? &g->user[r->cls] : &g->ip[r->cls];
		if (r->burst) {
			if ((rc = uint_key(key, value, 1, 1000000, &n, why, whycap)) < 0)
				return rc;
			rc_->burst = (uint32_t)n;
		} else if (rate_parse(value, &rc_->per_hour) < 0) {
			return config_why(why, whycap, "%s: expected a rate such as 20/s, 600/m or 100/h "
				       "(or off), got \"%s\"", key, value);
		}
		return 0;
	}
	for (size_t i = 0; i < sizeof(dur_keys) / sizeof(dur_keys[0]); i++) {
		const struct dur_key *d = &dur_keys[i];
		if (strcmp(key, d->name) != 0)
			continue;
		uint32_t s;
		if (guard_duration_parse(value, &s) < 0 || s < d->min || s > d->max)
			return config_why(why, whycap, "%s: expected a duration such as 600, 10m, 1h or 1d, "
				       "got \"%s\"", key, value);
		memcpy((char *)g + d->off, &s, sizeof(s));
		return 0;
	}
	for (size_t i = 0; i < sizeof(num_keys) / sizeof(num_keys[0]); i++) {
		const struct num_key *k = &num_keys[i];
		if (strcmp(key, k->name) != 0)
			continue;
		if ((rc = uint_key(key, value, k->min, k->max, &n, why, whycap)) < 0)
			return rc;
		uint32_t v = (uint32_t)n;
		memcpy((char *)g + k->off, &v, sizeof(v));
		return 0;
	}
	if (strcmp(key, "enabled") == 0 || strcmp(key, "greylist") == 0 || strcmp(key, "flood_ban") == 0) {
		bool b;
		if (config_yesno(value, &b) < 0)
			return config_why(why, whycap, "%s: expected yes or no, got \"%s\"", key, value);
		if (key[0] == 'e')
			g->enabled = b;
		else if (key[0] == 'g')
			g->greylist = b;
		else
			g->flood_ban = b;
		return 0;
	}
	if (strcmp(key, "trusted") == 0) {
		unsigned old = g->ntrusted;
		g->ntrusted = 0;
		if ((rc = each_item(value, add_cidr, g)) < 0) {
			g->ntrusted = old; /* entries past old may be clobbered; the load fails anyway */
			return config_why(why, whycap, rc == -ENOSPC ? "trusted: at most %d networks"
							       : "trusted: expected addresses or CIDR prefixes "
								 "(at most %d), comma-separated",
				       GUARD_MAX_TRUSTED);
		}
		return 0;
	}
	if (strcmp(key, "ipv6_prefix") == 0) {
		if ((rc = uint_key(key, value, 16, 128, &n, why, whycap)) < 0)
			return rc;
		g->ipv6_prefix = (uint8_t)n;
		return 0;
	}
	if (strcmp(key, "tarpit_delay") == 0) {
		if ((rc = uint_key(key, value, 1, 60000, &n, why, whycap)) < 0)
			return rc;
		g->tarpit_ms = (uint32_t)n;
		return 0;
	}
	if (strcmp(key, "over_limit") == 0) {
		if (strcmp(value, "503") == 0)
			g->over_limit_drop = false;
		else if (strcmp(value, "drop") == 0)
			g->over_limit_drop = true;
		else
			return config_why(why, whycap, "over_limit: expected 503 or drop, got \"%s\"", value);
		return 0;
	}
	if (strcmp(key, "flood_action") == 0) {
		if (strcmp(value, "drop") == 0)
			g->flood_action = GUARD_FLOOD_DROP;
		else if (strcmp(value, "403") == 0)
			g->flood_action = GUARD_FLOOD_403;
		else if (strcmp(value, "tarpit") == 0)
			g->flood_action = GUARD_FLOOD_TARPIT;
		else
			return config_why(why, whycap, "flood_action: expected drop, 403 or tarpit, got \"%s\"", value);
		return 0;
	}
	if (strcmp(key, "unknown_method") == 0 || strcmp(key, "geo_action") == 0) {
		uint16_t *st = key[0] == 'u' ? &g->unknown_method_status : &g->geo_status;
		const char *code = key[0] == 'u' ? "405" : "403";
		if (strcmp(value, code) == 0)
			*st = key[0] == 'u' ? 405 : 403;
		else if (strcmp(value, "drop") == 0)
			*st = 0;
		else
			return config_why(why, whycap, "%s: expected %s or drop, got \"%s\"", key, code, value);
		return 0;
	}
	/* List keys replace the whole list, and only when all of it is valid. */
	if (strcmp(key, "methods") == 0) {
		uint32_t mask = 0;
		if (each_item(value, add_method, &mask) < 0 || !mask)
			return config_why(why, whycap, "methods: expected SIP method names (upper-case) from %s, "
				       "PUBLISH", default_methods);
		g->methods = mask;
		return 0;
	}
	if (strcmp(key, "scanner_user_agents") == 0) {
		unsigned old = g->nua;
		g->nua = 0;
		if (strcmp(value, "none") == 0)
			return 0;
		if (each_item(value, add_ua, g) < 0) {
			g->nua = old;
			return config_why(why, whycap, "scanner_user_agents: at most %d patterns, %d characters",
				       GUARD_MAX_UA, GUARD_UA_BUF);
		}
		return 0;
	}
	if (strcmp(key, "geo_db") == 0) {
		if (snprintf(g->geo_db, sizeof(g->geo_db), "%s", value) >= (int)sizeof(g->geo_db))
			return config_why(why, whycap, "geo_db: path too long");
		return 0;
	}
	if (strcmp(key, "geo_allow") == 0 || strcmp(key, "geo_deny") == 0) {
		bool allow = key[4] == 'a';
		struct clist cl = { allow ? g->geo_allow : g->geo_deny, allow ? &g->ngeo_allow : &g->ngeo_deny };
		unsigned old = *cl.n;
		*cl.n = 0;
		if (each_item(value, add_country, &cl) < 0) {
			*cl.n = old;
			return config_why(why, whycap, "%s: expected ISO 3166-1 alpha-2 country codes "
				       "(at most %d), e.g. DE, FR", key, GUARD_MAX_COUNTRIES);
		}
		return 0;
	}
	if (strcmp(key, "geo_unknown") == 0) {
		if (strcmp(value, "allow") == 0)
			g->geo_unknown_deny = false;
		else if (strcmp(value, "deny") == 0)
			g->geo_unknown_deny = true;
		else
			return config_why(why, whycap, "geo_unknown: expected allow or deny, got \"%s\"", value);
		return 0;
	}
	return -ENOENT;
}

int guard_conf_finish(const struct sw_guard_conf *g, char *why, size_t whycap)
{
	if (g->ban_max_time_s < g->ban_time_s)
		return config_why(why, whycap, "[guard] ban_max_time is below ban_time");
	if (g->ban_after && g->ban_after_known < g->ban_after)
		return config_why(why, whycap, "[guard] ban_after_known is below ban_after");
	if ((g->ngeo_allow || g->ngeo_deny || g->geo_unknown_deny) && !g->geo_db[0])
		return config_why(why, whycap, "[guard] geo_allow/geo_deny/geo_unknown need geo_db");
	if (g->flood_pps && g->flood_burst < 1)
		return config_why(why, whycap, "[guard] flood_burst must be at least 1");
	for (unsigned i = 0; i < g->ngeo_allow; i++)
		for (unsigned j = 0; j < g->ngeo_deny; j++)
			if (memcmp(g->geo_allow[i], g->geo_deny[j], 2) == 0)
				return config_why(why, whycap, "[guard] %s is in both geo_allow and geo_deny",
					       g->geo_allow[i]);
	return 0;
}

unsigned guard_conf_warn(const struct sw_guard_conf *g, const char *path, FILE *out)
{
	unsigned n = 0;
	if (!g->enabled) {
		fprintf(out, "warning: %s: [guard] enabled = no: no rate limits, bans or filters\n", path);
		return 1;
	}
	if (!g->geo_db[0])
		fprintf(out, "note: %s: [guard] geo ACL off (no geo_db)\n", path);
	for (unsigned i = 0; i < g->ntrusted; i++)
		if (g->trusted[i].bits == 0) {
			fprintf(out, "warning: %s: [guard] trusted contains a /0 prefix: nobody is ever "
				     "limited or banned\n", path);
			n++;
		}
	if (!g->ban_after) {
		fprintf(out, "warning: %s: [guard] ban_after = 0: failed authentications never ban\n", path);
		n++;
	}
	if (!g->flood_pps) {
		fprintf(out, "warning: %s: [guard] flood_packets_per_s = 0: no flood protection\n", path);
		n++;
	}
	return n;
}

int config_guard_key(struct sw_config *c, const char *key, const char *value, char *why, size_t whycap)
{
	return guard_conf_key(&c->guard, key, value, why, whycap);
}
