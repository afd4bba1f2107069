#ifndef SW_REGISTRAR_REGISTRAR_H
#define SW_REGISTRAR_REGISTRAR_H

#include "base/str-t.h"
#include "registrar/registrar-t.h"
#include "sip/sip-t.h"

void reg_conf_default(struct reg_conf *c);

/* Open the registrar with its SQLite (WAL) binding store at db_path and load
 * the bindings that have not expired. */
struct sw_registrar *registrar_open(const struct reg_conf *conf, const char *db_path, int *err);
void registrar_close(struct sw_registrar *r);

/* Process a REGISTER whose Request-URI domain is served here (the caller
 * checked the domain, Require and authentication). Implements §10.3 steps
 * 5-8: AOR from To (must be sip/sips, else 400), Contact '*' with Expires 0,
 * add / refresh / remove bindings with Call-ID + CSeq ordering, expiry from
 * contact param > Expires header > default, 423 + Min-Expires, max bindings
 * per AOR, q, Path (RFC 3327), +sip.instance / reg-id (RFC 5626), and the
 * source address/transport/connection of `src`. The 200's extra headers
 * list every current binding with its remaining expires.
 * When something changed, res->ticket is set and done(ctx, ticket, rc) is
 * called from the commit thread after the change is durable. */
int registrar_register(struct sw_registrar *r, const struct sip_msg *m,
		       const struct sip_txn_dest *src, uint16_t worker, int64_t now_s,
		       reg_commit_fn done, void *ctx, struct reg_result *res);

/* Current bindings of an AOR ("sip:user@domain"), up to cap; returns count. */
unsigned registrar_lookup(struct sw_registrar *r, struct sw_str aor, int64_t now_s,
			  struct reg_binding *out, unsigned cap);

/* Remove expired bindings from memory and disk; returns how many. */
unsigned registrar_purge(struct sw_registrar *r, int64_t now_s);
unsigned registrar_count(struct sw_registrar *r);

#endif
