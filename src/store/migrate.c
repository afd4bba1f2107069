/* Import of bindings.db, the SQLite store sipwarden used before the
 * journal: read once at start-up, then the file is renamed away. */
#include <arpa/inet.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "store/migrate.h"

static const char select_sql[] =
	"SELECT aor, contact, instance, reg_id, q, expires_at, call_id, cseq, path,"
	" user_agent, recv_addr, recv_port, proto, worker FROM bindings"
	" WHERE expires_at > ?1 ORDER BY aor";

/* One AOR's rows, copied out of SQLite's column memory. */
struct group {
	char aor[65536];
	size_t aor_len;
	unsigned n;
	struct bstore_binding b[BSTORE_MAX_BINDINGS];
	char *strs[BSTORE_MAX_BINDINGS];
};

static struct sw_str dup_col(sqlite3_stmt *st, int i, char **w)
{
	const char *p = (const char *)sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (!p || n > 0xFFFF)
		n = 0;
	memcpy(*w, p ? p : "", n);
	struct sw_str s = { *w, n };
	*w += n;
	return s;
}

static int flush(struct group *g, bstore_load_fn fn, void *ctx, uint64_t *seq)
{
	if (!g->aor_len)
		return 0;
	struct bstore_rec rec = { { g->aor, g->aor_len }, ++*seq, g->n, g->b };
	int rc = g->n ? fn(ctx, &rec) : 0;
	for (unsigned i = 0; i < g->n; i++)
		free(g->strs[i]);
	g->n = 0;
	g->aor_len = 0;
	return rc;
}

static int add_row(struct group *g, sqlite3_stmt *st)
{
	if (g->n == BSTORE_MAX_BINDINGS)
		return 0;   /* more than the registrar could ever hold: dropped */
	size_t need = 0;
	static const int cols[] = { 1, 2, 6, 8, 9 };
	for (unsigned k = 0; k < 5; k++)
		need += (size_t)sqlite3_column_bytes(st, cols[k]);
	char *w = malloc(need + 1);
	if (!w)
		return -ENOMEM;
	struct bstore_binding *b = &g->b[g->n];
	memset(b, 0, sizeof(*b));
	g->strs[g->n++] = w;
	b->contact = dup_col(st, 1, &w);
	b->instance = dup_col(st, 2, &w);
	b->call_id = dup_col(st, 6, &w);
	b->path = dup_col(st, 8, &w);
	b->user_agent = dup_col(st, 9, &w);
	b->reg_id = sqlite3_column_int(st, 3);
	b->q = (int16_t)sqlite3_column_int(st, 4);
	b->expires_at = sqlite3_column_int64(st, 5);
	b->cseq = (uint32_t)sqlite3_column_int64(st, 7);
	const char *host = (const char *)sqlite3_column_text(st, 10);
	if (host && inet_pton(AF_INET, host, b->addr) == 1)
		b->family = AF_INET;
	else if (host && inet_pton(AF_INET6, host, b->addr) == 1)
		b->family = AF_INET6;
	b->port = (uint16_t)sqlite3_column_int(st, 11);
	b->proto = (uint8_t)sqlite3_column_int(st, 12);
	b->worker = (uint16_t)sqlite3_column_int(st, 13);
	return 0;
}

int bstore_import_sqlite(const char *path, int64_t now_s, bstore_load_fn fn, void *ctx,
			 uint64_t *seq, uint64_t *rows)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -EIO;
	struct group *g = calloc(1, sizeof(*g));

	*rows = 0;
	if (!g)
		return -ENOMEM;
	/* Read-write, so that SQLite recovers a WAL left by a crash. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, select_sql, -1, &st, NULL) != SQLITE_OK) {
		/* An empty file (or one without the table) has nothing to import. */
		rc = sqlite3_errcode(db) == SQLITE_ERROR ? 0 : -EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, now_s);
	int step = SQLITE_DONE;
	rc = 0;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *aor = (const char *)sqlite3_column_text(st, 0);
		size_t alen = (size_t)sqlite3_column_bytes(st, 0);
		if (!aor || alen == 0 || alen >= sizeof(g->aor) || !sqlite3_column_text(st, 1))
			continue;
		if (alen != g->aor_len || memcmp(aor, g->aor, alen) != 0) {
			rc = flush(g, fn, ctx, seq);
			memcpy(g->aor, aor, alen);
			g->aor_len = alen;
		}
		if (rc == 0)
			rc = add_row(g, st);
		(*rows)++;
	}
	if (rc == 0)
		rc = step == SQLITE_DONE ? flush(g, fn, ctx, seq) : -EIO;
out:
	for (unsigned i = 0; i < g->n; i++)
		free(g->strs[i]);
	free(g);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}
