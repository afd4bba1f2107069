/* One worker = one thread, one libevent loop, its own sockets (SO_REUSEPORT)
 * and its own transaction table (DESIGN.md "Architecture"). */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/lock.h"
#include "base/log.h"
#include "base/thread.h"
#include "base/net.h"
#include "auth/auth.h"
#include "registrar/registrar.h"
#include "server/pipeline-int.h"
#include "server/server.h"
#include "sip/txn.h"
#include "transport/transport.h"

static void tick_cb(evutil_socket_t fd, short what, void *arg);

static void send_cb(void *ctx, const struct sip_txn_dest *d, const char *buf, size_t len)
{
	worker_send(ctx, d, buf, len);
}

void worker_send(struct sw_worker *w, const struct sip_txn_dest *d, const char *buf, size_t len)
{
	if (sw_tp_send(w->tp, d, buf, len) == 0)
		w->tx_msgs++;
}

static void arm_tick(struct sw_worker *w, uint64_t delay_ms)
{
	/* Timers G/H/I/J are at least T1/2 apart in practice: 20 ms granularity
	 * keeps the wakeups cheap without changing the RFC's timing noticeably.
	 * 0 = the transaction table stopped a long batch: the rest in 1 ms,
	 * with requests served in between. */
	if (delay_ms > 1000)
		delay_ms = 1000;
	if (delay_ms == 0)
		delay_ms = 1;
	else if (delay_ms < 20)
		delay_ms = 20;
	struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000) };
	evtimer_add(w->tick_ev, &tv);
}

/* Replies the transaction table could not keep ([limits] txn_memory
 * spent): their retransmissions are absorbed unanswered, so the client
 * times out. Told at most once a minute, with the count since. */
static void warn_reply_memory(struct sw_worker *w, uint64_t now)
{
	struct sip_txn_stats st;
	sip_txn_get_stats(w->txns, &st);
	if (st.reply_nomem == w->nomem_told || (w->nomem_warn_ms && now - w->nomem_warn_ms < 60000))
		return;
	sw_logf(SW_LOG_WARN, "txn.reply_memory_spent",
		"worker=%u not_kept=%llu budget=%zu hint=\"raise [limits] txn_memory: retransmissions of these requests go unanswered\"",
		w->id, (unsigned long long)(st.reply_nomem - w->nomem_told), st.reply_budget);
	w->nomem_told = st.reply_nomem;
	w->nomem_warn_ms = now;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_worker *w = arg;
	uint64_t now = sw_now_ms();
	guard_tarpit_flush(w, now);
	uint64_t next = sip_txn_tick(w->txns, now, send_cb, w);
	uint64_t pnext = route_proxy_tick(w, now); /* issue 4: client transactions */
	if (pnext < next)
		next = pnext;
	sw_tp_flush(w->tp);
	warn_reply_memory(w, now);
	arm_tick(w, next);
}

