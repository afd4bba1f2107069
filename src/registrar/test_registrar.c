/* Unit tests: registrar (RFC 3261 §10.3, RFC 3327, RFC 5626 §6, RFC 4475
 * §3.1.1.4 / §3.3.12-14) and its persistence through the binding store.
 * argv[1]: the tests/torture/rfc4475 directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/str.h"
#include "registrar/registrar.h"
#include "store/bindings.h"
#include "sip/parse.h"

static const char *torture_dir = "tests/torture/rfc4475";

#define NOW 1700000000LL

/* ---- fixture ---- */

struct fx {
	char dir[64];
	struct reg_conf conf;
	struct sw_registrar *r;
	char hdrs[16384];
};

static void fx_open(struct fx *f)
{
	int err = 0;
	f->r = registrar_open(&f->conf, f->dir, NULL, NULL, NULL, &err);
	assert_int_equal(err, 0);
	assert_non_null(f->r);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *base = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/swregXXXXXX", base && strlen(base) < 40 ? base : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	reg_conf_default(&f->conf);
	*state = f;
	return 0;
}

static void rm_dir_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[400];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	registrar_close(f->r);
	rm_dir_files(f->dir);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* What the journal holds, read independently of the registrar: the
 * winning record of each AOR (highest seq), bindings counted whatever
 * their expiry (now_s = 0 to the store). */
struct disk_aor {
	char aor[REG_AOR_MAX];
	uint64_t seq;
	unsigned n;
};

struct disk {
	struct disk_aor *a;
	unsigned n, cap;
};

static int disk_load(void *ctx, const struct bstore_rec *rec)
{
	struct disk *d = ctx;
	for (unsigned i = 0; i < d->n; i++) {
		struct disk_aor *x = &d->a[i];
		if (strlen(x->aor) == rec->aor.len && memcmp(x->aor, rec->aor.p, rec->aor.len) == 0) {
			if (rec->seq > x->seq) {
				x->seq = rec->seq;
				x->n = rec->n;
			}
			return 0;
		}
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->a = realloc(d->a, d->cap * sizeof(*d->a));
	}
	struct disk_aor *x = &d->a[d->n++];
	snprintf(x->aor, sizeof(x->aor), "%.*s", (int)rec->aor.len, rec->aor.p);
	x->seq = rec->seq;
	x->n = rec->n;
	return 0;
}

static int disk_dump(void *ctx, unsigned part, struct bstore_dump *d, int64_t now_s)
{
	return -EINVAL;   /* never compacts */
}

static long long db_rows(struct fx *f)
{
	struct disk d = { 0 };
	struct bstore_conf c;
	struct bstore_hooks h = { .nparts = 1, .load = disk_load, .dump = disk_dump, .ctx = &d };
	int err;
	bstore_conf_default(&c);
	c.no_thread = true;
	c.no_lock = true;   /* the registrar under test holds the data_dir */
	struct sw_bstore *s = bstore_open(f->dir, &c, &h, 0, &err);
	assert_non_null(s);
	bstore_close(s);
	long long n = 0;
	for (unsigned i = 0; i < d.n; i++)
		n += d.a[i].n;
	free(d.a);
	return n;
}

/* Bytes in the journal segments (what REGISTERs appended). */
static long seg_bytes(struct fx *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	long n = 0;
	char p[400];
	struct stat st;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "bindings-", 9) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		if (stat(p, &st) == 0)
			n += (long)st.st_size;
	}
	if (d)
		closedir(d);
	return n;
}

/* ---- messages ---- */

struct tmsg {
	char buf[8192];
	size_t len;
	struct sip_hdr hdrs[64];
	struct sip_msg m;
};

static void parse(struct tmsg *t)
{
	struct sip_limits lim;
	struct sip_perr err;
	sip_limits_default(&lim);
	ssize_t rc = sip_parse(t->buf, t->len, SIP_PARSE_DGRAM, &lim, t->hdrs, 64, &t->m, &err);
	if (rc <= 0)
		fail_msg("parse failed (%zd) at %zu: %s\n%.*s", rc, err.off, err.why ? err.why : "",
			 (int)t->len, t->buf);
}

/* extra: header lines, each ending in \r\n */
static void mk(struct tmsg *t, const char *to, const char *callid, unsigned cseq,
	       const char *extra)
{
	int n = snprintf(t->buf, sizeof(t->buf),
			 "REGISTER sip:example.com SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK%u\r\n"
			 "Max-Forwards: 70\r\n"
			 "From: <%s>;tag=abc\r\n"
			 "To: <%s>\r\n"
			 "Call-ID: %s\r\n"
			 "CSeq: %u REGISTER\r\n"
			 "User-Agent: TestPhone/1.0\r\n"
			 "%s"
			 "Content-Length: 0\r\n\r\n",
			 cseq, to, to, callid, cseq, extra);
	assert_true(n > 0 && (size_t)n < sizeof(t->buf));
	t->len = (size_t)n;
	parse(t);
}

