/* name-addr / addr-spec and Contact: table-driven rows from RFC 3261
 * §20.10/§20.20/§20.39, RFC 5626 and RFC 4475 (wsinv, intmeth, esc01,
 * lwsdisp, baddn, badaspec, quotbal, cparam01/02, regbadct, regescrt,
 * scalar02, badinv01, unksm2). */
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
		if (got.p != NULL && got.len != 0)
			fail_msg("%s: %s: expected absent, got '%.*s'", in, what, SW_STR_FMT(got));
		return;
	}
	if (!got.p || got.len != strlen(want) || memcmp(got.p, want, got.len) != 0)
		fail_msg("%s: %s: expected '%s', got '%.*s'", in, what, want,
			 got.p ? (int)got.len : 6, got.p ? got.p : "(null)");
}

enum which { NA = 1, CT = 2, BOTH = 3 };

struct na_row {
	const char *in;
	enum which which;
	int rc;
	const char *display;
	bool bracketed;
	const char *uri;          /* the URI's raw text */
	const char *uparams;      /* URI params */
	const char *params;       /* header params */
	const char *tag;
	int64_t expires;
	int q;
	const char *instance;
	int64_t reg_id;
};

#define OK(in_, w, dn, br, u, up, hp, tg, ex, q_, inst, rid) \
	{ in_, w, 0, dn, br, u, up, hp, tg, ex, q_, inst, rid }
#define BAD(in_, w) { .in = in_, .which = w, .rc = -EBADMSG }

