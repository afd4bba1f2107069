/* The guard: rate limits, auth-failure bans, filters, geo ACL, flood
 * response (DESIGN.md "Abuse defences", issue 5).
 *
 * One struct sw_guard is shared by every worker thread. Its tables are
 * sharded and locked, keyed by SipHash under a random key, and bounded
 * (CLOCK eviction when full). The banned-address check in guard_pre takes
 * no lock: bans live in a fixed open-addressing table read under per-shard
 * sequence counters.
 *
 * Time: every `now` is wall-clock milliseconds since the epoch
 * (guard_now_ms()), because bans are stored on disk and must mean the same
 * after a restart. Tests pass simulated values.
 *
 * The library never logs: verdicts carry reason codes, and ban/unban
 * events queue up for guard_events(), drained by whoever logs. */
#ifndef SW_GUARD_GUARD_H
#define SW_GUARD_GUARD_H

#include <stddef.h>
#include <sys/socket.h>

#include "base/str-t.h"
#include "guard/guard-t.h"
#include "sip/sip-t.h"

struct sw_guard;

/* Defaults and the [guard] keys: config/guard_keys.h (the config layer
 * sits below this module and fills the struct). */

/* data_dir: where bans.db lives; NULL keeps bans in memory only. Opens the
 * geo DB when configured, loads persisted bans and starts the writer
 * thread. NULL with *err = -errno (-EIO: SQLite, -ENOENT/-EINVAL: geo DB). */
struct sw_guard *guard_open(const struct sw_guard_conf *conf, const char *data_dir, int *err);
/* Writes what is queued, stops the writer, frees everything. */
void guard_close(struct sw_guard *g);

uint64_t guard_now_ms(void);

/* Before parsing: banned source → DROP (no lock, a hash and a probe);
 * datagram above max_datagram → DROP; per-IP packet budget exceeded →
 * the flood action (DROP, REPLY 403 or TARPIT; .banned when flood_ban
 * just banned the source). Trusted networks pass everything but the size
 * limit. Sources other than AF_INET/AF_INET6 pass. */
struct guard_verdict guard_pre(struct sw_guard *g, const struct sockaddr *src, size_t len,
			       uint64_t now);

/* After parsing a request (responses pass): scanner User-Agent → DROP and
 * the source is banned (not when trusted); method outside the allow-list
 * → REPLY 405 (add guard_allow_hdr) or DROP; REGISTER/INVITE from a
 * refused country → REPLY geo_status or DROP. */
struct guard_verdict guard_filter(struct sw_guard *g, const struct sip_msg *m,
				  const struct sockaddr *src, uint64_t now);

/* Token buckets: per source IP and, when user is non-empty ("authid@realm",
 * normalised by the caller), per user; per class REGISTER / INVITE / other
 * (ACK is not counted). Over → REPLY 503 with retry_after_s, or DROP per
 * over_limit. An IP that never authenticated successfully gets
 * rate / greylist_divisor when greylisting is on. Trusted → PASS. */
struct guard_verdict guard_rate(struct sw_guard *g, const struct sip_msg *m,
				const struct sockaddr *src, struct sw_str user, uint64_t now);

/* Count one failed authentication (wrong credentials, bad nonce, nc
 * replay — never a mere challenge or a stale nonce). Returns
 * GUARD_BANNED_IP | GUARD_BANNED_USER for bans this failure caused, 0
 * otherwise. Trusted sources are counted against neither. */
int guard_auth_failed(struct sw_guard *g, const struct sockaddr *src, struct sw_str user,
		      enum guard_auth_fail why, uint64_t now);
/* A correctly answered challenge: the IP leaves the greylist and becomes
 * "known" (stricter ban_after_known threshold, exempt from user bans). */
void guard_auth_ok(struct sw_guard *g, const struct sockaddr *src, struct sw_str user,
		   uint64_t now);
/* Is user banned for requests from src? Not from trusted networks, and not
 * from an IP where someone authenticated successfully before (so that an
 * attacker cannot lock a user out of their own office). Answer 403. */
bool guard_user_banned(struct sw_guard *g, struct sw_str user, const struct sockaddr *src,
		       uint64_t now);
bool guard_ip_banned(struct sw_guard *g, const struct sockaddr *src, uint64_t now);

/* Ban / unban by hand (also what `sipwarden ban` does through bans.db).
 * target: an address ("192.0.2.7", "2001:db8::1") or, with user, a user.
 * duration_s 0 = ban_time. 0, -EINVAL, -EPERM (trusted), -ENOSPC (full). */
int guard_ban(struct sw_guard *g, const char *target, bool user, uint32_t duration_s,
	      enum guard_reason reason, uint64_t now);
int guard_unban(struct sw_guard *g, const char *target, bool user);

/* Housekeeping, about once a second from one thread: expires bans (unban
 * events) and remembers `now` for the writer thread, which applies changes
 * other processes made to bans.db (PRAGMA data_version, checked at most
 * every second). */
void guard_tick(struct sw_guard *g, uint64_t now);
/* Wait until queued writes are on disk and bans.db has been re-read once
 * (tests, shutdown). */
void guard_sync(struct sw_guard *g);

/* Take up to cap queued ban/unban events; returns how many. */
unsigned guard_events(struct sw_guard *g, struct guard_event *out, unsigned cap);
void guard_stats(struct sw_guard *g, struct guard_stats *out);
const char *guard_counter_name(enum guard_counter c);
const char *guard_reason_str(enum guard_reason r);
/* "Allow: INVITE, ACK, ...\r\n" for a 405 (RFC 3261 §21.4.6); length or 0. */
size_t guard_allow_hdr(const struct sw_guard *g, char *buf, size_t cap);
bool guard_geo_enabled(const struct sw_guard *g);
/* Records in the per-IP (user false) or per-user table (tests, metrics).
 * Each table holds up to 1.25 × its configured size (shard headroom). */
unsigned guard_table_count(struct sw_guard *g, bool user);

/* Address → ban key text: IPv4 as is, IPv6 masked to prefix ("2001:db8::/64").
 * Used by the CLI so that its rows match the guard's. 0 or -EINVAL. */
int guard_target_norm(const char *in, unsigned ipv6_prefix, char *out, size_t cap);

#endif
