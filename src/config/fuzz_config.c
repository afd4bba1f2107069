/* libFuzzer target (STYLE.md §11): the config loader over arbitrary file
 * contents. config_load reads a path, so each input is written to one
 * memfd and loaded through /proc/self/fd/N; a config that loads is also
 * run through config_check (the warnings of `sipwarden check`). The
 * loader must never crash, overrun a fixed-size field or leak, whatever
 * the file holds: it is written by admins, but also by provisioning
 * scripts fed with data from elsewhere. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sw_config cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	static FILE *devnull;
	struct sw_config_diag diag;

	if (fd < 0) {
		fd = memfd_create("fuzz_config", 0);
		devnull = fopen("/dev/null", "w");
		if (fd < 0 || !devnull)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (size > 1 << 20)
		return 0;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	if (config_load(path, &cfg, &diag) == 0)
		(void)config_check(&cfg, devnull);
	return 0;
}
