/* What the bench load generators share: a monotonic clock, latency
 * histograms with 1 µs buckets up to 200 ms (the default one, `hist`, and
 * any other a generator declares), percentiles from them, and the
 * process's own CPU time (to flag a saturated generator). */
#ifndef SW_BENCH_LATENCY_H
#define SW_BENCH_LATENCY_H

#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

#define HIST_US 200000          /* 1 µs buckets up to 200 ms, then overflow */

static uint64_t hist[HIST_US + 1];

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* h has HIST_US + 1 buckets */
static inline void record_in(uint64_t *h, uint64_t lat_ns)
{
	uint64_t us = lat_ns / 1000;
	h[us > HIST_US ? HIST_US : us]++;
}

static void record(uint64_t lat_ns)
{
	record_in(hist, lat_ns);
}

/* Latency in ms below which a fraction q of the total samples of h lie. */
static inline double pct_in(const uint64_t *h, uint64_t total, double q)
{
	if (!total)
		return 0;
	uint64_t want = (uint64_t)(q * (double)total);
	if (want >= total)
		want = total - 1;
	uint64_t acc = 0;
	for (unsigned i = 0; i <= HIST_US; i++) {
		acc += h[i];
		if (acc > want)
			return i / 1000.0;
	}
	return HIST_US / 1000.0;
}

static double pct(uint64_t total, double q)
{
	return pct_in(hist, total, q);
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

#endif
