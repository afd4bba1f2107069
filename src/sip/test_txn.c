/* Unit tests for server transactions (txn.h), in simulated time. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "sip/build.h"
#include "sip/parse.h"
#include "sip/txn.h"

/* Test messages go through the real parser (parse.h), as on the wire. */
struct tmsg {
	char text[8192];
	struct sip_hdr hdrs[32];
	struct sip_msg m;
};

static void tmsg_parse(struct tmsg *t, const char *text)
{
	struct sip_limits lim;
	struct sip_perr err;
	size_t len = strlen(text);
	assert_true(len < sizeof(t->text));
	memcpy(t->text, text, len + 1);
	sip_limits_default(&lim);
	ssize_t n = sip_parse(t->text, len, SIP_PARSE_DGRAM, &lim, t->hdrs,
			      sizeof(t->hdrs) / sizeof(t->hdrs[0]), &t->m, &err);
	if (n < 0)
		fail_msg("sip_parse: %zd at %zu: %s", n, err.off, err.why ? err.why : "");
	assert_true(t->m.replyable);
}

static void sa4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *in = (void *)ss;
	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
}

static void sa6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in6 *in6 = (void *)ss;
	memset(ss, 0, sizeof(*ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
}

static const struct sw_hkey hkey = { 0x0123456789abcdefull, 0xfedcba9876543210ull };
#define T1 500u
#define T2 4000u
#define T4 5000u

/* A request with the fields transaction matching reads. branch NULL = none. */
static void mkreq(struct tmsg *t, const char *method, const char *branch, const char *host,
		  const char *callid, const char *totag, unsigned cseq)
{
	char text[4096];
	char via[2200], to[512];
	if (branch)
		snprintf(via, sizeof(via), "SIP/2.0/UDP %s;branch=%s", host, branch);
	else
		snprintf(via, sizeof(via), "SIP/2.0/UDP %s", host);
	if (totag)
		snprintf(to, sizeof(to), "<sip:bob@example.com>;tag=%s", totag);
	else
		snprintf(to, sizeof(to), "<sip:bob@example.com>");
	snprintf(text, sizeof(text),
		 "%s sip:bob@example.com SIP/2.0\r\n"
		 "Via: %s\r\n"
		 "From: <sip:alice@example.com>;tag=ft1\r\n"
		 "To: %s\r\n"
		 "Call-ID: %s\r\n"
		 "CSeq: %u %s\r\n"
		 "\r\n",
		 method, via, to, callid, cseq, method);
	tmsg_parse(t, text);
}

struct sent {
	unsigned n;
	uint64_t at[64];
	size_t len;
	char last[64];
};
static uint64_t g_now;

static void on_send(void *ctx, const struct sip_txn_dest *d, const char *buf, size_t len)
{
	struct sent *s = ctx;
	(void)d;
	if (s->n < 64)
		s->at[s->n] = g_now;
	s->n++;
	s->len = len;
	memcpy(s->last, buf, len < sizeof(s->last) ? len : sizeof(s->last));
}

static struct sip_txn_table *mktable(unsigned cap)
{
	struct sip_timers tm = { T1, T2, T4 };
	struct sip_txn_table *t = sip_txn_table_new(cap, &hkey, &tm);
	assert_non_null(t);
	return t;
}

static struct sip_txn_dest dest(bool reliable)
{
	struct sip_txn_dest d;
	memset(&d, 0, sizeof(d));
	sa4(&d.addr, "192.0.2.1", 5060);
	d.alen = sizeof(struct sockaddr_in);
	d.reliable = reliable;
	d.fd = -1;
	return d;
}

/* tick at `now` and return the delay */
static uint64_t tick(struct sip_txn_table *t, uint64_t now, struct sent *s)
{
	g_now = now;
	return sip_txn_tick(t, now, on_send, s);
}

static void respond(struct sip_txn_table *t, struct sip_txn *x, const char *text,
		    unsigned status, uint64_t now)
{
	assert_int_equal(sip_txn_respond(t, x, text, strlen(text), status, now), 0);
}

static void test_defaults_and_new(void **state)
{
	(void)state;
	struct sip_timers tm;
	sip_timers_default(&tm);
	assert_int_equal(tm.t1_ms, 500);
	assert_int_equal(tm.t2_ms, 4000);
	assert_int_equal(tm.t4_ms, 5000);
	assert_null(sip_txn_table_new(0, &hkey, &tm));
	struct sip_txn_table *t = sip_txn_table_new(8, &hkey, NULL);
	assert_non_null(t);
	assert_int_equal(sip_txn_count(t), 0);
	assert_int_equal(sip_txn_tick(t, 0, on_send, NULL), UINT64_MAX);
	sip_txn_table_free(t);
	sip_txn_table_free(NULL);
}

static void test_invite_unreliable_g_h(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg m;
	struct sip_txn *x, *y;
	struct sent s = { 0 };

	mkreq(&m, "INVITE", "z9hG4bKinv1", "pc.example.com", "c1@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	assert_true(sip_txn_is_invite(x));
	assert_int_equal(sip_txn_state(x), SIP_TXN_PROCEEDING);
	assert_int_equal(sip_txn_count(t), 1);
	assert_int_equal(sip_txn_dest(x)->reliable, false);
	size_t len;
	assert_null(sip_txn_reply(t, x, &len));
	assert_int_equal(len, 0);
	/* retransmission before any reply: absorbed */
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 10, &y), SIP_TXN_PENDING);
	assert_ptr_equal(x, y);
	/* provisional: stays Proceeding, retransmissions get it again */
	respond(t, x, "SIP/2.0 100 Trying\r\n\r\n", 100, 20);
	assert_int_equal(sip_txn_state(x), SIP_TXN_PROCEEDING);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 30, &y), SIP_TXN_RETRANSMIT);
	assert_ptr_equal(x, y);
	assert_memory_equal(sip_txn_reply(t, y, &len), "SIP/2.0 100", 11);
	respond(t, x, "SIP/2.0 180 Ringing\r\n\r\n", 180, 40);
	assert_memory_equal(sip_txn_reply(t, x, &len), "SIP/2.0 180", 11);

	/* final non-2xx at t=1000: Completed, Timer G from T1 doubling to T2, H = 64*T1 */
	respond(t, x, "SIP/2.0 486 Busy Here\r\n\r\n", 486, 1000);
	assert_int_equal(sip_txn_state(x), SIP_TXN_COMPLETED);
	assert_int_equal(sip_txn_respond(t, x, "X", 1, 500, 1000), -EALREADY);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 1001, &y), SIP_TXN_RETRANSMIT);
	assert_memory_equal(sip_txn_reply(t, y, &len), "SIP/2.0 486", 11);

	assert_int_equal(tick(t, 1000, &s), T1);
	assert_int_equal(s.n, 0);
	uint64_t now = 1000;
	for (;;) {
		uint64_t dl = tick(t, now, &s);
		if (dl == UINT64_MAX)
			break;
		now += dl;
	}
	/* G: +500, +1000, +2000, then every 4000 (T2) until H at +32000 */
	static const uint64_t want[] = { 1500, 2500, 4500, 8500, 12500, 16500, 20500, 24500, 28500, 32500 };
	assert_int_equal(s.n, sizeof(want) / sizeof(want[0]));
	for (unsigned i = 0; i < s.n; i++)
		assert_int_equal(s.at[i], want[i]);
	assert_memory_equal(s.last, "SIP/2.0 486", 11);
	assert_int_equal(now, 1000 + 64 * T1); /* Timer H */
	assert_int_equal(sip_txn_count(t), 0);
	/* gone: the same request is new again */
	assert_int_equal(sip_txn_receive(t, &m.m, &d, now + 1, &y), SIP_TXN_NEW);
	sip_txn_table_free(t);
}

