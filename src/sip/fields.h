/* Header-body parsers, called lazily (STYLE.md §3). Each takes a slice
 * and fills a struct of slices; 0 on success, -EBADMSG when malformed.
 * Folded line breaks inside a value count as linear whitespace. */
#ifndef SW_SIP_FIELDS_H
#define SW_SIP_FIELDS_H

#include <stdbool.h>
#include "sip/sip-t.h"

/* Split a comma-separated header value, respecting quoted strings and
 * <...>. Returns 1 with the element (trimmed) in *elem, 0 at the end,
 * -EBADMSG on an unbalanced quote or bracket. Empty elements are returned
 * with len 0 (callers decide; Via and Contact reject them). */
int sip_list_next(struct sw_str *rest, struct sw_str *elem);

/* Iterate the elements of every field with one id, in message order. */
struct sip_hdr_iter {
	const struct sip_msg *m;
	enum sip_hdr_id id;
	int idx;              /* current field index, -1 before start */
	struct sw_str rest;   /* unconsumed part of the current field */
};
void sip_hdr_iter_init(struct sip_hdr_iter *it, const struct sip_msg *m, enum sip_hdr_id id);
int sip_hdr_iter_next(struct sip_hdr_iter *it, struct sw_str *elem);

/* ";name=value;name2" parameters. *rest starts at the first ';' (LWS
 * allowed around ';' and '='). 1 = one param, 0 = end, -EBADMSG. */
int sip_params_next(struct sw_str *rest, struct sip_param *p);
/* Case-insensitive lookup: 1 found (value.p NULL when no '='), 0 not found. */
int sip_param_get(struct sw_str params, const char *name, struct sw_str *value);

int sip_uri_parse(struct sw_str s, struct sip_uri *u);
/* A URI's host alone: hostname / IPv4address, or (v6) an IPv6reference's
 * text without the brackets. */
bool sip_host_valid(struct sw_str h, bool v6);
int sip_via_parse(struct sw_str s, struct sip_via *v);          /* one via-parm */
int sip_nameaddr_parse(struct sw_str s, struct sip_nameaddr *na); /* From/To/Route/Path/PAI */
/* Contact value: '*' or name-addr/addr-spec. An addr-spec whose URI holds
 * ',', ';' or '?' must be in <> (RFC 3261 §20.10; RFC 4475 regbadct). */
int sip_contact_parse(struct sw_str s, struct sip_nameaddr *na);
int sip_cseq_parse(struct sw_str s, struct sip_cseq *c);
/* Decimal header values (Max-Forwards, Expires, Content-Length): -ERANGE above max. */
int sip_uint_parse(struct sw_str s, uint64_t max, uint64_t *out);

/* %HH-unescape into out; returns length or -EBADMSG / -ENOSPC.
 * Not recursive: "%2541" becomes "%41" (RFC 4475 esc01). */
ssize_t sip_unescape(struct sw_str in, char *out, size_t cap);
/* RFC 3261 §19.1.4 URI comparison of user@host:port (scheme, unescaped user,
 * case-insensitive host, port); parameters are not compared. */
bool sip_uri_addr_eq(const struct sip_uri *a, const struct sip_uri *b);

#endif
