/* Credential store: add/get/update/list/disable/delete, snapshots and
 * their indexes, change detection across connections (issue 3). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/str.h"
#include "store/creds.h"

static char dir[64], path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sw-creds-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CREDS_DB_FILE);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void row(struct creds_row *r, const char *user, const char *realm, char fill)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->username, sizeof(r->username), "%s", user);
	snprintf(r->realm, sizeof(r->realm), "%s", realm);
	memset(r->ha1[0], fill, 32);
	memset(r->ha1[1], fill, 64);
	memset(r->uh[0], 'a', 32);
	memset(r->uh[1], fill, 64);
	r->uh[1][0] = 'c';
	r->enabled = true;
	snprintf(r->source, sizeof(r->source), "cli");
}

struct acc {
	char names[8][400];
	int n;
};

static int collect(void *ctx, const struct creds_row *r)
{
	struct acc *a = ctx;
	snprintf(a->names[a->n++], sizeof(a->names[0]), "%s@%s", r->username, r->realm);
	return 0;
}

static void test_crud(void **state)
{
	(void)state;
	struct creds_db *db;
	struct creds_row r, g;
	struct stat st;

	assert_int_equal(creds_db_open(path, 0, &db), -ENOENT);
	assert_int_equal(creds_db_open(path, CREDS_OPEN_CREATE, &db), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	row(&r, "1001", "pbx.example.com", '1');
	assert_int_equal(creds_db_insert(db, &r), 0);
	assert_int_equal(creds_db_insert(db, &r), -EEXIST);
	row(&r, "1001", "lab.example.com", '2');
	assert_int_equal(creds_db_insert(db, &r), 0);
	row(&r, "0999", "pbx.example.com", '3');
	assert_int_equal(creds_db_insert(db, &r), 0);

	assert_int_equal(creds_db_get(db, "1001", "pbx.example.com", &g), 0);
	assert_int_equal(strlen(g.ha1[0]), 32);
	assert_int_equal(g.ha1[0][0], '1');
	assert_string_equal(g.ha1[2], "");
	assert_true(g.enabled);
	assert_int_equal(creds_db_get(db, "1001", "nope", &g), -ENOENT);

	snprintf(r.aors, sizeof(r.aors), "2000, 2001@lab.example.com");
	r.enabled = false;
	assert_int_equal(creds_db_update(db, &r), 0);
	assert_int_equal(creds_db_get(db, "0999", "pbx.example.com", &g), 0);
	assert_string_equal(g.aors, "2000, 2001@lab.example.com");
	assert_false(g.enabled);
	assert_int_equal(creds_db_set_enabled(db, "0999", "pbx.example.com", true), 0);
	assert_int_equal(creds_db_get(db, "0999", "pbx.example.com", &g), 0);
	assert_true(g.enabled);
	assert_int_equal(creds_db_set_enabled(db, "x", "pbx.example.com", true), -ENOENT);
	row(&r, "nobody", "pbx.example.com", '4');
	assert_int_equal(creds_db_update(db, &r), -ENOENT);

	struct acc a = { 0 };
	assert_int_equal(creds_db_foreach(db, collect, &a), 0);
	assert_int_equal(a.n, 3);
	assert_string_equal(a.names[0], "1001@lab.example.com");
	assert_string_equal(a.names[1], "0999@pbx.example.com");
	assert_string_equal(a.names[2], "1001@pbx.example.com");

	assert_int_equal(creds_db_delete(db, "1001", "lab.example.com"), 0);
	assert_int_equal(creds_db_delete(db, "1001", "lab.example.com"), -ENOENT);
	memset(&a, 0, sizeof(a));
	assert_int_equal(creds_db_foreach(db, collect, &a), 0);
	assert_int_equal(a.n, 2);
	creds_db_close(db);
}

static void test_snapshot(void **state)
{
	(void)state;
	struct creds_db *db;
	struct creds_snap *s;
	struct creds_row r;
	assert_int_equal(creds_db_open(path, CREDS_OPEN_CREATE, &db), 0);
	for (int i = 0; i < 200; i++) {
		char u[16];
		snprintf(u, sizeof(u), "u%d", i);
		row(&r, u, "pbx.example.com", 'b');
		r.uh[1][1] = (char)('0' + i % 10);
		r.uh[1][2] = (char)('0' + i / 10 % 10);
		r.uh[1][3] = (char)('0' + i / 100);
		r.enabled = i % 2;
		assert_int_equal(creds_db_insert(db, &r), 0);
	}
	/* a malformed hash column (hand-edited DB) counts as absent */
	row(&r, "bad", "pbx.example.com", 'Z');
	assert_int_equal(creds_db_insert(db, &r), 0);
	assert_int_equal(creds_snap_load(db, &s), 0);
	assert_int_equal(creds_snap_count(s), 201);
	const struct creds_ent *e = creds_snap_find(s, SW_STR_LIT("u17"), SW_STR_LIT("pbx.example.com"));
	assert_non_null(e);
	assert_string_equal(creds_ent_user(e), "u17");
	assert_int_equal(e->ulen, 3);
	assert_string_equal(creds_ent_aors(e), "");
	assert_true(creds_ent_enabled(e));
	/* hashes in binary, decoded once at load */
	const unsigned char *h = creds_ent_ha1(e, 0);
	assert_non_null(h);
	for (int i = 0; i < 16; i++)
		assert_int_equal(h[i], 0xbb);
	h = creds_ent_ha1(e, 1);
	assert_non_null(h);
	for (int i = 0; i < 32; i++)
		assert_int_equal(h[i], 0xbb);
	assert_null(creds_ent_ha1(e, 2));
	assert_null(creds_ent_ha1(e, 3));
	h = creds_ent_uh(e, 0);
	assert_non_null(h);
	assert_int_equal(h[0], 0xaa);
	assert_int_equal(h[15], 0xaa);
	assert_null(creds_ent_uh(e, 2));
	assert_false(creds_ent_enabled(creds_snap_find(s, SW_STR_LIT("u18"), SW_STR_LIT("pbx.example.com"))));
	assert_null(creds_snap_find(s, SW_STR_LIT("U17"), SW_STR_LIT("pbx.example.com")));
	assert_null(creds_snap_find(s, SW_STR_LIT("u17"), SW_STR_LIT("lab.example.com")));
	assert_null(creds_snap_find(s, SW_STR_LIT("u1"), SW_STR_LIT("7pbx.example.com")));
	e = creds_snap_find(s, SW_STR_LIT("bad"), SW_STR_LIT("pbx.example.com"));
	assert_non_null(e);
	assert_null(creds_ent_ha1(e, 0));
	assert_null(creds_ent_ha1(e, 1));
	assert_null(creds_ent_uh(e, 1));
	assert_non_null(creds_ent_uh(e, 0));   /* that column was valid */
	/* by userhash, hex in either case */
	char uh[65];
	e = creds_snap_find(s, SW_STR_LIT("u123"), SW_STR_LIT("pbx.example.com"));
	assert_non_null(e);
	h = creds_ent_uh(e, 1);
	assert_non_null(h);
	for (int i = 0; i < 32; i++)
		snprintf(uh + 2 * i, 3, "%02x", h[i]);
	assert_int_equal(uh[0], 'c');
	assert_int_equal(uh[1], '3');
	assert_ptr_equal(creds_snap_find_uh(s, 1, SW_STR_LIT("pbx.example.com"), sw_str_c(uh)), e);
	for (char *p = uh; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	assert_ptr_equal(creds_snap_find_uh(s, 1, SW_STR_LIT("pbx.example.com"), sw_str_c(uh)), e);
	assert_null(creds_snap_find_uh(s, 1, SW_STR_LIT("lab.example.com"), sw_str_c(uh)));
	assert_null(creds_snap_find_uh(s, 0, SW_STR_LIT("pbx.example.com"), sw_str_c(uh)));
	assert_null(creds_snap_find_uh(s, 3, SW_STR_LIT("pbx.example.com"), sw_str_c(uh)));
	uh[5] = 'g';   /* not hex */
	assert_null(creds_snap_find_uh(s, 1, SW_STR_LIT("pbx.example.com"), sw_str_c(uh)));
	uh[63] = '\0';
	assert_null(creds_snap_find_uh(s, 1, SW_STR_LIT("pbx.example.com"), sw_str_c(uh)));
	creds_snap_free(s);
	creds_db_close(db);

	/* empty snapshots work */
	assert_int_equal(creds_snap_build(NULL, 0, &s), 0);
	assert_null(creds_snap_find(s, SW_STR_LIT("x"), SW_STR_LIT("y")));
	creds_snap_free(s);
}

