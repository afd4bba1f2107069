/* Unit tests for the forwarding rules (fwd.h): the request builder (Via,
 * Max-Forwards, Record-Route, Route, Proxy-Authorization, PAI), response
 * Via removal, branches and loops, the signed Record-Route, best response. */
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
#include "proxy/fwd.h"
#include "sip/build.h"
#include "sip/parse.h"

struct tmsg {
	char text[8192];
	struct sip_hdr hdrs[64];
	struct sip_msg m;
};

static void tmsg_parse(struct tmsg *t, const char *text)
{
	struct sip_limits lim;
	struct sip_perr err;
	size_t len = strlen(text);
	memcpy(t->text, text, len + 1);
	sip_limits_default(&lim);
	ssize_t n = sip_parse(t->text, len, SIP_PARSE_DGRAM, &lim, t->hdrs, 64, &t->m, &err);
	if (n < 0)
		fail_msg("sip_parse: %zd: %s in\n%s", n, err.why ? err.why : "", text);
}

static struct proxy_keys keys(void)
{
	uint8_t secret[PROXY_KEY_LEN];
	for (int i = 0; i < PROXY_KEY_LEN; i++)
		secret[i] = (uint8_t)i;
	struct proxy_keys k;
	proxy_keys_derive(&k, secret);
	return k;
}

static const char INVITE[] =
	"INVITE sip:bob@example.test SIP/2.0\r\n"
	"Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKold\r\n"
	"Via: SIP/2.0/TCP 10.1.1.1;branch=z9hG4bKdeep\r\n"
	"Route: <sip:127.0.0.1:5060;lr>, <sip:192.0.2.50;lr>\r\n"
	"Record-Route: <sip:192.0.2.77;lr>\r\n"
	"Max-Forwards: 10\r\n"
	"From: \"Alice\" <sip:alice@example.test>;tag=f1\r\n"
	"To: <sip:bob@example.test>\r\n"
	"Call-ID: call-1@x\r\n"
	"CSeq: 2 INVITE\r\n"
	"Proxy-Authorization: Digest username=\"alice\", realm=\"example.test\", nonce=\"n\", uri=\"sip:bob@example.test\", response=\"r\"\r\n"
	"Proxy-Authorization: Digest username=\"a\", realm=\"other.test\", nonce=\"n\", uri=\"sip:bob@example.test\", response=\"r\"\r\n"
	"P-Asserted-Identity: <sip:ceo@example.test>\r\n"
	"P-Preferred-Identity: <sip:boss@example.test>\r\n"
	"Subject: hi\r\n"
	"Content-Type: application/sdp\r\n"
	"Content-Length: 4\r\n"
	"\r\n"
	"v=0\n";

static void src4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *in = (void *)ss;
	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
}

static char out[16384];

static const char *build(const struct sip_msg *m, struct fwd_opts *op)
{
	struct sip_out o;
	sip_out_init(&o, out, sizeof(out) - 1);
	assert_int_equal(fwd_build(&o, m, op), 0);
	out[o.len] = '\0';
	return out;
}

