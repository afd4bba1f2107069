/* Unit tests: the guard (issue 5). Time is simulated: every call gets an
 * explicit `now` (wall ms) starting at the real clock, so that bans.db rows
 * written by the "CLI" (a second connection) line up with it.
 * argv[1]: mkmmdb.pl, the script that builds the geo test DB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/str.h"
#include "config/guard_keys.h"
#include "guard/bansdb.h"
#include "guard/guard.h"
#include "sip/parse.h"

static const char *mkmmdb = "src/guard/mkmmdb.pl";

/* ---- helpers ---- */

struct addr {
	struct sockaddr_storage ss;
};

static const struct sockaddr *ip(struct addr *a, const char *text)
{
	memset(a, 0, sizeof(*a));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (void *)&a->ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(5060);
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (void *)&a->ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(5060);
		assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
	}
	return (const struct sockaddr *)&a->ss;
}

static const struct sockaddr *ip4n(struct addr *a, uint32_t n)
{
	memset(a, 0, sizeof(*a));
	struct sockaddr_in *in = (void *)&a->ss;
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(n);
	return (const struct sockaddr *)&a->ss;
}

struct msg {
	char buf[1024];
	struct sip_hdr hdrs[32];
	struct sip_msg m;
};

static const struct sip_msg *mk(struct msg *x, const char *method, const char *ua)
{
	char uah[200] = "";
	if (ua)
		snprintf(uah, sizeof(uah), "User-Agent: %s\r\n", ua);
	int n = snprintf(x->buf, sizeof(x->buf),
			 "%s sip:example.test SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
			 "From: <sip:100@example.test>;tag=1\r\n"
			 "To: <sip:100@example.test>\r\n"
			 "Call-ID: c1\r\n"
			 "CSeq: 1 %s\r\n"
			 "Max-Forwards: 70\r\n"
			 "%s"
			 "Content-Length: 0\r\n\r\n",
			 method, method, uah);
	struct sip_limits lim;
	struct sip_perr err;
	sip_limits_default(&lim);
	ssize_t rc = sip_parse(x->buf, (size_t)n, SIP_PARSE_DGRAM, &lim, x->hdrs, 32, &x->m, &err);
	assert_true(rc > 0);
	return &x->m;
}

static struct sw_str S(const char *s)
{
	return sw_str_c(s);
}

static uint64_t T0;

