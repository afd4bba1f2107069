/* Config loading: good files load; every bad one names file and line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/log.h"
#include "config/config.h"

static struct sw_config cfg;

static int load_text(const char *text, struct sw_config_diag *diag, char *path, size_t cap)
{
	snprintf(path, cap, "/tmp/sw-test-config-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int rc = config_load(path, &cfg, diag);
	unlink(path);
	return rc;
}

static void test_good(void **state)
{
	struct sw_config_diag d;
	char path[64];
	int rc = load_text("; comment\n"
			   "[server]\n"
			   "listen = udp:127.0.0.1:5070\n"
			   "listen = tcp:[::1]:5071\n"
			   "workers = 3\n"
			   "data_dir = /tmp/x\n"
			   "log_level = debug\n"
			   "udp_receive_buffer = 32M\n"
			   "realtime_priority = 10\n"
			   "[registrar]\n"
			   "trust = 10.0.0.0/8, 2001:db8::/32 ; inline comment\n"
			   "min_expires = 30\n"
			   "unknown_domain = 404\n"
			   "fsync = yes\n"
			   "[realm Example.COM]\n"
			   "[realm b.example.org]\n"
			   "[limits]\n"
			   "max_via = 10\n",
			   &d, path, sizeof(path));
	assert_int_equal(rc, 0);
	assert_int_equal(cfg.nlisten, 2);
	assert_int_equal(cfg.listen[0].proto, SW_PROTO_UDP);
	assert_int_equal(cfg.listen[1].proto, SW_PROTO_TCP);
	assert_int_equal(cfg.listen[1].addr.ss_family, AF_INET6);
	assert_int_equal(cfg.workers, 3);
	assert_string_equal(cfg.data_dir, "/tmp/x");
	assert_int_equal(cfg.log_level, SW_LOG_DEBUG);
	assert_int_equal(cfg.tp.udp_rcvbuf, 32u << 20);
	assert_int_equal(cfg.rt_priority, 10);
	assert_int_equal(cfg.nreg_trust, 2);
	assert_int_equal(cfg.reg.min_expires, 30);
	assert_int_equal(cfg.unknown_domain_status, 404);
	assert_true(cfg.reg.fsync);
	assert_int_equal(cfg.nrealms, 2);
	assert_non_null(config_realm(&cfg, "example.com", 11));
	assert_non_null(config_realm(&cfg, "EXAMPLE.com", 11));
	assert_null(config_realm(&cfg, "example.net", 11));
	assert_int_equal(cfg.limits.max_via, 10);
	assert_int_equal(cfg.tp.limits.max_via, 10);
}

static void test_defaults(void **state)
{
	struct sw_config_diag d;
	char path[64];
	assert_int_equal(load_text("[realm a.test]\n", &d, path, sizeof(path)), 0);
	assert_int_equal(cfg.nlisten, 2); /* loopback udp+tcp 5060 */
	assert_int_equal(cfg.nreg_trust, 0); /* nobody may register by default */
	assert_int_equal(cfg.reg.min_expires, 60);
	assert_false(cfg.reg.fsync);      /* default: no fdatasync per REGISTER */
	assert_int_equal(cfg.tp.udp_rcvbuf, 4u << 20);
	assert_int_equal(cfg.rt_priority, 0);  /* workers at normal priority */
}

struct bad {
	const char *text;
	const char *expect; /* ":LINE: fragment" */
};

