/* List splitting, header iteration, generic params, decimal values, CSeq
 * and %-unescaping: table-driven (STYLE.md §10). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "sip/fields.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void str_is(struct sw_str got, const char *want, const char *what, const char *in)
{
	if (!got.p || got.len != strlen(want) || memcmp(got.p, want, got.len) != 0)
		fail_msg("%s: %s: expected '%s', got '%.*s'", in, what, want,
			 got.p ? (int)got.len : 6, got.p ? got.p : "(null)");
}

/* ---- sip_list_next ---- */

struct list_row {
	const char *in;
	int rc;                  /* 0, or the error after the listed elements */
	const char *elems[6];    /* NULL-terminated */
};

static const struct list_row list_rows[] = {
	{ "a", 0, { "a" } },
	{ "a,b", 0, { "a", "b" } },
	{ " a ,\tb , c ", 0, { "a", "b", "c" } },
	{ "a,\r\n b", 0, { "a", "b" } },
	{ "a\r\n\t,b", 0, { "a", "b" } },
	{ "", 0, { "" } },
	{ "a,", 0, { "a", "" } },
	{ ",a", 0, { "", "a" } },
	{ "a,,b", 0, { "a", "", "b" } },
	{ "\"Bell, Alexander\" <sip:a@b>, <sip:c@d>", 0, { "\"Bell, Alexander\" <sip:a@b>", "<sip:c@d>" } },
	{ "<sip:a,b@c>;q=0.5, <sip:d@e>", 0, { "<sip:a,b@c>;q=0.5", "<sip:d@e>" } },
	{ "\"a\\\",b\" <x>, y", 0, { "\"a\\\",b\" <x>", "y" } },
	{ "<sip:\"@x>, y", 0, { "<sip:\"@x>", "y" } },
	{ "SIP/2.0/UDP a;branch=1 , SIP/2.0/TCP b", 0, { "SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b" } },
	{ "a;x=\"1,2\",b", 0, { "a;x=\"1,2\"", "b" } },
	{ "\"unterminated, b", -EBADMSG, { NULL } },
	{ "a, \"unterminated", -EBADMSG, { "a" } },
	{ "<sip:a@b, c", -EBADMSG, { NULL } },
	{ "a, sip:a@b>", -EBADMSG, { "a" } },
	{ "\"a\\", -EBADMSG, { NULL } },
	{ "\"a\r\nb\"", -EBADMSG, { NULL } },
};

static void test_list(void **state)
{
	(void)state;
	for (size_t k = 0; k < N(list_rows); k++) {
		const struct list_row *r = &list_rows[k];
		struct sw_str rest = sw_str_c(r->in), e;
		size_t i = 0;
		int rc;
		while ((rc = sip_list_next(&rest, &e)) == 1) {
			if (i >= N(r->elems) || !r->elems[i])
				fail_msg("'%s': extra element '%.*s'", r->in, SW_STR_FMT(e));
			str_is(e, r->elems[i], "elem", r->in);
			i++;
		}
		if (rc != r->rc)
			fail_msg("'%s': rc %d want %d", r->in, rc, r->rc);
		if (i < N(r->elems) && r->elems[i])
			fail_msg("'%s': missing element '%s'", r->in, r->elems[i]);
		if (rc == 0)    /* stays at the end */
			assert_int_equal(sip_list_next(&rest, &e), 0);
	}
	struct sw_str none = SW_STR_NULL, e;
	assert_int_equal(sip_list_next(&none, &e), 0);
}

/* ---- sip_hdr_iter ---- */

