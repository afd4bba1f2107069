/* Unit tests for the response builder (build.h). */
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

static __attribute__((unused)) void sa6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in6 *in6 = (void *)ss;
	memset(ss, 0, sizeof(*ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
}

#define REQ_HEAD "INVITE sip:bob@example.com SIP/2.0\r\n"
#define REQ_TAIL                                                   \
	"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"    \
	"To: Bob <sip:bob@example.com>\r\n"                         \
	"Call-ID: a84b4c76e66710@pc33.example.com\r\n"              \
	"CSeq: 314159 INVITE\r\n"                                   \
	"Max-Forwards: 70\r\n"                                      \
	"Content-Length: 0\r\n"                                     \
	"\r\n"

static char obuf[4096];

/* Build a response to `text` from `src` and return it NUL-terminated. */
static const char *respond(struct tmsg *t, const char *text, const struct sockaddr *src,
			   unsigned status, struct sw_str tag)
{
	struct sip_out o;
	tmsg_parse(t, text);
	sip_out_init(&o, obuf, sizeof(obuf) - 1);
	assert_int_equal(sip_resp_begin(&o, &t->m, src, status, NULL, tag), 0);
	assert_int_equal(sip_resp_end(&o, SW_STR_NULL, SW_STR_NULL), 0);
	obuf[o.len] = '\0';
	return obuf;
}

static void test_out_overflow(void **state)
{
	(void)state;
	char buf[10];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof(buf));
	sip_out_cstr(&o, "abcde");
	assert_int_equal(o.len, 5);
	assert_false(o.overflow);
	sip_out_cstr(&o, "123456"); /* does not fit: nothing written */
	assert_true(o.overflow);
	assert_int_equal(o.len, 5);
	sip_out_cstr(&o, "x"); /* sticky */
	assert_int_equal(o.len, 5);
	assert_memory_equal(buf, "abcde", 5);

	sip_out_init(&o, buf, sizeof(buf));
	sip_out_u64(&o, 18446744073709551615ull); /* 20 digits > 10 */
	assert_true(o.overflow);
	assert_int_equal(o.len, 0);

	sip_out_init(&o, buf, sizeof(buf));
	sip_out_u64(&o, 0);
	sip_out_printf(&o, "-%d-", 42);
	assert_false(o.overflow);
	assert_int_equal(o.len, 5);
	assert_memory_equal(buf, "0-42-", 5);
	sip_out_printf(&o, "%s", "12345"); /* exactly 10 would need the NUL slot */
	assert_true(o.overflow);
	assert_int_equal(o.len, 5);

	sip_out_init(&o, buf, sizeof(buf));
	sip_out_put(&o, "0123456789", 10); /* exactly full is fine */
	assert_false(o.overflow);
	assert_int_equal(o.len, 10);
	sip_out_put(&o, "", 0);
	assert_false(o.overflow);
}

