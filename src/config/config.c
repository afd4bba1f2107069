/* INI loading (inih) into the typed, read-only struct sw_config.
 * Every error names file and line (issue 2). */
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "config/auth_keys.h"
#include "config/proxy_keys.h" /* issue 4 */
#include "config/config.h"
#include "config/guard_keys.h"
#include "config/keys.h"

struct loader {
	struct sw_config *c;
	struct sw_config_diag *diag;
	const char *path;
	FILE *f;
	unsigned line;        /* line number of the text inih is handling */
	int failed;
	bool seen_listen;     /* first `listen` replaces the defaults */
	char section[SW_NAME_MAX + 16];
};

static void fail(struct loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct loader *ld, const char *fmt, ...)
{
	if (ld->failed)
		return; /* report the first error; it is the one to fix */
	ld->failed = 1;
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ld->line)
		snprintf(ld->diag->text, sizeof(ld->diag->text), "%s:%u: %s", ld->path, ld->line, msg);
	else /* checks across sections belong to no single line */
		snprintf(ld->diag->text, sizeof(ld->diag->text), "%s: %s", ld->path, msg);
}

void config_defaults(struct sw_config *c)
{
	memset(c, 0, sizeof(*c));
	c->workers = 0;
	snprintf(c->data_dir, sizeof(c->data_dir), "./var");
	c->log_level = SW_LOG_INFO;
	snprintf(c->server_name, sizeof(c->server_name), "sipwarden");
	c->limits = (struct sip_limits){ .max_msg = 65535, .max_headers = 100, .max_line = 8192,
					 .max_via = 70, .max_contacts = 16 };
	/* Timer J keeps each completed REGISTER 32 s: 1M per worker carries
	 * 30k/s; entries are 128 bytes, touched only when first used */
	c->max_transactions = 1048576;
	c->txn_memory = 512ull << 20;
	c->tp = (struct sw_tp_conf){ .limits = c->limits, .tcp_idle_s = 300, .tcp_message_s = 20, .tcp_max_conns = 4096,
				     .tcp_max_conns_per_ip = 64, .udp_batch = 32,
				     .udp_rcvbuf = 4u << 20 };
	c->timers = (struct sip_timers){ .t1_ms = 500, .t2_ms = 4000, .t4_ms = 5000 };
	c->reg = (struct reg_conf){ .min_expires = 60, .max_expires = 3600, .default_expires = 3600,
				    .max_bindings_per_aor = 10, .max_bindings = 1000000,
				    .max_contacts = 16 };
	c->unknown_domain_status = 403;
	guard_conf_default(&c->guard);
	/* Loopback UDP+TCP on 5060 unless the file says otherwise. */
	const char *def[] = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" };
	for (unsigned i = 0; i < 2; i++) {
		struct sw_listen *l = &c->listen[c->nlisten++];
		l->proto = i == 0 ? SW_PROTO_UDP : SW_PROTO_TCP;
		sw_sockaddr_parse(sw_str_c(def[i] + 4), &l->addr, &l->alen);
		snprintf(l->text, sizeof(l->text), "%s", def[i]);
	}
}

static int parse_uint(struct loader *ld, const char *key, const char *v, uint64_t min, uint64_t max,
		      uint64_t *out)
{
	int rc = sw_str_to_u64(sw_str_trim(sw_str_c(v)), max, out);
	if (rc < 0 || *out < min) {
		fail(ld, "%s: expected a whole number from %llu to %llu, got \"%s\"", key,
		     (unsigned long long)min, (unsigned long long)max, v);
		return -EINVAL;
	}
	return 0;
}

#define UINT_KEY(name, field, min, max)                                        \
	if (strcmp(key, name) == 0) {                                          \
		uint64_t v_;                                                   \
		if (parse_uint(ld, key, value, min, max, &v_) == 0)            \
			field = (__typeof__(field))v_;                         \
		return;                                                        \
	}

/* config/ sits below transport/ (DESIGN.md "Layout"): names parsed here. */
static int proto_parse(const char *name, enum sw_proto *out)
{
	static const char *const names[] = { "udp", "tcp", "tls", "ws", "wss" };
	for (unsigned i = 0; i < 5; i++)
		if (strcmp(name, names[i]) == 0) {
			*out = (enum sw_proto)i;
			return 0;
		}
	return -EINVAL;
}