static void test_invite_ack_confirmed_timer_i(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg inv, ack;
	struct sip_txn *x, *y;
	struct sent s = { 0 };

	mkreq(&inv, "INVITE", "z9hG4bKinv2", "pc.example.com", "c2@h", NULL, 7);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 0, &x), SIP_TXN_NEW);
	respond(t, x, "SIP/2.0 407 Proxy Authentication Required\r\n\r\n", 407, 0);
	assert_int_equal(tick(t, 500, &s), 1000); /* G fired once, next in 2*T1 */
	assert_int_equal(s.n, 1);

	/* ACK for the non-2xx: same branch, method ACK */
	mkreq(&ack, "ACK", "z9hG4bKinv2", "pc.example.com", "c2@h", "servertag", 7);
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 600, &y), SIP_TXN_ACK_ABSORBED);
	assert_ptr_equal(x, y);
	assert_int_equal(sip_txn_state(x), SIP_TXN_CONFIRMED);
	/* retransmitted ACK and INVITE are absorbed in Confirmed */
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 700, &y), SIP_TXN_ACK_ABSORBED);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 700, &y), SIP_TXN_PENDING);
	/* Timer G stopped; Timer I = T4 from the ACK */
	assert_int_equal(tick(t, 1500, &s), 600 + T4 - 1500);
	assert_int_equal(s.n, 1);
	tick(t, 600 + T4 - 1, &s);
	assert_int_equal(sip_txn_count(t), 1);
	assert_int_equal(tick(t, 600 + T4, &s), UINT64_MAX);
	assert_int_equal(sip_txn_count(t), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 600 + T4, &y), SIP_TXN_NO_MATCH);
	assert_null(y);
	sip_txn_table_free(t);
}

static void test_invite_reliable(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(true);
	struct tmsg inv, ack;
	struct sip_txn *x, *y;
	struct sent s = { 0 };

	/* no Timer G on a reliable transport; H still runs */
	mkreq(&inv, "INVITE", "z9hG4bKrel1", "pc.example.com", "r1@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 0, &x), SIP_TXN_NEW);
	assert_true(sip_txn_dest(x)->reliable);
	respond(t, x, "SIP/2.0 603 Decline\r\n\r\n", 603, 0);
	assert_int_equal(tick(t, 0, &s), 64 * T1);
	assert_int_equal(tick(t, 64 * T1, &s), UINT64_MAX);
	assert_int_equal(s.n, 0);
	assert_int_equal(sip_txn_count(t), 0);

	/* ACK: Timer I is zero → terminated at once */
	mkreq(&inv, "INVITE", "z9hG4bKrel2", "pc.example.com", "r2@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 0, &x), SIP_TXN_NEW);
	respond(t, x, "SIP/2.0 404 Not Found\r\n\r\n", 404, 0);
	mkreq(&ack, "ACK", "z9hG4bKrel2", "pc.example.com", "r2@h", "tt", 1);
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 10, &y), SIP_TXN_ACK_ABSORBED);
	assert_int_equal(sip_txn_state(y), SIP_TXN_TERMINATED);
	assert_int_equal(sip_txn_count(t), 0);
	assert_int_equal(tick(t, 11, &s), UINT64_MAX);
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 12, &y), SIP_TXN_NO_MATCH);
	sip_txn_table_free(t);
}

static void test_invite_2xx_terminates(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg inv, ack;
	struct sip_txn *x, *y;
	struct sent s = { 0 };

	mkreq(&inv, "INVITE", "z9hG4bKok1", "pc.example.com", "ok@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 0, &x), SIP_TXN_NEW);
	respond(t, x, "SIP/2.0 100 Trying\r\n\r\n", 100, 0);
	respond(t, x, "SIP/2.0 200 OK\r\n\r\n", 200, 5);
	/* §17.2.1: Terminated at once; the TU retransmits the 2xx */
	assert_int_equal(sip_txn_state(x), SIP_TXN_TERMINATED);
	assert_int_equal(sip_txn_count(t), 0);
	assert_int_equal(sip_txn_respond(t, x, "X", 1, 200, 6), -EINVAL);
	assert_int_equal(tick(t, 10, &s), UINT64_MAX);
	assert_int_equal(s.n, 0);
	/* the ACK for a 2xx has its own branch: not ours */
	mkreq(&ack, "ACK", "z9hG4bKack2xx", "pc.example.com", "ok@h", "tt", 1);
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 20, &y), SIP_TXN_NO_MATCH);
	/* even with the INVITE's branch nothing is left */
	mkreq(&ack, "ACK", "z9hG4bKok1", "pc.example.com", "ok@h", "tt", 1);
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 20, &y), SIP_TXN_NO_MATCH);
	sip_txn_table_free(t);
}

static void test_non_invite_unreliable_j(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg m;
	struct sip_txn *x, *y;
	struct sent s = { 0 };
	size_t len;

	mkreq(&m, "REGISTER", "z9hG4bKreg1", "10.1.1.1:5062", "reg@h", NULL, 3);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	assert_false(sip_txn_is_invite(x));
	assert_int_equal(sip_txn_state(x), SIP_TXN_TRYING);
	/* §17.2.2: Trying discards retransmissions */
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 100, &y), SIP_TXN_PENDING);
	respond(t, x, "SIP/2.0 100 Trying\r\n\r\n", 100, 200);
	assert_int_equal(sip_txn_state(x), SIP_TXN_PROCEEDING);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 300, &y), SIP_TXN_RETRANSMIT);
	assert_memory_equal(sip_txn_reply(t, y, &len), "SIP/2.0 100", 11);
	respond(t, x, "SIP/2.0 401 Unauthorized\r\n\r\n", 401, 1000);
	assert_int_equal(sip_txn_state(x), SIP_TXN_COMPLETED);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 2000, &y), SIP_TXN_RETRANSMIT);
	assert_memory_equal(sip_txn_reply(t, y, &len), "SIP/2.0 401", 11);
	/* Timer J = 64*T1 from the final; no retransmission timer */
	assert_int_equal(tick(t, 2000, &s), 1000 + 64 * T1 - 2000);
	tick(t, 1000 + 64 * T1 - 1, &s);
	assert_int_equal(sip_txn_count(t), 1);
	assert_int_equal(tick(t, 1000 + 64 * T1, &s), UINT64_MAX);
	assert_int_equal(sip_txn_count(t), 0);
	assert_int_equal(s.n, 0);
	sip_txn_table_free(t);
}

