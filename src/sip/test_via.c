/* via-parm parser: table-driven rows from RFC 3261 §20.42, RFC 3581,
 * RFC 4475 (wsinv, transports, badinv01, intmeth) and RFC 5118. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "sip/fields.h"

static void str_is(struct sw_str got, const char *want, const char *what, const char *in)
{
	if (!want) {
		if (got.p != NULL)
			fail_msg("%s: %s: expected absent, got '%.*s'", in, what, SW_STR_FMT(got));
		return;
	}
	if (!got.p || got.len != strlen(want) || memcmp(got.p, want, got.len) != 0)
		fail_msg("%s: %s: expected '%s', got '%.*s'", in, what, want,
			 got.p ? (int)got.len : 6, got.p ? got.p : "(null)");
}

struct via_row {
	const char *in;
	int rc;
	const char *proto, *transport, *host;
	bool v6;
	uint16_t port;
	const char *branch, *received, *maddr;
	bool rport;
	uint16_t rport_value;
	const char *params;
};

#define OK(in_, pr, tr, h, v6_, port_, br, rc_, ma, rp, rpv, prm) \
	{ in_, 0, pr, tr, h, v6_, port_, br, rc_, ma, rp, rpv, prm }
#define BAD(in_) { .in = in_, .rc = -EBADMSG }

static const struct via_row via_rows[] = {
	OK("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds", "SIP/2.0", "UDP", "pc33.atlanta.com", false, 0,
	   "z9hG4bK776asdhds", NULL, NULL, false, 0, ";branch=z9hG4bK776asdhds"),
	OK("SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9", "SIP/2.0", "TCP", "client.atlanta.example.com",
	   false, 5060, "z9hG4bK74bf9", NULL, NULL, false, 0, ";branch=z9hG4bK74bf9"),
	OK("SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7;received=192.0.2.1;ttl=16;maddr=224.2.0.1",
	   "SIP/2.0", "UDP", "erlang.bell-telephone.com", false, 5060, "z9hG4bK87asdks7", "192.0.2.1", "224.2.0.1", false, 0,
	   ";branch=z9hG4bK87asdks7;received=192.0.2.1;ttl=16;maddr=224.2.0.1"),
	OK("SIP/2.0/UDP 192.0.2.2", "SIP/2.0", "UDP", "192.0.2.2", false, 0, NULL, NULL, NULL, false, 0, ""),
	OK("  SIP/2.0/UDP a.example.com  ", "SIP/2.0", "UDP", "a.example.com", false, 0, NULL, NULL, NULL, false, 0, ""),
	/* RFC 3581 */
	OK("SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKkjshdyff", "SIP/2.0", "UDP", "10.1.1.1", false, 4540,
	   "z9hG4bKkjshdyff", NULL, NULL, true, 0, ";rport;branch=z9hG4bKkjshdyff"),
	OK("SIP/2.0/UDP 10.1.1.1:4540;received=192.0.2.1;rport=9988;branch=z9hG4bKkjshdyff", "SIP/2.0", "UDP", "10.1.1.1",
	   false, 4540, "z9hG4bKkjshdyff", "192.0.2.1", NULL, true, 9988,
	   ";received=192.0.2.1;rport=9988;branch=z9hG4bKkjshdyff"),
	OK("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport", "SIP/2.0", "UDP",
	   "127.0.0.1", false, 5070, "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-", NULL, NULL, true, 0,
	   ";branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport"),
	/* RFC 4475 wsinv: LWS around '/', ':' ';' '=' and folded lines */
	OK("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw", "SIP/2.0", "UDP", "192.0.2.2", false, 0,
	   "390skdjuw", NULL, NULL, false, 0, ";branch=390skdjuw"),
	OK("SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8", "SIP/2.0", "TCP",
	   "spindle.example.com", false, 0, "z9hG4bK9ikj8", NULL, NULL, false, 0, ";\r\n  branch  =   z9hG4bK9ikj8"),
	OK("SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239", "SIP/2.0", "UDP", "192.168.255.111",
	   false, 0, "z9hG4bK30239", NULL, NULL, false, 0, "; branch=\r\n z9hG4bK30239"),
	OK("SIP/2.0/UDP host : 5060 ; branch = x", "SIP/2.0", "UDP", "host", false, 5060, "x", NULL, NULL, false, 0,
	   "; branch = x"),
	OK("sip/2.0/udp host", "sip/2.0", "udp", "host", false, 0, NULL, NULL, NULL, false, 0, ""),
	/* RFC 4475 transports: any token */
	OK("SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf", "SIP/2.0", "SCTP", "t2.example.com", false, 0,
	   "z9hG4bKklasjdhf", NULL, NULL, false, 0, ";branch=z9hG4bKklasjdhf"),
	OK("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en", "SIP/2.0", "UNKNOWN", "t4.example.com", false, 0,
	   "z9hG4bKasd0f3en", NULL, NULL, false, 0, ";branch=z9hG4bKasd0f3en"),
	OK("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKhjhs8ass877", "SIP/2.0", "WSS", "df7jal23ls0d.invalid", false, 0,
	   "z9hG4bKhjhs8ass877", NULL, NULL, false, 0, ";branch=z9hG4bKhjhs8ass877"),
	OK("SIP/3.0/UDP h", "SIP/3.0", "UDP", "h", false, 0, NULL, NULL, NULL, false, 0, ""),
	OK("SIP / 3.0/UDP h", "SIP / 3.0", "UDP", "h", false, 0, NULL, NULL, NULL, false, 0, ""),
	/* RFC 4475 intmeth: every token character in a branch */
	OK("SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~", "SIP/2.0", "TCP", "host1.example.com", false, 0,
	   "z9hG4bK-.!%66*_+`'~", NULL, NULL, false, 0, ";branch=z9hG4bK-.!%66*_+`'~"),
	/* RFC 5118 */
	OK("SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111", "SIP/2.0", "UDP", "2001:db8::9:1", true, 0,
	   "z9hG4bKas3-111", NULL, NULL, false, 0, ";branch=z9hG4bKas3-111"),
	OK("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111", "SIP/2.0", "UDP", "2001:db8::9:1", true, 6050,
	   "z9hG4bKas3-111", NULL, NULL, false, 0, ";branch=z9hG4bKas3-111"),
	OK("SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200", "SIP/2.0", "TCP", "2001:db8::9:255",
	   true, 0, "z9hG4bK451jj", "192.0.2.200", NULL, false, 0, ";branch=z9hG4bK451jj;received=192.0.2.200"),
	OK("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3", "SIP/2.0", "UDP", "2001:db8::9:1", true, 0,
	   "z9hG4bKas3", "2001:db8::9:255", NULL, false, 0, ";received=2001:db8::9:255;branch=z9hG4bKas3"),
	OK("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111", "SIP/2.0", "UDP", "2001:db8::9:1",
	   true, 0, "z9hG4bKas3-111", "2001:db8::9:255", NULL, false, 0,
	   ";received=[2001:db8::9:255];branch=z9hG4bKas3-111"),
	OK("SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19", "SIP/2.0", "UDP", "::ffff:192.0.2.10", true, 19823,
	   "z9hG4bKbh19", NULL, NULL, false, 0, ";branch=z9hG4bKbh19"),
	OK("SIP/2.0/UDP h;received=::ffff:192.0.2.1", "SIP/2.0", "UDP", "h", false, 0, NULL, "::ffff:192.0.2.1", NULL,
	   false, 0, ";received=::ffff:192.0.2.1"),
	OK("SIP/2.0/UDP h;maddr=[2001:db8::1]", "SIP/2.0", "UDP", "h", false, 0, NULL, NULL, "[2001:db8::1]",
	   false, 0, ";maddr=[2001:db8::1]"),
	OK("SIP/2.0/UDP h;ttl=0;ttl=255;x;y=\"q\";z=a:b", "SIP/2.0", "UDP", "h", false, 0, NULL, NULL, NULL,
	   false, 0, ";ttl=0;ttl=255;x;y=\"q\";z=a:b"),

	/* errors */
	BAD(""),
	BAD("   "),
	BAD("SIP/2.0/UDP"),
	BAD("SIP/2.0/UDP "),
	BAD("SIP/2.0 UDP host"),
	BAD("SIP/2.0/ host"),
	BAD("SIP//UDP host"),
	BAD("/2.0/UDP host"),
	BAD("SIP/2.0/UDPhost"),
	BAD("SIP/2.0/UDP\r\nhost"),
	BAD("SIP/2.0/UDP 192.0.2.15;;,;,,"),           /* RFC 4475 badinv01 */
	BAD("SIP/2.0/UDP host;"),
	BAD("SIP/2.0/UDP host;;branch=x"),
	BAD("SIP/2.0/UDP host;branch"),
	BAD("SIP/2.0/UDP host;branch="),
	BAD("SIP/2.0/UDP host;branch=\"x\""),
	BAD("SIP/2.0/UDP host;branch=a:b"),
	BAD("SIP/2.0/UDP host;branch=a;branch=b"),
	BAD("SIP/2.0/UDP host:"),
	BAD("SIP/2.0/UDP host:0"),
	BAD("SIP/2.0/UDP host:65536"),
	BAD("SIP/2.0/UDP host:5060x"),
	BAD("SIP/2.0/UDP host 5060"),
	BAD("SIP/2.0/UDP host,x"),
	BAD("SIP/2.0/UDP ho_st"),
	BAD("SIP/2.0/UDP 1.2.3.256"),
	BAD("SIP/2.0/UDP 2001:db8::1"),
	BAD("SIP/2.0/UDP [2001:db8::1"),
	BAD("SIP/2.0/UDP [2001:db8::1]x"),
	BAD("SIP/2.0/UDP [nothex::1]"),
	BAD("SIP/2.0/UDP []"),
	BAD("SIP/2.0/UDP h;received"),
	BAD("SIP/2.0/UDP h;received=host.example.com"),
	BAD("SIP/2.0/UDP h;received=1.2.3"),
	BAD("SIP/2.0/UDP h;received=[1.2.3.4]"),
	BAD("SIP/2.0/UDP h;received=2001:db8::1::2"),
	BAD("SIP/2.0/UDP h;received=[2001:db8::1"),
	BAD("SIP/2.0/UDP h;received=1.2.3.4;received=1.2.3.5"),
	BAD("SIP/2.0/UDP h;maddr"),
	BAD("SIP/2.0/UDP h;maddr=a_b"),
	BAD("SIP/2.0/UDP h;ttl"),
	BAD("SIP/2.0/UDP h;ttl=256"),
	BAD("SIP/2.0/UDP h;ttl=0255"),
	BAD("SIP/2.0/UDP h;ttl=x"),
	BAD("SIP/2.0/UDP h;rport=0"),
	BAD("SIP/2.0/UDP h;rport=65536"),
	BAD("SIP/2.0/UDP h;rport=x"),
	BAD("SIP/2.0/UDP h;rport;rport"),
	BAD("SIP/2.0/UDP h;x=\"unterminated"),
	BAD("SIP/2.0/UDP h;x=y z"),
	BAD("SIP/2.0/UDP h, SIP/2.0/UDP i"),
};

