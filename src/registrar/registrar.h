#ifndef SW_REGISTRAR_REGISTRAR_H
#define SW_REGISTRAR_REGISTRAR_H

#include <sys/types.h>

#include "base/str-t.h"
#include "registrar/registrar-t.h"
#include "sip/sip-t.h"
#include "store/bindings-t.h"

void reg_conf_default(struct reg_conf *c);

/* Open the registrar with its binding journal in data_dir (store/bindings.h:
 * bindings.snap + bindings-W-G.log; a bindings.db of older versions is
 * imported once) and load the bindings that have not expired. store_conf
 * NULL: defaults (conf->fsync is applied either way). report (may be
 * NULL) hears of damaged files and failed compactions. */
struct sw_registrar *registrar_open(const struct reg_conf *conf, const char *data_dir,
				    const struct bstore_conf *store_conf, bstore_report_fn report,
				    void *report_ctx, int *err);
void registrar_close(struct sw_registrar *r);

/* Process a REGISTER whose Request-URI domain is served here (the caller
 * checked the domain, Require and authentication). Implements §10.3 steps
 * 5-8: AOR from To (must be sip/sips, else 400), Contact '*' with Expires 0,
 * add / refresh / remove bindings with Call-ID + CSeq ordering, expiry from
 * contact param > Expires header > default, 423 + Min-Expires, max bindings
 * per AOR, q, Path (RFC 3327), +sip.instance / reg-id (RFC 5626), and the
 * source address/transport/connection of `src`. The 200's extra headers
 * list every current binding with its remaining expires.
 * A change is appended to worker's journal segment before the table sees
 * it (worker: one thread per id); when that write fails the table is
 * unchanged and the result is 500 "journal-write-failed" with res->err. */
int registrar_register(struct sw_registrar *r, const struct sip_msg *m,
		       const struct sip_txn_dest *src, uint16_t worker, int64_t now_s,
		       struct reg_result *res);

/* Current bindings of an AOR ("sip:user@domain"), up to cap; returns count. */
unsigned registrar_lookup(struct sw_registrar *r, struct sw_str aor, int64_t now_s,
			  struct reg_binding *out, unsigned cap);

/* Remove expired bindings from memory (the journal drops them at the next
 * load or compaction); returns how many. */
unsigned registrar_purge(struct sw_registrar *r, int64_t now_s);
unsigned registrar_count(struct sw_registrar *r);

/* Canonical AOR of a sip/sips URI (RFC 3261 §10.3 step 5): scheme as
 * written (sip: or sips:), user %-unescaped then re-escaped where the
 * grammar needs it (upper-case hex, so %00 stays "%00"), lower-case host,
 * port when present; password and parameters dropped. NUL-terminated.
 * Returns the length, -EINVAL for other schemes, -ENAMETOOLONG when it
 * does not fit, -EBADMSG for a bad escape or empty host. */
ssize_t registrar_aor(const struct sip_uri *u, char *out, size_t cap);

/* Room res->hdrs needs so that a 200 listing max_bindings_per_aor bindings
 * always fits. The caller points res->hdrs at a buffer of hdrs_cap bytes
 * (hdrs NULL: no header text is produced). */
size_t registrar_hdrs_cap(const struct reg_conf *c);

/* The binding store's counters (start-up log). */
void registrar_store_stats(struct sw_registrar *r, struct bstore_stats *out);
/* Tests: compact the journal now; make worker's next journal write fail
 * with err after `partial` bytes. */
int registrar_compact(struct sw_registrar *r, int64_t now_s);
void registrar_inject_write_error(struct sw_registrar *r, uint16_t worker, int err, size_t partial);

#endif
