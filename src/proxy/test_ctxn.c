/* Unit tests for client transactions (ctxn.h), in simulated time. */
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
#include "proxy/ctxn.h"
#include "sip/build.h"
#include "sip/parse.h"

#define T1 500u
#define T2 4000u
#define T4 5000u

struct tmsg {
	char text[4096];
	struct sip_hdr hdrs[32];
	struct sip_msg m;
};

static void tmsg_parse(struct tmsg *t, const char *text)
{
	struct sip_limits lim;
	struct sip_perr err;
	size_t len = strlen(text);
	memcpy(t->text, text, len + 1);
	sip_limits_default(&lim);
	ssize_t n = sip_parse(t->text, len, SIP_PARSE_DGRAM, &lim, t->hdrs, 32, &t->m, &err);
	if (n < 0)
		fail_msg("sip_parse: %zd: %s", n, err.why ? err.why : "");
}

static const char *BR = "z9hG4bKsw00aaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbb";

static void mkreq(char *out, size_t cap, const char *method)
{
	snprintf(out, cap,
		 "%s sip:bob@192.0.2.9 SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=%s\r\n"
		 "Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bKcaller;received=198.51.100.7\r\n"
		 "Route: <sip:192.0.2.50;lr>\r\n"
		 "Max-Forwards: 69\r\n"
		 "From: <sip:alice@example.test>;tag=ft\r\n"
		 "To: <sip:bob@example.test>\r\n"
		 "Call-ID: cid-1\r\n"
		 "CSeq: 7 %s\r\n"
		 "Content-Length: 0\r\n\r\n",
		 method, BR, method);
}

static void mkresp(struct tmsg *t, unsigned status, const char *method)
{
	char buf[2048];
	snprintf(buf, sizeof(buf),
		 "SIP/2.0 %u X\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=%s\r\n"
		 "Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bKcaller\r\n"
		 "From: <sip:alice@example.test>;tag=ft\r\n"
		 "To: <sip:bob@example.test>;tag=tt\r\n"
		 "Call-ID: cid-1\r\n"
		 "CSeq: 7 %s\r\n"
		 "Content-Length: 0\r\n\r\n",
		 status, BR, method);
	tmsg_parse(t, buf);
}

/* Records what the table sends and reports. */
struct rec {
	unsigned sent;
	char last[4096];
	unsigned timeouts;
	enum ptx_timeout why;
};

static void rec_send(void *ctx, const struct sip_txn_dest *d, const char *buf, size_t len)
{
	struct rec *r = ctx;
	r->sent++;
	size_t n = len < sizeof(r->last) - 1 ? len : sizeof(r->last) - 1;
	memcpy(r->last, buf, n);
	r->last[n] = '\0';
}

static void rec_timeout(void *ctx, struct ptx *x, enum ptx_timeout why)
{
	struct rec *r = ctx;
	r->timeouts++;
	r->why = why;
}

static struct ptx_table *table(void)
{
	struct sip_timers tm = { T1, T2, T4 };
	struct sip_limits lim;
	sip_limits_default(&lim);
	struct ptx_table *t = ptx_table_new(8, &tm, &lim);
	assert_non_null(t);
	return t;
}

static struct sip_txn_dest udp_dest(void)
{
	struct sip_txn_dest d = { 0 };
	struct sockaddr_in *in = (void *)&d.addr;
	in->sin_family = AF_INET;
	in->sin_port = htons(5060);
	d.alen = sizeof(*in);
	d.fd = -1;
	return d;
}

static struct ptx *start(struct ptx_table *t, const char *method, bool reliable, uint64_t now)
{
	char req[2048];
	struct ptx *x;
	struct sip_txn_dest d = udp_dest();
	d.reliable = reliable;
	mkreq(req, sizeof(req), method);
	enum sip_method m = sip_method_lookup(sw_str_c(method));
	assert_int_equal(ptx_start(t, req, strlen(req), m, sw_str_c(BR), &d, 3, 9, now, &x), 0);
	return x;
}

