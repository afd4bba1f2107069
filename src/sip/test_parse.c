/* Unit tests of the SIP message parser: limits, folding, compact forms,
 * line endings, stream framing at every chunk boundary, Content-Length
 * errors, NUL bytes, many headers and Vias. */
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
#include "sip/parse.h"

#define HDR_CAP 128

static struct sip_hdr hdrs[HDR_CAP];
static struct sip_msg msg;
static struct sip_perr err;
static struct sip_limits lim;

static int setup(void **state)
{
	sip_limits_default(&lim);
	(void)state;
	return 0;
}

static ssize_t parse_mode(const char *s, size_t n, enum sip_parse_mode mode)
{
	return sip_parse(s, n, mode, &lim, hdrs, HDR_CAP, &msg, &err);
}

static ssize_t parse(const char *s)
{
	return parse_mode(s, strlen(s), SIP_PARSE_DGRAM);
}

static bool eqs(struct sw_str s, const char *c)
{
	return s.p && sw_str_eq(s, sw_str_c(c));
}

#define CORE "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n" \
	"From: <sip:a@example.com>;tag=1\r\n" \
	"To: <sip:b@example.com>\r\n" \
	"Call-ID: abc@h\r\n"
#define REQ(extra) "OPTIONS sip:b@example.com SIP/2.0\r\n" CORE \
	"CSeq: 1 OPTIONS\r\n" extra "\r\n"

static void minimal(void **state)
{
	const char *s = REQ("Content-Length: 0\r\n");
	assert_int_equal(parse(s), (ssize_t)strlen(s));
	assert_true(msg.is_request);
	assert_int_equal(msg.method, SIP_M_OPTIONS);
	assert_int_equal(msg.nhdrs, 6);
	assert_int_equal(msg.first[SIP_H_VIA], 0);
	assert_int_equal(msg.first[SIP_H_CONTENT_LENGTH], 5);
	assert_int_equal(msg.first[SIP_H_CONTACT], -1);
	assert_int_equal(msg.count[SIP_H_VIA], 1);
	assert_int_equal(msg.content_length, 0);
	assert_int_equal(msg.max_forwards, -1);
	assert_int_equal(msg.expires, -1);
	assert_true(eqs(msg.call_id, "abc@h"));
	assert_true(eqs(msg.via1.branch, "z9hG4bK1"));
	assert_true(eqs(msg.from.tag, "1"));
	assert_int_equal(msg.cseq.num, 1);
	assert_true(msg.replyable);
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	(void)state;
}

static void compact_forms(void **state)
{
	const char *s = "INVITE sip:b@example.com SIP/2.0\r\n"
		"v: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		"f: <sip:a@example.com>;tag=1\r\n"
		"t: <sip:b@example.com>\r\n"
		"i: abc@h\r\n"
		"CSeq: 1 INVITE\r\n"
		"m: <sip:a@h>\r\nc: text/plain\r\ne: gzip\r\nk: timer\r\ns: hi\r\n"
		"o: presence\r\nu: presence\r\nr: <sip:c@x>\r\nb: <sip:d@x>\r\n"
		"x: 1800\r\ny: abc\r\n"
		"l: 3\r\n\r\nabc";
	assert_int_equal(parse(s), (ssize_t)strlen(s));
	static const enum sip_hdr_id ids[] = {
		SIP_H_VIA, SIP_H_FROM, SIP_H_TO, SIP_H_CALL_ID, SIP_H_CSEQ, SIP_H_CONTACT,
		SIP_H_CONTENT_TYPE, SIP_H_CONTENT_ENCODING, SIP_H_SUPPORTED, SIP_H_SUBJECT,
		SIP_H_EVENT, SIP_H_ALLOW_EVENTS, SIP_H_REFER_TO, SIP_H_REFERRED_BY,
		SIP_H_SESSION_EXPIRES, SIP_H_IDENTITY, SIP_H_CONTENT_LENGTH,
	};
	assert_int_equal(msg.nhdrs, sizeof(ids) / sizeof(ids[0]));
	for (unsigned i = 0; i < msg.nhdrs; i++)
		assert_int_equal(msg.hdrs[i].id, ids[i]);
	assert_true(eqs(msg.body, "abc"));
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	/* lookups find full and compact forms alike */
	assert_non_null(sip_hdr_by_name(&msg, SW_STR_LIT("Content-Length")));
	assert_non_null(sip_hdr_by_name(&msg, SW_STR_LIT("l")));
	(void)state;
}

