#ifndef SW_BASE_THREAD_H
#define SW_BASE_THREAD_H

#include <pthread.h>
#include <stdbool.h>

/* Background threads (journal compaction, the guard's database writer, the
 * main thread's housekeeping) share cores with the workers. Put at the
 * kernel's lowest priority (SCHED_IDLE), they run only on CPU time a
 * worker leaves, and a worker that blocks on a lock one of them holds
 * takes the core back as soon as the lock is released, instead of waiting
 * out the background thread's time slice (measured: 2-4 ms per wait,
 * bench/RESULTS.md). Names the thread too (top -H, perf). Call from the
 * thread itself, after it has created any thread of normal priority:
 * new threads inherit the policy. Returns 0 or -errno (the name and the
 * policy are best effort; the caller may log it). */
int sw_thread_background(const char *name);

/* Real-time priority for the calling thread (a worker, [server]
 * realtime_priority): SCHED_FIFO at prio, so a normal-priority task that
 * wakes on the worker's core (a kernel thread, housekeeping, another
 * process) waits until the worker sleeps instead of holding the core for
 * its time slice while requests queue (bench/RESULTS.md, seventh session).
 * inherit: threads the caller creates get the policy too; otherwise they,
 * and processes forked from it, start at normal priority
 * (SCHED_RESET_ON_FORK). Needs CAP_SYS_NICE or RLIMIT_RTPRIO >= prio, or
 * a thread already at prio (inherited). Returns 0 or -errno. */
int sw_thread_realtime(unsigned prio, bool inherit);

/* Back to SCHED_OTHER, nice 0 (no privilege needed from SCHED_FIFO). */
int sw_thread_normal(void);

/* Name the calling thread (cut to the kernel's 15 characters). */
void sw_thread_name(const char *name);

/* pthread_cond_timedwait for ms milliseconds from now, on a condition
 * variable with the default (CLOCK_REALTIME) clock; mu held by the caller. */
int sw_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms);

#endif