/* §8.2.7: a challenge sent statelessly ends the transaction at once; the
 * same request again is new (gets a fresh challenge), nothing waits for
 * Timer J. INVITE and answered transactions refuse. */
static void test_forget(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct sip_txn_stats st;
	struct tmsg m, inv;
	struct sip_txn *x, *y;
	struct sent s = { 0 };

	mkreq(&m, "REGISTER", "z9hG4bKfg1", "10.1.1.1:5062", "fg@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_forget(t, x), 0);
	assert_int_equal(sip_txn_count(t), 0);
	assert_int_equal(sip_txn_forget(t, x), -EINVAL);   /* gone */
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 10, &y), SIP_TXN_NEW);
	/* answered normally this time: kept for Timer J, cannot be forgotten */
	respond(t, y, "SIP/2.0 200 OK\r\n\r\n", 200, 10);
	assert_int_equal(sip_txn_forget(t, y), -EALREADY);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 20, &x), SIP_TXN_RETRANSMIT);
	sip_txn_get_stats(t, &st);
	assert_true(st.reply_bytes > 0);

	mkreq(&inv, "INVITE", "z9hG4bKfg2", "10.1.1.1:5062", "fg2@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 30, &x), SIP_TXN_NEW);
	enum sip_txn_state before = sip_txn_state(x);
	assert_int_equal(sip_txn_forget(t, x), -EINVAL);
	assert_int_equal(sip_txn_state(x), before);
	assert_int_equal(sip_txn_count(t), 2);
	tick(t, 10 + 64 * T1, &s);
	sip_txn_table_free(t);
}

static void test_non_invite_reliable(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(true);
	struct tmsg m;
	struct sip_txn *x, *y;
	struct sent s = { 0 };

	mkreq(&m, "OPTIONS", "z9hG4bKopt", "10.1.1.1", "o@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	respond(t, x, "SIP/2.0 200 OK\r\n\r\n", 200, 0);
	/* Timer J is zero */
	assert_int_equal(sip_txn_state(x), SIP_TXN_TERMINATED);
	assert_int_equal(sip_txn_count(t), 0);
	assert_int_equal(tick(t, 1, &s), UINT64_MAX);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 2, &y), SIP_TXN_NEW);
	sip_txn_table_free(t);
}

static void test_unanswered_dropped(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg a, b, c;
	struct sip_txn *x;
	struct sent s = { 0 };

	mkreq(&a, "INVITE", "z9hG4bKu1", "h", "u1", NULL, 1);
	mkreq(&b, "MESSAGE", "z9hG4bKu2", "h", "u2", NULL, 1);
	mkreq(&c, "INVITE", "z9hG4bKu3", "h", "u3", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &a.m, &d, 0, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 0, &x), SIP_TXN_NEW);
	/* an INVITE with a provisional waits for its TU beyond 64*T1 */
	assert_int_equal(sip_txn_receive(t, &c.m, &d, 0, &x), SIP_TXN_NEW);
	respond(t, x, "SIP/2.0 180 Ringing\r\n\r\n", 180, 100);
	assert_int_equal(tick(t, 0, &s), 64 * T1);
	tick(t, 64 * T1 - 1, &s);
	assert_int_equal(sip_txn_count(t), 3);
	tick(t, 64 * T1, &s);
	assert_int_equal(sip_txn_count(t), 1);
	assert_int_equal(sip_txn_state(x), SIP_TXN_PROCEEDING);
	assert_int_equal(s.n, 0);
	respond(t, x, "SIP/2.0 480 Temporarily Unavailable\r\n\r\n", 480, 60000);
	assert_int_equal(sip_txn_state(x), SIP_TXN_COMPLETED);
	/* ... but not for ever: a leak guard ends it */
	struct sip_txn *z;
	mkreq(&c, "INVITE", "z9hG4bKu4", "h", "u4", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &c.m, &d, 0, &z), SIP_TXN_NEW);
	respond(t, z, "SIP/2.0 183 Session Progress\r\n\r\n", 183, 0);
	tick(t, 100000, &s);
	assert_int_equal(sip_txn_state(z), SIP_TXN_PROCEEDING);
	tick(t, 1000000, &s);
	assert_int_equal(sip_txn_count(t), 0);
	sip_txn_table_free(t);
}

static void test_matching_cookie(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(16);
	struct sip_txn_dest d = dest(false);
	struct tmsg a, b;
	struct sip_txn *x, *y;

	mkreq(&a, "INVITE", "z9hG4bKm1", "PC.Example.COM:5060", "m@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &a.m, &d, 0, &x), SIP_TXN_NEW);
	/* sent-by host compares case-insensitively; other fields are not
	 * part of the RFC 3261 key */
	mkreq(&b, "INVITE", "z9hG4bKm1", "pc.example.com:5060", "different@h", NULL, 99);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 1, &y), SIP_TXN_PENDING);
	assert_ptr_equal(x, y);
	/* branch is case-sensitive */
	mkreq(&b, "INVITE", "z9hG4bKM1", "pc.example.com:5060", "m@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 2, &y), SIP_TXN_NEW);
	/* other sent-by (port, host) → another transaction */
	mkreq(&b, "INVITE", "z9hG4bKm1", "pc.example.com:5062", "m@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 3, &y), SIP_TXN_NEW);
	mkreq(&b, "INVITE", "z9hG4bKm1", "pc.example.com", "m@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 3, &y), SIP_TXN_NEW);
	/* same branch, other method → another transaction */
	mkreq(&b, "BYE", "z9hG4bKm1", "PC.Example.COM:5060", "m@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 4, &y), SIP_TXN_NEW);
	assert_false(sip_txn_is_invite(y));
	assert_int_equal(sip_txn_count(t), 5);
	/* a response never matches a server transaction */
	tmsg_parse(&b, "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKm1\r\n"
		       "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: m@h\r\nCSeq: 1 INVITE\r\n\r\n");
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 5, &y), SIP_TXN_NO_MATCH);
	assert_null(y);
	sip_txn_table_free(t);
}

static void test_matching_badbranch(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg a, b;
	struct sip_txn *x, *y;

	/* RFC 4475 badbranch: "z9hG4bK" alone is not an RFC 3261 branch, so
	 * two requests that share it are told apart by the RFC 2543 key */
	mkreq(&a, "OPTIONS", "z9hG4bK", "h.example.com", "bb1@h", NULL, 1);
	mkreq(&b, "OPTIONS", "z9hG4bK", "h.example.com", "bb2@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &a.m, &d, 0, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 0, &y), SIP_TXN_NEW);
	assert_ptr_not_equal(x, y);
	assert_int_equal(sip_txn_receive(t, &a.m, &d, 1, &y), SIP_TXN_PENDING);
	assert_ptr_equal(x, y);
	sip_txn_table_free(t);
}

static void test_rfc2543_invite_ack(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg inv, ack, other;
	struct sip_txn *x, *y;
	struct sockaddr_storage src;
	char rbuf[1024];
	struct sip_out o;

	/* no branch at all: RFC 2543 client */
	mkreq(&inv, "INVITE", NULL, "old.example.com", "2543@h", NULL, 5);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 0, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 1, &y), SIP_TXN_PENDING);
	assert_ptr_equal(x, y);
	/* a different CSeq / Call-ID is another transaction */
	mkreq(&other, "INVITE", NULL, "old.example.com", "2543@h", NULL, 6);
	assert_int_equal(sip_txn_receive(t, &other.m, &d, 1, &y), SIP_TXN_NEW);
	/* a different To tag too */
	mkreq(&other, "INVITE", NULL, "old.example.com", "2543@h", "xx", 5);
	assert_int_equal(sip_txn_receive(t, &other.m, &d, 1, &y), SIP_TXN_NEW);

	/* answer with the builder, which adds our To tag */
	sa4(&src, "192.0.2.1", 5060);
	sip_out_init(&o, rbuf, sizeof(rbuf));
	assert_int_equal(sip_resp_begin(&o, &inv.m, (struct sockaddr *)&src, 486, NULL, sw_str_c("srvtag")), 0);
	assert_int_equal(sip_resp_end(&o, SW_STR_NULL, SW_STR_NULL), 0);
	assert_int_equal(sip_txn_respond(t, x, rbuf, o.len, 486, 10), 0);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 11, &y), SIP_TXN_RETRANSMIT);
	assert_ptr_equal(x, y);

	/* ACK with another To tag: not this transaction */
	mkreq(&ack, "ACK", NULL, "old.example.com", "2543@h", "nottag", 5);
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 12, &y), SIP_TXN_NO_MATCH);
	/* ACK with the To tag of our response: absorbed */
	mkreq(&ack, "ACK", NULL, "old.example.com", "2543@h", "srvtag", 5);
	assert_int_equal(sip_txn_receive(t, &ack.m, &d, 13, &y), SIP_TXN_ACK_ABSORBED);
	assert_ptr_equal(x, y);
	assert_int_equal(sip_txn_state(x), SIP_TXN_CONFIRMED);
	sip_txn_table_free(t);
}

