/* RFC 3263 §4 next-hop resolution with c-ares on a libevent loop (see
 * resolve.h). One lookup is a small sequential job:
 *
 *   NAPTR host            (no port, no ;transport=; §4.1)
 *     → SRV of each usable NAPTR replacement (SIP+D2U, SIP+D2T), or, when
 *       there is no NAPTR, _sip._udp.host and _sip._tcp.host   (§4.1, §4.2)
 *     → A/AAAA of each SRV target in RFC 2782 order, or of the host itself
 *       (port given, or no SRV: port 5060)
 *
 * Queries run one after another: a next hop's records are few and the
 * result is cached by the caller for its TTL. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <arpa/nameser.h>

#include "proxy/resolve.h"

#define PXR_MAX_SOCKS 16
#define PXR_MAX_SRVQ 2
#define PXR_NAME_MAX (PROXY_HOST_MAX + 16)

struct pxr_sock {
	int fd;                     /* -1 = free */
	struct event *ev;           /* allocated once, event_assign'ed per socket */
};

struct pxr {
	ares_channel ch;
	struct event_base *base;
	struct event *tmr;
	struct pxr_sock socks[PXR_MAX_SOCKS];
	pxr_done_fn done;
	void *ctx;
	unsigned jobs;
	bool closing;
};

struct pxr_host {
	char name[PXR_NAME_MAX];
	uint16_t port;
	uint8_t proto;
};

