/* Digest config keys: [realm NAME], [profile NAME], [auth] (issue 3). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/auth_keys.h"

struct row {
	const char *kind, *name, *key, *value;
	int rc;
};

static const struct row rows[] = {
	{ "realm", "pbx.example.com", "algorithms", "SHA-512-256, sha-256-sess ,MD5", 0 },
	{ "realm", "pbx.example.com", "algorithms", "SHA-1", -EINVAL },
	{ "realm", "pbx.example.com", "algorithms", "MD5, md5", -EINVAL },
	{ "realm", "pbx.example.com", "algorithms", "", -EINVAL },
	{ "realm", "pbx.example.com", "md5", "deny", 0 },
	{ "realm", "pbx.example.com", "md5", "maybe", -EINVAL },
	{ "realm", "pbx.example.com", "qop", "auth, auth-int", 0 },
	{ "realm", "pbx.example.com", "qop", "auth-conf", -EINVAL },
	{ "realm", "pbx.example.com", "allow_no_qop", "yes", 0 },
	{ "realm", "pbx.example.com", "userhash", "true", 0 },
	{ "realm", "pbx.example.com", "bind_nonce_to_ip", "off", 0 },
	{ "realm", "pbx.example.com", "bind_nonce_to_ip", "perhaps", -EINVAL },
	{ "realm", "pbx.example.com", "opaque", "no", 0 },
	{ "realm", "pbx.example.com", "identity_check", "yes", 0 },
	{ "realm", "pbx.example.com", "nonce_lifetime", "600", 0 },
	{ "realm", "pbx.example.com", "nonce_lifetime", "5", -EINVAL },
	{ "realm", "pbx.example.com", "nonce_lifetime", "10m", -EINVAL },
	{ "realm", "pbx.example.com", "after_failure", "403", 0 },
	{ "realm", "pbx.example.com", "after_failure", "ban", -EINVAL },
	{ "realm", "pbx.example.com", "max_failures", "3", 0 },
	{ "realm", "pbx.example.com", "min_password_length", "16", 0 },
	{ "realm", "pbx.example.com", "min_password_length", "4", -EINVAL },
	{ "realm", "pbx.example.com", "identity", "a7f3k9:1001, a7f3k9:1002", 0 },
	{ "realm", "pbx.example.com", "identity", "a7f3k9", -EINVAL },
	{ "realm", "pbx.example.com", "identity", ":1001", -EINVAL },
	{ "realm", "pbx.example.com", "listen", "x", -ENOENT },
	{ "realm", "nowhere.example.com", "md5", "deny", -EINVAL },
	{ "profile", "legacy", "match_user_agent", "baresip*, Grandstream *", 0 },
	{ "profile", "legacy", "match_source", "192.0.2.0/24, 2001:db8::/32", 0 },
	{ "profile", "legacy", "match_source", "192.0.2.0/33", -EINVAL },
	{ "profile", "legacy", "algorithms", "SHA-256, MD5", 0 },
	{ "profile", "legacy", "qop", "auth", 0 },
	{ "profile", "legacy", "colour", "blue", -ENOENT },
	{ "auth", "", "nonce_secret", "00112233445566778899aabbccddeeff", 0 },
	{ "auth", "", "nonce_secret", "0011", -EINVAL },
	{ "auth", "", "nonce_secret", "zz112233445566778899aabbccddeeff", -EINVAL },
	{ "auth", "", "nonce_slots", "100000", 0 },
	{ "auth", "", "nonce_slots", "10", -EINVAL },
	{ "auth", "", "retry_after", "10", 0 },
	{ "auth", "", "secret", "x", -ENOENT },
	{ "trunk", "x", "algorithms", "MD5", -ENOENT },
};

static struct sw_config *cfg_new(void)
{
	struct sw_config *c = calloc(1, sizeof(*c));
	snprintf(c->realms[0].name, sizeof(c->realms[0].name), "pbx.example.com");
	snprintf(c->realms[1].name, sizeof(c->realms[1].name), "lab.example.com");
	c->nrealms = 2;
	snprintf(c->path, sizeof(c->path), "test.conf");
	return c;
}

static void test_rows(void **state)
{
	(void)state;
	struct sw_config *c = cfg_new();
	char why[256];
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		int rc = config_auth_key(c, r->kind, r->name, r->key, r->value, why, sizeof(why));
		if (rc != r->rc)
			fail_msg("row %zu [%s %s] %s = %s: %d (%s), want %d", i, r->kind, r->name, r->key,
				 r->value, rc, why, r->rc);
		if (rc == -EINVAL && !why[0])
			fail_msg("row %zu: no reason given", i);
	}
	const struct auth_realm_conf *p = config_auth_realm(c, 0);
	assert_int_equal(p->algs.n, 3);
	assert_int_equal(p->algs.v[0], AUTH_SHA512_256);
	assert_int_equal(p->algs.v[1], AUTH_SHA256_SESS);
	assert_int_equal(p->algs.v[2], AUTH_MD5);
	assert_int_equal(p->md5, AUTH_MD5_DENY);
	assert_int_equal(p->qop, AUTH_QOP_AUTH | AUTH_QOP_AUTH_INT);
	assert_true(p->allow_no_qop && p->userhash && !p->bind_nonce_to_ip && !p->opaque);
	assert_int_equal(p->nonce_lifetime, 600);
	assert_int_equal(p->after_failure, AUTH_FAIL_REJECT);
	assert_int_equal(p->max_failures, 3);
	assert_int_equal(p->min_password, 16);
	assert_int_equal(c->auth.nidmaps, 2);
	assert_string_equal(c->auth.idmaps[1].aor_user, "1002");
	/* the untouched realm keeps the defaults */
	const struct auth_realm_conf *l = config_auth_realm(c, 1);
	assert_int_equal(l->algs.n, 2);
	assert_int_equal(l->algs.v[0], AUTH_SHA256);
	assert_int_equal(l->md5, AUTH_MD5_WARN);
	assert_int_equal(l->nonce_lifetime, 300);
	assert_int_equal(c->auth.nprofiles, 1);
	assert_int_equal(c->auth.profiles[0].nua, 2);
	assert_int_equal(c->auth.profiles[0].nsrc, 2);
	assert_int_equal(c->auth.nonce_secret_len, 16);
	assert_int_equal(config_auth_finish(c, why, sizeof(why)), 0);
	free(c);
}