static void test_cancel_lookup(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg inv, can, bye;
	struct sip_txn *x, *c;

	mkreq(&inv, "INVITE", "z9hG4bKcan1", "ua.example.com", "can@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 0, &x), SIP_TXN_NEW);
	respond(t, x, "SIP/2.0 100 Trying\r\n\r\n", 100, 0);
	/* CANCEL is its own transaction ... */
	mkreq(&can, "CANCEL", "z9hG4bKcan1", "ua.example.com", "can@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &can.m, &d, 1, &c), SIP_TXN_NEW);
	assert_ptr_not_equal(x, c);
	assert_false(sip_txn_is_invite(c));
	/* ... and finds the INVITE it cancels (§9.2) */
	assert_ptr_equal(sip_txn_find_cancelled(t, &can.m), x);
	assert_int_equal(sip_txn_receive(t, &can.m, &d, 2, &c), SIP_TXN_PENDING);
	/* nothing to cancel: other branch, or a non-INVITE with that branch */
	mkreq(&can, "CANCEL", "z9hG4bKcan2", "ua.example.com", "can@h", NULL, 1);
	assert_null(sip_txn_find_cancelled(t, &can.m));
	mkreq(&bye, "BYE", "z9hG4bKbye", "ua.example.com", "can@h", "t", 2);
	assert_int_equal(sip_txn_receive(t, &bye.m, &d, 3, &c), SIP_TXN_NEW);
	mkreq(&can, "CANCEL", "z9hG4bKbye", "ua.example.com", "can@h", "t", 2);
	assert_null(sip_txn_find_cancelled(t, &can.m));

	/* RFC 2543 CANCEL: same R-URI, From tag, Call-ID, CSeq, Via, To */
	mkreq(&inv, "INVITE", NULL, "ua.example.com", "can2543@h", NULL, 9);
	assert_int_equal(sip_txn_receive(t, &inv.m, &d, 4, &x), SIP_TXN_NEW);
	mkreq(&can, "CANCEL", NULL, "ua.example.com", "can2543@h", NULL, 9);
	assert_ptr_equal(sip_txn_find_cancelled(t, &can.m), x);
	mkreq(&can, "CANCEL", NULL, "ua.example.com", "can2543@h", NULL, 10);
	assert_null(sip_txn_find_cancelled(t, &can.m));
	sip_txn_table_free(t);
}

static void test_table_full_and_reclaim(void **state)
{
	(void)state;
	enum { CAP = 4 };
	struct sip_txn_table *t = mktable(CAP);
	struct sip_txn_dest d = dest(false);
	struct tmsg m;
	struct sip_txn *x;
	struct sent s = { 0 };
	char br[32], cid[32];

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < CAP; i++) {
			snprintf(br, sizeof(br), "z9hG4bKr%di%d", round, i);
			snprintf(cid, sizeof(cid), "c%d", i);
			mkreq(&m, "OPTIONS", br, "h", cid, NULL, 1);
			assert_int_equal(sip_txn_receive(t, &m.m, &d, round * 100000, &x), SIP_TXN_NEW);
		}
		assert_int_equal(sip_txn_count(t), CAP);
		mkreq(&m, "OPTIONS", "z9hG4bKextra", "h", "cx", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, round * 100000, &x), SIP_TXN_FULL);
		assert_null(x);
		assert_int_equal(sip_txn_count(t), CAP);
		/* a retransmission still matches while full */
		mkreq(&m, "OPTIONS", br, "h", cid, NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, round * 100000, &x), SIP_TXN_PENDING);
		/* all expire unanswered */
		tick(t, round * 100000 + 64 * T1, &s);
		assert_int_equal(sip_txn_count(t), 0);
	}
	/* slots freed by termination (not by a tick) are reused too */
	struct sip_txn_dest rd = dest(true);
	for (int i = 0; i < CAP; i++) {
		snprintf(br, sizeof(br), "z9hG4bKz%d", i);
		mkreq(&m, "OPTIONS", br, "h", "z", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &rd, 500000, &x), SIP_TXN_NEW);
		respond(t, x, "SIP/2.0 200 OK\r\n\r\n", 200, 500000);
	}
	for (int i = 0; i < CAP; i++) {
		snprintf(br, sizeof(br), "z9hG4bKy%d", i);
		mkreq(&m, "OPTIONS", br, "h", "y", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, 500001, &x), SIP_TXN_NEW);
	}
	assert_int_equal(sip_txn_count(t), CAP);
	sip_txn_table_free(t);
}

