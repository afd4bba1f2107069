/* The proxy route (issue 4; RFC 3261 §16, transaction-stateful): which
 * requests are forwarded where, and how responses come back.
 *
 *   users        → 407 challenge (phase_authenticate) → upstream (PBX)
 *   upstream     → the AOR's bindings (parallel fork, through the received
 *                  address/connection) | a trunk (domain / number prefix)
 *   trunks       → by IP (ipacl), digest, both, or either → upstream
 *   in-dialog    → authenticated by our signed Record-Route (fwd.h)
 *
 * Per worker: a pool of proxy contexts (one per server transaction being
 * proxied, up to max_branches client transactions each), the client
 * transaction table (proxy/ctxn.h) and a hand-off queue + eventfd: a
 * response whose branch names another worker, or a send on a TCP
 * connection another worker owns, is copied to that worker's queue. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "auth/auth.h"
#include "auth/ipacl.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/net.h"
#include "base/str.h"
#include "config/config.h"
#include "proxy/ctxn.h"
#include "proxy/fwd.h"
#include "proxy/resolve.h"
#include "registrar/registrar.h"
#include "server/pipeline-int.h"
#include "server/server.h"
#include "sip/build.h"
#include "sip/fields.h"
#include "sip/parse.h"
#include "sip/txn.h"
#include "transport/transport.h"

#define PX_MAX_BRANCHES 32
#define PX_HANDOFF_SLOTS 1024
#define PX_HEALTH_OWNER 0xffffff00u   /* ptx owner of an OPTIONS health check */
#define PX_NO_OWNER 0xfffffffeu
/* Next hops named by a host name (RFC 3263), cached per worker: the
 * upstreams, then the trunks. */
#define PX_HOPS (PROXY_MAX_UPSTREAMS + PROXY_MAX_TRUNKS)
#define PX_DNS_RETRY_MS 5000          /* a failed lookup is asked again after this */
#define PX_DNS_MAX_TTL_S 86400

/* Shared by all workers (created by worker 0, read-only but for the
 * upstream health, which is atomic). */
struct sw_proxy {
	struct proxy_keys keys;
	struct sw_ipacl *acl;                 /* trunk networks → trunk index */
	_Atomic uint64_t down_until[PROXY_MAX_UPSTREAMS];
};

struct px_branch {
	uint64_t h;             /* ptx handle; 0 = none */
	unsigned status;        /* final status, 0 while pending */
	int8_t upstream;        /* upstream index, -1 for others */
	int8_t target;          /* its resolved address (RFC 3263), -1 for an IP literal */
	bool provisional;
	bool cancel_pending;    /* CANCEL once a provisional arrives (§9.1) */
	bool done;
};

struct pctx {
	bool used;
	uint32_t gen;
	uint32_t next_free;
	struct sip_txn *stx;          /* server transaction; NULL once answered */
	struct sip_txn_dest dest;     /* where responses go */
	struct sip_txn_dest src;      /* where the request came from */
	uint64_t created;
	uint64_t stx_deadline;        /* answer (or let go) before the server txn may end */
	enum sip_method method;
	bool answered;
	bool cancelled;
	uint32_t tried;               /* upstreams tried (failover) */
	uint16_t ttried[PROXY_MAX_UPSTREAMS]; /* their resolved addresses tried */
	uint8_t dns_wait;             /* waiting for the lookup of hop dns_wait - 1; 0 none */
	unsigned nbr;
	struct px_branch br[PX_MAX_BRANCHES];
	unsigned best_status;         /* best final so far, 0 none (§16.7 step 6) */
	char *best;                   /* its text, our Via removed */
	size_t best_len, best_cap;
	char *req;                    /* the request as received */
	size_t req_len, req_cap;
	char pai[REG_AOR_MAX + 2];    /* asserted identity to add, "" none */
	int realm;                    /* whose Proxy-Authorization to remove, -1 none */
	unsigned skip_routes;         /* a preloaded Route naming us (§16.4) */
	bool strip_identity;
};

struct px_slot {
	uint8_t kind;                 /* 0 rx (a response), 1 tx (send on dest) */
	struct sip_txn_dest dest;
	size_t len, cap;
	char *buf;
};

/* RFC 3263 answer for one named hop, kept for its TTL; a failed refresh
 * keeps serving the last good answer. */
struct px_dns {
	struct pxr_result res;
	uint64_t expires;             /* ms; ask again after this */
	uint64_t down_until[PXR_MAX_TARGETS]; /* an address that failed (503, timeout, connect) */
	bool have;                    /* res holds an answer (maybe with n = 0) */
	bool pending;
};

struct sw_pxw {
	struct ptx_table *ptx;
	struct pxr *res;              /* c-ares on this worker's loop */
	struct px_dns dns[PX_HOPS];
	struct pctx *ctx;
	unsigned cap;
	uint32_t free_head;
	unsigned live;
	uint64_t counter;
	uint64_t next_health;
	struct sip_hdr *hdrs;         /* scratch for re-parsing a stored message */
	char *out;                    /* scratch for building what we send */
	size_t out_cap;
	/* hand-off queue: other workers produce, this one consumes */
	pthread_mutex_t lock;
	int efd;
	struct event *ev;
	struct px_slot q[PX_HANDOFF_SLOTS];
	unsigned qhead, qlen;
	char *hbuf;                   /* one handed-off message, unlocked */
	size_t hcap;
};

static const uint32_t NIL32 = UINT32_MAX;

/* --- shared state ------------------------------------------------------ */

static int load_secret(const struct sw_config *cfg, uint8_t key[PROXY_KEY_LEN])
{
	char path[SW_PATH_MAX + 16];
	if (cfg->proxy.secret_file[0])
		snprintf(path, sizeof(path), "%s", cfg->proxy.secret_file);
	else
		snprintf(path, sizeof(path), "%s/proxy.key", cfg->data_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, key, PROXY_KEY_LEN);
		close(fd);
		return n == PROXY_KEY_LEN ? 0 : -EINVAL;
	}
	if (errno != ENOENT || cfg->proxy.secret_file[0])
		return -errno;
	/* first start: a fresh key, kept so Record-Routes survive restarts */
	if (RAND_bytes(key, PROXY_KEY_LEN) != 1)
		return -EIO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, key, PROXY_KEY_LEN);
	close(fd);
	return n == PROXY_KEY_LEN ? 0 : -EIO;
}

static struct sw_proxy *proxy_open(const struct sw_config *cfg, int *err)
{
	struct sw_proxy *p = calloc(1, sizeof(*p));
	uint8_t secret[PROXY_KEY_LEN];
	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	if ((*err = load_secret(cfg, secret)) < 0)
		goto fail;
	proxy_keys_derive(&p->keys, secret);
	OPENSSL_cleanse(secret, sizeof(secret));
	p->acl = sw_ipacl_new();
	if (!p->acl) {
		*err = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < cfg->proxy.ncidrs; i++) {
		int rc = sw_ipacl_add(p->acl, &cfg->proxy.cidrs[i].c, cfg->proxy.cidrs[i].trunk);
		if (rc < 0 && rc != -EEXIST) {
			*err = rc;
			goto fail;
		}
	}
	return p;
fail:
	if (p->acl)
		sw_ipacl_free(p->acl);
	free(p);
	return NULL;
}

/* --- sending and hand-off ------------------------------------------------ */

static void handoff(struct sw_worker *to, uint8_t kind, const struct sip_txn_dest *d,
		    const char *buf, size_t len)
{
	struct sw_pxw *q = to->px;
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	if (q->qlen < PX_HANDOFF_SLOTS) {
		struct px_slot *s = &q->q[(q->qhead + q->qlen) % PX_HANDOFF_SLOTS];
		if (s->cap < len) {
			char *nb = realloc(s->buf, len);
			if (nb) {
				s->buf = nb;
				s->cap = len;
			}
		}
		if (s->cap >= len) {
			memcpy(s->buf, buf, len);
			s->len = len;
			s->kind = kind;
			s->dest = *d;
			q->qlen++;
		}
	}
	/* else dropped: UDP retransmissions (or the peer) recover */
	pthread_mutex_unlock(&q->lock);
	uint64_t one = 1;
	ssize_t n = write(q->efd, &one, sizeof(one));
	(void)n;
}

/* Send on our transport, or hand the bytes to the worker that owns the
 * TCP connection (transport.h: -EXDEV). */
static int px_send(struct sw_worker *w, const struct sip_txn_dest *d, const char *buf, size_t len)
{
	int rc = sw_tp_send(w->tp, d, buf, len);
	if (rc == -EXDEV) {
		unsigned owner = sw_tp_conn_worker(d->conn_id);
		if (owner < w->srv->nworkers && owner != w->id) {
			handoff(&w->srv->workers[owner], 1, d, buf, len);
			return 0;
		}
	}
	if (rc == 0)
		w->tx_msgs++;
	return rc;
}

