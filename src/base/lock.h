/* Mutexes that count their own contention (issue 6: "show that workers do
 * not contend"). Every shard lock on the request path goes through
 * sw_mutex_lock; each thread counts its acquisitions and how many found
 * the lock taken by someone else. Workers log both when they stop. */
#ifndef SW_BASE_LOCK_H
#define SW_BASE_LOCK_H

#include <pthread.h>
#include <stdint.h>

struct sw_lockstat {
	uint64_t acquired;
	uint64_t contended;        /* trylock failed: another thread held it */
};

extern _Thread_local struct sw_lockstat sw_lockstat;

static inline void sw_mutex_lock(pthread_mutex_t *m)
{
	sw_lockstat.acquired++;
	if (pthread_mutex_trylock(m) != 0) {
		sw_lockstat.contended++;
		pthread_mutex_lock(m);
	}
}

#endif
