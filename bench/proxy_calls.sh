#!/usr/bin/env bash
# Authenticated call setups per second through the proxy (issue 4):
# SIPp UAC (INVITE/407/INVITE/100/180/200/ACK/BYE/200, MD5 digest) ->
# sipwarden -> SIPp UAS on loopback. Usage: bench/proxy_calls.sh [rate] [seconds]
# Binary: $SIPWARDEN_BIN or build/sipwarden. Prints calls/s and failures.
set -euo pipefail
RATE=${1:-200}
SECS=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SIPWARDEN_BIN:-$ROOT/build/sipwarden}
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
SP=$(port); PP=$(port); CP=$(port)
cat > "$W/sw.conf" <<CONF
[server]
listen = udp:127.0.0.1:$SP
data_dir = $W/var
log_level = warn
[realm example.test]
[profile md5-tools]
match_user_agent = sipp*
algorithms = MD5
[guard]
trusted = 127.0.0.0/8
[upstream pbx]
uri = sip:127.0.0.2:$PP
[proxy]
health_interval = 0
max_calls = 16384
CONF
mkdir -p "$W/var"
printf 'bench-Secret-Pass-1\n' | "$BIN" user add alice@example.test --password-stdin -c "$W/sw.conf" >/dev/null
"$BIN" run -c "$W/sw.conf" 2>"$W/sw.log" & PIDS+=($!)
sipp -sf "$ROOT/tests/integration/sipp/proxy_uas.xml" -i 127.0.0.2 -p "$PP" -nostdin \
     -key domain example.test >/dev/null 2>&1 & PIDS+=($!)
sleep 1
start=$(date +%s.%N)
sipp 127.0.0.1:"$SP" -sf "$ROOT/tests/integration/sipp/proxy_uac.xml" -s alice \
     -key domain example.test -key callee bob -au alice -ap bench-Secret-Pass-1 \
     -auth_uri bob@example.test -i 127.0.0.1 -p "$CP" -r "$RATE" -m $((RATE * SECS)) \
     -l $((RATE * 4)) -nostdin -timeout $((SECS + 30))s -trace_stat -stf "$W/stat.csv" \
     >"$W/uac.out" 2>&1 || true
end=$(date +%s.%N)
ok=$(tail -1 "$W/stat.csv" | awk -F';' '{print $16}')
fail=$(tail -1 "$W/stat.csv" | awk -F';' '{print $18}')
python3 - "$start" "$end" "$ok" "$fail" "$RATE" <<PY
import sys
s, e, ok, fail, rate = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
print("offered %s calls/s; successful calls %s, failed %s, in %.1f s (%.0f calls/s incl. the 200 ms hold)"
      % (rate, ok, fail, e - s, int(ok or 0) / (e - s)))
PY
