/* Requests the server answers itself. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/net.h"
#include "base/str.h"
#include "config/config.h"
#include "registrar/registrar.h"
#include "server/pipeline-int.h"
#include "server/server.h"
#include "sip/build.h"
#include "sip/fields.h"
#include "sip/parse.h"
#include "sip/txn.h"
#include "transport/transport.h"

void route_options(struct req *r)
{
	r->why = "ok";
	reply(r, 200, NULL, ALLOW_HDR SUPPORTED_HDR "Accept: application/sdp\r\n");
}

void route_cancel(struct req *r)
{
	/* RFC 3261 §9.2: we answer every INVITE at once with a final response,
	 * so a matching CANCEL has nothing left to cancel: 200; else 481. */
	struct sip_txn *inv = sip_txn_find_cancelled(r->w->txns, r->m);
	r->why = inv ? "ok" : "no-such-transaction";
	reply(r, inv ? 200 : 481, NULL, NULL);
}
