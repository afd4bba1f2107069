/* libFuzzer target: a SIP message through digest verification end to end
 * (parse → auth_check) against an in-memory credential store, a fixed
 * secret and a fixed clock, so seeds with valid nonces reach the hashing,
 * nc table and identity binding (STYLE.md §11). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/digest.h"
#include "base/str.h"
#include "config/auth_keys.h"
#include "sip/parse.h"
#include "store/creds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1800000000

static struct sw_config cfg;
static struct sw_auth *eng;
static struct auth_worker *wk;

static void init(void)
{
	char why[256];
	int err;
	snprintf(cfg.realms[0].name, sizeof(cfg.realms[0].name), "pbx.example.com");
	cfg.nrealms = 1;
	config_auth_key(&cfg, "auth", "", "nonce_secret",
			"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", why, sizeof(why));
	config_auth_key(&cfg, "auth", "", "nonce_slots", "1024", why, sizeof(why));
	config_auth_key(&cfg, "realm", "pbx.example.com", "algorithms",
			"SHA-512-256, SHA-256-sess, SHA-256, MD5, MD5-sess", why, sizeof(why));
	config_auth_key(&cfg, "realm", "pbx.example.com", "qop", "auth, auth-int", why, sizeof(why));
	config_auth_key(&cfg, "realm", "pbx.example.com", "allow_no_qop", "yes", why, sizeof(why));
	config_auth_key(&cfg, "realm", "pbx.example.com", "userhash", "yes", why, sizeof(why));
	config_auth_key(&cfg, "realm", "pbx.example.com", "identity", "1001:1003", why, sizeof(why));
	config_auth_key(&cfg, "profile", "legacy", "match_user_agent", "baresip*", why, sizeof(why));
	config_auth_key(&cfg, "profile", "legacy", "algorithms", "MD5", why, sizeof(why));
	eng = auth_open(&cfg, NULL, &err, why, sizeof(why));
	if (!eng)
		abort();
	struct creds_row rows[2];
	memset(rows, 0, sizeof(rows));
	const char *users[2] = { "1001", "a7f3k9" };
	for (int i = 0; i < 2; i++) {
		snprintf(rows[i].username, sizeof(rows[i].username), "%s", users[i]);
		snprintf(rows[i].realm, sizeof(rows[i].realm), "pbx.example.com");
		for (int h = 0; h < AUTH_H__COUNT; h++) {
			digest_ha1(NULL, (enum auth_hash)h, sw_str_c(users[i]), SW_STR_LIT("pbx.example.com"),
				   SW_STR_LIT("correct horse battery"), rows[i].ha1[h]);
			digest_userhash(NULL, (enum auth_hash)h, sw_str_c(users[i]),
					SW_STR_LIT("pbx.example.com"), rows[i].uh[h]);
		}
		rows[i].enabled = true;
	}
	snprintf(rows[1].aors, sizeof(rows[1].aors), "1002, 2000@lab.example.com");
	struct creds_snap *s;
	if (creds_snap_build(rows, 2, &s))
		abort();
	auth_set_snapshot(eng, s);
	wk = auth_worker_new(eng);
	if (!wk)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sip_hdr hdrs[128];
	struct sip_msg m;
	struct sip_perr perr;
	struct sip_limits lim;
	struct auth_result res;
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = htons(5060) };

	if (!eng)
		init();
	sip_limits_default(&lim);
	if (sip_parse((const char *)data, size, SIP_PARSE_DGRAM, &lim, hdrs, 128, &m, &perr) < 0 ||
	    !m.is_request)
		return 0;
	inet_pton(AF_INET, "192.0.2.10", &src.sin_addr);
	int realm = auth_realm_for(&cfg, &m);
	for (int proxy = 0; proxy < 2; proxy++) {
		if (auth_check(wk, &m, (struct sockaddr *)&src, realm < 0 ? 0 : realm, proxy, FUZZ_NOW, &res))
			abort();
		if (!res.reason || res.hdrs_len >= sizeof(res.hdrs) || strlen(res.hdrs) != res.hdrs_len)
			abort();
		if (res.outcome == AUTH_CHALLENGE && res.status != (proxy ? 407u : 401u))
			abort();
	}
	return 0;
}