/* Many users over several realms (the same usernames in each), enough
 * to grow the arena and both indexes several times; oversized and empty
 * values as the old row copy read them. */
static void test_snapshot_many(void **state)
{
	(void)state;
	enum { N = 20000, REALMS = 5 };
	struct creds_row *rows = calloc(N, sizeof(*rows));
	struct creds_snap *s;
	assert_non_null(rows);
	for (int i = 0; i < N; i++) {
		struct creds_row *r = &rows[i];
		snprintf(r->username, sizeof(r->username), "%d", i / REALMS);
		snprintf(r->realm, sizeof(r->realm), "t%d.example.com", i % REALMS);
		for (int a = 0; a < 3; a++) {
			size_t n = a ? 64 : 32;
			for (size_t k = 0; k < n; k++) {
				r->ha1[a][k] = "0123456789abcdef"[(i + (int)k + a) % 16];
				r->uh[a][k] = "0123456789abcdef"[(i * 7 + (int)k * 3 + a) % 16];
			}
			snprintf(r->uh[a], 9, "%08x", (unsigned)i);
			r->uh[a][8] = 'e';
		}
		if (i % 3 == 0)
			snprintf(r->aors, sizeof(r->aors), "%d, x%d@other.example", i, i);
		r->enabled = true;
	}
	memset(rows[7].username, 'u', sizeof(rows[7].username));   /* not terminated */
	assert_int_equal(creds_snap_build(rows, N, &s), 0);
	assert_int_equal(creds_snap_count(s), N);
	for (int i = 0; i < N; i++) {
		const struct creds_row *r = &rows[i];
		if (i == 7)
			continue;
		const struct creds_ent *e = creds_snap_find(s, sw_str_c(r->username), sw_str_c(r->realm));
		assert_non_null(e);
		assert_string_equal(creds_ent_user(e), r->username);
		assert_string_equal(creds_ent_aors(e), r->aors);
		for (unsigned a = 0; a < 3; a++) {
			char hex[65];
			const unsigned char *h = creds_ent_ha1(e, a);
			assert_non_null(h);
			for (unsigned k = 0; k < creds_hash_len(a); k++)
				snprintf(hex + 2 * k, 3, "%02x", h[k]);
			assert_string_equal(hex, r->ha1[a]);
			assert_ptr_equal(creds_snap_find_uh(s, a, sw_str_c(r->realm), sw_str_c(r->uh[a])), e);
		}
	}
	/* the unterminated username counts as "" */
	assert_non_null(creds_snap_find(s, SW_STR_LIT(""), SW_STR_LIT("t2.example.com")));
	assert_null(creds_snap_find(s, SW_STR_LIT("4000"), SW_STR_LIT("t9.example.com")));
	assert_null(creds_snap_find(s, SW_STR_LIT("40000"), SW_STR_LIT("t1.example.com")));
	creds_snap_free(s);
	free(rows);
}