static void ptx_send_cb(void *ctx, const struct sip_txn_dest *d, const char *buf, size_t len)
{
	px_send(ctx, d, buf, len);
}

/* --- our addresses ----------------------------------------------------- */

/* The listener a message to dest leaves from: the first one of its
 * transport and family (transport.h picks the same UDP socket). */
static bool local_for(struct sw_worker *w, const struct sip_txn_dest *d, char *host, size_t hcap,
		      uint16_t *port)
{
	enum sw_proto want = (enum sw_proto)d->proto;
	int fam = d->addr.ss_family;
	for (unsigned i = 0;; i++) {
		enum sw_proto p;
		socklen_t alen;
		const struct sockaddr *sa = sw_tp_listener(w->tp, i, &p, &alen);
		if (!sa)
			break;
		if (p != want || sa->sa_family != fam)
			continue;
		if (!sw_sockaddr_host(sa, host, hcap))
			return false;
		*port = sw_sockaddr_port(sa);
		return true;
	}
	return false;
}

static bool is_our_address(struct sw_worker *w, const struct sip_uri *u)
{
	char host[64];
	for (unsigned i = 0;; i++) {
		enum sw_proto p;
		socklen_t alen;
		const struct sockaddr *sa = sw_tp_listener(w->tp, i, &p, &alen);
		if (!sa)
			return false;
		size_t n = sw_sockaddr_host(sa, host, sizeof(host));
		uint16_t port = u->port ? u->port : 5060;
		if (n && sw_str_ieq(u->host, sw_str_mk(host, n)) && port == sw_sockaddr_port(sa))
			return true;
	}
}

static const char *proto_via(uint8_t proto)
{
	return proto == SW_PROTO_TCP ? "TCP" : "UDP";
}

/* --- where things go ------------------------------------------------------ */

static bool sockaddr_ip_eq(const struct sockaddr *a, const struct sockaddr *b)
{
	struct sw_cidr c = { 0 };
	if (b->sa_family == AF_INET) {
		c.family = AF_INET;
		c.bits = 32;
		memcpy(c.addr, &((const struct sockaddr_in *)(const void *)b)->sin_addr, 4);
	} else if (b->sa_family == AF_INET6) {
		c.family = AF_INET6;
		c.bits = 128;
		memcpy(c.addr, ((const struct sockaddr_in6 *)(const void *)b)->sin6_addr.s6_addr, 16);
	} else {
		return false;
	}
	return sw_cidr_match(&c, a);
}

static bool addr_is(const struct sockaddr *src, const struct sockaddr *ua, bool udp)
{
	return sockaddr_ip_eq(src, ua) && (!udp || sw_sockaddr_port(src) == sw_sockaddr_port(ua));
}

/* A request from an upstream: its address (an IP literal, or one its name
 * resolved to on this worker), and over UDP its port too (a PBX sends
 * from its SIP port; anyone else on that host is not it). */
static int upstream_of(struct sw_worker *w, const struct sockaddr *src, bool udp)
{
	const struct sw_config *cfg = w->cfg;
	for (unsigned i = 0; i < cfg->proxy.nup; i++) {
		const struct proxy_hop *h = &cfg->proxy.up[i].hop;
		if (h->literal) {
			if (addr_is(src, (const struct sockaddr *)&h->addr, udp))
				return (int)i;
			continue;
		}
		const struct px_dns *dn = &w->px->dns[i];
		for (unsigned k = 0; dn->have && k < dn->res.n; k++)
			if (addr_is(src, (const struct sockaddr *)&dn->res.t[k].addr, udp))
				return (int)i;
	}
	return -1;
}

static void fill_dest(struct sip_txn_dest *d, const struct sockaddr_storage *a, socklen_t alen,
		      uint8_t proto)
{
	memset(d, 0, sizeof(*d));
	d->addr = *a;
	d->alen = alen;
	d->proto = proto;
	d->reliable = proto != SW_PROTO_UDP;
	d->fd = -1;   /* TCP: conn_id 0 = this worker's connection to addr (transport.h) */
}

static const struct proxy_hop *hop_of(const struct sw_config *cfg, unsigned idx)
{
	return idx < PROXY_MAX_UPSTREAMS ? &cfg->proxy.up[idx].hop
					 : &cfg->proxy.trunks[idx - PROXY_MAX_UPSTREAMS].hop;
}

/* Ask again for hop idx (RFC 3263) unless a lookup is under way. The
 * answer may come back inside this call (dns_done). */
static void dns_refresh(struct sw_worker *w, unsigned idx)
{
	struct px_dns *dn = &w->px->dns[idx];
	if (dn->pending || !w->px->res)
		return;
	dn->pending = true;
	if (pxr_resolve(w->px->res, hop_of(w->cfg, idx), idx) < 0) {
		dn->pending = false;
		dn->expires = sw_now_ms() + PX_DNS_RETRY_MS;
	}
}

/* The addresses of hop idx: NULL while the first lookup runs (started
 * here); a stale answer is used while a new one is asked for. */
static const struct px_dns *dns_get(struct sw_worker *w, unsigned idx)
{
	struct px_dns *dn = &w->px->dns[idx];
	if (!dn->have || sw_now_ms() >= dn->expires)
		dns_refresh(w, idx);
	return dn->have ? dn : NULL;
}

/* The first address of hop idx not yet tried (mask) and not down, else
 * the first not tried; -1 when none. */
static int dns_pick(const struct px_dns *dn, uint16_t mask)
{
	uint64_t now = sw_now_ms();
	int back = -1;
	for (unsigned k = 0; k < dn->res.n; k++) {
		if (mask & (1u << k))
			continue;
		if (dn->down_until[k] <= now)
			return (int)k;
		if (back < 0)
			back = (int)k;
	}
	return back;
}

/* A literal hop, or the first usable address of a named one (trunks,
 * health checks). -EAGAIN while its first lookup runs. */
static int hop_dest(struct sw_worker *w, unsigned idx, struct sip_txn_dest *d)
{
	const struct proxy_hop *h = hop_of(w->cfg, idx);
	if (h->literal) {
		fill_dest(d, &h->addr, h->alen, h->proto);
		return 0;
	}
	const struct px_dns *dn = dns_get(w, idx);
	if (!dn)
		return -EAGAIN;
	int k = dns_pick(dn, 0);
	if (k < 0)
		return -EHOSTUNREACH;
	fill_dest(d, &dn->res.t[k].addr, dn->res.t[k].alen, dn->res.t[k].proto);
	return 0;
}

/* A URI's host as the next hop: IP literals only (no DNS on the request
 * path); transport from ;transport=. */
static int uri_dest(const struct sip_uri *u, struct sip_txn_dest *d)
{
	char host[64];
	memset(d, 0, sizeof(*d));
	if (sw_str_copy(u->host, host, sizeof(host)) < 0)
		return -EHOSTUNREACH;
	uint16_t port = u->port ? u->port : 5060;
	struct sockaddr_in *in = (void *)&d->addr;
	struct sockaddr_in6 *in6 = (void *)&d->addr;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		d->alen = sizeof(*in);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		d->alen = sizeof(*in6);
	} else {
		return -EHOSTUNREACH;
	}
	d->proto = u->transport.p && sw_str_ieq_c(u->transport, "tcp") ? SW_PROTO_TCP : SW_PROTO_UDP;
	d->reliable = d->proto != SW_PROTO_UDP;
	d->fd = -1;
	return 0;
}

static int pick_upstream(struct sw_worker *w, uint32_t tried)
{
	const struct sw_config *cfg = w->cfg;
	uint64_t now = sw_now_ms(), best_at = UINT64_MAX;
	int best = -1;
	for (unsigned i = 0; i < cfg->proxy.nup; i++) {
		if (tried & (1u << i))
			continue;
		uint64_t du = atomic_load(&w->srv->proxy->down_until[i]);
		if (du <= now)
			return (int)i;
		if (du < best_at) {
			best_at = du;
			best = (int)i;
		}
	}
	/* every untried one is down: try the one back soonest */
	return best;
}

static void upstream_down(struct sw_worker *w, int i)
{
	if (i < 0)
		return;
	uint64_t until = sw_now_ms() + (uint64_t)w->cfg->proxy.down_s * 1000;
	if (atomic_exchange(&w->srv->proxy->down_until[i], until) <= sw_now_ms())
		sw_logf(SW_LOG_WARN, "proxy.upstream_down", "upstream=\"%s\" for_s=%u",
			w->cfg->proxy.up[i].name, w->cfg->proxy.down_s);
}

static void upstream_up(struct sw_worker *w, int i)
{
	if (atomic_exchange(&w->srv->proxy->down_until[i], 0) > sw_now_ms())
		sw_logf(SW_LOG_INFO, "proxy.upstream_up", "upstream=\"%s\"", w->cfg->proxy.up[i].name);
}

