/* Conformance: RFC 4475 and RFC 5118 torture messages, one row each
 * (STYLE.md §10). A valid row must parse as a datagram (sip_parse > 0) and
 * pass sip_validate_all; an invalid row must be refused by one of them
 * with the expected status (0 = dropped). The torture directory comes from
 * meson (argv[1], else $SIP_TORTURE_DIR). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "sip/fields.h"
#include "sip/parse.h"

enum verdict { VALID, INVALID, NOCRASH };

struct row {
	const char *dir;
	const char *file;
	enum verdict v;
	int status;                     /* INVALID: expected err.status */
	void (*check)(const struct sip_msg *m, size_t filelen);
};

static const char *torture_dir;

#define HDR_CAP 256
static char filebuf[1 << 16];

static size_t load(const char *dir, const char *file, char **out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/%s", torture_dir, dir, file);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	size_t n = fread(filebuf, 1, sizeof(filebuf), f);
	fclose(f);
	/* exact-size heap copy so ASan sees any read past the datagram */
	char *p = malloc(n ? n : 1);
	assert_non_null(p);
	memcpy(p, filebuf, n);
	*out = p;
	return n;
}

/* Freed by the group teardown when a failing assertion skipped free(). */
static char *pending;

static int free_pending(void **state)
{
	free(pending);
	pending = NULL;
	(void)state;
	return 0;
}

static bool eqs(struct sw_str s, const char *c)
{
	return s.p && sw_str_eq(s, sw_str_c(c));
}

/* --- per-message value checks ------------------------------------------ */

static void chk_wsinv(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->method, SIP_M_INVITE);
	assert_int_equal(m->max_forwards, 68);
	assert_int_equal(m->cseq.num, 9);
	assert_int_equal(m->cseq.method, SIP_M_INVITE);
	/* Via (folded) + v: with two via-parms */
	assert_int_equal(m->nvia, 3);
	assert_true(eqs(m->via1.transport, "UDP"));
	assert_true(eqs(m->via1.host, "192.0.2.2"));
	assert_true(eqs(m->from.tag, "98asjd8"));
	assert_true(eqs(m->to.tag, "1918181833n"));
	assert_int_equal(m->content_length, 150);
	assert_int_equal(m->body.len, 150);
	assert_int_equal(m->len, n);
	/* folded value keeps the line break, trimmed at both ends */
	const struct sip_hdr *h = sip_hdr_by_name(m, SW_STR_LIT("NewFangledHeader"));
	assert_non_null(h);
	assert_true(eqs(h->value, "newfangled value\r\n continued newfangled value"));
	/* "s :" has an empty value */
	h = sip_hdr_get(m, SIP_H_SUBJECT);
	assert_non_null(h);
	assert_int_equal(h->value.len, 0);
	h = sip_hdr_by_name(m, SW_STR_LIT("UnknownHeaderWithUnusualValue"));
	assert_non_null(h);
	assert_true(eqs(h->value, ";;,,;;,;"));
	assert_int_equal(m->count[SIP_H_VIA], 2);
	assert_int_equal(m->count[SIP_H_CONTACT], 1);
	assert_true(m->replyable);
}

static void chk_intmeth(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->method, SIP_M_UNKNOWN);
	assert_true(eqs(m->method_name, "!interesting-Method0123456789_*+`.%indeed'~"));
	assert_true(sw_str_eq(m->cseq.method_name, m->method_name));
	assert_int_equal(m->max_forwards, 255);
}

static void chk_esc02(const struct sip_msg *m, size_t n)
{
	/* '%' is not an escape in a method: RE%47IST%45R is unknown */
	assert_int_equal(m->method, SIP_M_UNKNOWN);
	assert_true(eqs(m->method_name, "RE%47IST%45R"));
	/* "C%6Fntact" is an unknown header: two Contacts, not three */
	assert_int_equal(m->count[SIP_H_CONTACT], 2);
	const struct sip_hdr *h = sip_hdr_by_name(m, SW_STR_LIT("C%6Fntact"));
	assert_non_null(h);
	assert_int_equal(h->id, SIP_H_OTHER);
}

static void chk_dblreq(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->method, SIP_M_REGISTER);
	assert_int_equal(m->content_length, 0);
	assert_int_equal(m->body.len, 0);
	/* the trailing INVITE-looking octets are not part of the message */
	assert_true(m->len < n);
	assert_true(m->len + 400 < n);
	assert_int_equal(m->buf[m->len - 1], '\n');
}

static void chk_semiuri(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->ruri.scheme, SIP_URI_SIP);
	assert_true(eqs(m->ruri.user, "user;par=u%40example.net"));
	assert_true(eqs(m->ruri.host, "example.com"));
}