struct fx {
	char dir[64];
	struct sw_guard_conf conf;
	struct sw_guard *g;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *base = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/swguardXXXXXX", base && strlen(base) < 40 ? base : "/tmp");
	if (!f || !mkdtemp(f->dir))
		return -1;
	guard_conf_default(&f->conf);
	f->conf.ip_table_size = 4096;
	f->conf.user_table_size = 4096;
	f->conf.fail_table_size = 4096;
	f->conf.ban_table_size = 4096;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	guard_close(f->g);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void fx_open(struct fx *f, bool persist)
{
	int err = -1;
	guard_close(f->g);
	f->g = guard_open(&f->conf, persist ? f->dir : NULL, &err);
	assert_int_equal(err, 0);
	assert_non_null(f->g);
}

static unsigned drain(struct sw_guard *g, struct guard_event *ev, unsigned cap)
{
	return guard_events(g, ev, cap);
}

/* ---- config ---- */

static void test_conf_keys(void **state)
{
	(void)state;
	struct sw_guard_conf c;
	char why[200];
	guard_conf_default(&c);
	assert_true(c.enabled);
	assert_int_equal(c.ban_after, 5);
	assert_int_equal(c.ban_window_s, 60);
	assert_int_equal(c.ban_time_s, 600);
	assert_int_equal(c.ban_max_time_s, 86400);
	assert_true(c.methods & (1u << SIP_M_REGISTER));
	assert_false(c.methods & (1u << SIP_M_PUBLISH));
	assert_true(c.nua >= 10);

	static const struct { const char *k, *v; int rc; } rows[] = {
		{ "ban_after", "3", 0 },
		{ "ban_after", "x", -EINVAL },
		{ "ban_after", "33", -EINVAL },
		{ "ban_window", "2m", 0 },
		{ "ban_time", "1h", 0 },
		{ "ban_time", "1y", -EINVAL },
		{ "ban_max_time", "2d", 0 },
		{ "ban_escalation", "4", 0 },
		{ "rate_register", "30/s", 0 },
		{ "rate_invite", "600/m", 0 },
		{ "rate_other", "100/h", 0 },
		{ "rate_user_register", "off", 0 },
		{ "rate_register", "30/y", -EINVAL },
		{ "burst_register", "10", 0 },
		{ "burst_register", "0", -EINVAL },
		{ "flood_packets_per_s", "500", 0 },
		{ "flood_action", "tarpit", 0 },
		{ "flood_action", "nuke", -EINVAL },
		{ "over_limit", "drop", 0 },
		{ "over_limit", "404", -EINVAL },
		{ "methods", "INVITE, ACK, BYE, REGISTER", 0 },
		{ "methods", "invite", -EINVAL },
		{ "unknown_method", "drop", 0 },
		{ "scanner_user_agents", "evil*, *bad*", 0 },
		{ "geo_db", "/nonexistent.mmdb", 0 },
		{ "geo_allow", "de, FR", 0 },
		{ "geo_deny", "CN,RU", 0 },
		{ "geo_deny", "CHN", -EINVAL },
		{ "greylist", "no", 0 },
		{ "greylist", "maybe", -EINVAL },
		{ "trusted", "10.0.0.0/8, 2001:db8::/32", 0 },
		{ "trusted", "10.0.0.0/33", -EINVAL },
		{ "ipv6_prefix", "56", 0 },
		{ "no_such_key", "1", -ENOENT },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		why[0] = '\0';
		int rc = guard_conf_key(&c, rows[i].k, rows[i].v, why, sizeof(why));
		if (rc != rows[i].rc)
			fail_msg("%s = %s: got %d, want %d (%s)", rows[i].k, rows[i].v, rc, rows[i].rc, why);
		if (rc == -EINVAL)
			assert_true(why[0] != '\0');
	}
	assert_int_equal(c.ban_after, 3);
	assert_int_equal(c.ban_window_s, 120);
	assert_int_equal(c.ban_time_s, 3600);
	assert_int_equal(c.ip[GUARD_C_REGISTER].per_hour, 30 * 3600);
	assert_int_equal(c.ip[GUARD_C_INVITE].per_hour, 600 * 60);
	assert_int_equal(c.ip[GUARD_C_OTHER].per_hour, 100);
	assert_int_equal(c.user[GUARD_C_REGISTER].per_hour, 0);
	assert_int_equal(c.methods, (1u << SIP_M_INVITE) | (1u << SIP_M_ACK) | (1u << SIP_M_BYE) |
					    (1u << SIP_M_REGISTER));
	assert_int_equal(c.nua, 2);
	assert_string_equal(c.geo_allow[0], "DE");
	assert_int_equal(c.ngeo_deny, 2);
	assert_int_equal(c.ntrusted, 2);
	assert_int_equal(c.unknown_method_status, 0);
	assert_int_equal(c.ipv6_prefix, 56);
	assert_int_equal(guard_conf_finish(&c, why, sizeof(why)), 0);
	c.ban_max_time_s = 10;
	assert_int_equal(guard_conf_finish(&c, why, sizeof(why)), -EINVAL);

	uint32_t d;
	assert_int_equal(guard_duration_parse("90", &d), 0);
	assert_int_equal(d, 90);
	assert_int_equal(guard_duration_parse("1h", &d), 0);
	assert_int_equal(d, 3600);
	assert_int_equal(guard_duration_parse("h", &d), -EINVAL);
	assert_int_equal(guard_duration_parse("-5", &d), -EINVAL);

	char norm[GUARD_NAME_MAX];
	assert_int_equal(guard_target_norm("192.0.2.7", 64, norm, sizeof(norm)), 0);
	assert_string_equal(norm, "192.0.2.7");
	assert_int_equal(guard_target_norm("2001:db8:1:2:3::9", 64, norm, sizeof(norm)), 0);
	assert_string_equal(norm, "2001:db8:1:2::/64");
	assert_int_equal(guard_target_norm("192.0.2.0/24", 64, norm, sizeof(norm)), -EINVAL);
	assert_int_equal(guard_target_norm("nonsense", 64, norm, sizeof(norm)), -EINVAL);
}

/* ---- rate limits ---- */

static void test_bucket_rate_burst_refill(void **state)
{
	struct fx *f = *state;
	f->conf.greylist = false;
	f->conf.ip[GUARD_C_REGISTER] = (struct guard_rate_conf){ 2 * 3600, 3 }; /* 2/s, burst 3 */
	fx_open(f, false);
	struct addr a;
	struct msg x;
	const struct sip_msg *m = mk(&x, "REGISTER", NULL);
	const struct sockaddr *src = ip(&a, "192.0.2.10");
	uint64_t t = T0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(guard_rate(f->g, m, src, S(""), t).action, GUARD_PASS);
	struct guard_verdict v = guard_rate(f->g, m, src, S(""), t);
	assert_int_equal(v.action, GUARD_REPLY);
	assert_int_equal(v.status, 503);
	assert_int_equal(v.reason, GUARD_R_RATE_IP);
	assert_int_equal(v.retry_after_s, 1);
	/* refill: one token every 500 ms */
	assert_int_equal(guard_rate(f->g, m, src, S(""), t + 499).action, GUARD_REPLY);
	assert_int_equal(guard_rate(f->g, m, src, S(""), t + 500).action, GUARD_PASS);
	assert_int_equal(guard_rate(f->g, m, src, S(""), t + 500).action, GUARD_REPLY);
	/* a long pause refills up to the burst only */
	t += 60000;
	for (int i = 0; i < 3; i++)
		assert_int_equal(guard_rate(f->g, m, src, S(""), t).action, GUARD_PASS);
	assert_int_equal(guard_rate(f->g, m, src, S(""), t).action, GUARD_REPLY);
	/* classes are separate: INVITE and OPTIONS still pass; ACK never counts */
	struct msg y;
	assert_int_equal(guard_rate(f->g, mk(&y, "INVITE", NULL), src, S(""), t).action, GUARD_PASS);
	assert_int_equal(guard_rate(f->g, mk(&y, "OPTIONS", NULL), src, S(""), t).action, GUARD_PASS);
	/* other sources are separate */
	struct addr b;
	assert_int_equal(guard_rate(f->g, m, ip(&b, "192.0.2.11"), S(""), t).action, GUARD_PASS);
	/* over_limit = drop */
	f->conf.over_limit_drop = true;
	fx_open(f, false);
	for (int i = 0; i < 3; i++)
		guard_rate(f->g, m, src, S(""), t);
	v = guard_rate(f->g, m, src, S(""), t);
	assert_int_equal(v.action, GUARD_DROP);
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_int_equal(st.c[GUARD_S_RATE_LIMITED], 1);
	assert_int_equal(st.c[GUARD_S_ALLOWED], 3);
}

static void test_user_limit_separate(void **state)
{
	struct fx *f = *state;
	f->conf.user[GUARD_C_REGISTER] = (struct guard_rate_conf){ 60, 2 }; /* 1/min, burst 2 */
	fx_open(f, false);
	struct addr a, b;
	struct msg x;
	const struct sip_msg *m = mk(&x, "REGISTER", NULL);
	/* the same user from two IPs shares one bucket */
	assert_int_equal(guard_rate(f->g, m, ip(&a, "192.0.2.1"), S("alice@example.test"), T0).action, GUARD_PASS);
	assert_int_equal(guard_rate(f->g, m, ip(&b, "192.0.2.2"), S("alice@example.test"), T0).action, GUARD_PASS);
	struct guard_verdict v = guard_rate(f->g, m, ip(&a, "192.0.2.1"), S("alice@example.test"), T0);
	assert_int_equal(v.action, GUARD_REPLY);
	assert_int_equal(v.reason, GUARD_R_RATE_USER);
	assert_int_equal(v.retry_after_s, 60); /* one interval of 1/min */
	/* another user on the same IP is not affected */
	assert_int_equal(guard_rate(f->g, m, ip(&a, "192.0.2.1"), S("bob@example.test"), T0).action, GUARD_PASS);
}

/* 200 phones behind one NAT address, each refreshing every 60 s with a
 * challenge (two REGISTERs) and an OPTIONS keepalive every 30 s, for 10
 * minutes with default settings: never limited. */
static void test_nat_office_not_limited(void **state)
{
	struct fx *f = *state;
	fx_open(f, false);
	struct addr a;
	const struct sockaddr *src = ip(&a, "198.51.100.77");
	struct msg r, o;
	const struct sip_msg *reg = mk(&r, "REGISTER", NULL);
	const struct sip_msg *opt = mk(&o, "OPTIONS", NULL);
	unsigned limited = 0, dropped = 0;
	char user[64];
	for (uint64_t ms = 0; ms < 600000; ms += 50) {
		uint64_t now = T0 + ms;
		/* phone i refreshes at i*300 ms into each minute */
		if ((ms % 60000) % 300 == 0) {
			unsigned i = (unsigned)((ms % 60000) / 300);
			snprintf(user, sizeof(user), "%u@example.test", 1000 + i);
			for (int k = 0; k < 2; k++) {
				if (guard_pre(f->g, src, 600, now).action != GUARD_PASS)
					dropped++;
				if (guard_rate(f->g, reg, src, k ? S(user) : S(""), now).action != GUARD_PASS)
					limited++;
			}
			guard_auth_ok(f->g, src, S(user), now);
		}
		if ((ms % 30000) % 150 == 0) {
			if (guard_pre(f->g, src, 400, now).action != GUARD_PASS)
				dropped++;
			if (guard_rate(f->g, opt, src, S(""), now).action != GUARD_PASS)
				limited++;
		}
	}
	assert_int_equal(limited, 0);
	assert_int_equal(dropped, 0);
}

static void test_greylist(void **state)
{
	struct fx *f = *state;
	f->conf.ip[GUARD_C_REGISTER] = (struct guard_rate_conf){ 8 * 3600, 8 };
	f->conf.greylist_divisor = 4; /* unknown: 2/s, burst 2 */
	fx_open(f, false);
	struct addr a;
	struct msg x;
	const struct sip_msg *m = mk(&x, "REGISTER", NULL);
	const struct sockaddr *src = ip(&a, "192.0.2.50");
	assert_int_equal(guard_rate(f->g, m, src, S(""), T0).action, GUARD_PASS);
	assert_int_equal(guard_rate(f->g, m, src, S(""), T0).action, GUARD_PASS);
	assert_int_equal(guard_rate(f->g, m, src, S(""), T0).action, GUARD_REPLY);
	guard_auth_ok(f->g, src, S("u@example.test"), T0);
	uint64_t t = T0 + 10000;
	for (int i = 0; i < 8; i++)
		assert_int_equal(guard_rate(f->g, m, src, S(""), t).action, GUARD_PASS);
	assert_int_equal(guard_rate(f->g, m, src, S(""), t).action, GUARD_REPLY);
}

/* ---- bans ---- */

static void test_ban_after_failures(void **state)
{
	struct fx *f = *state;
	fx_open(f, false);
	struct addr a;
	const struct sockaddr *src = ip(&a, "203.0.113.9");
	for (int i = 0; i < 4; i++) {
		assert_int_equal(guard_auth_failed(f->g, src, S(""), GUARD_AF_BAD_CREDENTIALS, T0 + (uint64_t)i * 1000), 0);
		assert_int_equal(guard_pre(f->g, src, 500, T0 + (uint64_t)i * 1000).action, GUARD_PASS);
	}
	assert_int_equal(guard_auth_failed(f->g, src, S(""), GUARD_AF_NC_REPLAY, T0 + 5000), GUARD_BANNED_IP);
	struct guard_verdict v = guard_pre(f->g, src, 500, T0 + 5001);
	assert_int_equal(v.action, GUARD_DROP);
	assert_int_equal(v.reason, GUARD_R_BANNED_IP);
	assert_true(guard_ip_banned(f->g, src, T0 + 5001));
	struct guard_event ev[4];
	assert_int_equal(drain(f->g, ev, 4), 1);
	assert_int_equal(ev[0].type, GUARD_EV_BAN);
	assert_false(ev[0].user);
	assert_string_equal(ev[0].target, "203.0.113.9");
	assert_int_equal(ev[0].reason, GUARD_R_AUTH_FAILURES);
	assert_int_equal(ev[0].duration_s, 600);
	/* further failures while banned do not ban again */
	assert_int_equal(guard_auth_failed(f->g, src, S(""), GUARD_AF_BAD_CREDENTIALS, T0 + 6000), 0);
	/* IPv4-mapped IPv6 is the same source */
	struct addr m6;
	assert_int_equal(guard_pre(f->g, ip(&m6, "::ffff:203.0.113.9"), 500, T0 + 7000).action, GUARD_DROP);
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_int_equal(st.ip_bans, 1);
	assert_int_equal(st.c[GUARD_S_BANNED_IP_DROP], 2);
	assert_int_equal(st.c[GUARD_S_AUTH_FAILURES], 6);
}

static void test_window_slides(void **state)
{
	struct fx *f = *state;
	fx_open(f, false);
	struct addr a;
	const struct sockaddr *src = ip(&a, "203.0.113.20");
	/* 4 failures at 0..3 s, then one every 20 s: the window (60 s) never
	 * holds 5 until they come closer together */
	uint64_t t[] = { 0, 1, 2, 3, 61, 62, 63, 81 };
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(guard_auth_failed(f->g, src, S(""), 0, T0 + t[i] * 1000), 0);
	/* 61, 62, 63, 81 and now 120 lie within 60 s of each other */
	assert_int_equal(guard_auth_failed(f->g, src, S(""), 0, T0 + 120 * 1000), GUARD_BANNED_IP);
}

static void test_escalation_and_expiry(void **state)
{
	struct fx *f = *state;
	f->conf.ban_after = 2;
	f->conf.ban_time_s = 10;
	f->conf.ban_max_time_s = 100;
	f->conf.ban_escalation = 4;
	fx_open(f, false);
	struct addr a;
	const struct sockaddr *src = ip(&a, "203.0.113.30");
	struct guard_event ev[8];
	uint64_t t = T0;
	uint32_t want[] = { 10, 40, 100, 100 };
	for (int round = 0; round < 4; round++) {
		guard_auth_failed(f->g, src, S(""), 0, t);
		assert_int_equal(guard_auth_failed(f->g, src, S(""), 0, t + 1), GUARD_BANNED_IP);
		assert_int_equal(drain(f->g, ev, 8), 1);
		assert_int_equal(ev[0].duration_s, want[round]);
		assert_int_equal(ev[0].offences, round + 1);
		uint64_t end = t + 1 + want[round] * 1000ull;
		assert_int_equal(guard_pre(f->g, src, 100, end - 1).action, GUARD_DROP);
		/* expired bans stop applying at once, and tick reports them */
		assert_int_equal(guard_pre(f->g, src, 100, end).action, GUARD_PASS);
		guard_tick(f->g, end);
		assert_int_equal(drain(f->g, ev, 8), 1);
		assert_int_equal(ev[0].type, GUARD_EV_UNBAN);
		assert_int_equal(ev[0].reason, GUARD_R_EXPIRED);
		t = end + 1000;
	}
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_int_equal(st.ip_bans, 0);
	/* offences are forgotten after ban_forget */
	t += (uint64_t)f->conf.ban_forget_s * 1000 + 1000;
	guard_auth_failed(f->g, src, S(""), 0, t);
	guard_auth_failed(f->g, src, S(""), 0, t);
	assert_int_equal(drain(f->g, ev, 8), 1);
	assert_int_equal(ev[0].duration_s, 10);
}

static void test_trusted_never_banned(void **state)
{
	struct fx *f = *state;
	char why[100];
	assert_int_equal(guard_conf_key(&f->conf, "trusted", "10.1.0.0/16, 2001:db8:aa::/48", why, sizeof(why)), 0);
	f->conf.flood_pps = 5;
	f->conf.flood_burst = 5;
	f->conf.ip[GUARD_C_REGISTER] = (struct guard_rate_conf){ 1, 1 };
	fx_open(f, false);
	struct addr a, b;
	struct msg x, y;
	const struct sockaddr *src = ip(&a, "10.1.2.3");
	for (int i = 0; i < 100; i++) {
		assert_int_equal(guard_auth_failed(f->g, src, S("pbx@example.test"), 0, T0 + (uint64_t)i), 0);
		assert_int_equal(guard_pre(f->g, src, 100, T0 + (uint64_t)i).action, GUARD_PASS);
		assert_int_equal(guard_rate(f->g, mk(&x, "REGISTER", NULL), src, S(""), T0).action, GUARD_PASS);
	}
	/* a scanner UA from a trusted net is not dropped nor banned */
	assert_int_equal(guard_filter(f->g, mk(&y, "OPTIONS", "friendly-scanner"), src, T0).action, GUARD_PASS);
	assert_false(guard_ip_banned(f->g, src, T0));
	/* an admin ban of a trusted address is refused */
	assert_int_equal(guard_ban(f->g, "10.1.9.9", false, 60, GUARD_R_ADMIN, T0), -EPERM);
	assert_int_equal(guard_ban(f->g, "2001:db8:aa:1::5", false, 60, GUARD_R_ADMIN, T0), -EPERM);
	/* the user of a trusted source is not banned when used from trusted */
	const struct sockaddr *v6 = ip(&b, "2001:db8:aa::1");
	assert_int_equal(guard_pre(f->g, v6, 100, T0).action, GUARD_PASS);
}

static void test_user_ban(void **state)
{
	struct fx *f = *state;
	fx_open(f, false);
	struct addr a, known, other;
	const struct sockaddr *office = ip(&known, "198.51.100.5");
	guard_auth_ok(f->g, office, S("carol@example.test"), T0);
	/* five guesses from five addresses: no IP ban, but a user ban */
	int res = 0;
	for (int i = 0; i < 5; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "203.0.113.%d", 100 + i);
		res |= guard_auth_failed(f->g, ip(&a, addr), S("carol@example.test"), 0, T0 + (uint64_t)i);
	}
	assert_int_equal(res, GUARD_BANNED_USER);
	assert_true(guard_user_banned(f->g, S("carol@example.test"), ip(&other, "192.0.2.99"), T0 + 10));
	/* not from the office where carol's phone authenticated before */
	assert_false(guard_user_banned(f->g, S("carol@example.test"), office, T0 + 10));
	assert_false(guard_user_banned(f->g, S("dave@example.test"), ip(&other, "192.0.2.99"), T0 + 10));
	struct guard_event ev[4];
	assert_int_equal(drain(f->g, ev, 4), 1);
	assert_true(ev[0].user);
	assert_string_equal(ev[0].target, "carol@example.test");
	assert_int_equal(guard_unban(f->g, "carol@example.test", true), 0);
	assert_false(guard_user_banned(f->g, S("carol@example.test"), ip(&other, "192.0.2.99"), T0 + 10));
}

