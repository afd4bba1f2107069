#ifndef SW_SERVER_PRIVS_H
#define SW_SERVER_PRIVS_H

/* Give up root after the sockets are bound and the databases are open
 * (issue 7, `[server] user` / `group`). group NULL or "": the user's
 * primary group. The regular files directly in data_dir and data_dir
 * itself are handed to the user (symlinks are never followed), so SQLite
 * can still write its -wal/-shm files and reopen a replaced database.
 * Supplementary groups are cleared. Returns 0, -ENOENT for an unknown
 * user or group, -EPERM when not root and not already that user, or the
 * negative errno of the call that failed. Does not log. */
int privs_drop(const char *user, const char *group, const char *data_dir);

#endif
