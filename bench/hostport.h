/* "A.B.C.D:PORT" for the bench tools (IPv4, loopback in practice). */
#ifndef SW_BENCH_HOSTPORT_H
#define SW_BENCH_HOSTPORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* 0, or -1 when it is not an IPv4 address, a ':' and a port 1..65535. */
static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *c = strrchr(s, ':');
	if (!c || (size_t)(c - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(c - s));
	host[c - s] = '\0';
	char *e;
	unsigned long port = strtoul(c + 1, &e, 10);
	if (*e || port == 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((unsigned short)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

#endif
