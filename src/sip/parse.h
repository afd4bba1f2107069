/* The SIP message parser: a pure function over (buf, len) (STYLE.md §2).
 * It never writes into its input and never allocates. */
#ifndef SW_SIP_PARSE_H
#define SW_SIP_PARSE_H

#include "sip/sip-t.h"

void sip_limits_default(struct sip_limits *lim);

/* Parse one message from buf.
 * DGRAM: buf is one datagram; body is Content-Length bytes (the rest of the
 *   datagram when Content-Length is absent, RFC 3261 §18.3); trailing octets
 *   beyond Content-Length are ignored (RFC 4475 dblreq); CL larger than the
 *   remaining bytes is an error (400).
 * STREAM: Content-Length frames the message; absent means 0.
 * Returns bytes consumed (> 0), -EAGAIN when a stream needs more bytes,
 * -EBADMSG when malformed, -EMSGSIZE when a limit is exceeded; on error
 * `err` says where, why and which status to answer (0 = drop), and
 * msg->replyable says whether a response can be built from what was read.
 * Besides syntax it enforces: required headers (Via, From, To, Call-ID,
 * CSeq), single-valued headers appearing once, CSeq method equal to the
 * request method (except ACK/CANCEL rules of RFC 3261 are the same method),
 * SIP/2.0 only (505 otherwise), status codes 100..699. */
ssize_t sip_parse(const char *buf, size_t len, enum sip_parse_mode mode,
		  const struct sip_limits *lim, struct sip_hdr *hdrs, unsigned hdr_cap,
		  struct sip_msg *msg, struct sip_perr *err);

/* Stream framing only: length of the first complete message in buf
 * (headers + Content-Length body), -EAGAIN, -EBADMSG or -EMSGSIZE.
 * Leading CRLFs (keepalives) are NOT skipped here; the transport does. */
ssize_t sip_frame(const char *buf, size_t len, const struct sip_limits *lim,
		  struct sip_perr *err);

/* Parse every known header body that sip_parse leaves for later (Contact,
 * Route, Record-Route, Path, option-tag lists, Date, Expires, …): 0 when
 * all are well formed, else -EBADMSG with err (status 400 for a request,
 * 0 for a response). Call after sip_parse succeeded on a request. */
int sip_validate_all(const struct sip_msg *m, struct sip_perr *err);

enum sip_hdr_id sip_hdr_lookup(const char *name, size_t len);
const char *sip_hdr_canonical(enum sip_hdr_id id);   /* "Via", "Call-ID", … */
enum sip_method sip_method_lookup(struct sw_str s);  /* case-sensitive (RFC 3261 §7.1) */
const char *sip_method_str(enum sip_method m);

/* First field with that id, then the next one of the same id, or NULL. */
const struct sip_hdr *sip_hdr_get(const struct sip_msg *m, enum sip_hdr_id id);
const struct sip_hdr *sip_hdr_next(const struct sip_msg *m, const struct sip_hdr *h);
/* First field with this name (case-insensitive), for headers without an id. */
const struct sip_hdr *sip_hdr_by_name(const struct sip_msg *m, struct sw_str name);

#endif
