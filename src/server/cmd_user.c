/* `sipwarden user …` (issue 3). Passwords never reach the disk: only HA1
 * per algorithm and H(user:realm) for userhash are stored. */
#include <errno.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth/digest.h"
#include "base/ct.h"
#include "base/str.h"
#include "config/auth_keys.h"
#include "server/cmd_user.h"
#include "store/creds.h"

/* Option names, not secrets. */
static inline bool arg_is(const char *a, const char *name)
{
	return strcmp(a, name) == 0;
}

#define PW_MAX 1024
#define GEN_LEN 24

void cmd_user_usage(FILE *out)
{
	fprintf(out,
		"usage: sipwarden user COMMAND [-c FILE] …\n"
		"  add USER@REALM [--password-stdin | --generate] [--aor LIST]\n"
		"  passwd USER@REALM [--password-stdin | --generate]\n"
		"  del USER@REALM | disable USER@REALM | enable USER@REALM\n"
		"  aors USER@REALM LIST     other AORs this Auth ID may act for: \"1002, 2000@lab\"\n"
		"  list [REALM]\n"
		"  import-kamailio DBFILE [--replace]   Kamailio subscriber table (MD5 only)\n"
		"Without --password-stdin or --generate the password is asked on the terminal.\n");
}

struct opts {
	const char *sub;
	const char *pos[3];
	int npos;
	bool pw_stdin, generate, replace;
	const char *aors;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (arg_is(a, "-c") || arg_is(a, "--config")) {
			i++; /* read by main */
		} else if (arg_is(a, "--password-stdin")) {
			o->pw_stdin = true;
		} else if (arg_is(a, "--generate")) {
			o->generate = true;
		} else if (arg_is(a, "--replace")) {
			o->replace = true;
		} else if (arg_is(a, "--aor") && i + 1 < argc) {
			o->aors = argv[++i];
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "sipwarden user: unknown option %s\n", a);
			return -EINVAL;
		} else if (!o->sub) {
			o->sub = a;
		} else if (o->npos < 3) {
			o->pos[o->npos++] = a;
		} else {
			fprintf(stderr, "sipwarden user: too many arguments\n");
			return -EINVAL;
		}
	}
	if (o->pw_stdin && o->generate) {
		fprintf(stderr, "sipwarden user: --password-stdin and --generate exclude each other\n");
		return -EINVAL;
	}
	return o->sub ? 0 : -EINVAL;
}

static int realm_index(const struct sw_config *cfg, const char *realm)
{
	for (unsigned i = 0; i < cfg->nrealms; i++)
		if (sw_str_ieq(sw_str_c(cfg->realms[i].name), sw_str_c(realm)))
			return (int)i;
	return -1;
}

/* USER@REALM, split at the last '@'; the realm must be served. */
static int split_id(const struct sw_config *cfg, const char *id, char *user, char *realm, int *ridx)
{
	const char *at = strrchr(id, '@');
	if (!at || at == id || !at[1]) {
		fprintf(stderr, "sipwarden user: expected USER@REALM, not \"%s\"\n", id);
		return -EINVAL;
	}
	size_t ul = (size_t)(at - id);
	if (ul >= CREDS_USER_MAX || strlen(at + 1) >= CREDS_REALM_MAX) {
		fprintf(stderr, "sipwarden user: name too long\n");
		return -EINVAL;
	}
	for (size_t i = 0; i < ul; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) {
			fprintf(stderr, "sipwarden user: control character in the user name\n");
			return -EINVAL;
		}
	memcpy(user, id, ul);
	user[ul] = '\0';
	*ridx = realm_index(cfg, at + 1);
	if (*ridx < 0) {
		fprintf(stderr, "sipwarden user: realm \"%s\" is not served (no [realm %s] in %s)\n", at + 1,
			at + 1, cfg->path[0] ? cfg->path : "the configuration");
		return -ENOENT;
	}
	/* The realm as configured (lower case): it is what challenges carry. */
	snprintf(realm, CREDS_REALM_MAX, "%s", cfg->realms[*ridx].name);
	return 0;
}

