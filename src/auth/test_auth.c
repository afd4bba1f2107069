/* Digest engine: every reason code, nonce expiry and reuse, nc replay and
 * its out-of-order window, auth-int, -sess, userhash, profiles, identity
 * binding, enumeration equivalence, store reload and outage (issue 3). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
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

#include "auth/auth.h"
#include "auth/digest.h"
#include "base/str.h"
#include "config/auth_keys.h"
#include "sip/authhdr.h"
#include "sip/parse.h"
#include "store/creds.h"

#define REALM "pbx.example.com"
#define LAB "lab.example.com"
#define PASS "correct horse battery"
#define T0 1800000000

/* ---- fixtures ---- */

struct fx {
	struct sw_config *cfg;
	struct sw_auth *a;
	struct auth_worker *w;
	struct sockaddr_in src;
	char dir[64];
};

static void set(struct sw_config *c, const char *kind, const char *name, const char *k, const char *v)
{
	char why[256];
	int rc = config_auth_key(c, kind, name, k, v, why, sizeof(why));
	if (rc)
		fail_msg("config %s %s: %s = %s: %d %s", kind, name, k, v, rc, why);
}

static struct sw_config *cfg_new(void)
{
	struct sw_config *c = calloc(1, sizeof(*c));
	snprintf(c->realms[0].name, sizeof(c->realms[0].name), "%s", REALM);
	snprintf(c->realms[1].name, sizeof(c->realms[1].name), "%s", LAB);
	c->nrealms = 2;
	return c;
}

static void row_fill(struct creds_row *r, const char *user, const char *realm, const char *pass,
		     bool enabled, const char *aors)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->username, sizeof(r->username), "%s", user);
	snprintf(r->realm, sizeof(r->realm), "%s", realm);
	for (int h = 0; h < AUTH_H__COUNT; h++) {
		if (pass) {
			assert_int_equal(digest_ha1(NULL, h, sw_str_c(user), sw_str_c(realm), sw_str_c(pass),
						    r->ha1[h]), 0);
		}
		assert_int_equal(digest_userhash(NULL, h, sw_str_c(user), sw_str_c(realm), r->uh[h]), 0);
	}
	r->enabled = enabled;
	snprintf(r->aors, sizeof(r->aors), "%s", aors ? aors : "");
}

static void fx_start(struct fx *f)
{
	int err;
	char why[256];
	f->a = auth_open(f->cfg, NULL, &err, why, sizeof(why));
	if (!f->a)
		fail_msg("auth_open: %d %s", err, why);
	struct creds_row rows[6];
	row_fill(&rows[0], "1001", REALM, PASS, true, NULL);
	row_fill(&rows[1], "a7f3k9", REALM, PASS, true, "1002, 2000@" LAB);
	row_fill(&rows[2], "off", REALM, PASS, false, NULL);
	row_fill(&rows[3], "1001", LAB, "another password", true, NULL);
	row_fill(&rows[4], "md5only", REALM, PASS, true, NULL);
	rows[4].ha1[1][0] = rows[4].ha1[2][0] = '\0';
	row_fill(&rows[5], "J\xc3\xa4s\xc3\xb8n Doe", REALM, PASS, true, NULL);
	struct creds_snap *s;
	assert_int_equal(creds_snap_build(rows, 6, &s), 0);
	auth_set_snapshot(f->a, s);
	f->w = auth_worker_new(f->a);
	assert_non_null(f->w);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->cfg = cfg_new();
	f->src.sin_family = AF_INET;
	f->src.sin_port = htons(5060);
	inet_pton(AF_INET, "192.0.2.10", &f->src.sin_addr);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	auth_worker_free(f->w);
	auth_close(f->a);
	free(f->cfg);
	free(f);
	return 0;
}

/* ---- messages ---- */

struct msg {
	char buf[8192];
	struct sip_hdr hdrs[64];
	struct sip_msg m;
};

static void msg_make(struct msg *mm, const char *method, const char *ruri, const char *aor,
		     const char *ua, const char *authz, bool proxy, const char *body)
{
	char extra[3000] = "";
	if (ua)
		snprintf(extra, sizeof(extra), "User-Agent: %s\r\n", ua);
	if (authz) {
		size_t n = strlen(extra);
		snprintf(extra + n, sizeof(extra) - n, "%s: %s\r\n",
			 proxy ? "Proxy-Authorization" : "Authorization", authz);
	}
	body = body ? body : "";
	int n = snprintf(mm->buf, sizeof(mm->buf),
			 "%s %s SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-t1\r\n"
			 "Max-Forwards: 70\r\n"
			 "From: <sip:%s>;tag=ft\r\n"
			 "To: <sip:%s>\r\n"
			 "Call-ID: call-1@192.0.2.10\r\n"
			 "CSeq: 1 %s\r\n"
			 "%s"
			 "%s"
			 "Content-Length: %zu\r\n\r\n%s",
			 method, ruri, aor, !strcmp(method, "REGISTER") ? aor : "bob@" REALM, method,
			 extra, *body ? "Content-Type: application/sdp\r\n" : "", strlen(body), body);
	assert_true(n > 0 && (size_t)n < sizeof(mm->buf));
	struct sip_limits lim;
	struct sip_perr err;
	sip_limits_default(&lim);
	ssize_t rc = sip_parse(mm->buf, (size_t)n, SIP_PARSE_DGRAM, &lim, mm->hdrs, 64, &mm->m, &err);
	if (rc < 0)
		fail_msg("sip_parse: %zd %s at %zu", rc, err.why, err.off);
}

/* ---- a digest client ---- */

struct cli {
	const char *user;
	const char *pass;
	const char *realm;        /* default: challenge's */
	const char *uri;          /* default: the Request-URI */
	const char *qop;          /* default "auth"; "" none */
	unsigned nc;              /* default 1 */
	const char *cnonce;
	int line;                 /* which challenge (algorithm) to answer */
	const char *algo_override;/* algorithm= as sent, NULL: the challenge's, "-" omit */
	bool userhash;
	bool ext_user;            /* username*= */
	const char *nonce;        /* override */
	const char *opaque;       /* override, "-" omit */
	const char *response;     /* override */
	const char *method;
	const char *body;
};