/* Upstream u failed (503, timeout, connection refused). A named one: only
 * that address is skipped for down_time (this worker's cache), the
 * upstream itself once all its addresses are down. */
static void hop_failed(struct sw_worker *w, int u, int k)
{
	if (u < 0)
		return;
	struct px_dns *dn = &w->px->dns[u];
	if (k < 0 || (unsigned)k >= dn->res.n) {
		upstream_down(w, u);
		return;
	}
	uint64_t now = sw_now_ms();
	dn->down_until[k] = now + (uint64_t)w->cfg->proxy.down_s * 1000;
	char a[64];
	sw_sockaddr_fmt((const struct sockaddr *)&dn->res.t[k].addr, a, sizeof(a));
	sw_logf(SW_LOG_WARN, "proxy.target_down", "upstream=\"%s\" addr=\"%s\" proto=%s for_s=%u",
		w->cfg->proxy.up[u].name, a, sw_proto_name((enum sw_proto)dn->res.t[k].proto),
		w->cfg->proxy.down_s);
	for (unsigned i = 0; i < dn->res.n; i++)
		if (dn->down_until[i] <= now)
			return;
	upstream_down(w, u);
}

static void hop_ok(struct sw_worker *w, int u, int k)
{
	if (u < 0)
		return;
	if (k >= 0 && (unsigned)k < w->px->dns[u].res.n)
		w->px->dns[u].down_until[k] = 0;
	upstream_up(w, u);
}

/* --- contexts -------------------------------------------------------------- */

static struct pctx *pctx_new(struct sw_pxw *p)
{
	if (p->free_head == NIL32)
		return NULL;
	struct pctx *c = &p->ctx[p->free_head];
	p->free_head = c->next_free;
	uint32_t gen = c->gen;
	char *best = c->best, *req = c->req;
	size_t bc = c->best_cap, rc = c->req_cap;
	memset(c, 0, sizeof(*c));
	c->gen = gen + 1;
	c->best = best;
	c->best_cap = bc;
	c->req = req;
	c->req_cap = rc;
	c->used = true;
	c->realm = -1;
	p->live++;
	return c;
}

static void pctx_free(struct sw_pxw *p, struct pctx *c)
{
	if (!c->used)
		return;
	c->used = false;
	c->gen++;
	c->next_free = p->free_head;
	p->free_head = (uint32_t)(c - p->ctx);
	p->live--;
}

static bool keep(char **buf, size_t *cap, size_t *len, const char *src, size_t n)
{
	if (*cap < n) {
		char *nb = realloc(*buf, n);
		if (!nb)
			return false;
		*buf = nb;
		*cap = n;
	}
	memcpy(*buf, src, n);
	*len = n;
	return true;
}

/* Re-parse the stored request of c into m (scratch headers of p). */
static int pctx_request(struct sw_worker *w, struct pctx *c, struct sip_msg *m)
{
	struct sip_perr err;
	ssize_t n = sip_parse(c->req, c->req_len, SIP_PARSE_DGRAM, &w->cfg->limits, w->px->hdrs,
			      w->cfg->limits.max_headers, m, &err);
	return n < 0 ? (int)n : 0;
}

/* A response we make ourselves (408, 480, 487, 500, 503) to c's request. */
static void pctx_reply(struct sw_worker *w, struct pctx *c, unsigned status, const char *why)
{
	struct sip_msg m;
	if (pctx_request(w, c, &m) < 0)
		return;
	struct sw_rx rx = { .buf = c->req, .len = c->req_len, .from = c->src };
	struct req r = { .w = w, .rx = &rx, .m = &m, .txn = c->stx, .dest = c->dest, .why = why };
	if (status >= 200 && c->stx == NULL)
		r.txn = NULL;
	reply(&r, status, NULL, status == 503 ? "Retry-After: 5\r\n" : NULL);
	if (status >= 200) {
		c->stx = NULL;
		c->answered = true;
	}
}

/* Relay a response (our Via already removed) to the previous hop. */
static void pctx_relay(struct sw_worker *w, struct pctx *c, const char *buf, size_t len,
		       unsigned status)
{
	if (c->stx)
		sip_txn_respond(w->txns, c->stx, buf, len, status, sw_now_ms());
	px_send(w, &c->dest, buf, len);
	if (status >= 200) {
		c->stx = NULL;
		c->answered = true;
	}
}

/* --- building and sending one branch ---------------------------------- */

struct px_target {
	struct sip_txn_dest dest;
	char ruri[REG_CONTACT_MAX];   /* "" = keep the Request-URI */
	struct proxy_flow flow;       /* for our Record-Route */
	int upstream;
	int target;                   /* resolved address of the upstream, -1 literal */
	unsigned skip_routes;
	bool record_route;
};

static bool dialog_creating(enum sip_method m)
{
	/* RFC 3261 §12.1, RFC 6665 §4.1, RFC 3515 */
	return m == SIP_M_INVITE || m == SIP_M_SUBSCRIBE || m == SIP_M_REFER;
}

/* Build and send one branch of c for request m; 0 or -errno. */
static int px_branch(struct sw_worker *w, struct pctx *c, const struct sip_msg *m,
		     const struct px_target *tg)
{
	struct sw_pxw *p = w->px;
	const struct sw_config *cfg = w->cfg;
	if (c->nbr >= PX_MAX_BRANCHES || c->nbr >= cfg->proxy.max_branches + PROXY_MAX_UPSTREAMS)
		return -ENOSPC;
	char host[64], via[256], br[PROXY_BRANCH_MAX], rr[2 * PROXY_RR_MAX + 2];
	uint16_t port;
	if (!local_for(w, &tg->dest, host, sizeof(host), &port))
		return -EAFNOSUPPORT;
	size_t bl = proxy_branch(&w->srv->proxy->keys, w->id, ++p->counter,
				 proxy_loop_hash(&w->srv->proxy->keys, m), br);
	bool v6 = strchr(host, ':') != NULL;
	snprintf(via, sizeof(via), "SIP/2.0/%s %s%s%s:%u;branch=%.*s;rport", proto_via(tg->dest.proto),
		 v6 ? "[" : "", host, v6 ? "]" : "", port, (int)bl, br);
	struct fwd_opts op = {
		.via = sw_str_c(via),
		.src = (const struct sockaddr *)&c->src.addr,
		.skip_routes = tg->skip_routes ? tg->skip_routes : c->skip_routes,
		.strip_identity = c->strip_identity,
	};
	if (tg->ruri[0])
		op.ruri = sw_str_c(tg->ruri);
	if (c->pai[0])
		op.pai = sw_str_c(c->pai);
	if (c->realm >= 0)
		op.realm = sw_str_c(cfg->realms[c->realm].name);
	if (tg->record_route && cfg->proxy.record_route && dialog_creating(m->method)) {
		size_t n = proxy_rr_build(&w->srv->proxy->keys, sw_str_c(host), port,
					  tg->dest.proto == SW_PROTO_TCP ? "tcp" : "udp", m->call_id,
					  m->from.tag, &tg->flow, rr);
		/* RFC 5658 §4: the two sides on different transports (a UDP
		 * phone, a TCP PBX) or families: a second value naming the
		 * interface the request came in on. Our value on top faces the
		 * next hop (which uses the set in order), the one below faces
		 * the caller (which uses it reversed). */
		char host2[64];
		uint16_t port2;
		if (n && (c->src.proto != tg->dest.proto ||
			  c->src.addr.ss_family != tg->dest.addr.ss_family) &&
		    local_for(w, &c->src, host2, sizeof(host2), &port2)) {
			size_t n2 = proxy_rr_build(&w->srv->proxy->keys, sw_str_c(host2), port2,
						   c->src.proto == SW_PROTO_TCP ? "tcp" : "udp",
						   m->call_id, m->from.tag, &tg->flow, rr + n + 2);
			if (n2) {
				rr[n] = ',';
				rr[n + 1] = ' ';
				n += 2 + n2;
			}
		}
		if (n)
			op.rr = sw_str_mk(rr, n);
	}
	struct sip_out o;
	sip_out_init(&o, p->out, p->out_cap);
	if (fwd_build(&o, m, &op) < 0)
		return -EMSGSIZE;
	struct ptx *x;
	int rc = ptx_start(p->ptx, o.buf, o.len, m->method, sw_str_mk(br, bl), &tg->dest,
			   (uint32_t)(c - p->ctx), c->gen, sw_now_ms(), &x);
	if (rc < 0)
		return rc;
	struct px_branch *b = &c->br[c->nbr++];
	memset(b, 0, sizeof(*b));
	b->h = ptx_handle(x);
	b->upstream = (int8_t)tg->upstream;
	b->target = (int8_t)(tg->upstream >= 0 ? tg->target : -1);
	uint64_t now = sw_now_ms();
	if (m->method == SIP_M_INVITE)
		ptx_set_deadline(p->ptx, x, now + (uint64_t)cfg->proxy.timer_c_s * 1000); /* Timer C */
	else
		ptx_set_deadline(p->ptx, x, c->stx_deadline);
	rc = px_send(w, &tg->dest, o.buf, o.len);
	if (rc < 0 && rc != -EXDEV) {
		/* refused at once (no connection, no route): this branch never
		 * existed; an upstream's caller tries the next address */
		ptx_abandon(p->ptx, x);
		c->nbr--;
		if (tg->upstream >= 0)
			hop_failed(w, tg->upstream, tg->target);
		return rc;
	}
	return 0;
}