static void test_hdr_iter(void **state)
{
	(void)state;
	struct sip_hdr hdrs[] = {
		{ SIP_H_VIA, SW_STR_LIT("Via"), SW_STR_LIT("SIP/2.0/UDP a, SIP/2.0/UDP b") },
		{ SIP_H_FROM, SW_STR_LIT("From"), SW_STR_LIT("<sip:x@y>") },
		{ SIP_H_CONTACT, SW_STR_LIT("m"), SW_STR_LIT("<sip:1@h>, \"x,y\" <sip:2@h>") },
		{ SIP_H_VIA, SW_STR_LIT("v"), SW_STR_LIT("SIP/2.0/UDP c") },
		{ SIP_H_OTHER, SW_STR_LIT("X"), SW_STR_LIT("q") },
		{ SIP_H_CONTACT, SW_STR_LIT("Contact"), SW_STR_LIT("<sip:3@h>") },
		{ SIP_H_SUPPORTED, SW_STR_LIT("k"), SW_STR_LIT("\"broken") },
		{ SIP_H_VIA, SW_STR_LIT("Via"), SW_STR_LIT("SIP/2.0/UDP d") },
	};
	struct sip_msg m;
	memset(&m, 0, sizeof(m));
	m.hdrs = hdrs;
	m.nhdrs = N(hdrs);
	for (int i = 0; i < SIP_H__COUNT; i++)
		m.first[i] = -1;
	for (unsigned i = 0; i < m.nhdrs; i++) {
		if (m.first[hdrs[i].id] < 0)
			m.first[hdrs[i].id] = (int16_t)i;
		m.count[hdrs[i].id]++;
	}

	struct sip_hdr_iter it;
	struct sw_str e;
	static const char *const vias[] = { "SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c", "SIP/2.0/UDP d" };
	sip_hdr_iter_init(&it, &m, SIP_H_VIA);
	for (size_t i = 0; i < N(vias); i++) {
		assert_int_equal(sip_hdr_iter_next(&it, &e), 1);
		str_is(e, vias[i], "via", "iter");
	}
	assert_int_equal(sip_hdr_iter_next(&it, &e), 0);
	assert_int_equal(sip_hdr_iter_next(&it, &e), 0);

	static const char *const cts[] = { "<sip:1@h>", "\"x,y\" <sip:2@h>", "<sip:3@h>" };
	sip_hdr_iter_init(&it, &m, SIP_H_CONTACT);
	for (size_t i = 0; i < N(cts); i++) {
		assert_int_equal(sip_hdr_iter_next(&it, &e), 1);
		str_is(e, cts[i], "contact", "iter");
	}
	assert_int_equal(sip_hdr_iter_next(&it, &e), 0);

	sip_hdr_iter_init(&it, &m, SIP_H_ROUTE);
	assert_int_equal(sip_hdr_iter_next(&it, &e), 0);

	sip_hdr_iter_init(&it, &m, SIP_H_SUPPORTED);
	assert_int_equal(sip_hdr_iter_next(&it, &e), -EBADMSG);

	sip_hdr_iter_init(&it, &m, (enum sip_hdr_id)SIP_H__COUNT);
	assert_int_equal(sip_hdr_iter_next(&it, &e), 0);

	/* an empty message */
	struct sip_msg empty;
	memset(&empty, 0, sizeof(empty));
	sip_hdr_iter_init(&it, &empty, SIP_H_VIA);
	assert_int_equal(sip_hdr_iter_next(&it, &e), 0);
}

/* ---- sip_params_next / sip_param_get ---- */

struct param_row {
	const char *in;
	int rc;
	const char *pairs[8];    /* name, value ("\x01" = no '='), ...; NULL-terminated */
};

#define NOV "\x01"

