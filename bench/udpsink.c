/* udpsink: the floor of discarding UDP datagrams in a process (issue 6,
 * "Banned-IP discard"). One socket, a readiness wait (poll) and then
 * recvmmsg(MSG_DONTWAIT) batches until the queue is empty, each datagram
 * counted and dropped: what sipwarden's UDP loop does for a banned source
 * minus guard_pre() and the pipeline call. bench/guard_flood.sh's drain
 * rounds run it beside sipwarden, at sipwarden's batch and at larger ones,
 * to split the per-datagram cost into "the kernel's recvmmsg" and
 * "sipwarden's own".
 *
 *   udpsink -l HOST:PORT [-B BATCH] [-S SLOT_BYTES] [-F DROP_IPV4]
 *
 * -B  recvmmsg batch (default 32, sipwarden's udp_batch)
 * -S  bytes per receive buffer (default 65536 = sipwarden's max_msg + 1)
 * -F  attach a classic BPF socket filter that drops datagrams from this
 *     IPv4 source in the kernel, before they are queued: what an in-kernel
 *     ban check would cost the receiver (nothing) and the delivery path
 *
 * Runs until SIGTERM/SIGINT; prints received=N on stderr. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostport.h"

#define MAX_BATCH 1024 /* UIO_MAXIOV */

static volatile sig_atomic_t stop;

static void on_sig(int s)
{
	(void)s;
	stop = 1;
}

/* Drop datagrams whose IPv4 source is src (network byte order), keep the
 * rest: the filter runs in udp_queue_rcv_skb, before the queue. */
static int attach_drop(int fd, struct in_addr src)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12), /* IPv4 saddr */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(src.s_addr), 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

int main(int argc, char **argv)
{
	struct sockaddr_in a;
	const char *lsn = NULL, *drop = NULL;
	struct in_addr drop_a;
	unsigned long batch = 32, slot = 65536;
	int opt;
	while ((opt = getopt(argc, argv, "l:B:S:F:")) != -1) {
		switch (opt) {
		case 'l': lsn = optarg; break;
		case 'B': batch = strtoul(optarg, NULL, 10); break;
		case 'S': slot = strtoul(optarg, NULL, 10); break;
		case 'F': drop = optarg; break;
		default: lsn = NULL; optind = argc; break;
		}
	}
	if (!lsn || parse_hostport(lsn, &a) < 0 || batch < 1 || batch > MAX_BATCH || slot < 512 ||
	    slot > (1ul << 20) || (drop && inet_pton(AF_INET, drop, &drop_a) != 1)) {
		fprintf(stderr, "usage: udpsink -l HOST:PORT [-B BATCH 1..1024] [-S SLOT_BYTES] [-F DROP_IPV4]\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int sz = 4 << 20; /* as sipwarden asks (src/transport/udp.c) */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("udpsink: socket");
		return 1;
	}
	if (drop && attach_drop(fd, drop_a) < 0) {
		perror("udpsink: SO_ATTACH_FILTER");
		return 1;
	}
	char *buf = malloc(batch * slot);
	static struct mmsghdr mm[MAX_BATCH];
	static struct iovec iov[MAX_BATCH];
	static struct sockaddr_storage from[MAX_BATCH];
	if (!buf) {
		perror("udpsink: malloc");
		return 1;
	}
	for (unsigned long i = 0; i < batch; i++) {
		iov[i] = (struct iovec){ buf + i * slot, slot };
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = &from[i];
	}
	struct sigaction sa = { .sa_handler = on_sig };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	unsigned long long received = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (!stop) {
		if (poll(&p, 1, -1) < 0)
			continue; /* EINTR: re-check stop */
		for (;;) {
			for (unsigned long i = 0; i < batch; i++) {
				mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
				mm[i].msg_hdr.msg_flags = 0;
			}
			int n = recvmmsg(fd, mm, (unsigned)batch, MSG_DONTWAIT, NULL);
			if (n < 0 && errno == EINTR && !stop)
				continue;
			if (n <= 0)
				break;
			received += (unsigned)n;
			if ((unsigned long)n < batch)
				break;
		}
	}
	fprintf(stderr, "udpsink: received=%llu\n", received);
	free(buf);
	return 0;
}
