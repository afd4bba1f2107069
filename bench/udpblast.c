/* udpblast: send a fixed number of identical SIP datagrams as fast as
 * possible (or at a fixed rate) from one local address, with sendmmsg
 * batches — the "flood from a banned source" of bench/guard_flood.sh
 * (issue 5, "Performance"). Stops at the count or the time bound,
 * whichever comes first; prints what it sent and its own CPU time.
 *
 *   udpblast -d 127.0.0.1:5060 -b 127.0.0.2 [-n COUNT] [-t SECONDS]
 *            [-r PER_S] [-s SOCKETS] [-B BATCH]
 *
 * -n  datagrams to send (default 5000000)
 * -t  time bound in seconds (default 10)
 * -r  target rate in datagrams/s (default 0: as fast as possible)
 * -s  source sockets (distinct source ports; default 1, so every datagram
 *     hashes to the same SO_REUSEPORT socket, i.e. one server worker)
 * -B  sendmmsg batch (default 64)
 *
 * Output (one line each, key=value): sent, wall_s, rate_per_s, cpu_s,
 * send_errors. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostport.h"

#define MAX_BATCH 1024
#define MAX_SOCKS 64

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(void)
{
	fprintf(stderr, "usage: udpblast -d HOST:PORT -b SRCADDR [-n COUNT] [-t SECONDS] "
			"[-r PER_S] [-s SOCKETS] [-B BATCH]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_in dst, src;
	const char *dst_s = NULL, *src_s = NULL;
	unsigned long count = 5000000, rate = 0;
	double tmax = 10;
	int nsock = 1, batch = 64, opt;

	while ((opt = getopt(argc, argv, "d:b:n:t:r:s:B:")) != -1) {
		switch (opt) {
		case 'd': dst_s = optarg; break;
		case 'b': src_s = optarg; break;
		case 'n': count = strtoul(optarg, NULL, 10); break;
		case 't': tmax = atof(optarg); break;
		case 'r': rate = strtoul(optarg, NULL, 10); break;
		case 's': nsock = atoi(optarg); break;
		case 'B': batch = atoi(optarg); break;
		default: usage();
		}
	}
	if (!dst_s || !src_s || parse_hostport(dst_s, &dst) < 0 || nsock < 1 || nsock > MAX_SOCKS ||
	    batch < 1 || batch > MAX_BATCH || tmax <= 0)
		usage();
	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	if (inet_pton(AF_INET, src_s, &src.sin_addr) != 1)
		usage();

	int fds[MAX_SOCKS];
	unsigned short sport[MAX_SOCKS];
	for (int i = 0; i < nsock; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		int sz = 4 << 20;
		(void)setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		struct sockaddr_in b = src;
		socklen_t bl = sizeof(b);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&b, sizeof(b)) < 0 ||
		    connect(fds[i], (struct sockaddr *)&dst, sizeof(dst)) < 0 ||
		    getsockname(fds[i], (struct sockaddr *)&b, &bl) < 0) {
			perror("udpblast: socket");
			return 1;
		}
		sport[i] = ntohs(b.sin_port);
	}

	/* An unauthenticated INVITE such as a scanner or a SIPp flood sends; the
	 * content does not matter to a banned source (dropped before parsing). */
	static char msg[1024];
	int len = snprintf(msg, sizeof(msg),
			   "INVITE sip:100@%s SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK-udpblast-1;rport\r\n"
			   "Max-Forwards: 70\r\n"
			   "From: <sip:flood@%s>;tag=udpblast\r\n"
			   "To: <sip:100@%s>\r\n"
			   "Call-ID: udpblast-1@%s\r\n"
			   "CSeq: 1 INVITE\r\n"
			   "Contact: <sip:flood@%s:%u>\r\n"
			   "User-Agent: udpblast\r\n"
			   "Content-Type: application/sdp\r\n"
			   "Content-Length: 0\r\n\r\n",
			   dst_s, src_s, sport[0], src_s, dst_s, src_s, src_s, sport[0]);

	static struct mmsghdr mm[MAX_BATCH];
	static struct iovec iov[MAX_BATCH];
	for (int i = 0; i < batch; i++) {
		iov[i].iov_base = msg;
		iov[i].iov_len = (size_t)len;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}

	unsigned long sent = 0, errors = 0;
	double t0 = now_s(), c0 = cpu_s(), t = t0;
	int si = 0;
	while (sent < count) {
		t = now_s();
		if (t - t0 >= tmax)
			break;
		if (rate) {
			/* Pace: do not get ahead of rate × elapsed. */
			double due = (t - t0) * (double)rate;
			if ((double)sent >= due) {
				struct timespec ts = { 0, 50000 };
				nanosleep(&ts, NULL);
				continue;
			}
		}
		unsigned n = (unsigned)batch;
		if (count - sent < n)
			n = (unsigned)(count - sent);
		int r = sendmmsg(fds[si], mm, n, 0);
		if (r < 0) {
			if (errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED && errno != EINTR) {
				perror("udpblast: sendmmsg");
				return 1;
			}
			errors++;
			continue;
		}
		sent += (unsigned long)r;
		si = (si + 1) % nsock;
	}
	t = now_s();
	double wall = t - t0, cpu = cpu_s() - c0;
	printf("udpblast: %s -> %s, %d socket(s), %d bytes per datagram, batch %d, target %s\n", src_s,
	       dst_s, nsock, len, batch, rate ? "paced" : "as fast as possible");
	printf("sent=%lu\nwall_s=%.3f\nrate_per_s=%.0f\ncpu_s=%.3f\nsend_errors=%lu\n", sent, wall,
	       wall > 0 ? (double)sent / wall : 0.0, cpu, errors);
	return 0;
}