/* The i-th challenge line parsed. */
static void chal_get(const struct auth_result *r, int line, struct sip_auth *c, char *store, size_t cap)
{
	const char *p = r->hdrs;
	for (int i = 0; i < line; i++) {
		p = strstr(p, "\r\n");
		assert_non_null(p);
		p += 2;
	}
	const char *colon = strchr(p, ':'), *e = strstr(p, "\r\n");
	assert_non_null(colon);
	assert_non_null(e);
	size_t n = (size_t)(e - colon - 1);
	assert_true(n < cap);
	memcpy(store, colon + 1, n);
	store[n] = '\0';
	assert_int_equal(sip_auth_parse(sw_str_c(store), c), 0);
	assert_int_equal(c->scheme, SIP_AUTH_DIGEST);
}

static void cli_authz(const struct auth_result *ch, const struct cli *k, const char *ruri, char *out,
		      size_t cap)
{
	struct sip_auth c;
	char store[1024], ha1[DIGEST_HEX_MAX], resp[DIGEST_HEX_MAX], uh[DIGEST_HEX_MAX];
	chal_get(ch, k->line, &c, store, sizeof(store));
	int algo = k->algo_override && strcmp(k->algo_override, "-") ?
		   auth_algo_parse(sw_str_c(k->algo_override)) :
		   auth_algo_parse(c.v[SIP_AP_ALGORITHM]);
	if (algo < 0)
		algo = AUTH_MD5;
	enum auth_hash h = AUTH_ALGO_HASH(algo);
	char realm[256], nonce[128], opaque[64], alg[32];
	snprintf(realm, sizeof(realm), "%s", k->realm ? k->realm : "");
	if (!k->realm)
		sw_str_copy(c.v[SIP_AP_REALM], realm, sizeof(realm));
	sw_str_copy(c.v[SIP_AP_NONCE], nonce, sizeof(nonce));
	opaque[0] = '\0';
	if (c.v[SIP_AP_OPAQUE].p)
		sw_str_copy(c.v[SIP_AP_OPAQUE], opaque, sizeof(opaque));
	if (k->nonce)
		snprintf(nonce, sizeof(nonce), "%s", k->nonce);
	if (k->opaque)
		snprintf(opaque, sizeof(opaque), "%s", k->opaque);
	snprintf(alg, sizeof(alg), "%s", k->algo_override ? k->algo_override : auth_algo_name((unsigned)algo));
	const char *qop = k->qop ? k->qop : "auth";
	const char *uri = k->uri ? k->uri : ruri;
	const char *cnonce = k->cnonce ? k->cnonce : "0a4f113b";
	char nc[16];
	snprintf(nc, sizeof(nc), "%08x", k->nc ? k->nc : 1);
	assert_int_equal(digest_ha1(NULL, h, sw_str_c(k->user), sw_str_c(realm), sw_str_c(k->pass), ha1), 0);
	struct digest_in in = {
		.algo = (enum auth_algo)algo,
		.ha1 = sw_str_c(ha1),
		.nonce = sw_str_c(nonce),
		.cnonce = *qop ? sw_str_c(cnonce) : SW_STR_NULL,
		.nc = *qop ? sw_str_c(nc) : SW_STR_NULL,
		.qop = sw_str_c(qop),
		.method = sw_str_c(k->method ? k->method : "REGISTER"),
		.uri = sw_str_c(uri),
		.body = sw_str_c(k->body ? k->body : ""),
	};
	assert_int_equal(digest_response(NULL, &in, resp), 0);
	if (k->response)
		snprintf(resp, sizeof(resp), "%s", k->response);
	char userpart[512];
	if (k->userhash) {
		assert_int_equal(digest_userhash(NULL, h, sw_str_c(k->user), sw_str_c(realm), uh), 0);
		snprintf(userpart, sizeof(userpart), "username=\"%s\", userhash=true", uh);
	} else if (k->ext_user) {
		char enc[256] = "";
		for (const unsigned char *p = (const unsigned char *)k->user; *p; p++) {
			size_t n = strlen(enc);
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
				snprintf(enc + n, sizeof(enc) - n, "%c", *p);
			else
				snprintf(enc + n, sizeof(enc) - n, "%%%02X", *p);
		}
		snprintf(userpart, sizeof(userpart), "username*=UTF-8''%s", enc);
	} else {
		snprintf(userpart, sizeof(userpart), "username=\"%s\"", k->user);
	}
	int n = snprintf(out, cap, "Digest %s, realm=\"%s\", nonce=\"%s\", uri=\"%s\", response=\"%s\"",
			 userpart, realm, nonce, uri, resp);
	if (strcmp(alg, "-"))
		n += snprintf(out + n, cap - (size_t)n, ", algorithm=%s", alg);
	if (*opaque && strcmp(opaque, "-"))
		n += snprintf(out + n, cap - (size_t)n, ", opaque=\"%s\"", opaque);
	if (*qop)
		n += snprintf(out + n, cap - (size_t)n, ", qop=%s, nc=%s, cnonce=\"%s\"", qop, nc, cnonce);
	assert_true((size_t)n < cap);
}

static const struct sockaddr *SA(struct fx *f)
{
	return (const struct sockaddr *)&f->src;
}

/* Challenge for REGISTER from user@REALM, then answer it. */
static void do_register(struct fx *f, const char *aor, const char *ua, const struct cli *k,
			int64_t t_chal, int64_t t_resp, struct auth_result *out)
{
	struct msg m1, m2;
	struct auth_result ch;
	char authz[2048];
	msg_make(&m1, "REGISTER", "sip:" REALM, aor, ua, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, false, t_chal, &ch), 0);
	assert_int_equal(ch.outcome, AUTH_CHALLENGE);
	cli_authz(&ch, k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, aor, ua, authz, false, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, t_resp, out), 0);
}

static void expect(const struct auth_result *r, enum auth_outcome o, unsigned status, const char *reason)
{
	if (r->outcome != o || r->status != status || strcmp(r->reason, reason))
		fail_msg("got outcome %d status %u reason %s; want %d %u %s", r->outcome, r->status,
			 r->reason, o, status, reason);
}

/* ---- tests ---- */

