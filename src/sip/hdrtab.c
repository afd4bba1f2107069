/* Header-name and method tables (STYLE.md §3): full and compact forms
 * (RFC 3261 §7.3.3, RFC 3515, RFC 3892, RFC 4028, RFC 8224) map to one id.
 * Lookup looks only at the entries of the name's length, so a name is
 * compared at most against a handful of candidates. */
#include <string.h>
#include "base/str.h"
#include "sip/parse.h"

struct hdr_ent {
	const char *name;
	unsigned char len;
	unsigned char id;
};

#define H(s, id) { s, sizeof(s) - 1, id }

/* Sorted by length; canonical spelling. */
static const struct hdr_ent hdr_tab[] = {
	H("To", SIP_H_TO),
	H("Via", SIP_H_VIA),
	H("Date", SIP_H_DATE),
	H("From", SIP_H_FROM),
	H("CSeq", SIP_H_CSEQ),
	H("Path", SIP_H_PATH),
	H("Route", SIP_H_ROUTE),
	H("Allow", SIP_H_ALLOW),
	H("Event", SIP_H_EVENT),
	H("Accept", SIP_H_ACCEPT),
	H("Server", SIP_H_SERVER),
	H("Call-ID", SIP_H_CALL_ID),
	H("Contact", SIP_H_CONTACT),
	H("Expires", SIP_H_EXPIRES),
	H("Require", SIP_H_REQUIRE),
	H("Subject", SIP_H_SUBJECT),
	H("Warning", SIP_H_WARNING),
	H("Refer-To", SIP_H_REFER_TO),
	H("Identity", SIP_H_IDENTITY),
	H("Supported", SIP_H_SUPPORTED),
	H("Timestamp", SIP_H_TIMESTAMP),
	H("User-Agent", SIP_H_USER_AGENT),
	H("Min-Expires", SIP_H_MIN_EXPIRES),
	H("Referred-By", SIP_H_REFERRED_BY),
	H("Retry-After", SIP_H_RETRY_AFTER),
	H("Unsupported", SIP_H_UNSUPPORTED),
	H("Max-Forwards", SIP_H_MAX_FORWARDS),
	H("Content-Type", SIP_H_CONTENT_TYPE),
	H("Record-Route", SIP_H_RECORD_ROUTE),
	H("Allow-Events", SIP_H_ALLOW_EVENTS),
	H("Authorization", SIP_H_AUTHORIZATION),
	H("Proxy-Require", SIP_H_PROXY_REQUIRE),
	H("Content-Length", SIP_H_CONTENT_LENGTH),
	H("Session-Expires", SIP_H_SESSION_EXPIRES),
	H("WWW-Authenticate", SIP_H_WWW_AUTHENTICATE),
	H("Content-Encoding", SIP_H_CONTENT_ENCODING),
	H("Proxy-Authenticate", SIP_H_PROXY_AUTHENTICATE),
	H("Authentication-Info", SIP_H_AUTHENTICATION_INFO),
	H("P-Asserted-Identity", SIP_H_P_ASSERTED_IDENTITY),
	H("Proxy-Authorization", SIP_H_PROXY_AUTHORIZATION),
	H("P-Preferred-Identity", SIP_H_P_PREFERRED_IDENTITY),
};

#define HDR_TAB_N (sizeof(hdr_tab) / sizeof(hdr_tab[0]))
#define HDR_MAXLEN 20

/* First index in hdr_tab of each length (HDR_TAB_N when none), and one
 * past the last; filled from the sorted table at compile time would need
 * a generator, so it is written out and checked by the unit test. */
static const unsigned char len_lo[HDR_MAXLEN + 2] = {
	[0] = 0, [1] = 0, [2] = 0, [3] = 1, [4] = 2, [5] = 6, [6] = 9,
	[7] = 11, [8] = 17, [9] = 19, [10] = 21, [11] = 22, [12] = 26,
	[13] = 30, [14] = 32, [15] = 33, [16] = 34, [17] = 36, [18] = 36,
	[19] = 37, [20] = 40, [21] = 41,
};

