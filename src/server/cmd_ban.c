/* `sipwarden ban` (see cmd_ban.h). Works on bans.db directly, through its
 * own SQLite connection, so it needs no control socket and works whether
 * or not the server runs; the server applies the change on its next poll. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/net.h"
#include "base/str.h"
#include "config/guard_keys.h"
#include "guard/bansdb.h"
#include "guard/guard.h"
#include "server/cmd_ban.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sipwarden ban list [--all] [-c FILE]\n"
		"       sipwarden ban add ADDRESS|USER@REALM [--for DURATION] [--reason TEXT] [-c FILE]\n"
		"       sipwarden ban del ADDRESS|USER@REALM [-c FILE]\n"
		"       sipwarden ban flush [-c FILE]\n"
		"DURATION: seconds or 30s, 10m, 1h, 2d (default: [guard] ban_time).\n"
		"IPv6 addresses are banned by their [guard] ipv6_prefix (default /64).\n");
}

/* Print a target that may hold anything a peer sent as a username. */
static void put_safe(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
}

static void fmt_time(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "%lld", (long long)ms);
}

struct list_ctx {
	int64_t now;
	unsigned n;
};

static int print_row(void *ctx, const struct guard_ban_row *r)
{
	struct list_ctx *lc = ctx;
	char until[32];
	fmt_time(r->until_ms, until, sizeof(until));
	int64_t left = (r->until_ms - lc->now) / 1000;
	printf("%-4s ", r->user ? "user" : "ip");
	put_safe(r->target);
	if (left > 0)
		printf("  until %s (%llds left)", until, (long long)left);
	else
		printf("  ended %s", until);
	printf("  reason=%s offences=%u\n", r->reason, r->offences);
	lc->n++;
	return 0;
}

static int64_t wall_ms(void)
{
	return (int64_t)guard_now_ms();
}

static bool is_trusted(const struct sw_config *cfg, const char *norm)
{
	struct sw_cidr c;
	if (sw_cidr_parse(sw_str_c(norm), &c) < 0)
		return false;
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	char buf[80];
	/* The network address of the target, as a sockaddr. */
	if (c.family == AF_INET)
		snprintf(buf, sizeof(buf), "%u.%u.%u.%u:1", c.addr[0], c.addr[1], c.addr[2], c.addr[3]);
	else {
		char host[64];
		const char *slash = strchr(norm, '/');
		snprintf(host, sizeof(host), "%.*s", slash ? (int)(slash - norm) : (int)strlen(norm), norm);
		snprintf(buf, sizeof(buf), "[%s]:1", host);
	}
	if (sw_sockaddr_parse(sw_str_c(buf), &ss, &len) < 0)
		return false;
	return sw_cidr_list_match(cfg->guard.trusted, cfg->guard.ntrusted, (const struct sockaddr *)&ss);
}

/* ADDRESS → normalised ban key text; anything else with '@' → a user. */
static int target_of(const struct sw_config *cfg, const char *arg, bool force_user, bool *user,
		     char *out, size_t cap)
{
	if (!force_user && guard_target_norm(arg, cfg->guard.ipv6_prefix, out, cap) == 0) {
		*user = false;
		return 0;
	}
	struct sw_str u = sw_str_trim(sw_str_c(arg));
	if (!u.len || u.len >= GUARD_NAME_MAX || (!force_user && !memchr(u.p, '@', u.len)))
		return -EINVAL;
	*user = true;
	return sw_str_copy(u, out, cap);
}

