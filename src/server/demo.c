/* The embedded default: loopback listeners, SQLite under ./var, a demo realm. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/cmd_user.h"
#include "server/demo.h"

static const char demo_ini[] =
	"; sipwarden demo configuration, written by `sipwarden run` on first use.\n"
	"; Edit freely; `sipwarden check -c var/sipwarden.ini` validates it.\n"
	"\n"
	"[server]\n"
	"listen = udp:127.0.0.1:5060\n"
	"listen = tcp:127.0.0.1:5060\n"
	"workers = auto\n"
	"data_dir = ./var\n"
	"log_level = info\n"
	"\n"
	"[registrar]\n"
	"; Networks listed in `trust` may register without a password; everyone\n"
	"; else authenticates with digest.\n"
	"; trust = 192.0.2.0/24\n"
	"min_expires = 60\n"
	"max_expires = 3600\n"
	"\n"
	"[realm demo.sipwarden.test]\n"
	"algorithms = SHA-256, MD5\n"
	"md5 = warn\n"
	"\n"
	"; Clients that fail when offered more than MD5 (baresip 1.0) get MD5 only.\n"
	"[profile legacy]\n"
	"match_user_agent = baresip*\n"
	"algorithms = MD5\n";

int demo_prepare(char *path, size_t cap)
{
	if (mkdir("var", 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "sipwarden: cannot create ./var: %s\n", strerror(errno));
		return -1;
	}
	snprintf(path, cap, "var/sipwarden.ini");
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		fprintf(stderr, "sipwarden: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	ssize_t n = write(fd, demo_ini, sizeof(demo_ini) - 1);
	close(fd);
	if (n != (ssize_t)sizeof(demo_ini) - 1) {
		fprintf(stderr, "sipwarden: cannot write %s\n", path);
		return -1;
	}
	fprintf(stderr, "sipwarden: wrote the demo configuration %s (realm demo.sipwarden.test)\n", path);
	return 1;
}

int demo_user(const struct sw_config *cfg)
{
	char *argv[] = { "user", "add", "1000@demo.sipwarden.test", "--generate", NULL };
	fprintf(stderr, "sipwarden: creating the demo user 1000@demo.sipwarden.test; its password is "
			"shown once, below:\n");
	return cmd_user(4, argv, cfg) == 0 ? 0 : -1;
}
