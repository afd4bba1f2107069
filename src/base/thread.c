#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/thread.h"

void sw_thread_name(const char *name)
{
	char comm[16];   /* the kernel's limit, NUL included */
	size_t n = strlen(name);
	if (n >= sizeof(comm))
		n = sizeof(comm) - 1;
	memcpy(comm, name, n);
	comm[n] = '\0';
	pthread_setname_np(pthread_self(), comm);
}

int sw_thread_background(const char *name)
{
	sw_thread_name(name);
	struct sched_param sp = { .sched_priority = 0 };
	return -pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
}

int sw_thread_realtime(unsigned prio, bool inherit)
{
	struct sched_param sp = { .sched_priority = (int)prio };
	/* sched_setscheduler with a thread id sets that thread alone on
	 * Linux; pthread_setschedparam cannot pass SCHED_RESET_ON_FORK */
	if (sched_setscheduler(gettid(), SCHED_FIFO | (inherit ? 0 : SCHED_RESET_ON_FORK), &sp) < 0)
		return -errno;
	return 0;
}

int sw_thread_normal(void)
{
	struct sched_param sp = { .sched_priority = 0 };
	return -pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
}

int sw_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_cond_timedwait(cv, mu, &ts);
}
