/* Digest keys of the config file (issue 3): [realm NAME], [profile NAME]
 * and [auth]. Depends on base/ only, so it can live in the config library. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "config/auth_keys.h"
#include "config/keys.h"

_Static_assert(SW_MAX_REALMS <= AUTH_MAX_REALMS, "auth realm table too small");

static const char *const algo_names[AUTH_ALGO__COUNT] = {
	[AUTH_MD5] = "MD5",
	[AUTH_MD5_SESS] = "MD5-sess",
	[AUTH_SHA256] = "SHA-256",
	[AUTH_SHA256_SESS] = "SHA-256-sess",
	[AUTH_SHA512_256] = "SHA-512-256",
	[AUTH_SHA512_256_SESS] = "SHA-512-256-sess",
};

const char *auth_algo_name(unsigned algo)
{
	return algo < AUTH_ALGO__COUNT ? algo_names[algo] : "?";
}

int auth_algo_parse(struct sw_str s)
{
	for (int i = 0; i < AUTH_ALGO__COUNT; i++)
		if (sw_str_ieq_c(s, algo_names[i]))
			return i;
	return -1;
}

void auth_realm_conf_defaults(struct auth_realm_conf *r)
{
	memset(r, 0, sizeof(*r));
	/* Interoperable and still strong: SHA-256 first (RFC 8760 §2.4), MD5
	 * for the many clients that only do MD5, logged as such. */
	r->algs.n = 2;
	r->algs.v[0] = AUTH_SHA256;
	r->algs.v[1] = AUTH_MD5;
	r->md5 = AUTH_MD5_WARN;
	r->qop = AUTH_QOP_AUTH;
	r->opaque = true;
	r->identity_check = true;
	r->nonce_lifetime = 300;
	r->after_failure = AUTH_FAIL_RECHALLENGE;
	r->max_failures = 5;
	r->min_password = 12;
}

const struct auth_realm_conf *config_auth_realm(const struct sw_config *c, unsigned idx)
{
	static const struct auth_realm_conf defaults = {
		.algs = { .n = 2, .v = { AUTH_SHA256, AUTH_MD5 } },
		.md5 = AUTH_MD5_WARN,
		.qop = AUTH_QOP_AUTH,
		.opaque = true,
		.identity_check = true,
		.nonce_lifetime = 300,
		.after_failure = AUTH_FAIL_RECHALLENGE,
		.max_failures = 5,
		.min_password = 12,
	};
	if (idx < AUTH_MAX_REALMS && c->auth.realm[idx].set)
		return &c->auth.realm[idx];
	return &defaults;
}

/* Comma-separated list elements, trimmed. */
static bool list_next(const char **cur, struct sw_str *elem)
{
	const char *p = *cur;
	if (!*p)
		return false;
	const char *e = strchr(p, ',');
	size_t n = e ? (size_t)(e - p) : strlen(p);
	*elem = sw_str_trim(sw_str_mk(p, n));
	*cur = e ? e + 1 : p + n;
	return true;
}

int auth_alglist_parse(const char *value, struct auth_alglist *out, char *why, size_t whycap)
{
	struct sw_str e;
	memset(out, 0, sizeof(*out));
	while (list_next(&value, &e)) {
		int a = auth_algo_parse(e);
		if (a < 0)
			return config_why(why, whycap, "unknown algorithm \"%.*s\" (MD5, SHA-256, SHA-512-256, "
				    "each optionally -sess)", SW_STR_FMT(e));
		for (unsigned i = 0; i < out->n; i++)
			if (out->v[i] == a)
				return config_why(why, whycap, "algorithm %s listed twice", algo_names[a]);
		out->v[out->n++] = (uint8_t)a;
	}
	if (!out->n)
		return config_why(why, whycap, "empty algorithm list");
	return 0;
}

static int parse_bool(const char *v, bool *out, char *why, size_t cap)
{
	if (config_yesno(v, out) == 0)
		return 0;
	return config_why(why, cap, "expected yes or no, not \"%s\"", v);
}

static int parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out, char *why, size_t cap)
{
	uint64_t x;
	if (sw_str_to_u64(sw_str_trim(sw_str_c(v)), max, &x) < 0 || x < min)
		return config_why(why, cap, "expected a number from %u to %u, not \"%s\"", min, max, v);
	*out = (uint32_t)x;
	return 0;
}

