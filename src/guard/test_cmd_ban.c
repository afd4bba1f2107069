/* Unit tests: `sipwarden ban` (server/cmd_ban.c) against a running guard:
 * every change the CLI writes to bans.db is applied after the guard's
 * next poll (guard_sync stands for "about a second later"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "config/guard_keys.h"
#include "guard/guard.h"
#include "server/cmd_ban.h"

static struct sw_config cfg;

static int run(const char *a0, const char *a1, const char *a2, const char *a3)
{
	char *argv[8] = { "ban" };
	int argc = 1;
	const char *in[] = { a0, a1, a2, a3 };
	for (int i = 0; i < 4 && in[i]; i++)
		argv[argc++] = (char *)in[i];
	fflush(stdout);
	return cmd_ban(argc, argv, &cfg);
}

static const struct sockaddr *v4(struct sockaddr_in *in, const char *text)
{
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	inet_pton(AF_INET, text, &in->sin_addr);
	return (const struct sockaddr *)in;
}

static void test_cli_against_running_guard(void **state)
{
	(void)state;
	char why[64];
	memset(&cfg, 0, sizeof(cfg));
	guard_conf_default(&cfg.guard);
	assert_int_equal(guard_conf_key(&cfg.guard, "trusted", "10.0.0.0/8", why, sizeof(why)), 0);
	const char *base = getenv("TMPDIR");
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/swbanXXXXXX", base && strlen(base) < 40 ? base : "/tmp");
	assert_non_null(mkdtemp(cfg.data_dir));

	int err;
	struct sw_guard *g = guard_open(&cfg.guard, cfg.data_dir, &err);
	assert_non_null(g);
	struct sockaddr_in a, b;
	const struct sockaddr *x = v4(&a, "203.0.113.5");
	uint64_t now = guard_now_ms();
	guard_tick(g, now);

	assert_int_equal(run("add", "203.0.113.5", "--for", "1h"), 0);
	guard_sync(g);
	assert_true(guard_ip_banned(g, x, now));
	assert_false(guard_ip_banned(g, x, now + 3601 * 1000));
	assert_int_equal(run("list", NULL, NULL, NULL), 0);

	assert_int_equal(run("add", "mallory@example.test", NULL, NULL), 0);
	guard_sync(g);
	assert_true(guard_user_banned(g, sw_str_c("mallory@example.test"), v4(&b, "192.0.2.1"), now));

	assert_int_equal(run("del", "203.0.113.5", NULL, NULL), 0);
	guard_sync(g);
	assert_false(guard_ip_banned(g, x, now));
	assert_int_equal(run("del", "203.0.113.5", NULL, NULL), 1);    /* not banned */

	assert_int_equal(run("add", "10.1.2.3", NULL, NULL), 1);       /* trusted */
	assert_int_equal(run("add", "not-an-ip", NULL, NULL), 2);
	assert_int_equal(run("add", "203.0.113.6", "--for", "soon"), 2);
	assert_int_equal(run("add", NULL, NULL, NULL), 2);
	assert_int_equal(run("frobnicate", NULL, NULL, NULL), 2);

	/* bans the guard makes show up for the CLI, and flush lifts them */
	assert_int_equal(guard_ban(g, "203.0.113.7", false, 0, GUARD_R_SCANNER, now), 0);
	guard_sync(g);
	assert_int_equal(run("list", "--all", NULL, NULL), 0);
	assert_int_equal(run("flush", NULL, NULL, NULL), 0);
	guard_sync(g);
	struct guard_stats st;
	guard_stats(g, &st);
	assert_int_equal(st.ip_bans, 0);
	assert_int_equal(st.user_bans, 0);
	guard_close(g);

	char cmd[SW_PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cfg.data_dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_against_running_guard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