static void load_torture(struct tmsg *t, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s.dat", torture_dir, name);
	FILE *fp = fopen(p, "rb");
	if (!fp)
		fail_msg("cannot open %s", p);
	t->len = fread(t->buf, 1, sizeof(t->buf), fp);
	fclose(fp);
	parse(t);
}

static struct sip_txn_dest src_v4(const char *ip, uint16_t port)
{
	struct sip_txn_dest d;
	memset(&d, 0, sizeof(d));
	struct sockaddr_in *in = (struct sockaddr_in *)&d.addr;
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	inet_pton(AF_INET, ip, &in->sin_addr);
	d.alen = sizeof(*in);
	d.proto = 0;
	d.fd = 7;
	return d;
}

/* Register as worker 3 would. */
static struct reg_result reg_at(struct fx *f, struct tmsg *t, int64_t now)
{
	struct reg_result res;
	struct sip_txn_dest src = src_v4("198.51.100.7", 40000);
	memset(&res, 0, sizeof(res));
	res.hdrs = f->hdrs;
	res.hdrs_cap = sizeof(f->hdrs) - 1;
	assert_int_equal(registrar_register(f->r, &t->m, &src, 3, now, &res), 0);
	f->hdrs[res.hdrs_len] = '\0';
	return res;
}

static struct reg_result reg(struct fx *f, struct tmsg *t)
{
	return reg_at(f, t, NOW);
}

static unsigned lookup(struct fx *f, const char *aor, struct reg_binding *out, unsigned cap)
{
	return registrar_lookup(f->r, sw_str_mk(aor, strlen(aor)), NOW, out, cap);
}

#define ALICE "sip:alice@example.com"

/* ---- tests ---- */