static void pctx_maybe_finish(struct sw_worker *w, struct pctx *c);

/* The next upstream address for c in failover order: upstreams in file
 * order (skipping those down), a named one's addresses in RFC 3263 order.
 * -EAGAIN: c waits for the name's first lookup (dns_wait); -ENOENT: none
 * left. */
static int target_upstream(struct sw_worker *w, struct pctx *c, struct px_target *tg)
{
	for (;;) {
		int u = pick_upstream(w, c->tried);
		if (u < 0)
			return -ENOENT;
		memset(tg, 0, sizeof(*tg));
		tg->upstream = u;
		tg->target = -1;
		const struct proxy_hop *h = &w->cfg->proxy.up[u].hop;
		if (h->literal) {
			c->tried |= 1u << u;
			fill_dest(&tg->dest, &h->addr, h->alen, h->proto);
			return 0;
		}
		const struct px_dns *dn = dns_get(w, (unsigned)u);
		if (!dn) {
			c->dns_wait = (uint8_t)(u + 1);
			return -EAGAIN;
		}
		int k = dns_pick(dn, c->ttried[u]);
		if (k < 0) {
			c->tried |= 1u << u; /* every address of it tried (or none) */
			continue;
		}
		c->ttried[u] |= (uint16_t)(1u << k);
		tg->target = k;
		fill_dest(&tg->dest, &dn->res.t[k].addr, dn->res.t[k].alen, dn->res.t[k].proto);
		return 0;
	}
}

/* Send c's request m to the next upstream address that takes it. true
 * when a branch went out or c waits for a lookup. */
static bool upstream_branch(struct sw_worker *w, struct pctx *c, const struct sip_msg *m)
{
	for (unsigned tries = 0; tries < PROXY_MAX_UPSTREAMS * PXR_MAX_TARGETS; tries++) {
		struct px_target tg;
		int rc = target_upstream(w, c, &tg);
		if (rc == -EAGAIN)
			return true;
		if (rc < 0)
			return false;
		tg.record_route = true;
		if (c->pai[0]) {
			/* from a user: in-dialog requests towards them follow this flow */
			tg.flow = (struct proxy_flow){ .set = true, .proto = c->src.proto,
						       .conn_id = c->src.conn_id, .addr = c->src.addr,
						       .alen = c->src.alen };
		}
		if (px_branch(w, c, m, &tg) == 0)
			return true;
	}
	return false;
}

/* Failover (issue 4): the next upstream address for c, after a 503,
 * timeout or failed connection. */
static bool failover(struct sw_worker *w, struct pctx *c)
{
	if (c->cancelled || c->answered)
		return false;
	struct sip_msg m;
	if (pctx_request(w, c, &m) < 0)
		return false;
	return upstream_branch(w, c, &m);
}

/* --- responses --------------------------------------------------------------- */

static void cancel_branch(struct sw_worker *w, struct pctx *c, struct px_branch *b)
{
	struct sw_pxw *p = w->px;
	struct ptx *x = b->h ? ptx_lookup(p->ptx, b->h) : NULL;
	if (!x || b->done || ptx_method(x) != SIP_M_INVITE)
		return;
	if (!b->provisional) {
		b->cancel_pending = true; /* §9.1: not before a provisional */
		return;
	}
	struct sip_out o;
	sip_out_init(&o, p->out, p->out_cap);
	if (ptx_build_cancel(p->ptx, x, &o) < 0)
		return;
	struct ptx *cx;
	if (ptx_start(p->ptx, o.buf, o.len, SIP_M_CANCEL, ptx_branch(x), ptx_dest(x), PX_NO_OWNER, 0,
		      sw_now_ms(), &cx) == 0)
		px_send(w, ptx_dest(x), o.buf, o.len);
	/* §9.1: a final should follow within 64*T1; else give up on it */
	uint64_t wait = 64ull * w->cfg->timers.t1_ms;
	if (wait > 32000)
		wait = 32000;
	ptx_set_deadline(p->ptx, x, sw_now_ms() + wait);
	b->cancel_pending = false;
}

static void cancel_others(struct sw_worker *w, struct pctx *c, unsigned except)
{
	for (unsigned i = 0; i < c->nbr; i++)
		if (i != except)
			cancel_branch(w, c, &c->br[i]);
}

/* All branches final: send the best (§16.7 step 6), or 408/487. */
static void pctx_maybe_finish(struct sw_worker *w, struct pctx *c)
{
	if (c->answered)
		return;
	for (unsigned i = 0; i < c->nbr; i++)
		if (!c->br[i].done)
			return;
	if (c->best_status == 503) {
		/* §16.7 step 6: the next hop's 503 is not ours to pass on */
		pctx_reply(w, c, 500, "next-hop-unavailable");
		return;
	}
	if (c->best_status) {
		pctx_relay(w, c, c->best, c->best_len, c->best_status);
		return;
	}
	unsigned st[PX_MAX_BRANCHES];
	for (unsigned i = 0; i < c->nbr; i++)
		st[i] = c->br[i].status ? c->br[i].status : 408;
	int b = proxy_best(st, c->nbr);
	unsigned s = b < 0 ? 408 : proxy_best_status(st[b]);
	if (c->cancelled)
		s = 487;
	if (c->method != SIP_M_INVITE && s == 408) {
		/* RFC 4320 §4.2: no 408 to a non-INVITE; let it end quietly */
		c->stx = NULL;
		c->answered = true;
		return;
	}
	pctx_reply(w, c, s, s == 408 ? "timeout" : s == 487 ? "cancelled" : "no-branch-succeeded");
}

/* A final (non-2xx) from branch i: keep it if it is the best so far. */
static void branch_final(struct sw_worker *w, struct pctx *c, unsigned i, const struct sip_msg *resp)
{
	struct px_branch *b = &c->br[i];
	unsigned s = resp->status;
	b->done = true;
	b->status = s;
	if (b->upstream >= 0 && s == 503) {
		hop_failed(w, b->upstream, b->target);
		if (failover(w, c))
			return;
	}
	unsigned pair[2] = { c->best_status, s };
	if (!c->best_status || proxy_best(pair, 2) == 1) {
		struct sip_out o;
		sip_out_init(&o, w->px->out, w->px->out_cap);
		if (fwd_response(&o, resp) == 0 && keep(&c->best, &c->best_cap, &c->best_len, o.buf, o.len))
			c->best_status = s;
	}
	if (s >= 600)
		cancel_others(w, c, i); /* §16.7 step 10 */
	pctx_maybe_finish(w, c);
}

static struct pctx *owner_of(struct sw_worker *w, const struct ptx *x, unsigned *bi)
{
	uint32_t owner, gen;
	ptx_owner(x, &owner, &gen);
	if (owner >= w->px->cap)
		return NULL;
	struct pctx *c = &w->px->ctx[owner];
	if (!c->used || c->gen != gen)
		return NULL;
	uint64_t h = ptx_handle(x);
	for (unsigned i = 0; i < c->nbr; i++)
		if (c->br[i].h == h) {
			*bi = i;
			return c;
		}
	return NULL;
}

static void on_response(struct sw_worker *w, const struct sip_msg *resp)
{
	struct sw_pxw *p = w->px;
	struct ptx *x;
	enum ptx_rx v = ptx_receive(p->ptx, resp, sw_now_ms(), ptx_send_cb, w, &x);
	if (v != PTX_RX_DELIVER)
		return;
	uint32_t owner, gen;
	ptx_owner(x, &owner, &gen);
	if (owner >= PX_HEALTH_OWNER && owner < PX_HEALTH_OWNER + PROXY_MAX_UPSTREAMS) {
		if (resp->status >= 200) {
			if (resp->status == 503)
				upstream_down(w, (int)(owner - PX_HEALTH_OWNER));
			else
				upstream_up(w, (int)(owner - PX_HEALTH_OWNER));
		}
		return;
	}
	unsigned bi;
	struct pctx *c = owner_of(w, x, &bi);
	if (!c)
		return;
	struct px_branch *b = &c->br[bi];
	unsigned s = resp->status;
	if (s == 100)
		return; /* §16.7 step 5: never forwarded */
	struct sip_out o;
	if (s < 200) {
		b->provisional = true;
		if (b->cancel_pending || c->cancelled) {
			b->cancel_pending = false;
			b->provisional = true;
			cancel_branch(w, c, b);
		} else if (ptx_method(x) == SIP_M_INVITE) {
			/* §16.7 step 2: a provisional restarts Timer C */
			ptx_set_deadline(p->ptx, x, sw_now_ms() + (uint64_t)w->cfg->proxy.timer_c_s * 1000);
		}
		if (c->answered)
			return;
		sip_out_init(&o, p->out, p->out_cap);
		if (fwd_response(&o, resp) == 0)
			pctx_relay(w, c, o.buf, o.len, s);
		return;
	}
	if (s < 300) {
		/* §16.7 step 5 / RFC 6026: every 2xx goes on, retransmissions too */
		b->done = true;
		b->status = s;
		if (b->upstream >= 0)
			hop_ok(w, b->upstream, b->target);
		sip_out_init(&o, p->out, p->out_cap);
		if (fwd_response(&o, resp) == 0)
			pctx_relay(w, c, o.buf, o.len, s);
		if (c->method == SIP_M_INVITE)
			cancel_others(w, c, bi); /* §16.7 step 10 */
		return;
	}
	if (b->done)
		return;
	branch_final(w, c, bi, resp);
}