static void test_ipv6_prefix(void **state)
{
	struct fx *f = *state;
	fx_open(f, false);
	struct addr a, b, c;
	assert_int_equal(guard_ban(f->g, "2001:db8:1:2::7", false, 60, GUARD_R_ADMIN, T0), 0);
	/* the whole /64 is banned, the next /64 is not */
	assert_int_equal(guard_pre(f->g, ip(&a, "2001:db8:1:2:ffff::1"), 100, T0).action, GUARD_DROP);
	assert_int_equal(guard_pre(f->g, ip(&b, "2001:db8:1:3::7"), 100, T0).action, GUARD_PASS);
	struct guard_event ev[2];
	assert_int_equal(drain(f->g, ev, 2), 1);
	assert_string_equal(ev[0].target, "2001:db8:1:2::/64");
	assert_int_equal(guard_unban(f->g, "2001:db8:1:2::/64", false), 0);
	assert_int_equal(guard_pre(f->g, ip(&c, "2001:db8:1:2::7"), 100, T0).action, GUARD_PASS);
}

/* ---- pre-parse ---- */

static void test_flood_and_size(void **state)
{
	struct fx *f = *state;
	f->conf.flood_pps = 10;
	f->conf.flood_burst = 10;
	f->conf.max_datagram = 1500;
	fx_open(f, false);
	struct addr a;
	const struct sockaddr *src = ip(&a, "203.0.113.40");
	struct guard_verdict v = guard_pre(f->g, src, 1501, T0);
	assert_int_equal(v.action, GUARD_DROP);
	assert_int_equal(v.reason, GUARD_R_TOO_BIG);
	for (int i = 0; i < 10; i++)
		assert_int_equal(guard_pre(f->g, src, 100, T0).action, GUARD_PASS);
	v = guard_pre(f->g, src, 100, T0);
	assert_int_equal(v.action, GUARD_DROP);
	assert_int_equal(v.reason, GUARD_R_FLOOD);
	assert_false(v.banned);
	/* refills at 10/s */
	assert_int_equal(guard_pre(f->g, src, 100, T0 + 100).action, GUARD_PASS);
	/* sustained: a second's worth (10) over budget bans */
	bool banned = false;
	for (int i = 0; i < 10 && !banned; i++)
		banned = guard_pre(f->g, src, 100, T0 + 100).banned;
	assert_true(banned);
	v = guard_pre(f->g, src, 100, T0 + 100);
	assert_int_equal(v.reason, GUARD_R_BANNED_IP);

	f->conf.flood_action = GUARD_FLOOD_403;
	f->conf.flood_ban = false;
	fx_open(f, false);
	for (int i = 0; i < 10; i++)
		guard_pre(f->g, src, 100, T0);
	v = guard_pre(f->g, src, 100, T0);
	assert_int_equal(v.action, GUARD_REPLY);
	assert_int_equal(v.status, 403);
	f->conf.flood_action = GUARD_FLOOD_TARPIT;
	fx_open(f, false);
	for (int i = 0; i < 10; i++)
		guard_pre(f->g, src, 100, T0);
	v = guard_pre(f->g, src, 100, T0);
	assert_int_equal(v.action, GUARD_TARPIT);
	assert_int_equal(v.delay_ms, 2000);
}