static int parse_qop(const char *v, uint8_t *out, char *why, size_t cap)
{
	struct sw_str e;
	uint8_t q = 0;
	while (list_next(&v, &e)) {
		if (sw_str_ieq_c(e, "auth"))
			q |= AUTH_QOP_AUTH;
		else if (sw_str_ieq_c(e, "auth-int"))
			q |= AUTH_QOP_AUTH_INT;
		else
			return config_why(why, cap, "unknown qop \"%.*s\" (auth, auth-int)", SW_STR_FMT(e));
	}
	if (!q)
		return config_why(why, cap, "empty qop list (use allow_no_qop for RFC 2069 clients)");
	*out = q;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int find_realm(const struct sw_config *c, const char *name)
{
	for (unsigned i = 0; i < c->nrealms; i++)
		if (sw_str_ieq(sw_str_c(c->realms[i].name), sw_str_c(name)))
			return (int)i;
	return -1;
}

/* identity = AUTHID:AORUSER[, AUTHID:AORUSER …] */
static int parse_idmaps(struct sw_config *c, unsigned realm, const char *v, char *why, size_t cap)
{
	struct sw_str e;
	while (list_next(&v, &e)) {
		const char *colon = memchr(e.p, ':', e.len);
		if (!colon)
			return config_why(why, cap, "identity: expected AUTHID:USER, not \"%.*s\"", SW_STR_FMT(e));
		struct sw_str id = sw_str_trim(sw_str_mk(e.p, (size_t)(colon - e.p)));
		struct sw_str user = sw_str_trim(sw_str_mk(colon + 1, e.len - (size_t)(colon - e.p) - 1));
		if (!id.len || !user.len)
			return config_why(why, cap, "identity: empty Auth ID or user in \"%.*s\"", SW_STR_FMT(e));
		if (c->auth.nidmaps == AUTH_MAX_IDMAPS)
			return config_why(why, cap, "at most %d identity mappings", AUTH_MAX_IDMAPS);
		struct auth_idmap *m = &c->auth.idmaps[c->auth.nidmaps];
		if (sw_str_copy(id, m->auth_id, sizeof(m->auth_id)) < 0 ||
		    sw_str_copy(user, m->aor_user, sizeof(m->aor_user)) < 0)
			return config_why(why, cap, "identity: name too long");
		m->realm = (uint16_t)realm;
		c->auth.nidmaps++;
	}
	return 0;
}

static int realm_key(struct sw_config *c, const char *name, const char *key, const char *v,
		     char *why, size_t cap)
{
	int idx = find_realm(c, name);
	if (idx < 0)
		return config_why(why, cap, "realm \"%s\" is not defined", name);
	struct auth_realm_conf *r = &c->auth.realm[idx];
	struct auth_realm_conf tmp;
	if (!r->set) {
		auth_realm_conf_defaults(r);
		r->set = true;
	}
	tmp = *r;
	int rc;
	if (config_key_is(key, "algorithms")) {
		rc = auth_alglist_parse(v, &tmp.algs, why, cap);
	} else if (config_key_is(key, "md5")) {
		struct sw_str s = sw_str_trim(sw_str_c(v));
		rc = 0;
		if (sw_str_ieq_c(s, "allow"))
			tmp.md5 = AUTH_MD5_ALLOW;
		else if (sw_str_ieq_c(s, "warn"))
			tmp.md5 = AUTH_MD5_WARN;
		else if (sw_str_ieq_c(s, "deny"))
			tmp.md5 = AUTH_MD5_DENY;
		else
			rc = config_why(why, cap, "md5 = allow, warn or deny, not \"%s\"", v);
	} else if (config_key_is(key, "qop")) {
		rc = parse_qop(v, &tmp.qop, why, cap);
	} else if (config_key_is(key, "allow_no_qop")) {
		rc = parse_bool(v, &tmp.allow_no_qop, why, cap);
	} else if (config_key_is(key, "userhash")) {
		rc = parse_bool(v, &tmp.userhash, why, cap);
	} else if (config_key_is(key, "bind_nonce_to_ip")) {
		rc = parse_bool(v, &tmp.bind_nonce_to_ip, why, cap);
	} else if (config_key_is(key, "opaque")) {
		rc = parse_bool(v, &tmp.opaque, why, cap);
	} else if (config_key_is(key, "identity_check")) {
		rc = parse_bool(v, &tmp.identity_check, why, cap);
	} else if (config_key_is(key, "nonce_lifetime")) {
		rc = parse_u32(v, 10, 86400, &tmp.nonce_lifetime, why, cap);
	} else if (config_key_is(key, "after_failure")) {
		struct sw_str s = sw_str_trim(sw_str_c(v));
		rc = 0;
		if (sw_str_ieq_c(s, "rechallenge"))
			tmp.after_failure = AUTH_FAIL_RECHALLENGE;
		else if (sw_str_ieq_c(s, "reject") || sw_str_ieq_c(s, "403"))
			tmp.after_failure = AUTH_FAIL_REJECT;
		else
			rc = config_why(why, cap, "after_failure = rechallenge or reject, not \"%s\"", v);
	} else if (config_key_is(key, "max_failures")) {
		rc = parse_u32(v, 1, 1000, &tmp.max_failures, why, cap);
	} else if (config_key_is(key, "min_password_length")) {
		rc = parse_u32(v, 8, 128, &tmp.min_password, why, cap);
	} else if (config_key_is(key, "identity")) {
		return parse_idmaps(c, (unsigned)idx, v, why, cap);
	} else {
		return -ENOENT;
	}
	if (rc == 0)
		*r = tmp;
	return rc;
}

static struct auth_profile *profile_get(struct sw_config *c, const char *name, char *why, size_t cap)
{
	for (unsigned i = 0; i < c->auth.nprofiles; i++)
		if (!strcmp(c->auth.profiles[i].name, name))
			return &c->auth.profiles[i];
	if (c->auth.nprofiles == AUTH_MAX_PROFILES) {
		config_why(why, cap, "at most %d profiles", AUTH_MAX_PROFILES);
		return NULL;
	}
	struct auth_profile *p = &c->auth.profiles[c->auth.nprofiles];
	memset(p, 0, sizeof(*p));
	if (sw_str_copy(sw_str_c(name), p->name, sizeof(p->name)) < 0 || !*name) {
		config_why(why, cap, "bad profile name");
		return NULL;
	}
	c->auth.nprofiles++;
	return p;
}

static int profile_key(struct sw_config *c, const char *name, const char *key, const char *v,
		       char *why, size_t cap)
{
	struct sw_str e;
	if (!config_key_is(key, "match_user_agent") && !config_key_is(key, "match_source") &&
	    !config_key_is(key, "algorithms") && !config_key_is(key, "qop"))
		return -ENOENT;
	struct auth_profile *p = profile_get(c, name, why, cap);
	if (!p)
		return -EINVAL;
	if (config_key_is(key, "algorithms"))
		return auth_alglist_parse(v, &p->algs, why, cap);
	if (config_key_is(key, "qop"))
		return parse_qop(v, &p->qop, why, cap);
	if (config_key_is(key, "match_user_agent")) {
		while (list_next(&v, &e)) {
			if (!e.len)
				continue;
			if (p->nua == AUTH_MAX_UA_GLOBS)
				return config_why(why, cap, "at most %d User-Agent patterns", AUTH_MAX_UA_GLOBS);
			if (sw_str_copy(e, p->ua[p->nua], sizeof(p->ua[0])) < 0)
				return config_why(why, cap, "User-Agent pattern too long");
			p->nua++;
		}
		return 0;
	}
	while (list_next(&v, &e)) {
		if (!e.len)
			continue;
		if (p->nsrc == AUTH_MAX_PROFILE_CIDRS)
			return config_why(why, cap, "at most %d networks", AUTH_MAX_PROFILE_CIDRS);
		if (sw_cidr_parse(e, &p->src[p->nsrc]) < 0)
			return config_why(why, cap, "not a network: \"%.*s\"", SW_STR_FMT(e));
		p->nsrc++;
	}
	return 0;
}

static int auth_section_key(struct sw_config *c, const char *key, const char *v, char *why, size_t cap)
{
	struct sw_auth_conf *a = &c->auth;
	if (config_key_is(key, "nonce_secret")) {
		struct sw_str s = sw_str_trim(sw_str_c(v));
		uint8_t buf[AUTH_SECRET_MAX];
		if (s.len % 2 || s.len < 32 || s.len > 2 * AUTH_SECRET_MAX)
			return config_why(why, cap, "nonce_secret: 32 to %d hex digits (16+ random bytes)",
				    2 * AUTH_SECRET_MAX);
		for (size_t i = 0; i < s.len; i += 2) {
			int h = hexval(s.p[i]), l = hexval(s.p[i + 1]);
			if (h < 0 || l < 0) {
				memset(buf, 0, sizeof(buf));
				return config_why(why, cap, "nonce_secret: not hexadecimal");
			}
			buf[i / 2] = (uint8_t)(h << 4 | l);
		}
		memcpy(a->nonce_secret, buf, s.len / 2);
		a->nonce_secret_len = (uint8_t)(s.len / 2);
		memset(buf, 0, sizeof(buf));
		return 0;
	}
	if (config_key_is(key, "nonce_secret_file")) {
		struct sw_str s = sw_str_trim(sw_str_c(v));
		if (!s.len || sw_str_copy(s, a->nonce_secret_file, sizeof(a->nonce_secret_file)) < 0)
			return config_why(why, cap, "nonce_secret_file: empty or too long");
		return 0;
	}
	if (config_key_is(key, "nonce_slots"))
		return parse_u32(v, 1024, NONCE_SLOTS_MAX, &a->nonce_slots, why, cap);
	if (config_key_is(key, "retry_after"))
		return parse_u32(v, 1, 3600, &a->retry_after, why, cap);
	return -ENOENT;
}

int config_auth_key(struct sw_config *c, const char *kind, const char *name,
		    const char *key, const char *value, char *why, size_t whycap)
{
	if (why && whycap)
		why[0] = '\0';
	if (!strcmp(kind, "realm"))
		return realm_key(c, name, key, value, why, whycap);
	if (!strcmp(kind, "profile"))
		return profile_key(c, name, key, value, why, whycap);
	if (!strcmp(kind, "auth"))
		return auth_section_key(c, key, value, why, whycap);
	return -ENOENT;
}

static bool alglist_usable(const struct auth_alglist *l, uint8_t md5)
{
	for (unsigned i = 0; i < l->n; i++)
		if (md5 != AUTH_MD5_DENY || AUTH_ALGO_HASH(l->v[i]) != AUTH_H_MD5)
			return true;
	return false;
}

int config_auth_finish(const struct sw_config *c, char *why, size_t whycap)
{
	const struct sw_auth_conf *a = &c->auth;
	for (unsigned k = 0; k < a->nprofiles; k++) {
		const struct auth_profile *p = &a->profiles[k];
		if (!p->algs.n)
			return config_why(why, whycap, "[profile %s] needs algorithms = …", p->name);
		if (!p->nua && !p->nsrc)
			return config_why(why, whycap, "[profile %s] needs match_user_agent or match_source",
				    p->name);
	}
	for (unsigned i = 0; i < c->nrealms; i++) {
		const struct auth_realm_conf *r = config_auth_realm(c, i);
		if (!alglist_usable(&r->algs, r->md5))
			return config_why(why, whycap, "[realm %s]: md5 = deny leaves no algorithm to offer",
				    c->realms[i].name);
		for (unsigned k = 0; k < a->nprofiles; k++)
			if (!alglist_usable(&a->profiles[k].algs, r->md5))
				return config_why(why, whycap, "[profile %s] offers only MD5, which [realm %s] denies",
					    a->profiles[k].name, c->realms[i].name);
	}
	if (a->nonce_secret_len && a->nonce_secret_file[0])
		return config_why(why, whycap, "[auth]: set nonce_secret or nonce_secret_file, not both");
	return 0;
}

unsigned config_auth_warn(const struct sw_config *c, FILE *out)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->nrealms; i++) {
		const struct auth_realm_conf *r = config_auth_realm(c, i);
		bool md5 = false;
		for (unsigned k = 0; k < r->algs.n; k++)
			md5 |= AUTH_ALGO_HASH(r->algs.v[k]) == AUTH_H_MD5;
		if (md5 && r->md5 == AUTH_MD5_ALLOW) {
			fprintf(out, "warning: %s: [realm %s] allows MD5 digest without logging it "
				"(md5 = warn shows which devices still use it)\n", c->path, c->realms[i].name);
			n++;
		}
		if (r->allow_no_qop) {
			fprintf(out, "warning: %s: [realm %s] allow_no_qop = yes accepts RFC 2069 digest "
				"(no client nonce, weaker against chosen-plaintext)\n", c->path,
				c->realms[i].name);
			n++;
		}
		if (!r->identity_check) {
			fprintf(out, "warning: %s: [realm %s] identity_check = no lets any user act "
				"for any AOR of the realm\n", c->path, c->realms[i].name);
			n++;
		}
	}
	return n;
}