static void ptx_timeout_cb(void *ctx, struct ptx *x, enum ptx_timeout why)
{
	struct sw_worker *w = ctx;
	uint32_t owner, gen;
	ptx_owner(x, &owner, &gen);
	if (owner >= PX_HEALTH_OWNER && owner < PX_HEALTH_OWNER + PROXY_MAX_UPSTREAMS) {
		upstream_down(w, (int)(owner - PX_HEALTH_OWNER));
		return;
	}
	unsigned bi;
	struct pctx *c = owner_of(w, x, &bi);
	if (!c)
		return;
	struct px_branch *b = &c->br[bi];
	if (b->done)
		return;
	/* §16.8: Timer C with a provisional → CANCEL the branch */
	if (why == PTX_TO_TU && b->provisional && ptx_method(x) == SIP_M_INVITE && !c->cancelled) {
		struct sip_out o;
		struct ptx *cx;
		sip_out_init(&o, w->px->out, w->px->out_cap);
		if (ptx_build_cancel(w->px->ptx, x, &o) == 0 &&
		    ptx_start(w->px->ptx, o.buf, o.len, SIP_M_CANCEL, ptx_branch(x), ptx_dest(x),
			      PX_NO_OWNER, 0, sw_now_ms(), &cx) == 0)
			px_send(w, ptx_dest(x), o.buf, o.len);
	}
	b->done = true;
	b->h = 0;
	b->status = c->cancelled ? 487 : 408;
	if (b->upstream >= 0 && !b->provisional && !c->cancelled) {
		hop_failed(w, b->upstream, b->target);
		if (failover(w, c))
			return;
	}
	pctx_maybe_finish(w, c);
}

/* --- the route itself ------------------------------------------------------- */

static struct pctx *px_begin(struct req *r)
{
	struct sw_worker *w = r->w;
	struct pctx *c = pctx_new(w->px);
	if (!c) {
		r->why = "proxy-full";
		reply(r, 503, NULL, "Retry-After: 5\r\n");
		return NULL;
	}
	if (!keep(&c->req, &c->req_cap, &c->req_len, r->m->buf, r->m->len)) {
		pctx_free(w->px, c);
		r->why = "no-memory";
		reply(r, 500, NULL, NULL);
		return NULL;
	}
	c->stx = r->txn;
	c->dest = r->dest;
	c->src = r->rx->from;
	c->method = r->m->method;
	c->created = sw_now_ms();
	/* The server transaction may end 64*T1 after creation when still
	 * unanswered (sip/txn.h): finish or let go before that. */
	c->stx_deadline = c->created + 60ull * w->cfg->timers.t1_ms;
	if (r->m->method == SIP_M_INVITE) {
		/* §16.2 / §16.7: 100 Trying at once; it also keeps the server
		 * transaction alive while branches ring (Proceeding) */
		struct req rr = *r;
		rr.quiet = true;
		reply(&rr, 100, NULL, NULL);
	}
	return c;
}

static void px_log(struct req *r, const char *where, int n)
{
	if (!sw_log_enabled(SW_LOG_DEBUG))
		return;
	struct sw_logline l;
	char src[64];
	sw_sockaddr_fmt(req_src(r), src, sizeof(src));
	sw_log_begin(&l, SW_LOG_DEBUG, "proxy.forward");
	sw_log_str(&l, "method", r->m->method_name);
	sw_log_cstr(&l, "to", where);
	sw_log_int(&l, "branches", n);
	sw_log_cstr(&l, "src", src);
	sw_log_str(&l, "ruri", r->m->ruri.raw);
	sw_log_end(&l);
}

/* After px_branch calls: 0 branches sent means nothing will answer. */
static void px_started(struct req *r, struct pctx *c, const char *where)
{
	px_log(r, where, (int)c->nbr);
	if (c->nbr == 0 && c->dns_wait)
		return; /* goes on when the upstream's name resolves (dns_done) */
	if (c->nbr == 0) {
		pctx_reply(r->w, c, 503, "no-route");
		pctx_free(r->w->px, c);
		return;
	}
	pctx_maybe_finish(r->w, c); /* every branch may have failed at once */
}

static void to_upstream(struct req *r, struct pctx *c)
{
	upstream_branch(r->w, c, r->m);
	px_started(r, c, "upstream");
}

/* An AOR's bindings (parallel fork), through each binding's received
 * address or connection (NAT). 0 forwarded, -ENOENT no binding. */
static int to_bindings(struct req *r, struct pctx *c, const char *aor)
{
	struct sw_worker *w = r->w;
	unsigned cap = w->cfg->proxy.max_branches;
	if (cap > PX_MAX_BRANCHES)
		cap = PX_MAX_BRANCHES;
	struct reg_binding *b = (struct reg_binding *)(void *)w->px->hdrs; /* reuse: see px_init */
	unsigned n = registrar_lookup(w->srv->reg, sw_str_c(aor), sw_wall_s(), b, cap);
	if (n == 0)
		return -ENOENT;
	for (unsigned i = 0; i < n; i++) {
		struct px_target tg = { .upstream = -1, .record_route = true };
		tg.dest = b[i].received;
		if (tg.dest.proto == SW_PROTO_UDP)
			tg.dest.fd = -1;
		tg.flow = (struct proxy_flow){ .set = true, .proto = tg.dest.proto,
					       .conn_id = tg.dest.conn_id, .addr = tg.dest.addr,
					       .alen = tg.dest.alen };
		snprintf(tg.ruri, sizeof(tg.ruri), "%s", b[i].contact);
		px_branch(w, c, r->m, &tg);
	}
	return 0;
}

/* calls to a trunk: by R-URI domain or number prefix */
static int trunk_for_target(const struct sw_config *cfg, const struct sip_uri *u)
{
	for (unsigned i = 0; i < cfg->proxy.ntrunks; i++) {
		const struct proxy_trunk_conf *t = &cfg->proxy.trunks[i];
		if (!t->has_uri)
			continue;
		if (t->domain[0] && sw_str_ieq_c(u->host, t->domain))
			return (int)i;
		for (unsigned k = 0; k < t->nprefix; k++)
			if (u->user.len >= strlen(t->prefix[k]) &&
			    memcmp(u->user.p, t->prefix[k], strlen(t->prefix[k])) == 0)
				return (int)i;
	}
	return -1;
}

static void to_trunk(struct req *r, struct pctx *c, int ti)
{
	const struct proxy_trunk_conf *t = &r->w->cfg->proxy.trunks[ti];
	struct px_target tg = { .upstream = -1, .target = -1, .record_route = true };
	/* a named trunk uses its cached addresses (looked up at start) */
	if (hop_dest(r->w, PROXY_MAX_UPSTREAMS + (unsigned)ti, &tg.dest) == 0) {
		bool v6 = strchr(t->hop.host, ':') != NULL;
		snprintf(tg.ruri, sizeof(tg.ruri), "sip:%.*s%s%s%s%s:%u", SW_STR_FMT(r->m->ruri.user),
			 r->m->ruri.user.len ? "@" : "", v6 ? "[" : "", t->hop.host, v6 ? "]" : "",
			 t->hop.port ? t->hop.port : 5060);
		px_branch(r->w, c, r->m, &tg);
	}
	px_started(r, c, t->name);
}

/* Requests from an upstream (or a trusted trunk for a local AOR): to the
 * AOR's bindings, or out to a trunk; else 480 / 404. */