/* ---- filters ---- */

static void test_scanner_ua(void **state)
{
	struct fx *f = *state;
	fx_open(f, false);
	static const struct { const char *ua; bool scanner; } rows[] = {
		{ "friendly-scanner", true },
		{ "sipvicious", true },
		{ "SIPVicious 0.3.3", true },
		{ "sipcli/v1.8", true },
		{ "VaxSIPUserAgent/3.1", true },
		{ "pplsip", true },
		{ "PortSIP VoIP SDK 11.2", true },
		{ "Yealink SIP-T46S 66.86.0.15", false },
		{ "Linphone/5.0", false },
		{ "sipsak 0.9.8", false },
		{ "baresip v2.9.0 (x86_64/linux)", false },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct addr a;
		struct msg x;
		char addr[32];
		snprintf(addr, sizeof(addr), "203.0.113.%zu", 150 + i);
		const struct sockaddr *src = ip(&a, addr);
		struct guard_verdict v = guard_filter(f->g, mk(&x, "OPTIONS", rows[i].ua), src, T0);
		if (rows[i].scanner) {
			assert_int_equal(v.action, GUARD_DROP);
			assert_int_equal(v.reason, GUARD_R_SCANNER);
			assert_true(v.banned);
			assert_int_equal(guard_pre(f->g, src, 100, T0 + 1).action, GUARD_DROP);
		} else {
			if (v.action != GUARD_PASS)
				fail_msg("UA \"%s\" refused", rows[i].ua);
			assert_int_equal(guard_pre(f->g, src, 100, T0 + 1).action, GUARD_PASS);
		}
	}
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_int_equal(st.c[GUARD_S_SCANNER], 7);
	assert_int_equal(st.ip_bans, 7);
}