int worker_init(struct sw_worker *w, struct sw_server *srv, unsigned id)
{
	const struct sw_config *cfg = srv->cfg;
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->srv = srv;
	w->cfg = cfg;
	w->base = event_base_new();
	if (!w->base)
		return -ENOMEM;
	/* Each worker stamps its id into its connection ids so a conn_id kept
	 * in the shared registrar can never reach another worker's socket. */
	struct sw_tp_conf tpc = cfg->tp;
	tpc.worker_id = id;
	w->tp = sw_tp_new(w->base, &tpc, pipeline_rx, w);
	w->txns = sip_txn_table_new(cfg->max_transactions, &srv->txn_key, &cfg->timers);
	/* [limits] txn_memory bounds the stored replies of all workers */
	if (w->txns && srv->nworkers)
		sip_txn_set_reply_memory(w->txns, (size_t)(cfg->txn_memory / srv->nworkers));
	w->aw = auth_worker_new(srv->auth);
	w->hdrs = calloc(cfg->limits.max_headers, sizeof(*w->hdrs));
	w->extra_cap = registrar_hdrs_cap(&cfg->reg);
	if (w->extra_cap < cfg->limits.max_msg)
		w->extra_cap = cfg->limits.max_msg;
	w->out_cap = w->extra_cap + cfg->limits.max_msg + 4096;
	w->out = malloc(w->out_cap);
	w->extra = malloc(w->extra_cap);
	w->tarpit = calloc(SW_TARPIT_MAX, sizeof(*w->tarpit));
	if (!w->tp || !w->txns || !w->aw || !w->hdrs || !w->out || !w->extra || !w->tarpit)
		return -ENOMEM;
	w->tick_ev = evtimer_new(w->base, tick_cb, w);
	if (!w->tick_ev)
		return -ENOMEM;
	arm_tick(w, 100);
	for (unsigned i = 0; i < cfg->nlisten; i++) {
		const struct sw_listen *l = &cfg->listen[i];
		const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
		if (id == 0 && sw_sockaddr_port(sa) != 0) {
			int rc = sw_tp_addr_free(l->proto, sa, l->alen);
			if (rc < 0) {
				sw_logf(SW_LOG_ERROR, "listen.failed",
					"listen=\"%s\" error=\"%s\" hint=\"already bound by another process (another sipwarden?)\"",
					l->text, strerror(-rc));
				return rc;
			}
		}
		int rc = sw_tp_listen(w->tp, l->proto, sa, l->alen);
		if (rc < 0) {
			sw_logf(SW_LOG_ERROR, "listen.failed", "listen=\"%s\" error=\"%s\"", l->text,
				strerror(-rc));
			return rc;
		}
	}
	size_t q = sw_tp_udp_rcvbuf(w->tp);
	if (id == 0 && q && q < cfg->tp.udp_rcvbuf)
		sw_logf(SW_LOG_WARN, "udp.receive_buffer_capped",
			"requested=%zu granted=%zu hint=\"run as root (SO_RCVBUFFORCE) or raise net.core.rmem_max\"",
			cfg->tp.udp_rcvbuf, q);
	return route_proxy_worker_init(w); /* issue 4: no-op without [upstream]/[trunk]/[proxy] */
}

static void *worker_main(void *arg)
{
	struct sw_worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "sw-worker-%u", w->id);
	sw_thread_name(name);
	unsigned prio = w->cfg->rt_priority;
	if (prio) {
		/* inherited from the main thread when it was root: this only
		 * adds SCHED_RESET_ON_FORK; otherwise RLIMIT_RTPRIO decides */
		int rc = sw_thread_realtime(prio, false);
		if (rc < 0)
			sw_logf(SW_LOG_WARN, "worker.priority",
				"worker=%u realtime_priority=%u error=\"%s\" hint=\"start as root, or give the service user "
				"RLIMIT_RTPRIO (systemd LimitRTPRIO=%u); the worker runs at normal priority\"",
				w->id, prio, strerror(-rc), prio);
		else if (w->id == 0)
			sw_logf(SW_LOG_INFO, "worker.priority", "policy=fifo realtime_priority=%u", prio);
	}
	event_base_dispatch(w->base);
	/* issue 6: how often this worker found a shared shard lock taken */
	sw_logf(SW_LOG_INFO, "worker.locks", "worker=%u acquired=%llu contended=%llu", w->id,
		(unsigned long long)sw_lockstat.acquired, (unsigned long long)sw_lockstat.contended);
	return NULL;
}

int worker_start(struct sw_worker *w)
{
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	return rc ? -rc : 0;
}

void worker_stop(struct sw_worker *w)
{
	/* Thread-safe with evthread_use_pthreads() (called in server_run).
	 * loopexit, not loopbreak: loopbreak only sets a flag that
	 * event_base_loop clears when it starts, so a stop that came before
	 * the worker thread reached its loop was lost and join hung (seen on
	 * a loaded CI machine: SIGTERM right after start-up was ignored).
	 * loopexit queues an event that ends the loop whenever it runs. */
	event_base_loopexit(w->base, NULL);
}

void worker_join(struct sw_worker *w)
{
	pthread_join(w->thread, NULL);
}

void worker_free(struct sw_worker *w)
{
	route_proxy_worker_free(w); /* issue 4: before the event base goes */
	if (w->tick_ev)
		event_free(w->tick_ev);
	if (w->tp)
		sw_tp_free(w->tp);
	if (w->txns)
		sip_txn_table_free(w->txns);
	if (w->aw)
		auth_worker_free(w->aw);
	if (w->base)
		event_base_free(w->base);
	free(w->tarpit);
	free(w->hdrs);
	free(w->out);
	free(w->extra);
}