static void test_via_rows(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(via_rows) / sizeof(via_rows[0]); k++) {
		const struct via_row *r = &via_rows[k];
		struct sip_via v;
		int rc = sip_via_parse(sw_str_c(r->in), &v);
		if (rc != r->rc)
			fail_msg("'%s': rc %d want %d", r->in, rc, r->rc);
		if (rc)
			continue;
		str_is(v.proto, r->proto, "proto", r->in);
		str_is(v.transport, r->transport, "transport", r->in);
		str_is(v.host, r->host, "host", r->in);
		if (v.host_v6 != r->v6 || v.port != r->port)
			fail_msg("'%s': v6 %d port %u", r->in, v.host_v6, v.port);
		str_is(v.branch, r->branch, "branch", r->in);
		str_is(v.received, r->received, "received", r->in);
		str_is(v.maddr, r->maddr, "maddr", r->in);
		if (v.rport != r->rport || v.rport_value != r->rport_value)
			fail_msg("'%s': rport %d %u", r->in, v.rport, v.rport_value);
		str_is(v.params, r->params, "params", r->in);
		struct sw_str t = sw_str_trim(sw_str_c(r->in));
		if (v.raw.p != t.p || v.raw.len != t.len)
			fail_msg("'%s': raw", r->in);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_via_rows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