static const struct param_row param_rows[] = {
	{ "", 0, { NULL } },
	{ "  ", 0, { NULL } },
	{ ";lr", 0, { "lr", NOV } },
	{ ";tag=abc;q=0.5", 0, { "tag", "abc", "q", "0.5" } },
	{ " ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33", 0,      /* RFC 4475 wsinv */
	  { "newparam", "newvalue", "secondparam", NOV, "q", "0.33" } },
	{ ";received=2001:db8::9:255;branch=z9hG4bKas3", 0, { "received", "2001:db8::9:255", "branch", "z9hG4bKas3" } },
	{ ";received=[2001:db8::9:255]", 0, { "received", "[2001:db8::9:255]" } },
	{ ";+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"", 0,
	  { "+sip.instance", "\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"" } },
	{ ";p=\"a;b\\\"c\";x", 0, { "p", "\"a;b\\\"c\"", "x", NOV } },
	{ ";fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\"", 0, { "fromParam''~+*_!.-%", "\"\xd1\x80\xd0\xb0\"" } },
	{ ";", -EBADMSG, { NULL } },
	{ ";;", -EBADMSG, { NULL } },
	{ ";a;;b", -EBADMSG, { "a", NOV } },
	{ ";a;", -EBADMSG, { "a", NOV } },
	{ ";;,;,,", -EBADMSG, { NULL } },                   /* RFC 4475 badinv01 */
	{ "x", -EBADMSG, { NULL } },
	{ ";a=", -EBADMSG, { NULL } },
	{ ";a= ;b", -EBADMSG, { NULL } },
	{ ";=b", -EBADMSG, { NULL } },
	{ ";a=b c", -EBADMSG, { NULL } },
	{ ";a=\"b", -EBADMSG, { NULL } },
	{ ";a b", -EBADMSG, { NULL } },
	{ ";a=b\r\nc", -EBADMSG, { NULL } },
	{ ";a=<b>", -EBADMSG, { NULL } },
	{ ";a,b", -EBADMSG, { NULL } },
};

static void test_params(void **state)
{
	(void)state;
	for (size_t k = 0; k < N(param_rows); k++) {
		const struct param_row *r = &param_rows[k];
		struct sw_str rest = sw_str_c(r->in);
		struct sip_param p;
		size_t i = 0;
		int rc;
		while ((rc = sip_params_next(&rest, &p)) == 1) {
			if (!r->pairs[i])
				fail_msg("'%s': extra param '%.*s'", r->in, SW_STR_FMT(p.name));
			str_is(p.name, r->pairs[i], "name", r->in);
			if (strcmp(r->pairs[i + 1], NOV) == 0) {
				if (p.value.p)
					fail_msg("'%s': value for %s", r->in, r->pairs[i]);
			} else {
				str_is(p.value, r->pairs[i + 1], "value", r->in);
			}
			i += 2;
		}
		if (rc != r->rc)
			fail_msg("'%s': rc %d want %d", r->in, rc, r->rc);
		if (r->pairs[i])
			fail_msg("'%s': missing param '%s'", r->in, r->pairs[i]);
	}
	struct sw_str none = SW_STR_NULL;
	struct sip_param p;
	assert_int_equal(sip_params_next(&none, &p), 0);
}

static void test_param_get(void **state)
{
	(void)state;
	struct sw_str v;
	struct sw_str ps = sw_str_c(";Tag=1 ; lr ;Q=0.5");
	assert_int_equal(sip_param_get(ps, "tag", &v), 1);
	str_is(v, "1", "tag", "get");
	assert_int_equal(sip_param_get(ps, "LR", &v), 1);
	assert_null(v.p);
	assert_int_equal(sip_param_get(ps, "q", &v), 1);
	str_is(v, "0.5", "q", "get");
	assert_int_equal(sip_param_get(ps, "t", &v), 0);
	assert_int_equal(sip_param_get(ps, "tag2", &v), 0);
	/* malformed params: not found, never a negative value */
	assert_int_equal(sip_param_get(sw_str_c(";;tag=1"), "tag", &v), 0);
	assert_int_equal(sip_param_get(SW_STR_NULL, "tag", &v), 0);
	/* the first of duplicates */
	assert_int_equal(sip_param_get(sw_str_c(";a=1;a=2"), "a", &v), 1);
	str_is(v, "1", "a", "get");
}

/* ---- sip_uint_parse ---- */

struct uint_row {
	const char *in;
	uint64_t max;
	int rc;
	uint64_t v;
};

static const struct uint_row uint_rows[] = {
	{ "0", 100, 0, 0 },
	{ "70", 255, 0, 70 },
	{ "0000000000000000000000070", 255, 0, 70 },      /* RFC 4475 wsinv: leading zeros */
	{ " 42 ", 100, 0, 42 },
	{ "255", 255, 0, 255 },
	{ "256", 255, -ERANGE, 0 },
	{ "4294967295", UINT32_MAX, 0, 4294967295u },
	{ "4294967296", UINT32_MAX, -ERANGE, 0 },
	{ "18446744073709551615", UINT64_MAX, 0, UINT64_MAX },
	{ "18446744073709551616", UINT64_MAX, -ERANGE, 0 },
	{ "36893488147419103232", UINT64_MAX, -ERANGE, 0 },  /* RFC 4475 scalar02 */
	{ "99999999999999999999999999999999999", UINT32_MAX, -ERANGE, 0 },
	{ "", 10, -EBADMSG, 0 },
	{ "  ", 10, -EBADMSG, 0 },
	{ "-1", 10, -EBADMSG, 0 },
	{ "+1", 10, -EBADMSG, 0 },
	{ "1 2", 10, -EBADMSG, 0 },
	{ "0x10", 100, -EBADMSG, 0 },
	{ "1a", 100, -EBADMSG, 0 },
	{ "99999999999999999999999a", 100, -EBADMSG, 0 },
};

static void test_uint(void **state)
{
	(void)state;
	for (size_t k = 0; k < N(uint_rows); k++) {
		const struct uint_row *r = &uint_rows[k];
		uint64_t v = 12345;
		int rc = sip_uint_parse(sw_str_c(r->in), r->max, &v);
		if (rc != r->rc)
			fail_msg("'%s': rc %d want %d", r->in, rc, r->rc);
		if (rc == 0 && v != r->v)
			fail_msg("'%s': %llu", r->in, (unsigned long long)v);
		if (rc != 0 && v != 12345)
			fail_msg("'%s': output written on error", r->in);
	}
}

/* ---- sip_cseq_parse ---- */

struct cseq_row {
	const char *in;
	int rc;
	uint32_t num;
	enum sip_method m;
	const char *name;
};

static const struct cseq_row cseq_rows[] = {
	{ "1 INVITE", 0, 1, SIP_M_INVITE, "INVITE" },
	{ "4711 REGISTER", 0, 4711, SIP_M_REGISTER, "REGISTER" },
	{ "0009 OPTIONS", 0, 9, SIP_M_OPTIONS, "OPTIONS" },
	{ "  8\r\n  ACK  ", 0, 8, SIP_M_ACK, "ACK" },
	{ "0 BYE", 0, 0, SIP_M_BYE, "BYE" },
	{ "4294967295 CANCEL", 0, UINT32_MAX, SIP_M_CANCEL, "CANCEL" },
	{ "1\tPRACK", 0, 1, SIP_M_PRACK, "PRACK" },
	{ "5 NEWMETHOD", 0, 5, SIP_M_UNKNOWN, "NEWMETHOD" },
	{ "5 invite", 0, 5, SIP_M_UNKNOWN, "invite" },
	{ "139122385 !interesting-Method0123456789_*+`.%indeed'~", 0, 139122385, SIP_M_UNKNOWN,
	  "!interesting-Method0123456789_*+`.%indeed'~" },                  /* RFC 4475 intmeth */
	{ "1 SUBSCRIBE", 0, 1, SIP_M_SUBSCRIBE, "SUBSCRIBE" },
	{ "1 NOTIFY", 0, 1, SIP_M_NOTIFY, "NOTIFY" },
	{ "1 REFER", 0, 1, SIP_M_REFER, "REFER" },
	{ "1 MESSAGE", 0, 1, SIP_M_MESSAGE, "MESSAGE" },
	{ "1 PUBLISH", 0, 1, SIP_M_PUBLISH, "PUBLISH" },
	{ "1 INFO", 0, 1, SIP_M_INFO, "INFO" },
	{ "1 UPDATE", 0, 1, SIP_M_UPDATE, "UPDATE" },
	{ "4294967296 INVITE", -EBADMSG, 0, 0, NULL },
	{ "36893488147419103232 REGISTER", -EBADMSG, 0, 0, NULL },           /* RFC 4475 scalar02 */
	{ "", -EBADMSG, 0, 0, NULL },
	{ "INVITE", -EBADMSG, 0, 0, NULL },
	{ "1", -EBADMSG, 0, 0, NULL },
	{ "1 ", -EBADMSG, 0, 0, NULL },
	{ "1INVITE", -EBADMSG, 0, 0, NULL },
	{ "-1 INVITE", -EBADMSG, 0, 0, NULL },
	{ "1 INVITE x", -EBADMSG, 0, 0, NULL },
	{ "1 INV/ITE", -EBADMSG, 0, 0, NULL },
	{ "1\r\nINVITE", -EBADMSG, 0, 0, NULL },
	{ "1 INVITE\r\n", -EBADMSG, 0, 0, NULL },
	{ "1.5 INVITE", -EBADMSG, 0, 0, NULL },
};

static void test_cseq(void **state)
{
	(void)state;
	for (size_t k = 0; k < N(cseq_rows); k++) {
		const struct cseq_row *r = &cseq_rows[k];
		struct sip_cseq c;
		int rc = sip_cseq_parse(sw_str_c(r->in), &c);
		if (rc != r->rc)
			fail_msg("'%s': rc %d want %d", r->in, rc, r->rc);
		if (rc)
			continue;
		if (c.num != r->num || c.method != r->m)
			fail_msg("'%s': %u %d", r->in, c.num, c.method);
		str_is(c.method_name, r->name, "method", r->in);
	}
	struct sip_cseq c;
	assert_int_equal(sip_cseq_parse(SW_STR_NULL, &c), -EBADMSG);
}

/* ---- sip_unescape ---- */

struct unesc_row {
	const char *in;
	size_t cap;
	ssize_t rc;
	const char *out;
	size_t outlen;
};

static const struct unesc_row unesc_rows[] = {
	{ "abc", 16, 3, "abc", 3 },
	{ "", 16, 0, "", 0 },
	{ "%75se%72", 16, 4, "user", 4 },
	{ "I%20have%20spaces", 32, 13, "I have spaces", 13 },
	{ "%2541", 16, 3, "%41", 3 },                  /* RFC 4475 esc01: one pass */
	{ "null-%00-null", 16, 11, "null-\0-null", 11 },  /* RFC 4475 escnull */
	{ "%aF%Af", 16, 2, "\xaf\xaf", 2 },
	{ "abc", 3, 3, "abc", 3 },
	{ "abc", 2, -ENOSPC, NULL, 0 },
	{ "%41%42", 1, -ENOSPC, NULL, 0 },
	{ "a", 0, -ENOSPC, NULL, 0 },
	{ "%", 16, -EBADMSG, NULL, 0 },
	{ "%4", 16, -EBADMSG, NULL, 0 },
	{ "ab%4", 16, -EBADMSG, NULL, 0 },
	{ "%g1", 16, -EBADMSG, NULL, 0 },
	{ "%1g", 16, -EBADMSG, NULL, 0 },
	{ "%%41", 16, -EBADMSG, NULL, 0 },
};

static void test_unescape(void **state)
{
	(void)state;
	for (size_t k = 0; k < N(unesc_rows); k++) {
		const struct unesc_row *r = &unesc_rows[k];
		char out[64];
		ssize_t rc = sip_unescape(sw_str_c(r->in), out, r->cap);
		if (rc != r->rc)
			fail_msg("'%s': rc %zd want %zd", r->in, rc, r->rc);
		if (rc >= 0 && ((size_t)rc != r->outlen || memcmp(out, r->out, r->outlen) != 0))
			fail_msg("'%s': wrong output", r->in);
	}
	/* a slice that ends before a '%' escape's digits */
	char out[8];
	assert_int_equal(sip_unescape(sw_str_mk("a%41", 3), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_unescape(sw_str_mk("a%41", 4), out, sizeof(out)), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_hdr_iter),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_param_get),
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_cseq),
		cmocka_unit_test(test_unescape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