struct pxr_job {
	struct pxr *r;
	uint32_t cookie;
	char host[PROXY_HOST_MAX];
	uint8_t proto;
	bool explicit_proto;
	uint16_t port;
	struct pxr_host srvq[PXR_MAX_SRVQ];    /* SRV names still to ask */
	unsigned nsrv, srv_i;
	struct pxr_host hq[PXR_MAX_TARGETS];   /* hosts whose A/AAAA to ask */
	unsigned nh, h_i;
	struct pxr_result res;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc;

static void lib_init(void)
{
	lib_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

/* --- event loop glue ----------------------------------------------------- */

static void rearm_timer(struct pxr *r)
{
	struct timeval tv, *t = ares_timeout(r->ch, NULL, &tv);
	if (t)
		evtimer_add(r->tmr, t);
	else
		evtimer_del(r->tmr);
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pxr *r = arg;
	ares_process_fd(r->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm_timer(r);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pxr *r = arg;
	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(r);
}

/* c-ares opens, changes or closes a socket. The event of a slot is never
 * freed here (we may be inside its callback, STYLE.md §6): deleted, and
 * assigned again for the next socket. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct pxr *r = data;
	struct pxr_sock *s = NULL, *free_slot = NULL;
	for (unsigned i = 0; i < PXR_MAX_SOCKS; i++) {
		if (r->socks[i].fd == fd)
			s = &r->socks[i];
		else if (!free_slot && r->socks[i].fd < 0)
			free_slot = &r->socks[i];
	}
	if (s)
		event_del(s->ev);
	if (!readable && !writable) {
		if (s)
			s->fd = -1;
		return;
	}
	if (!s) {
		s = free_slot;
		if (!s)
			return; /* more than PXR_MAX_SOCKS: c-ares' own timeout ends it */
		s->fd = fd;
	}
	short ev = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (event_assign(s->ev, r->base, fd, ev, sock_cb, r) == 0)
		event_add(s->ev, NULL);
}

/* --- helpers ----------------------------------------------------------------- */

/* Smallest TTL of the answer section of a raw reply; UINT32_MAX if none. */
static uint32_t answer_ttl(const unsigned char *abuf, int alen)
{
	if (alen < 12)
		return UINT32_MAX;
	unsigned qd = (unsigned)abuf[4] << 8 | abuf[5];
	unsigned an = (unsigned)abuf[6] << 8 | abuf[7];
	const unsigned char *p = abuf + 12, *end = abuf + alen;
	uint32_t ttl = UINT32_MAX;
	for (unsigned i = 0; i < qd + an; i++) {
		char *name;
		long enc;
		if (ares_expand_name(p, abuf, alen, &name, &enc) != ARES_SUCCESS)
			return ttl;
		ares_free_string(name);
		p += enc;
		if (i < qd) {
			p += 4;   /* type, class */
			continue;
		}
		if (end - p < 10)
			return ttl;
		uint32_t t = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
		unsigned rdlen = (unsigned)p[8] << 8 | p[9];
		if (t < ttl)
			ttl = t;
		p += 10 + rdlen;
		if (p > end)
			return ttl;
	}
	return ttl;
}

static void job_ttl(struct pxr_job *j, uint32_t ttl)
{
	if (ttl < j->res.ttl_s)
		j->res.ttl_s = ttl;
}

static int status_err(int status)
{
	switch (status) {
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		return -ENOENT;
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	case ARES_ENOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static uint32_t rnd_bound(uint32_t bound)
{
	return bound ? arc4random_uniform(bound) : 0;
}

void pxr_srv_order(const struct pxr_srv *srv, unsigned n, unsigned *idx,
		   uint32_t (*rnd)(uint32_t bound))
{
	bool used[64] = { false };
	if (n > 64)
		n = 64;
	for (unsigned k = 0; k < n; k++) {
		/* the lowest priority among the unused */
		unsigned prio = UINT32_MAX;
		for (unsigned i = 0; i < n; i++)
			if (!used[i] && srv[i].priority < prio)
				prio = srv[i].priority;
		/* RFC 2782: weight 0 first in the running sums, then pick the
		 * first whose running sum reaches rnd(sum + 1) */
		uint32_t sum = 0;
		for (unsigned pass = 0; pass < 2; pass++)
			for (unsigned i = 0; i < n; i++)
				if (!used[i] && srv[i].priority == prio && (srv[i].weight == 0) == (pass == 0))
					sum += srv[i].weight;
		uint32_t pick = rnd(sum + 1), run = 0;
		unsigned chosen = n;
		for (unsigned pass = 0; pass < 2 && chosen == n; pass++)
			for (unsigned i = 0; i < n && chosen == n; i++) {
				if (used[i] || srv[i].priority != prio || (srv[i].weight == 0) != (pass == 0))
					continue;
				run += srv[i].weight;
				if (run >= pick)
					chosen = i;
			}
		if (chosen == n) /* cannot happen; keep going in list order */
			for (unsigned i = 0; i < n && chosen == n; i++)
				if (!used[i] && srv[i].priority == prio)
					chosen = i;
		used[chosen] = true;
		idx[k] = chosen;
	}
}

/* --- the job ------------------------------------------------------------------ */

static void job_step(struct pxr_job *j);

static void job_end(struct pxr_job *j)
{
	struct pxr *r = j->r;
	if (j->res.n == 0 && j->res.err == 0)
		j->res.err = -ENOENT;
	if (j->res.n)
		j->res.err = 0;
	if (j->res.ttl_s == UINT32_MAX)
		j->res.ttl_s = 0;
	r->jobs--;
	if (!r->closing)
		r->done(r->ctx, j->cookie, &j->res);
	free(j);
}

static void add_srvq(struct pxr_job *j, const char *name, uint8_t proto)
{
	for (unsigned i = 0; i < j->nsrv; i++)
		if (j->srvq[i].proto == proto)
			return; /* one SRV name per transport */
	if (j->nsrv == PXR_MAX_SRVQ)
		return;
	struct pxr_host *h = &j->srvq[j->nsrv];
	if (snprintf(h->name, sizeof(h->name), "%s", name) >= (int)sizeof(h->name))
		return;
	h->proto = proto;
	j->nsrv++;
}

static void add_host(struct pxr_job *j, const char *name, uint16_t port, uint8_t proto)
{
	if (j->nh == PXR_MAX_TARGETS)
		return;
	struct pxr_host *h = &j->hq[j->nh];
	if (snprintf(h->name, sizeof(h->name), "%s", name) >= (int)sizeof(h->name))
		return;
	h->port = port;
	h->proto = proto;
	j->nh++;
}

static void naptr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct pxr_job *j = arg;
	if (status == ARES_EDESTRUCTION || j->r->closing) {
		job_end(j);
		return;
	}
	struct ares_naptr_reply *nr = NULL;
	if (status == ARES_SUCCESS && ares_parse_naptr_reply(abuf, alen, &nr) == ARES_SUCCESS) {
		/* usable records by (order, preference), lowest first (RFC 3403 §4.1) */
		for (;;) {
			struct ares_naptr_reply *best = NULL;
			for (struct ares_naptr_reply *n = nr; n; n = n->next) {
				if (!n->replacement || !n->replacement[0] || n->flags == NULL ||
				    strcasecmp((const char *)n->flags, "s") != 0)
					continue;
				const char *sv = (const char *)n->service;
				if (strcasecmp(sv, "SIP+D2U") != 0 && strcasecmp(sv, "SIP+D2T") != 0)
					continue;
				if (!best || n->order < best->order ||
				    (n->order == best->order && n->preference < best->preference))
					best = n;
			}
			if (!best)
				break;
			add_srvq(j, best->replacement,
				 strcasecmp((const char *)best->service, "SIP+D2T") == 0 ? 1 : 0);
			best->flags[0] = '\0'; /* taken */
		}
		ares_free_data(nr);
		if (j->nsrv)
			job_ttl(j, answer_ttl(abuf, alen));
	}
	if (j->nsrv == 0) {
		/* §4.1: no NAPTR: SRV for each transport we support */
		char name[PXR_NAME_MAX];
		snprintf(name, sizeof(name), "_sip._udp.%s", j->host);
		add_srvq(j, name, 0);
		snprintf(name, sizeof(name), "_sip._tcp.%s", j->host);
		add_srvq(j, name, 1);
	}
	job_step(j);
}

static void srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct pxr_job *j = arg;
	if (status == ARES_EDESTRUCTION || j->r->closing) {
		job_end(j);
		return;
	}
	uint8_t proto = j->srvq[j->srv_i].proto;
	j->srv_i++;
	struct ares_srv_reply *sr = NULL;
	if (status == ARES_SUCCESS && ares_parse_srv_reply(abuf, alen, &sr) == ARES_SUCCESS) {
		struct pxr_srv s[PXR_MAX_TARGETS];
		const char *names[PXR_MAX_TARGETS];
		unsigned n = 0, idx[PXR_MAX_TARGETS];
		for (struct ares_srv_reply *x = sr; x && n < PXR_MAX_TARGETS; x = x->next) {
			/* RFC 2782: target "." = the service is not offered here */
			if (!x->host || !x->host[0] || strcmp(x->host, ".") == 0)
				continue;
			s[n] = (struct pxr_srv){ x->priority, x->weight, x->port };
			names[n++] = x->host;
		}
		pxr_srv_order(s, n, idx, rnd_bound);
		for (unsigned i = 0; i < n; i++)
			add_host(j, names[idx[i]], s[idx[i]].port, proto);
		if (n)
			job_ttl(j, answer_ttl(abuf, alen));
		ares_free_data(sr);
	} else if (status != ARES_ENODATA && status != ARES_ENOTFOUND) {
		j->res.err = status_err(status);
	}
	job_step(j);
}

static void addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct pxr_job *j = arg;
	if (status == ARES_EDESTRUCTION || j->r->closing) {
		if (ai)
			ares_freeaddrinfo(ai);
		job_end(j);
		return;
	}
	const struct pxr_host *h = &j->hq[j->h_i];
	j->h_i++;
	if (status == ARES_SUCCESS && ai) {
		/* IPv4 first, then IPv6: the order the listeners are likeliest to match */
		for (int fam = 0; fam < 2; fam++)
			for (struct ares_addrinfo_node *n = ai->nodes; n; n = n->ai_next) {
				if (j->res.n == PXR_MAX_TARGETS)
					break;
				if (n->ai_family != (fam == 0 ? AF_INET : AF_INET6))
					continue;
				struct pxr_target *t = &j->res.t[j->res.n];
				memset(t, 0, sizeof(*t));
				if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in)) {
					memcpy(&t->addr, n->ai_addr, sizeof(struct sockaddr_in));
					((struct sockaddr_in *)&t->addr)->sin_port = htons(h->port);
					t->alen = sizeof(struct sockaddr_in);
				} else if (n->ai_family == AF_INET6 &&
					   n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
					memcpy(&t->addr, n->ai_addr, sizeof(struct sockaddr_in6));
					((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(h->port);
					t->alen = sizeof(struct sockaddr_in6);
				} else {
					continue;
				}
				t->proto = h->proto;
				j->res.n++;
				if (n->ai_ttl >= 0)
					job_ttl(j, (uint32_t)n->ai_ttl);
			}
	} else if (status != ARES_ENODATA && status != ARES_ENOTFOUND) {
		j->res.err = status_err(status);
	}
	if (ai)
		ares_freeaddrinfo(ai);
	job_step(j);
}