static void test_challenge_shape(void **state)
{
	struct fx *f = *state;
	struct msg m;
	struct auth_result r;
	fx_start(f);
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, "Linphone/5.2", NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_NO_CREDENTIALS);
	assert_false(r.stale);
	/* RFC 8760 §2.4: SHA-256 first, then MD5, one nonce. */
	struct sip_auth c0, c1;
	char s0[512], s1[512];
	chal_get(&r, 0, &c0, s0, sizeof(s0));
	chal_get(&r, 1, &c1, s1, sizeof(s1));
	assert_true(sw_str_eq(c0.v[SIP_AP_ALGORITHM], SW_STR_LIT("SHA-256")));
	assert_true(sw_str_eq(c1.v[SIP_AP_ALGORITHM], SW_STR_LIT("MD5")));
	assert_true(sw_str_eq(c0.v[SIP_AP_NONCE], c1.v[SIP_AP_NONCE]));
	assert_true(sw_str_eq(c0.v[SIP_AP_REALM], SW_STR_LIT(REALM)));
	assert_true(sw_str_eq(c0.v[SIP_AP_QOP], SW_STR_LIT("auth")));
	assert_non_null(c0.v[SIP_AP_OPAQUE].p);
	assert_null(c0.v[SIP_AP_USERHASH].p);
	assert_int_equal(strncmp(r.hdrs, "WWW-Authenticate: Digest ", 25), 0);
	assert_int_equal(r.hdrs_len, strlen(r.hdrs));
	/* proxy role: 407 + Proxy-Authenticate */
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, true, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 407, AUTH_R_NO_CREDENTIALS);
	assert_int_equal(strncmp(r.hdrs, "Proxy-Authenticate: Digest ", 27), 0);
	assert_true(sw_str_eq(r.user_agent, SW_STR_LIT("Linphone/5.2")));
	/* unknown realm */
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 7, false, T0, &r), 0);
	expect(&r, AUTH_REJECT, 403, AUTH_R_UNKNOWN_REALM);
	assert_int_equal(auth_realm_for(f->cfg, &m.m), 0);
	assert_int_equal(auth_challenge(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_NO_CREDENTIALS);
}

/* A memo of the Authorization field parsed ahead (the pipeline parses it
 * once for the guard's user checks) is used instead of parsing the field
 * again: the memo of that very field gives the same answer, a memo whose
 * result says "malformed" is believed (400, so it was used), and a memo of
 * another field is ignored. */
static void test_auth_memo(void **state)
{
	struct fx *f = *state;
	struct msg m1, m2;
	struct auth_result ch, r;
	char authz[2048];
	fx_start(f);
	struct cli k = { .user = "1001", .pass = PASS, .nc = 1 };
	msg_make(&m1, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, false, T0, &ch), 0);
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	const struct sip_hdr *h = sip_hdr_get(&m2.m, SIP_H_AUTHORIZATION);
	assert_non_null(h);

	struct sip_auth_memo mo = { .h = h };
	mo.rc = sip_auth_parse(h->value, &mo.a);
	assert_int_equal(mo.rc, 0);
	assert_int_equal(auth_check_memo(f->w, &m2.m, &mo, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);

	mo.rc = -EBADMSG;   /* not what the field says: only a used memo answers 400 */
	assert_int_equal(auth_check_memo(f->w, &m2.m, &mo, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_REJECT, 400, AUTH_R_MALFORMED);

	k.nc = 2;
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	mo.h = sip_hdr_get(&m2.m, SIP_H_VIA);   /* another field: ignored */
	assert_int_equal(auth_check_memo(f->w, &m2.m, &mo, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
}

static void test_ok_each_algorithm(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	set(f->cfg, "realm", REALM, "algorithms",
	    "SHA-512-256, SHA-512-256-sess, SHA-256, SHA-256-sess, MD5, MD5-sess");
	set(f->cfg, "realm", REALM, "md5", "warn");
	fx_start(f);
	for (int line = 0; line < 6; line++) {
		struct cli k = { .user = "1001", .pass = PASS, .line = line, .nc = 1 };
		do_register(f, "1001@" REALM, NULL, &k, T0, T0 + 1, &r);
		expect(&r, AUTH_OK, 0, AUTH_R_OK);
		assert_string_equal(r.user, "1001");
		assert_string_equal(r.aor, "1001@" REALM);
		assert_false(r.mapped);
		assert_int_equal(r.md5_warn, line >= 4);
		assert_string_equal(r.algorithm, auth_algo_name(
			(unsigned[]){ AUTH_SHA512_256, AUTH_SHA512_256_SESS, AUTH_SHA256, AUTH_SHA256_SESS,
				      AUTH_MD5, AUTH_MD5_SESS }[line]));
	}
}

static void test_reason_codes(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	set(f->cfg, "realm", REALM, "algorithms", "SHA-256");
	fx_start(f);
	struct cli ok = { .user = "1001", .pass = PASS };

	struct cli k = ok;
	k.pass = "wrong";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_RESPONSE);
	assert_false(r.stale);

	k = ok;
	k.user = "nobody";
	do_register(f, "nobody@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_UNKNOWN_USER);

	k = ok;
	k.user = "off";
	do_register(f, "off@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_DISABLED);

	k = ok;
	k.user = "md5only";
	do_register(f, "md5only@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_NO_HASH);

	k = ok;
	k.realm = LAB;
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_REALM_MISMATCH);

	k = ok;
	k.algo_override = "MD5";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_ALG_NOT_ALLOWED);
	assert_string_equal(r.algorithm, "MD5");

	k = ok;
	k.algo_override = "SHA-1";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_ALG_NOT_ALLOWED);

	k = ok;
	k.algo_override = "-"; /* absent means MD5 (RFC 7616 §3.3), not offered here */
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_ALG_NOT_ALLOWED);

	k = ok;
	k.qop = "";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_QOP_MISSING);

	k = ok;
	k.qop = "auth-int";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_QOP_NOT_ALLOWED);

	k = ok;
	k.nonce = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_NONCE);
	k.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_NONCE);

	/* a nonce from the future (skew beyond 30 s) */
	k = ok;
	do_register(f, "1001@" REALM, NULL, &k, T0 + 100, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_NONCE);

	k = ok;
	k.opaque = "-";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_OPAQUE_MISMATCH);
	k.opaque = "xxxxxxxxxxxxxxxxxxxxxx";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_OPAQUE_MISMATCH);

	k = ok;
	k.uri = "sip:other.example.com";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_REJECT, 400, AUTH_R_URI_MISMATCH);
	/* equal per RFC 3261 §19.1.4 though not byte-equal: accepted */
	k.uri = "sip:PBX.Example.COM";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	/* an explicit port is not the same URI (RFC 3261 §19.1.4) */
	k.uri = "sip:" REALM ":5060";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_REJECT, 400, AUTH_R_URI_MISMATCH);
}