static void hdrtab(void **state)
{
	for (int id = 1; id < SIP_H__COUNT; id++) {
		const char *n = sip_hdr_canonical((enum sip_hdr_id)id);
		assert_non_null(n);
		assert_int_equal(sip_hdr_lookup(n, strlen(n)), id);
		char up[64];
		size_t l = strlen(n);
		for (size_t i = 0; i <= l; i++)
			up[i] = (n[i] >= 'a' && n[i] <= 'z') ? (char)(n[i] - 32) : n[i];
		assert_int_equal(sip_hdr_lookup(up, l), id);
	}
	assert_int_equal(sip_hdr_lookup("V", 1), SIP_H_VIA);
	assert_int_equal(sip_hdr_lookup("a", 1), SIP_H_OTHER);
	assert_int_equal(sip_hdr_lookup("C%6Fntact", 9), SIP_H_OTHER);
	assert_int_equal(sip_hdr_lookup("Viaa", 4), SIP_H_OTHER);
	assert_int_equal(sip_hdr_lookup("", 0), SIP_H_OTHER);
	for (int m = 1; m < SIP_M__COUNT; m++) {
		const char *n = sip_method_str((enum sip_method)m);
		assert_int_equal(sip_method_lookup(sw_str_c(n)), m);
	}
	assert_int_equal(sip_method_lookup(SW_STR_LIT("invite")), SIP_M_UNKNOWN);
	assert_null(sip_method_str(SIP_M_UNKNOWN));
	(void)state;
}

static void folding_and_lws(void **state)
{
	const char *s = "OPTIONS sip:b@example.com SIP/2.0\r\n"
		"Via  :  SIP/2.0/UDP h\r\n\t;branch=z9hG4bK1  \r\n"
		"From\t:<sip:a@example.com>;tag=1\r\n"
		"To: \r\n <sip:b@example.com>\r\n"
		"Call-ID: abc@h\r\n"
		"CSeq: 1\r\n  OPTIONS\r\n"
		"X-Long: a\r\n b\r\n\tc   \r\n"
		"X-Empty:\r\n"
		"\r\n";
	assert_int_equal(parse(s), (ssize_t)strlen(s));
	const struct sip_hdr *h = sip_hdr_by_name(&msg, SW_STR_LIT("x-long"));
	assert_non_null(h);
	assert_true(eqs(h->value, "a\r\n b\r\n\tc"));
	assert_true(eqs(msg.via1.branch, "z9hG4bK1"));
	assert_true(eqs(sip_hdr_get(&msg, SIP_H_TO)->value, "<sip:b@example.com>"));
	h = sip_hdr_by_name(&msg, SW_STR_LIT("X-Empty"));
	assert_non_null(h);
	assert_int_equal(h->value.len, 0);
	assert_int_equal(msg.cseq.method, SIP_M_OPTIONS);
	/* a continuation before any header is malformed */
	assert_int_equal(parse("OPTIONS sip:b@x SIP/2.0\r\n folded: x\r\n\r\n"), -EBADMSG);
	assert_int_equal(err.status, 400);
	(void)state;
}

static void bare_lf(void **state)
{
	const char *crlf = REQ("Content-Length: 4\r\n") "body";
	char lf[1024];
	size_t n = 0;
	for (const char *p = crlf; *p; p++)
		if (*p != '\r')
			lf[n++] = *p;
	ssize_t r = parse_mode(lf, n, SIP_PARSE_DGRAM);
	assert_int_equal(r, (ssize_t)n);
	assert_true(eqs(msg.body, "body"));
	assert_true(eqs(msg.call_id, "abc@h"));
	r = parse_mode(lf, n, SIP_PARSE_STREAM);
	assert_int_equal(r, (ssize_t)n);
	/* a bare CR inside a header is not a line end */
	assert_int_equal(parse(REQ("X-A: a\rb\r\n")), -EBADMSG);
	assert_int_equal(err.status, 400);
	/* a bare CR in the body is fine (RFC 4475 mpart01) */
	assert_true(parse(REQ("Content-Length: 3\r\n") "a\rb") > 0);
	(void)state;
}