static void test_methods(void **state)
{
	struct fx *f = *state;
	fx_open(f, false);
	struct addr a;
	struct msg x;
	const struct sockaddr *src = ip(&a, "192.0.2.60");
	static const struct { const char *method; enum guard_action act; } rows[] = {
		{ "INVITE", GUARD_PASS }, { "ACK", GUARD_PASS }, { "BYE", GUARD_PASS },
		{ "CANCEL", GUARD_PASS }, { "OPTIONS", GUARD_PASS }, { "REGISTER", GUARD_PASS },
		{ "INFO", GUARD_PASS }, { "UPDATE", GUARD_PASS }, { "PRACK", GUARD_PASS },
		{ "SUBSCRIBE", GUARD_PASS }, { "NOTIFY", GUARD_PASS }, { "REFER", GUARD_PASS },
		{ "MESSAGE", GUARD_PASS }, { "PUBLISH", GUARD_REPLY }, { "FOOBAR", GUARD_REPLY },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct guard_verdict v = guard_filter(f->g, mk(&x, rows[i].method, NULL), src, T0);
		if (v.action != rows[i].act)
			fail_msg("%s: action %d", rows[i].method, v.action);
		if (v.action == GUARD_REPLY) {
			assert_int_equal(v.status, 405);
			assert_int_equal(v.reason, GUARD_R_METHOD);
		}
	}
	char allow[256];
	assert_true(guard_allow_hdr(f->g, allow, sizeof(allow)) > 0);
	assert_string_equal(allow, "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, "
				   "PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE\r\n");
	char why[100];
	assert_int_equal(guard_conf_key(&f->conf, "methods", "REGISTER, OPTIONS", why, sizeof(why)), 0);
	assert_int_equal(guard_conf_key(&f->conf, "unknown_method", "drop", why, sizeof(why)), 0);
	fx_open(f, false);
	assert_int_equal(guard_filter(f->g, mk(&x, "INVITE", NULL), src, T0).action, GUARD_DROP);
	assert_int_equal(guard_filter(f->g, mk(&x, "REGISTER", NULL), src, T0).action, GUARD_PASS);
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_int_equal(st.c[GUARD_S_METHOD], 1);
}