static void test_change_detection(void **state)
{
	(void)state;
	struct creds_db *srv, *cli;
	struct creds_row r;
	uint64_t v1, v2, v3;
	assert_int_equal(creds_db_open(path, CREDS_OPEN_CREATE, &cli), 0);
	assert_int_equal(creds_db_open(path, 0, &srv), 0);
	assert_int_equal(creds_db_version(srv, &v1), 0);
	assert_int_equal(creds_db_version(srv, &v2), 0);
	assert_true(v1 == v2);
	row(&r, "1001", "pbx.example.com", 'c');
	assert_int_equal(creds_db_insert(cli, &r), 0);
	assert_int_equal(creds_db_version(srv, &v3), 0);
	assert_true(v3 != v2);
	assert_false(creds_db_gone(srv));
	char moved[160];
	snprintf(moved, sizeof(moved), "%s.old", path);
	assert_int_equal(rename(path, moved), 0);
	assert_true(creds_db_gone(srv));
	creds_db_close(srv);
	creds_db_close(cli);
}

static void test_hex_valid(void **state)
{
	(void)state;
	assert_true(creds_hex_valid(0, "0123456789abcdef0123456789abcdef"));
	assert_false(creds_hex_valid(0, "0123456789ABCDEF0123456789abcdef"));
	assert_false(creds_hex_valid(1, "0123456789abcdef0123456789abcdef"));
	assert_false(creds_hex_valid(0, ""));
	assert_false(creds_hex_valid(0, "0123456789abcdef0123456789abcdef0"));
	assert_false(creds_hex_valid(0, "0123456789abcdeg0123456789abcdef"));
	assert_true(creds_hex_valid(2, "0123456789abcdef0123456789abcdef"
				       "0123456789abcdef0123456789abcdef"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
		cmocka_unit_test(test_snapshot_many),
		cmocka_unit_test_setup_teardown(test_change_detection, setup, teardown),
		cmocka_unit_test(test_hex_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
