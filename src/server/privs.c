/* Dropping root: see privs.h. Order matters: chown while still root,
 * then supplementary groups, gid, and uid last (after setuid nothing else
 * can be changed). A final setuid(0) that succeeds means the drop did not
 * happen, and start-up must fail rather than run as root by surprise. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "server/privs.h"

static int lookup(const char *user, const char *group, uid_t *uid, gid_t *gid)
{
	char buf[4096];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;

	int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &pwp);
	if (rc)
		return -rc;
	if (!pwp)
		return -ENOENT;
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	if (group && *group) {
		rc = getgrnam_r(group, &gr, buf, sizeof(buf), &grp);
		if (rc)
			return -rc;
		if (!grp)
			return -ENOENT;
		*gid = gr.gr_gid;
	}
	return 0;
}

/* data_dir and the regular files directly in it (bindings.snap and the
 * journal segments bindings-W-G.log, credentials.db and bans.db with
 * their -wal and -shm, …) to uid:gid. The service creates new segments
 * and snapshots there later, so the directory itself must be its own.
 * Never follows a symlink: one planted in data_dir must not hand
 * /etc/shadow over. */
static int chown_data(const char *dir, uid_t uid, gid_t gid)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	if (fstat(dfd, &st) < 0 || ((st.st_uid != uid || st.st_gid != gid) && fchown(dfd, uid, gid) < 0)) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	int lfd = dup(dfd);
	DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
	if (!d) {
		rc = -errno;
		if (lfd >= 0)
			close(lfd);
		close(dfd);
		return rc;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (st.st_uid == uid && st.st_gid == gid)
			continue;
		if (fchownat(dfd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			break;
		}
	}
	closedir(d);
	close(dfd);
	return rc;
}

int privs_drop(const char *user, const char *group, const char *data_dir)
{
	uid_t uid;
	gid_t gid;
	int rc;

	if (!user || !*user)
		return 0;
	if ((rc = lookup(user, group, &uid, &gid)) < 0)
		return rc;
	if (geteuid() != 0)
		return geteuid() == uid && getegid() == gid ? 0 : -EPERM;
	if (uid == 0)
		return -EPERM; /* `user = root` is no drop at all */
	if (data_dir && (rc = chown_data(data_dir, uid, gid)) < 0)
		return rc;
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	if (setuid(0) == 0 || geteuid() == 0)
		return -EPERM;
	return 0;
}