int cmd_ban(int argc, char **argv, const struct sw_config *cfg)
{
	const char *sub = NULL, *target = NULL, *dur_s = NULL, *reason = "admin";
	bool all = false, force_user = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
			i++;
		} else if (strcmp(a, "--for") == 0 && i + 1 < argc) {
			dur_s = argv[++i];
		} else if (strcmp(a, "--reason") == 0 && i + 1 < argc) {
			reason = argv[++i];
		} else if (strcmp(a, "--all") == 0) {
			all = true;
		} else if (strcmp(a, "--user") == 0) {
			force_user = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (!sub) {
			sub = a;
		} else if (!target) {
			target = a;
		} else {
			usage(stderr);
			return 2;
		}
	}
	bool needs_target = sub && (strcmp(sub, "add") == 0 || strcmp(sub, "del") == 0);
	if (!sub || (needs_target && !target) || (!needs_target && target)) {
		usage(stderr);
		return 2;
	}

	char path[SW_PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/bans.db", cfg->data_dir);
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "sipwarden ban: cannot create %s: %s\n", cfg->data_dir, strerror(errno));
		return 1;
	}
	struct guard_db *db;
	int rc = gdb_open(path, &db);
	if (rc < 0) {
		fprintf(stderr, "sipwarden ban: cannot open %s: %s\n", path,
			rc == -EIO ? "database error" : strerror(-rc));
		return 1;
	}
	int status = 0;
	if (strcmp(sub, "list") == 0) {
		struct list_ctx lc = { .now = wall_ms() };
		if (gdb_each(db, all ? INT64_MIN : lc.now, print_row, &lc) < 0) {
			fprintf(stderr, "sipwarden ban: cannot read %s\n", path);
			status = 1;
		} else if (!lc.n) {
			printf("no %sbans\n", all ? "" : "active ");
		}
	} else if (strcmp(sub, "add") == 0) {
		struct guard_ban_row r = { .offences = 1 };
		uint32_t secs = cfg->guard.ban_time_s;
		if (dur_s && (guard_duration_parse(dur_s, &secs) < 0 || secs == 0)) {
			fprintf(stderr, "sipwarden ban: --for %s: expected a duration such as 600, 10m, 1h, 2d\n",
				dur_s);
			status = 2;
		} else if (target_of(cfg, target, force_user, &r.user, r.target, sizeof(r.target)) < 0) {
			fprintf(stderr, "sipwarden ban: \"%s\" is neither an IP address nor user@realm\n", target);
			status = 2;
		} else if (!r.user && is_trusted(cfg, r.target)) {
			fprintf(stderr, "sipwarden ban: %s is in [guard] trusted and is never banned\n", r.target);
			status = 1;
		} else {
			r.created_ms = wall_ms();
			r.until_ms = r.created_ms + (int64_t)secs * 1000;
			snprintf(r.reason, sizeof(r.reason), "%s", reason);
			if (gdb_put(db, &r) < 0) {
				fprintf(stderr, "sipwarden ban: cannot write %s\n", path);
				status = 1;
			} else {
				printf("banned %s ", r.user ? "user" : "ip");
				put_safe(r.target);
				printf(" for %us\n", secs);
			}
		}
	} else if (strcmp(sub, "del") == 0) {
		char norm[GUARD_NAME_MAX];
		bool user;
		if (target_of(cfg, target, force_user, &user, norm, sizeof(norm)) < 0) {
			fprintf(stderr, "sipwarden ban: \"%s\" is neither an IP address nor user@realm\n", target);
			status = 2;
		} else {
			int n = gdb_del(db, user, norm);
			if (n < 0) {
				fprintf(stderr, "sipwarden ban: cannot write %s\n", path);
				status = 1;
			} else if (n == 0) {
				fprintf(stderr, "sipwarden ban: %s is not banned\n", norm);
				status = 1;
			} else {
				printf("unbanned %s\n", norm);
			}
		}
	} else if (strcmp(sub, "flush") == 0) {
		int n = gdb_flush(db);
		if (n < 0) {
			fprintf(stderr, "sipwarden ban: cannot write %s\n", path);
			status = 1;
		} else {
			printf("removed %d ban%s\n", n, n == 1 ? "" : "s");
		}
	} else {
		usage(stderr);
		status = 2;
	}
	gdb_close(db);
	return status;
}
