/* privs_drop (issue 7): unknown names, no-op without a user, and — when
 * the test runs as root — a real drop to `nobody` in a child process:
 * data_dir files handed over, symlinks left alone, no way back to root. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/privs.h"

static void test_no_user_is_noop(void **state)
{
	(void)state;
	assert_int_equal(privs_drop(NULL, NULL, NULL), 0);
	assert_int_equal(privs_drop("", "", NULL), 0);
}

static void test_unknown_names(void **state)
{
	(void)state;
	assert_int_equal(privs_drop("no-such-user-sipwarden-test", NULL, NULL), -ENOENT);
	assert_int_equal(privs_drop("nobody", "no-such-group-sipwarden-test", NULL), -ENOENT);
}

static void test_root_target_refused(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(privs_drop("root", NULL, NULL), -EPERM);
}

static void test_not_root_cannot_switch(void **state)
{
	(void)state;
	if (geteuid() == 0)
		skip();
	assert_int_equal(privs_drop("nobody", NULL, NULL), -EPERM);
}

/* Child: 0 when every check holds, else the number of the failed one. */
static int drop_child(const char *dir, const char *outside, uid_t nobody)
{
	char p[512];
	struct stat st;
	if (privs_drop("nobody", NULL, dir) != 0)
		return 10;
	if (getuid() != nobody || geteuid() != nobody)
		return 11;
	if (setuid(0) == 0 || seteuid(0) == 0)
		return 12;
	if (getgroups(0, NULL) > 1)
		return 13;
	snprintf(p, sizeof(p), "%s/bindings.snap", dir);
	if (stat(p, &st) < 0 || st.st_uid != nobody)
		return 14;
	snprintf(p, sizeof(p), "%s/bindings-0-1.log", dir);
	int fd = open(p, O_WRONLY | O_APPEND);   /* still writable by the service */
	if (fd < 0 || write(fd, "x", 1) != 1)
		return 15;
	close(fd);
	/* workers create new journal segments, compaction a new snapshot */
	snprintf(p, sizeof(p), "%s/bindings-0-2.log", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	if (fd < 0)
		return 16;
	close(fd);
	if (lstat(outside, &st) < 0 || st.st_uid != 0)   /* not followed through the symlink */
		return 17;
	return 0;
}

static void test_drop_to_nobody(void **state)
{
	(void)state;
	struct passwd *pw = getpwnam("nobody");
	if (geteuid() != 0 || !pw)
		skip();
	char dir[] = "/tmp/sw-privs-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char p[512], outside[512], link[512];
	static const char *const files[] = { "bindings.snap", "bindings-0-1.log" };
	for (unsigned i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		int fd = open(p, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	int fd;
	snprintf(outside, sizeof(outside), "%s.outside", dir);
	fd = open(outside, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(link, sizeof(link), "%s/evil.db", dir);
	assert_int_equal(symlink(outside, link), 0);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(drop_child(dir, outside, pw->pw_uid));
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	struct stat st;
	assert_int_equal(lstat(outside, &st), 0);
	assert_int_equal(st.st_uid, 0);
	unlink(link);
	unlink(outside);
	static const char *const made[] = { "bindings.snap", "bindings-0-1.log", "bindings-0-2.log" };
	for (unsigned i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, made[i]);
		unlink(p);
	}
	rmdir(dir);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_user_is_noop),
		cmocka_unit_test(test_unknown_names),
		cmocka_unit_test(test_root_target_refused),
		cmocka_unit_test(test_not_root_cannot_switch),
		cmocka_unit_test(test_drop_to_nobody),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