static void test_add_refresh_remove(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_binding b[4];
	struct reg_result res;

	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.reason, "ok");
	assert_int_equal(res.err, 0);
	assert_int_equal(res.bindings, 1);
	assert_int_equal(db_rows(f), 1);
	assert_non_null(strstr(f->hdrs,
		"Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600\r\n"));
	assert_non_null(strstr(f->hdrs, "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"));
	assert_int_equal(registrar_count(f->r), 1);

	assert_int_equal(lookup(f, ALICE, b, 4), 1);
	assert_string_equal(b[0].aor, ALICE);
	assert_string_equal(b[0].contact, "sip:alice@192.0.2.10:5060;transport=udp");
	assert_string_equal(b[0].call_id, "c1@x");
	assert_string_equal(b[0].user_agent, "TestPhone/1.0");
	assert_int_equal(b[0].cseq, 1);
	assert_int_equal(b[0].expires_at, NOW + 3600);
	assert_int_equal(b[0].worker, 3);
	assert_int_equal(b[0].q, -1);
	assert_int_equal(b[0].reg_id, -1);
	assert_int_equal(b[0].received.addr.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&b[0].received.addr)->sin_port), 40000);
	assert_int_equal(b[0].received.fd, 7);
	/* Any spelling of the AOR finds it (§10.3 step 5). */
	assert_int_equal(lookup(f, "sip:%61lice@EXAMPLE.COM;transport=tcp", b, 4), 1);
	assert_int_equal(lookup(f, "sips:alice@example.com", b, 4), 0);

	/* Refresh: same Call-ID, higher CSeq, Expires header; host case differs. */
	mk(&t, ALICE, "c1@x", 2, "Contact: <sip:alice@192.0.2.10:5060;transport=UDP>\r\n"
				 "Expires: 600\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 1);
	assert_non_null(strstr(f->hdrs, ";expires=600\r\n"));
	assert_int_equal(lookup(f, ALICE, b, 4), 1);
	assert_int_equal(b[0].expires_at, NOW + 600);
	assert_int_equal(b[0].cseq, 2);
	assert_int_equal(db_rows(f), 1);

	/* A different URI is a second binding; per-contact expires wins. */
	mk(&t, ALICE, "c1@x", 3, "Contact: <sip:alice@192.0.2.11>;expires=120\r\n"
				 "Expires: 600\r\n");
	res = reg(f, &t);
	assert_int_equal(res.bindings, 2);
	assert_non_null(strstr(f->hdrs, "Contact: <sip:alice@192.0.2.11>;expires=120\r\n"));
	/* the refresh stored the URI as last written */
	assert_non_null(strstr(f->hdrs, ";transport=UDP>;expires=600\r\n"));
	assert_int_equal(db_rows(f), 2);

	/* Query: no Contact, nothing changes, nothing written. */
	long seg = seg_bytes(f);
	mk(&t, ALICE, "c1@x", 4, "");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(seg_bytes(f), seg);
	assert_int_equal(res.bindings, 2);
	assert_non_null(strstr(f->hdrs, "Contact: <sip:alice@192.0.2.11>;expires=120\r\n"));

	/* Remove one with expires=0. */
	mk(&t, ALICE, "c1@x", 5, "Contact: <sip:alice@192.0.2.11>;expires=0\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 1);
	assert_null(strstr(f->hdrs, "192.0.2.11"));
	assert_int_equal(registrar_count(f->r), 1);
	assert_int_equal(db_rows(f), 1);

	/* Removing something unknown changes nothing: nothing written. */
	seg = seg_bytes(f);
	mk(&t, ALICE, "c1@x", 6, "Contact: <sip:nobody@192.0.2.99>\r\nExpires: 0\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(seg_bytes(f), seg);
	assert_int_equal(res.bindings, 1);
}

static void test_star(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;

	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.1>, <sip:a@192.0.2.2>\r\n");
	assert_int_equal(reg(f, &t).bindings, 2);

	mk(&t, ALICE, "c2@x", 1, "Contact: *\r\nExpires: 300\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.reason, "star-needs-expires-0");
	mk(&t, ALICE, "c2@x", 1, "Contact: *\r\n");
	assert_int_equal(reg(f, &t).status, 400);
	mk(&t, ALICE, "c2@x", 1, "Contact: *\r\nContact: <sip:a@192.0.2.3>\r\nExpires: 0\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.reason, "star-not-alone");
	assert_int_equal(registrar_count(f->r), 2);

	/* Same Call-ID with a CSeq not higher: the whole removal fails. */
	mk(&t, ALICE, "c1@x", 1, "Contact: *\r\nExpires: 0\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 500);
	assert_string_equal(res.reason, "cseq-out-of-order");
	assert_int_equal(registrar_count(f->r), 2);

	mk(&t, ALICE, "c1@x", 2, "Contact: *\r\nExpires: 0\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 0);
	assert_null(strstr(f->hdrs, "Contact:"));
	assert_int_equal(registrar_count(f->r), 0);
	assert_int_equal(db_rows(f), 0);
}

static void test_expires_limits(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;
	struct reg_binding b[2];

	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.1>\r\nExpires: 10\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 423);
	assert_string_equal(res.reason, "interval-too-brief");
	assert_string_equal(f->hdrs, "Min-Expires: 60\r\n");
	assert_int_equal(seg_bytes(f), 0);

	/* One too-brief contact fails the whole request (§10.3: all or none). */
	mk(&t, ALICE, "c1@x", 2, "Contact: <sip:a@192.0.2.1>, <sip:a@192.0.2.2>;expires=59\r\n");
	assert_int_equal(reg(f, &t).status, 423);
	assert_int_equal(registrar_count(f->r), 0);

	/* Above the maximum: clamped, not refused. */
	mk(&t, ALICE, "c1@x", 3, "Contact: <sip:a@192.0.2.1>\r\nExpires: 4294967295\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(f->hdrs, ";expires=3600\r\n"));
	assert_int_equal(lookup(f, ALICE, b, 2), 1);
	assert_int_equal(b[0].expires_at, NOW + 3600);

	/* Exactly the minimum is fine. */
	mk(&t, ALICE, "c1@x", 4, "Contact: <sip:a@192.0.2.1>;expires=60\r\n");
	assert_int_equal(reg(f, &t).status, 200);
}

static void test_max_per_aor_and_q(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;
	struct reg_binding b[4];

	f->conf.max_bindings_per_aor = 3;
	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.1>;q=0.1, <sip:a@192.0.2.2>;q=0.9\r\n"
				 "Contact: <sip:a@192.0.2.3>;q=0.5\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 3);
	assert_non_null(strstr(f->hdrs, "Contact: <sip:a@192.0.2.2>;expires=3600;q=0.9\r\n"));
	assert_non_null(strstr(f->hdrs, "Contact: <sip:a@192.0.2.1>;expires=3600;q=0.1\r\n"));

	assert_int_equal(lookup(f, ALICE, b, 4), 3);
	assert_string_equal(b[0].contact, "sip:a@192.0.2.2");
	assert_int_equal(b[0].q, 900);
	assert_string_equal(b[1].contact, "sip:a@192.0.2.3");
	assert_string_equal(b[2].contact, "sip:a@192.0.2.1");
	/* cap is honoured */
	assert_int_equal(lookup(f, ALICE, b, 2), 2);

	mk(&t, ALICE, "c1@x", 2, "Contact: <sip:a@192.0.2.4>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 403);
	assert_string_equal(res.reason, "too-many-bindings");
	assert_int_equal(registrar_count(f->r), 3);

	/* Swap one out and one in within a request: allowed. */
	mk(&t, ALICE, "c1@x", 3, "Contact: <sip:a@192.0.2.1>;expires=0, <sip:a@192.0.2.4>;q=1\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 3);
	assert_non_null(strstr(f->hdrs, "Contact: <sip:a@192.0.2.4>;expires=3600;q=1\r\n"));
	assert_int_equal(db_rows(f), 3);
}

static void test_path(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;
	struct reg_binding b[2];

	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Path: <sip:p1.example.net;lr>\r\n"
				 "Path: <sip:p2.example.net;lr>\r\n"
				 "Supported: outbound, path\r\n"
				 "Contact: <sip:a@192.0.2.1>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(f->hdrs, "Path: <sip:p1.example.net;lr>,<sip:p2.example.net;lr>\r\n"));
	assert_int_equal(lookup(f, ALICE, b, 2), 1);
	assert_string_equal(b[0].path, "<sip:p1.example.net;lr>,<sip:p2.example.net;lr>");

	/* Stored for routing, but not echoed when the UA did not say path. */
	mk(&t, "sip:bob@example.com", "c2@x", 1, "Path: <sip:p1.example.net;lr>\r\n"
						 "Contact: <sip:b@192.0.2.1>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_null(strstr(f->hdrs, "Path:"));
	assert_int_equal(lookup(f, "sip:bob@example.com", b, 2), 1);
	assert_string_equal(b[0].path, "<sip:p1.example.net;lr>");
}

#define INST "\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""

static void test_instance_reg_id(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;
	struct reg_binding b[4];

	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.1;ob>;+sip.instance=" INST ";reg-id=1\r\n");
	assert_int_equal(reg(f, &t).status, 200);
	assert_non_null(strstr(f->hdrs, ";+sip.instance=" INST ";reg-id=1\r\n"));

	/* RFC 5626 §6: same instance and reg-id replace the flow, even from a
	 * new Call-ID and a new Contact URI. */
	mk(&t, ALICE, "c9@x", 1, "Contact: <sip:a@192.0.2.77;ob>;+sip.instance=" INST ";reg-id=1\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 1);
	assert_int_equal(lookup(f, ALICE, b, 4), 1);
	assert_string_equal(b[0].contact, "sip:a@192.0.2.77;ob");
	assert_string_equal(b[0].instance, INST);
	assert_int_equal(b[0].reg_id, 1);
	assert_int_equal(db_rows(f), 1);

	/* A second flow (reg-id 2) is a second binding. */
	mk(&t, ALICE, "c9@x", 2, "Contact: <sip:a@192.0.2.78;ob>;+sip.instance=" INST ";reg-id=2\r\n");
	assert_int_equal(reg(f, &t).bindings, 2);
	assert_int_equal(db_rows(f), 2);

	/* Flow 2 moves onto the URI flow 1 uses: the row key stays unique. */
	mk(&t, ALICE, "c9@x", 3, "Contact: <sip:a@192.0.2.77;ob>;+sip.instance=" INST ";reg-id=2\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 1);
	assert_int_equal(registrar_count(f->r), 1);
	assert_int_equal(lookup(f, ALICE, b, 4), 1);
	assert_int_equal(b[0].reg_id, 2);
	assert_int_equal(db_rows(f), 1);
}

static void test_callid_cseq(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;

	fx_open(f);
	mk(&t, ALICE, "c1@x", 5, "Contact: <sip:a@192.0.2.1>\r\n");
	assert_int_equal(reg(f, &t).status, 200);

	mk(&t, ALICE, "c1@x", 5, "Contact: <sip:a@192.0.2.1>;expires=0\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 500);
	assert_string_equal(res.reason, "cseq-out-of-order");
	mk(&t, ALICE, "c1@x", 4, "Contact: <sip:a@192.0.2.1>\r\n");
	assert_int_equal(reg(f, &t).status, 500);
	assert_int_equal(registrar_count(f->r), 1);

	/* A request failing on one contact changes none (§10.3). */
	mk(&t, ALICE, "c1@x", 4, "Contact: <sip:a@192.0.2.9>, <sip:a@192.0.2.1>\r\n");
	assert_int_equal(reg(f, &t).status, 500);
	assert_int_equal(registrar_count(f->r), 1);

	/* Another Call-ID (the UA rebooted) updates whatever its CSeq. */
	mk(&t, ALICE, "other@x", 1, "Contact: <sip:a@192.0.2.1>;expires=0\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(registrar_count(f->r), 0);

	/* The same Contact twice in one request: the last one counts. */
	mk(&t, ALICE, "c3@x", 1, "Contact: <sip:a@192.0.2.1>;expires=100, <sip:a@192.0.2.1>;expires=200\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 1);
	assert_non_null(strstr(f->hdrs, ";expires=200\r\n"));
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;
	char extra[1024];

	fx_open(f);
	mk(&t, "tel:+15551234567", "c1@x", 1, "Contact: <sip:a@192.0.2.1>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.reason, "aor-not-sip");

	mk(&t, ALICE, "c1@x", 1, "Contact: <mailto:alice@example.com>\r\n");
	assert_int_equal(reg(f, &t).status, 400);

	/* Over-long values are refused, never truncated. */
	memset(extra, 0, sizeof(extra));
	memcpy(extra, "Contact: <sip:a@192.0.2.1;x=", 28);
	memset(extra + 28, 'y', 520);
	memcpy(extra + 548, ">\r\n", 3);
	mk(&t, ALICE, "c1@x", 1, extra);
	res = reg(f, &t);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.reason, "contact-too-long");

	char to[300] = "sip:";
	memset(to + 4, 'u', 260);
	memcpy(to + 264, "@example.com", 13);
	mk(&t, to, "c1@x", 1, "Contact: <sip:a@192.0.2.1>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.reason, "aor-too-long");
	assert_int_equal(registrar_count(f->r), 0);

	/* More Contacts than max_contacts. */
	f->conf.max_contacts = 2;
	registrar_close(f->r);
	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.1>, <sip:a@192.0.2.2>, <sip:a@192.0.2.3>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.reason, "too-many-contacts");
}

static void test_table_full(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;

	f->conf.max_bindings = 2;
	fx_open(f);
	mk(&t, "sip:u1@example.com", "c1@x", 1, "Contact: <sip:u@192.0.2.1>\r\n");
	assert_int_equal(reg(f, &t).status, 200);
	mk(&t, "sip:u2@example.com", "c2@x", 1, "Contact: <sip:u@192.0.2.2>\r\n");
	assert_int_equal(reg(f, &t).status, 200);
	mk(&t, "sip:u3@example.com", "c3@x", 1, "Contact: <sip:u@192.0.2.3>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 503);
	assert_string_equal(res.reason, "table-full");
	/* Refreshing an existing binding still works when full. */
	mk(&t, "sip:u1@example.com", "c1@x", 2, "Contact: <sip:u@192.0.2.1>\r\n");
	assert_int_equal(reg(f, &t).status, 200);
	assert_int_equal(registrar_count(f->r), 2);
}

/* RFC 4475 §3.1.1.4 escnull, §3.3.12 cparam01, §3.3.13 cparam02, §3.3.14 regescrt. */
static void test_torture(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_result res;
	struct reg_binding b[4];

	fx_open(f);
	load_torture(&t, "escnull");
	res = reg(f, &t);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.bindings, 2);
	assert_int_equal(lookup(f, "sip:null-%00-null@example.com", b, 4), 2);
	assert_string_equal(b[0].aor, "sip:null-%00-null@example.com");
	assert_true(strcmp(b[0].contact, b[1].contact) != 0);
	/* The AOR did not collapse onto "sip:null-". */
	assert_int_equal(lookup(f, "sip:null-@example.com", b, 4), 0);

	load_torture(&t, "cparam01");
	assert_int_equal(reg(f, &t).status, 200);
	assert_int_equal(lookup(f, "sip:watson@example.com", b, 4), 1);
	assert_string_equal(b[0].contact, "sip:+19725552222@gw1.example.net");
	assert_null(strstr(f->hdrs, "unknownparam"));

	/* cparam02 carries the same user@host with a URI parameter: the URIs
	 * are equal per §19.1.4 (a parameter in one URI only is ignored), so
	 * this refreshes the binding (new Call-ID) and stores the new text. */
	load_torture(&t, "cparam02");
	assert_int_equal(reg(f, &t).status, 200);
	assert_int_equal(lookup(f, "sip:watson@example.com", b, 4), 1);
	assert_string_equal(b[0].contact, "sip:+19725552222@gw1.example.net;unknownparam");
	assert_non_null(strstr(f->hdrs, "<sip:+19725552222@gw1.example.net;unknownparam>"));

	load_torture(&t, "regescrt");
	assert_int_equal(reg(f, &t).status, 200);
	assert_int_equal(lookup(f, "sip:user@example.com", b, 4), 1);
	assert_string_equal(b[0].contact, "sip:user@example.com?Route=%3Csip:sip.example.com%3E");

	/* And they all come back from disk byte for byte. */
	registrar_close(f->r);
	f->r = NULL;
	fx_open(f);
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT("sip:watson@example.com"), sw_wall_s(), b, 4), 0);
}

static void test_persistence(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_binding b[4];
	int64_t now = sw_wall_s();

	fx_open(f);
	mk(&t, ALICE, "c1@x", 7, "Path: <sip:edge.example.net;lr>\r\n"
				 "Contact: <sip:a@192.0.2.1;transport=tcp>;q=0.7;+sip.instance=" INST ";reg-id=1\r\n");
	assert_int_equal(reg_at(f, &t, now).status, 200);
	mk(&t, "sip:%62ob@Example.COM", "c2@x", 1, "Contact: <sip:b@192.0.2.2?Route=%3Csip:x%3E>\r\n");
	assert_int_equal(reg_at(f, &t, now).status, 200);
	/* Registered an hour ago for a minute: expired by now. */
	mk(&t, "sip:old@example.com", "c3@x", 1, "Contact: <sip:o@192.0.2.3>;expires=60\r\n");
	assert_int_equal(reg_at(f, &t, now - 3600).status, 200);
	assert_int_equal(db_rows(f), 3);

	registrar_close(f->r);
	f->r = NULL;
	fx_open(f);
	assert_int_equal(registrar_count(f->r), 2);
	/* the expired binding is still on disk (not loaded) until a compaction */
	assert_int_equal(db_rows(f), 3);
	assert_int_equal(registrar_compact(f->r, now), 0);
	assert_int_equal(db_rows(f), 2);
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT(ALICE), now, b, 4), 1);
	assert_string_equal(b[0].contact, "sip:a@192.0.2.1;transport=tcp");
	assert_string_equal(b[0].path, "<sip:edge.example.net;lr>");
	assert_string_equal(b[0].instance, INST);
	assert_string_equal(b[0].call_id, "c1@x");
	assert_string_equal(b[0].user_agent, "TestPhone/1.0");
	assert_int_equal(b[0].reg_id, 1);
	assert_int_equal(b[0].q, 700);
	assert_int_equal(b[0].cseq, 7);
	assert_int_equal(b[0].expires_at, now + 3600);
	assert_int_equal(b[0].received.addr.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&b[0].received.addr)->sin_port), 40000);
	assert_int_equal(b[0].received.conn_id, 0);   /* connections died with the process */
	assert_int_equal(b[0].received.fd, -1);
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT("sip:bob@example.com"), now, b, 4), 1);
	assert_string_equal(b[0].contact, "sip:b@192.0.2.2?Route=%3Csip:x%3E");

	/* The CSeq rule survives the restart. */
	mk(&t, ALICE, "c1@x", 7, "Contact: <sip:a@192.0.2.1;transport=tcp>\r\n");
	assert_int_equal(reg_at(f, &t, now).status, 500);
}

static void test_purge(void **state)
{
	struct fx *f = *state;
	struct tmsg t;

	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.1>;expires=100, <sip:a@192.0.2.2>;expires=3000\r\n");
	assert_int_equal(reg(f, &t).bindings, 2);
	mk(&t, "sip:bob@example.com", "c2@x", 1, "Contact: <sip:b@192.0.2.1>;expires=100\r\n");
	assert_int_equal(reg(f, &t).bindings, 1);
	assert_int_equal(registrar_purge(f->r, NOW + 50), 0);
	assert_int_equal(registrar_purge(f->r, NOW + 200), 2);
	assert_int_equal(registrar_count(f->r), 1);
	/* memory only: the records carry their expiry */
	assert_int_equal(db_rows(f), 3);
	struct reg_binding b[2];
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT("sip:bob@example.com"), NOW + 200, b, 2), 0);

	/* An expired but unpurged binding is neither listed nor counted
	 * against the new registration, and leaves with it. */
	mk(&t, "sip:carol@example.com", "c3@x", 1, "Contact: <sip:c@192.0.2.1>;expires=100\r\n");
	assert_int_equal(reg_at(f, &t, NOW).bindings, 1);
	mk(&t, "sip:carol@example.com", "c3@x", 2, "Contact: <sip:c@192.0.2.2>\r\n");
	struct reg_result res = reg_at(f, &t, NOW + 500);
	assert_int_equal(res.bindings, 1);
	assert_null(strstr(f->hdrs, "192.0.2.1"));
	assert_int_equal(registrar_count(f->r), 2);
	assert_int_equal(db_rows(f), 4);
	/* a compaction leaves the expired ones out */
	assert_int_equal(registrar_compact(f->r, NOW + 500), 0);
	assert_int_equal(db_rows(f), 2);
}

/* A failed journal write (full disk, I/O error, short write) answers 500
 * and leaves the table as it was (§10.3: all or nothing). */
static void test_store_failure(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_binding b[2];

	fx_open(f);
	registrar_inject_write_error(f->r, 3, ENOSPC, 20);
	mk(&t, "sip:mallory@example.com", "c1@x", 1, "Contact: <sip:m@192.0.2.1>\r\n");
	struct reg_result res = reg(f, &t);
	assert_int_equal(res.status, 500);
	assert_string_equal(res.reason, "journal-write-failed");
	assert_int_equal(res.err, -ENOSPC);
	assert_int_equal(res.hdrs_len, 0);
	assert_int_equal(registrar_count(f->r), 0);
	assert_int_equal(lookup(f, "sip:mallory@example.com", b, 2), 0);
	assert_int_equal(db_rows(f), 0);

	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.1>\r\n");
	assert_int_equal(reg(f, &t).status, 200);
	assert_int_equal(db_rows(f), 1);

	/* A failed refresh keeps the previous version... */
	registrar_inject_write_error(f->r, 3, EIO, 0);
	mk(&t, ALICE, "c1@x", 99, "Contact: <sip:a@192.0.2.1>;expires=600, <sip:a@192.0.2.2>\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 500);
	assert_int_equal(res.err, -EIO);
	assert_int_equal(lookup(f, ALICE, b, 2), 1);
	assert_int_equal(b[0].cseq, 1);
	assert_int_equal(b[0].expires_at, NOW + 3600);
	assert_int_equal(registrar_count(f->r), 1);

	/* ...and a failed removal keeps the binding. */
	registrar_inject_write_error(f->r, 3, ENOSPC, 5);
	mk(&t, ALICE, "c1@x", 2, "Contact: *\r\nExpires: 0\r\n");
	res = reg(f, &t);
	assert_int_equal(res.status, 500);
	assert_int_equal(lookup(f, ALICE, b, 2), 1);
	assert_string_equal(b[0].contact, "sip:a@192.0.2.1");
	assert_int_equal(registrar_count(f->r), 1);
	assert_int_equal(db_rows(f), 1);

	/* The CSeq rule still sees the old binding: the next try works. */
	mk(&t, ALICE, "c1@x", 2, "Contact: *\r\nExpires: 0\r\n");
	assert_int_equal(reg(f, &t).status, 200);
	assert_int_equal(registrar_count(f->r), 0);
	assert_int_equal(db_rows(f), 0);
}

/* [registrar] fsync = yes: the same results, each write fdatasync'd. */
static void test_fsync(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	int64_t now = sw_wall_s();

	f->conf.fsync = true;
	fx_open(f);
	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.1>\r\n");
	assert_int_equal(reg_at(f, &t, now).status, 200);
	mk(&t, "sip:bob@example.com", "c2@x", 1, "Contact: <sip:b@192.0.2.2>\r\n");
	assert_int_equal(reg_at(f, &t, now).status, 200);
	registrar_close(f->r);
	f->r = NULL;
	fx_open(f);
	assert_int_equal(registrar_count(f->r), 2);
}

/* Compaction: the snapshot replaces the segments; expired bindings and
 * removed AORs stay out; later changes still win after a restart. */
static void test_compaction(void **state)
{
	struct fx *f = *state;
	struct tmsg t;
	struct reg_binding b[4];
	int64_t now = sw_wall_s();

	fx_open(f);
	for (unsigned i = 0; i < 50; i++) {
		char aor[64];
		snprintf(aor, sizeof(aor), "sip:c%u@example.com", i);
		mk(&t, aor, "c@x", 1, "Contact: <sip:c@192.0.2.1>\r\n");
		assert_int_equal(reg_at(f, &t, now).status, 200);
	}
	mk(&t, "sip:c7@example.com", "c@x", 2, "Contact: *\r\nExpires: 0\r\n");
	assert_int_equal(reg_at(f, &t, now).status, 200);
	mk(&t, "sip:short@example.com", "s@x", 1, "Contact: <sip:s@192.0.2.1>;expires=60\r\n");
	assert_int_equal(reg_at(f, &t, now - 120).status, 200);   /* expired by now */
	assert_true(seg_bytes(f) > 0);
	assert_int_equal(registrar_compact(f->r, now), 0);
	assert_int_equal(seg_bytes(f), 0);
	assert_int_equal(db_rows(f), 49);

	mk(&t, ALICE, "c1@x", 1, "Contact: <sip:a@192.0.2.9>\r\n");
	assert_int_equal(reg_at(f, &t, now).status, 200);
	mk(&t, "sip:c3@example.com", "c@x", 2, "Contact: <sip:c3@192.0.2.33>\r\n");
	assert_int_equal(reg_at(f, &t, now).status, 200);
	registrar_close(f->r);
	f->r = NULL;
	fx_open(f);
	assert_int_equal(registrar_count(f->r), 51);   /* 49 + alice + c3's second */
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT("sip:c7@example.com"), now, b, 4), 0);
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT("sip:c3@example.com"), now, b, 4), 2);
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT("sip:short@example.com"), now, b, 4), 0);
}

