/* SIP message types. Every sw_str points into the buffer the message was
 * parsed from; nothing here owns memory (STYLE.md §1, §4). */
#ifndef SW_SIP_SIP_T_H
#define SW_SIP_SIP_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "base/str-t.h"

enum sip_method {
	SIP_M_UNKNOWN = 0,
	SIP_M_INVITE,
	SIP_M_ACK,
	SIP_M_BYE,
	SIP_M_CANCEL,
	SIP_M_OPTIONS,
	SIP_M_REGISTER,
	SIP_M_INFO,
	SIP_M_UPDATE,
	SIP_M_PRACK,
	SIP_M_SUBSCRIBE,
	SIP_M_NOTIFY,
	SIP_M_REFER,
	SIP_M_MESSAGE,
	SIP_M_PUBLISH,
	SIP_M__COUNT
};

/* Known header names (full and compact forms map to one id). */
enum sip_hdr_id {
	SIP_H_OTHER = 0,
	SIP_H_VIA,                  /* v */
	SIP_H_FROM,                 /* f */
	SIP_H_TO,                   /* t */
	SIP_H_CALL_ID,              /* i */
	SIP_H_CSEQ,
	SIP_H_CONTACT,              /* m */
	SIP_H_MAX_FORWARDS,
	SIP_H_CONTENT_LENGTH,       /* l */
	SIP_H_CONTENT_TYPE,         /* c */
	SIP_H_CONTENT_ENCODING,     /* e */
	SIP_H_EXPIRES,
	SIP_H_MIN_EXPIRES,
	SIP_H_ROUTE,
	SIP_H_RECORD_ROUTE,
	SIP_H_PATH,
	SIP_H_SUPPORTED,            /* k */
	SIP_H_REQUIRE,
	SIP_H_PROXY_REQUIRE,
	SIP_H_UNSUPPORTED,
	SIP_H_ALLOW,
	SIP_H_ACCEPT,
	SIP_H_AUTHORIZATION,
	SIP_H_PROXY_AUTHORIZATION,
	SIP_H_WWW_AUTHENTICATE,
	SIP_H_PROXY_AUTHENTICATE,
	SIP_H_AUTHENTICATION_INFO,
	SIP_H_USER_AGENT,
	SIP_H_SERVER,
	SIP_H_SUBJECT,              /* s */
	SIP_H_EVENT,                /* o */
	SIP_H_ALLOW_EVENTS,         /* u */
	SIP_H_REFER_TO,             /* r */
	SIP_H_REFERRED_BY,          /* b */
	SIP_H_SESSION_EXPIRES,      /* x */
	SIP_H_IDENTITY,             /* y */
	SIP_H_P_ASSERTED_IDENTITY,
	SIP_H_P_PREFERRED_IDENTITY,
	SIP_H_DATE,
	SIP_H_TIMESTAMP,
	SIP_H_RETRY_AFTER,
	SIP_H_WARNING,
	SIP_H__COUNT
};

/* Limits on attacker-controlled sizes (STYLE.md §8); set from config. */
struct sip_limits {
	size_t max_msg;        /* whole message incl. body; default 65535 */
	unsigned max_headers;  /* header fields; default 100 */
	size_t max_line;       /* one header field incl. folded lines; default 8192 */
	unsigned max_via;      /* via-parms over all Via fields; default 70 (RFC 3261
				 * Max-Forwards; RFC 4475 longreq has 34) */
	unsigned max_contacts; /* contact values in one request; default 16 */
};

/* One header field as it appears. `value` is trimmed of surrounding
 * whitespace; it may still contain folded line breaks (CRLF or LF followed
 * by SP/HT), which every value parser treats as linear whitespace. */
struct sip_hdr {
	enum sip_hdr_id id;
	struct sw_str name;
	struct sw_str value;
};

/* A generic-param: name, and value (value.p == NULL when there is no '='). */
struct sip_param {
	struct sw_str name;
	struct sw_str value;
};

enum sip_uri_scheme { SIP_URI_OTHER = 0, SIP_URI_SIP, SIP_URI_SIPS, SIP_URI_TEL };