/* Timer A doubles from T1, Timer B ends Calling at 64*T1 (§17.1.1.2). */
static void test_invite_timer_a_b(void **state)
{
	(void)state;
	struct ptx_table *t = table();
	struct rec r = { 0 };
	start(t, "INVITE", false, 0);
	static const uint64_t at[] = { 500, 1500, 3500, 7500, 15500, 31500 };
	uint64_t now = 0;
	for (unsigned i = 0; i < 6; i++) {
		ptx_tick(t, at[i] - 1, rec_send, rec_timeout, &r);
		assert_int_equal(r.sent, i);
		ptx_tick(t, at[i], rec_send, rec_timeout, &r);
		assert_int_equal(r.sent, i + 1);
		now = at[i];
	}
	assert_non_null(strstr(r.last, "INVITE sip:bob@192.0.2.9"));
	ptx_tick(t, 64 * T1 - 1, rec_send, rec_timeout, &r);
	assert_int_equal(r.timeouts, 0);
	ptx_tick(t, 64 * T1, rec_send, rec_timeout, &r);
	assert_int_equal(r.timeouts, 1);
	assert_int_equal(r.why, PTX_TO_B);
	assert_int_equal(ptx_count(t), 0);
	(void)now;
	ptx_table_free(t);
}

/* A provisional stops A and B; Timer C (the TU deadline) still fires. */
static void test_invite_provisional_then_tu_deadline(void **state)
{
	(void)state;
	struct ptx_table *t = table();
	struct rec r = { 0 };
	struct tmsg resp;
	struct ptx *x = start(t, "INVITE", false, 0), *got;
	uint64_t h = ptx_handle(x);
	assert_true(h != 0);
	assert_ptr_equal(ptx_lookup(t, h), x);
	mkresp(&resp, 180, "INVITE");
	assert_int_equal(ptx_receive(t, &resp.m, 100, rec_send, &r, &got), PTX_RX_DELIVER);
	assert_ptr_equal(got, x);
	assert_int_equal(ptx_state(x), PTX_PROCEEDING);
	ptx_set_deadline(t, x, 180000);
	ptx_tick(t, 100000, rec_send, rec_timeout, &r);
	assert_int_equal(r.sent, 0);   /* no retransmission after a provisional */
	assert_int_equal(r.timeouts, 0);
	ptx_tick(t, 180000, rec_send, rec_timeout, &r);
	assert_int_equal(r.timeouts, 1);
	assert_int_equal(r.why, PTX_TO_TU);
	assert_null(ptx_lookup(t, h));
	ptx_table_free(t);
}

/* 486: ACK built from the INVITE with the response's To (§17.1.1.3), then
 * retransmitted finals get the ACK again and are absorbed; Timer D ends it. */
static void test_invite_non2xx_ack(void **state)
{
	(void)state;
	struct ptx_table *t = table();
	struct rec r = { 0 };
	struct tmsg resp;
	struct ptx *x = start(t, "INVITE", false, 0), *got;
	mkresp(&resp, 486, "INVITE");
	assert_int_equal(ptx_receive(t, &resp.m, 10, rec_send, &r, &got), PTX_RX_DELIVER);
	assert_int_equal(ptx_state(x), PTX_COMPLETED);
	assert_int_equal(ptx_status(x), 486);
	assert_int_equal(r.sent, 1);
	assert_non_null(strstr(r.last, "ACK sip:bob@192.0.2.9 SIP/2.0\r\n"));
	assert_non_null(strstr(r.last, "To: <sip:bob@example.test>;tag=tt\r\n"));
	assert_non_null(strstr(r.last, "CSeq: 7 ACK\r\n"));
	assert_non_null(strstr(r.last, "Route: <sip:192.0.2.50;lr>\r\n"));
	assert_non_null(strstr(r.last, BR));
	assert_null(strstr(r.last, "z9hG4bKcaller")); /* only our Via */
	assert_int_equal(ptx_receive(t, &resp.m, 20, rec_send, &r, &got), PTX_RX_ABSORB);
	assert_int_equal(r.sent, 2);
	ptx_tick(t, 64 * T1 + 9, rec_send, rec_timeout, &r);
	assert_int_equal(ptx_count(t), 1);
	ptx_tick(t, 64 * T1 + 10, rec_send, rec_timeout, &r);
	assert_int_equal(ptx_count(t), 0);
	assert_int_equal(r.timeouts, 0);
	ptx_table_free(t);
}