static int open_db(const struct sw_config *cfg, struct creds_db **db)
{
	char path[SW_PATH_MAX + 32];
	if (!cfg->data_dir[0]) {
		fprintf(stderr, "sipwarden user: [server] data_dir is not set\n");
		return -EINVAL;
	}
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "sipwarden user: %s: %s\n", cfg->data_dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, CREDS_DB_FILE);
	int rc = creds_db_open(path, CREDS_OPEN_CREATE, db);
	if (rc)
		fprintf(stderr, "sipwarden user: %s: %s\n", path, strerror(-rc));
	return rc;
}

/* 62 symbols, rejection sampling: no modulo bias. 24 of them ≈ 143 bits. */
static int gen_password(char *out, size_t len)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t n = 0;
	unsigned char b[64];
	while (n < len) {
		if (RAND_bytes(b, sizeof(b)) != 1)
			return -EIO;
		for (size_t i = 0; i < sizeof(b) && n < len; i++)
			if (b[i] < 248) /* 248 = 4 * 62 */
				out[n++] = set[b[i] % 62];
	}
	out[n] = '\0';
	sw_cleanse(b, sizeof(b));
	return 0;
}

static int read_line(FILE *f, char *buf, size_t cap)
{
	if (!fgets(buf, (int)cap, f))
		return -EIO;
	size_t n = strlen(buf);
	if (n == cap - 1 && buf[n - 1] != '\n')
		return -E2BIG;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return 0;
}

static int prompt(const char *what, char *buf, size_t cap)
{
	struct termios old, quiet;
	int rc;
	fprintf(stderr, "%s", what);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) < 0)
		return -errno;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	rc = read_line(stdin, buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fprintf(stderr, "\n");
	return rc;
}

/* The password for user: from stdin, generated, or asked twice. */
static int get_password(const struct opts *o, char *pw, size_t cap, bool *generated)
{
	*generated = false;
	if (o->generate) {
		*generated = true;
		return gen_password(pw, GEN_LEN);
	}
	if (o->pw_stdin)
		return read_line(stdin, pw, cap);
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "sipwarden user: stdin is not a terminal: use --password-stdin or --generate\n");
		return -EINVAL;
	}
	char again[PW_MAX];
	int rc = prompt("Password: ", pw, cap);
	if (!rc)
		rc = prompt("Again: ", again, sizeof(again));
	if (!rc && (strlen(pw) != strlen(again) || !sw_ct_eq(pw, again, strlen(pw)))) {
		fprintf(stderr, "sipwarden user: the passwords differ\n");
		rc = -EINVAL;
	}
	sw_cleanse(again, sizeof(again));
	return rc;
}

static bool ieq(const char *a, size_t an, const char *b, size_t bn)
{
	return sw_str_ieq(sw_str_mk(a, an), sw_str_mk(b, bn));
}

/* Refuse weak choices: too short, or the user name / an extension itself. */
static int check_password(const struct sw_config *cfg, int ridx, const char *user, const char *aors,
			  const char *pw)
{
	const struct auth_realm_conf *rc = config_auth_realm(cfg, (unsigned)ridx);
	size_t n = strlen(pw);
	if (n < rc->min_password) {
		fprintf(stderr, "sipwarden user: the password is shorter than %u characters "
			"(min_password_length; --generate makes a good one)\n", rc->min_password);
		return -EINVAL;
	}
	bool same = ieq(pw, n, user, strlen(user));
	for (const char *p = aors ? aors : ""; *p && !same;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		struct sw_str it = sw_str_trim(sw_str_mk(p, l));
		const char *at = it.len ? memchr(it.p, '@', it.len) : NULL;
		if (at)
			it.len = (size_t)(at - it.p);
		same = it.len && ieq(pw, n, it.p, it.len);
		p = e ? e + 1 : p + l;
	}
	if (same) {
		fprintf(stderr, "sipwarden user: the password must not be the user name or extension\n");
		return -EINVAL;
	}
	return 0;
}

static int fill_hashes(struct creds_row *r, const char *pw)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = ctx ? 0 : -ENOMEM;
	for (int h = 0; h < AUTH_H__COUNT && !rc; h++) {
		rc = digest_ha1(ctx, (enum auth_hash)h, sw_str_c(r->username), sw_str_c(r->realm),
				sw_str_c(pw), r->ha1[h]);
		if (!rc)
			rc = digest_userhash(ctx, (enum auth_hash)h, sw_str_c(r->username),
					     sw_str_c(r->realm), r->uh[h]);
	}
	EVP_MD_CTX_free(ctx);
	return rc;
}

