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
if grep -rnE '\b(memcmp|strcmp|strncmp)\s*\([^)]*(response|nonce|ha1|HA1|secret|token|password|hmac)' src --include='*.c'; then
  echo "hardening: secret compared without sw_ct_eq above" >&2; bad=1
fi
readelf -h "$bin" | grep -q 'Type:.*DYN' || { echo "hardening: $bin is not PIE" >&2; bad=1; }
readelf -l "$bin" | grep -q GNU_RELRO || { echo "hardening: $bin has no RELRO" >&2; bad=1; }
readelf -d "$bin" | grep -qE 'BIND_NOW|FLAGS.*NOW' || { echo "hardening: $bin lacks BIND_NOW" >&2; bad=1; }
readelf -s "$bin" | grep -q '__stack_chk_fail' || { echo "hardening: $bin has no stack protector" >&2; bad=1; }
readelf -s "$bin" | grep -qE '__(memcpy|snprintf|read)_chk' || { echo "hardening: $bin not fortified" >&2; bad=1; }
[ $bad -eq 0 ] && echo "hardening: $bin ok (PIE, RELRO, BIND_NOW, stack protector, fortify; no banned calls)"
exit $bad