static void test_large_reply(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(4);
	struct sip_txn_dest d = dest(false);
	struct tmsg m;
	struct sip_txn *x, *y;
	struct sent s = { 0 };
	size_t len;
	char *big = malloc(70000);
	assert_non_null(big);
	memset(big, 'a', 70000);
	memcpy(big, "SIP/2.0 183", 11);

	mkreq(&m, "INVITE", "z9hG4bKbig", "h", "big", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_respond(t, x, big, 65537, 183, 0), -EMSGSIZE);
	assert_int_equal(sip_txn_respond(t, x, big, 0, 183, 0), -EINVAL);
	assert_int_equal(sip_txn_respond(t, x, big, 5000, 183, 0), 0);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 1, &y), SIP_TXN_RETRANSMIT);
	const char *r = sip_txn_reply(t, y, &len);
	assert_int_equal(len, 5000);
	assert_memory_equal(r, big, 5000);
	/* a bigger one replaces it, then an inline one */
	big[11] = 'X';
	assert_int_equal(sip_txn_respond(t, x, big, 65536, 183, 2), 0);
	r = sip_txn_reply(t, x, &len);
	assert_int_equal(len, 65536);
	assert_memory_equal(r, big, 65536);
	assert_int_equal(sip_txn_respond(t, x, "SIP/2.0 180 Ringing\r\n\r\n", 23, 180, 3), 0);
	assert_memory_equal(sip_txn_reply(t, x, &len), "SIP/2.0 180", 11);
	big[8] = '5';
	assert_int_equal(sip_txn_respond(t, x, big, 3000, 500, 4), 0);
	tick(t, 4 + T1, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.len, 3000);
	/* a terminated transaction's heap reply is freed on reclaim (ASan) */
	tick(t, 4 + 64 * T1, &s);
	tick(t, 5 + 64 * T1, &s);
	assert_int_equal(sip_txn_count(t), 0);
	/* and a live one by table_free */
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 100000, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_respond(t, x, big, 9000, 183, 100000), 0);
	sip_txn_table_free(t);
	free(big);
}

static void test_overlong_keys(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg a, b;
	struct sip_txn *x, *y;
	char br[1100];

	/* a key longer than the kept copy: prefix, length and two keyed
	 * hashes must agree */
	memcpy(br, "z9hG4bK", 7);
	memset(br + 7, 'q', 1000);
	br[1007] = '\0';
	mkreq(&a, "INVITE", br, "h", "long", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &a.m, &d, 0, &x), SIP_TXN_NEW);
	mkreq(&b, "INVITE", br, "h", "long", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 1, &y), SIP_TXN_PENDING);
	assert_ptr_equal(x, y);
	br[1006] = 'r'; /* differs only past the kept prefix */
	mkreq(&b, "INVITE", br, "h", "long", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 2, &y), SIP_TXN_NEW);
	assert_ptr_not_equal(x, y);
	br[1006] = '\0'; /* a prefix of it */
	mkreq(&b, "INVITE", br, "h", "long", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 3, &y), SIP_TXN_NEW);

	/* RFC 2543 mode with a long To tag (kept as prefix + hash) */
	char tag[200];
	memset(tag, 'T', sizeof(tag) - 1);
	tag[sizeof(tag) - 1] = '\0';
	mkreq(&a, "BYE", NULL, "h", "longtag", tag, 1);
	assert_int_equal(sip_txn_receive(t, &a.m, &d, 4, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_receive(t, &a.m, &d, 5, &y), SIP_TXN_PENDING);
	tag[150] = 'U';
	mkreq(&b, "BYE", NULL, "h", "longtag", tag, 1);
	assert_int_equal(sip_txn_receive(t, &b.m, &d, 6, &y), SIP_TXN_NEW);
	sip_txn_table_free(t);
}

static void test_many(void **state)
{
	(void)state;
	enum { N = 2000 };
	struct sip_txn_table *t = mktable(N);
	struct sip_txn_dest d = dest(false);
	struct tmsg m;
	struct sent s = { 0 };
	static struct sip_txn *xs[N];
	char br[40];

	for (int i = 0; i < N; i++) {
		snprintf(br, sizeof(br), "z9hG4bK%08x", (unsigned)i * 2654435761u);
		mkreq(&m, (i & 1) ? "INVITE" : "REGISTER", br, "h", "many", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, (uint64_t)i, &xs[i]), SIP_TXN_NEW);
		if (i % 3 == 0)
			respond(t, xs[i], "SIP/2.0 404 Not Found\r\n\r\n", 404, (uint64_t)i);
	}
	for (int i = 0; i < N; i++) {
		struct sip_txn *y;
		snprintf(br, sizeof(br), "z9hG4bK%08x", (unsigned)i * 2654435761u);
		mkreq(&m, (i & 1) ? "INVITE" : "REGISTER", br, "h", "many", NULL, 1);
		enum sip_txn_match r = sip_txn_receive(t, &m.m, &d, N, &y);
		assert_int_equal(r, i % 3 == 0 ? SIP_TXN_RETRANSMIT : SIP_TXN_PENDING);
		assert_ptr_equal(y, xs[i]);
	}
	/* the timers order deadlines: everything ends by 64*T1 after the last */
	uint64_t now = N, dl;
	while ((dl = tick(t, now, &s)) != UINT64_MAX) {
		assert_true(dl > 0);
		now += dl;
	}
	assert_true(now <= N + 64 * T1);
	assert_int_equal(sip_txn_count(t), 0);
	sip_txn_table_free(t);
}

/* The timer wheel: a deadline more than a turn ahead (T1 = 5 s: Timer J
 * 320 s, the wheel turns in 262 s) waits in its slot until its turn; a
 * tick that comes late by more than a turn fires everything due; each
 * transaction ends exactly at its deadline, and a tick returns the
 * earliest deadline left. */
static void test_wheel_turns(void **state)
{
	(void)state;
	struct sip_timers tm = { 5000, 8000, 5000 };
	struct sip_txn_table *t = sip_txn_table_new(64, &hkey, &tm);
	struct sip_txn_dest d = dest(false);
	struct tmsg m;
	struct sent s = { 0 };
	struct sip_txn *x;
	char br[40];
	const uint64_t t0 = 1000003, jms = 64 * 5000ull;

	for (unsigned i = 0; i < 8; i++) {
		snprintf(br, sizeof(br), "z9hG4bKturn%u", i);
		mkreq(&m, "REGISTER", br, "h", "turns", NULL, i + 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, t0 + i * 7, &x), SIP_TXN_NEW);
		respond(t, x, "SIP/2.0 200 OK\r\n\r\n", 200, t0 + i * 7);
	}
	assert_int_equal(tick(t, t0 + 100, &s), t0 + jms - (t0 + 100));
	/* past a whole turn: nothing due yet */
	assert_int_equal(tick(t, t0 + 270000, &s), t0 + jms - (t0 + 270000));
	assert_int_equal(sip_txn_count(t), 8);
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(tick(t, t0 + jms + i * 7 - 1, &s), 1);
		assert_int_equal(sip_txn_count(t), 8 - i);
		uint64_t left = tick(t, t0 + jms + i * 7, &s);
		assert_int_equal(sip_txn_count(t), 7 - i);
		assert_int_equal(left, i < 7 ? 7 : UINT64_MAX);
	}

	/* a tick 3 turns late fires what was due, keeps what was not */
	for (unsigned i = 0; i < 2; i++) {
		snprintf(br, sizeof(br), "z9hG4bKlate%u", i);
		mkreq(&m, "OPTIONS", br, "h", "late", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, 2000000, &x), SIP_TXN_NEW);
		if (i == 0)
			respond(t, x, "SIP/2.0 200 OK\r\n\r\n", 200, 2000000);
	}
	snprintf(br, sizeof(br), "z9hG4bKlate%u", 2);
	mkreq(&m, "INVITE", br, "h", "late", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 2000000, &x), SIP_TXN_NEW);
	respond(t, x, "SIP/2.0 180 Ringing\r\n\r\n", 180, 2000000);
	uint64_t now = 2000000 + 3 * 262144 * 4;   /* the INVITE's guard is 240 s */
	tick(t, now, &s);
	assert_int_equal(sip_txn_count(t), 0);
	assert_int_equal(tick(t, now + 1, &s), UINT64_MAX);
	sip_txn_table_free(t);
}