/* 2xx: Accepted (RFC 6026), retransmitted 2xx still delivered; Timer M. */
static void test_invite_2xx_accepted(void **state)
{
	(void)state;
	struct ptx_table *t = table();
	struct rec r = { 0 };
	struct tmsg resp;
	struct ptx *x = start(t, "INVITE", false, 0), *got;
	mkresp(&resp, 200, "INVITE");
	assert_int_equal(ptx_receive(t, &resp.m, 10, rec_send, &r, &got), PTX_RX_DELIVER);
	assert_int_equal(ptx_state(x), PTX_ACCEPTED);
	assert_int_equal(r.sent, 0); /* the ACK for a 2xx is end to end */
	assert_int_equal(ptx_receive(t, &resp.m, 500, rec_send, &r, &got), PTX_RX_DELIVER);
	ptx_tick(t, 10 + 64 * T1, rec_send, rec_timeout, &r);
	assert_int_equal(ptx_count(t), 0);
	assert_int_equal(ptx_receive(t, &resp.m, 40000, rec_send, &r, &got), PTX_RX_NOMATCH);
	ptx_table_free(t);
}

/* Timer E: T1, 2T1, 4T1, capped at T2; T2 once Proceeding; F at 64*T1;
 * K = T4 after the final. */
static void test_non_invite_timers(void **state)
{
	(void)state;
	struct ptx_table *t = table();
	struct rec r = { 0 };
	start(t, "OPTIONS", false, 0);
	static const uint64_t at[] = { 500, 1500, 3500, 7500, 11500, 15500 };
	for (unsigned i = 0; i < 6; i++) {
		ptx_tick(t, at[i] - 1, rec_send, rec_timeout, &r);
		assert_int_equal(r.sent, i);
		ptx_tick(t, at[i], rec_send, rec_timeout, &r);
		assert_int_equal(r.sent, i + 1);
	}
	ptx_tick(t, 64 * T1, rec_send, rec_timeout, &r);
	assert_int_equal(r.timeouts, 1);
	assert_int_equal(r.why, PTX_TO_F);
	assert_int_equal(ptx_count(t), 0);

	/* provisional → E at T2; final → K */
	struct tmsg resp;
	struct ptx *x = start(t, "OPTIONS", false, 100000), *got;
	mkresp(&resp, 100, "OPTIONS");
	assert_int_equal(ptx_receive(t, &resp.m, 100100, rec_send, &r, &got), PTX_RX_DELIVER);
	r.sent = 0;
	ptx_tick(t, 100500, rec_send, rec_timeout, &r); /* the E armed before: fires */
	assert_int_equal(r.sent, 1);
	ptx_tick(t, 100500 + T2 - 1, rec_send, rec_timeout, &r);
	assert_int_equal(r.sent, 1);
	ptx_tick(t, 100500 + T2, rec_send, rec_timeout, &r);
	assert_int_equal(r.sent, 2);
	mkresp(&resp, 200, "OPTIONS");
	assert_int_equal(ptx_receive(t, &resp.m, 105000, rec_send, &r, &got), PTX_RX_DELIVER);
	assert_int_equal(ptx_state(x), PTX_COMPLETED);
	assert_int_equal(ptx_receive(t, &resp.m, 105001, rec_send, &r, &got), PTX_RX_ABSORB);
	ptx_tick(t, 105000 + T4 - 1, rec_send, rec_timeout, &r);
	assert_int_equal(ptx_count(t), 1);
	ptx_tick(t, 105000 + T4, rec_send, rec_timeout, &r);
	assert_int_equal(ptx_count(t), 0);
	ptx_table_free(t);
}