static void test_malformed(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	struct msg m;
	fx_start(f);
	static const char *const bad[] = {
		"Digest username=\"1001\", realm=\"" REALM "\", nonce=\"x\", uri=\"sip:" REALM "\"",
		"Digest realm=\"" REALM "\", nonce=\"x\", uri=\"sip:" REALM "\", response=\"00\"",
		"Digest username=\"1001\", username*=UTF-8''1001, realm=\"" REALM "\", nonce=\"x\", "
		"uri=\"sip:" REALM "\", response=\"00\"",
		"Digest username=\"1001\", realm=\"" REALM "\", nonce=\"x\", uri=\"sip:" REALM "\", "
		"response=\"00\", algorithm=SHA-256, qop=auth, nc=1, cnonce=\"a\"",
		"Digest username=\"1001\", realm=\"" REALM "\", nonce=\"x\", uri=\"sip:" REALM "\", "
		"response=\"00\", algorithm=SHA-256, qop=auth, nc=00000000, cnonce=\"a\"",
		"Digest username=\"1001\", realm=\"" REALM "\", nonce=\"x\", uri=\"sip:" REALM "\", "
		"response=\"00\", algorithm=SHA-256, qop=auth, cnonce=\"a\"",
		"Digest username=\"1001\", realm=\"" REALM "\", nonce=\"x\", uri=\"sip:" REALM "\", "
		"response=\"00\", algorithm=SHA-256, qop=auth, nc=00000001",
		"Digest username=\"1001\", realm=\"" REALM "\", realm=\"" REALM "\"",
		"Digest username=\"1001 realm=\"" REALM "\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, bad[i], false, NULL);
		assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
		if (r.outcome != AUTH_REJECT || r.status != 400 || strcmp(r.reason, AUTH_R_MALFORMED))
			fail_msg("row %zu: %d %u %s", i, r.outcome, r.status, r.reason);
	}
	/* Bearer is for another phase: no digest credentials here. */
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, "Bearer abc.def.ghi", false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_NO_CREDENTIALS);
	/* Authorization for 407 is ignored: it is not Proxy-Authorization. */
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, true, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 407, AUTH_R_NO_CREDENTIALS);
}

static void test_stale(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	set(f->cfg, "realm", REALM, "nonce_lifetime", "60");
	fx_start(f);
	struct cli k = { .user = "1001", .pass = PASS };
	do_register(f, "1001@" REALM, NULL, &k, T0, T0 + 60, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	/* expired, right password: stale=true (RFC 7616 §3.3) */
	do_register(f, "1001@" REALM, NULL, &k, T0, T0 + 61, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_STALE);
	assert_true(r.stale);
	assert_non_null(strstr(r.hdrs, ", stale=true"));
	/* expired, wrong password: no stale flag */
	k.pass = "wrong";
	do_register(f, "1001@" REALM, NULL, &k, T0, T0 + 61, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_RESPONSE);
	assert_false(r.stale);
	assert_null(strstr(r.hdrs, "stale"));
}

/* The slot table is bounded: once a nonce's slot is reused, the nonce is
 * stale (and a fresh challenge follows). */
static void test_slot_reuse(void **state)
{
	struct fx *f = *state;
	struct auth_result r, ch, tmp;
	struct msg m1, m2;
	char authz[2048];
	set(f->cfg, "auth", "", "nonce_slots", "1024");
	fx_start(f);
	msg_make(&m1, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, false, T0, &ch), 0);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(auth_challenge(f->w, &m1.m, SA(f), 0, false, T0, &tmp), 0);
	struct cli k = { .user = "1001", .pass = PASS };
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_STALE);
	assert_true(r.stale);
}

/* Answer one challenge repeatedly with chosen nc values. */
static void nc_run(struct fx *f, const struct auth_result *ch, const unsigned *ncs,
		   const char *const *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct msg m;
		struct auth_result r;
		char authz[2048];
		struct cli k = { .user = "1001", .pass = PASS, .nc = ncs[i] };
		cli_authz(ch, &k, "sip:" REALM, authz, sizeof(authz));
		msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
		assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0 + 1, &r), 0);
		if (strcmp(r.reason, want[i]))
			fail_msg("nc %u: %s, want %s", ncs[i], r.reason, want[i]);
		if (!strcmp(want[i], AUTH_R_NC_REPLAY))
			assert_true(r.stale);
	}
}

static void test_nc_window(void **state)
{
	struct fx *f = *state;
	struct msg m;
	struct auth_result ch;
	fx_start(f);
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &ch), 0);
	static const unsigned ncs[] = { 1, 1, 3, 2, 2, 3, 100, 37, 36, 35, 101, 0xffffffff, 5 };
	static const char *const want[] = {
		AUTH_R_OK, AUTH_R_NC_REPLAY, AUTH_R_OK, AUTH_R_OK, AUTH_R_NC_REPLAY, AUTH_R_NC_REPLAY,
		AUTH_R_OK, AUTH_R_OK /* 63 back: inside the window */, AUTH_R_NC_REPLAY /* 64 back */,
		AUTH_R_NC_REPLAY, AUTH_R_OK, AUTH_R_OK, AUTH_R_NC_REPLAY,
	};
	nc_run(f, &ch, ncs, want, sizeof(ncs) / sizeof(ncs[0]));
	/* A wrong response must not advance nc (no burning of a client's nc). */
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &ch), 0);
	struct msg m2;
	struct auth_result r;
	char authz[2048];
	struct cli bad = { .user = "1001", .pass = "wrong", .nc = 1000 };
	cli_authz(&ch, &bad, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_RESPONSE);
	static const unsigned ncs2[] = { 2 };
	static const char *const want2[] = { AUTH_R_OK };
	nc_run(f, &ch, ncs2, want2, 1);
}