static int set_password(const struct sw_config *cfg, const struct opts *o, bool add)
{
	char user[CREDS_USER_MAX], realm[CREDS_REALM_MAX], pw[PW_MAX];
	struct creds_row *r = calloc(1, sizeof(*r));
	struct creds_db *db = NULL;
	bool generated;
	int ridx, rc;

	if (!r)
		return 1;
	if (o->npos != 1) {
		cmd_user_usage(stderr);
		free(r);
		return 2;
	}
	rc = split_id(cfg, o->pos[0], user, realm, &ridx);
	if (rc)
		goto out;
	rc = open_db(cfg, &db);
	if (rc)
		goto out;
	if (add) {
		rc = creds_db_get(db, user, realm, r);
		if (rc == 0) {
			fprintf(stderr, "sipwarden user: %s@%s exists (use user passwd)\n", user, realm);
			rc = -EEXIST;
			goto out;
		}
		memset(r, 0, sizeof(*r));
		snprintf(r->username, sizeof(r->username), "%s", user);
		snprintf(r->realm, sizeof(r->realm), "%s", realm);
		r->enabled = true;
		if (o->aors && snprintf(r->aors, sizeof(r->aors), "%s", o->aors) >= (int)sizeof(r->aors)) {
			fprintf(stderr, "sipwarden user: --aor list too long\n");
			rc = -E2BIG;
			goto out;
		}
	} else {
		rc = creds_db_get(db, user, realm, r);
		if (rc) {
			fprintf(stderr, "sipwarden user: no user %s@%s\n", user, realm);
			goto out;
		}
	}
	rc = get_password(o, pw, sizeof(pw), &generated);
	if (rc) {
		if (rc == -EIO)
			fprintf(stderr, "sipwarden user: no password given\n");
		goto out;
	}
	rc = check_password(cfg, ridx, user, r->aors, pw);
	if (!rc)
		rc = fill_hashes(r, pw);
	if (rc)
		goto out;
	r->updated = (int64_t)time(NULL);
	snprintf(r->source, sizeof(r->source), "cli");
	rc = add ? creds_db_insert(db, r) : creds_db_update(db, r);
	if (rc) {
		fprintf(stderr, "sipwarden user: %s@%s: %s\n", user, realm, strerror(-rc));
		goto out;
	}
	if (generated)
		printf("%s@%s password: %s\n", user, realm, pw);
	else
		printf("%s %s@%s\n", add ? "added" : "password changed for", user, realm);
out:
	sw_cleanse(pw, sizeof(pw));
	if (r)
		sw_cleanse(r, sizeof(*r));
	free(r);
	creds_db_close(db);
	return rc ? 1 : 0;
}

static int simple(const struct sw_config *cfg, const struct opts *o)
{
	char user[CREDS_USER_MAX], realm[CREDS_REALM_MAX];
	struct creds_db *db = NULL;
	int ridx, rc;
	bool aors = !strcmp(o->sub, "aors");

	if (o->npos != (aors ? 2 : 1)) {
		cmd_user_usage(stderr);
		return 2;
	}
	rc = split_id(cfg, o->pos[0], user, realm, &ridx);
	if (!rc)
		rc = open_db(cfg, &db);
	if (rc)
		return 1;
	if (!strcmp(o->sub, "del")) {
		rc = creds_db_delete(db, user, realm);
	} else if (aors) {
		struct creds_row *r = calloc(1, sizeof(*r));
		rc = r ? creds_db_get(db, user, realm, r) : -ENOMEM;
		if (!rc && snprintf(r->aors, sizeof(r->aors), "%s", o->pos[1]) >= (int)sizeof(r->aors))
			rc = -E2BIG;
		if (!rc) {
			r->updated = (int64_t)time(NULL);
			rc = creds_db_update(db, r);
		}
		if (r)
			sw_cleanse(r, sizeof(*r));
		free(r);
	} else {
		rc = creds_db_set_enabled(db, user, realm, !strcmp(o->sub, "enable"));
	}
	creds_db_close(db);
	if (rc == -ENOENT) {
		fprintf(stderr, "sipwarden user: no user %s@%s\n", user, realm);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "sipwarden user: %s\n", strerror(-rc));
		return 1;
	}
	printf("%s %s@%s\n", !strcmp(o->sub, "del") ? "deleted" : aors ? "AORs set for" :
	       !strcmp(o->sub, "enable") ? "enabled" : "disabled", user, realm);
	return 0;
}

