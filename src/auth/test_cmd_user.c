/* `sipwarden user …` end to end against a temporary data_dir (issue 3). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth/digest.h"
#include "base/str.h"
#include "config/auth_keys.h"
#include "server/cmd_user.h"
#include "store/creds.h"

static struct sw_config *cfg;
static char out[8192];

static int setup(void **state)
{
	(void)state;
	cfg = calloc(1, sizeof(*cfg));
	snprintf(cfg->data_dir, sizeof(cfg->data_dir), "/tmp/sw-cli-XXXXXX");
	assert_non_null(mkdtemp(cfg->data_dir));
	snprintf(cfg->realms[0].name, sizeof(cfg->realms[0].name), "pbx.example.com");
	snprintf(cfg->realms[1].name, sizeof(cfg->realms[1].name), "lab.example.com");
	cfg->nrealms = 2;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[SW_PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cfg->data_dir);
	free(cfg);
	return system(cmd);
}

/* Run with stdin from `input` and stdout captured into out. */
static int run(const char *input, ...)
{
	char *argv[16];
	int argc = 0;
	va_list ap;
	va_start(ap, input);
	argv[argc++] = "user";
	for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 15;)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;

	char inpath[] = "/tmp/sw-cli-in-XXXXXX", outpath[] = "/tmp/sw-cli-out-XXXXXX";
	int in = mkstemp(inpath), o = mkstemp(outpath);
	assert_true(in >= 0 && o >= 0);
	if (input)
		assert_int_equal(write(in, input, strlen(input)), (ssize_t)strlen(input));
	lseek(in, 0, SEEK_SET);
	fflush(stdout);
	int save_in = dup(0), save_out = dup(1);
	dup2(in, 0);
	dup2(o, 1);
	clearerr(stdin);
	int rc = cmd_user(argc, argv, cfg);
	fflush(stdout);
	dup2(save_in, 0);
	dup2(save_out, 1);
	close(save_in);
	close(save_out);
	clearerr(stdin);
	lseek(o, 0, SEEK_SET);
	ssize_t n = read(o, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(in);
	close(o);
	unlink(inpath);
	unlink(outpath);
	return rc;
}

static void get(const char *user, const char *realm, struct creds_row *r, int want)
{
	char path[SW_PATH_MAX + 32];
	struct creds_db *db;
	snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, CREDS_DB_FILE);
	assert_int_equal(creds_db_open(path, 0, &db), 0);
	assert_int_equal(creds_db_get(db, user, realm, r), want);
	creds_db_close(db);
}