static void no_blank_line(void **state)
{
	/* DGRAM: the datagram's end ends the header section (RFC 5118 §4.10
	 * archive); STREAM: wait for more. */
	const char *s = "OPTIONS sip:b@example.com SIP/2.0\r\n" CORE "CSeq: 1 OPTIONS";
	assert_int_equal(parse(s), (ssize_t)strlen(s));
	assert_int_equal(msg.body.len, 0);
	assert_int_equal(parse_mode(s, strlen(s), SIP_PARSE_STREAM), -EAGAIN);
	(void)state;
}

static void content_length(void **state)
{
	assert_int_equal(parse(REQ("Content-Length: -1\r\n")), -EBADMSG);
	assert_int_equal(err.status, 400);
	assert_int_equal(parse(REQ("Content-Length: x\r\n")), -EBADMSG);
	assert_int_equal(parse(REQ("Content-Length: 99999999999999999999999\r\n")), -EBADMSG);
	assert_int_equal(parse(REQ("Content-Length: 1\r\nl: 2\r\n") "ab"), -EBADMSG);
	assert_int_equal(err.status, 400);
	/* larger than the datagram: 400 (RFC 3261 §18.3) */
	assert_int_equal(parse(REQ("Content-Length: 5\r\n") "abc"), -EBADMSG);
	assert_int_equal(err.status, 400);
	/* smaller: trailing octets ignored */
	const char *s = REQ("Content-Length: 2\r\n") "abcdef";
	assert_int_equal(parse(s), (ssize_t)strlen(s) - 4);
	assert_true(eqs(msg.body, "ab"));
	/* absent on a datagram: the rest; on a stream: 0 */
	s = REQ("") "xyz";
	assert_int_equal(parse(s), (ssize_t)strlen(s));
	assert_true(eqs(msg.body, "xyz"));
	assert_int_equal(parse_mode(s, strlen(s), SIP_PARSE_STREAM), (ssize_t)strlen(s) - 3);
	assert_int_equal(msg.body.len, 0);
	/* sip_frame: conflicting, negative, huge */
	s = REQ("Content-Length: 1\r\nl: 2\r\n");
	assert_int_equal(sip_frame(s, strlen(s), &lim, &err), -EBADMSG);
	s = REQ("l: -5\r\n");
	assert_int_equal(sip_frame(s, strlen(s), &lim, &err), -EBADMSG);
	s = REQ("l: 18446744073709551616\r\n");
	assert_int_equal(sip_frame(s, strlen(s), &lim, &err), -EBADMSG);
	s = REQ("l: 100000\r\n");
	assert_int_equal(sip_frame(s, strlen(s), &lim, &err), -EMSGSIZE);
	assert_int_equal(err.status, 413);
	/* identical duplicates frame (unambiguous) but do not parse */
	s = REQ("l: 0\r\nContent-Length: 0\r\n");
	assert_int_equal(sip_frame(s, strlen(s), &lim, &err), (ssize_t)strlen(s));
	assert_int_equal(parse(s), -EBADMSG);
	(void)state;
}

/* Feed a stream of two messages in chunks of every size from 1 to 40
 * and at every single split point: the frame lengths never change. */
static void framing_chunks(void **state)
{
	char stream[2048];
	const char *m1 = REQ("l: 5\r\n") "hello";
	const char *m2 = "SIP/2.0 200 OK\n" CORE "CSeq: 1 OPTIONS\nContent-Length:\n 2\n\nok";
	size_t n1 = strlen(m1), n2 = strlen(m2);
	memcpy(stream, m1, n1);
	memcpy(stream + n1, m2, n2);
	size_t total = n1 + n2;

	ssize_t r0 = sip_frame(stream, total, &lim, &err);
	if (r0 != (ssize_t)n1)
		fail_msg("frame %zd: %s at %zu", r0, err.why, err.off);
	assert_int_equal(sip_frame(stream + n1, n2, &lim, &err), (ssize_t)n2);
	for (size_t cut = 0; cut <= total; cut++) {
		ssize_t r = sip_frame(stream, cut, &lim, &err);
		if (cut < n1)
			assert_int_equal(r, -EAGAIN);
		else
			assert_int_equal(r, (ssize_t)n1);
	}
	for (size_t chunk = 1; chunk <= 40; chunk++) {
		char *buf = malloc(total);
		size_t have = 0, off = 0, got = 0;
		size_t lens[2];
		while (off < total) {
			size_t c = chunk < total - off ? chunk : total - off;
			memcpy(buf + have, stream + off, c);
			have += c;
			off += c;
			ssize_t r;
			while ((r = sip_frame(buf, have, &lim, &err)) > 0) {
				assert_true(got < 2);
				lens[got++] = (size_t)r;
				assert_int_equal(parse_mode(buf, have, SIP_PARSE_STREAM), r);
				memmove(buf, buf + r, have - (size_t)r);
				have -= (size_t)r;
			}
			assert_int_equal(r, -EAGAIN);
		}
		free(buf);
		assert_int_equal(got, 2);
		assert_int_equal(lens[0], n1);
		assert_int_equal(lens[1], n2);
	}
	(void)state;
}

