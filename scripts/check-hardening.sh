#!/usr/bin/env bash
# Fail when the source uses banned C functions or compares secrets with
# memcmp/strcmp (STYLE.md §9), or when the binary lacks PIE, full RELRO,
# BIND_NOW or the stack protector.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/sipwarden}
bad=0
if grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|gets)\s*\(' src --include='*.c' --include='*.h'; then
  echo "hardening: banned C function above" >&2; bad=1
fi
# A comparison with a string literal (a config key "nonce_secret", an
# option "--password-stdin") never involves a secret.
if grep -rnE '\b(memcmp|strcmp|strncmp)\s*\([^)]*(response|nonce|ha1|HA1|secret|token|password|hmac)' src --include='*.c' \
    | grep -vE '\b(strcmp|strncmp)\s*\([^,)]*,\s*"'; then
  echo "hardening: secret compared without sw_ct_eq above" >&2; bad=1
fi
# Read readelf's output first: `readelf | grep -q` under pipefail fails when
# grep exits early and readelf gets SIGPIPE.
hdr=$(readelf -h "$bin") && segs=$(readelf -l "$bin") && dyn=$(readelf -d "$bin") && syms=$(readelf -sW "$bin") \
  || { echo "hardening: cannot read $bin" >&2; exit 1; }
grep -q 'Type:.*DYN' <<<"$hdr" || { echo "hardening: $bin is not PIE" >&2; bad=1; }
grep -q GNU_RELRO <<<"$segs" || { echo "hardening: $bin has no RELRO" >&2; bad=1; }
grep -qE 'BIND_NOW|FLAGS.*NOW' <<<"$dyn" || { echo "hardening: $bin lacks BIND_NOW" >&2; bad=1; }
grep -q '__stack_chk_fail' <<<"$syms" || { echo "hardening: $bin has no stack protector" >&2; bad=1; }
grep -qE '__(memcpy|snprintf|read)_chk' <<<"$syms" || { echo "hardening: $bin not fortified" >&2; bad=1; }
[ $bad -eq 0 ] && echo "hardening: $bin ok (PIE, RELRO, BIND_NOW, stack protector, fortify; no banned calls)"
exit $bad
