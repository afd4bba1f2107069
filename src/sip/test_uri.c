/* URI parser and comparison: table-driven, rows from RFC 3261 §19.1,
 * RFC 4475 (semiuri, intmeth, esc01, escnull, unkscm, unksm2, novelsc,
 * lwsruri, regescrt) and RFC 5118 (ipv6-*, port-*, 3-colon form). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "sip/fields.h"

static void str_is(struct sw_str got, const char *want, const char *what, const char *in)
{
	if (!want) {
		if (got.len != 0)
			fail_msg("%s: %s: expected empty, got '%.*s'", in, what, SW_STR_FMT(got));
		return;
	}
	if (!got.p || got.len != strlen(want) || memcmp(got.p, want, got.len) != 0)
		fail_msg("%s: %s: expected '%s', got '%.*s'", in, what, want,
			 got.p ? (int)got.len : 6, got.p ? got.p : "(null)");
}

struct uri_row {
	const char *in;
	int rc;
	enum sip_uri_scheme scheme;
	const char *user, *password, *host;
	bool v6;
	uint16_t port;
	const char *params, *headers;
	const char *transport, *maddr, *user_param;
	bool lr;
	const char *opaque;
};

#define OK(in_, sch, u, pw, h, v6_, port_, prm, hdr, tr, ma, up, lr_, op) \
	{ in_, 0, sch, u, pw, h, v6_, port_, prm, hdr, tr, ma, up, lr_, op }
#define BAD(in_) { .in = in_, .rc = -EBADMSG }

static const struct uri_row uri_rows[] = {
	OK("sip:alice@atlanta.com", SIP_URI_SIP, "alice", NULL, "atlanta.com", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("SIP:alice@atlanta.com", SIP_URI_SIP, "alice", NULL, "atlanta.com", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:alice:secretword@atlanta.com;transport=tcp", SIP_URI_SIP, "alice", "secretword", "atlanta.com", false, 0,
	   ";transport=tcp", NULL, "tcp", NULL, NULL, false, NULL),
	OK("sips:alice@atlanta.com?subject=project%20x&priority=urgent", SIP_URI_SIPS, "alice", NULL, "atlanta.com", false, 0,
	   NULL, "subject=project%20x&priority=urgent", NULL, NULL, NULL, false, NULL),
	OK("sip:+1-212-555-1212:1234@gateway.com;user=phone", SIP_URI_SIP, "+1-212-555-1212", "1234", "gateway.com", false, 0,
	   ";user=phone", NULL, NULL, NULL, "phone", false, NULL),
	OK("sips:1212@gateway.com", SIP_URI_SIPS, "1212", NULL, "gateway.com", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:alice@192.0.2.4", SIP_URI_SIP, "alice", NULL, "192.0.2.4", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com", SIP_URI_SIP, NULL, NULL, "atlanta.com", false, 0,
	   ";method=REGISTER", "to=alice%40atlanta.com", NULL, NULL, NULL, false, NULL),
	OK("sip:alice;day=tuesday@atlanta.com", SIP_URI_SIP, "alice;day=tuesday", NULL, "atlanta.com", false, 0,
	   NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:p1.example.com;lr", SIP_URI_SIP, NULL, NULL, "p1.example.com", false, 0, ";lr", NULL, NULL, NULL, NULL, true, NULL),
	OK("sip:proxy.example.com:5061;transport=tls;maddr=239.255.255.1;LR;ttl=15", SIP_URI_SIP, NULL, NULL, "proxy.example.com",
	   false, 5061, ";transport=tls;maddr=239.255.255.1;LR;ttl=15", NULL, "tls", "239.255.255.1", NULL, true, NULL),
	OK("sip:host.example.com.", SIP_URI_SIP, NULL, NULL, "host.example.com.", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:user:@host", SIP_URI_SIP, "user", "", "host", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:u@h:1", SIP_URI_SIP, "u", NULL, "h", false, 1, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:u@h:65535", SIP_URI_SIP, "u", NULL, "h", false, 65535, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:u@h:05060", SIP_URI_SIP, "u", NULL, "h", false, 5060, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:h?a=", SIP_URI_SIP, NULL, NULL, "h", false, 0, NULL, "a=", NULL, NULL, NULL, false, NULL),
	/* RFC 4475 semiuri: ';' in the user part, escaped '@' */
	OK("sip:user;par=u%40example.net@example.com", SIP_URI_SIP, "user;par=u%40example.net", NULL, "example.com", false, 0,
	   NULL, NULL, NULL, NULL, NULL, false, NULL),
	/* RFC 4475 intmeth Request-URI */
	OK("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
	   SIP_URI_SIP, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*", "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)",
	   "example.com", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com",
	   SIP_URI_SIP, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*", NULL,
	   "example.com", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	/* RFC 4475 esc01, escnull, escruri */
	OK("sip:%75se%72@example.com", SIP_URI_SIP, "%75se%72", NULL, "example.com", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:I%20have%20spaces@example.net", SIP_URI_SIP, "I%20have%20spaces", NULL, "example.net", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:null-%00-null@example.com", SIP_URI_SIP, "null-%00-null", NULL, "example.com", false, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:sips%3Auser%40example.com@example.net", SIP_URI_SIP, "sips%3Auser%40example.com", NULL, "example.net", false, 0,
	   NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:user@example.com?Route=%3Csip:example.com%3E", SIP_URI_SIP, "user", NULL, "example.com", false, 0,
	   NULL, "Route=%3Csip:example.com%3E", NULL, NULL, NULL, false, NULL),
	OK("sip:user@example.com;lr?Route=%3Csip:sip.example.com%3E", SIP_URI_SIP, "user", NULL, "example.com", false, 0,
	   ";lr", "Route=%3Csip:sip.example.com%3E", NULL, NULL, NULL, true, NULL),
	OK("sip:watson@bell-telephone.com;unknownparam", SIP_URI_SIP, "watson", NULL, "bell-telephone.com", false, 0,
	   ";unknownparam", NULL, NULL, NULL, NULL, false, NULL),
	/* RFC 5118 */
	OK("sip:[2001:db8::10]", SIP_URI_SIP, NULL, NULL, "2001:db8::10", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:[2001:db8::10:5070]", SIP_URI_SIP, NULL, NULL, "2001:db8::10:5070", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:[2001:db8::10]:5070", SIP_URI_SIP, NULL, NULL, "2001:db8::10", true, 5070, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:user@[2001:db8:::192.0.2.1]", SIP_URI_SIP, "user", NULL, "2001:db8:::192.0.2.1", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:user@[2001:db8::192.0.2.1]", SIP_URI_SIP, "user", NULL, "2001:db8::192.0.2.1", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:ted@[::ffff:192.0.2.2]", SIP_URI_SIP, "ted", NULL, "::ffff:192.0.2.2", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:caller@[2001:db8::1];transport=udp", SIP_URI_SIP, "caller", NULL, "2001:db8::1", true, 0,
	   ";transport=udp", NULL, "udp", NULL, NULL, false, NULL),
	OK("sip:[::1]", SIP_URI_SIP, NULL, NULL, "::1", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:[::]", SIP_URI_SIP, NULL, NULL, "::", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:[1::]", SIP_URI_SIP, NULL, NULL, "1::", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:[1:2:3:4:5:6:7:8]", SIP_URI_SIP, NULL, NULL, "1:2:3:4:5:6:7:8", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:[1:2:3:4:5:6:192.0.2.1]", SIP_URI_SIP, NULL, NULL, "1:2:3:4:5:6:192.0.2.1", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	OK("sip:[FE80::ABCD]", SIP_URI_SIP, NULL, NULL, "FE80::ABCD", true, 0, NULL, NULL, NULL, NULL, NULL, false, NULL),
	/* tel: and other schemes stay opaque (RFC 4475 unkscm, unksm2, novelsc) */
	OK("tel:+1-201-555-0123", SIP_URI_TEL, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false, "+1-201-555-0123"),
	OK("tel:7042;phone-context=example.com", SIP_URI_TEL, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false,
	   "7042;phone-context=example.com"),
	OK("soap.beep://192.0.2.103:3002", SIP_URI_OTHER, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false,
	   "//192.0.2.103:3002"),
	OK("nobodyKnowsThisScheme:totallyopaquecontent", SIP_URI_OTHER, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false,
	   "totallyopaquecontent"),
	OK("http://www.example.com", SIP_URI_OTHER, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false, "//www.example.com"),
	OK("mailto:a@b.example", SIP_URI_OTHER, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false, "a@b.example"),
	OK("isbn:2983792873", SIP_URI_OTHER, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false, "2983792873"),
	OK("name:John_Smith", SIP_URI_OTHER, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false, "John_Smith"),
	OK("a+b-c.d:x%zz", SIP_URI_OTHER, NULL, NULL, NULL, false, 0, NULL, NULL, NULL, NULL, NULL, false, "x%zz"),

	/* errors */
	BAD(""),
	BAD("sip:"),
	BAD("sip"),
	BAD(":user@host"),
	BAD("1sip:user@host"),
	BAD("s_p:user@host"),
	BAD("sip:user@"),
	BAD("sip:@host"),
	BAD("sip:user@host:"),
	BAD("sip:user@host:0"),
	BAD("sip:user@host:65536"),
	BAD("sip:user@host:99999999999999999999"),
	BAD("sip:user@host:5x"),
	BAD("sip:user@ho st"),
	BAD("sip:user@example.com; lr"),       /* RFC 4475 lwsruri */
	BAD(" sip:user@example.com"),
	BAD("sip:user@example.com "),
	BAD("sip:user@exa\r\n mple.com"),
	BAD("sip:2001:db8::10"),               /* RFC 5118 ipv6-bad */
	BAD("sip:[2001:db8::10"),
	BAD("sip:[2001:db8::10]x"),
	BAD("sip:[2001:db8::10]:"),
	BAD("sip:[]"),
	BAD("sip:[:]"),
	BAD("sip:[:::]"),
	BAD("sip:[1:2:3:4:5:6:7:8:9]"),
	BAD("sip:[1:2:3:4:5:6:7]"),
	BAD("sip:[1::2::3]"),
	BAD("sip:[12345::1]"),
	BAD("sip:[g::1]"),
	BAD("sip:[1:]"),
	BAD("sip:[:1]"),
	BAD("sip:[1:::2]"),
	BAD("sip:[::192.0.2.1:1]"),
	BAD("sip:[::192.0.2.256]"),
	BAD("sip:[1:2:3:4:5:6:7:192.0.2.1]"),
	BAD("sip:u@1.2.3.999"),
	BAD("sip:u@1.2.3"),
	BAD("sip:u@1.2.3.4.5"),
	BAD("sip:u@-host.com"),
	BAD("sip:u@host-.com"),
	BAD("sip:u@host..com"),
	BAD("sip:u@.host.com"),
	BAD("sip:u@ho_st.com"),
	BAD("sip:us%2er@host%"),
	BAD("sip:us%zzer@host"),
	BAD("sip:user%4@host"),
	BAD("sip:user%@host"),
	BAD("sip:u:p%g0@host"),
	BAD("sip:u:p;x@host"),
	BAD("sip:us\"er@host"),
	BAD("sip:us<er@host"),
	BAD("sip:u@host;"),
	BAD("sip:u@host;;lr"),
	BAD("sip:u@host;a="),
	BAD("sip:u@host;=b"),
	BAD("sip:u@host;a=b c"),
	BAD("sip:u@host;a=\"b\""),
	BAD("sip:u@host;transport"),
	BAD("sip:u@host;maddr"),
	BAD("sip:u@host;user"),
	BAD("sip:u@host?"),
	BAD("sip:u@host?a"),
	BAD("sip:u@host?=b"),
	BAD("sip:u@host?a=b&"),
	BAD("sip:u@host?a=b&&c=d"),
	BAD("sip:u@host?a=%4"),
	BAD("sip:u@host?a=b@c"),
	BAD("sip:a@b@c"),
	BAD("sip:u@h\x7f"),
	BAD("sip:u@h\x80"),
	BAD("tel:"),
	BAD("tel:+1 234"),
	BAD("x:"),
	BAD("x:<y>"),
	BAD("x:\"y\""),
};