static void test_geo(void **state)
{
	struct fx *f = *state;
	char db[128], cmd[512];
	snprintf(db, sizeof(db), "%s/geo.mmdb", f->dir);
	snprintf(cmd, sizeof(cmd),
		 "perl '%s' '%s' 198.51.100.0/24=DE 203.0.113.0/24=CN 2001:db8:cc::/48=CN 2>/dev/null",
		 mkmmdb, db);
	int rc = system(cmd);
	if (rc != 0) {
		print_message("geo test skipped: mkmmdb.pl failed (libmaxmind-db-writer-perl missing?)\n");
		skip();
	}
	char why[100];
	assert_int_equal(guard_conf_key(&f->conf, "geo_db", db, why, sizeof(why)), 0);
	assert_int_equal(guard_conf_key(&f->conf, "geo_deny", "CN", why, sizeof(why)), 0);
	fx_open(f, false);
	assert_true(guard_geo_enabled(f->g));
	struct addr a;
	struct msg x;
	static const struct { const char *src, *method; enum guard_action act; } rows[] = {
		{ "203.0.113.7", "REGISTER", GUARD_REPLY },
		{ "203.0.113.7", "INVITE", GUARD_REPLY },
		{ "203.0.113.7", "OPTIONS", GUARD_PASS },     /* only REGISTER and INVITE */
		{ "2001:db8:cc:1::9", "REGISTER", GUARD_REPLY },
		{ "198.51.100.7", "REGISTER", GUARD_PASS },
		{ "127.0.0.1", "REGISTER", GUARD_PASS },      /* unknown: allowed by default */
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct guard_verdict v = guard_filter(f->g, mk(&x, rows[i].method, NULL), ip(&a, rows[i].src), T0);
		if (v.action != rows[i].act)
			fail_msg("%s %s: action %d", rows[i].method, rows[i].src, v.action);
		if (v.action == GUARD_REPLY) {
			assert_int_equal(v.status, 403);
			assert_int_equal(v.reason, GUARD_R_GEO);
		}
	}
	/* allow-list: only DE; unknown denied; silent drop */
	guard_conf_key(&f->conf, "geo_deny", "", why, sizeof(why));
	guard_conf_key(&f->conf, "geo_allow", "DE", why, sizeof(why));
	guard_conf_key(&f->conf, "geo_unknown", "deny", why, sizeof(why));
	guard_conf_key(&f->conf, "geo_action", "drop", why, sizeof(why));
	fx_open(f, false);
	assert_int_equal(guard_filter(f->g, mk(&x, "REGISTER", NULL), ip(&a, "198.51.100.7"), T0).action, GUARD_PASS);
	assert_int_equal(guard_filter(f->g, mk(&x, "REGISTER", NULL), ip(&a, "203.0.113.7"), T0).action, GUARD_DROP);
	assert_int_equal(guard_filter(f->g, mk(&x, "INVITE", NULL), ip(&a, "127.0.0.1"), T0).action, GUARD_DROP);
	/* a missing DB fails guard_open */
	snprintf(f->conf.geo_db, sizeof(f->conf.geo_db), "%s/none.mmdb", f->dir);
	guard_close(f->g);
	int err = 0;
	f->g = guard_open(&f->conf, NULL, &err);
	assert_null(f->g);
	assert_int_equal(err, -ENOENT);
	f->conf.geo_db[0] = '\0';
	fx_open(f, false);
	assert_false(guard_geo_enabled(f->g));
}