static void test_auth_int(void **state)
{
	struct fx *f = *state;
	struct auth_result ch, r;
	struct msg m1, m2;
	char authz[2048];
	static const char sdp[] = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
				  "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
	set(f->cfg, "realm", REALM, "qop", "auth, auth-int");
	fx_start(f);
	msg_make(&m1, "INVITE", "sip:bob@" REALM, "1001@" REALM, NULL, NULL, true, sdp);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, true, T0, &ch), 0);
	expect(&ch, AUTH_CHALLENGE, 407, AUTH_R_NO_CREDENTIALS);
	assert_non_null(strstr(ch.hdrs, "qop=\"auth,auth-int\""));
	struct cli k = { .user = "1001", .pass = PASS, .qop = "auth-int", .method = "INVITE", .body = sdp };
	cli_authz(&ch, &k, "sip:bob@" REALM, authz, sizeof(authz));
	msg_make(&m2, "INVITE", "sip:bob@" REALM, "1001@" REALM, NULL, authz, true, sdp);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, true, T0, &r), 0);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	/* the same credentials over a changed body: H(entity-body) differs */
	static const char sdp2[] = "v=0\r\no=- 1 1 IN IP4 203.0.113.66\r\ns=-\r\nc=IN IP4 203.0.113.66\r\n"
				   "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
	k.nc = 2;
	cli_authz(&ch, &k, "sip:bob@" REALM, authz, sizeof(authz));
	msg_make(&m2, "INVITE", "sip:bob@" REALM, "1001@" REALM, NULL, authz, true, sdp2);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, true, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 407, AUTH_R_BAD_RESPONSE);
}

static void test_auth_int_sess(void **state)
{
	struct fx *f = *state;
	struct auth_result ch, r;
	struct msg m1, m2;
	char authz[2048];
	static const char body[] = "hello";
	set(f->cfg, "realm", REALM, "qop", "auth-int");
	set(f->cfg, "realm", REALM, "algorithms", "SHA-256-sess, MD5-sess");
	fx_start(f);
	msg_make(&m1, "MESSAGE", "sip:bob@" REALM, "1001@" REALM, NULL, NULL, true, body);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, true, T0, &ch), 0);
	assert_non_null(strstr(ch.hdrs, "qop=\"auth-int\""));
	for (int line = 0; line < 2; line++) {
		struct cli k = { .user = "1001", .pass = PASS, .qop = "auth-int", .method = "MESSAGE",
				 .body = body, .line = line, .nc = (unsigned)line + 1 };
		cli_authz(&ch, &k, "sip:bob@" REALM, authz, sizeof(authz));
		msg_make(&m2, "MESSAGE", "sip:bob@" REALM, "1001@" REALM, NULL, authz, true, body);
		assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, true, T0, &r), 0);
		expect(&r, AUTH_OK, 0, AUTH_R_OK);
	}
	/* plain auth is not offered here */
	struct cli k = { .user = "1001", .pass = PASS, .method = "MESSAGE", .nc = 9 };
	cli_authz(&ch, &k, "sip:bob@" REALM, authz, sizeof(authz));
	msg_make(&m2, "MESSAGE", "sip:bob@" REALM, "1001@" REALM, NULL, authz, true, body);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, true, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 407, AUTH_R_QOP_NOT_ALLOWED);
}

static void test_no_qop(void **state)
{
	struct fx *f = *state;
	struct auth_result ch, r;
	struct msg m1, m2;
	char authz[2048];
	set(f->cfg, "realm", REALM, "allow_no_qop", "yes");
	set(f->cfg, "realm", REALM, "algorithms", "MD5");
	fx_start(f);
	msg_make(&m1, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, false, T0, &ch), 0);
	struct cli k = { .user = "1001", .pass = PASS, .qop = "" };
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	/* RFC 2069 nonces are one-time */
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_NONCE_REUSED);
	assert_true(r.stale);
	/* nor can that nonce be used with qop afterwards */
	k.qop = "auth";
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_NC_REPLAY);
	/* -sess without qop has no cnonce */
	k.qop = "";
	k.algo_override = "MD5-sess";
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_ALG_NOT_ALLOWED);
}