static void test_uri_rows(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(uri_rows) / sizeof(uri_rows[0]); k++) {
		const struct uri_row *r = &uri_rows[k];
		struct sip_uri u;
		int rc = sip_uri_parse(sw_str_c(r->in), &u);
		if (rc != r->rc)
			fail_msg("'%s': rc %d, want %d", r->in, rc, r->rc);
		if (rc != 0)
			continue;
		assert_int_equal(u.raw.len, strlen(r->in));
		if (u.scheme != r->scheme)
			fail_msg("'%s': scheme %d want %d", r->in, u.scheme, r->scheme);
		str_is(u.user, r->user, "user", r->in);
		str_is(u.password, r->password, "password", r->in);
		if (r->password && !u.password.p)
			fail_msg("'%s': password absent", r->in);
		str_is(u.host, r->host, "host", r->in);
		if (u.host_v6 != r->v6)
			fail_msg("'%s': v6 %d", r->in, u.host_v6);
		if (u.port != r->port)
			fail_msg("'%s': port %u want %u", r->in, u.port, r->port);
		str_is(u.params, r->params, "params", r->in);
		str_is(u.headers, r->headers, "headers", r->in);
		str_is(u.transport, r->transport, "transport", r->in);
		str_is(u.maddr, r->maddr, "maddr", r->in);
		str_is(u.user_param, r->user_param, "user_param", r->in);
		if (u.lr != r->lr)
			fail_msg("'%s': lr %d", r->in, u.lr);
		str_is(u.opaque, r->opaque, "opaque", r->in);
	}
}