static void set_listen(struct loader *ld, const char *value)
{
	struct sw_config *c = ld->c;
	if (!ld->seen_listen) {
		c->nlisten = 0;
		ld->seen_listen = true;
	}
	if (c->nlisten == SW_MAX_LISTEN) {
		fail(ld, "listen: at most %d listeners", SW_MAX_LISTEN);
		return;
	}
	struct sw_str v = sw_str_trim(sw_str_c(value));
	const char *colon = memchr(v.p, ':', v.len);
	char proto[8];
	struct sw_listen *l = &c->listen[c->nlisten];
	if (!colon || sw_str_copy(sw_str_mk(v.p, (size_t)(colon - v.p)), proto, sizeof(proto)) < 0 ||
	    proto_parse(proto, &l->proto) < 0) {
		fail(ld, "listen: expected udp:ADDR:PORT or tcp:ADDR:PORT, got \"%s\"", value);
		return;
	}
	if (l->proto != SW_PROTO_UDP && l->proto != SW_PROTO_TCP) {
		fail(ld, "listen: transport \"%s\" is not available yet (udp, tcp)", proto);
		return;
	}
	struct sw_str addr = sw_str_mk(colon + 1, v.len - (size_t)(colon + 1 - v.p));
	if (sw_sockaddr_parse(addr, &l->addr, &l->alen) < 0) {
		fail(ld, "listen: bad address \"%.*s\" (IPv4:PORT or [IPv6]:PORT)", SW_STR_FMT(addr));
		return;
	}
	snprintf(l->text, sizeof(l->text), "%.*s", SW_STR_FMT(v));
	for (unsigned i = 0; i < c->nlisten; i++) {
		if (c->listen[i].proto == l->proto && c->listen[i].alen == l->alen &&
		    memcmp(&c->listen[i].addr, &l->addr, l->alen) == 0) {
			fail(ld, "listen: %s is listed twice", l->text);
			return;
		}
	}
	c->nlisten++;
}

static void set_cidrs(struct loader *ld, const char *key, const char *value, struct sw_cidr *list,
		      unsigned *n)
{
	struct sw_str rest = sw_str_c(value);
	while (rest.len) {
		const char *comma = memchr(rest.p, ',', rest.len);
		size_t l = comma ? (size_t)(comma - rest.p) : rest.len;
		struct sw_str item = sw_str_trim(sw_str_mk(rest.p, l));
		rest = comma ? sw_str_mk(comma + 1, rest.len - l - 1) : sw_str_mk(rest.p + l, 0);
		if (!item.len)
			continue;
		if (*n == SW_MAX_CIDRS) {
			fail(ld, "%s: at most %d networks", key, SW_MAX_CIDRS);
			return;
		}
		if (sw_cidr_parse(item, &list[*n]) < 0) {
			fail(ld, "%s: \"%.*s\" is not an address or CIDR prefix", key, SW_STR_FMT(item));
			return;
		}
		(*n)++;
	}
}

/* Bytes with an optional K/M/G suffix (binary), within [min, max]. */
static int parse_bytes(struct loader *ld, const char *key, const char *value, uint64_t min,
		       uint64_t max, uint64_t *out)
{
	char num[32];
	size_t n = strlen(value);
	unsigned shift = 0;
	if (n && (value[n - 1] == 'K' || value[n - 1] == 'k'))
		shift = 10;
	else if (n && (value[n - 1] == 'M' || value[n - 1] == 'm'))
		shift = 20;
	else if (n && (value[n - 1] == 'G' || value[n - 1] == 'g'))
		shift = 30;
	if (shift)
		n--;
	if (n == 0 || n >= sizeof(num)) {
		fail(ld, "%s: expected bytes with an optional K, M or G suffix", key);
		return -1;
	}
	memcpy(num, value, n);
	num[n] = '\0';
	uint64_t v;
	if (parse_uint(ld, key, num, 1, max >> shift, &v) < 0)
		return -1;
	if ((v << shift) < min) {
		fail(ld, "%s: at least %llu bytes", key, (unsigned long long)min);
		return -1;
	}
	*out = v << shift;
	return 0;
}