static void to_target(struct req *r, struct pctx *c)
{
	const struct sw_config *cfg = r->w->cfg;
	const struct sip_uri *u = &r->m->ruri;
	char aor[REG_AOR_MAX];
	bool local = is_sip_uri(u) && config_realm(cfg, u->host.p, u->host.len) &&
		     registrar_aor(u, aor, sizeof(aor)) > 0;
	if (local && to_bindings(r, c, aor) == 0) {
		px_started(r, c, "bindings");
		return;
	}
	int ti = trunk_for_target(cfg, u);
	if (ti >= 0) {
		to_trunk(r, c, ti);
		return;
	}
	unsigned st = local ? 480 : 404;
	pctx_reply(r->w, c, st, local ? "no-binding" : "no-route");
	pctx_free(r->w->px, c);
}

/* RFC 3325 §9.1: the asserted identity of an authenticated user is the
 * From AOR (auth_check bound the Auth ID to it). */
static void set_identity(struct req *r, struct pctx *c)
{
	char aor[REG_AOR_MAX];
	c->strip_identity = true;
	c->realm = auth_realm_for(r->w->cfg, r->m);
	if (is_sip_uri(&r->m->from.uri) && registrar_aor(&r->m->from.uri, aor, sizeof(aor)) > 0)
		snprintf(c->pai, sizeof(c->pai), "<%s>", aor);
}

/* issue 4: a digest user named like a trunk, calling from outside the
 * trunk's networks: the carrier's address drifted. */
static void warn_drift(struct req *r)
{
	const struct sw_config *cfg = r->w->cfg;
	char user[GUARD_NAME_MAX];
	snprintf(user, sizeof(user), "%s", req_auth_user(r));
	char *at = strchr(user, '@');
	if (at)
		*at = '\0';
	for (unsigned i = 0; i < cfg->proxy.ntrunks; i++) {
		if (strcmp(cfg->proxy.trunks[i].user, user) != 0 || cfg->proxy.trunks[i].ncidrs == 0)
			continue;
		char src[64];
		sw_sockaddr_fmt(req_src(r), src, sizeof(src));
		sw_logf(SW_LOG_WARN, "proxy.trunk_ip_drift", "trunk=\"%s\" src=\"%s\"",
			cfg->proxy.trunks[i].name, src);
	}
}

/* In-dialog (§16.12): our Route checked; next hop = the flow (towards the
 * user whose flow it is) or the next Route / Request-URI. */
static int indialog_target(struct req *r, const struct proxy_flow *flow, struct px_target *tg)
{
	memset(tg, 0, sizeof(*tg));
	tg->upstream = -1;
	tg->target = -1;
	tg->skip_routes = 1;
	struct sip_uri second;
	if (proxy_route_nth(r->m, 1, &second) == 1 && is_our_address(r->w, &second))
		tg->skip_routes = 2; /* RFC 5658 double Record-Route */
	const struct sockaddr *src = req_src(r);
	bool from_flow = flow->set && sockaddr_ip_eq(src, (const struct sockaddr *)&flow->addr) &&
			 sw_sockaddr_port(src) == sw_sockaddr_port((const struct sockaddr *)&flow->addr);
	if (flow->set && flow->proto != SW_PROTO_UDP)
		from_flow = r->rx->from.conn_id == flow->conn_id;
	if (flow->set && !from_flow) {
		tg->dest.addr = flow->addr;
		tg->dest.alen = flow->alen;
		tg->dest.proto = flow->proto;
		tg->dest.conn_id = flow->conn_id;
		tg->dest.reliable = flow->proto != SW_PROTO_UDP;
		tg->dest.fd = -1;
		return 0;
	}
	struct sip_uri next;
	int rc = proxy_route_nth(r->m, 1, &next);
	if (rc == 1 && is_our_address(r->w, &next)) {
		/* RFC 5658: the other half of our double Record-Route */
		tg->skip_routes = 2;
		rc = proxy_route_nth(r->m, 2, &next);
	}
	if (rc == 1)
		return uri_dest(&next, &tg->dest);
	return uri_dest(&r->m->ruri, &tg->dest);
}

static bool from_user_side(struct req *r, const struct proxy_flow *flow, int up, int trunk)
{
	if (flow->set) {
		if (flow->proto != SW_PROTO_UDP)
			return r->rx->from.conn_id == flow->conn_id;
		return sockaddr_ip_eq(req_src(r), (const struct sockaddr *)&flow->addr);
	}
	return up < 0 && trunk < 0;
}

/* CANCEL (§16.10): 200 at once, CANCEL every pending branch. */
static void px_cancel(struct req *r)
{
	struct sw_worker *w = r->w;
	struct sip_txn *inv = sip_txn_find_cancelled(w->txns, r->m);
	struct pctx *c = NULL;
	for (unsigned i = 0; inv && i < w->px->cap; i++)
		if (w->px->ctx[i].used && w->px->ctx[i].stx == inv) {
			c = &w->px->ctx[i];
			break;
		}
	if (!c) {
		route_cancel(r); /* not ours: answered locally (200/481) */
		return;
	}
	r->why = "ok";
	reply(r, 200, NULL, NULL);
	if (c->answered)
		return;
	c->cancelled = true;
	cancel_others(w, c, UINT32_MAX);
	if (c->dns_wait && c->nbr == 0) {
		c->dns_wait = 0; /* nothing sent yet: 487 now */
		pctx_maybe_finish(w, c);
	}
}

bool route_proxy_claims(struct req *r)
{
	const struct sw_config *cfg = r->w->cfg;
	const struct sip_msg *m = r->m;
	if (!cfg->proxy.on || !r->w->px || m->method == SIP_M_REGISTER)
		return false;
	/* OPTIONS to the server itself (no user part) is answered here */
	if (m->method == SIP_M_OPTIONS && !m->ruri.user.len && !m->to.tag.p &&
	    sip_hdr_get(m, SIP_H_ROUTE) == NULL)
		return false;
	return true;
}

void route_proxy(struct req *r)
{
	struct sw_worker *w = r->w;
	const struct sw_config *cfg = w->cfg;
	struct sip_msg *m = r->m;
	const struct proxy_keys *k = &w->srv->proxy->keys;

	if (m->method == SIP_M_CANCEL) {
		px_cancel(r);
		return;
	}
	/* §16.3 item 3, item 4 */
	if (m->max_forwards == 0) {
		r->why = "too-many-hops";
		reply(r, 483, NULL, NULL);
		return;
	}
	if (proxy_loop_detect(k, m)) {
		r->why = "loop";
		reply(r, 482, NULL, NULL);
		return;
	}
	const struct sockaddr *src = req_src(r);
	int up = upstream_of(w, src, !r->rx->from.reliable);
	int trunk = sw_ipacl_lookup(w->srv->proxy->acl, src);

	struct proxy_flow flow;
	struct sip_uri top;
	enum proxy_route_kind rk = proxy_route_check(k, m, &flow, &top);
	if (rk == PROXY_ROUTE_FORGED) {
		r->why = "forged-route";
		reply(r, 403, "Route not issued here", NULL);
		return;
	}
	if (m->to.tag.p && rk == PROXY_ROUTE_OURS) {
		/* in-dialog: dialog membership is the authentication */
		bool user_side = from_user_side(r, &flow, up, trunk);
		if (cfg->proxy.rechallenge_in_dialog && user_side &&
		    (m->method == SIP_M_INVITE || m->method == SIP_M_UPDATE || m->method == SIP_M_BYE) &&
		    !phase_authenticate(r, true))
			return;
		struct px_target tg;
		if (indialog_target(r, &flow, &tg) < 0) {
			r->why = "no-route";
			reply(r, 404, NULL, NULL);
			return;
		}
		struct pctx *c = px_begin(r);
		if (!c)
			return;
		/* credentials for our realm never leave us, in a dialog too */
		c->realm = auth_realm_for(cfg, m);
		px_branch(w, c, m, &tg);
		px_started(r, c, "dialog");
		return;
	}
	/* a preloaded Route naming us (outbound proxy): ours to remove (§16.4) */
	unsigned skip = rk == PROXY_ROUTE_OTHER && is_our_address(w, &top) ? 1 : 0;

	if (up >= 0) {
		/* from the PBX: trusted (its PAI too) */
		struct pctx *c = px_begin(r);
		if (c) {
			c->skip_routes = skip;
			to_target(r, c);
		}
		return;
	}
	bool admitted = false;
	if (trunk >= 0) {
		const struct proxy_trunk_conf *t = &cfg->proxy.trunks[trunk];
		if (t->auth == TRUNK_AUTH_IP || t->auth == TRUNK_AUTH_IP_OR_DIGEST)
			admitted = true;
		else if (!phase_authenticate(r, true)) /* ip+digest */
			return;
		else
			admitted = true;
	}
	if (!admitted) {
		/* a user (or a trunk from an address not on its list) */
		if (!phase_authenticate(r, true))
			return; /* never forwarded */
		warn_drift(r);
	}
	struct pctx *c = px_begin(r);
	if (!c)
		return;
	c->skip_routes = skip;
	if (!admitted)
		set_identity(r, c);
	if (cfg->proxy.nup > 0) {
		to_upstream(r, c);
		return;
	}
	if (cfg->proxy.local_calls) {
		to_target(r, c);
		return;
	}
	pctx_reply(w, c, 503, "no-upstream");
	pctx_free(w->px, c);
}