/* The next query of j, or its end. */
static void job_step(struct pxr_job *j)
{
	struct pxr *r = j->r;
	if (j->srv_i < j->nsrv) {
		ares_query(r->ch, j->srvq[j->srv_i].name, ns_c_in, ns_t_srv, srv_cb, j);
		return;
	}
	if (j->nsrv && j->nh == 0 && j->h_i == 0) {
		/* §4.2: no SRV records: A/AAAA of the host, port 5060 */
		add_host(j, j->host, 5060, j->explicit_proto ? j->proto : 0);
	}
	if (j->h_i < j->nh && j->res.n < PXR_MAX_TARGETS) {
		struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT };
		ares_getaddrinfo(r->ch, j->hq[j->h_i].name, NULL, &hints, addr_cb, j);
		return;
	}
	job_end(j);
}

/* --- public -------------------------------------------------------------------- */

int pxr_resolve(struct pxr *r, const struct proxy_hop *hop, uint32_t cookie)
{
	if (!r || !hop || !hop->host[0])
		return -EINVAL;
	struct pxr_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->r = r;
	j->cookie = cookie;
	snprintf(j->host, sizeof(j->host), "%s", hop->host);
	j->proto = hop->proto;
	j->explicit_proto = hop->explicit_proto;
	j->port = hop->port;
	j->res.ttl_s = UINT32_MAX;
	r->jobs++;
	if (hop->port) {
		/* §4.2: a port: A/AAAA only; transport as given, else UDP */
		add_host(j, j->host, hop->port, hop->explicit_proto ? hop->proto : 0);
		job_step(j);
	} else if (hop->explicit_proto) {
		/* §4.2: transport known, no port: SRV of that transport */
		char name[PXR_NAME_MAX];
		snprintf(name, sizeof(name), "_sip._%s.%s", hop->proto == 1 ? "tcp" : "udp", j->host);
		add_srvq(j, name, hop->proto);
		job_step(j);
	} else {
		ares_query(r->ch, j->host, ns_c_in, ns_t_naptr, naptr_cb, j);
	}
	/* j may be gone already (answered from /etc/hosts, or a bad name) */
	rearm_timer(r);
	return 0;
}