static void server_key(struct loader *ld, const char *key, const char *value)
{
	struct sw_config *c = ld->c;
	if (strcmp(key, "listen") == 0) {
		set_listen(ld, value);
		return;
	}
	if (strcmp(key, "workers") == 0) {
		if (strcmp(value, "auto") == 0) {
			c->workers = 0;
			return;
		}
		uint64_t v;
		if (parse_uint(ld, key, value, 1, 256, &v) == 0)
			c->workers = (unsigned)v;
		return;
	}
	if (strcmp(key, "realtime_priority") == 0) {
		/* issue 6: workers at SCHED_FIFO (worker.c). Below 50, where the
		 * kernel's threaded interrupt handlers run: a worker above them
		 * would hold off the very interrupts that bring its packets. */
		uint64_t v;
		if (parse_uint(ld, key, value, 0, 99, &v) < 0)
			return;
		if (v >= 50)
			fail(ld, "realtime_priority: at most 49, got %llu (the kernel's interrupt threads run at 50 "
				 "and must be able to preempt the workers)", (unsigned long long)v);
		else
			c->rt_priority = (unsigned)v;
		return;
	}
	if (strcmp(key, "udp_receive_buffer") == 0) {
		/* per UDP socket; set with SO_RCVBUFFORCE while still root, so
		 * net.core.rmem_max does not cap it */
		uint64_t v;
		if (parse_bytes(ld, key, value, 64u << 10, 1u << 30, &v) == 0)
			c->tp.udp_rcvbuf = (size_t)v;
		return;
	}
	if (strcmp(key, "data_dir") == 0) {
		if (!*value || snprintf(c->data_dir, sizeof(c->data_dir), "%s", value) >= (int)sizeof(c->data_dir))
			fail(ld, "data_dir: empty or too long");
		return;
	}
	if (strcmp(key, "log_level") == 0) {
		enum sw_log_level lvl;
		if (sw_log_level_parse(value, &lvl) < 0)
			fail(ld, "log_level: expected debug, info, warn or error, got \"%s\"", value);
		else
			c->log_level = (int)lvl;
		return;
	}
	if (strcmp(key, "server_name") == 0) {
		if (snprintf(c->server_name, sizeof(c->server_name), "%s", value) >= (int)sizeof(c->server_name))
			fail(ld, "server_name: longer than %zu characters", sizeof(c->server_name) - 1);
		return;
	}
	if (strcmp(key, "user") == 0 || strcmp(key, "group") == 0) {
		bool u = key[0] == 'u';
		char *dst = u ? c->run_user : c->run_group;
		size_t cap = u ? sizeof(c->run_user) : sizeof(c->run_group);
		if (!*value || snprintf(dst, cap, "%s", value) >= (int)cap)
			fail(ld, "%s: empty or longer than %zu characters", key, cap - 1);
		return;
	}
	fail(ld, "unknown key \"%s\" in [server]", key);
}

static void limits_key(struct loader *ld, const char *key, const char *value)
{
	struct sw_config *c = ld->c;
	UINT_KEY("max_message", c->limits.max_msg, 512, 65535)
	UINT_KEY("max_headers", c->limits.max_headers, 16, 1000)
	UINT_KEY("max_header_line", c->limits.max_line, 256, 65535)
	UINT_KEY("max_via", c->limits.max_via, 2, 256)
	UINT_KEY("max_contacts", c->limits.max_contacts, 1, 64)
	UINT_KEY("max_transactions", c->max_transactions, 64, 16000000)
	if (strcmp(key, "txn_memory") == 0) {
		uint64_t v;
		if (parse_bytes(ld, key, value, 1ull << 20, 1ull << 40, &v) == 0)
			c->txn_memory = v;
		return;
	}
	fail(ld, "unknown key \"%s\" in [limits]", key);
}

static void tcp_key(struct loader *ld, const char *key, const char *value)
{
	struct sw_config *c = ld->c;
	UINT_KEY("idle_timeout", c->tp.tcp_idle_s, 1, 86400)
	UINT_KEY("message_timeout", c->tp.tcp_message_s, 0, 3600)
	UINT_KEY("max_connections", c->tp.tcp_max_conns, 1, 1000000)
	UINT_KEY("max_connections_per_ip", c->tp.tcp_max_conns_per_ip, 1, 1000000)
	fail(ld, "unknown key \"%s\" in [tcp]", key);
}