static void test_bad(void **state)
{
	static const struct bad rows[] = {
		{ "[server]\nlisten = udp:1.2.3.4\n", ":2: listen: bad address" },
		{ "[server]\nlisten = sctp:1.2.3.4:5\n", ":2: listen: expected" },
		{ "[server]\nlisten = tls:127.0.0.1:5061\n", ":2: listen: transport \"tls\" is not available" },
		{ "[server]\n\nworkers = lots\n", ":3: workers: expected a whole number" },
		{ "[server]\nworkers = 0\n", ":2: workers" },
		{ "[server]\nrealtime_priority = 50\n", ":2: realtime_priority: at most 49" },
		{ "[server]\nrealtime_priority = high\n", ":2: realtime_priority: expected a whole number" },
		{ "[server]\ncolour = blue\n", ":2: unknown key \"colour\" in [server]" },
		{ "[servre]\n", ":1: unknown section [servre]" },
		{ "[registrar]\ntrust = 10.0.0.0/33\n", ":2: trust: \"10.0.0.0/33\"" },
		{ "[registrar]\ntrust = nonsense\n", ":2: trust" },
		{ "[registrar]\nmin_expires = -5\n", ":2: min_expires" },
		{ "[registrar]\nunknown_domain = 500\n", ":2: unknown_domain" },
		{ "[registrar]\n\nfsync = sometimes\n", ":3: fsync: expected yes or no, got \"sometimes\"" },
		{ "[realm]\n", ":1: [realm] needs a domain name" },
		{ "[realm a.b]\n[realm A.B]\n", ":2: realm \"A.B\" is defined twice" },
		{ "[realm a b]\n", ":1: realm \"a b\": not a domain name" },
		{ "[realm a.b]\nfoo = 1\n", ":2: unknown key \"foo\" in [realm a.b]" },
		{ "[server]\nlog_level = loud\n", ":2: log_level" },
		{ "[server]\nudp_receive_buffer = lots\n", ":2: udp_receive_buffer: expected" },
		{ "[server]\nudp_receive_buffer = 1K\n", ":2: udp_receive_buffer: at least 65536 bytes" },
		{ "[server]\nudp_receive_buffer = 2G\n", ":2: udp_receive_buffer" },
		{ "[limits]\ntxn_memory = 512K\n", ":2: txn_memory: at least 1048576 bytes" },
		{ "[limits]\nmax_message = 10\n", ":2: max_message" },
		{ "[server]\nlisten = udp:127.0.0.1:5060\nlisten = udp:127.0.0.1:5060\n", ":3: listen: udp:127.0.0.1:5060 is listed twice" },
		{ "just text\n", ":1: syntax error" },
		{ "[server]\nlisten = udp:127.0.0.1:5060 ; aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		  ":2: line longer than" },
		{ "[registrar]\nmin_expires = 4000\n", ": [registrar] min_expires (4000) is above max_expires" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sw_config_diag d;
		char path[64];
		int rc = load_text(rows[i].text, &d, path, sizeof(path));
		if (rc != -EINVAL || !strstr(d.text, rows[i].expect) || strncmp(d.text, path, strlen(path)) != 0)
			fail_msg("row %zu: rc=%d diag=\"%s\" wanted \"%s\"", i, rc, d.text, rows[i].expect);
	}
}

static void test_missing_file(void **state)
{
	struct sw_config_diag d;
	assert_int_equal(config_load("/nonexistent/sw.ini", &cfg, &d), -EINVAL);
	assert_non_null(strstr(d.text, "/nonexistent/sw.ini: cannot open"));
}

static void test_check_warnings(void **state)
{
	struct sw_config_diag d;
	char path[64];
	assert_int_equal(load_text("[server]\nlisten = udp:0.0.0.0:5060\n[registrar]\ntrust = 0.0.0.0/0\n",
				   &d, path, sizeof(path)), 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	unsigned n = config_check(&cfg, out);
	fclose(out);
	assert_true(n >= 3);
	assert_non_null(strstr(buf, "/0 prefix"));
	assert_non_null(strstr(buf, "no [realm]"));
	free(buf);
}

/* realtime_priority with a worker on every CPU: under a flood nothing
 * else runs, so check says so; with fewer workers than CPUs it does not. */
static void test_check_realtime(void **state)
{
	struct sw_config_diag d;
	char path[64];
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(load_text("[server]\nrealtime_priority = 5\n[realm a.test]\n", &d, path, sizeof(path)), 0);
	FILE *out = open_memstream(&buf, &len);
	config_check(&cfg, out);
	fclose(out);
	assert_non_null(strstr(buf, "realtime_priority with workers = auto"));
	free(buf);
	buf = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 2)
		return;   /* one CPU: every worker count is "a worker per CPU" */
	assert_int_equal(load_text("[server]\nrealtime_priority = 5\nworkers = 1\n[realm a.test]\n", &d, path,
				   sizeof(path)), 0);
	out = open_memstream(&buf, &len);
	config_check(&cfg, out);
	fclose(out);
	assert_null(strstr(buf, "realtime_priority"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_check_warnings),
		cmocka_unit_test(test_check_realtime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