static void test_add_list(void **state)
{
	(void)state;
	struct creds_row r;
	char ha1[DIGEST_HEX_MAX];
	assert_int_equal(run("correct horse battery\n", "add", "1001@PBX.example.com", "--password-stdin",
			     "-c", "ignored.conf", NULL), 0);
	get("1001", "pbx.example.com", &r, 0);
	assert_int_equal(digest_ha1(NULL, AUTH_H_SHA256, SW_STR_LIT("1001"), SW_STR_LIT("pbx.example.com"),
				    SW_STR_LIT("correct horse battery"), ha1), 0);
	assert_string_equal(r.ha1[AUTH_H_SHA256], ha1);
	assert_true(creds_hex_valid(0, r.ha1[0]) && creds_hex_valid(2, r.ha1[2]));
	assert_true(creds_hex_valid(1, r.uh[1]));
	assert_true(r.enabled);
	/* no trace of the password in the database file */
	char cmd[SW_PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "grep -rqa 'horse battery' %s", cfg->data_dir);
	assert_int_not_equal(system(cmd), 0);

	assert_int_equal(run("correct horse battery\n", "add", "1001@pbx.example.com",
			     "--password-stdin", NULL), 1);                          /* exists */
	assert_int_equal(run("short\n", "add", "1002@pbx.example.com", "--password-stdin", NULL), 1);
	assert_int_equal(run("100210021002\n", "add", "100210021002@pbx.example.com",
			     "--password-stdin", NULL), 1);                          /* = user */
	assert_int_equal(run("555512345678\n", "add", "a7f3k9@pbx.example.com", "--password-stdin",
			     "--aor", "1003, 555512345678@lab.example.com", NULL), 1); /* = extension */
	assert_int_equal(run("correct horse battery\n", "add", "1001@nowhere.example.com",
			     "--password-stdin", NULL), 1);                          /* realm */
	assert_int_equal(run("x\n", "add", "noat", "--password-stdin", NULL), 1);
	assert_int_equal(run("", "add", "1009@pbx.example.com", "--password-stdin", NULL), 1);
	assert_int_equal(run(NULL, "add", "1009@pbx.example.com", NULL), 1);     /* not a tty */
	assert_int_equal(run(NULL, "add", "1009@pbx.example.com", "--generate", "--password-stdin", NULL), 2);
	assert_int_equal(run(NULL, "frobnicate", NULL), 2);
	assert_int_equal(run(NULL, "add", "--bogus", NULL), 2);

	/* --generate prints a 20+ character password once; it is the one stored */
	assert_int_equal(run(NULL, "add", "a7f3k9@pbx.example.com", "--generate", "--aor", "1003", NULL), 0);
	const char *p = strstr(out, "password: ");
	assert_non_null(p);
	char pw[64];
	assert_int_equal(sscanf(p + 10, "%63s", pw), 1);
	assert_true(strlen(pw) >= 20);
	get("a7f3k9", "pbx.example.com", &r, 0);
	assert_int_equal(digest_ha1(NULL, AUTH_H_MD5, SW_STR_LIT("a7f3k9"), SW_STR_LIT("pbx.example.com"),
				    sw_str_c(pw), ha1), 0);
	assert_string_equal(r.ha1[AUTH_H_MD5], ha1);
	assert_string_equal(r.aors, "1003");

	assert_int_equal(run(NULL, "list", NULL), 0);
	assert_non_null(strstr(out, "1001@pbx.example.com\tenabled\tMD5,SHA-256,SHA-512-256\t\n"));
	assert_non_null(strstr(out, "a7f3k9@pbx.example.com\tenabled\tMD5,SHA-256,SHA-512-256\taors=1003\n"));
	assert_null(strstr(out, r.ha1[0]));
	assert_int_equal(run(NULL, "list", "lab.example.com", NULL), 0);
	assert_string_equal(out, "");
}

static void test_lifecycle(void **state)
{
	(void)state;
	struct creds_row r, r2;
	assert_int_equal(run("correct horse battery\n", "add", "1001@pbx.example.com", "--password-stdin", NULL), 0);
	get("1001", "pbx.example.com", &r, 0);
	assert_int_equal(run(NULL, "disable", "1001@pbx.example.com", NULL), 0);
	get("1001", "pbx.example.com", &r2, 0);
	assert_false(r2.enabled);
	assert_int_equal(run(NULL, "list", NULL), 0);
	assert_non_null(strstr(out, "disabled"));
	assert_int_equal(run(NULL, "enable", "1001@pbx.example.com", NULL), 0);
	get("1001", "pbx.example.com", &r2, 0);
	assert_true(r2.enabled);
	assert_int_equal(run(NULL, "aors", "1001@pbx.example.com", "1002, 2000@lab.example.com", NULL), 0);
	get("1001", "pbx.example.com", &r2, 0);
	assert_string_equal(r2.aors, "1002, 2000@lab.example.com");
	/* passwd keeps flags and AORs, changes every hash */
	assert_int_equal(run("battery staple horse\n", "passwd", "1001@pbx.example.com", "--password-stdin", NULL), 0);
	get("1001", "pbx.example.com", &r2, 0);
	assert_string_equal(r2.aors, "1002, 2000@lab.example.com");
	for (int h = 0; h < CREDS_ALGS; h++)
		assert_string_not_equal(r.ha1[h], r2.ha1[h]);
	assert_string_equal(r.uh[1], r2.uh[1]);
	assert_int_equal(run("2000-2000-2000\n", "passwd", "1001@pbx.example.com", "--password-stdin", NULL), 0);
	assert_int_equal(run("1002\n", "passwd", "1001@pbx.example.com", "--password-stdin", NULL), 1);
	assert_int_equal(run("battery staple horse\n", "passwd", "1009@pbx.example.com", "--password-stdin", NULL), 1);
	assert_int_equal(run(NULL, "del", "1001@pbx.example.com", NULL), 0);
	get("1001", "pbx.example.com", &r2, -ENOENT);
	assert_int_equal(run(NULL, "del", "1001@pbx.example.com", NULL), 1);
	assert_int_equal(run(NULL, "disable", "1001@pbx.example.com", NULL), 1);
}