/* A bindings.db of an earlier version is imported once (through the
 * batched load, then the first snapshot) and renamed. */
static void test_import_bindings_db(void **state)
{
	struct fx *f = *state;
	struct reg_binding b[4];
	char p[160], sql[1400];
	sqlite3 *db;
	int64_t now = sw_wall_s();

	snprintf(p, sizeof(p), "%s/bindings.db", f->dir);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	int n = snprintf(sql, sizeof(sql),
		 "CREATE TABLE bindings (aor TEXT NOT NULL, contact TEXT NOT NULL,"
		 " instance TEXT NOT NULL DEFAULT '', reg_id INTEGER NOT NULL DEFAULT -1,"
		 " q INTEGER NOT NULL DEFAULT -1, expires_at INTEGER NOT NULL, call_id TEXT NOT NULL,"
		 " cseq INTEGER NOT NULL, path TEXT NOT NULL DEFAULT '', user_agent TEXT NOT NULL DEFAULT '',"
		 " recv_addr TEXT NOT NULL DEFAULT '', recv_port INTEGER NOT NULL DEFAULT 0,"
		 " proto INTEGER NOT NULL DEFAULT 0, conn_id INTEGER NOT NULL DEFAULT 0,"
		 " worker INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (aor, contact)) WITHOUT ROWID;"
		 "INSERT INTO bindings VALUES ('" ALICE "','sip:a@192.0.2.1','',-1,700,%lld,'c1',5,'<sip:e.example.net;lr>','UA','192.0.2.9',5062,1,9,2);"
		 "INSERT INTO bindings VALUES ('" ALICE "','sip:a@192.0.2.2','',-1,-1,%lld,'c1',5,'','UA','',0,0,0,0);"
		 "INSERT INTO bindings VALUES ('sip:old@example.com','sip:o@192.0.2.3','',-1,-1,%lld,'c3',1,'','UA','',0,0,0,0);",
		 (long long)now + 100, (long long)now + 200, (long long)now - 5);
	assert_true(n > 0 && (size_t)n < sizeof(sql));
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	for (unsigned i = 0; i < 40; i++) {   /* more than one load batch */
		char row[200];
		snprintf(row, sizeof(row), "INSERT INTO bindings VALUES ('sip:u%u@example.com','sip:u@192.0.2.4','',-1,-1,%lld,'c',1,'','UA','',0,0,0,0);",
			 i, (long long)now + 300);
		assert_int_equal(sqlite3_exec(db, row, NULL, NULL, NULL), SQLITE_OK);
	}
	sqlite3_close(db);

	fx_open(f);
	assert_int_equal(registrar_count(f->r), 42);
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT(ALICE), now, b, 4), 2);
	assert_string_equal(b[0].contact, "sip:a@192.0.2.2");   /* q 1.0 before 0.7 */
	assert_string_equal(b[1].path, "<sip:e.example.net;lr>");
	assert_int_equal(b[1].q, 700);
	assert_int_equal(b[1].cseq, 5);
	assert_int_equal(b[1].worker, 2);
	assert_int_equal(ntohs(((struct sockaddr_in *)&b[1].received.addr)->sin_port), 5062);
	assert_int_equal(registrar_lookup(f->r, SW_STR_LIT("sip:old@example.com"), now, b, 4), 0);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/bindings.db.imported", f->dir);
	assert_int_equal(access(p, F_OK), 0);
	registrar_close(f->r);
	f->r = NULL;
	fx_open(f);   /* from the snapshot now */
	assert_int_equal(registrar_count(f->r), 42);
}