static void test_reason_phrases(void **state)
{
	(void)state;
	static const struct {
		unsigned code;
		const char *phrase;
	} rows[] = {
		{ 100, "Trying" }, { 180, "Ringing" }, { 183, "Session Progress" },
		{ 200, "OK" }, { 302, "Moved Temporarily" }, { 400, "Bad Request" },
		{ 401, "Unauthorized" }, { 403, "Forbidden" }, { 407, "Proxy Authentication Required" },
		{ 408, "Request Timeout" }, { 413, "Request Entity Too Large" },
		{ 416, "Unsupported URI Scheme" }, { 420, "Bad Extension" },
		{ 423, "Interval Too Brief" }, { 429, "Provide Referrer Identity" },
		{ 481, "Call/Transaction Does Not Exist" }, { 483, "Too Many Hops" },
		{ 487, "Request Terminated" }, { 494, "Security Agreement Required" },
		{ 501, "Not Implemented" }, { 503, "Service Unavailable" },
		{ 505, "Version Not Supported" }, { 603, "Decline" },
		/* unknown codes read as x00 of their class (RFC 3261 §21) */
		{ 499, "Bad Request" }, { 299, "OK" }, { 699, "Busy Everywhere" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_string_equal(sip_reason_phrase(rows[i].code), rows[i].phrase);
}

static void test_resp_basic_tag_added(void **state)
{
	(void)state;
	struct tmsg t;
	struct sockaddr_storage src;
	sa4(&src, "192.0.2.4", 5060);
	const char *r = respond(&t, REQ_HEAD
				"Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds8\r\n" REQ_TAIL,
				(struct sockaddr *)&src, 486, sw_str_c("abc123"));
	assert_string_equal(r, "SIP/2.0 486 Busy Here\r\n"
			       "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds8\r\n"
			       "From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
			       "To: Bob <sip:bob@example.com>;tag=abc123\r\n"
			       "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
			       "CSeq: 314159 INVITE\r\n"
			       "Content-Length: 0\r\n\r\n");
}

static void test_resp_tag_rules(void **state)
{
	(void)state;
	struct tmsg t;
	struct sockaddr_storage src;
	sa4(&src, "192.0.2.4", 5060);
	/* 100 Trying never gets a To tag (RFC 3261 §8.2.6.1) */
	const char *r = respond(&t, REQ_HEAD "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1\r\n" REQ_TAIL,
				(struct sockaddr *)&src, 100, sw_str_c("abc"));
	assert_non_null(strstr(r, "SIP/2.0 100 Trying\r\n"));
	assert_non_null(strstr(r, "\r\nTo: Bob <sip:bob@example.com>\r\n"));
	/* empty tag: nothing added */
	r = respond(&t, REQ_HEAD "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1\r\n" REQ_TAIL,
		    (struct sockaddr *)&src, 200, SW_STR_NULL);
	assert_non_null(strstr(r, "\r\nTo: Bob <sip:bob@example.com>\r\n"));
	/* a To that has a tag keeps it and gets no second one */
	r = respond(&t,
		    "BYE sip:bob@example.com SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK2\r\n"
		    "From: <sip:alice@example.com>;tag=a1\r\n"
		    "To: <sip:bob@example.com>;tag=b2\r\n"
		    "Call-ID: x@y\r\n"
		    "CSeq: 2 BYE\r\n\r\n",
		    (struct sockaddr *)&src, 200, sw_str_c("zzz"));
	assert_non_null(strstr(r, "\r\nTo: <sip:bob@example.com>;tag=b2\r\n"));
	assert_null(strstr(r, "zzz"));
}

static void test_resp_rport(void **state)
{
	(void)state;
	struct tmsg t;
	struct sockaddr_storage src;
	sa4(&src, "198.51.100.7", 40000);
	/* RFC 3581 §4: received even when equal would apply; rport filled in place */
	const char *r = respond(&t, REQ_HEAD
				"Via: SIP/2.0/UDP 10.0.0.1:5062;rport;branch=z9hG4bKabc\r\n" REQ_TAIL,
				(struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, "\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;received=198.51.100.7;rport=40000;branch=z9hG4bKabc\r\n"));

	/* rport at the end; source equal to sent-by: received still added */
	sa4(&src, "10.0.0.1", 5062);
	r = respond(&t, REQ_HEAD "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport\r\n" REQ_TAIL,
		    (struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, "\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;received=10.0.0.1;rport=5062\r\n"));

	/* no src: copied as is */
	struct sip_out o;
	tmsg_parse(&t, REQ_HEAD "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport\r\n" REQ_TAIL);
	sip_out_init(&o, obuf, sizeof(obuf) - 1);
	assert_int_equal(sip_resp_begin(&o, &t.m, NULL, 200, NULL, SW_STR_NULL), 0);
	obuf[o.len] = '\0';
	assert_non_null(strstr(obuf, "\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport\r\n"));
}

static void test_resp_received_only(void **state)
{
	(void)state;
	struct tmsg t;
	struct sockaddr_storage src;
	/* RFC 3261 §18.2.1: sent-by is a name → received */
	sa4(&src, "192.0.2.99", 5060);
	const char *r = respond(&t, REQ_HEAD
				"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n" REQ_TAIL,
				(struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, "\r\nVia: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds;received=192.0.2.99\r\n"));
	/* a stale received is replaced, not duplicated */
	r = respond(&t, REQ_HEAD
		    "Via: SIP/2.0/UDP pc33.example.com;received=1.1.1.1;branch=z9hG4bK7\r\n" REQ_TAIL,
		    (struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, "\r\nVia: SIP/2.0/UDP pc33.example.com;received=192.0.2.99;branch=z9hG4bK7\r\n"));
	assert_null(strstr(r, "1.1.1.1"));
	/* IPv6 source, name in sent-by: received without brackets (RFC 3261 §25.1) */
	sa6(&src, "2001:db8::9", 5060);
	r = respond(&t, REQ_HEAD "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK8\r\n" REQ_TAIL,
		    (struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, ";branch=z9hG4bK8;received=2001:db8::9\r\n"));
	/* IPv6 sent-by equal to the source (different spelling): unchanged */
	r = respond(&t, REQ_HEAD "Via: SIP/2.0/UDP [2001:DB8:0::9]:5060;branch=z9hG4bK9\r\n" REQ_TAIL,
		    (struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, "\r\nVia: SIP/2.0/UDP [2001:DB8:0::9]:5060;branch=z9hG4bK9\r\n"));
	/* IPv4-mapped source equal to an IPv4 sent-by: unchanged */
	sa6(&src, "::ffff:192.0.2.4", 5060);
	r = respond(&t, REQ_HEAD "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKa\r\n" REQ_TAIL,
		    (struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, "\r\nVia: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKa\r\n"));
	/* ... and shown as IPv4 when it differs */
	r = respond(&t, REQ_HEAD "Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKa;rport\r\n" REQ_TAIL,
		    (struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, ";branch=z9hG4bKa;received=192.0.2.4;rport=5060\r\n"));
}

static void test_resp_multi_via(void **state)
{
	(void)state;
	struct tmsg t;
	struct sockaddr_storage src;
	sa4(&src, "203.0.113.1", 6000);
	const char *r = respond(&t,
				REQ_HEAD
				"Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1;rport , SIP/2.0/TCP p2.example.com:5070;branch=z9hG4bKp2;rport\r\n"
				"v: SIP/2.0/UDP p3.example.com;branch=z9hG4bKp3\r\n"
				"Via: SIP/2.0/UDP \"odd\";branch=z9hG4bKp4\r\n" REQ_TAIL,
				(struct sockaddr *)&src, 404, sw_str_c("t"));
	/* amended only in the first via-parm; the rest verbatim, order kept */
	assert_non_null(strstr(r,
			       "\r\nVia: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1;received=203.0.113.1;rport=6000 , SIP/2.0/TCP p2.example.com:5070;branch=z9hG4bKp2;rport\r\n"
			       "Via: SIP/2.0/UDP p3.example.com;branch=z9hG4bKp3\r\n"
			       "Via: SIP/2.0/UDP \"odd\";branch=z9hG4bKp4\r\n"
			       "From: "));
}

static void test_resp_quoted_param(void **state)
{
	(void)state;
	struct tmsg t;
	struct sockaddr_storage src;
	sa4(&src, "203.0.113.1", 6000);
	/* a quoted gen-value containing ';' is one parameter */
	const char *r = respond(&t, REQ_HEAD
				"Via: SIP/2.0/UDP h.example.com;x=\"a;rport\";branch=z9hG4bKq\r\n" REQ_TAIL,
				(struct sockaddr *)&src, 200, sw_str_c("t"));
	assert_non_null(strstr(r, "\r\nVia: SIP/2.0/UDP h.example.com;x=\"a;rport\";branch=z9hG4bKq;received=203.0.113.1\r\n"));
}

static void test_resp_body_and_reason(void **state)
{
	(void)state;
	struct tmsg t;
	struct sip_out o;
	struct sockaddr_storage src;
	sa4(&src, "192.0.2.4", 5060);
	tmsg_parse(&t, REQ_HEAD "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1\r\n" REQ_TAIL);
	sip_out_init(&o, obuf, sizeof(obuf) - 1);
	/* a caller's phrase cannot end the line (header injection) */
	assert_int_equal(sip_resp_begin(&o, &t.m, (struct sockaddr *)&src, 400, "Bad\r\nX: y", sw_str_c("t")), 0);
	sip_out_cstr(&o, "Server: sipwarden\r\n");
	assert_int_equal(sip_resp_end(&o, sw_str_c("text/plain"), sw_str_c("hello")), 0);
	obuf[o.len] = '\0';
	assert_true(strncmp(obuf, "SIP/2.0 400 Bad  X: y\r\n", 23) == 0);
	const char *tail = "CSeq: 314159 INVITE\r\nServer: sipwarden\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
	assert_string_equal(obuf + strlen(obuf) - strlen(tail), tail);

	/* bad status, unreplyable request */
	sip_out_init(&o, obuf, sizeof(obuf));
	assert_int_equal(sip_resp_begin(&o, &t.m, NULL, 99, NULL, SW_STR_NULL), -EINVAL);
	assert_int_equal(sip_resp_begin(&o, &t.m, NULL, 700, NULL, SW_STR_NULL), -EINVAL);
	t.m.replyable = false;
	assert_int_equal(sip_resp_begin(&o, &t.m, NULL, 400, NULL, SW_STR_NULL), -EINVAL);
}

static void test_resp_folded_value(void **state)
{
	(void)state;
	struct tmsg t;
	struct sockaddr_storage src;
	sa4(&src, "192.0.2.4", 5060);
	tmsg_parse(&t, REQ_HEAD "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1\r\n" REQ_TAIL);
	/* simulate a folded Call-ID value as the parser would leave it */
	static const char folded[] = "abc\r\n def";
	t.hdrs[t.m.first[SIP_H_CALL_ID]].value = SW_STR_LIT(folded);
	struct sip_out o;
	sip_out_init(&o, obuf, sizeof(obuf) - 1);
	assert_int_equal(sip_resp_begin(&o, &t.m, (struct sockaddr *)&src, 200, NULL, SW_STR_NULL), 0);
	obuf[o.len] = '\0';
	assert_non_null(strstr(obuf, "\r\nCall-ID: abc   def\r\n"));
}

static void test_resp_overflow(void **state)
{
	(void)state;
	struct tmsg t;
	struct sip_out o;
	char small[64];
	tmsg_parse(&t, REQ_HEAD "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bK1\r\n" REQ_TAIL);
	memset(small, 'Z', sizeof(small));
	sip_out_init(&o, small, sizeof(small) - 8);
	assert_int_equal(sip_resp_begin(&o, &t.m, NULL, 200, NULL, SW_STR_NULL), -ENOSPC);
	assert_int_equal(sip_resp_end(&o, SW_STR_NULL, SW_STR_NULL), -ENOSPC);
	assert_true(o.len <= sizeof(small) - 8);
	for (size_t i = sizeof(small) - 8; i < sizeof(small); i++)
		assert_int_equal(small[i], 'Z'); /* nothing past cap */

	/* begin fits, end does not */
	char mid[300];
	sip_out_init(&o, mid, sizeof(mid));
	assert_int_equal(sip_resp_begin(&o, &t.m, NULL, 200, NULL, SW_STR_NULL), 0);
	char body[200];
	memset(body, 'b', sizeof(body));
	assert_int_equal(sip_resp_end(&o, sw_str_c("text/plain"), sw_str_mk(body, sizeof(body))), -ENOSPC);
}

static void dest_case(const char *via, const struct sockaddr_storage *src, int fam,
		      const char *ip, uint16_t port)
{
	struct tmsg t;
	char text[1024];
	snprintf(text, sizeof(text), REQ_HEAD "Via: %s\r\n" REQ_TAIL, via);
	tmsg_parse(&t, text);
	struct sockaddr_storage d;
	socklen_t dl = 0;
	assert_int_equal(sip_resp_dest(&t.m, (const struct sockaddr *)src, &d, &dl), 0);
	assert_int_equal(d.ss_family, fam);
	char host[INET6_ADDRSTRLEN];
	if (fam == AF_INET) {
		struct sockaddr_in *in = (void *)&d;
		assert_int_equal(dl, sizeof(*in));
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		assert_int_equal(ntohs(in->sin_port), port);
	} else {
		struct sockaddr_in6 *in6 = (void *)&d;
		assert_int_equal(dl, sizeof(*in6));
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		assert_int_equal(ntohs(in6->sin6_port), port);
	}
	assert_string_equal(host, ip);
}

static void test_resp_dest(void **state)
{
	(void)state;
	struct sockaddr_storage s4, s6;
	sa4(&s4, "198.51.100.7", 40000);
	sa6(&s6, "2001:db8::7", 41000);
	/* RFC 3581: rport → source address and port */
	dest_case("SIP/2.0/UDP 10.0.0.1:5062;rport;branch=z9hG4bK1", &s4, AF_INET, "198.51.100.7", 40000);
	dest_case("SIP/2.0/UDP [fe80::1]:5062;rport;branch=z9hG4bK1", &s6, AF_INET6, "2001:db8::7", 41000);
	/* §18.2.2: received address, sent-by port */
	dest_case("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1", &s4, AF_INET, "198.51.100.7", 5062);
	/* ... or 5060 */
	dest_case("SIP/2.0/UDP pc.example.com;branch=z9hG4bK1", &s4, AF_INET, "198.51.100.7", 5060);
	dest_case("SIP/2.0/UDP pc.example.com;branch=z9hG4bK1", &s6, AF_INET6, "2001:db8::7", 5060);
	/* maddr wins, with the sent-by port or 5060 */
	dest_case("SIP/2.0/UDP pc.example.com:5070;maddr=239.255.255.1;rport;branch=z9hG4bK1", &s4,
		  AF_INET, "239.255.255.1", 5070);
	dest_case("SIP/2.0/UDP pc.example.com;maddr=[2001:db8::99];branch=z9hG4bK1", &s4, AF_INET6,
		  "2001:db8::99", 5060);
	/* maddr that is a name: no DNS here, the source is used */
	dest_case("SIP/2.0/UDP pc.example.com;maddr=mc.example.com;branch=z9hG4bK1", &s4, AF_INET,
		  "198.51.100.7", 5060);

	struct tmsg t;
	struct sockaddr_storage d;
	socklen_t dl;
	tmsg_parse(&t, REQ_HEAD "Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n" REQ_TAIL);
	assert_int_equal(sip_resp_dest(&t.m, NULL, &d, &dl), -EINVAL);
}

static void test_to_tag(void **state)
{
	(void)state;
	struct sw_hkey key = { 1, 2 }, key2 = { 3, 4 };
	struct tmsg a, b;
	char t1[17], t2[17], t3[17];
	tmsg_parse(&a, REQ_HEAD "Via: SIP/2.0/UDP h;branch=z9hG4bKone\r\n" REQ_TAIL);
	sip_to_tag(&key, &a.m, t1);
	assert_int_equal(strlen(t1), 16);
	assert_int_equal(strspn(t1, "0123456789abcdef"), 16);
	/* stable for a retransmission (parsed again) */
	tmsg_parse(&b, REQ_HEAD "Via: SIP/2.0/UDP h;branch=z9hG4bKone\r\n" REQ_TAIL);
	sip_to_tag(&key, &b.m, t2);
	assert_string_equal(t1, t2);
	/* depends on the key and the branch */
	sip_to_tag(&key2, &b.m, t3);
	assert_string_not_equal(t1, t3);
	tmsg_parse(&b, REQ_HEAD "Via: SIP/2.0/UDP h;branch=z9hG4bKtwo\r\n" REQ_TAIL);
	sip_to_tag(&key, &b.m, t2);
	assert_string_not_equal(t1, t2);
	/* without branch: CSeq number */
	tmsg_parse(&a, REQ_HEAD "Via: SIP/2.0/UDP h\r\n" REQ_TAIL);
	sip_to_tag(&key, &a.m, t1);
	tmsg_parse(&b, REQ_HEAD "Via: SIP/2.0/UDP h\r\n" REQ_TAIL);
	sip_to_tag(&key, &b.m, t2);
	assert_string_equal(t1, t2);
	b.m.cseq.num++;
	sip_to_tag(&key, &b.m, t2);
	assert_string_not_equal(t1, t2);
}

/* sip_resp_begin is the status line followed by sip_resp_copied, and the
 * copied part of a retransmission (the same text parsed again, from the
 * same source) is the same bytes: what a transaction relies on when it
 * keeps a reply without them. */
static void test_resp_parts(void **state)
{
	(void)state;
	static const char text[] = REQ_HEAD
		"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds;rport\r\n"
		"v: SIP/2.0/TCP p1.example.com;branch=z9hG4bKp1, SIP/2.0/UDP p2.example.com\r\n" REQ_TAIL;
	struct sockaddr_storage src;
	sa4(&src, "192.0.2.4", 5070);
	for (unsigned status = 100; status <= 200; status += 100) {
		struct tmsg t1, t2;
		char a[2048], b[2048];
		struct sip_out oa, ob;
		tmsg_parse(&t1, text);
		sip_out_init(&oa, a, sizeof(a));
		assert_int_equal(sip_resp_begin(&oa, &t1.m, (struct sockaddr *)&src, status, NULL,
						sw_str_c("t0")), 0);
		tmsg_parse(&t2, text);
		sip_out_init(&ob, b, sizeof(b));
		sip_resp_status(&ob, status, NULL);
		size_t at = ob.len;
		assert_int_equal(sip_resp_copied(&ob, &t2.m, (struct sockaddr *)&src, status,
						 sw_str_c("t0")), 0);
		assert_int_equal(oa.len, ob.len);
		assert_memory_equal(a, b, oa.len);
		assert_memory_equal(b, status == 100 ? "SIP/2.0 100 Trying\r\nVia: " : "SIP/2.0 200 OK\r\nVia: ",
				    at + 5);
		b[ob.len] = '\0';
		assert_non_null(strstr(b, "received=192.0.2.4;rport=5070"));
		assert_int_equal(strstr(b, ";tag=t0") != NULL, status > 100);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_overflow),
		cmocka_unit_test(test_reason_phrases),
		cmocka_unit_test(test_resp_basic_tag_added),
		cmocka_unit_test(test_resp_parts),
		cmocka_unit_test(test_resp_tag_rules),
		cmocka_unit_test(test_resp_rport),
		cmocka_unit_test(test_resp_received_only),
		cmocka_unit_test(test_resp_multi_via),
		cmocka_unit_test(test_resp_quoted_param),
		cmocka_unit_test(test_resp_body_and_reason),
		cmocka_unit_test(test_resp_folded_value),
		cmocka_unit_test(test_resp_overflow),
		cmocka_unit_test(test_resp_dest),
		cmocka_unit_test(test_to_tag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
