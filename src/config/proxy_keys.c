/* Proxy keys of the config file (issue 4): [upstream NAME], [trunk NAME]
 * and [proxy]. Depends on base/ only, so it can live in the config library. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/str.h"
#include "config/keys.h"
#include "config/proxy_keys.h"

void proxy_conf_default(struct sw_proxy_conf *p)
{
	memset(p, 0, sizeof(*p));
	p->record_route = true;
	p->local_calls = true;
	p->timer_c_s = 180;        /* RFC 3261 §16.6 item 11: > 3 minutes... 180 s is the usual floor */
	p->health_interval_s = 10;
	p->down_s = 30;
	p->max_branches = 8;
	p->max_calls = 4096;
}

static int parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t x;
	if (sw_str_to_u64(sw_str_trim(sw_str_c(v)), max, &x) < 0 || x < min)
		return -EINVAL;
	*out = (uint32_t)x;
	return 0;
}

int proxy_hop_parse(const char *uri, struct proxy_hop *h, char *why, size_t whycap)
{
	struct sw_str s = sw_str_trim(sw_str_c(uri));
	memset(h, 0, sizeof(*h));
	if (s.len && s.p[0] == '<' && s.p[s.len - 1] == '>') {
		s.p++;
		s.len -= 2;
	}
	if (!sw_str_iprefix(s, "sip:"))
		return config_why(why, whycap, "expected sip:HOST[:PORT][;transport=udp|tcp], got \"%s\"", uri);
	s.p += 4;
	s.len -= 4;
	const char *at = memchr(s.p, '@', s.len);
	if (at) { /* a user part names nobody at a next hop: ignore it */
		s.len -= (size_t)(at + 1 - s.p);
		s.p = at + 1;
	}
	const char *semi = memchr(s.p, ';', s.len);
	struct sw_str hp = sw_str_mk(s.p, semi ? (size_t)(semi - s.p) : s.len);
	struct sw_str params = semi ? sw_str_mk(semi, s.len - (size_t)(semi - s.p)) : SW_STR_NULL;
	struct sw_str host, port = SW_STR_NULL;
	if (hp.len && hp.p[0] == '[') {
		const char *rb = memchr(hp.p, ']', hp.len);
		if (!rb)
			return config_why(why, whycap, "unbalanced [ in \"%s\"", uri);
		host = sw_str_mk(hp.p + 1, (size_t)(rb - hp.p - 1));
		if ((size_t)(rb + 1 - hp.p) < hp.len) {
			if (rb[1] != ':')
				return config_why(why, whycap, "junk after ] in \"%s\"", uri);
			port = sw_str_mk(rb + 2, hp.len - (size_t)(rb + 2 - hp.p));
		}
	} else {
		const char *colon = memchr(hp.p, ':', hp.len);
		host = sw_str_mk(hp.p, colon ? (size_t)(colon - hp.p) : hp.len);
		if (colon)
			port = sw_str_mk(colon + 1, hp.len - (size_t)(colon + 1 - hp.p));
	}
	if (!host.len || sw_str_copy(host, h->host, sizeof(h->host)) < 0)
		return config_why(why, whycap, "empty or overlong host in \"%s\"", uri);
	if (port.p) {
		uint64_t p;
		if (sw_str_to_u64(port, 65535, &p) < 0 || p == 0)
			return config_why(why, whycap, "bad port in \"%s\"", uri);
		h->port = (uint16_t)p;
	}
	h->proto = 0; /* udp */
	while (params.len) {
		params.p++;
		params.len--;
		const char *n = memchr(params.p, ';', params.len);
		struct sw_str one = sw_str_mk(params.p, n ? (size_t)(n - params.p) : params.len);
		if (sw_str_iprefix(one, "transport=")) {
			struct sw_str t = sw_str_mk(one.p + 10, one.len - 10);
			if (sw_str_ieq_c(t, "udp"))
				h->proto = 0;
			else if (sw_str_ieq_c(t, "tcp"))
				h->proto = 1;
			else
				return config_why(why, whycap, "transport must be udp or tcp in \"%s\"", uri);
			h->explicit_proto = true;
		}
		params = n ? sw_str_mk(n, params.len - (size_t)(n - params.p)) : sw_str_mk(params.p + one.len, 0);
	}
	/* RFC 3263 §4.2: a numeric host needs no DNS */
	struct sockaddr_in *in = (void *)&h->addr;
	struct sockaddr_in6 *in6 = (void *)&h->addr;
	uint16_t pn = htons(h->port ? h->port : 5060);
	if (inet_pton(AF_INET, h->host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = pn;
		h->alen = sizeof(*in);
		h->literal = true;
	} else if (inet_pton(AF_INET6, h->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = pn;
		h->alen = sizeof(*in6);
		h->literal = true;
	}
	return 0;
}

static struct proxy_upstream_conf *upstream(struct sw_proxy_conf *p, const char *name,
					    char *why, size_t whycap)
{
	for (unsigned i = 0; i < p->nup; i++)
		if (strcmp(p->up[i].name, name) == 0)
			return &p->up[i];
	if (p->nup == PROXY_MAX_UPSTREAMS) {
		config_why(why, whycap, "at most %d upstreams", PROXY_MAX_UPSTREAMS);
		return NULL;
	}
	struct proxy_upstream_conf *u = &p->up[p->nup];
	memset(u, 0, sizeof(*u));
	if (snprintf(u->name, sizeof(u->name), "%s", name) >= (int)sizeof(u->name)) {
		config_why(why, whycap, "upstream name too long");
		return NULL;
	}
	p->nup++;
	return u;
}

static struct proxy_trunk_conf *trunk(struct sw_proxy_conf *p, const char *name,
				      char *why, size_t whycap)
{
	for (unsigned i = 0; i < p->ntrunks; i++)
		if (strcmp(p->trunks[i].name, name) == 0)
			return &p->trunks[i];
	if (p->ntrunks == PROXY_MAX_TRUNKS) {
		config_why(why, whycap, "at most %d trunks", PROXY_MAX_TRUNKS);
		return NULL;
	}
	struct proxy_trunk_conf *t = &p->trunks[p->ntrunks];
	memset(t, 0, sizeof(*t));
	if (snprintf(t->name, sizeof(t->name), "%s", name) >= (int)sizeof(t->name)) {
		config_why(why, whycap, "trunk name too long");
		return NULL;
	}
	memcpy(t->user, t->name, sizeof(t->user)); /* same size, NUL-terminated above */
	p->ntrunks++;
	return t;
}

static int trunk_match(struct sw_proxy_conf *p, struct proxy_trunk_conf *t, const char *value,
		       char *why, size_t whycap)
{
	uint16_t idx = (uint16_t)(t - p->trunks);
	struct sw_str rest = sw_str_c(value);
	while (rest.len) {
		const char *comma = memchr(rest.p, ',', rest.len);
		size_t l = comma ? (size_t)(comma - rest.p) : rest.len;
		struct sw_str item = sw_str_trim(sw_str_mk(rest.p, l));
		rest = comma ? sw_str_mk(comma + 1, rest.len - l - 1) : sw_str_mk(rest.p + l, 0);
		if (!item.len)
			continue;
		if (p->ncidrs == PROXY_MAX_CIDRS)
			return config_why(why, whycap, "at most %d trunk networks in all", PROXY_MAX_CIDRS);
		struct proxy_trunk_cidr *c = &p->cidrs[p->ncidrs];
		if (sw_cidr_parse(item, &c->c) < 0)
			return config_why(why, whycap, "\"%.*s\" is not an address or CIDR prefix", SW_STR_FMT(item));
		for (unsigned i = 0; i < p->ncidrs; i++)
			if (p->cidrs[i].c.family == c->c.family && p->cidrs[i].c.bits == c->c.bits &&
			    memcmp(p->cidrs[i].c.addr, c->c.addr, 16) == 0)
				return config_why(why, whycap, "\"%.*s\" is already listed for trunk %s",
					    SW_STR_FMT(item), p->trunks[p->cidrs[i].trunk].name);
		c->trunk = idx;
		p->ncidrs++;
		t->ncidrs++;
	}
	return 0;
}

static int trunk_key(struct sw_proxy_conf *p, struct proxy_trunk_conf *t, const char *key,
		     const char *value, char *why, size_t whycap)
{
	if (config_key_is(key, "match"))
		return trunk_match(p, t, value, why, whycap);
	if (config_key_is(key, "auth")) {
		static const char *const names[] = { "ip", "digest", "ip+digest", "ip-or-digest" };
		for (unsigned i = 0; i < 4; i++)
			if (strcmp(value, names[i]) == 0) {
				t->auth = (uint8_t)i;
				return 0;
			}
		return config_why(why, whycap, "expected ip, digest, ip+digest or ip-or-digest, got \"%s\"", value);
	}
	if (config_key_is(key, "uri")) {
		t->has_uri = true;
		return proxy_hop_parse(value, &t->hop, why, whycap);
	}
	if (config_key_is(key, "user")) {
		if (!*value || snprintf(t->user, sizeof(t->user), "%s", value) >= (int)sizeof(t->user))
			return config_why(why, whycap, "empty or too long");
		return 0;
	}
	if (config_key_is(key, "domain")) {
		if (!*value || snprintf(t->domain, sizeof(t->domain), "%s", value) >= (int)sizeof(t->domain))
			return config_why(why, whycap, "empty or too long");
		return 0;
	}
	if (config_key_is(key, "prefix")) {
		struct sw_str rest = sw_str_c(value);
		while (rest.len) {
			const char *comma = memchr(rest.p, ',', rest.len);
			size_t l = comma ? (size_t)(comma - rest.p) : rest.len;
			struct sw_str item = sw_str_trim(sw_str_mk(rest.p, l));
			rest = comma ? sw_str_mk(comma + 1, rest.len - l - 1) : sw_str_mk(rest.p + l, 0);
			if (!item.len)
				continue;
			if (t->nprefix == PROXY_MAX_PREFIXES)
				return config_why(why, whycap, "at most %d prefixes", PROXY_MAX_PREFIXES);
			if (sw_str_copy(item, t->prefix[t->nprefix], sizeof(t->prefix[0])) < 0)
				return config_why(why, whycap, "prefix too long");
			t->nprefix++;
		}
		return 0;
	}
	return -ENOENT;
}

static int proxy_key(struct sw_proxy_conf *p, const char *key, const char *value, char *why,
		     size_t whycap)
{
	bool *flag = NULL;
	if (config_key_is(key, "record_route"))
		flag = &p->record_route;
	else if (config_key_is(key, "rechallenge_in_dialog"))
		flag = &p->rechallenge_in_dialog;
	else if (config_key_is(key, "local_calls"))
		flag = &p->local_calls;
	if (flag) {
		if (config_yesno(value, flag) < 0)
			return config_why(why, whycap, "expected yes or no, got \"%s\"", value);
		return 0;
	}
	struct { const char *k; uint32_t *f; uint32_t min, max; } nums[] = {
		{ "timer_c", &p->timer_c_s, 1, 3600 },
		{ "health_interval", &p->health_interval_s, 0, 3600 },
		{ "down_time", &p->down_s, 1, 86400 },
		{ "max_branches", &p->max_branches, 1, 32 },
		{ "max_calls", &p->max_calls, 16, 1000000 },
	};
	for (unsigned i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (strcmp(key, nums[i].k) != 0)
			continue;
		if (parse_u32(value, nums[i].min, nums[i].max, nums[i].f) < 0)
			return config_why(why, whycap, "expected a whole number from %u to %u, got \"%s\"",
				    nums[i].min, nums[i].max, value);
		return 0;
	}
	if (config_key_is(key, "dns_servers")) {
		/* c-ares parses it (resolve.c); only address characters get there */
		size_t n = strspn(value, "0123456789abcdefABCDEF.:[], ");
		if (!*value || value[n] || snprintf(p->dns_servers, sizeof(p->dns_servers), "%s", value) >=
						    (int)sizeof(p->dns_servers))
			return config_why(why, whycap, "expected IP[:PORT], ... got \"%s\"", value);
		return 0;
	}
	if (config_key_is(key, "secret_file")) {
		if (!*value || snprintf(p->secret_file, sizeof(p->secret_file), "%s", value) >=
				       (int)sizeof(p->secret_file))
			return config_why(why, whycap, "empty or too long");
		return 0;
	}
	return -ENOENT;
}

int config_proxy_key(struct sw_config *c, const char *kind, const char *name, const char *key,
		     const char *value, char *why, size_t whycap)
{
	struct sw_proxy_conf *p = &c->proxy;
	if (why && whycap)
		why[0] = '\0';
	if (!p->on) {
		proxy_conf_default(p);
		p->on = true;
	}
	if (strcmp(kind, "proxy") == 0)
		return proxy_key(p, key, value, why, whycap);
	if (!*name)
		return config_why(why, whycap, "[%s] needs a name: [%s NAME]", kind, kind);
	if (strcmp(kind, "upstream") == 0) {
		struct proxy_upstream_conf *u = upstream(p, name, why, whycap);
		if (!u)
			return -EINVAL;
		if (config_key_is(key, "uri"))
			return proxy_hop_parse(value, &u->hop, why, whycap);
		return -ENOENT;
	}
	if (strcmp(kind, "trunk") == 0) {
		struct proxy_trunk_conf *t = trunk(p, name, why, whycap);
		if (!t)
			return -EINVAL;
		return trunk_key(p, t, key, value, why, whycap);
	}
	return -ENOENT;
}

int config_proxy_finish(struct sw_config *c, char *why, size_t whycap)
{
	struct sw_proxy_conf *p = &c->proxy;
	if (!p->on)
		return 0;
	for (unsigned i = 0; i < p->nup; i++)
		if (!p->up[i].hop.host[0])
			return config_why(why, whycap, "[upstream %s] needs uri = sip:HOST:PORT",
				    p->up[i].name);
	for (unsigned i = 0; i < p->ntrunks; i++) {
		const struct proxy_trunk_conf *t = &p->trunks[i];
		if (t->auth != TRUNK_AUTH_DIGEST && t->ncidrs == 0)
			return config_why(why, whycap, "[trunk %s]: auth = %s needs match = CIDR, ...",
				    t->name,
				    t->auth == TRUNK_AUTH_IP ? "ip" : t->auth == TRUNK_AUTH_IP_AND_DIGEST ?
				    "ip+digest" : "ip-or-digest");
		if ((t->domain[0] || t->nprefix) && !t->has_uri)
			return config_why(why, whycap, "[trunk %s]: domain/prefix route calls to "
				    "the trunk: give its uri", t->name);
	}
	return 0;
}