static void test_request_rules(void **state)
{
	(void)state;
	struct tmsg t;
	struct sockaddr_storage src;
	tmsg_parse(&t, INVITE);
	src4(&src, "203.0.113.9", 40000);
	struct fwd_opts op = {
		.ruri = sw_str_c("sip:bob@192.0.2.10:5080"),
		.via = sw_str_c("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKswXX;rport"),
		.src = (const struct sockaddr *)&src,
		.skip_routes = 1,
		.rr = sw_str_c("<sip:127.0.0.1:5060;transport=udp;lr;swrr=00>"),
		.realm = sw_str_c("example.test"),
		.strip_identity = true,
		.pai = sw_str_c("<sip:alice@example.test>"),
	};
	const char *s = build(&t.m, &op);
	/* §16.6 item 2: new Request-URI */
	assert_memory_equal(s, "INVITE sip:bob@192.0.2.10:5080 SIP/2.0\r\n", 40);
	/* item 8: ours first, then the previous hop's with received + rport */
	assert_non_null(strstr(s, "\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKswXX;rport\r\n"
				  "Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKabc;received=203.0.113.9;rport=40000, "
				  "SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKold\r\n"
				  "Via: SIP/2.0/TCP 10.1.1.1;branch=z9hG4bKdeep\r\n"));
	/* item 4: our Record-Route above the other */
	char *rr = strstr(s, "Record-Route: <sip:127.0.0.1:5060;transport=udp;lr;swrr=00>\r\n");
	char *rr2 = strstr(s, "Record-Route: <sip:192.0.2.77;lr>\r\n");
	assert_non_null(rr);
	assert_non_null(rr2);
	assert_true(rr < rr2);
	/* item 3 */
	assert_non_null(strstr(s, "Max-Forwards: 9\r\n"));
	assert_null(strstr(s, "Max-Forwards: 10"));
	/* §16.4: our Route gone, the next one kept */
	assert_null(strstr(s, "Route: <sip:127.0.0.1:5060;lr>"));
	assert_non_null(strstr(s, "\r\nRoute: <sip:192.0.2.50;lr>\r\n"));
	/* our realm's credentials consumed, another realm's kept */
	assert_null(strstr(s, "realm=\"example.test\""));
	assert_non_null(strstr(s, "realm=\"other.test\""));
	/* RFC 3325: identity headers from outside replaced by ours */
	assert_null(strstr(s, "ceo@"));
	assert_null(strstr(s, "boss@"));
	assert_non_null(strstr(s, "P-Asserted-Identity: <sip:alice@example.test>\r\n"));
	assert_non_null(strstr(s, "Subject: hi\r\n"));
	/* body and framing */
	assert_non_null(strstr(s, "Content-Length: 4\r\n\r\nv=0\n"));
	/* and it parses */
	struct tmsg again;
	tmsg_parse(&again, s);
	assert_int_equal(again.m.nvia, 4);
	assert_int_equal(again.m.max_forwards, 9);
}

static void test_max_forwards_absent_and_keep(void **state)
{
	(void)state;
	struct tmsg t;
	tmsg_parse(&t, "OPTIONS sip:bob@example.test SIP/2.0\r\n"
		       "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1\r\n"
		       "From: <sip:a@example.test>;tag=1\r\nTo: <sip:bob@example.test>\r\n"
		       "Call-ID: c\r\nCSeq: 1 OPTIONS\r\n"
		       "P-Asserted-Identity: <sip:pbx-said@example.test>\r\n\r\n");
	struct fwd_opts op = { .via = sw_str_c("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKswY") };
	const char *s = build(&t.m, &op);
	assert_non_null(strstr(s, "OPTIONS sip:bob@example.test SIP/2.0\r\n"));
	assert_non_null(strstr(s, "Max-Forwards: 70\r\n"));  /* §16.6 item 3 */
	/* from a trusted source nothing is stripped */
	assert_non_null(strstr(s, "P-Asserted-Identity: <sip:pbx-said@example.test>\r\n"));
	assert_null(strstr(s, "Record-Route"));
	/* no src: the previous Via is copied unchanged */
	assert_non_null(strstr(s, "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1\r\n"));
	assert_non_null(strstr(s, "Content-Length: 0\r\n\r\n"));
}

