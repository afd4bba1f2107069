#ifndef SW_SERVER_SERVER_H
#define SW_SERVER_SERVER_H

#include "server/server-t.h"
#include "transport/transport-t.h"

/* server.c */
int server_run(const struct sw_config *cfg);

/* worker.c */
int worker_init(struct sw_worker *w, struct sw_server *srv, unsigned id);
int worker_start(struct sw_worker *w);
void worker_stop(struct sw_worker *w);
void worker_join(struct sw_worker *w);
void worker_free(struct sw_worker *w);
/* Send and count; dest from the transaction or the request. */
void worker_send(struct sw_worker *w, const struct sip_txn_dest *d, const char *buf, size_t len);

/* pipeline.c: every received datagram / framed message. */
void pipeline_rx(void *ctx, const struct sw_rx *rx);

#endif
