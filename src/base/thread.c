#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "base/thread.h"

int sw_thread_background(const char *name)
{
	char comm[16];
	size_t n = strlen(name);
	if (n >= sizeof(comm))
		n = sizeof(comm) - 1;
	memcpy(comm, name, n);
	comm[n] = '\0';
	pthread_setname_np(pthread_self(), comm);

	struct sched_param sp = { .sched_priority = 0 };
	return -pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
}