static void timers_key(struct loader *ld, const char *key, const char *value)
{
	struct sw_config *c = ld->c;
	UINT_KEY("t1", c->timers.t1_ms, 50, 10000)
	UINT_KEY("t2", c->timers.t2_ms, 500, 60000)
	UINT_KEY("t4", c->timers.t4_ms, 500, 60000)
	fail(ld, "unknown key \"%s\" in [timers]", key);
}

static void registrar_key(struct loader *ld, const char *key, const char *value)
{
	struct sw_config *c = ld->c;
	if (strcmp(key, "trust") == 0) {
		set_cidrs(ld, key, value, c->reg_trust, &c->nreg_trust);
		return;
	}
	if (strcmp(key, "unknown_domain") == 0) {
		if (strcmp(value, "403") == 0)
			c->unknown_domain_status = 403;
		else if (strcmp(value, "404") == 0)
			c->unknown_domain_status = 404;
		else
			fail(ld, "unknown_domain: expected 403 or 404, got \"%s\"", value);
		return;
	}
	if (config_key_is(key, "fsync")) {
		/* fdatasync the journal before every 200: survives power loss */
		if (config_yesno(value, &c->reg.fsync) < 0)
			fail(ld, "fsync: expected yes or no, got \"%s\"", value);
		return;
	}
	UINT_KEY("min_expires", c->reg.min_expires, 1, 86400)
	UINT_KEY("max_expires", c->reg.max_expires, 1, 604800)
	UINT_KEY("default_expires", c->reg.default_expires, 1, 604800)
	UINT_KEY("max_bindings_per_aor", c->reg.max_bindings_per_aor, 1, 128)
	UINT_KEY("max_bindings", c->reg.max_bindings, 1, 100000000)
	fail(ld, "unknown key \"%s\" in [registrar]", key);
}

static void add_realm(struct loader *ld, struct sw_str name)
{
	struct sw_config *c = ld->c;
	if (!name.len) {
		fail(ld, "[realm] needs a domain name: [realm pbx.example.com]");
		return;
	}
	if (config_realm(c, name.p, name.len)) {
		fail(ld, "realm \"%.*s\" is defined twice", SW_STR_FMT(name));
		return;
	}
	if (c->nrealms == SW_MAX_REALMS) {
		fail(ld, "at most %d realms", SW_MAX_REALMS);
		return;
	}
	struct sw_realm *r = &c->realms[c->nrealms];
	if (sw_str_copy(name, r->name, sizeof(r->name)) < 0) {
		fail(ld, "realm name too long");
		return;
	}
	for (char *p = r->name; *p; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
			   *p == '-' || *p == '_' || *p == ':' || *p == '[' || *p == ']')) {
			fail(ld, "realm \"%.*s\": not a domain name", SW_STR_FMT(name));
			return;
		}
	}
	r->line = ld->line;
	c->nrealms++;
}

/* Section headers are seen here, in the reader, so that sections without
 * keys (a bare [realm example.com]) count too: inih only reports keys. */
static void section_seen(struct loader *ld, struct sw_str line)
{
	const char *rb = memchr(line.p, ']', line.len);
	if (!rb)
		return; /* inih reports the syntax error */
	struct sw_str sec = sw_str_trim(sw_str_mk(line.p + 1, (size_t)(rb - line.p - 1)));
	sw_str_copy(sec.len < sizeof(ld->section) ? sec : sw_str_mk(sec.p, sizeof(ld->section) - 1),
		    ld->section, sizeof(ld->section));
	const char *sp = memchr(sec.p, ' ', sec.len);
	struct sw_str kind = sp ? sw_str_mk(sec.p, (size_t)(sp - sec.p)) : sec;
	struct sw_str name = sp ? sw_str_trim(sw_str_mk(sp, sec.len - (size_t)(sp - sec.p))) : SW_STR_NULL;
	static const char *const plain[] = { "server", "limits", "tcp", "timers", "registrar", "auth", "guard" };
	for (unsigned i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (sw_str_eq(kind, sw_str_c(plain[i]))) {
			if (name.len)
				fail(ld, "[%s] takes no name", plain[i]);
			return;
		}
	if (sw_str_eq(kind, SW_STR_LIT("realm"))) {
		add_realm(ld, name);
		return;
	}
	if (sw_str_eq(kind, SW_STR_LIT("proxy"))) { /* issue 4 */
		if (name.len)
			fail(ld, "[proxy] takes no name");
		return;
	}
	if (sw_str_eq(kind, SW_STR_LIT("upstream")) || sw_str_eq(kind, SW_STR_LIT("trunk"))) {
		if (!name.len)
			fail(ld, "[%.*s] needs a name: [%.*s NAME]", SW_STR_FMT(kind), SW_STR_FMT(kind));
		return;
	}
	if (sw_str_eq(kind, SW_STR_LIT("profile"))) {
		if (!name.len)
			fail(ld, "[profile] needs a name: [profile legacy]");
		return;
	}
	fail(ld, "unknown section [%.*s]", SW_STR_FMT(sec));
}

static char *reader(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	if (!fgets(str, num, ld->f))
		return NULL;
	ld->line++;
	size_t n = strlen(str);
	if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(ld->f)) {
		fail(ld, "line longer than %d characters", num - 2);
		/* Swallow the rest of the line so inih does not see fragments. */
		int ch;
		while ((ch = fgetc(ld->f)) != EOF && ch != '\n')
			;
		str[0] = '\0';
		return str;
	}
	struct sw_str t = sw_str_trim(sw_str_c(str));
	if (t.len && t.p[0] == '[')
		section_seen(ld, t);
	return str;
}