static void test_userhash(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	set(f->cfg, "realm", REALM, "userhash", "yes");
	set(f->cfg, "realm", REALM, "algorithms", "SHA-512-256, SHA-256, MD5");
	fx_start(f);
	for (int line = 0; line < 3; line++) {
		struct cli k = { .user = "1001", .pass = PASS, .userhash = true, .line = line };
		do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
		expect(&r, AUTH_OK, 0, AUTH_R_OK);
		assert_true(r.userhash);
		assert_string_equal(r.user, "1001");
	}
	struct msg m;
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	assert_non_null(strstr(r.hdrs, "userhash=true"));
	/* userhash of an unknown user */
	struct cli k = { .user = "nobody", .pass = PASS, .userhash = true };
	do_register(f, "nobody@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_UNKNOWN_USER);
	/* username* (RFC 7616 §3.4.4) for a non-ASCII name */
	struct cli x = { .user = "J\xc3\xa4s\xc3\xb8n Doe", .pass = PASS, .ext_user = true };
	do_register(f, "1001@" REALM, NULL, &x, T0, T0, &r);
	/* authenticated, but that Auth ID does not own 1001 */
	expect(&r, AUTH_REJECT, 403, AUTH_R_USERNAME_MISMATCH);
	assert_string_equal(r.user, "J\xc3\xa4s\xc3\xb8n Doe");
}

/* What the wire shows for an unknown user equals, byte for byte, what it
 * shows for a known user with a wrong password — apart from the nonce. */
static void blank_nonces(char *s)
{
	char *p = s;
	while ((p = strstr(p, "nonce=\"")) != NULL) {
		p += 7;
		while (*p && *p != '"')
			*p++ = 'N';
	}
}

static void test_enumeration(void **state)
{
	struct fx *f = *state;
	struct auth_result known, unknown, disabled;
	set(f->cfg, "realm", REALM, "userhash", "yes");
	fx_start(f);
	struct cli k = { .user = "1001", .pass = "wrong" };
	do_register(f, "1001@" REALM, "UA/1", &k, T0, T0, &known);
	k.user = "nobody";
	do_register(f, "nobody@" REALM, "UA/1", &k, T0, T0, &unknown);
	k.user = "off";
	do_register(f, "off@" REALM, "UA/1", &k, T0, T0, &disabled);
	assert_string_equal(known.reason, AUTH_R_BAD_RESPONSE);
	assert_string_equal(unknown.reason, AUTH_R_UNKNOWN_USER);
	assert_string_equal(disabled.reason, AUTH_R_DISABLED);
	assert_int_equal(known.status, unknown.status);
	assert_int_equal(known.hdrs_len, unknown.hdrs_len);
	assert_int_equal(known.hdrs_len, disabled.hdrs_len);
	assert_string_not_equal(known.hdrs, unknown.hdrs); /* nonces differ */
	blank_nonces(known.hdrs);
	blank_nonces(unknown.hdrs);
	blank_nonces(disabled.hdrs);
	assert_string_equal(known.hdrs, unknown.hdrs);
	assert_string_equal(known.hdrs, disabled.hdrs);
	/* and with after_failure = reject, both turn into the same 403 */
}

static void test_after_failure_reject(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	set(f->cfg, "realm", REALM, "after_failure", "reject");
	set(f->cfg, "realm", REALM, "max_failures", "3");
	fx_start(f);
	struct cli k = { .user = "nobody", .pass = "x" };
	for (int i = 0; i < 2; i++) {
		do_register(f, "nobody@" REALM, NULL, &k, T0, T0, &r);
		expect(&r, AUTH_CHALLENGE, 401, AUTH_R_UNKNOWN_USER);
	}
	do_register(f, "nobody@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_REJECT, 403, AUTH_R_UNKNOWN_USER);
	assert_int_equal(r.hdrs_len, 0);
	/* the same for a known user with a wrong password */
	k.user = "1001";
	for (int i = 0; i < 2; i++) {
		do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
		expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_RESPONSE);
	}
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_REJECT, 403, AUTH_R_BAD_RESPONSE);
	/* the window passes */
	k.pass = PASS;
	do_register(f, "1001@" REALM, NULL, &k, T0 + 700, T0 + 700, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
}

static void test_identity(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	set(f->cfg, "realm", REALM, "identity", "1001:3000, 1001:3001");
	fx_start(f);
	struct cli k = { .user = "1001", .pass = PASS };
	do_register(f, "1002@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_REJECT, 403, AUTH_R_USERNAME_MISMATCH);
	assert_string_equal(r.aor, "1002@" REALM);
	do_register(f, "3001@" REALM, NULL, &k, T0, T0, &r); /* config mapping */
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	assert_true(r.mapped);
	k.user = "a7f3k9"; /* credential row: 1002, 2000@lab */
	do_register(f, "1002@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	assert_true(r.mapped);
	assert_string_equal(r.user, "a7f3k9");
	assert_string_equal(r.aor, "1002@" REALM);
	do_register(f, "2000@" LAB, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	do_register(f, "2000@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_REJECT, 403, AUTH_R_USERNAME_MISMATCH);
	do_register(f, "a7f3k9@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	assert_false(r.mapped);
	/* realms scope secrets: 1001@hq is not 1001@lab */
	k.user = "1001";
	do_register(f, "1001@" LAB, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_REJECT, 403, AUTH_R_USERNAME_MISMATCH);
	/* non-REGISTER: the From AOR counts */
	struct msg m1, m2;
	struct auth_result ch;
	char authz[2048];
	msg_make(&m1, "INVITE", "sip:bob@" REALM, "1002@" REALM, NULL, NULL, true, NULL);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, true, T0, &ch), 0);
	struct cli ki = { .user = "1001", .pass = PASS, .method = "INVITE" };
	cli_authz(&ch, &ki, "sip:bob@" REALM, authz, sizeof(authz));
	msg_make(&m2, "INVITE", "sip:bob@" REALM, "1002@" REALM, NULL, authz, true, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, true, T0, &r), 0);
	expect(&r, AUTH_REJECT, 403, AUTH_R_USERNAME_MISMATCH);
	msg_make(&m2, "INVITE", "sip:bob@" REALM, "1001@" REALM, NULL, authz, true, NULL);
	ki.nc = 2;
	cli_authz(&ch, &ki, "sip:bob@" REALM, authz, sizeof(authz));
	msg_make(&m2, "INVITE", "sip:bob@" REALM, "1001@" REALM, NULL, authz, true, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, true, T0, &r), 0);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
}

static void test_identity_off(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	set(f->cfg, "realm", REALM, "identity_check", "no");
	fx_start(f);
	struct cli k = { .user = "1001", .pass = PASS };
	do_register(f, "1002@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
}

static void test_profiles(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	struct msg m;
	set(f->cfg, "profile", "legacy", "match_user_agent", "baresip*, Z 5.*");
	set(f->cfg, "profile", "legacy", "algorithms", "MD5");
	set(f->cfg, "profile", "trunk", "match_source", "198.51.100.0/24, 2001:db8::/32");
	set(f->cfg, "profile", "trunk", "algorithms", "SHA-512-256");
	fx_start(f);
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, "baresip v1.0.0 (x86_64/linux)", NULL,
		 false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	assert_string_equal(r.profile, "legacy");
	assert_null(strstr(r.hdrs, "SHA"));
	assert_non_null(strstr(r.hdrs, "algorithm=MD5"));
	/* baresip authenticates with MD5 and succeeds */
	struct cli k = { .user = "1001", .pass = PASS };
	do_register(f, "1001@" REALM, "baresip v1.0.0", &k, T0, T0, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	assert_string_equal(r.profile, "legacy");
	/* by source network */
	inet_pton(AF_INET, "198.51.100.7", &f->src.sin_addr);
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, "Linphone", NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	assert_string_equal(r.profile, "trunk");
	assert_non_null(strstr(r.hdrs, "algorithm=SHA-512-256"));
	assert_null(strstr(r.hdrs, "MD5"));
	/* SHA-256 answers are not accepted from that profile */
	k.algo_override = "SHA-256";
	do_register(f, "1001@" REALM, "Linphone", &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_ALG_NOT_ALLOWED);
	/* no profile: realm default, and unknown users see the same */
	inet_pton(AF_INET, "192.0.2.10", &f->src.sin_addr);
	msg_make(&m, "REGISTER", "sip:" REALM, "nobody@" REALM, "Linphone", NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	assert_null(r.profile);
}

static void test_md5_deny(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	struct msg m;
	set(f->cfg, "realm", REALM, "md5", "deny");
	fx_start(f);
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	assert_null(strstr(r.hdrs, "MD5"));
	struct cli k = { .user = "1001", .pass = PASS, .algo_override = "MD5" };
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_ALG_NOT_ALLOWED);
}

static void test_bind_ip(void **state)
{
	struct fx *f = *state;
	struct auth_result ch, r;
	struct msg m1, m2;
	char authz[2048];
	set(f->cfg, "realm", REALM, "bind_nonce_to_ip", "yes");
	fx_start(f);
	msg_make(&m1, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, false, T0, &ch), 0);
	struct cli k = { .user = "1001", .pass = PASS };
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	inet_pton(AF_INET, "192.0.2.11", &f->src.sin_addr);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_NONCE);
	/* IPv4-mapped IPv6 of the same address is the same client */
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(5060) };
	inet_pton(AF_INET6, "::ffff:192.0.2.10", &s6.sin6_addr);
	assert_int_equal(auth_check(f->w, &m2.m, (struct sockaddr *)&s6, 0, false, T0, &r), 0);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	/* the nonce is known now (its slot's fingerprint), and still only
	 * for its own address */
	k.nc = 2;
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_BAD_NONCE);
	inet_pton(AF_INET, "192.0.2.10", &f->src.sin_addr);
	assert_int_equal(auth_check(f->w, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);
	/* another realm's nonce is not ours */
	assert_int_equal(auth_check(f->w, &m2.m, (struct sockaddr *)&s6, 1, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_REALM_MISMATCH);
}

/* Several workers verify concurrently: each nc is accepted exactly once. */
static _Atomic unsigned accepted[201];

struct thr {
	struct fx *f;
	const struct auth_result *ch;
	unsigned base;
	unsigned ok, replay;
};

static void *thr_run(void *arg)
{
	struct thr *t = arg;
	struct auth_worker *w = auth_worker_new(t->f->a);
	static struct msg ms[4];
	struct msg *m = &ms[t->base];
	for (unsigned i = 1; i <= 200; i++) {
		struct auth_result r;
		char authz[2048];
		struct cli k = { .user = "1001", .pass = PASS, .nc = i };
		cli_authz(t->ch, &k, "sip:" REALM, authz, sizeof(authz));
		msg_make(m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
		auth_check(w, &m->m, SA(t->f), 0, false, T0, &r);
		if (r.outcome == AUTH_OK) {
			t->ok++;
			accepted[i]++;
		}
		else if (!strcmp(r.reason, AUTH_R_NC_REPLAY))
			t->replay++;
	}
	auth_worker_free(w);
	return NULL;
}

static void test_concurrent(void **state)
{
	struct fx *f = *state;
	struct auth_result ch;
	struct msg m;
	fx_start(f);
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &ch), 0);
	pthread_t th[4];
	struct thr t[4];
	for (unsigned i = 0; i < 4; i++) {
		t[i] = (struct thr){ .f = f, .ch = &ch, .base = i };
		pthread_create(&th[i], NULL, thr_run, &t[i]);
	}
	unsigned ok = 0, replay = 0;
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ok += t[i].ok;
		replay += t[i].replay;
	}
	/* Every nc is accepted at most once (a thread racing ahead by more
	 * than the window may also make an older one refused). */
	for (unsigned i = 1; i <= 200; i++)
		assert_true(accepted[i] <= 1);
	assert_true(ok >= 64 && ok <= 200);
	assert_int_equal(ok + replay, 800);
}