/* ACK for a 2xx (§13.2.2.4): end to end, statelessly, along the Route. */
void route_proxy_ack(struct req *r)
{
	struct sw_worker *w = r->w;
	struct sip_msg *m = r->m;
	const struct proxy_keys *k = &w->srv->proxy->keys;
	struct proxy_flow flow;
	struct sip_uri top;
	if (!w->px || !m->to.tag.p || m->max_forwards == 0)
		return;
	if (proxy_route_check(k, m, &flow, &top) != PROXY_ROUTE_OURS)
		return; /* not a dialog of ours: dropped (never answered) */
	struct px_target tg;
	if (indialog_target(r, &flow, &tg) < 0)
		return;
	char host[64], via[256], br[PROXY_BRANCH_MAX];
	uint16_t port;
	if (!local_for(w, &tg.dest, host, sizeof(host), &port))
		return;
	size_t bl = proxy_branch(k, w->id, ++w->px->counter, proxy_loop_hash(k, m), br);
	bool v6 = strchr(host, ':') != NULL;
	snprintf(via, sizeof(via), "SIP/2.0/%s %s%s%s:%u;branch=%.*s;rport", proto_via(tg.dest.proto),
		 v6 ? "[" : "", host, v6 ? "]" : "", port, (int)bl, br);
	struct fwd_opts op = { .via = sw_str_c(via), .src = req_src(r), .skip_routes = tg.skip_routes };
	/* An ACK to a 2xx repeats the INVITE's credentials (RFC 3261 §22.1):
	 * ours must not reach the callee, who could guess the password
	 * offline from them. */
	int realm = auth_realm_for(w->cfg, m);
	if (realm >= 0)
		op.realm = sw_str_c(w->cfg->realms[realm].name);
	struct sip_out o;
	sip_out_init(&o, w->px->out, w->px->out_cap);
	if (fwd_build(&o, m, &op) == 0)
		px_send(w, &tg.dest, o.buf, o.len);
}

/* --- responses and the hand-off ------------------------------------------ */

static void response_bytes(struct sw_worker *w, const char *buf, size_t len, bool reliable)
{
	struct sip_msg m;
	struct sip_perr err;
	if (sip_parse(buf, len, reliable ? SIP_PARSE_STREAM : SIP_PARSE_DGRAM, &w->cfg->limits,
		      w->px->hdrs, w->cfg->limits.max_headers, &m, &err) < 0 || m.is_request)
		return;
	on_response(w, &m);
}

void route_proxy_response(struct sw_worker *w, const struct sw_rx *rx, const struct sip_msg *m)
{
	if (!w->px)
		return;
	int owner = proxy_branch_worker(m->via1.branch);
	if (owner < 0)
		return; /* §18.1.2: not ours, discarded */
	if ((unsigned)owner != w->id) {
		if ((unsigned)owner < w->srv->nworkers)
			handoff(&w->srv->workers[owner], 0, &rx->from, rx->buf, rx->len);
		return;
	}
	on_response(w, m);
}

static void handoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_worker *w = arg;
	struct sw_pxw *p = w->px;
	uint64_t cnt;
	ssize_t n = read(p->efd, &cnt, sizeof(cnt));
	(void)n;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		if (p->qlen == 0) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		struct px_slot *s = &p->q[p->qhead];
		/* swap buffers: the slot keeps ours, we keep its bytes */
		char *b = s->buf;
		size_t cap = s->cap, len = s->len;
		uint8_t kind = s->kind;
		struct sip_txn_dest d = s->dest;
		s->buf = p->hbuf;
		s->cap = p->hcap;
		p->hbuf = b;
		p->hcap = cap;
		p->qhead = (p->qhead + 1) % PX_HANDOFF_SLOTS;
		p->qlen--;
		pthread_mutex_unlock(&p->lock);
		if (kind == 1) {
			if (sw_tp_send(w->tp, &d, p->hbuf, len) == 0)
				w->tx_msgs++;
		} else {
			response_bytes(w, p->hbuf, len, d.reliable);
		}
	}
	sw_tp_flush(w->tp);
}

/* --- RFC 3263 answers and failed connections ------------------------------- */

static const char *hop_name(const struct sw_config *cfg, unsigned idx)
{
	return idx < PROXY_MAX_UPSTREAMS ? cfg->proxy.up[idx].name
					 : cfg->proxy.trunks[idx - PROXY_MAX_UPSTREAMS].name;
}

/* A context parked on hop idx's lookup goes on: to that upstream's
 * addresses, the next upstream, or 503 when nothing took it. */
static void dns_resume(struct sw_worker *w, unsigned idx)
{
	struct sw_pxw *p = w->px;
	for (unsigned i = 0; i < p->cap && p->live; i++) {
		struct pctx *c = &p->ctx[i];
		if (!c->used || c->dns_wait != idx + 1)
			continue;
		c->dns_wait = 0;
		if (c->answered)
			continue;
		if (!c->cancelled && failover(w, c))
			continue; /* a branch went out, or it waits for the next name */
		if (c->nbr == 0 && !c->cancelled)
			pctx_reply(w, c, 503, "no-route");
		else
			pctx_maybe_finish(w, c);
	}
}

/* pxr_done_fn: the answer for hop idx, kept for its TTL (clamped to 1 s
 * .. 1 day); a failed lookup keeps the last good answer and asks again
 * after PX_DNS_RETRY_MS. */
static void dns_done(void *ctx, uint32_t idx, const struct pxr_result *res)
{
	struct sw_worker *w = ctx;
	struct sw_pxw *p = w->px;
	if (idx >= PX_HOPS)
		return;
	struct px_dns *dn = &p->dns[idx];
	uint64_t now = sw_now_ms();
	dn->pending = false;
	if (res->err == 0 && res->n > 0) {
		bool same = dn->have && dn->res.n == res->n &&
			    memcmp(dn->res.t, res->t, res->n * sizeof(res->t[0])) == 0;
		if (!same) {
			memset(dn->down_until, 0, sizeof(dn->down_until));
			char a[64];
			sw_sockaddr_fmt((const struct sockaddr *)&res->t[0].addr, a, sizeof(a));
			sw_logf(SW_LOG_INFO, "proxy.dns", "hop=\"%s\" host=\"%s\" addrs=%u first=\"%s\" "
				"proto=%s ttl_s=%u", hop_name(w->cfg, idx), hop_of(w->cfg, idx)->host, res->n,
				a, sw_proto_name((enum sw_proto)res->t[0].proto), res->ttl_s);
		}
		dn->res = *res;
		dn->have = true;
		uint32_t ttl = res->ttl_s < 1 ? 1 : res->ttl_s > PX_DNS_MAX_TTL_S ? PX_DNS_MAX_TTL_S
										   : res->ttl_s;
		dn->expires = now + (uint64_t)ttl * 1000;
	} else {
		sw_logf(SW_LOG_WARN, "proxy.dns_failed", "hop=\"%s\" host=\"%s\" error=\"%s\"%s",
			hop_name(w->cfg, idx), hop_of(w->cfg, idx)->host,
			strerror(res->err ? -res->err : ENOENT), dn->have && dn->res.n ? " stale=yes" : "");
		if (!dn->have) {
			memset(&dn->res, 0, sizeof(dn->res));
			dn->have = true; /* an answer: no address (callers get 503) */
		}
		dn->expires = now + PX_DNS_RETRY_MS;
	}
	if (idx < PROXY_MAX_UPSTREAMS)
		dns_resume(w, idx);
	sw_tp_flush(w->tp);
}

/* sw_tp_connect_err_fn: an outgoing TCP connection did not come up; the
 * branches waiting on it failed (as a 503 from that hop: failover). */
static void px_connect_err(void *ctx, uint32_t conn_id, const struct sockaddr *peer, socklen_t alen,
			   int err)
{
	struct sw_worker *w = ctx;
	struct sw_pxw *p = w->px;
	if (!p)
		return;
	char a[64];
	sw_sockaddr_fmt(peer, a, sizeof(a));
	sw_logf(SW_LOG_WARN, "proxy.connect_failed", "addr=\"%s\" error=\"%s\"", a, strerror(-err));
	for (unsigned i = 0; i < p->cap && p->live; i++) {
		struct pctx *c = &p->ctx[i];
		if (!c->used)
			continue;
		bool hit = false;
		for (unsigned bi = 0; bi < c->nbr; bi++) {
			struct px_branch *b = &c->br[bi];
			struct ptx *x = b->h && !b->done ? ptx_lookup(p->ptx, b->h) : NULL;
			if (!x || ptx_status(x) != 0)
				continue;
			const struct sip_txn_dest *d = ptx_dest(x);
			if (d->proto != SW_PROTO_TCP ||
			    (d->conn_id ? d->conn_id != conn_id
					: !addr_is(peer, (const struct sockaddr *)&d->addr, true)))
				continue;
			ptx_abandon(p->ptx, x);
			b->h = 0;
			b->done = true;
			b->status = 503;
			hit = true;
			if (b->upstream >= 0)
				hop_failed(w, b->upstream, b->target);
		}
		if (!hit)
			continue;
		if (failover(w, c))
			continue;
		pctx_maybe_finish(w, c);
	}
	sw_tp_flush(w->tp);
}