static void chk_transports(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->nvia, 5);
	assert_true(eqs(m->via1.transport, "UDP"));
}

static void chk_mpart01(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->content_length, 553);
	assert_int_equal(m->body.len, 553);
}

static void chk_unreason(const struct sip_msg *m, size_t n)
{
	assert_false(m->is_request);
	assert_int_equal(m->status, 200);
	assert_true(m->reason.len > 10);
}

static void chk_noreason(const struct sip_msg *m, size_t n)
{
	assert_false(m->is_request);
	assert_int_equal(m->status, 100);
	assert_int_equal(m->reason.len, 0);
}

static void chk_inv2543(const struct sip_msg *m, size_t n)
{
	/* no Content-Length on a datagram: the body is the rest (§18.3) */
	assert_int_equal(m->content_length, -1);
	assert_int_equal(m->max_forwards, -1);
	assert_true(m->body.len > 0);
	assert_int_equal(m->len, n);
}

static void chk_zeromf(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->max_forwards, 0);
}

static void chk_port_unamb(const struct sip_msg *m, size_t n)
{
	assert_true(m->ruri.host_v6);
	assert_true(eqs(m->ruri.host, "2001:db8::10"));
	assert_int_equal(m->ruri.port, 5070);
}

static void chk_port_amb(const struct sip_msg *m, size_t n)
{
	assert_true(m->ruri.host_v6);
	assert_true(eqs(m->ruri.host, "2001:db8::10:5070"));
	assert_int_equal(m->ruri.port, 0);
}

static void chk_via_received(const struct sip_msg *m, size_t n)
{
	/* brackets stripped (RFC 5118 §4.5) */
	assert_true(eqs(m->via1.received, "2001:db8::9:255"));
	assert_true(m->via1.host_v6);
	assert_true(eqs(m->via1.host, "2001:db8::9:1"));
}

static void chk_mult_ip(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->nvia, 3);
	assert_true(eqs(m->via1.host, "2001:db8::9:1"));
	assert_int_equal(m->via1.port, 6050);
}

static void chk_ipv6_good(const struct sip_msg *m, size_t n)
{
	assert_true(m->ruri.host_v6);
	assert_true(eqs(m->ruri.host, "2001:db8::10"));
}

static void chk_sdp_fixed(const struct sip_msg *m, size_t n)
{
	assert_int_equal(m->body.len, (size_t)m->content_length);
	assert_int_equal(m->len, n);
}

/* --- the table ------------------------------------------------------------ */

#define R4(f, v, st, c) { "rfc4475", f ".dat", v, st, c }
#define R5(f, v, st, c) { "rfc5118", f ".dat", v, st, c }