static void test_import_kamailio(void **state)
{
	(void)state;
	char kpath[SW_PATH_MAX + 32];
	sqlite3 *k;
	struct creds_row r;
	char ha1[DIGEST_HEX_MAX];
	snprintf(kpath, sizeof(kpath), "%s/kamailio.db", cfg->data_dir);
	assert_int_equal(sqlite3_open(kpath, &k), SQLITE_OK);
	assert_int_equal(digest_ha1(NULL, AUTH_H_MD5, SW_STR_LIT("2001"), SW_STR_LIT("pbx.example.com"),
				    SW_STR_LIT("kamailio secret"), ha1), 0);
	char sql[2048];
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username TEXT, domain TEXT, "
		 "password TEXT, ha1 TEXT, ha1b TEXT);"
		 "INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES "
		 "('2001', 'pbx.example.com', '', '%s', 'x'),"
		 "('2002', 'PBX.example.com', '', '0123456789ABCDEF0123456789ABCDEF', 'x'),"
		 "('2003', 'pbx.example.com', '', 'nothex', 'x'),"
		 "('2004', 'other.example.com', '', '0123456789abcdef0123456789abcdef', 'x'),"
		 "('1001', 'pbx.example.com', '', '0123456789abcdef0123456789abcdef', 'x');", ha1);
	assert_int_equal(sqlite3_exec(k, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(k);
	assert_int_equal(run("correct horse battery\n", "add", "1001@pbx.example.com", "--password-stdin", NULL), 0);

	assert_int_equal(run(NULL, "import-kamailio", kpath, NULL), 0);
	assert_non_null(strstr(out, "imported 2 users"));
	assert_non_null(strstr(out, "skipped 1 existing, 1 with an unusable ha1, 1 outside"));
	assert_non_null(strstr(out, "needs new password: 2001@pbx.example.com"));
	assert_non_null(strstr(out, "needs new password: 2002@pbx.example.com"));
	get("2001", "pbx.example.com", &r, 0);
	assert_string_equal(r.ha1[0], ha1);
	assert_string_equal(r.ha1[1], "");
	assert_string_equal(r.source, "kamailio");
	assert_true(creds_hex_valid(1, r.uh[1]));
	get("2002", "pbx.example.com", &r, 0);
	assert_string_equal(r.ha1[0], "0123456789abcdef0123456789abcdef");
	get("1001", "pbx.example.com", &r, 0);
	assert_string_not_equal(r.ha1[0], "0123456789abcdef0123456789abcdef");
	assert_int_equal(run(NULL, "list", NULL), 0);
	assert_non_null(strstr(out, "2001@pbx.example.com\tenabled\tMD5\t"));
	/* --replace overwrites, keeping the enabled flag */
	assert_int_equal(run(NULL, "disable", "1001@pbx.example.com", NULL), 0);
	assert_int_equal(run(NULL, "import-kamailio", kpath, "--replace", NULL), 0);
	assert_non_null(strstr(out, "replaced 3"));
	get("1001", "pbx.example.com", &r, 0);
	assert_string_equal(r.ha1[0], "0123456789abcdef0123456789abcdef");
	assert_false(r.enabled);
	/* not a Kamailio database */
	char bogus[SW_PATH_MAX + 32];
	snprintf(bogus, sizeof(bogus), "%s/%s", cfg->data_dir, CREDS_DB_FILE);
	assert_int_equal(run(NULL, "import-kamailio", bogus, NULL), 1);
	assert_int_equal(run(NULL, "import-kamailio", "/nonexistent/k.db", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_kamailio, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