static const struct na_row na_rows[] = {
	OK("Bob <sip:bob@biloxi.com>", BOTH, "Bob", true, "sip:bob@biloxi.com", NULL, "", NULL, -1, -1, NULL, -1),
	OK("\"Bob\" <sips:bob@biloxi.com> ;tag=a48s", BOTH, "\"Bob\"", true, "sips:bob@biloxi.com", NULL, ";tag=a48s",
	   "a48s", -1, -1, NULL, -1),
	OK("Alice <sip:alice@atlanta.com>;tag=1928301774", BOTH, "Alice", true, "sip:alice@atlanta.com", NULL,
	   ";tag=1928301774", "1928301774", -1, -1, NULL, -1),
	OK("sip:+12125551212@phone2net.com;tag=887s", BOTH, NULL, false, "sip:+12125551212@phone2net.com", NULL,
	   ";tag=887s", "887s", -1, -1, NULL, -1),
	OK("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8", BOTH, "Anonymous", true, "sip:c8oqz84zk7z@privacy.org", NULL,
	   ";tag=hyh8", "hyh8", -1, -1, NULL, -1),
	OK("<sip:alice@atlanta.com;transport=tcp>;tag=x", BOTH, NULL, true, "sip:alice@atlanta.com;transport=tcp",
	   ";transport=tcp", ";tag=x", "x", -1, -1, NULL, -1),
	OK("The Operator <sip:operator@cs.columbia.edu>;tag=287447", BOTH, "The Operator", true,
	   "sip:operator@cs.columbia.edu", NULL, ";tag=287447", "287447", -1, -1, NULL, -1),
	OK("\"Mr. Watson\" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600", BOTH, "\"Mr. Watson\"", true,
	   "sip:watson@worcester.bell-telephone.com", NULL, ";q=0.7; expires=3600", NULL, 3600, 700, NULL, -1),
	OK("\"Mr. Watson\" <mailto:watson@bell-telephone.com> ;q=0.1", BOTH, "\"Mr. Watson\"", true,
	   "mailto:watson@bell-telephone.com", NULL, ";q=0.1", NULL, -1, 100, NULL, -1),
	OK("<sip:line1@192.0.2.2;transport=tcp>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"",
	   BOTH, NULL, true, "sip:line1@192.0.2.2;transport=tcp", ";transport=tcp",
	   ";reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"", NULL, -1, -1,
	   "\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"", 1),
	OK("<sip:a@b>;expires=0", BOTH, NULL, true, "sip:a@b", NULL, ";expires=0", NULL, 0, -1, NULL, -1),
	OK("<sip:a@b>;expires=4294967295", BOTH, NULL, true, "sip:a@b", NULL, ";expires=4294967295", NULL, 4294967295ll, -1, NULL, -1),
	OK("<sip:a@b>;expires=000000000000000000030", BOTH, NULL, true, "sip:a@b", NULL, ";expires=000000000000000000030",
	   NULL, 30, -1, NULL, -1),
	OK("<sip:a@b>;q=0", BOTH, NULL, true, "sip:a@b", NULL, ";q=0", NULL, -1, 0, NULL, -1),
	OK("<sip:a@b>;q=0.", BOTH, NULL, true, "sip:a@b", NULL, ";q=0.", NULL, -1, 0, NULL, -1),
	OK("<sip:a@b>;q=0.001", BOTH, NULL, true, "sip:a@b", NULL, ";q=0.001", NULL, -1, 1, NULL, -1),
	OK("<sip:a@b>;q=0.999", BOTH, NULL, true, "sip:a@b", NULL, ";q=0.999", NULL, -1, 999, NULL, -1),
	OK("<sip:a@b>;q=0.5", BOTH, NULL, true, "sip:a@b", NULL, ";q=0.5", NULL, -1, 500, NULL, -1),
	OK("<sip:a@b>;q=1", BOTH, NULL, true, "sip:a@b", NULL, ";q=1", NULL, -1, 1000, NULL, -1),
	OK("<sip:a@b>;Q=1.000", BOTH, NULL, true, "sip:a@b", NULL, ";Q=1.000", NULL, -1, 1000, NULL, -1),
	OK("<sip:a@b>;reg-id=2147483647", BOTH, NULL, true, "sip:a@b", NULL, ";reg-id=2147483647", NULL, -1, -1, NULL,
	   2147483647),
	OK("<sip:a@b>;tag=1;tag=2", BOTH, NULL, true, "sip:a@b", NULL, ";tag=1;tag=2", "1", -1, -1, NULL, -1),
	/* RFC 4475 wsinv */
	OK("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>", BOTH, "\"J Rosenberg \\\\\\\"\"", true,
	   "sip:jdrosen@example.com", NULL, "", NULL, -1, -1, NULL, -1),
	OK("\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33",
	   BOTH, "\"Quoted string \\\"\\\"\"", true, "sip:jdrosen@example.com", NULL,
	   "; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33", NULL, -1, 330, NULL, -1),
	OK("\"Rosenberg, Jonathan\" <sip:jdrosen@example.com>", BOTH, "\"Rosenberg, Jonathan\"", true,
	   "sip:jdrosen@example.com", NULL, "", NULL, -1, -1, NULL, -1),
	OK("Joe\r\n Doe <sip:joe@example.com>", BOTH, "Joe\r\n Doe", true, "sip:joe@example.com", NULL, "", NULL, -1, -1, NULL, -1),
	/* RFC 4475 intmeth: quoted controls and NUL, odd tokens, UTF-8 in a quoted param */
	OK("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\";tag=_token~1'+`*%!-.",
	   BOTH, "token1~` token2'+_ token3*%!.-", true, "sip:mundane@example.com", NULL,
	   ";fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\";tag=_token~1'+`*%!-.", "_token~1'+`*%!-.", -1, -1, NULL, -1),
	/* RFC 4475 esc01 / escnull */
	OK("sip:%75se%72@example.com", BOTH, NULL, false, "sip:%75se%72@example.com", NULL, "", NULL, -1, -1, NULL, -1),
	OK("<sip:I%20have%20spaces@example.net>;tag=938", BOTH, NULL, true, "sip:I%20have%20spaces@example.net", NULL,
	   ";tag=938", "938", -1, -1, NULL, -1),
	OK("<sip:%00@host5.example.com>", BOTH, NULL, true, "sip:%00@host5.example.com", NULL, "", NULL, -1, -1, NULL, -1),
	/* RFC 4475 lwsdisp: no LWS between display-name and '<' */
	OK("caller<sip:caller@example.com>;tag=323", BOTH, "caller", true, "sip:caller@example.com", NULL, ";tag=323",
	   "323", -1, -1, NULL, -1),
	OK("\"caller\"<sip:caller@example.com>", BOTH, "\"caller\"", true, "sip:caller@example.com", NULL, "", NULL, -1, -1, NULL, -1),
	/* RFC 4475 cparam01/02: without <> the params are header params */
	OK("sip:+19725552222@gw1.example.net;unknownparam", BOTH, NULL, false, "sip:+19725552222@gw1.example.net", NULL,
	   ";unknownparam", NULL, -1, -1, NULL, -1),
	OK("<sip:+19725552222@gw1.example.net;unknownparam>", BOTH, NULL, true,
	   "sip:+19725552222@gw1.example.net;unknownparam", ";unknownparam", "", NULL, -1, -1, NULL, -1),
	OK("sip:a@b ;expires=60", BOTH, NULL, false, "sip:a@b", NULL, ";expires=60", NULL, 60, -1, NULL, -1),
	/* RFC 4475 regescrt: escaped headers inside <> are fine */
	OK("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>", BOTH, NULL, true,
	   "sip:user@example.com?Route=%3Csip:sip.example.com%3E", NULL, "", NULL, -1, -1, NULL, -1),
	/* RFC 4475 unksm2 and other schemes */
	OK("isbn:2983792873", BOTH, NULL, false, "isbn:2983792873", NULL, "", NULL, -1, -1, NULL, -1),
	OK("<http://www.example.com>;tag=3234233", BOTH, NULL, true, "http://www.example.com", NULL, ";tag=3234233",
	   "3234233", -1, -1, NULL, -1),
	OK("<name:John_Smith>", BOTH, NULL, true, "name:John_Smith", NULL, "", NULL, -1, -1, NULL, -1),
	OK("tel:+1234;tag=9", BOTH, NULL, false, "tel:+1234", NULL, ";tag=9", "9", -1, -1, NULL, -1),
	OK("\"T. desk phone\" <sip:ted@[::ffff:192.0.2.2]>", BOTH, "\"T. desk phone\"", true, "sip:ted@[::ffff:192.0.2.2]",
	   NULL, "", NULL, -1, -1, NULL, -1),
	OK("\"\" <sip:a@b>", BOTH, "\"\"", true, "sip:a@b", NULL, "", NULL, -1, -1, NULL, -1),
	OK("\"\xe4\xb8\xad\" <sip:a@b>", BOTH, "\"\xe4\xb8\xad\"", true, "sip:a@b", NULL, "", NULL, -1, -1, NULL, -1),
	OK("sip:a@b;x=\"<\"", BOTH, NULL, false, "sip:a@b", NULL, ";x=\"<\"", NULL, -1, -1, NULL, -1),

	/* errors */
	BAD("", BOTH),
	BAD("   ", BOTH),
	BAD("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", BOTH),    /* RFC 4475 baddn */
	BAD("Watson, Thomas <sip:t.watson@example.org>", BOTH),
	BAD("J@hn <sip:a@b>", BOTH),
	BAD("a:b <sip:a@b>", BOTH),
	BAD("\"Watson, Thomas\" < sip:t.watson@example.org >", BOTH),     /* RFC 4475 badaspec */
	BAD("<sip:a@b >", BOTH),
	BAD("< sip:a@b>", BOTH),
	BAD("<sip:a @b>", BOTH),
	BAD("\"Mr. J. User <sip:j.user@example.com>", BOTH),             /* RFC 4475 quotbal */
	BAD("\"Joe\" <sip:joe@example.org>;;;;", BOTH),                   /* RFC 4475 badinv01 */
	BAD("<sip:a@b>;", BOTH),
	BAD("<sip:a@b>;tag", BOTH),
	BAD("<sip:a@b>;tag=", BOTH),
	BAD("<sip:a@b>;tag=\"x\"", BOTH),
	BAD("<sip:a@b>;tag=a:b", BOTH),
	BAD("<sip:a@b> x", BOTH),
	BAD("<sip:a@b>x", BOTH),
	BAD("<sip:a@b>>", BOTH),
	BAD("<sip:a@b", BOTH),
	BAD("<>", BOTH),
	BAD("<<sip:a@b>>", BOTH),
	BAD("\"Joe\" sip:a@b", BOTH),
	BAD("\"Joe\"", BOTH),
	BAD("Joe", BOTH),
	BAD("\"J\\", BOTH),
	BAD("\"J\\\r\" <sip:a@b>", BOTH),
	BAD("\"J\x01\" <sip:a@b>", BOTH),
	BAD("\"J\r\nx\" <sip:a@b>", BOTH),
	BAD("sip:a@b?x=y", BOTH),                                          /* RFC 4475 regbadct */
	BAD("sip:user@example.com?Route=%3Csip:sip.example.com%3E", BOTH),
	BAD("sip:a,b@c", BOTH),
	BAD("sip:a@b c", BOTH),
	BAD("sip:2001:db8::10", BOTH),
	BAD("sip:a@b;expires=4294967296", BOTH),
	BAD("<sip:a@b>;expires=36893488147419103232", BOTH),             /* RFC 4475 scalar02 */
	BAD("<sip:a@b>;expires=", BOTH),
	BAD("<sip:a@b>;expires", BOTH),
	BAD("<sip:a@b>;expires=-1", BOTH),
	BAD("<sip:a@b>;expires=1x", BOTH),
	BAD("<sip:a@b>;expires=\"1\"", BOTH),
	BAD("<sip:a@b>;q=", BOTH),
	BAD("<sip:a@b>;q", BOTH),
	BAD("<sip:a@b>;q=2", BOTH),
	BAD("<sip:a@b>;q=1.001", BOTH),
	BAD("<sip:a@b>;q=1.0000", BOTH),
	BAD("<sip:a@b>;q=0.1234", BOTH),
	BAD("<sip:a@b>;q=.5", BOTH),
	BAD("<sip:a@b>;q=00.5", BOTH),
	BAD("<sip:a@b>;q=0.5x", BOTH),
	BAD("<sip:a@b>;q=0,5", BOTH),
	BAD("<sip:a@b>;+sip.instance", BOTH),
	BAD("<sip:a@b>;reg-id=0", BOTH),
	BAD("<sip:a@b>;reg-id=2147483648", BOTH),
	BAD("<sip:a@b>;reg-id=x", BOTH),
	BAD("*", NA),
	BAD("*;expires=0", CT),
	BAD("* *", CT),
	BAD("**", CT),
};

static void check_row(const struct na_row *r, bool contact)
{
	struct sip_nameaddr na;
	size_t len = strlen(r->in);
	int rc = contact ? sip_contact_parse(sw_str_mk(r->in, len), &na)
			 : sip_nameaddr_parse(sw_str_mk(r->in, len), &na);
	if (rc != r->rc)
		fail_msg("%s '%s': rc %d want %d", contact ? "contact" : "nameaddr", r->in, rc, r->rc);
	if (rc)
		return;
	str_is(na.display, r->display, "display", r->in);
	if (!r->display && na.display.len)
		fail_msg("'%s': display", r->in);
	if (na.bracketed != r->bracketed || na.star)
		fail_msg("'%s': bracketed %d star %d", r->in, na.bracketed, na.star);
	str_is(na.uri.raw, r->uri, "uri", r->in);
	str_is(na.uri.params, r->uparams, "uri params", r->in);
	str_is(na.params, r->params, "params", r->in);
	if (!r->tag && na.tag.p)
		fail_msg("'%s': tag present", r->in);
	str_is(na.tag, r->tag, "tag", r->in);
	if (na.expires != r->expires || na.q != r->q || na.reg_id != r->reg_id)
		fail_msg("'%s': expires %lld q %d reg-id %lld", r->in, (long long)na.expires, na.q,
			 (long long)na.reg_id);
	if (!r->instance && na.instance.p)
		fail_msg("'%s': instance present", r->in);
	str_is(na.instance, r->instance, "instance", r->in);
	struct sw_str t = sw_str_trim(sw_str_c(r->in));
	if (na.raw.p != t.p || na.raw.len != t.len)
		fail_msg("'%s': raw", r->in);
}

static void test_nameaddr_rows(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(na_rows) / sizeof(na_rows[0]); k++) {
		if (na_rows[k].which & NA)
			check_row(&na_rows[k], false);
		if (na_rows[k].which & CT)
			check_row(&na_rows[k], true);
	}
}

