/* Start-up, the worker threads, signals and housekeeping. */
#include <errno.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/thread.h"
#include "auth/auth.h"
#include "guard/guard.h"
#include "registrar/registrar.h"
#include "server/privs.h"
#include "server/server.h"

static unsigned worker_count(const struct sw_config *cfg)
{
	if (cfg->workers)
		return cfg->workers;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : (n > 64 ? 64 : (unsigned)n);
}

static int make_data_dir(const char *dir)
{
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

/* The binding store's problems: a damaged journal or snapshot (file and
 * offset; the good records were kept), a failed compaction. */
static void store_report(void *ctx, const char *file, uint64_t off, const char *what, int err)
{
	const char *dir = ctx;
	sw_logf(err && err != -EBADMSG ? SW_LOG_ERROR : SW_LOG_WARN, "registrar.store",
		"data_dir=\"%s\" file=\"%s\" offset=%llu problem=\"%s\" error=\"%s\"", dir, file,
		(unsigned long long)off, what, err ? strerror(-err) : "none");
}

/* One line per ban / unban (issue 5); the guard library does not log. */
static void log_guard_events(struct sw_guard *g)
{
	struct guard_event ev[64];
	unsigned n;
	while ((n = guard_events(g, ev, 64)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			struct sw_logline l;
			bool ban = ev[i].type == GUARD_EV_BAN;
			sw_log_begin(&l, ban ? SW_LOG_WARN : SW_LOG_INFO, ban ? "guard.ban" : "guard.unban");
			sw_log_cstr(&l, ev[i].user ? "user" : "ip", ev[i].target);
			sw_log_cstr(&l, "reason", guard_reason_str(ev[i].reason));
			if (ban) {
				sw_log_int(&l, "seconds", ev[i].duration_s);
				sw_log_int(&l, "offences", ev[i].offences);
			}
			sw_log_end(&l);
		}
		if (n < 64)
			break;
	}
}

/* Housekeeping: ban expiry and its log lines every second, the
 * expired-binding purge every 30 s, on a thread of its own at SCHED_IDLE
 * (the purge takes shard locks in turn: a worker that finds one taken gets
 * the core back the moment it is released). The main thread stays at
 * normal priority because it handles SIGTERM and runs the stop sequence:
 * at SCHED_IDLE that took 9-11 s on cores busy with other work, and an
 * unprivileged thread cannot leave SCHED_IDLE again (bench/RESULTS.md,
 * seventh session). */
struct house {
	struct sw_server *srv;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
};

static void *house_main(void *arg)
{
	struct house *h = arg;
	int rc = sw_thread_background("sw-house");
	if (rc < 0)
		sw_logf(SW_LOG_WARN, "server.priority",
			"reason=\"cannot lower the housekeeping thread's priority\" error=\"%s\"", strerror(-rc));
	uint64_t last_purge = sw_now_ms();
	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		sw_cond_wait_ms(&h->cv, &h->mu, 1000);
		if (h->stop)
			break;
		pthread_mutex_unlock(&h->mu);
		guard_tick(h->srv->guard, guard_now_ms());
		log_guard_events(h->srv->guard);
		uint64_t now = sw_now_ms();
		if (now - last_purge >= 30000) {
			unsigned n = registrar_purge(h->srv->reg, sw_wall_s());
			if (n)
				sw_logf(SW_LOG_INFO, "registrar.purged", "expired=%u", n);
			last_purge = now;
		}
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int server_run(const struct sw_config *cfg)
{
	struct sw_server srv = { .cfg = cfg };
	int rc = 0, err = 0;
	sigset_t sigs;

	sw_log_init((enum sw_log_level)cfg->log_level);
	if (evthread_use_pthreads() < 0) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"libevent threads unavailable\"");
		return 1;
	}
	if ((rc = make_data_dir(cfg->data_dir)) < 0) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"cannot create data_dir\" data_dir=\"%s\" error=\"%s\"",
			cfg->data_dir, strerror(-rc));
		return 1;
	}
	if (sw_hkey_random(&srv.tag_key) < 0 || sw_hkey_random(&srv.txn_key) < 0) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"no randomness\"");
		return 1;
	}

	/* Signals are taken synchronously by this thread; workers never see them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	srv.guard = guard_open(&cfg->guard, cfg->data_dir, &err);
	if (!srv.guard) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"cannot open the guard (bans.db or geo_db)\" error=\"%s\"",
			strerror(err < 0 ? -err : EIO));
		return 1;
	}
	char why[256] = "";
	srv.auth = auth_open(cfg, cfg->data_dir, &err, why, sizeof(why));
	if (!srv.auth) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"cannot open the digest engine\" detail=\"%s\"",
			why[0] ? why : strerror(err < 0 ? -err : EIO));
		guard_close(srv.guard);
		return 1;
	}
	uint64_t t0 = sw_now_ms();
	srv.reg = registrar_open(&cfg->reg, cfg->data_dir, NULL, store_report, (void *)cfg->data_dir, &err);
	if (!srv.reg) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"cannot open binding store\" data_dir=\"%s\" error=\"%s\"",
			cfg->data_dir, strerror(err < 0 ? -err : EIO));
		auth_close(srv.auth);
		guard_close(srv.guard);
		return 1;
	}
	struct bstore_stats bs;
	registrar_store_stats(srv.reg, &bs);
	sw_logf(SW_LOG_INFO, "registrar.loaded",
		"bindings=%u data_dir=\"%s\" snapshot_bytes=%llu journal_bytes=%llu segments=%u records=%llu imported=%llu damaged=%llu ms=%llu fsync=%s",
		registrar_count(srv.reg), cfg->data_dir, (unsigned long long)bs.snap_bytes,
		(unsigned long long)bs.journal_bytes, bs.segments, (unsigned long long)bs.records,
		(unsigned long long)bs.imported, (unsigned long long)bs.damaged,
		(unsigned long long)(sw_now_ms() - t0), cfg->reg.fsync ? "yes" : "no");

	srv.nworkers = worker_count(cfg);
	srv.workers = calloc(srv.nworkers, sizeof(*srv.workers));
	if (!srv.workers) {
		registrar_close(srv.reg);
		auth_close(srv.auth);
		guard_close(srv.guard);
		return 1;
	}
	unsigned started = 0, inited = 0;
	struct house house = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	pthread_t house_thread;
	bool house_started = false;
	for (; inited < srv.nworkers; inited++) {
		if ((rc = worker_init(&srv.workers[inited], &srv, inited)) < 0) {
			inited++;
			goto stop;
		}
	}
	/* [server] realtime_priority: this thread takes SCHED_FIFO while it is
	 * still root, so the workers it starts after giving up root inherit
	 * it (an unprivileged process may keep that policy but not take it,
	 * unless RLIMIT_RTPRIO allows; raising that limit needs
	 * CAP_SYS_RESOURCE, which containers often withhold). It goes back to
	 * normal priority before it starts any other thread. */
	bool rt_main = cfg->rt_priority && sw_thread_realtime(cfg->rt_priority, true) == 0;
	/* Sockets are bound and databases open: give up root before any
	 * worker reads a packet (issue 7). */
	if ((rc = privs_drop(cfg->run_user, cfg->run_group, cfg->data_dir)) < 0) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"cannot drop privileges\" user=\"%s\" error=\"%s\"",
			cfg->run_user, strerror(-rc));
		goto stop;
	}
	if (cfg->run_user[0])
		sw_logf(SW_LOG_INFO, "server.privileges", "user=\"%s\" uid=%ld gid=%ld", cfg->run_user,
			(long)getuid(), (long)getgid());
	for (; started < srv.nworkers; started++)
		if ((rc = worker_start(&srv.workers[started])) < 0)
			goto stop;
	if (rt_main)
		(void)sw_thread_normal();
	/* Credential changes are picked up on a thread of normal priority
	 * (created before this thread lowers its own, which it would inherit),
	 * never on a worker's request path. */
	if ((rc = auth_start_reloader(srv.auth)) < 0) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"cannot start the credentials reloader\" error=\"%s\"",
			strerror(-rc));
		goto stop;
	}

	for (unsigned i = 0; i < cfg->nlisten; i++)
		sw_logf(SW_LOG_INFO, "server.listening", "listen=\"%s\"", cfg->listen[i].text);
	sw_logf(SW_LOG_INFO, "server.started", "workers=%u realms=%u pid=%ld", srv.nworkers, cfg->nrealms,
		(long)getpid());
	/* Housekeeping on its own thread, after every thread of normal
	 * priority exists (a thread inherits its creator's policy). */
	house.srv = &srv;
	if ((rc = -pthread_create(&house_thread, NULL, house_main, &house)) < 0) {
		sw_logf(SW_LOG_ERROR, "server.failed", "reason=\"cannot start the housekeeping thread\" error=\"%s\"",
			strerror(-rc));
		goto stop;
	}
	house_started = true;

	for (;;) {
		int sig = sigwaitinfo(&sigs, NULL);
		if (sig == SIGINT || sig == SIGTERM) {
			sw_logf(SW_LOG_INFO, "server.stopping", "signal=%d", sig);
			break;
		}
	}
	rc = 0;
stop:
	atomic_store(&srv.stopping, true);
	if (house_started) {
		pthread_mutex_lock(&house.mu);
		house.stop = true;
		pthread_cond_signal(&house.cv);
		pthread_mutex_unlock(&house.mu);
		pthread_join(house_thread, NULL);
	}
	for (unsigned i = 0; i < started; i++)
		worker_stop(&srv.workers[i]);
	for (unsigned i = 0; i < started; i++)
		worker_join(&srv.workers[i]);
	/* Workers are gone: nobody appends to the journal any more. */
	registrar_close(srv.reg);
	for (unsigned i = 0; i < inited; i++)
		worker_free(&srv.workers[i]);
	free(srv.workers);
	auth_close(srv.auth);
	log_guard_events(srv.guard);
	guard_close(srv.guard);
	if (rc < 0)
		sw_logf(SW_LOG_ERROR, "server.failed", "error=\"%s\"", strerror(-rc));
	else
		sw_logf(SW_LOG_INFO, "server.stopped", "%s", "");
	return rc < 0 ? 1 : 0;
}