static const struct row rows[] = {
	R4("wsinv", VALID, 0, chk_wsinv),
	R4("intmeth", VALID, 0, chk_intmeth),
	R4("esc01", VALID, 0, NULL),
	R4("escnull", VALID, 0, NULL),
	R4("esc02", VALID, 0, chk_esc02),
	R4("lwsdisp", VALID, 0, NULL),
	R4("longreq", VALID, 0, NULL),
	R4("dblreq", VALID, 0, chk_dblreq),
	R4("semiuri", VALID, 0, chk_semiuri),
	R4("transports", VALID, 0, chk_transports),
	R4("mpart01", VALID, 0, chk_mpart01),
	R4("unreason", VALID, 0, chk_unreason),
	R4("noreason", VALID, 0, chk_noreason),
	R4("badinv01", INVALID, 400, NULL),
	R4("clerr", INVALID, 400, NULL),      /* UDP: CL beyond the datagram, §18.3 */
	R4("ncl", INVALID, 400, NULL),
	R4("scalar02", INVALID, 400, NULL),
	R4("scalarlg", INVALID, 0, NULL),     /* response: dropped */
	R4("quotbal", INVALID, 400, NULL),
	R4("ltgtruri", INVALID, 400, NULL),
	R4("lwsruri", INVALID, 400, NULL),
	R4("lwsstart", INVALID, 400, NULL),
	R4("trws", INVALID, 400, NULL),
	R4("escruri", INVALID, 400, NULL),
	R4("baddate", INVALID, 400, NULL),    /* refused by sip_validate_all */
	R4("regbadct", INVALID, 400, NULL),   /* refused by sip_validate_all */
	R4("badaspec", INVALID, 400, NULL),
	/* archive quirk: no blank line; the datagram's end ends the header
	 * section, and the display names are refused */
	R4("baddn", INVALID, 400, NULL),
	R4("badvers", INVALID, 505, NULL),
	R4("mismatch01", INVALID, 400, NULL),
	R4("mismatch02", INVALID, 501, NULL),
	R4("bigcode", INVALID, 0, NULL),      /* response: dropped */
	/* the RFC gives no verdict; it must parse (a later layer may 400) */
	R4("badbranch", VALID, 0, NULL),
	R4("insuf", INVALID, 400, NULL),
	R4("unkscm", VALID, 0, NULL),
	R4("novelsc", VALID, 0, NULL),
	R4("unksm2", VALID, 0, NULL),
	R4("bext01", VALID, 0, NULL),
	R4("invut", VALID, 0, NULL),
	R4("regaut01", VALID, 0, NULL),
	R4("multi01", INVALID, 400, NULL),
	R4("mcl01", INVALID, 400, NULL),
	R4("bcast", VALID, 0, NULL),
	R4("zeromf", VALID, 0, chk_zeromf),
	R4("cparam01", VALID, 0, NULL),
	R4("cparam02", VALID, 0, NULL),
	R4("regescrt", VALID, 0, NULL),
	R4("sdp01", VALID, 0, NULL),
	R4("inv2543", VALID, 0, chk_inv2543),
	/* unreferenced by any section: only "does not crash" */
	R4("test", NOCRASH, 0, NULL),

	/* RFC 5118: the byte-exact archive has bare LF line ends; they are
	 * parsed as they are, in DGRAM mode, where LF alone is accepted. */
	R5("ipv6-good", VALID, 0, chk_ipv6_good),
	/* 'sip:2001:db8::10' without [] is not a hostport */
	R5("ipv6-bad", INVALID, 400, NULL),
	/* well formed: the host is 2001:db8::10:5070, no port */
	R5("port-ambiguous", VALID, 0, chk_port_amb),
	R5("port-unambiguous", VALID, 0, chk_port_unamb),
	/* RFC 5118 §4.5: robust parsers accept received=[v6] too */
	R5("via-received-param-with-delim", VALID, 0, chk_via_received),
	R5("via-received-param-no-delim", VALID, 0, chk_via_received),
	/* archive quirk: CL 268 > the 242-octet LF body, so on a datagram this
	 * is a 400 (RFC 3261 §18.3) although the RFC calls the message valid;
	 * the IPv6 handling is tested on rfc5118-fixed-cl/ipv6-in-sdp.dat */
	R5("ipv6-in-sdp", INVALID, 400, NULL),
	R5("mult-ip-in-header", VALID, 0, chk_mult_ip),
	/* archive quirk: CL 181 > the 180-octet LF body: 400 as above; see
	 * rfc5118-fixed-cl/mult-ip-in-sdp.dat */
	R5("mult-ip-in-sdp", INVALID, 400, NULL),
	/* CL 236 equals the LF body: valid as it is */
	R5("ipv4-mapped-ipv6", VALID, 0, chk_sdp_fixed),
	/* RFC 5118 §4.10 asks to tolerate the 3-colon form (RFC 5954 later
	 * fixed the ABNF); archive quirk: no blank line, the datagram's end
	 * ends the header section */
	R5("ipv6-bug-abnf-3-colons", VALID, 0, NULL),
	R5("ipv6-correct-abnf-2-colons", VALID, 0, NULL),
	/* the two CL-corrected copies (README.md there says what changed) */
	{ "rfc5118-fixed-cl", "ipv6-in-sdp.dat", VALID, 0, chk_sdp_fixed },
	{ "rfc5118-fixed-cl", "mult-ip-in-sdp.dat", VALID, 0, chk_sdp_fixed },
};

static void run_row(void **state)
{
	const struct row *r = *state;
	char *buf;
	size_t n = load(r->dir, r->file, &buf);
	struct sip_limits lim;
	struct sip_hdr hdrs[HDR_CAP];
	struct sip_msg m;
	struct sip_perr err;

	pending = buf;
	sip_limits_default(&lim);
	/* Conformance runs with the default limits: max_via defaults to 70,
	 * RFC 3261's Max-Forwards, so longreq's 34 via-parms pass. */
	ssize_t rc = sip_parse(buf, n, SIP_PARSE_DGRAM, &lim, hdrs, HDR_CAP, &m, &err);
	int vrc = 0;
	struct sip_perr verr = { 0 };
	if (rc > 0)
		vrc = sip_validate_all(&m, &verr);

	switch (r->v) {
	case VALID:
		if (rc <= 0)
			fail_msg("%s: sip_parse %zd at %zu: %s", r->file, rc, err.off,
				 err.why ? err.why : "?");
		if (vrc != 0)
			fail_msg("%s: sip_validate_all %d at %zu: %s", r->file, vrc, verr.off,
				 verr.why ? verr.why : "?");
		assert_true(m.replyable);
		if (r->check)
			r->check(&m, n);
		break;
	case INVALID:
		if (rc > 0 && vrc == 0)
			fail_msg("%s: accepted, expected status %d", r->file, r->status);
		print_message("%s: %s at %zu (%s)\n", r->file,
			      rc < 0 ? err.why : verr.why, rc < 0 ? err.off : verr.off,
			      rc < 0 ? "sip_parse" : "sip_validate_all");
		if (rc < 0) {
			assert_true(rc == -EBADMSG || rc == -EMSGSIZE);
			if (err.status != r->status)
				fail_msg("%s: sip_parse status %d (%s), expected %d", r->file,
					 err.status, err.why ? err.why : "?", r->status);
		} else {
			assert_int_equal(vrc, -EBADMSG);
			assert_int_equal(verr.status, r->status);
		}
		break;
	case NOCRASH:
		/* also in STREAM mode */
		(void)sip_parse(buf, n, SIP_PARSE_STREAM, &lim, hdrs, HDR_CAP, &m, &err);
		(void)sip_frame(buf, n, &lim, &err);
		break;
	}
	free(buf);
	pending = NULL;
}