static void start_lines(void **state)
{
	assert_int_equal(parse("OPTIONS sip:b@example.com SIP/3.0\r\n" CORE
			       "CSeq: 1 OPTIONS\r\n\r\n"), -EBADMSG);
	assert_int_equal(err.status, 505);
	assert_true(msg.replyable);   /* a 505 can be built */
	assert_int_equal(parse("OPTIONS sip:b@example.com SIP/2.0 \r\n" CORE
			       "CSeq: 1 OPTIONS\r\n\r\n"), -EBADMSG);
	assert_int_equal(err.status, 400);
	assert_int_equal(parse("OPTIONS sip:b@example.com HTTP/1.1\r\n" CORE
			       "CSeq: 1 OPTIONS\r\n\r\n"), -EBADMSG);
	assert_int_equal(err.status, 400);
	assert_int_equal(parse("\r\nOPTIONS sip:b@example.com SIP/2.0\r\n" CORE
			       "CSeq: 1 OPTIONS\r\n\r\n"), -EBADMSG);
	/* responses: status code range; malformed ones are dropped */
	const char *ok = "SIP/2.0 180 Ringing\r\n" CORE "CSeq: 1 INVITE\r\n\r\n";
	assert_int_equal(parse(ok), (ssize_t)strlen(ok));
	assert_false(msg.is_request);
	assert_int_equal(msg.status, 180);
	assert_true(eqs(msg.reason, "Ringing"));
	assert_int_equal(parse("SIP/2.0 099 Low\r\n" CORE "CSeq: 1 INVITE\r\n\r\n"), -EBADMSG);
	assert_int_equal(err.status, 0);
	assert_int_equal(parse("SIP/2.0 4294967301 Big\r\n" CORE "CSeq: 1 INVITE\r\n\r\n"),
			 -EBADMSG);
	assert_int_equal(err.status, 0);
	assert_int_equal(parse("SIP/2.0 200 OK\r\n" CORE "\r\n"), -EBADMSG);   /* no CSeq */
	assert_int_equal(err.status, 0);
	/* method mismatch: known 400, unknown 501 */
	assert_int_equal(parse("OPTIONS sip:b@example.com SIP/2.0\r\n" CORE
			       "CSeq: 1 INVITE\r\n\r\n"), -EBADMSG);
	assert_int_equal(err.status, 400);
	assert_int_equal(parse("FOO sip:b@example.com SIP/2.0\r\n" CORE
			       "CSeq: 1 INVITE\r\n\r\n"), -EBADMSG);
	assert_int_equal(err.status, 501);
	(void)state;
}