/* Digest settings live with the auth module's types (config/auth_keys.c). */
static void delegate(struct loader *ld, const char *kind, const char *name, const char *section,
		     const char *key, const char *value)
{
	char why[300];
	while (*name == ' ')
		name++;
	int rc = config_auth_key(ld->c, kind, name, key, value, why, sizeof(why));
	if (rc == -ENOENT)
		fail(ld, "unknown key \"%s\" in [%s]", key, section);
	else if (rc < 0)
		fail(ld, "%s: %s", key, why[0] ? why : "bad value");
}

static void guard_key(struct loader *ld, const char *key, const char *value)
{
	char why[300];
	int rc = config_guard_key(ld->c, key, value, why, sizeof(why));
	if (rc == -ENOENT)
		fail(ld, "unknown key \"%s\" in [guard]", key);
	else if (rc < 0)
		fail(ld, "%s: %s", key, why[0] ? why : "bad value");
}

/* [upstream NAME], [trunk NAME], [proxy] (config/proxy_keys.c, issue 4). */
static void proxy_key(struct loader *ld, const char *kind, const char *name, const char *section,
		      const char *key, const char *value)
{
	char why[300];
	int rc = config_proxy_key(ld->c, kind, name, key, value, why, sizeof(why));
	if (rc == -ENOENT)
		fail(ld, "unknown key \"%s\" in [%s]", key, section);
	else if (rc < 0)
		fail(ld, "%s: %s", key, why[0] ? why : "bad value");
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct loader *ld = user;
	if (ld->failed)
		return 1;
	if (strcmp(section, "server") == 0)
		server_key(ld, key, value);
	else if (strcmp(section, "limits") == 0)
		limits_key(ld, key, value);
	else if (strcmp(section, "tcp") == 0)
		tcp_key(ld, key, value);
	else if (strcmp(section, "timers") == 0)
		timers_key(ld, key, value);
	else if (strcmp(section, "registrar") == 0)
		registrar_key(ld, key, value);
	else if (strncmp(section, "realm ", 6) == 0)
		delegate(ld, "realm", section + 6, section, key, value);
	else if (strncmp(section, "profile ", 8) == 0)
		delegate(ld, "profile", section + 8, section, key, value);
	else if (strcmp(section, "auth") == 0)
		delegate(ld, "auth", "", section, key, value);
	else if (strcmp(section, "guard") == 0)
		guard_key(ld, key, value);
	else if (strncmp(section, "upstream ", 9) == 0)
		proxy_key(ld, "upstream", section + 9, section, key, value);
	else if (strncmp(section, "trunk ", 6) == 0)
		proxy_key(ld, "trunk", section + 6, section, key, value);
	else if (strcmp(section, "proxy") == 0)
		proxy_key(ld, "proxy", "", section, key, value);
	else if (!*section)
		fail(ld, "key \"%s\" outside of any section", key);
	/* unknown sections were reported by the reader */
	return 1;
}

