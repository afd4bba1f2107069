/* Carrying out the guard's verdicts (issue 5): drops, stateless replies,
 * and the tarpit — a reply held back for a while so a flooding client's
 * transactions stall, at the cost of one small slot here. */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "guard/guard.h"
#include "server/pipeline-int.h"
#include "server/server.h"
#include "sip/build.h"

static void tarpit(struct req *r, unsigned status, const char *extra, uint32_t delay_ms)
{
	struct sw_worker *w = r->w;
	struct sip_out o;
	reply_begin(r, &o, status, NULL);
	sip_out_cstr(&o, extra);
	if (sip_resp_end(&o, SW_STR_NULL, SW_STR_NULL) < 0 || o.len > SW_TARPIT_BYTES)
		return;
	for (unsigned i = 0; i < SW_TARPIT_MAX; i++) {
		struct sw_tarpit *t = &w->tarpit[i];
		if (t->len)
			continue;
		memcpy(t->buf, o.buf, o.len);
		t->len = (uint16_t)o.len;
		t->dest = r->dest;
		t->due_ms = sw_now_ms() + delay_ms;
		w->ntarpit++;
		req_log(r, status);
		return;
	}
	/* every slot busy: the flood already costs us enough; drop */
}

void guard_answer(struct req *r, const struct guard_verdict *gv)
{
	struct sw_worker *w = r->w;
	if (gv->action == GUARD_DROP || r->m->method == SIP_M_ACK)
		return; /* ACK is never answered (RFC 3261 §17.2.3) */
	unsigned status = gv->status ? gv->status : 403;
	/* RFC 3261 §8.2.1: a method we do not know at all is 501, not 405. */
	if (status == 405 && r->m->method == SIP_M_UNKNOWN)
		status = 501;
	char extra[512] = "";
	if (status == 405 || status == 501)
		guard_allow_hdr(w->srv->guard, extra, sizeof(extra));
	else if (status == 503)
		snprintf(extra, sizeof(extra), "Retry-After: %u\r\n",
			 gv->retry_after_s ? gv->retry_after_s : 1);
	if (gv->action == GUARD_TARPIT) {
		tarpit(r, status, extra, gv->delay_ms);
		return;
	}
	reply(r, status, NULL, extra);
}

void guard_tarpit_flush(struct sw_worker *w, uint64_t now_ms)
{
	if (w->ntarpit == 0)
		return;
	for (unsigned i = 0; i < SW_TARPIT_MAX; i++) {
		struct sw_tarpit *t = &w->tarpit[i];
		if (!t->len || t->due_ms > now_ms)
			continue;
		worker_send(w, &t->dest, t->buf, t->len);
		t->len = 0;
		w->ntarpit--;
	}
}