static void limits(void **state)
{
	char big[70000];
	/* whole datagram */
	memset(big, 'a', sizeof(big));
	assert_int_equal(parse_mode(big, sizeof(big), SIP_PARSE_DGRAM), -EMSGSIZE);
	assert_int_equal(err.status, 513);
	/* a request line over max_line: 414, headers still read for the reply */
	{
		static char line[9300];
		size_t n = (size_t)snprintf(line, sizeof(line), "OPTIONS sip:");
		memset(line + n, 'u', 9000);
		n += 9000;
		n += (size_t)snprintf(line + n, sizeof(line) - n,
				      "@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKlong\r\n"
				      "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
				      "Call-ID: long@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
		assert_int_equal(parse_mode(line, n, SIP_PARSE_DGRAM), -EMSGSIZE);
		assert_int_equal(err.status, 414);
		assert_true(msg.replyable);
	}
	/* one header line (with folding counted) */
	lim.max_line = 64;
	assert_int_equal(parse(REQ("X-A: 0123456789012345678901234567890123456789\r\n"
				   " 0123456789012345678901234567890123456789\r\n")), -EMSGSIZE);
	assert_int_equal(err.status, 513);
	sip_limits_default(&lim);
	/* header count (limit and the caller's array) */
	lim.max_headers = 4;
	assert_int_equal(parse(REQ("")), -EMSGSIZE);
	sip_limits_default(&lim);
	assert_int_equal(sip_parse(REQ(""), strlen(REQ("")), SIP_PARSE_DGRAM, &lim, hdrs, 4,
				   &msg, &err), -EMSGSIZE);
	/* Via count over several fields */
	lim.max_via = 2;
	assert_int_equal(parse(REQ("Via: SIP/2.0/UDP a, SIP/2.0/UDP b\r\n")), -EMSGSIZE);
	assert_int_equal(err.status, 513);
	assert_true(parse(REQ("Via: SIP/2.0/UDP a\r\n")) > 0);
	assert_int_equal(msg.nvia, 2);
	sip_limits_default(&lim);
	/* Contacts */
	lim.max_contacts = 2;
	assert_int_equal(parse(REQ("Contact: <sip:a@b>, <sip:c@d>\r\nm: <sip:e@f>\r\n")),
			 -EMSGSIZE);
	sip_limits_default(&lim);
	/* stream: headers that never end */
	size_t n = 0;
	n += (size_t)snprintf(big, sizeof(big), "OPTIONS sip:b@x SIP/2.0\r\n");
	while (n + 20 < sizeof(big))
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-Pad: 0123456789\r\n");
	assert_int_equal(sip_frame(big, n, &lim, &err), -EMSGSIZE);
	(void)state;
}

static void many_headers(void **state)
{
	enum { N = 10000 };
	size_t cap = N * 9 + 512;
	char *buf = malloc(cap);
	size_t n = (size_t)snprintf(buf, cap, "%s", REQ(""));
	n -= 2;   /* drop the blank line */
	for (int i = 0; i < N; i++)
		n += (size_t)snprintf(buf + n, cap - n, "Xa:%d\r\n", i % 10);
	n += (size_t)snprintf(buf + n, cap - n, "\r\n");
	struct sip_hdr *h = malloc(sizeof(*h) * (N + 10));
	struct sip_limits l;
	sip_limits_default(&l);
	l.max_msg = cap;
	l.max_headers = N + 10;
	assert_int_equal(sip_parse(buf, n, SIP_PARSE_DGRAM, &l, h, N + 10, &msg, &err),
			 (ssize_t)n);
	assert_int_equal(msg.nhdrs, N + 5);
	assert_int_equal(msg.count[SIP_H_OTHER], N);
	/* with default limits: refused, not truncated */
	sip_limits_default(&l);
	l.max_msg = cap;
	assert_int_equal(sip_parse(buf, n, SIP_PARSE_DGRAM, &l, h, N + 10, &msg, &err),
			 -EMSGSIZE);
	free(h);
	free(buf);
	(void)state;
}

static void many_vias(void **state)
{
	enum { N = 1000 };
	size_t cap = N * 40 + 512;
	char *buf = malloc(cap);
	size_t n = (size_t)snprintf(buf, cap, "%s", REQ(""));
	n -= 2;
	for (int i = 0; i < N; i++)
		n += (size_t)snprintf(buf + n, cap - n, "Via: SIP/2.0/UDP h%d\r\n", i);
	n += (size_t)snprintf(buf + n, cap - n, "\r\n");
	struct sip_hdr *h = malloc(sizeof(*h) * (N + 10));
	struct sip_limits l;
	sip_limits_default(&l);
	l.max_msg = cap;
	l.max_headers = N + 10;
	assert_int_equal(sip_parse(buf, n, SIP_PARSE_DGRAM, &l, h, N + 10, &msg, &err),
			 -EMSGSIZE);
	assert_int_equal(err.status, 513);
	assert_false(msg.replyable);
	l.max_via = N + 1;
	assert_int_equal(sip_parse(buf, n, SIP_PARSE_DGRAM, &l, h, N + 10, &msg, &err),
			 (ssize_t)n);
	assert_int_equal(msg.nvia, N + 1);
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	free(h);
	free(buf);
	(void)state;
}

static void nul_bytes(void **state)
{
	/* NUL as a quoted-pair in a display name is allowed (RFC 4475 intmeth),
	 * in a header name it is not; the parser never stops at a NUL. */
	char s[512];
	const char *t = REQ("X-A: \"a\\@b\"\r\n");
	size_t n = strlen(t);
	memcpy(s, t, n);
	strstr(s, "\\@")[1] = '\0';
	assert_int_equal(parse_mode(s, n, SIP_PARSE_DGRAM), (ssize_t)n);
	t = REQ("X@A: 1\r\n");
	n = strlen(t);
	memcpy(s, t, n);
	strstr(s, "X@A")[1] = '\0';
	assert_int_equal(parse_mode(s, n, SIP_PARSE_DGRAM), -EBADMSG);
	/* a NUL as the first octet of a header line */
	t = REQ("");
	n = strlen(t);
	memcpy(s, t, n);
	s[strlen("OPTIONS sip:b@example.com SIP/2.0\r\n")] = '\0';
	assert_int_equal(parse_mode(s, n, SIP_PARSE_DGRAM), -EBADMSG);
	/* NUL in the body is just data */
	t = REQ("l: 3\r\n") "a@b";
	n = strlen(t);
	memcpy(s, t, n);
	s[n - 2] = '\0';
	assert_int_equal(parse_mode(s, n, SIP_PARSE_DGRAM), (ssize_t)n);
	assert_int_equal(msg.body.len, 3);
	(void)state;
}

static void duplicates_and_missing(void **state)
{
	assert_int_equal(parse(REQ("Call-ID: again\r\n")), -EBADMSG);
	assert_false(msg.replyable);
	assert_int_equal(parse(REQ("Max-Forwards: 256\r\n")), -EBADMSG);
	assert_int_equal(parse(REQ("Max-Forwards: 70\r\nMax-Forwards: 70\r\n")), -EBADMSG);
	assert_int_equal(parse(REQ("Expires: 4294967296\r\n")), -EBADMSG);
	assert_true(parse(REQ("Expires: 0003600\r\nMax-Forwards: 070\r\n")) > 0);
	assert_int_equal(msg.expires, 3600);
	assert_int_equal(msg.max_forwards, 70);
	assert_int_equal(parse("OPTIONS sip:b@example.com SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"),
			 -EBADMSG);
	assert_int_equal(err.status, 400);
	assert_false(msg.replyable);
	/* empty Via element */
	assert_int_equal(parse(REQ("Via: SIP/2.0/UDP a,,SIP/2.0/UDP b\r\n")), -EBADMSG);
	(void)state;
}

static void validate(void **state)
{
	assert_true(parse(REQ("Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	assert_true(parse(REQ("Date: Sat, 13 Nov 2010 23:29:00 EST\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), -EBADMSG);
	assert_int_equal(err.status, 400);
	assert_true(parse(REQ("Require: foo, bar\r\nSupported:\r\nAllow: INVITE, ACK\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	assert_true(parse(REQ("Require:\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), -EBADMSG);
	assert_true(parse(REQ("Require: a b\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), -EBADMSG);
	assert_true(parse(REQ("Route: <sip:p1@x;lr>, <sip:p2@y;lr>\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	assert_true(parse(REQ("Route: sip:p1@x\r\n")) > 0);   /* name-addr required */
	assert_int_equal(sip_validate_all(&msg, &err), -EBADMSG);
	assert_true(parse(REQ("Contact: *\r\nExpires: 0\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	assert_true(parse(REQ("Contact: *, <sip:a@b>\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), -EBADMSG);
	assert_true(parse(REQ("Content-Type: application/sdp;charset=utf-8\r\nl: 0\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	assert_true(parse(REQ("Content-Type: sdp\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), -EBADMSG);
	assert_true(parse(REQ("Timestamp: 54.2 0.5\r\nMin-Expires: 60\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), 0);
	assert_true(parse(REQ("Min-Expires: -1\r\n")) > 0);
	assert_int_equal(sip_validate_all(&msg, &err), -EBADMSG);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(minimal, setup),
		cmocka_unit_test_setup(compact_forms, setup),
		cmocka_unit_test_setup(hdrtab, setup),
		cmocka_unit_test_setup(folding_and_lws, setup),
		cmocka_unit_test_setup(bare_lf, setup),
		cmocka_unit_test_setup(no_blank_line, setup),
		cmocka_unit_test_setup(content_length, setup),
		cmocka_unit_test_setup(framing_chunks, setup),
		cmocka_unit_test_setup(start_lines, setup),
		cmocka_unit_test_setup(limits, setup),
		cmocka_unit_test_setup(many_headers, setup),
		cmocka_unit_test_setup(many_vias, setup),
		cmocka_unit_test_setup(nul_bytes, setup),
		cmocka_unit_test_setup(duplicates_and_missing, setup),
		cmocka_unit_test_setup(validate, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