/* A URI embedded in a bigger buffer: the parser must stop at s.len. */
static void test_uri_bounds(void **state)
{
	(void)state;
	const char buf[] = "sip:alice@atlanta.com:5060;lr>garbage";
	struct sip_uri u;
	assert_int_equal(sip_uri_parse(sw_str_mk(buf, 21), &u), 0);
	assert_int_equal(u.port, 0);
	str_is(u.host, "atlanta.com", "host", buf);
	assert_int_equal(sip_uri_parse(sw_str_mk(buf, 26), &u), 0);
	assert_int_equal(u.port, 5060);
	assert_int_equal(sip_uri_parse(sw_str_mk(buf, 29), &u), 0);
	assert_true(u.lr);
	assert_int_equal(sip_uri_parse(sw_str_mk(buf, 30), &u), -EBADMSG);
	assert_int_equal(sip_uri_parse(SW_STR_NULL, &u), -EBADMSG);
	assert_int_equal(sip_uri_parse(sw_str_mk("sip:u@h%41", 7), &u), 0);
	/* NUL inside the slice is not a terminator */
	assert_int_equal(sip_uri_parse(sw_str_mk("sip:u@h\0x", 9), &u), -EBADMSG);
}

struct eq_row {
	const char *a, *b;
	bool eq;
};

