#!/bin/sh
# One command: REGISTER->200 throughput and latency of build/sipwarden on
# loopback, trust-list mode (no auth), with bench/sipbench.
#
#   bench/run.sh                 # default profiles, 10 s each
#   DURATION=60 WORKERS=4 bench/run.sh
#   MAX_TRANSACTIONS=2000000 bench/run.sh   # [limits] max_transactions per worker
#
# The load comes from 127.0.0.0/8, which is both the registrar's trust list
# and the guard's trusted networks (no per-IP rate limit): this measures the
# registrar, not the guard (GUARD_TRUSTED overrides).
#   bench/run.sh -s 16 -c 128    # one custom sipbench profile
#
# Starts its own sipwarden on a free port with a throw-away data_dir, stops
# it by PID at the end. Prints the machine, the commit and the figures.
set -eu
cd "$(dirname "$0")/.."

DURATION=${DURATION:-40}   # > Timer J (32 s): completed transactions pile up that long
WARMUP=${WARMUP:-2}
WORKERS=${WORKERS:-auto}
PY=/usr/bin/python3

BUILD=${BUILD:-build}      # another build dir (e.g. of an older commit) to compare
[ -d "$BUILD" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
BIN=$BUILD/sipwarden
GEN=${GEN:-build/bench/sipbench}
[ -x "$BIN" ] && [ -x "$GEN" ] || { echo "bench: $BIN or $GEN missing" >&2; exit 1; }

tmp=$(mktemp -d /tmp/sipwarden-bench.XXXXXX)
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill "$PID"
		n=0
		while kill -0 "$PID" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
		if kill -0 "$PID" 2>/dev/null; then
			echo "bench: sipwarden ignored SIGTERM for 5 s; SIGKILL" >&2
			kill -9 "$PID"
		fi
		wait "$PID" 2>/dev/null || true
	elif [ -n "$PID" ]; then
		wait "$PID" 2>/dev/null; rc=$?
		echo "bench: sipwarden exited early (status $rc); log tail:" >&2
		tail -20 "$tmp/server.log" >&2
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/bench.conf" <<EOF
[server]
listen = udp:127.0.0.1:$PORT
workers = $WORKERS
data_dir = $tmp/var
log_level = ${LOG_LEVEL:-warn}

[limits]
$( [ -n "${MAX_TRANSACTIONS:-}" ] && printf 'max_transactions = %s\n' "$MAX_TRANSACTIONS" )
$( [ -n "${TXN_MEMORY:-}" ] && printf 'txn_memory = %s\n' "$TXN_MEMORY" )

[registrar]
trust = 127.0.0.0/8
min_expires = 60
max_expires = 3600
default_expires = 3600
max_bindings_per_aor = 10

[guard]
trusted = ${GUARD_TRUSTED:-127.0.0.0/8}

[realm example.test]
EOF

"$BIN" check -c "$tmp/bench.conf" >/dev/null 2>&1 || {
	echo "bench: config rejected:" >&2; "$BIN" check -c "$tmp/bench.conf" >&2; exit 1; }
"$BIN" run -c "$tmp/bench.conf" 2>"$tmp/server.log" &
PID=$!

# ready = answers an OPTIONS over UDP
$PY - "$PORT" <<'EOF'
import sys, time
sys.path.insert(0, "tests/integration")
import sipwire
port = int(sys.argv[1])
with sipwire.UdpPeer() as p:
    for _ in range(300):
        r = p.request(("127.0.0.1", port), "OPTIONS", "sip:127.0.0.1:%d" % port, timeout=0.1)
        if r is not None:
            sys.exit(0)
sys.exit("bench: sipwarden not answering")
EOF

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
echo "machine: nproc=$(nproc) kernel=$(uname -r) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "server:  $("$BIN" version 2>&1 | head -1), workers=$WORKERS, udp:127.0.0.1:$PORT, log_level=${LOG_LEVEL:-warn}, max_transactions=${MAX_TRANSACTIONS:-default}"
echo

run_profile() {
	echo "== sipbench $*"
	c0=$(cpu_ticks)
	"$GEN" -d "127.0.0.1:$PORT" -t "$DURATION" -w "$WARMUP" "$@"
	c1=$(cpu_ticks)
	kill -0 "$PID" 2>/dev/null || { echo "bench: sipwarden died during this profile" >&2; exit 1; }
	echo "server_rss_kb=$(awk '/^VmRSS/{print $2}' "/proc/$PID/status") server_hwm_kb=$(awk '/^VmHWM/{print $2}' "/proc/$PID/status")"
	echo "server_cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}') (over warmup+duration, $(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN{print d+w}') s)"
	echo
}

if [ $# -gt 0 ]; then
	run_profile "$@"
else
	run_profile -s 1 -c 1 -u 1000                # one at a time: latency floor
	run_profile -s 8 -c 64 -u 10000              # 8 sources, 64 outstanding
	run_profile -s 32 -c 512 -u 100000 -a 16     # 32 sockets on 16 addresses
fi

kill -0 "$PID" 2>/dev/null || { echo "bench: sipwarden died" >&2; tail -20 "$tmp/server.log" >&2; exit 1; }