unsigned pxr_pending(const struct pxr *r)
{
	return r ? r->jobs : 0;
}

struct pxr *pxr_new(struct event_base *base, const char *servers, pxr_done_fn done, void *ctx,
		    int *err)
{
	pthread_once(&lib_once, lib_init);
	if (lib_rc != ARES_SUCCESS) {
		*err = -EIO;
		return NULL;
	}
	struct pxr *r = calloc(1, sizeof(*r));
	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	r->base = base;
	r->done = done;
	r->ctx = ctx;
	for (unsigned i = 0; i < PXR_MAX_SOCKS; i++) {
		r->socks[i].fd = -1;
		r->socks[i].ev = malloc(event_get_struct_event_size());
		if (!r->socks[i].ev)
			goto nomem;
	}
	r->tmr = evtimer_new(base, timer_cb, r);
	if (!r->tmr)
		goto nomem;
	struct ares_options o = {
		.sock_state_cb = sock_state,
		.sock_state_cb_data = r,
		.timeout = 1000,      /* ms per try: a dead server must not hold calls long */
		.tries = 2,
	};
	int rc = ares_init_options(&r->ch, &o,
				   ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		r->ch = NULL;
		*err = rc == ARES_ENOMEM ? -ENOMEM : -EIO;
		pxr_free(r);
		return NULL;
	}
	if (servers && servers[0] && ares_set_servers_ports_csv(r->ch, servers) != ARES_SUCCESS) {
		*err = -EINVAL;
		pxr_free(r);
		return NULL;
	}
	*err = 0;
	return r;
nomem:
	*err = -ENOMEM;
	pxr_free(r);
	return NULL;
}

void pxr_free(struct pxr *r)
{
	if (!r)
		return;
	r->closing = true;
	if (r->ch)
		ares_destroy(r->ch); /* pending jobs end (ARES_EDESTRUCTION), done not called */
	for (unsigned i = 0; i < PXR_MAX_SOCKS; i++) {
		if (r->socks[i].ev) {
			if (r->socks[i].fd >= 0)
				event_del(r->socks[i].ev);
			free(r->socks[i].ev);
		}
	}
	if (r->tmr)
		event_free(r->tmr);
	free(r);
}
