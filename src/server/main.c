/* sipwarden command line: run, check, version (admin subcommands join here). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "server/cmd_ban.h"
#include "server/cmd_user.h"
#include "server/demo.h"
#include "server/server.h"

#ifndef SW_VERSION
#define SW_VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sipwarden COMMAND [options]\n"
		"\n"
		"  run [-c FILE]     run the server in the foreground; without -c, the demo\n"
		"                    configuration ./var/sipwarden.ini (written on first use)\n"
		"  check -c FILE     validate a configuration and warn about weak choices\n"
		"  user ... -c FILE  manage digest credentials (sipwarden user help)\n"
		"  ban ... -c FILE   list | add ADDR|USER@REALM [--for 1h] | del X | flush\n"
		"  version           print the version\n");
}

static const char *config_arg(int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			return argv[i + 1];
	}
	return NULL;
}

static int load(const char *path, struct sw_config *cfg)
{
	struct sw_config_diag diag;
	if (config_load(path, cfg, &diag) < 0) {
		fprintf(stderr, "sipwarden: %s\n", diag.text);
		return -1;
	}
	return 0;
}

static struct sw_config cfg; /* large; filled once, read-only afterwards */

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("sipwarden %s\n", SW_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	const char *path = config_arg(argc, argv);
	if (strcmp(cmd, "check") == 0) {
		if (!path) {
			fprintf(stderr, "sipwarden check: -c FILE is required\n");
			return 2;
		}
		if (load(path, &cfg) < 0)
			return 1;
		unsigned warnings = config_check(&cfg, stdout);
		printf("%s: ok (%u warning%s)\n", path, warnings, warnings == 1 ? "" : "s");
		return 0;
	}
	if (strcmp(cmd, "run") == 0) {
		char demo_path[256];
		int created = 0;
		if (!path) {
			if ((created = demo_prepare(demo_path, sizeof(demo_path))) < 0)
				return 1;
			path = demo_path;
		}
		if (load(path, &cfg) < 0)
			return 1;
		if (created && demo_user(&cfg) < 0)
			return 1;
		return server_run(&cfg);
	}
	if (strcmp(cmd, "ban") == 0) {
		if (!path) {
			fprintf(stderr, "sipwarden ban: -c FILE is required (the server's configuration)\n");
			return 2;
		}
		if (load(path, &cfg) < 0)
			return 1;
		return cmd_ban(argc - 1, argv + 1, &cfg);
	}
	if (strcmp(cmd, "user") == 0) {
		if (argc >= 3 && (strcmp(argv[2], "help") == 0 || strcmp(argv[2], "--help") == 0)) {
			cmd_user_usage(stdout);
			return 0;
		}
		if (!path) {
			fprintf(stderr, "sipwarden user: -c FILE is required (the server's configuration)\n");
			return 2;
		}
		if (load(path, &cfg) < 0)
			return 1;
		return cmd_user(argc - 1, argv + 1, &cfg);
	}
	fprintf(stderr, "sipwarden: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return 2;
}