/* The index under churn: a full table (load 0.5 in the index, so long
 * probe runs), half of it ended in scattered order (reliable finals end
 * at once, and the removal shifts clusters back), then every survivor is
 * still found and every ended key is new again; repeated so freed slots
 * and shifted runs are reused. */
static void test_index_churn(void **state)
{
	(void)state;
	enum { CAP = 1024 };
	struct sip_txn_table *t = mktable(CAP);
	struct sip_txn_dest rel = dest(true);
	struct tmsg m;
	struct sip_txn *x;
	char br[40];
	static bool alive[CAP];

	for (unsigned round = 0; round < 4; round++) {
		for (unsigned i = 0; i < CAP; i++) {
			snprintf(br, sizeof(br), "z9hG4bKchurn%u", i);
			mkreq(&m, "OPTIONS", br, "h", "churn", NULL, 1);
			enum sip_txn_match r = sip_txn_receive(t, &m.m, &rel, round, &x);
			assert_int_equal(r, round == 0 || !alive[i] ? SIP_TXN_NEW : SIP_TXN_PENDING);
			alive[i] = true;
		}
		assert_int_equal(sip_txn_count(t), CAP);
		for (unsigned k = 0; k < CAP; k++) {
			unsigned i = (k * 619u + round * 97u) % CAP;  /* a permutation */
			if ((i * 7u + round) % 3 == 0)
				continue;
			snprintf(br, sizeof(br), "z9hG4bKchurn%u", i);
			mkreq(&m, "OPTIONS", br, "h", "churn", NULL, 1);
			if (sip_txn_receive(t, &m.m, &rel, round, &x) == SIP_TXN_PENDING && alive[i]) {
				respond(t, x, "SIP/2.0 200 OK\r\n\r\n", 200, round);
				alive[i] = false;
			}
		}
		for (unsigned i = 0; i < CAP; i++) {
			snprintf(br, sizeof(br), "z9hG4bKchurn%u", i);
			mkreq(&m, "OPTIONS", br, "h", "churn", NULL, 1);
			enum sip_txn_match r = sip_txn_receive(t, &m.m, &rel, round, &x);
			if (alive[i]) {
				assert_int_equal(r, SIP_TXN_PENDING);
			} else {
				assert_int_equal(r, SIP_TXN_NEW);   /* a new transaction now */
				respond(t, x, "SIP/2.0 200 OK\r\n\r\n", 200, round);
			}
		}
	}
	sip_txn_table_free(t);
}

/* A tick fires at most a bounded batch and says "more is due" (0), so a
 * request is never stuck behind thousands of expiries. */