static void test_finish(void **state)
{
	(void)state;
	char why[256];
	struct sw_config *c = cfg_new();
	assert_int_equal(config_auth_key(c, "realm", "pbx.example.com", "algorithms", "MD5, MD5-sess",
					 why, sizeof(why)), 0);
	assert_int_equal(config_auth_key(c, "realm", "pbx.example.com", "md5", "deny", why, sizeof(why)), 0);
	assert_int_equal(config_auth_finish(c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "md5 = deny"));
	free(c);

	c = cfg_new();
	assert_int_equal(config_auth_key(c, "profile", "p", "algorithms", "MD5", why, sizeof(why)), 0);
	assert_int_equal(config_auth_finish(c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "match_"));
	assert_int_equal(config_auth_key(c, "profile", "p", "match_user_agent", "x*", why, sizeof(why)), 0);
	assert_int_equal(config_auth_finish(c, why, sizeof(why)), 0);
	assert_int_equal(config_auth_key(c, "realm", "lab.example.com", "md5", "deny", why, sizeof(why)), 0);
	assert_int_equal(config_auth_finish(c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "[profile p]"));
	free(c);

	c = cfg_new();
	assert_int_equal(config_auth_key(c, "profile", "q", "match_user_agent", "x*", why, sizeof(why)), 0);
	assert_int_equal(config_auth_finish(c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "algorithms"));
	free(c);

	c = cfg_new();
	assert_int_equal(config_auth_key(c, "auth", "", "nonce_secret", "00112233445566778899aabbccddeeff",
					 why, sizeof(why)), 0);
	assert_int_equal(config_auth_key(c, "auth", "", "nonce_secret_file", "/etc/x", why, sizeof(why)), 0);
	assert_int_equal(config_auth_finish(c, why, sizeof(why)), -EINVAL);
	free(c);
}

static void test_warn(void **state)
{
	(void)state;
	char why[256], buf[4096] = "";
	struct sw_config *c = cfg_new();
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	assert_int_equal(config_auth_warn(c, f), 0);
	assert_int_equal(config_auth_key(c, "realm", "pbx.example.com", "md5", "allow", why, sizeof(why)), 0);
	assert_int_equal(config_auth_key(c, "realm", "pbx.example.com", "allow_no_qop", "yes", why,
					 sizeof(why)), 0);
	assert_int_equal(config_auth_key(c, "realm", "lab.example.com", "identity_check", "no", why,
					 sizeof(why)), 0);
	assert_int_equal(config_auth_warn(c, f), 3);
	fclose(f);
	assert_non_null(strstr(buf, "warning: test.conf: [realm pbx.example.com] allows MD5"));
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_warn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
