/* Auth header bodies: table-driven (STYLE.md §10). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "sip/authhdr.h"

struct row {
	const char *in;
	int rc;
	enum sip_auth_scheme scheme;
	enum sip_ap ap;        /* one param to check */
	const char *val;       /* its unquoted value, NULL = absent */
};

static const struct row rows[] = {
	/* RFC 3261 §22.4 example (folded) */
	{ "Digest username=\"bob\",\r\n realm=\"biloxi.com\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n"
	  " uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\",\r\n"
	  " response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
	  0, SIP_AUTH_DIGEST, SIP_AP_CNONCE, "0a4f113b" },
	{ "Digest username=\"bob\", qop=auth", 0, SIP_AUTH_DIGEST, SIP_AP_QOP, "auth" },
	{ "digest USERNAME=\"bob\"", 0, SIP_AUTH_DIGEST, SIP_AP_USERNAME, "bob" },
	{ "Digest username=\"b\\\"o\\\\b\"", 0, SIP_AUTH_DIGEST, SIP_AP_USERNAME, "b\"o\\b" },
	{ "Digest username=\"\"", 0, SIP_AUTH_DIGEST, SIP_AP_USERNAME, "" },
	{ "Digest  username = \"bob\" , realm = x ,", 0, SIP_AUTH_DIGEST, SIP_AP_REALM, "x" },
	{ "Digest ,, username=\"bob\"", 0, SIP_AUTH_DIGEST, SIP_AP_USERNAME, "bob" },
	{ "Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe", 0, SIP_AUTH_DIGEST, SIP_AP_USERNAME_EXT,
	  "UTF-8''J%C3%A4s%C3%B8n%20Doe" },
	{ "Digest foo=\"bar\", algorithm=SHA-256", 0, SIP_AUTH_DIGEST, SIP_AP_ALGORITHM, "SHA-256" },
	{ "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", 0, SIP_AUTH_BEARER, SIP_AP_USERNAME, NULL },
	{ "Basic dXNlcjpwYXNz==", 0, SIP_AUTH_BASIC, SIP_AP_USERNAME, NULL },
	{ "Digest", 0, SIP_AUTH_DIGEST, SIP_AP_USERNAME, NULL },
	{ "NTLM", 0, SIP_AUTH_OTHER, SIP_AP_USERNAME, NULL },
	/* errors */
	{ "", -EBADMSG, 0, 0, NULL },
	{ "   ", -EBADMSG, 0, 0, NULL },
	{ "Digest username=\"bob", -EBADMSG, 0, 0, NULL },
	{ "Digest username=\"bob\\", -EBADMSG, 0, 0, NULL },
	{ "Digest username=", -EBADMSG, 0, 0, NULL },
	{ "Digest =bob, realm=x", -EBADMSG, 0, 0, NULL },
	{ "Digest username=\"bob\" realm=\"x\"", -EBADMSG, 0, 0, NULL },
	{ "Digest username=\"a\", username=\"b\"", -EBADMSG, 0, 0, NULL },
	{ "Digest Username=\"a\", USERNAME=\"b\"", -EBADMSG, 0, 0, NULL },
	{ "Digest username=bo\"b", -EBADMSG, 0, 0, NULL },
	{ "Digest username=\"b\x01o\"", -EBADMSG, 0, 0, NULL },
	{ "Digest, username=\"b\"", -EBADMSG, 0, 0, NULL },
	{ "Digest username=\"b\";realm=x", -EBADMSG, 0, 0, NULL },
	{ "Dig\"est username=\"b\"", -EBADMSG, 0, 0, NULL },
};

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct sip_auth a;
		char buf[256];
		struct sw_str v;
		int rc = sip_auth_parse(sw_str_c(r->in), &a);
		if (rc != r->rc)
			fail_msg("row %zu (%s): rc %d, want %d", i, r->in, rc, r->rc);
		if (rc)
			continue;
		assert_int_equal(a.scheme, r->scheme);
		if (!r->val) {
			assert_null(a.v[r->ap].p);
			continue;
		}
		assert_non_null(a.v[r->ap].p);
		assert_int_equal(sip_auth_unq(&a, r->ap, buf, sizeof(buf), &v), 0);
		if (!sw_str_eq(v, sw_str_c(r->val)))
			fail_msg("row %zu: %s = [%.*s], want [%s]", i, sip_ap_name(r->ap), SW_STR_FMT(v),
				 r->val);
	}
}

static void test_token68(void **state)
{
	(void)state;
	struct sip_auth a;
	assert_int_equal(sip_auth_parse(sw_str_c("Bearer abc.def-_~+/=="), &a), 0);
	assert_true(sw_str_eq(a.token68, sw_str_c("abc.def-_~+/==")));
	assert_int_equal(sip_auth_parse(sw_str_c("Digest realm=x"), &a), 0);
	assert_null(a.token68.p);
}

static void test_too_many(void **state)
{
	(void)state;
	char big[4096] = "Digest ";
	for (int i = 0; i < SIP_AUTH_MAX_PARAMS + 1; i++) {
		size_t n = strlen(big);
		snprintf(big + n, sizeof(big) - n, "p%d=x, ", i);
	}
	struct sip_auth a;
	assert_int_equal(sip_auth_parse(sw_str_c(big), &a), -EMSGSIZE);
}

static void test_quoted_flags(void **state)
{
	(void)state;
	struct sip_auth a;
	assert_int_equal(sip_auth_parse(sw_str_c("Digest qop=\"auth\", nc=00000001, realm=\"a\\\"b\""), &a), 0);
	assert_true(a.quoted & (1u << SIP_AP_QOP));
	assert_false(a.quoted & (1u << SIP_AP_NC));
	assert_true(a.escaped & (1u << SIP_AP_REALM));
	assert_false(a.escaped & (1u << SIP_AP_QOP));
	char small[2];
	struct sw_str v;
	assert_int_equal(sip_auth_unq(&a, SIP_AP_REALM, small, sizeof(small), &v), -ENOSPC);
}

static void test_extvalue(void **state)
{
	(void)state;
	char out[64];
	ssize_t n = sip_auth_extvalue(sw_str_c("UTF-8''J%C3%A4s%C3%B8n%20Doe"), out, sizeof(out));
	assert_int_equal(n, 11);
	assert_memory_equal(out, "J\xc3\xa4s\xc3\xb8n Doe", 11);
	assert_int_equal(sip_auth_extvalue(sw_str_c("utf-8'en'abc"), out, sizeof(out)), 3);
	assert_int_equal(sip_auth_extvalue(sw_str_c("ISO-8859-1''abc"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_auth_extvalue(sw_str_c("UTF-8''a%4"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_auth_extvalue(sw_str_c("UTF-8''a%"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_auth_extvalue(sw_str_c("UTF-8''a%zz"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_auth_extvalue(sw_str_c("UTF-8''a b"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_auth_extvalue(sw_str_c("UTF-8'abc"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_auth_extvalue(sw_str_c("UTF-8''abcd"), out, 2), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_token68),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_quoted_flags),
		cmocka_unit_test(test_extvalue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