/* ---- the store: reload while running, outage and recovery ---- */

static void test_store_reload(void **state)
{
	struct fx *f = *state;
	struct auth_result r;
	int err;
	char why[256], path[128];
	struct creds_db *db;
	struct creds_row row;

	snprintf(f->dir, sizeof(f->dir), "/tmp/sw-auth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->a = auth_open(f->cfg, f->dir, &err, why, sizeof(why));
	if (!f->a)
		fail_msg("auth_open: %s", why);
	f->w = auth_worker_new(f->a);
	snprintf(path, sizeof(path), "%s/nonce.secret", f->dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/credentials.db", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	struct cli k = { .user = "1001", .pass = PASS };
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_UNKNOWN_USER);

	/* the CLI adds the user through its own connection */
	assert_int_equal(creds_db_open(path, CREDS_OPEN_CREATE, &db), 0);
	row_fill(&row, "1001", REALM, PASS, true, NULL);
	assert_int_equal(creds_db_insert(db, &row), 0);
	assert_int_equal(auth_reload(f->a), 0);
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_OK, 0, AUTH_R_OK);

	assert_int_equal(creds_db_set_enabled(db, "1001", REALM, false), 0);
	/* picked up by auth_check itself within a second */
	usleep(1100 * 1000);
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_DISABLED);
	creds_db_close(db);

	/* the store goes away: 503 with Retry-After, never a stale answer */
	char moved[160];
	snprintf(moved, sizeof(moved), "%s.away", path);
	assert_int_equal(rename(path, moved), 0);
	assert_true(auth_reload(f->a) < 0);
	assert_false(auth_store_available(f->a));
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_ERROR, 503, AUTH_R_STORE_UNAVAILABLE);
	assert_string_equal(r.hdrs, "Retry-After: 5\r\n");
	/* a request without credentials is still challenged */
	struct msg m;
	msg_make(&m, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_NO_CREDENTIALS);
	/* and it comes back */
	assert_int_equal(rename(moved, path), 0);
	assert_int_equal(auth_reload(f->a), 0);
	do_register(f, "1001@" REALM, NULL, &k, T0, T0, &r);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_DISABLED);

	/* the same secret after a restart: old nonces keep their MAC */
	auth_worker_free(f->w);
	auth_close(f->a);
	f->a = auth_open(f->cfg, f->dir, &err, why, sizeof(why));
	assert_non_null(f->a);
	f->w = auth_worker_new(f->a);

	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
}