static void test_tick_bounded(void **state)
{
	(void)state;
	enum { N = 600 };
	struct sip_txn_table *t = mktable(N);
	struct sip_txn_dest d = dest(false);
	struct tmsg m;
	struct sip_txn *x;
	struct sent s = { 0 };
	char br[40];
	for (int i = 0; i < N; i++) {
		snprintf(br, sizeof(br), "z9hG4bKbnd%d", i);
		mkreq(&m, "REGISTER", br, "h", "bounded", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
		respond(t, x, "SIP/2.0 200 OK\r\n\r\n", 200, 0);
	}
	unsigned calls = 0;
	uint64_t dl;
	while ((dl = tick(t, 64 * T1, &s)) == 0) {
		calls++;
		assert_true(sip_txn_count(t) > 0);
	}
	assert_int_equal(dl, UINT64_MAX);
	assert_int_equal(calls, (N + 255) / 256 - 1);
	assert_int_equal(sip_txn_count(t), 0);
	sip_txn_table_free(t);
}

static void test_compact_entry_and_dest(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(16);
	struct sip_txn_stats st;
	struct tmsg m;
	struct sip_txn *x;
	struct sip_txn_dest d, back;

	sip_txn_get_stats(t, &st);
	assert_true(st.entry_bytes <= 128);
	assert_int_equal(st.touched, 0);
	assert_int_equal(st.reply_bytes, 0);

	/* the destination survives compaction: IPv6, stream fields */
	memset(&d, 0, sizeof(d));
	sa6(&d.addr, "2001:db8::7", 5070);
	d.alen = sizeof(struct sockaddr_in6);
	d.conn_id = 77;
	d.proto = 3;
	d.reliable = false;
	d.fd = 9;
	mkreq(&m, "REGISTER", "z9hG4bKv6", "[2001:db8::7]:5070", "v6", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	sip_txn_dest_get(x, &back);
	assert_int_equal(back.alen, d.alen);
	assert_memory_equal(&back.addr, &d.addr, d.alen);
	assert_int_equal(back.conn_id, 77);
	assert_int_equal(back.proto, 3);
	assert_false(back.reliable);
	assert_int_equal(back.fd, 9);
	const struct sip_txn_dest *p = sip_txn_dest(x);
	assert_memory_equal(&p->addr, &d.addr, d.alen);
	sip_txn_get_stats(t, &st);
	assert_int_equal(st.touched, 1);
	assert_int_equal(st.live, 1);
	sip_txn_table_free(t);
}

/* Replies live in slabs under a byte budget; when it is spent the state
 * still moves and retransmissions are absorbed, never re-processed. */
static void test_reply_budget(void **state)
{
	(void)state;
	enum { N = 64 };
	struct sip_txn_table *t = mktable(N);
	struct sip_txn_dest d = dest(false);
	struct sip_txn_stats st;
	struct tmsg m;
	struct sip_txn *x, *y;
	struct sent s = { 0 };
	char br[32], reply[900];
	size_t len;

	sip_txn_set_reply_memory(t, 65536); /* one chunk */
	memset(reply, 'r', sizeof(reply));
	memcpy(reply, "SIP/2.0 401 Unauthorized\r\n", 26);
	unsigned kept = 0, dropped = 0;
	for (int i = 0; i < N; i++) {
		snprintf(br, sizeof(br), "z9hG4bKbud%d", i);
		mkreq(&m, "REGISTER", br, "h", "bud", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
		reply[30] = (char)('A' + i % 26);
		int rc = sip_txn_respond(t, x, reply, sizeof(reply), 401, 0);
		if (rc == 0) {
			kept++;
		} else {
			assert_int_equal(rc, -ENOBUFS);
			dropped++;
		}
		assert_int_equal(sip_txn_state(x), SIP_TXN_COMPLETED);
	}
	/* 900 bytes -> the 960-byte class: 68 blocks in one 64 KiB chunk */
	assert_int_equal(kept, 65536 / 960 < N ? 65536 / 960 : N);
	assert_int_equal(kept + dropped, N);
	sip_txn_get_stats(t, &st);
	assert_int_equal(st.reply_bytes, 65536);
	assert_int_equal(st.reply_nomem, dropped);
	for (int i = 0; i < N; i++) {
		snprintf(br, sizeof(br), "z9hG4bKbud%d", i);
		mkreq(&m, "REGISTER", br, "h", "bud", NULL, 1);
		enum sip_txn_match r = sip_txn_receive(t, &m.m, &d, 1, &y);
		if ((unsigned)i < kept) {
			assert_int_equal(r, SIP_TXN_RETRANSMIT);
			const char *rp = sip_txn_reply(t, y, &len);
			assert_int_equal(len, sizeof(reply));
			assert_int_equal(rp[30], 'A' + i % 26);
		} else {
			assert_int_equal(r, SIP_TXN_PENDING);
			assert_null(sip_txn_reply(t, y, &len));
		}
	}
	/* Timer J ends them all; the memory goes back to the budget */
	tick(t, 64 * T1, &s);
	tick(t, 64 * T1 + 1, &s);
	assert_int_equal(sip_txn_count(t), 0);
	sip_txn_get_stats(t, &st);
	assert_int_equal(st.reply_bytes, 0);
	/* and is used again */
	mkreq(&m, "REGISTER", "z9hG4bKagain", "h", "bud", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 100000, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_respond(t, x, reply, sizeof(reply), 200, 100000), 0);
	sip_txn_table_free(t);
}

/* Mixed reply sizes over many rounds: chunks of classes no longer used go
 * back to the budget, so the budget is never stranded. */
static void test_reply_slab_churn(void **state)
{
	(void)state;
	enum { N = 300 };
	struct sip_txn_table *t = mktable(N);
	struct sip_txn_dest d = dest(false);
	struct sip_txn_stats st;
	struct tmsg m;
	struct sip_txn *x;
	struct sent s = { 0 };
	static char reply[20000];
	char br[40];
	size_t len;

	memset(reply, 'z', sizeof(reply));
	sip_txn_set_reply_memory(t, 8 * 65536);
	uint64_t now = 0;
	for (int round = 0; round < 12; round++) {
		size_t sz = (size_t)(200 + round * 1500) % 12000 + 1;
		for (int i = 0; i < N; i++) {
			snprintf(br, sizeof(br), "z9hG4bKch%dx%d", round, i);
			mkreq(&m, "OPTIONS", br, "h", "ch", NULL, 1);
			assert_int_equal(sip_txn_receive(t, &m.m, &d, now, &x), SIP_TXN_NEW);
			reply[0] = (char)('a' + i % 26);
			int rc = sip_txn_respond(t, x, reply, sz - (size_t)(i % 7), 200, now);
			assert_true(rc == 0 || rc == -ENOBUFS);
			if (rc == 0) {
				const char *r = sip_txn_reply(t, x, &len);
				assert_int_equal(len, sz - (size_t)(i % 7));
				assert_int_equal(r[0], 'a' + i % 26);
			}
		}
		sip_txn_get_stats(t, &st);
		assert_true(st.reply_bytes <= 8 * 65536);
		now += 64 * T1;
		tick(t, now, &s);
		tick(t, now + 1, &s);
		assert_int_equal(sip_txn_count(t), 0);
		/* every chunk emptied went back to the budget */
		sip_txn_get_stats(t, &st);
		assert_int_equal(st.reply_bytes, 0);
	}
	sip_txn_table_free(t);
}

/* Slab chunks come from a region reserved for the budget when the first
 * one is needed; a budget raised afterwards is served by malloc'd chunks.
 * Both kinds hold their replies, go back when emptied (ASan: a region
 * chunk passed to free() or a malloc'd one kept would show) and are used
 * again. */
static void test_reply_arena_then_malloc(void **state)
{
	(void)state;
	enum { N = 400 };
	struct sip_txn_table *t = mktable(N);
	struct sip_txn_dest d = dest(false);
	struct sip_txn_stats st;
	struct tmsg m;
	struct sip_txn *x;
	struct sent s = { 0 };
	char br[40], reply[1000];
	size_t len;

	memset(reply, 'q', sizeof(reply));
	sip_txn_set_reply_memory(t, 2 * 65536);   /* the region: two chunks */
	uint64_t now = 0;
	for (int round = 0; round < 3; round++) {
		unsigned kept = 0;
		for (int i = 0; i < N; i++) {
			if (i == 100)   /* after the region was reserved and filled */
				sip_txn_set_reply_memory(t, 8 * 65536);
			snprintf(br, sizeof(br), "z9hG4bKar%dx%d", round, i);
			mkreq(&m, "OPTIONS", br, "h", "ar", NULL, 1);
			assert_int_equal(sip_txn_receive(t, &m.m, &d, now, &x), SIP_TXN_NEW);
			reply[5] = (char)('a' + i % 26);
			int rc = sip_txn_respond(t, x, reply, sizeof(reply), 200, now);
			assert_true(rc == 0 || rc == -ENOBUFS);
			kept += rc == 0;
		}
		/* 1000 bytes -> the 1024-byte class, 64 per chunk: 2 chunks in
		 * the region, 5 more from malloc (N < 8 * 64: all kept) */
		assert_int_equal(kept, N);
		sip_txn_get_stats(t, &st);
		assert_int_equal(st.reply_bytes, 7 * 65536);
		for (int i = 0; i < N; i++) {
			snprintf(br, sizeof(br), "z9hG4bKar%dx%d", round, i);
			mkreq(&m, "OPTIONS", br, "h", "ar", NULL, 1);
			if (sip_txn_receive(t, &m.m, &d, now + 1, &x) != SIP_TXN_RETRANSMIT)
				continue;
			const char *r = sip_txn_reply(t, x, &len);
			assert_int_equal(len, sizeof(reply));
			assert_int_equal(r[5], 'a' + i % 26);
		}
		now += 64 * T1;
		tick(t, now, &s);
		tick(t, now + 1, &s);
		assert_int_equal(sip_txn_count(t), 0);
		sip_txn_get_stats(t, &st);
		assert_int_equal(st.reply_bytes, 0);
		sip_txn_set_reply_memory(t, 2 * 65536);
	}
	sip_txn_table_free(t);
}

/* Many live transactions: every one matches itself and only itself. */
static void test_scale(void **state)
{
	(void)state;
	enum { N = 50000 };
	struct sip_txn_table *t = mktable(N);
	struct sip_txn_dest d = dest(false);
	struct sip_txn_stats st;
	struct tmsg m;
	struct sip_txn *x, *y;
	char br[48], rep[64];
	size_t len;

	for (int i = 0; i < N; i++) {
		snprintf(br, sizeof(br), "z9hG4bK%u.%d", (unsigned)i * 2654435761u, i);
		mkreq(&m, "REGISTER", br, "10.0.0.1:5060", "s", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
		int n = snprintf(rep, sizeof(rep), "SIP/2.0 200 OK\r\nX: %d\r\n\r\n", i);
		respond(t, x, rep, 200, 0);
		(void)n;
	}
	mkreq(&m, "REGISTER", "z9hG4bKnot-there", "10.0.0.1:5060", "s", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 1, &y), SIP_TXN_FULL);
	for (int i = 0; i < N; i += 7) {
		snprintf(br, sizeof(br), "z9hG4bK%u.%d", (unsigned)i * 2654435761u, i);
		mkreq(&m, "REGISTER", br, "10.0.0.1:5060", "s", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, 1, &y), SIP_TXN_RETRANSMIT);
		const char *r = sip_txn_reply(t, y, &len);
		int n = snprintf(rep, sizeof(rep), "SIP/2.0 200 OK\r\nX: %d\r\n\r\n", i);
		assert_int_equal(len, (size_t)n);
		assert_memory_equal(r, rep, len);
		/* the same branch from another sent-by or method is another txn */
		mkreq(&m, "OPTIONS", br, "10.0.0.1:5060", "s", NULL, 1);
		assert_int_equal(sip_txn_receive(t, &m.m, &d, 1, &y), SIP_TXN_FULL);
	}
	sip_txn_get_stats(t, &st);
	assert_int_equal(st.live, N);
	assert_int_equal(st.touched, N);
	/* ~30-byte replies in the 64-byte class: N * 64 rounded to chunks */
	assert_true(st.reply_bytes <= ((size_t)N * 64 / 65536 + 1) * 65536);
	sip_txn_table_free(t);
}

/* A non-INVITE reply kept without the fields copied from the request: the
 * stored bytes are the rest, the hole says where they go, and the reply
 * memory holds only the rest. An INVITE keeps its reply whole (Timer G
 * resends it with no request), and so does a hole that does not fit. */
static void test_reply_without_copied_fields(void **state)
{
	(void)state;
	struct sip_txn_table *t = mktable(8);
	struct sip_txn_dest d = dest(false);
	struct tmsg m;
	struct sip_txn *x, *y;
	struct sent s = { 0 };
	size_t len;
	const char head[] = "SIP/2.0 200 OK\r\n";
	char copied[600], rest[200], full[1024];
	memset(copied, 'c', sizeof(copied));
	memcpy(copied + sizeof(copied) - 2, "\r\n", 2);
	snprintf(rest, sizeof(rest), "Contact: <sip:a@192.0.2.9>;expires=3600\r\nContent-Length: 0\r\n\r\n");
	int n = snprintf(full, sizeof(full), "%s%.*s%s", head, (int)sizeof(copied), copied, rest);
	size_t hole = strlen(head), gap = sizeof(copied);

	mkreq(&m, "REGISTER", "z9hG4bKreg1", "pc.example.com", "r1@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_respond_copied(t, x, full, (size_t)n, 200, 10, hole, gap), 0);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 20, &y), SIP_TXN_RETRANSMIT);
	assert_ptr_equal(x, y);
	const char *r = sip_txn_reply(t, y, &len);
	assert_int_equal(len, strlen(head) + strlen(rest));
	assert_int_equal(sip_txn_reply_hole(y), hole);
	assert_int_equal(sip_txn_status(y), 200);
	assert_memory_equal(r, head, strlen(head));
	assert_memory_equal(r + hole, rest, strlen(rest));
	struct sip_txn_stats st;
	sip_txn_get_stats(t, &st);
	assert_int_equal(st.reply_bytes, 65536);   /* one chunk of the 128-byte class */

	/* a provisional then the final: the block is reused or replaced */
	mkreq(&m, "OPTIONS", "z9hG4bKopt1", "pc.example.com", "o1@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_respond_copied(t, x, full, (size_t)n, 100, 10, hole, gap), 0);
	assert_int_equal(sip_txn_respond(t, x, full, (size_t)n, 200, 11), 0);
	r = sip_txn_reply(t, x, &len);
	assert_int_equal(len, (size_t)n);
	assert_int_equal(sip_txn_reply_hole(x), 0);
	assert_memory_equal(r, full, (size_t)n);

	/* a hole past the end, or all of the reply: kept whole */
	mkreq(&m, "OPTIONS", "z9hG4bKopt2", "pc.example.com", "o2@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	assert_int_equal(sip_txn_respond_copied(t, x, full, (size_t)n, 200, 10, hole, (size_t)n), 0);
	assert_int_equal(sip_txn_reply_hole(x), 0);
	assert_int_equal(sip_txn_reply(t, x, &len) != NULL && len == (size_t)n, true);

	/* INVITE: whole, and Timer G resends all of it */
	mkreq(&m, "INVITE", "z9hG4bKinv9", "pc.example.com", "i9@h", NULL, 1);
	assert_int_equal(sip_txn_receive(t, &m.m, &d, 0, &x), SIP_TXN_NEW);
	memcpy(full + 8, "486", 3);
	assert_int_equal(sip_txn_respond_copied(t, x, full, (size_t)n, 486, 0, hole, gap), 0);
	assert_int_equal(sip_txn_reply_hole(x), 0);
	tick(t, T1, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.len, (size_t)n);
	assert_memory_equal(s.last, full, sizeof(s.last));
	sip_txn_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_new),
		cmocka_unit_test(test_invite_unreliable_g_h),
		cmocka_unit_test(test_invite_ack_confirmed_timer_i),
		cmocka_unit_test(test_invite_reliable),
		cmocka_unit_test(test_invite_2xx_terminates),
		cmocka_unit_test(test_non_invite_unreliable_j),
		cmocka_unit_test(test_non_invite_reliable),
		cmocka_unit_test(test_unanswered_dropped),
		cmocka_unit_test(test_matching_cookie),
		cmocka_unit_test(test_matching_badbranch),
		cmocka_unit_test(test_rfc2543_invite_ack),
		cmocka_unit_test(test_cancel_lookup),
		cmocka_unit_test(test_table_full_and_reclaim),
		cmocka_unit_test(test_large_reply),
		cmocka_unit_test(test_overlong_keys),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_wheel_turns),
		cmocka_unit_test(test_index_churn),
		cmocka_unit_test(test_tick_bounded),
		cmocka_unit_test(test_compact_entry_and_dest),
		cmocka_unit_test(test_forget),
		cmocka_unit_test(test_reply_without_copied_fields),
		cmocka_unit_test(test_reply_budget),
		cmocka_unit_test(test_reply_arena_then_malloc),
		cmocka_unit_test(test_reply_slab_churn),
		cmocka_unit_test(test_scale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