struct list_ctx {
	const char *realm;
	unsigned n;
};

static int list_one(void *ctx, const struct creds_row *r)
{
	struct list_ctx *l = ctx;
	static const char *const names[CREDS_ALGS] = { "MD5", "SHA-256", "SHA-512-256" };
	char algs[64] = "";
	if (l->realm && !sw_str_ieq(sw_str_c(l->realm), sw_str_c(r->realm)))
		return 0;
	for (int a = 0; a < CREDS_ALGS; a++)
		if (creds_hex_valid((unsigned)a, r->ha1[a])) {
			size_t n = strlen(algs);
			snprintf(algs + n, sizeof(algs) - n, "%s%s", n ? "," : "", names[a]);
		}
	printf("%s@%s\t%s\t%s\t%s%s\n", r->username, r->realm, r->enabled ? "enabled" : "disabled",
	       algs[0] ? algs : "-", r->aors[0] ? "aors=" : "", r->aors);
	l->n++;
	return 0;
}

static int list(const struct sw_config *cfg, const struct opts *o)
{
	struct creds_db *db;
	struct list_ctx l = { .realm = o->npos ? o->pos[0] : NULL };
	if (open_db(cfg, &db))
		return 1;
	int rc = creds_db_foreach(db, list_one, &l);
	creds_db_close(db);
	if (rc) {
		fprintf(stderr, "sipwarden user: %s\n", strerror(-rc));
		return 1;
	}
	fprintf(stderr, "%u user%s\n", l.n, l.n == 1 ? "" : "s");
	return 0;
}

/* Kamailio's auth_db `subscriber` table: username, domain, ha1 =
 * MD5(username:realm:password), ha1b = MD5(username@domain:realm:password).
 * Only MD5 exists there, so each imported user needs a new password before
 * a SHA-256 challenge can succeed. ha1b is for clients that put user@domain
 * in the digest username, which sipwarden does not accept. */