/* ---- persistence and the CLI path ---- */

static void test_persist_restart(void **state)
{
	struct fx *f = *state;
	fx_open(f, true);
	struct addr a, b;
	const struct sockaddr *src = ip(&a, "203.0.113.70");
	for (int i = 0; i < 5; i++)
		guard_auth_failed(f->g, src, S("eve@example.test"), 0, T0 + (uint64_t)i);
	assert_true(guard_ip_banned(f->g, src, T0 + 10));
	assert_true(guard_user_banned(f->g, S("eve@example.test"), ip(&b, "192.0.2.1"), T0 + 10));
	fx_open(f, true); /* close (drains the writer) and open again */
	assert_true(guard_ip_banned(f->g, src, T0 + 10));
	assert_true(guard_user_banned(f->g, S("eve@example.test"), ip(&b, "192.0.2.1"), T0 + 10));
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_int_equal(st.ip_bans, 1);
	assert_int_equal(st.user_bans, 1);
	/* escalation remembers the offence across the restart */
	uint64_t t = T0 + 601 * 1000;
	assert_false(guard_ip_banned(f->g, src, t));
	guard_tick(f->g, t);
	struct guard_event ev[8];
	drain(f->g, ev, 8);
	for (int i = 0; i < 5; i++)
		guard_auth_failed(f->g, src, S(""), 0, t + (uint64_t)i);
	unsigned n = drain(f->g, ev, 8);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].offences, 2);
	assert_int_equal(ev[0].duration_s, 2400);
}

struct cli_rows {
	unsigned n;
	struct guard_ban_row rows[16];
};

static int collect(void *ctx, const struct guard_ban_row *r)
{
	struct cli_rows *c = ctx;
	if (c->n < 16)
		c->rows[c->n++] = *r;
	return 0;
}

static void test_cli_changes_applied(void **state)
{
	struct fx *f = *state;
	fx_open(f, true);
	struct guard_db *cli;
	char path[128];
	snprintf(path, sizeof(path), "%s/bans.db", f->dir);
	assert_int_equal(gdb_open(path, &cli), 0);
	struct addr a, b, c;
	const struct sockaddr *x = ip(&a, "203.0.113.80");
	const struct sockaddr *y = ip(&b, "203.0.113.81");
	uint64_t now = guard_now_ms();
	guard_tick(f->g, now);

	/* add from the CLI */
	struct guard_ban_row r = { .until_ms = (int64_t)now + 3600000, .created_ms = (int64_t)now, .offences = 1 };
	snprintf(r.target, sizeof(r.target), "203.0.113.80");
	snprintf(r.reason, sizeof(r.reason), "admin");
	assert_int_equal(gdb_put(cli, &r), 0);
	assert_false(guard_ip_banned(f->g, x, now));
	guard_sync(f->g);
	assert_true(guard_ip_banned(f->g, x, now));
	struct guard_event ev[8];
	assert_int_equal(drain(f->g, ev, 8), 1);
	assert_int_equal(ev[0].type, GUARD_EV_BAN);
	assert_int_equal(ev[0].reason, GUARD_R_ADMIN);

	/* a ban the guard made itself lands in the same DB */
	assert_int_equal(guard_ban(f->g, "203.0.113.81", false, 0, GUARD_R_SCANNER, now), 0);
	drain(f->g, ev, 8);
	guard_sync(f->g);
	struct cli_rows rows = { 0 };
	assert_int_equal(gdb_each(cli, (int64_t)now, collect, &rows), 0);
	assert_int_equal(rows.n, 2);

	/* del from the CLI */
	assert_int_equal(gdb_del(cli, false, "203.0.113.80"), 1);
	guard_sync(f->g);
	assert_false(guard_ip_banned(f->g, x, now));
	assert_true(guard_ip_banned(f->g, y, now));
	assert_int_equal(drain(f->g, ev, 8), 1);
	assert_int_equal(ev[0].type, GUARD_EV_UNBAN);
	assert_string_equal(ev[0].target, "203.0.113.80");

	/* a trusted address written by hand is never applied */
	gdb_close(cli);
	guard_close(f->g);
	f->g = NULL;
	char why[64];
	assert_int_equal(guard_conf_key(&f->conf, "trusted", "203.0.113.82", why, sizeof(why)), 0);
	fx_open(f, true);
	assert_int_equal(gdb_open(path, &cli), 0);
	snprintf(r.target, sizeof(r.target), "203.0.113.82");
	assert_int_equal(gdb_put(cli, &r), 0);
	guard_sync(f->g);
	assert_false(guard_ip_banned(f->g, ip(&c, "203.0.113.82"), now));
	assert_true(guard_ip_banned(f->g, y, now)); /* restored from disk */

	/* flush */
	assert_true(gdb_flush(cli) >= 2);
	guard_sync(f->g);
	assert_false(guard_ip_banned(f->g, y, now));
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_int_equal(st.ip_bans, 0);
	gdb_close(cli);
}