static void test_contact_star(void **state)
{
	(void)state;
	struct sip_nameaddr na;
	assert_int_equal(sip_contact_parse(sw_str_c("*"), &na), 0);
	assert_true(na.star);
	assert_int_equal(na.expires, -1);
	assert_int_equal(na.q, -1);
	assert_int_equal(na.reg_id, -1);
	assert_int_equal(sip_contact_parse(sw_str_c("  *\t"), &na), 0);
	assert_true(na.star);
	assert_int_equal(na.raw.len, 1);
	assert_int_equal(sip_contact_parse(SW_STR_NULL, &na), -EBADMSG);
	assert_int_equal(sip_nameaddr_parse(SW_STR_NULL, &na), -EBADMSG);
	/* a contact after a failed parse has no star */
	assert_int_equal(sip_contact_parse(sw_str_c("<sip:a@b>"), &na), 0);
	assert_false(na.star);
}

/* The struct's URI and params are slices of the input: a value embedded in
 * a larger buffer is parsed only up to its length. */
static void test_nameaddr_bounds(void **state)
{
	(void)state;
	const char buf[] = "<sip:a@b>;tag=12345;x";
	struct sip_nameaddr na;
	assert_int_equal(sip_nameaddr_parse(sw_str_mk(buf, 17), &na), 0);
	str_is(na.tag, "123", "tag", buf);
	assert_int_equal(sip_nameaddr_parse(sw_str_mk(buf, 8), &na), -EBADMSG);
	assert_int_equal(sip_nameaddr_parse(sw_str_mk(buf, 14), &na), -EBADMSG);
}

/* RFC 4475 intmeth: quoted BEL, NUL and DEL in the display name */
static void test_nameaddr_quoted_nul(void **state)
{
	(void)state;
	static const char in[] = "\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" "
		"<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>";
	static const char dn[] = "\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\"";
	struct sip_nameaddr na;
	assert_int_equal(sip_nameaddr_parse(sw_str_mk(in, sizeof(in) - 1), &na), 0);
	assert_int_equal(na.display.len, sizeof(dn) - 1);
	assert_memory_equal(na.display.p, dn, sizeof(dn) - 1);
	assert_true(na.bracketed);
	assert_int_equal(na.uri.scheme, SIP_URI_SIP);
	str_is(na.uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*", "user", "intmeth");
	/* a bare (unquoted) NUL is not allowed */
	static const char bad[] = "\"a\x00b\" <sip:a@b>";
	assert_int_equal(sip_nameaddr_parse(sw_str_mk(bad, sizeof(bad) - 1), &na), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nameaddr_rows),
		cmocka_unit_test(test_contact_star),
		cmocka_unit_test(test_nameaddr_bounds),
		cmocka_unit_test(test_nameaddr_quoted_nul),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