/* Reliable transports: no retransmissions, K and D are zero. */
static void test_reliable(void **state)
{
	(void)state;
	struct ptx_table *t = table();
	struct rec r = { 0 };
	struct tmsg resp;
	struct ptx *got;
	start(t, "INVITE", true, 0);
	ptx_tick(t, 20000, rec_send, rec_timeout, &r);
	assert_int_equal(r.sent, 0);
	mkresp(&resp, 404, "INVITE");
	assert_int_equal(ptx_receive(t, &resp.m, 20001, rec_send, &r, &got), PTX_RX_DELIVER);
	assert_int_equal(r.sent, 1); /* the ACK */
	ptx_tick(t, 20001, rec_send, rec_timeout, &r);
	assert_int_equal(ptx_count(t), 0);
	ptx_table_free(t);
}

/* INVITE and CANCEL share the branch (§9.1) and are told apart by method;
 * a CANCEL is built from the stored INVITE. */
static void test_cancel_shares_branch(void **state)
{
	(void)state;
	struct ptx_table *t = table();
	struct rec r = { 0 };
	struct ptx *inv = start(t, "INVITE", false, 0), *c, *got;
	char buf[2048];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof(buf));
	assert_int_equal(ptx_build_cancel(t, inv, &o), 0);
	buf[o.len] = '\0';
	assert_non_null(strstr(buf, "CANCEL sip:bob@192.0.2.9 SIP/2.0\r\n"));
	assert_non_null(strstr(buf, "CSeq: 7 CANCEL\r\n"));
	assert_non_null(strstr(buf, "To: <sip:bob@example.test>\r\n"));
	struct sip_txn_dest d = udp_dest();
	assert_int_equal(ptx_start(t, buf, o.len, SIP_M_CANCEL, sw_str_c(BR), &d, 3, 9, 5, &c), 0);
	assert_int_equal(ptx_start(t, buf, o.len, SIP_M_CANCEL, sw_str_c(BR), &d, 3, 9, 5, &c), -EEXIST);
	struct tmsg resp;
	mkresp(&resp, 200, "CANCEL");
	assert_int_equal(ptx_receive(t, &resp.m, 10, rec_send, &r, &got), PTX_RX_DELIVER);
	assert_int_equal(ptx_method(got), SIP_M_CANCEL);
	assert_int_equal(ptx_state(inv), PTX_CALLING);
	mkresp(&resp, 487, "INVITE");
	assert_int_equal(ptx_receive(t, &resp.m, 20, rec_send, &r, &got), PTX_RX_DELIVER);
	assert_ptr_equal(got, inv);
	ptx_table_free(t);
}

static void test_full_and_nomatch(void **state)
{
	(void)state;
	struct ptx_table *t = table();
	struct rec r = { 0 };
	char req[2048];
	struct sip_txn_dest d = udp_dest();
	mkreq(req, sizeof(req), "MESSAGE");
	struct ptx *x;
	for (unsigned i = 0; i < 8; i++) {
		char br[64];
		snprintf(br, sizeof(br), "z9hG4bKsw00%016u.x", i);
		assert_int_equal(ptx_start(t, req, strlen(req), SIP_M_MESSAGE, sw_str_c(br), &d, 0, 0, 0, &x), 0);
	}
	assert_int_equal(ptx_start(t, req, strlen(req), SIP_M_MESSAGE, sw_str_c("z9hG4bKother"), &d, 0, 0, 0, &x),
			 -ENOSPC);
	struct tmsg resp;
	mkresp(&resp, 200, "MESSAGE"); /* BR was never started here */
	assert_int_equal(ptx_receive(t, &resp.m, 1, rec_send, &r, &x), PTX_RX_NOMATCH);
	ptx_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invite_timer_a_b),
		cmocka_unit_test(test_invite_provisional_then_tu_deadline),
		cmocka_unit_test(test_invite_non2xx_ack),
		cmocka_unit_test(test_invite_2xx_accepted),
		cmocka_unit_test(test_non_invite_timers),
		cmocka_unit_test(test_reliable),
		cmocka_unit_test(test_cancel_shares_branch),
		cmocka_unit_test(test_full_and_nomatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