/* ---- bounds and threads ---- */

static void test_table_bounded(void **state)
{
	struct fx *f = *state;
	f->conf.ip_table_size = 4096;
	fx_open(f, false);
	struct addr a;
	struct msg x;
	const struct sip_msg *m = mk(&x, "REGISTER", NULL);
	for (uint32_t i = 0; i < 1000000; i++) {
		uint32_t n = 0x0b000000u + i; /* 11.0.0.0 onwards */
		guard_pre(f->g, ip4n(&a, n), 100, T0 + i / 1000);
		if (i % 16 == 0)
			guard_rate(f->g, m, ip4n(&a, n), S(""), T0 + i / 1000);
	}
	unsigned n = guard_table_count(f->g, false);
	assert_true(n <= 4096 * 5 / 4); /* per-shard headroom (guard.c shard_cap) */
	assert_true(n >= 4096 / 2);
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_true(st.c[GUARD_S_EVICTIONS] >= 1000000 - 4096 * 5 / 4);
	/* the ban table is bounded too: more bans than slots keep the longest */
	for (uint32_t i = 0; i < 20000; i++) {
		char t[32];
		snprintf(t, sizeof(t), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		guard_ban(f->g, t, false, 60 + i, GUARD_R_ADMIN, T0);
	}
	guard_stats(f->g, &st);
	assert_true(st.ip_bans <= 4096 * 5 / 4);
	assert_true(st.ip_bans >= 4096);
	assert_true(guard_ip_banned(f->g, ip(&a, "10.0.78.31"), T0)); /* i = 19999 */
}

struct thr {
	struct sw_guard *g;
	unsigned id;
	unsigned dropped;
};

static void *hammer(void *arg)
{
	struct thr *t = arg;
	struct addr a;
	struct msg x;
	const struct sip_msg *m = mk(&x, t->id ? "INVITE" : "REGISTER", NULL);
	for (uint32_t i = 0; i < 200000; i++) {
		uint32_t n = 0x0c000000u + (i % 5000);
		uint64_t now = T0 + i / 10;
		const struct sockaddr *src = ip4n(&a, n);
		struct guard_verdict v = guard_pre(t->g, src, 200, now);
		if (v.action != GUARD_PASS) {
			t->dropped += v.reason == GUARD_R_BANNED_IP;
			continue;
		}
		guard_rate(t->g, m, src, S(i % 3 ? "u@example.test" : ""), now);
		if (i % 7 == 0)
			guard_auth_failed(t->g, src, S("u@example.test"), 0, now);
		if (i % 101 == 0)
			guard_auth_ok(t->g, src, S("v@example.test"), now);
		if (i % 1009 == 0) {
			char tgt[32];
			snprintf(tgt, sizeof(tgt), "12.0.%u.%u", (n >> 8) & 255, n & 255);
			guard_unban(t->g, tgt, false);
		}
		if (t->id == 0 && i % 5000 == 0)
			guard_tick(t->g, now);
	}
	return NULL;
}

static void test_two_threads(void **state)
{
	struct fx *f = *state;
	fx_open(f, true);
	pthread_t th[2];
	struct thr t[2] = { { f->g, 0, 0 }, { f->g, 1, 0 } };
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &t[i]), 0);
	struct guard_event ev[64];
	for (int i = 0; i < 50; i++) {
		drain(f->g, ev, 64);
		usleep(1000);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	guard_sync(f->g);
	struct guard_stats st;
	guard_stats(f->g, &st);
	assert_int_equal(st.c[GUARD_S_BANNED_IP_DROP], t[0].dropped + t[1].dropped);
	assert_true(st.c[GUARD_S_BANS] > 0);
	assert_true(st.ip_bans <= 4096 * 5 / 4);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		mkmmdb = argv[1];
	T0 = guard_now_ms();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_keys),
		cmocka_unit_test_setup_teardown(test_bucket_rate_burst_refill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_limit_separate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nat_office_not_limited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_greylist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ban_after_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_slides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escalation_and_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trusted_never_banned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_ban, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood_and_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scanner_ua, setup, teardown),
		cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_geo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_changes_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