static void cross_checks(struct loader *ld)
{
	struct sw_config *c = ld->c;
	if (c->reg.min_expires > c->reg.max_expires)
		fail(ld, "[registrar] min_expires (%u) is above max_expires (%u)", c->reg.min_expires,
		     c->reg.max_expires);
	else if (c->reg.default_expires < c->reg.min_expires || c->reg.default_expires > c->reg.max_expires)
		fail(ld, "[registrar] default_expires must lie between min_expires and max_expires");
	if (c->timers.t2_ms < c->timers.t1_ms)
		fail(ld, "[timers] t2 must not be below t1");
	if (c->nlisten == 0)
		fail(ld, "[server] needs at least one listen address");
	if (c->run_group[0] && !c->run_user[0])
		fail(ld, "[server] group needs user");
	char why[300];
	if (!ld->failed && config_auth_finish(c, why, sizeof(why)) < 0)
		fail(ld, "%s", why);
	if (!ld->failed && guard_conf_finish(&c->guard, why, sizeof(why)) < 0)
		fail(ld, "[guard] %s", why);
	if (!ld->failed && config_proxy_finish(c, why, sizeof(why)) < 0)
		fail(ld, "%s", why);
	c->reg.max_contacts = c->limits.max_contacts;
	c->tp.limits = c->limits;
}

int config_load(const char *path, struct sw_config *c, struct sw_config_diag *diag)
{
	struct loader ld = { .c = c, .diag = diag, .path = path };
	config_defaults(c);
	diag->text[0] = '\0';
	snprintf(c->path, sizeof(c->path), "%s", path);
	ld.f = fopen(path, "r");
	if (!ld.f) {
		snprintf(diag->text, sizeof(diag->text), "%s: cannot open: %s", path, strerror(errno));
		return -EINVAL;
	}
	int rc = ini_parse_stream(reader, &ld, handler, &ld);
	fclose(ld.f);
	if (rc > 0 && !ld.failed) {
		ld.line = (unsigned)rc;
		fail(&ld, "syntax error (expected [section], key = value, or ; comment)");
	}
	if (!ld.failed) {
		ld.line = 0;
		cross_checks(&ld);
	}
	return ld.failed ? -EINVAL : 0;
}

const struct sw_realm *config_realm(const struct sw_config *c, const char *host, size_t len)
{
	for (unsigned i = 0; i < c->nrealms; i++)
		if (sw_str_ieq(sw_str_c(c->realms[i].name), sw_str_mk(host, len)))
			return &c->realms[i];
	return NULL;
}

unsigned config_check(const struct sw_config *c, FILE *out)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->nlisten; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&c->listen[i].addr;
		static const struct sw_cidr loop4 = { AF_INET, 8, { 127 } };
		static const struct sw_cidr loop6 = { AF_INET6, 128, { [15] = 1 } };
		if (!sw_cidr_match(&loop4, sa) && !sw_cidr_match(&loop6, sa) && c->nreg_trust) {
			fprintf(out, "warning: %s: [registrar] trust lets %u network(s) register without "
				     "a password while listening on %s\n",
				c->path, c->nreg_trust, c->listen[i].text);
			n++;
			break;
		}
	}
	for (unsigned i = 0; i < c->nreg_trust; i++) {
		if (c->reg_trust[i].bits == 0) {
			fprintf(out, "warning: %s: [registrar] trust contains a /0 prefix: anyone may register\n",
				c->path);
			n++;
		}
	}
	if (c->nrealms == 0) {
		fprintf(out, "warning: %s: no [realm] section: every REGISTER will be refused\n", c->path);
		n++;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (c->rt_priority && (c->workers == 0 || (ncpu > 0 && c->workers >= (unsigned long)ncpu))) {
		fprintf(out, "warning: %s: [server] realtime_priority with %s: under a flood every CPU runs a "
			     "real-time worker, and other processes (sshd too) get only the kernel's real-time "
			     "throttling share (set workers below the number of CPUs)\n",
			c->path, c->workers ? "a worker per CPU" : "workers = auto");
		n++;
	}
	if (!c->run_user[0] && geteuid() == 0) {
		fprintf(out, "warning: %s: no [server] user: run as root, sipwarden keeps root after "
			     "binding (set user = sipwarden)\n", c->path);
		n++;
	}
	return n + config_auth_warn(c, out) + guard_conf_warn(&c->guard, c->path, out);
}