static int import_kamailio(const struct sw_config *cfg, const struct opts *o)
{
	sqlite3 *k = NULL;
	sqlite3_stmt *st = NULL;
	struct creds_db *db = NULL;
	struct creds_row *r = calloc(1, sizeof(*r));
	unsigned added = 0, replaced = 0, exists = 0, badhash = 0, norealm = 0;
	int rc, ret = 1;
	char **need = NULL;
	size_t nneed = 0;

	if (!r)
		return 1;
	if (o->npos != 1) {
		cmd_user_usage(stderr);
		free(r);
		return 2;
	}
	if (sqlite3_open_v2(o->pos[0], &k, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(k, "SELECT username, domain, ha1 FROM subscriber ORDER BY domain, username",
			       -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "sipwarden user: %s: not a Kamailio database with a subscriber table: %s\n",
			o->pos[0], k ? sqlite3_errmsg(k) : "cannot open");
		goto out;
	}
	if (open_db(cfg, &db))
		goto out;
	if (creds_db_begin(db)) {
		fprintf(stderr, "sipwarden user: the credential store is busy\n");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *user = (const char *)sqlite3_column_text(st, 0);
		const char *dom = (const char *)sqlite3_column_text(st, 1);
		const char *ha1 = (const char *)sqlite3_column_text(st, 2);
		if (!user || !dom || !ha1 || !*user || strlen(user) >= CREDS_USER_MAX) {
			badhash++;
			continue;
		}
		int ridx = realm_index(cfg, dom);
		if (ridx < 0) {
			fprintf(stderr, "skipped %s@%s: not a served realm\n", user, dom);
			norealm++;
			continue;
		}
		memset(r, 0, sizeof(*r));
		snprintf(r->username, sizeof(r->username), "%s", user);
		snprintf(r->realm, sizeof(r->realm), "%s", cfg->realms[ridx].name);
		snprintf(r->ha1[0], sizeof(r->ha1[0]), "%s", ha1);
		for (char *p = r->ha1[0]; *p; p++)
			if (*p >= 'A' && *p <= 'F')
				*p = (char)(*p + 32);
		if (!creds_hex_valid(0, r->ha1[0])) {
			fprintf(stderr, "skipped %s@%s: ha1 is not an MD5 hex digest\n", user, dom);
			badhash++;
			continue;
		}
		for (int h = 0; h < AUTH_H__COUNT; h++)
			if (digest_userhash(NULL, (enum auth_hash)h, sw_str_c(r->username), sw_str_c(r->realm),
					    r->uh[h]))
				goto rollback;
		r->enabled = true;
		r->updated = (int64_t)time(NULL);
		snprintf(r->source, sizeof(r->source), "kamailio");
		rc = creds_db_insert(db, r);
		if (rc == -EEXIST && o->replace) {
			struct creds_row old;
			if (!creds_db_get(db, r->username, r->realm, &old)) {
				r->enabled = old.enabled;
				memcpy(r->aors, old.aors, sizeof(r->aors));
			}
			sw_cleanse(&old, sizeof(old));
			rc = creds_db_update(db, r);
			if (!rc)
				replaced++;
		} else if (rc == -EEXIST) {
			exists++;
			continue;
		} else if (!rc) {
			added++;
		}
		if (rc) {
			fprintf(stderr, "sipwarden user: %s@%s: %s\n", user, dom, strerror(-rc));
			goto rollback;
		}
		char **nn = realloc(need, (nneed + 1) * sizeof(*need));
		if (!nn)
			goto rollback;
		need = nn;
		size_t l = strlen(r->username) + strlen(r->realm) + 2;
		need[nneed] = malloc(l);
		if (!need[nneed])
			goto rollback;
		snprintf(need[nneed++], l, "%s@%s", r->username, r->realm);
	}
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "sipwarden user: %s: %s\n", o->pos[0], sqlite3_errmsg(k));
		goto rollback;
	}
	if (creds_db_commit(db)) {
		fprintf(stderr, "sipwarden user: commit failed\n");
		goto rollback;
	}
	printf("imported %u user%s (MD5 only), replaced %u; skipped %u existing, %u with an unusable "
	       "ha1, %u outside the served realms\n", added, added == 1 ? "" : "s", replaced, exists,
	       badhash, norealm);
	if (nneed) {
		printf("These users can only answer MD5 challenges until they get a new password "
		       "(sipwarden user passwd USER@REALM) — then SHA-256 and SHA-512-256 work too.\n"
		       "Kamailio's ha1 was computed with its realm; if that differed from the domain, "
		       "set the password again.\n");
		for (size_t i = 0; i < nneed; i++)
			printf("  needs new password: %s\n", need[i]);
	}
	ret = 0;
	goto out;
rollback:
	creds_db_rollback(db);
out:
	for (size_t i = 0; i < nneed; i++)
		free(need[i]);
	free(need);
	sqlite3_finalize(st);
	sqlite3_close(k);
	creds_db_close(db);
	sw_cleanse(r, sizeof(*r));
	free(r);
	return ret;
}

int cmd_user(int argc, char **argv, const struct sw_config *cfg)
{
	struct opts o;
	if (parse_opts(argc, argv, &o) < 0) {
		cmd_user_usage(stderr);
		return 2;
	}
	if (!strcmp(o.sub, "add"))
		return set_password(cfg, &o, true);
	if (!strcmp(o.sub, "passwd"))
		return set_password(cfg, &o, false);
	if (!strcmp(o.sub, "del") || !strcmp(o.sub, "disable") || !strcmp(o.sub, "enable") ||
	    !strcmp(o.sub, "aors"))
		return simple(cfg, &o);
	if (!strcmp(o.sub, "list"))
		return list(cfg, &o);
	if (!strcmp(o.sub, "import-kamailio"))
		return import_kamailio(cfg, &o);
	if (!strcmp(o.sub, "help") || !strcmp(o.sub, "--help")) {
		cmd_user_usage(stdout);
		return 0;
	}
	fprintf(stderr, "sipwarden user: unknown command \"%s\"\n", o.sub);
	cmd_user_usage(stderr);
	return 2;
}