/* RFC 3261 §19.1.4 examples and the rules they illustrate */
static const struct eq_row eq_rows[] = {
	{ "sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp", true },
	{ "sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5", true },
	{ "sip:carol@chicago.com", "sip:carol@chicago.com;security=on", true },
	{ "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
	  "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com", true },
	{ "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
	  "sip:alice@atlanta.com?priority=urgent&subject=project%20x", true },
	{ "SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP", false },
	{ "sip:bob@biloxi.com", "sip:bob@biloxi.com:5060", false },
	{ "sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp", true },
	{ "sip:bob@biloxi.com:5060", "sip:bob@biloxi.com:5060", true },
	{ "sip:bob@biloxi.com:6000", "sip:bob@biloxi.com:5060", false },
	{ "sip:bob@biloxi.com", "sips:bob@biloxi.com", false },
	{ "sip:bob@biloxi.com", "sip:biloxi.com", false },
	{ "sip:bob:pw@biloxi.com", "sip:bob@biloxi.com", false },
	{ "sip:bob:pw@biloxi.com", "sip:bob:pw@biloxi.com", true },
	{ "sip:bob:@biloxi.com", "sip:bob@biloxi.com", false },
	{ "sip:value%2541@h", "sip:value%41@h", false },    /* RFC 4475 esc01: not recursive */
	{ "sip:value%2541@h", "sip:value%2541@h", true },
	{ "sip:valueA@h", "sip:value%41@h", true },
	{ "sip:null-%00-null@h", "sip:null-@h", false },     /* RFC 4475 escnull */
	{ "sip:%00@h", "sip:%00%00@h", false },
	{ "sip:u@[2001:db8::1]", "sip:u@[2001:DB8:0::1]", true },
	{ "sip:u@[::ffff:192.0.2.1]", "sip:u@[::FFFF:c000:201]", true },
	{ "sip:u@[2001:db8::1]", "sip:u@[2001:db8::2]", false },
	{ "sip:u@[2001:db8:::192.0.2.1]", "sip:u@[2001:db8:::192.0.2.1]", true },
	{ "sip:u@192.0.2.1", "sip:u@[::ffff:192.0.2.1]", false },
	{ "tel:+1234", "tel:+1234", true },
	{ "tel:+1234", "TEL:+1234", true },
	{ "tel:+1234", "tel:+1235", false },
	{ "foo:x", "bar:x", false },
	{ "foo:x", "FOO:x", true },
	{ "foo:x", "sip:x", false },
};

