/* `sipwarden ban list | add TARGET [--for DUR] | del TARGET | flush`
 * (issue 5): edits <data_dir>/bans.db, which a running server re-reads
 * within about a second (PRAGMA data_version, see guard/guard.c). */
#ifndef SW_SERVER_CMD_BAN_H
#define SW_SERVER_CMD_BAN_H

#include "config/config-t.h"

/* argv[0] is "ban"; "-c FILE" pairs are skipped. Returns the exit status:
 * 0 done, 1 failed (message on stderr), 2 usage. */
int cmd_ban(int argc, char **argv, const struct sw_config *cfg);

#endif
