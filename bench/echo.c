/* echo: the physical limit of one request / one response over UDP on this
 * machine (issue 6). A recvmmsg/sendmmsg loop on one socket that answers
 * each SIP request with a minimal matching response and does nothing else:
 *
 *   - REGISTER without Authorization -> 401 with one WWW-Authenticate per
 *     algorithm (MD5, SHA-256, SHA-512-256, a fixed nonce, qop="auth"), so
 *     bench/authbench's pair mode runs its two round trips;
 *   - anything else -> 200 OK.
 *
 * The response copies the Via, From, To, Call-ID and CSeq lines as they
 * came (the generator matches on the Via branch) and checks nothing: no
 * digest, no state. A bench tool, not a SIP server.
 *
 *   echo -l 127.0.0.1:PORT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostport.h"

#define BATCH 64
#define RX_MAX 4096
#define TX_MAX 2048

static volatile sig_atomic_t stop;

static void on_sig(int s)
{
	(void)s;
	stop = 1;
}

static size_t put(char *o, size_t off, const char *s, size_t n)
{
	if (off + n > TX_MAX)
		return off;
	memcpy(o + off, s, n);
	return off + n;
}

/* line starts with name (case-insensitive) followed by optional spaces and ':' */
static int is_hdr(const char *p, size_t n, const char *name, const char *compact)
{
	size_t nl = strlen(name);
	size_t k = 0;
	if (n > nl && !strncasecmp(p, name, nl))
		k = nl;
	else if (compact && n > 1 && (p[0] | 0x20) == compact[0])
		k = 1;
	else
		return 0;
	while (k < n && (p[k] == ' ' || p[k] == '\t'))
		k++;
	return k < n && p[k] == ':';
}

static size_t answer(const char *in, size_t n, char *out)
{
	static const char chal[] =
		"WWW-Authenticate: Digest realm=\"bench.test\", nonce=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", qop=\"auth\", algorithm=SHA-512-256\r\n"
		"WWW-Authenticate: Digest realm=\"bench.test\", nonce=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", qop=\"auth\", algorithm=SHA-256\r\n"
		"WWW-Authenticate: Digest realm=\"bench.test\", nonce=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", qop=\"auth\", algorithm=MD5\r\n";
	if (n < 8 || !memcmp(in, "SIP/2.0 ", 8))
		return 0; /* responses are not answered */
	int reg = n > 9 && !memcmp(in, "REGISTER ", 9);
	int authed = 0;
	char hdrs[TX_MAX];
	size_t hl = 0;
	const char *p = memchr(in, '\n', n), *end = in + n;
	while (p && ++p < end) {
		const char *le = memchr(p, '\n', (size_t)(end - p));
		if (!le)
			break;
		size_t ll = (size_t)(le - p) + 1;
		if (ll <= 2)
			break; /* end of headers */
		if (is_hdr(p, ll, "Via", "v") || is_hdr(p, ll, "From", "f") ||
		    is_hdr(p, ll, "To", "t") || is_hdr(p, ll, "Call-ID", "i") ||
		    is_hdr(p, ll, "CSeq", NULL))
			hl = put(hdrs, hl, p, ll);
		else if (is_hdr(p, ll, "Authorization", NULL))
			authed = 1;
		p = le;
	}
	size_t o = 0;
	if (reg && !authed) {
		o = put(out, o, "SIP/2.0 401 Unauthorized\r\n", 26);
		o = put(out, o, hdrs, hl);
		o = put(out, o, chal, sizeof(chal) - 1);
	} else {
		o = put(out, o, "SIP/2.0 200 OK\r\n", 16);
		o = put(out, o, hdrs, hl);
	}
	o = put(out, o, "Content-Length: 0\r\n\r\n", 21);
	return o;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	if (argc != 3 || strcmp(argv[1], "-l") != 0) {
		fprintf(stderr, "usage: echo -l HOST:PORT\n");
		return 2;
	}
	if (parse_hostport(argv[2], &a) < 0) {
		fprintf(stderr, "echo: bad address %s\n", argv[2]);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int sz = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("echo: bind");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_sig };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	static char rbuf[BATCH][RX_MAX], tbuf[BATCH][TX_MAX];
	static struct sockaddr_in from[BATCH];
	struct mmsghdr rm[BATCH], tm[BATCH];
	struct iovec riov[BATCH], tiov[BATCH];
	for (unsigned k = 0; k < BATCH; k++) {
		riov[k] = (struct iovec){ rbuf[k], RX_MAX };
		memset(&rm[k], 0, sizeof(rm[k]));
		rm[k].msg_hdr.msg_iov = &riov[k];
		rm[k].msg_hdr.msg_iovlen = 1;
		rm[k].msg_hdr.msg_name = &from[k];
		memset(&tm[k], 0, sizeof(tm[k]));
		tm[k].msg_hdr.msg_iov = &tiov[k];
		tm[k].msg_hdr.msg_iovlen = 1;
	}
	unsigned long long answered = 0;
	while (!stop) {
		for (unsigned k = 0; k < BATCH; k++)
			rm[k].msg_hdr.msg_namelen = sizeof(from[k]);
		/* blocks for the first datagram, then takes what is queued */
		int r = recvmmsg(fd, rm, BATCH, MSG_WAITFORONE, NULL);
		if (r <= 0)
			continue;
		unsigned nt = 0;
		for (int k = 0; k < r; k++) {
			size_t len = answer(rbuf[k], rm[k].msg_len, tbuf[nt]);
			if (!len)
				continue;
			tiov[nt] = (struct iovec){ tbuf[nt], len };
			tm[nt].msg_hdr.msg_name = &from[k];
			tm[nt].msg_hdr.msg_namelen = rm[k].msg_hdr.msg_namelen;
			nt++;
		}
		if (nt && sendmmsg(fd, tm, nt, 0) > 0)
			answered += nt;
	}
	fprintf(stderr, "echo: answered %llu\n", answered);
	return 0;
}