/* --- health checks, timers, life cycle -------------------------------------- */

static void health_check(struct sw_worker *w, uint64_t now)
{
	const struct sw_config *cfg = w->cfg;
	struct sw_pxw *p = w->px;
	for (unsigned i = 0; i < cfg->proxy.nup; i++) {
		struct sip_txn_dest d;
		char host[64], br[PROXY_BRANCH_MAX];
		uint16_t port;
		if (hop_dest(w, i, &d) < 0 || d.proto != SW_PROTO_UDP ||
		    !local_for(w, &d, host, sizeof(host), &port))
			continue;
		size_t bl = proxy_branch(&w->srv->proxy->keys, w->id, ++p->counter, 0, br);
		bool v6 = strchr(host, ':') != NULL;
		const struct proxy_hop *h = &cfg->proxy.up[i].hop;
		struct sip_out o;
		sip_out_init(&o, p->out, p->out_cap);
		sip_out_printf(&o,
			       "OPTIONS sip:%s%s%s:%u SIP/2.0\r\n"
			       "Via: SIP/2.0/UDP %s%s%s:%u;branch=%.*s;rport\r\n"
			       "Max-Forwards: 70\r\n"
			       "From: <sip:sipwarden@%s%s%s>;tag=%.*s\r\n"
			       "To: <sip:%s%s%s:%u>\r\n"
			       "Call-ID: %.*s\r\n"
			       "CSeq: 1 OPTIONS\r\n"
			       "User-Agent: %s\r\n"
			       "Content-Length: 0\r\n\r\n",
			       strchr(h->host, ':') ? "[" : "", h->host, strchr(h->host, ':') ? "]" : "",
			       h->port ? h->port : 5060, v6 ? "[" : "", host, v6 ? "]" : "", port,
			       (int)bl, br, v6 ? "[" : "", host, v6 ? "]" : "", 8, br + 11,
			       strchr(h->host, ':') ? "[" : "", h->host, strchr(h->host, ':') ? "]" : "",
			       h->port ? h->port : 5060, 16, br + 11, cfg->server_name);
		struct ptx *x;
		if (o.overflow || ptx_start(p->ptx, o.buf, o.len, SIP_M_OPTIONS, sw_str_mk(br, bl), &d,
					    PX_HEALTH_OWNER + i, 0, now, &x) < 0)
			continue;
		px_send(w, &d, o.buf, o.len);
	}
}

uint64_t route_proxy_tick(struct sw_worker *w, uint64_t now)
{
	struct sw_pxw *p = w->px;
	if (!p)
		return UINT64_MAX;
	uint64_t next = ptx_tick(p->ptx, now, ptx_send_cb, ptx_timeout_cb, w);
	/* contexts: a non-INVITE still unanswered near 64*T1 lets go of its
	 * server transaction (RFC 4320: no 408); answered ones end with their
	 * last client transaction (2xx retransmissions still need dest) */
	for (unsigned i = 0; i < p->cap && p->live; i++) {
		struct pctx *c = &p->ctx[i];
		if (!c->used)
			continue;
		if (!c->answered && c->method != SIP_M_INVITE && now >= c->stx_deadline) {
			c->stx = NULL;
			c->answered = true;
		}
		if (!c->answered)
			continue;
		bool alive = false;
		for (unsigned b = 0; b < c->nbr && !alive; b++)
			alive = c->br[b].h && ptx_lookup(p->ptx, c->br[b].h);
		if (!alive)
			pctx_free(p, c);
	}
	/* RFC 3263 answers are asked again when their TTL ends */
	for (unsigned i = 0; p->res && i < PX_HOPS; i++)
		if (p->dns[i].expires && now >= p->dns[i].expires)
			dns_refresh(w, i); /* no-op while one is under way */
	if (w->id == 0 && w->cfg->proxy.nup && w->cfg->proxy.health_interval_s && now >= p->next_health) {
		p->next_health = now + (uint64_t)w->cfg->proxy.health_interval_s * 1000;
		health_check(w, now);
	}
	sw_tp_flush(w->tp);
	return next;
}

int route_proxy_worker_init(struct sw_worker *w)
{
	const struct sw_config *cfg = w->cfg;
	if (!cfg->proxy.on)
		return 0;
	if (w->id == 0 && !w->srv->proxy) {
		int err = 0;
		w->srv->proxy = proxy_open(cfg, &err);
		if (!w->srv->proxy) {
			sw_logf(SW_LOG_ERROR, "proxy.failed", "error=\"%s\"", strerror(-err));
			return err;
		}
	}
	if (!w->srv->proxy)
		return -EINVAL;
	struct sw_pxw *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	w->px = p;
	pthread_mutex_init(&p->lock, NULL);
	p->efd = -1;
	p->cap = cfg->proxy.max_calls;
	p->ctx = calloc(p->cap, sizeof(*p->ctx));
	p->ptx = ptx_table_new(p->cap * 2 + PROXY_MAX_UPSTREAMS, &cfg->timers, &cfg->limits);
	/* the header scratch doubles as the binding array of to_bindings */
	size_t hs = cfg->limits.max_headers * sizeof(struct sip_hdr);
	size_t bs = PX_MAX_BRANCHES * sizeof(struct reg_binding);
	p->hdrs = malloc(hs > bs ? hs : bs);
	p->out_cap = cfg->limits.max_msg + 4096;
	p->out = malloc(p->out_cap);
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!p->ctx || !p->ptx || !p->hdrs || !p->out || p->efd < 0)
		return -ENOMEM;
	p->free_head = 0;
	for (unsigned i = 0; i < p->cap; i++)
		p->ctx[i].next_free = i + 1 < p->cap ? i + 1 : NIL32;
	p->ev = event_new(w->base, p->efd, EV_READ | EV_PERSIST, handoff_cb, w);
	if (!p->ev)
		return -ENOMEM;
	event_add(p->ev, NULL);
	p->next_health = sw_now_ms() + 200;
	sw_tp_on_connect_error(w->tp, px_connect_err); /* the tp's ctx is w (worker.c) */
	/* RFC 3263: host names of upstreams and trunks are looked up now, on
	 * this worker's loop, so the first call finds them cached */
	bool named = false;
	for (unsigned i = 0; i < cfg->proxy.nup; i++)
		named |= !cfg->proxy.up[i].hop.literal;
	for (unsigned i = 0; i < cfg->proxy.ntrunks; i++)
		named |= cfg->proxy.trunks[i].has_uri && !cfg->proxy.trunks[i].hop.literal;
	if (named) {
		int err = 0;
		p->res = pxr_new(w->base, cfg->proxy.dns_servers, dns_done, w, &err);
		if (!p->res) {
			sw_logf(SW_LOG_ERROR, "proxy.dns_init", "dns_servers=\"%s\" error=\"%s\"",
				cfg->proxy.dns_servers, strerror(-err));
			return err;
		}
		for (unsigned i = 0; i < cfg->proxy.nup; i++)
			if (!cfg->proxy.up[i].hop.literal)
				dns_refresh(w, i);
		for (unsigned i = 0; i < cfg->proxy.ntrunks; i++)
			if (cfg->proxy.trunks[i].has_uri && !cfg->proxy.trunks[i].hop.literal)
				dns_refresh(w, PROXY_MAX_UPSTREAMS + i);
	}
	return 0;
}

void route_proxy_worker_free(struct sw_worker *w)
{
	struct sw_pxw *p = w->px;
	if (p) {
		pxr_free(p->res); /* pending lookups end without calling back */
		p->res = NULL;
		if (p->ev)
			event_free(p->ev);
		if (p->efd >= 0)
			close(p->efd);
		if (p->ctx)
			for (unsigned i = 0; i < p->cap; i++) {
				free(p->ctx[i].best);
				free(p->ctx[i].req);
			}
		for (unsigned i = 0; i < PX_HANDOFF_SLOTS; i++)
			free(p->q[i].buf);
		free(p->hbuf);
		free(p->ctx);
		ptx_table_free(p->ptx);
		free(p->hdrs);
		free(p->out);
		pthread_mutex_destroy(&p->lock);
		free(p);
		w->px = NULL;
	}
	if (w->id == 0 && w->srv->proxy) {
		sw_ipacl_free(w->srv->proxy->acl);
		free(w->srv->proxy);
		w->srv->proxy = NULL;
	}
}