struct sip_uri {
	struct sw_str raw;        /* the whole URI */
	enum sip_uri_scheme scheme;
	struct sw_str scheme_str;
	/* SIP/SIPS only; still %-escaped as in the message: */
	struct sw_str user;       /* may contain ';' (RFC 4475 semiuri) */
	struct sw_str password;
	struct sw_str host;       /* IPv6 reference without the brackets */
	bool host_v6;
	uint16_t port;            /* 0 when absent */
	struct sw_str params;     /* raw ";a=b;lr" after hostport (without '?...') */
	struct sw_str headers;    /* raw after '?', escaped */
	/* well-known uri-parameters, cached: */
	struct sw_str transport;
	struct sw_str maddr;
	struct sw_str user_param;
	bool lr;
	/* tel: and other schemes: everything after "scheme:" */
	struct sw_str opaque;
};

struct sip_via {
	struct sw_str raw;        /* this via-parm */
	struct sw_str proto;      /* "SIP/2.0" (name/version, no LWS) */
	struct sw_str transport;  /* "UDP", "TCP", "TLS", "WS", "WSS", other tokens */
	struct sw_str host;       /* IPv6 without brackets */
	bool host_v6;
	uint16_t port;            /* 0 when absent */
	struct sw_str params;     /* raw via-params (";branch=...;rport") */
	struct sw_str branch;     /* .p NULL when absent */
	struct sw_str received;   /* .p NULL when absent; brackets stripped */
	struct sw_str maddr;
	bool rport;               /* rport param present */
	uint16_t rport_value;     /* 0 when present without value */
};

/* name-addr / addr-spec with header params: From, To, Contact, Route,
 * Record-Route, Path, P-Asserted-Identity. */
struct sip_nameaddr {
	struct sw_str raw;
	struct sw_str display;    /* as written, quotes included; empty when none */
	bool bracketed;           /* URI was inside <> */
	bool star;                /* Contact: * */
	struct sip_uri uri;
	struct sw_str params;     /* raw header params after the address */
	/* cached params: */
	struct sw_str tag;        /* .p NULL when absent */
	int64_t expires;          /* -1 absent */
	int q;                    /* 0..1000 (q * 1000), -1 absent */
	struct sw_str instance;   /* +sip.instance value, quotes included; .p NULL absent */
	int64_t reg_id;           /* -1 absent */
};

struct sip_cseq {
	uint32_t num;
	enum sip_method method;
	struct sw_str method_name;
};

/* Why a message was refused, and what to answer (0 = drop silently). */
struct sip_perr {
	size_t off;        /* byte offset of the problem */
	int status;        /* 400, 413, 416, 505, 0 for "drop" */
	const char *why;   /* short static text, safe to log and to put in a reason phrase */
};

enum sip_parse_mode {
	SIP_PARSE_DGRAM,   /* one whole datagram: body = Content-Length (or rest) */
	SIP_PARSE_STREAM,  /* TCP/TLS: Content-Length frames the message */
};

struct sip_msg {
	const char *buf;           /* start of the message */
	size_t len;                /* bytes of this message (trailing datagram octets excluded) */
	bool is_request;

	/* request line */
	enum sip_method method;
	struct sw_str method_name;
	struct sip_uri ruri;       /* parsed; unknown schemes are SIP_URI_OTHER, not an error */
	/* status line */
	unsigned status;
	struct sw_str reason;
	struct sw_str version;     /* "SIP/2.0" */

	/* headers in order of appearance (array owned by the caller) */
	struct sip_hdr *hdrs;
	unsigned nhdrs;
	int16_t first[SIP_H__COUNT];    /* index of the first field with that id, -1 if none */
	uint16_t count[SIP_H__COUNT];   /* number of fields with that id */

	struct sw_str body;

	/* Parsed eagerly: every message needs them for transactions and replies. */
	struct sip_via via1;       /* top via-parm */
	unsigned nvia;             /* via-parms over all Via fields */
	struct sip_cseq cseq;
	struct sw_str call_id;
	struct sip_nameaddr from;
	struct sip_nameaddr to;
	int32_t max_forwards;      /* -1 absent */
	int64_t content_length;    /* -1 absent */
	int64_t expires;           /* Expires header, -1 absent */

	/* Set by sip_parse as it goes, so a reply can be built even when the
	 * message was rejected: true once Via/From/To/Call-ID/CSeq are usable. */
	bool replyable;
};

/* A growing output buffer with a fixed capacity (no reallocation). */
struct sip_out {
	char *buf;
	size_t cap;
	size_t len;
	bool overflow;             /* set when an append did not fit; the result is unusable */
};

#endif