/* With the reloader thread the workers never poll: a user added or
 * disabled through another connection shows up within a few seconds all
 * the same, and auth_close stops the thread. */
static bool wait_verdict(struct fx *f, const struct cli *k, enum auth_outcome want, const char *reason)
{
	struct auth_result r;
	for (int i = 0; i < 60; i++) {
		do_register(f, "1001@" REALM, NULL, k, T0, T0, &r);
		if (r.outcome == want && strcmp(r.reason, reason) == 0)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

static void test_store_reloader(void **state)
{
	struct fx *f = *state;
	int err;
	char why[256], path[128];
	struct creds_db *db;
	struct creds_row row;

	snprintf(f->dir, sizeof(f->dir), "/tmp/sw-auth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->a = auth_open(f->cfg, f->dir, &err, why, sizeof(why));
	if (!f->a)
		fail_msg("auth_open: %s", why);
	f->w = auth_worker_new(f->a);
	assert_int_equal(auth_start_reloader(f->a), 0);
	assert_int_equal(auth_start_reloader(f->a), 0);   /* once */

	struct cli k = { .user = "1001", .pass = PASS };
	snprintf(path, sizeof(path), "%s/credentials.db", f->dir);
	assert_int_equal(creds_db_open(path, CREDS_OPEN_CREATE, &db), 0);
	row_fill(&row, "1001", REALM, PASS, true, NULL);
	assert_int_equal(creds_db_insert(db, &row), 0);
	assert_true(wait_verdict(f, &k, AUTH_OK, AUTH_R_OK));
	assert_int_equal(creds_db_set_enabled(db, "1001", REALM, false), 0);
	assert_true(wait_verdict(f, &k, AUTH_CHALLENGE, AUTH_R_DISABLED));
	creds_db_close(db);

	auth_worker_free(f->w);
	auth_close(f->a);   /* joins the reloader */
	f->a = auth_open(f->cfg, f->dir, &err, why, sizeof(why));
	assert_non_null(f->a);
	f->w = auth_worker_new(f->a);

	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
}

static void test_secret_config(void **state)
{
	struct fx *f = *state;
	int err;
	char why[256];
	struct auth_result ch, r;
	struct msg m1, m2;
	char authz[2048];
	set(f->cfg, "auth", "", "nonce_secret", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	fx_start(f);
	/* A second node with the same secret accepts this node's nonce MAC
	 * (its slot table is its own, so the nonce is stale there). */
	struct sw_auth *b = auth_open(f->cfg, NULL, &err, why, sizeof(why));
	assert_non_null(b);
	struct creds_row row;
	struct creds_snap *s;
	row_fill(&row, "1001", REALM, PASS, true, NULL);
	assert_int_equal(creds_snap_build(&row, 1, &s), 0);
	auth_set_snapshot(b, s);
	struct auth_worker *wb = auth_worker_new(b);
	msg_make(&m1, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, NULL, false, NULL);
	assert_int_equal(auth_check(f->w, &m1.m, SA(f), 0, false, T0, &ch), 0);
	struct cli k = { .user = "1001", .pass = PASS };
	cli_authz(&ch, &k, "sip:" REALM, authz, sizeof(authz));
	msg_make(&m2, "REGISTER", "sip:" REALM, "1001@" REALM, NULL, authz, false, NULL);
	assert_int_equal(auth_check(wb, &m2.m, SA(f), 0, false, T0, &r), 0);
	expect(&r, AUTH_CHALLENGE, 401, AUTH_R_STALE);
	auth_worker_free(wb);
	auth_close(b);
	/* a secret file readable by others is refused */
	char path[] = "/tmp/sw-secret-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "00112233445566778899aabbccddeeff\n", 33), 33);
	close(fd);
	chmod(path, 0644);
	struct sw_config *c2 = cfg_new();
	set(c2, "auth", "", "nonce_secret_file", path);
	assert_null(auth_open(c2, NULL, &err, why, sizeof(why)));
	assert_int_equal(err, -EPERM);
	chmod(path, 0600);
	b = auth_open(c2, NULL, &err, why, sizeof(why));
	assert_non_null(b);
	auth_close(b);
	unlink(path);
	free(c2);
}

/* [auth] nonce_slots by default: two per user at start-up, so a million
 * users' nonces are still live when they refresh with nc+1; at least the
 * old fixed 65 536; capped; an explicit setting wins. */
static void test_nonce_slots_default(void **state)
{
	(void)state;
	struct sw_auth_conf ac = { 0 };
	assert_int_equal(auth_nonce_slots(&ac, 0), NONCE_SLOTS_MIN);
	assert_int_equal(auth_nonce_slots(&ac, 1000), NONCE_SLOTS_MIN);
	assert_int_equal(auth_nonce_slots(&ac, 1000000), 2000000);
	assert_int_equal(auth_nonce_slots(&ac, NONCE_SLOTS_MAX / 2), NONCE_SLOTS_MAX);
	assert_int_equal(auth_nonce_slots(&ac, (size_t)NONCE_SLOTS_MAX * 3), NONCE_SLOTS_MAX);
	ac.nonce_slots = 1024;
	assert_int_equal(auth_nonce_slots(&ac, 1000000), 1024);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nonce_slots_default),
		T(test_challenge_shape),
		T(test_auth_memo),
		T(test_ok_each_algorithm),
		T(test_reason_codes),
		T(test_malformed),
		T(test_stale),
		T(test_slot_reuse),
		T(test_nc_window),
		T(test_auth_int),
		T(test_auth_int_sess),
		T(test_no_qop),
		T(test_userhash),
		T(test_enumeration),
		T(test_after_failure_reject),
		T(test_identity),
		T(test_identity_off),
		T(test_profiles),
		T(test_md5_deny),
		T(test_bind_ip),
		T(test_concurrent),
		T(test_store_reload),
		T(test_store_reloader),
		T(test_secret_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
