/* `sipwarden user …`: the credential store from the command line (issue 3).
 * Works while the server runs; the server picks changes up within ~1 s. */
#ifndef SW_SERVER_CMD_USER_H
#define SW_SERVER_CMD_USER_H

#include <stdio.h>
#include "config/config-t.h"

/* argv[0] is "user". Returns the process exit status (0, 1 error, 2 usage).
 *   user add USER@REALM [--password-stdin | --generate] [--aor LIST]
 *   user passwd USER@REALM [--password-stdin | --generate]
 *   user del | disable | enable USER@REALM
 *   user aors USER@REALM LIST        (other AORs this Auth ID may act for)
 *   user list [REALM]
 *   user import-kamailio DBFILE [--replace]
 * "-c FILE" / "--config FILE" anywhere are skipped (main reads them). */
int cmd_user(int argc, char **argv, const struct sw_config *cfg);
void cmd_user_usage(FILE *out);

#endif
