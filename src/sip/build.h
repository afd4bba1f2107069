/* Building responses into caller-provided buffers. */
#ifndef SW_SIP_BUILD_H
#define SW_SIP_BUILD_H

#include <string.h>
#include <sys/socket.h>
#include "base/siphash.h"
#include "sip/sip-t.h"

void sip_out_init(struct sip_out *o, char *buf, size_t cap);

/* Appends; inline so that the length of a literal is known where it is
 * written (a call per literal ran strlen each time: inline, a REGISTER
 * pair costs 2.8 % fewer instructions, callgrind). */
static inline void sip_out_put(struct sip_out *o, const char *p, size_t n)
{
	if (o->overflow)
		return;
	if (n > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	if (n)
		memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static inline void sip_out_str(struct sip_out *o, struct sw_str s)
{
	sip_out_put(o, s.p, s.len);
}

static inline void sip_out_cstr(struct sip_out *o, const char *s)
{
	sip_out_put(o, s, strlen(s));
}
void sip_out_u64(struct sip_out *o, unsigned long long v);
void sip_out_printf(struct sip_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

const char *sip_reason_phrase(unsigned status);

/* Status line, then every Via in order (the top one gets ;received= and
 * ;rport=PORT per RFC 3261 §18.2.1 / RFC 3581 when src is given), From,
 * To (with ;tag=to_tag added when the request's To has no tag, status > 100
 * and to_tag is non-empty), Call-ID, CSeq. reason NULL = standard phrase. */
int sip_resp_begin(struct sip_out *o, const struct sip_msg *req, const struct sockaddr *src,
		   unsigned status, const char *reason, struct sw_str to_tag);
/* The two parts of sip_resp_begin: the status line, then the fields
 * copied from the request (Via..CSeq as above). A reply is the same bytes
 * whenever the same request (a retransmission) comes from the same source,
 * so a transaction may keep a reply without this part and rebuild it. */
void sip_resp_status(struct sip_out *o, unsigned status, const char *reason);
int sip_resp_copied(struct sip_out *o, const struct sip_msg *req, const struct sockaddr *src,
		    unsigned status, struct sw_str to_tag);
/* For a request whose Via/From/To/Call-ID/CSeq did not all parse
 * (msg->replyable false) but that has a Via: status line and verbatim
 * copies of those fields, so the sender still learns why (RFC 4475 asks
 * 400 for such messages). Goes back to the source address only. */
int sip_resp_verbatim(struct sip_out *o, const struct sip_msg *req, unsigned status,
		      const char *reason);
/* Content-Type (when body non-empty), Content-Length, blank line, body.
 * Returns 0, or -ENOSPC when the buffer overflowed. */
int sip_resp_end(struct sip_out *o, struct sw_str content_type, struct sw_str body);

/* Where a response to req goes over an unreliable transport
 * (RFC 3261 §18.2.2 with RFC 3581): maddr, else source IP with rport
 * (source port) when rport was asked for, else the Via sent-by port or 5060. */
int sip_resp_dest(const struct sip_msg *req, const struct sockaddr *src,
		  struct sockaddr_storage *dst, socklen_t *dlen);

/* A To-tag that is the same for every retransmission of req and unguessable
 * without key: hex of SipHash(Call-ID, From-tag, top branch or CSeq). */
void sip_to_tag(const struct sw_hkey *key, const struct sip_msg *req, char out[17]);

#endif