static void test_uri_addr_eq(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(eq_rows) / sizeof(eq_rows[0]); k++) {
		struct sip_uri a, b;
		assert_int_equal(sip_uri_parse(sw_str_c(eq_rows[k].a), &a), 0);
		assert_int_equal(sip_uri_parse(sw_str_c(eq_rows[k].b), &b), 0);
		if (sip_uri_addr_eq(&a, &b) != eq_rows[k].eq || sip_uri_addr_eq(&b, &a) != eq_rows[k].eq)
			fail_msg("'%s' vs '%s': want %d", eq_rows[k].a, eq_rows[k].b, eq_rows[k].eq);
	}
}

/* sip_param_get over uri->params */
static void test_uri_param_get(void **state)
{
	(void)state;
	struct sip_uri u;
	struct sw_str v;
	assert_int_equal(sip_uri_parse(sw_str_c("sip:h;transport=tcp;lr;x=%41"), &u), 0);
	assert_int_equal(sip_param_get(u.params, "TRANSPORT", &v), 1);
	str_is(v, "tcp", "transport", "get");
	assert_int_equal(sip_param_get(u.params, "lr", &v), 1);
	assert_null(v.p);
	assert_int_equal(sip_param_get(u.params, "x", &v), 1);
	str_is(v, "%41", "x", "get");
	assert_int_equal(sip_param_get(u.params, "maddr", &v), 0);
	assert_int_equal(sip_param_get(u.params, "l", &v), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_rows),
		cmocka_unit_test(test_uri_bounds),
		cmocka_unit_test(test_uri_addr_eq),
		cmocka_unit_test(test_uri_param_get),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