/* RFC 3261 §7.3.3 and the extensions' compact forms, indexed by letter. */
static const unsigned char compact_tab[26] = {
	['b' - 'a'] = SIP_H_REFERRED_BY,      /* RFC 3892 */
	['c' - 'a'] = SIP_H_CONTENT_TYPE,
	['e' - 'a'] = SIP_H_CONTENT_ENCODING,
	['f' - 'a'] = SIP_H_FROM,
	['i' - 'a'] = SIP_H_CALL_ID,
	['k' - 'a'] = SIP_H_SUPPORTED,
	['l' - 'a'] = SIP_H_CONTENT_LENGTH,
	['m' - 'a'] = SIP_H_CONTACT,
	['o' - 'a'] = SIP_H_EVENT,            /* RFC 6665 */
	['r' - 'a'] = SIP_H_REFER_TO,         /* RFC 3515 */
	['s' - 'a'] = SIP_H_SUBJECT,
	['t' - 'a'] = SIP_H_TO,
	['u' - 'a'] = SIP_H_ALLOW_EVENTS,     /* RFC 6665 */
	['v' - 'a'] = SIP_H_VIA,
	['x' - 'a'] = SIP_H_SESSION_EXPIRES,  /* RFC 4028 */
	['y' - 'a'] = SIP_H_IDENTITY,         /* RFC 8224 */
};

static inline unsigned char lc(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* Header names are case-insensitive (RFC 3261 §7.3.1). */
enum sip_hdr_id sip_hdr_lookup(const char *name, size_t len)
{
	if (len == 1) {
		unsigned char c = lc((unsigned char)name[0]);
		if (c >= 'a' && c <= 'z')
			return (enum sip_hdr_id)compact_tab[c - 'a'];
		return SIP_H_OTHER;
	}
	if (len < 2 || len > HDR_MAXLEN)
		return SIP_H_OTHER;
	unsigned char c0 = lc((unsigned char)name[0]);
	for (unsigned i = len_lo[len]; i < len_lo[len + 1]; i++)
		if (lc((unsigned char)hdr_tab[i].name[0]) == c0 && sw_str_ieq_n(hdr_tab[i].name, name, len))
			return (enum sip_hdr_id)hdr_tab[i].id;
	return SIP_H_OTHER;
}

const char *sip_hdr_canonical(enum sip_hdr_id id)
{
	for (size_t i = 0; i < HDR_TAB_N; i++)
		if (hdr_tab[i].id == id)
			return hdr_tab[i].name;
	return NULL;
}

static const char *const method_names[SIP_M__COUNT] = {
	[SIP_M_UNKNOWN] = NULL,
	[SIP_M_INVITE] = "INVITE",
	[SIP_M_ACK] = "ACK",
	[SIP_M_BYE] = "BYE",
	[SIP_M_CANCEL] = "CANCEL",
	[SIP_M_OPTIONS] = "OPTIONS",
	[SIP_M_REGISTER] = "REGISTER",
	[SIP_M_INFO] = "INFO",
	[SIP_M_UPDATE] = "UPDATE",
	[SIP_M_PRACK] = "PRACK",
	[SIP_M_SUBSCRIBE] = "SUBSCRIBE",
	[SIP_M_NOTIFY] = "NOTIFY",
	[SIP_M_REFER] = "REFER",
	[SIP_M_MESSAGE] = "MESSAGE",
	[SIP_M_PUBLISH] = "PUBLISH",
};

/* Methods are case-sensitive (RFC 3261 §7.1); "RE%47IST%45R" is not
 * REGISTER (RFC 4475 §3.1.1.5). */
enum sip_method sip_method_lookup(struct sw_str s)
{
	if (!s.p || s.len < 3 || s.len > 9)
		return SIP_M_UNKNOWN;
	for (int m = 1; m < SIP_M__COUNT; m++) {
		const char *n = method_names[m];
		if (strlen(n) == s.len && memcmp(n, s.p, s.len) == 0)
			return (enum sip_method)m;
	}
	return SIP_M_UNKNOWN;
}

const char *sip_method_str(enum sip_method m)
{
	if ((int)m <= 0 || m >= SIP_M__COUNT)
		return NULL;
	return method_names[m];
}