struct worker_arg {
	struct fx *f;
	unsigned id, n;
	unsigned ok;
	int64_t now;
};

static void *worker_main(void *arg)
{
	struct worker_arg *w = arg;
	struct tmsg *t = malloc(sizeof(*t));
	char aor[64], contact[96];
	struct sip_txn_dest src = src_v4("192.0.2.50", 5060);

	for (unsigned i = 0; i < w->n; i++) {
		snprintf(aor, sizeof(aor), "sip:w%u-%u@example.com", w->id, i % 300);
		snprintf(contact, sizeof(contact), "Contact: <sip:x@192.0.2.%u:%u>\r\n", w->id, 5000 + i);
		mk(t, aor, "same@x", i + 1, contact);
		struct reg_result res;
		memset(&res, 0, sizeof(res));
		assert_int_equal(registrar_register(w->f->r, &t->m, &src, (uint16_t)w->id, w->now,
						    &res), 0);
		if (res.status == 200)
			w->ok++;
		else if (res.status != 403)
			fail_msg("unexpected %u %s", res.status, res.reason);
		/* compactions meanwhile, from the first worker */
		if (w->id == 1 && i % 1000 == 999)
			assert_int_equal(registrar_compact(w->f->r, w->now), 0);
	}
	free(t);
	return NULL;
}

/* Two workers, each with its own segment, and compactions meanwhile: the
 * disk agrees with memory, before and after a restart. */
static void test_threads(void **state)
{
	struct fx *f = *state;
	pthread_t th[2];
	struct worker_arg w[2];

	f->conf.max_bindings_per_aor = 5;
	fx_open(f);
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct worker_arg){ f, i + 1, 3000, 0, sw_wall_s() };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(registrar_count(f->r), 2 * 300 * 5);
	assert_int_equal(db_rows(f), registrar_count(f->r));
	registrar_close(f->r);
	f->r = NULL;
	fx_open(f);
	assert_int_equal(registrar_count(f->r), 2 * 300 * 5);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		torture_dir = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_refresh_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_star, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expires_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_per_aor_and_q, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_instance_reg_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callid_cseq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torture, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_bindings_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