static void test_response_via_removal(void **state)
{
	(void)state;
	struct tmsg t;
	tmsg_parse(&t, "SIP/2.0 180 Ringing\r\n"
		       "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKswA, SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKb\r\n"
		       "Via: SIP/2.0/UDP 10.0.0.6;branch=z9hG4bKc\r\n"
		       "From: <sip:a@example.test>;tag=1\r\nTo: <sip:b@example.test>;tag=2\r\n"
		       "Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
	struct sip_out o;
	sip_out_init(&o, out, sizeof(out) - 1);
	assert_int_equal(fwd_response(&o, &t.m), 0);
	out[o.len] = '\0';
	assert_non_null(strstr(out, "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKb\r\n"
				    "Via: SIP/2.0/UDP 10.0.0.6;branch=z9hG4bKc\r\n"));
	assert_null(strstr(out, "z9hG4bKswA"));
	/* a response with only our Via was for us: nothing to forward */
	tmsg_parse(&t, "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKswA\r\n"
		       "From: <sip:a@example.test>;tag=1\r\nTo: <sip:b@example.test>;tag=2\r\n"
		       "Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n");
	sip_out_init(&o, out, sizeof(out));
	assert_int_equal(fwd_response(&o, &t.m), -EINVAL);
}

static void test_branch_and_loop(void **state)
{
	(void)state;
	struct proxy_keys k = keys();
	struct tmsg t;
	tmsg_parse(&t, INVITE);
	char b1[PROXY_BRANCH_MAX], b2[PROXY_BRANCH_MAX];
	uint64_t lh = proxy_loop_hash(&k, &t.m);
	size_t n1 = proxy_branch(&k, 7, 1, lh, b1);
	size_t n2 = proxy_branch(&k, 7, 2, lh, b2);
	assert_int_equal(n1, n2);
	assert_true(n1 <= PROXY_BRANCH_MAX);
	assert_memory_not_equal(b1, b2, n1);
	assert_memory_equal(b1, "z9hG4bK", 7);
	assert_int_equal(proxy_branch_worker(sw_str_mk(b1, n1)), 7);
	assert_int_equal(proxy_branch_worker(sw_str_c("z9hG4bKabc")), -1);
	assert_false(proxy_loop_detect(&k, &t.m));

	/* The same request coming back through us: loop (§16.3 item 4). */
	char text[8192];
	snprintf(text, sizeof(text), "INVITE sip:bob@example.test SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 10.0.0.99;branch=z9hG4bKnext\r\n"
		 "Via: SIP/2.0/UDP 127.0.0.1;branch=%.*s\r\n%s", (int)n1, b1,
		 strstr(INVITE, "Via: SIP/2.0/UDP 10.0.0.5"));
	struct tmsg back;
	tmsg_parse(&back, text);
	assert_true(proxy_loop_detect(&k, &back.m));
	/* A spiral: the Request-URI changed on the way: not a loop. */
	char *p = strstr(text, "sip:bob@example.test SIP/2.0");
	memcpy(p, "sip:bob@example.tesu", 20);
	tmsg_parse(&back, text);
	assert_false(proxy_loop_detect(&k, &back.m));
}

static void test_record_route_mac(void **state)
{
	(void)state;
	struct proxy_keys k = keys();
	struct proxy_flow f = { .set = true, .proto = 0, .conn_id = 0x01000005 };
	struct sockaddr_in *in = (void *)&f.addr;
	in->sin_family = AF_INET;
	in->sin_port = htons(5070);
	inet_pton(AF_INET, "10.0.0.5", &in->sin_addr);
	f.alen = sizeof(*in);
	char rr[PROXY_RR_MAX];
	size_t n = proxy_rr_build(&k, sw_str_c("127.0.0.1"), 5060, "udp", sw_str_c("call-1@x"),
				  sw_str_c("f1"), &f, rr);
	assert_true(n > 0);
	rr[n] = '\0';
	assert_non_null(strstr(rr, "<sip:127.0.0.1:5060;transport=udp;lr;swf="));

	/* An in-dialog BYE from the callee (tags swapped) carrying it. */
	char text[4096];
	snprintf(text, sizeof(text), "BYE sip:alice@10.0.0.5:5070 SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKbye\r\n"
		 "Route: %s\r\n"
		 "From: <sip:bob@example.test>;tag=t2\r\nTo: <sip:alice@example.test>;tag=f1\r\n"
		 "Call-ID: call-1@x\r\nCSeq: 9 BYE\r\n\r\n", rr);
	struct tmsg t;
	tmsg_parse(&t, text);
	struct proxy_flow got;
	struct sip_uri top;
	assert_int_equal(proxy_route_check(&k, &t.m, &got, &top), PROXY_ROUTE_OURS);
	assert_true(got.set);
	assert_int_equal(got.conn_id, 0x01000005);
	assert_int_equal(ntohs(((struct sockaddr_in *)&got.addr)->sin_port), 5070);

	/* Another Call-ID with the same Route: forged. */
	char *c = strstr(text, "Call-ID: call-1@x");
	memcpy(c, "Call-ID: call-2@x", 17);
	tmsg_parse(&t, text);
	assert_int_equal(proxy_route_check(&k, &t.m, &got, &top), PROXY_ROUTE_FORGED);
	/* A tampered flow: forged. */
	memcpy(c, "Call-ID: call-1@x", 17);
	char *sw = strstr(text, ";swf=") + 5;
	sw[12] = sw[12] == '0' ? '1' : '0';
	tmsg_parse(&t, text);
	assert_int_equal(proxy_route_check(&k, &t.m, &got, &top), PROXY_ROUTE_FORGED);
	/* Somebody else's Route, and none. */
	tmsg_parse(&t, "BYE sip:a@10.0.0.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKb\r\n"
		       "Route: <sip:192.0.2.1;lr>\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\n"
		       "Call-ID: c\r\nCSeq: 1 BYE\r\n\r\n");
	assert_int_equal(proxy_route_check(&k, &t.m, &got, &top), PROXY_ROUTE_OTHER);
	assert_int_equal(proxy_route_nth(&t.m, 1, &top), 0);
	tmsg_parse(&t, "BYE sip:a@10.0.0.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKb\r\n"
		       "From: <sip:b@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n");
	assert_int_equal(proxy_route_check(&k, &t.m, &got, &top), PROXY_ROUTE_NONE);
}

static void test_flow_roundtrip_v6(void **state)
{
	(void)state;
	struct proxy_flow f = { .set = true, .proto = 1, .conn_id = 0xff00abcd }, g;
	struct sockaddr_in6 *in6 = (void *)&f.addr;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(5061);
	inet_pton(AF_INET6, "2001:db8::7", &in6->sin6_addr);
	char buf[PROXY_FLOW_MAX];
	size_t n = proxy_flow_encode(&f, buf);
	assert_int_equal(proxy_flow_decode(sw_str_mk(buf, n), &g), 0);
	assert_int_equal(g.proto, 1);
	assert_int_equal(g.conn_id, 0xff00abcd);
	assert_memory_equal(((struct sockaddr_in6 *)&g.addr)->sin6_addr.s6_addr, in6->sin6_addr.s6_addr, 16);
	assert_int_equal(proxy_flow_decode(sw_str_c("zz"), &g), -EINVAL);
}

static void test_best_response(void **state)
{
	(void)state;
	static const struct {
		unsigned st[4];
		unsigned n;
		int want;
	} rows[] = {
		{ { 0 }, 0, -1 },
		{ { 486 }, 1, 0 },
		{ { 486, 404, 302 }, 3, 2 },        /* lowest class */
		{ { 486, 603, 302 }, 3, 1 },        /* a 6xx wins */
		{ { 404, 407, 500 }, 3, 1 },        /* 407 preferred in 4xx */
		{ { 408, 503 }, 2, 0 },
		{ { 503, 500 }, 2, 0 },
	};
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(proxy_best(rows[i].st, rows[i].n), rows[i].want);
	assert_int_equal(proxy_best_status(503), 500);
	assert_int_equal(proxy_best_status(486), 486);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_rules),
		cmocka_unit_test(test_max_forwards_absent_and_keep),
		cmocka_unit_test(test_response_via_removal),
		cmocka_unit_test(test_branch_and_loop),
		cmocka_unit_test(test_record_route_mac),
		cmocka_unit_test(test_flow_roundtrip_v6),
		cmocka_unit_test(test_best_response),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