/* longreq passes the defaults; one Via fewer allowed than it has: 513. */
static void longreq_default_limits(void **state)
{
	char *buf;
	size_t n = load("rfc4475", "longreq.dat", &buf);
	struct sip_limits lim;
	struct sip_hdr hdrs[HDR_CAP];
	struct sip_msg m;
	struct sip_perr err;
	pending = buf;
	sip_limits_default(&lim);
	assert_int_equal(lim.max_via, 70);
	lim.max_via = 33;
	assert_int_equal(sip_parse(buf, n, SIP_PARSE_DGRAM, &lim, hdrs, HDR_CAP, &m, &err),
			 -EMSGSIZE);
	assert_int_equal(err.status, 513);
	lim.max_via = 34;
	assert_int_equal(sip_parse(buf, n, SIP_PARSE_DGRAM, &lim, hdrs, HDR_CAP, &m, &err),
			 (ssize_t)n);
	assert_int_equal(m.nvia, 34);
	free(buf);
	pending = NULL;
	(void)state;
}

/* The CRLF conversions parse like the LF originals (same verdict), and
 * every torture message frames identically in STREAM mode when it is valid
 * and its CL matches. */
static void crlf_derived(void **state)
{
	static const char *const valid[] = {
		"ipv6-good", "port-ambiguous", "port-unambiguous",
		"via-received-param-with-delim", "via-received-param-no-delim",
		"mult-ip-in-header", "ipv6-bug-abnf-3-colons", "ipv6-correct-abnf-2-colons",
	};
	struct sip_limits lim;
	struct sip_hdr hdrs[HDR_CAP];
	struct sip_msg m;
	struct sip_perr err;
	sip_limits_default(&lim);
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		char name[128], *buf;
		snprintf(name, sizeof(name), "%s.dat", valid[i]);
		size_t n = load("rfc5118-crlf-derived", name, &buf);
		pending = buf;
		ssize_t rc = sip_parse(buf, n, SIP_PARSE_DGRAM, &lim, hdrs, HDR_CAP, &m, &err);
		if (rc <= 0)
			fail_msg("crlf %s: %zd %s", name, rc, err.why ? err.why : "?");
		assert_int_equal(sip_validate_all(&m, &err), 0);
		/* with the blank line present, STREAM frames the same message */
		rc = sip_parse(buf, n, SIP_PARSE_STREAM, &lim, hdrs, HDR_CAP, &m, &err);
		assert_int_equal(rc, (ssize_t)n);
		free(buf);
		pending = NULL;
	}
	(void)state;
}

int main(int argc, char **argv)
{
	torture_dir = argc > 1 ? argv[1] : getenv("SIP_TORTURE_DIR");
	if (!torture_dir) {
		fprintf(stderr, "usage: %s TORTURE_DIR (or set SIP_TORTURE_DIR)\n", argv[0]);
		return 1;
	}
	enum { N = sizeof(rows) / sizeof(rows[0]) };
	struct CMUnitTest tests[N + 2];
	static char names[N][96];
	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "%s/%s", rows[i].dir, rows[i].file);
		tests[i] = (struct CMUnitTest){ .name = names[i], .test_func = run_row,
					       .initial_state = (void *)&rows[i] };
	}
	tests[N] = (struct CMUnitTest)cmocka_unit_test_teardown(crlf_derived, free_pending);
	tests[N + 1] = (struct CMUnitTest)cmocka_unit_test_teardown(longreq_default_limits,
								   free_pending);
	for (size_t i = 0; i < N; i++)
		tests[i].teardown_func = free_pending;
	return _cmocka_run_group_tests("torture", tests, N + 2, NULL, NULL);
}
