/* guard_drop: cost of guard_pre() for a datagram from a banned source —
 * the work a flood from a banned address costs before anything is parsed
 * (issue 5, "Performance"). Single thread, one core; reports calls/s and
 * ns/call for: one banned source; sources rotating over 4096 banned
 * addresses among 65536 bans; a source that is not banned (flood budget
 * under its lock), for comparison.
 * Usage: guard_drop [CALLS]   (default 20000000) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/guard_keys.h"
#include "guard/guard.h"

static double now_s(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void addr4(struct sockaddr_in *in, uint32_t host_order)
{
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	in->sin_port = htons(5060);
	in->sin_addr.s_addr = htonl(host_order);
}

static void report(const char *what, unsigned long n, double wall, double cpu, unsigned long hits)
{
	printf("%-34s %10.0f calls/s  %6.1f ns/call  (cpu %.2fs, wall %.2fs, dropped %lu/%lu)\n", what,
	       (double)n / cpu, cpu / (double)n * 1e9, cpu, wall, hits, n);
}

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000000ul;
	struct sw_guard_conf conf;
	guard_conf_default(&conf);
	conf.flood_pps = 1000000; /* keep the unbanned case on its fast path */
	conf.flood_burst = 1000000;
	int err;
	struct sw_guard *g = guard_open(&conf, NULL, &err);
	if (!g) {
		fprintf(stderr, "guard_open: %d\n", err);
		return 1;
	}
	uint64_t now = guard_now_ms();
	char t[32];
	for (uint32_t i = 0; i < 65536; i++) {
		snprintf(t, sizeof(t), "11.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		guard_ban(g, t, false, 3600, GUARD_R_ADMIN, now);
	}
	struct sockaddr_in one, *many = calloc(4096, sizeof(*many));
	addr4(&one, 0x0b000102u); /* 11.0.1.2 */
	for (uint32_t i = 0; i < 4096; i++)
		addr4(&many[i], 0x0b000000u + i * 16);

	unsigned long hits = 0;
	double w = now_s(CLOCK_MONOTONIC), c = now_s(CLOCK_THREAD_CPUTIME_ID);
	for (unsigned long i = 0; i < n; i++)
		hits += guard_pre(g, (const struct sockaddr *)&one, 400, now).action == GUARD_DROP;
	report("banned, one source", n, now_s(CLOCK_MONOTONIC) - w, now_s(CLOCK_THREAD_CPUTIME_ID) - c, hits);

	hits = 0;
	w = now_s(CLOCK_MONOTONIC);
	c = now_s(CLOCK_THREAD_CPUTIME_ID);
	for (unsigned long i = 0; i < n; i++)
		hits += guard_pre(g, (const struct sockaddr *)&many[i & 4095], 400, now).action == GUARD_DROP;
	report("banned, 4096 sources / 65536 bans", n, now_s(CLOCK_MONOTONIC) - w,
	       now_s(CLOCK_THREAD_CPUTIME_ID) - c, hits);

	struct sockaddr_in clean;
	addr4(&clean, 0xc6336401u); /* 198.51.100.1 */
	hits = 0;
	w = now_s(CLOCK_MONOTONIC);
	c = now_s(CLOCK_THREAD_CPUTIME_ID);
	for (unsigned long i = 0; i < n / 4; i++)
		hits += guard_pre(g, (const struct sockaddr *)&clean, 400, now + i / 1000).action != GUARD_PASS;
	report("not banned (flood budget)", n / 4, now_s(CLOCK_MONOTONIC) - w,
	       now_s(CLOCK_THREAD_CPUTIME_ID) - c, hits);
	free(many);
	guard_close(g);
	return 0;
}
