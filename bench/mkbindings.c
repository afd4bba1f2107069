/* mkbindings DATA_DIR N: write DATA_DIR/bindings.snap with N AORs
 * sip:bK@bench.test, one binding each, as a REGISTER from authbench leaves
 * them (contact, Call-ID, CSeq, source 127.0.0.1:40000, one hour), so that
 * bench/scale.sh measures a start-up that loads N bindings from the
 * journal's snapshot. Not installed. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "store/journal.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mkbindings DATA_DIR N\n");
		return 2;
	}
	unsigned long n = strtoul(argv[2], NULL, 10);
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/bindings.snap", argv[1]);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		perror(tmp);
		return 1;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	uint8_t hdr[BJ_HDR_LEN], rec[1024];
	bj_hdr_encode(hdr, BJ_SNAPSHOT, 1);
	fwrite(hdr, 1, sizeof(hdr), f);
	int64_t exp = (int64_t)time(NULL) + 3600;
	for (unsigned long i = 0; i < n; i++) {
		char aor[64], contact[64], cid[64];
		int la = snprintf(aor, sizeof(aor), "sip:b%lu@bench.test", i);
		int lc = snprintf(contact, sizeof(contact), "sip:b%lu@127.0.0.1", i);
		int li = snprintf(cid, sizeof(cid), "pre-%lu@bench", i);
		struct bstore_binding b;
		memset(&b, 0, sizeof(b));
		b.contact = (struct sw_str){ contact, (size_t)lc };
		b.call_id = (struct sw_str){ cid, (size_t)li };
		b.user_agent = (struct sw_str){ "authbench", 9 };
		b.expires_at = exp;
		b.cseq = 1;
		b.reg_id = -1;
		b.q = -1;
		b.family = AF_INET;
		inet_pton(AF_INET, "127.0.0.1", b.addr);
		b.port = 40000;
		struct bstore_rec r = { { aor, (size_t)la }, i + 1, 1, &b };
		ssize_t k = bj_rec_encode(&r, rec, sizeof(rec));
		if (k < 0 || fwrite(rec, 1, (size_t)k, f) != (size_t)k) {
			fprintf(stderr, "mkbindings: write failed\n");
			return 1;
		}
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}
