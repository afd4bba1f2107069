#!/bin/sh
# One command: digest-authenticated REGISTER throughput and latency of
# build/sipwarden on loopback (issue 3, "Performance"), with bench/authbench.
#
#   bench/auth_bench.sh                      # every algorithm, pair + refresh
#   DURATION=20 ALGS="MD5 SHA-256" bench/auth_bench.sh
#   bench/auth_bench.sh -s 1 -c 1            # other sipbench-style load options
#
# For each algorithm (MD5, SHA-256, SHA-512-256) and mode:
#   pair     REGISTER → 401 → REGISTER + Authorization → 200 (2 round trips)
#   refresh  REGISTER + Authorization reusing the user's nonce, nc+1 → 200
# and then the ratio "SHA-256 pair / MD5 pair" (server CPU per pair and
# throughput); the issue's target is a ratio under 1.5.
#
# Starts its own sipwarden on a free port with a throw-away data_dir (no
# [registrar] trust: every REGISTER is authenticated; [guard] trusted =
# 127.0.0.0/8 so the per-IP/per-user rate limits do not answer the load with
# 503; [limits] max_transactions = MAX_TRANSACTIONS, default 1000000 per
# worker), adds USERS users with `sipwarden user add`, stops the server by PID.
set -eu
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
WORKERS=${WORKERS:-auto}
USERS=${USERS:-128}
ALGS=${ALGS:-MD5 SHA-256 SHA-512-256}
MODES=${MODES:-pair refresh}
ROUNDS=${ROUNDS:-1}              # >1: interleave rounds (noisy shared machines)
PASSWORD=bench-password-1234
REALM=bench.test
PY=/usr/bin/python3

BUILD=${BUILD:-build}            # meson build directory
[ -d "$BUILD" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" sipwarden >/dev/null
BIN=$BUILD/sipwarden
GEN=$BUILD/bench/authbench
mkdir -p "$BUILD/bench"
# authbench is a stand-alone program (OpenSSL only); rebuilt when its source changes.
if [ ! -x "$GEN" ] || [ bench/authbench.c -nt "$GEN" ]; then
	cc -O2 -Wall -Wextra -o "$GEN" bench/authbench.c \
		$(pkg-config --cflags --libs libcrypto)
fi

tmp=$(mktemp -d /tmp/sipwarden-authbench.XXXXXX)
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill "$PID"
		n=0
		while kill -0 "$PID" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
		if kill -0 "$PID" 2>/dev/null; then
			echo "auth_bench: sipwarden ignored SIGTERM for 5 s; SIGKILL" >&2
			kill -9 "$PID"
		fi
		wait "$PID" 2>/dev/null || true
	elif [ -n "$PID" ]; then
		wait "$PID" 2>/dev/null; rc=$?
		echo "auth_bench: sipwarden exited early (status $rc); log tail:" >&2
		tail -20 "$tmp/server.log" >&2
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The realm offers REALM_ALGS plus whatever ALGS adds (e.g. SHA-256-sess),
# so the 401 of a pair carries one challenge per offered algorithm.
REALM_ALGS=${REALM_ALGS:-SHA-512-256, SHA-256, MD5}
for a in $ALGS; do
	case ", $REALM_ALGS," in *", $a,"*) ;; *) REALM_ALGS="$REALM_ALGS, $a" ;; esac
done

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/bench.conf" <<EOF
[server]
listen = udp:127.0.0.1:$PORT
workers = $WORKERS
data_dir = $tmp/var
log_level = ${LOG_LEVEL:-warn}

; RFC 3261 Timer J keeps every completed UDP transaction 32 s: a pair is two
; transactions, so ~10k pairs/s need ~640k entries; the default (65536 per
; worker) would turn the load into 503s after a few seconds.
[limits]
max_transactions = ${MAX_TRANSACTIONS:-1000000}

[registrar]
min_expires = 60
max_expires = 3600
default_expires = 3600
max_bindings_per_aor = 10

[guard]
trusted = 127.0.0.0/8

[realm $REALM]
algorithms = $REALM_ALGS
md5 = allow
EOF

"$BIN" check -c "$tmp/bench.conf" >/dev/null 2>&1 || {
	echo "auth_bench: config rejected:" >&2; "$BIN" check -c "$tmp/bench.conf" >&2; exit 1; }
i=0
while [ $i -lt "$USERS" ]; do
	printf '%s\n' "$PASSWORD" | "$BIN" user add "b$i@$REALM" --password-stdin -c "$tmp/bench.conf" >/dev/null
	i=$((i + 1))
done
"$BIN" run -c "$tmp/bench.conf" 2>"$tmp/server.log" &
PID=$!

$PY - "$PORT" <<'EOF'
import sys
sys.path.insert(0, "tests/integration")
import sipwire
port = int(sys.argv[1])
with sipwire.UdpPeer() as p:
    for _ in range(300):
        r = p.request(("127.0.0.1", port), "OPTIONS", "sip:127.0.0.1:%d" % port, timeout=0.1)
        if r is not None:
            sys.exit(0)
sys.exit("auth_bench: sipwarden not answering")
EOF

echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
echo "machine: nproc=$(nproc) kernel=$(uname -r) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "server:  $("$BIN" version 2>&1 | head -1), workers=$WORKERS, udp:127.0.0.1:$PORT, users=$USERS, algorithms=\"$REALM_ALGS\", log_level=${LOG_LEVEL:-warn}, max_transactions=${MAX_TRANSACTIONS:-1000000}"
echo

if [ $# -gt 0 ]; then LOAD="$*"; else LOAD="-s 4 -c 32"; fi
# shellcheck disable=SC2086
r=1
while [ $r -le "$ROUNDS" ]; do
	for mode in $MODES; do
		for alg in $ALGS; do
			echo "== authbench -m $mode -A $alg $LOAD (round $r)"
			"$GEN" -d "127.0.0.1:$PORT" -m "$mode" -A "$alg" -u "$USERS" -P "$PASSWORD" \
				-r "$REALM" -t "$DURATION" -w "$WARMUP" -p "$PID" $LOAD | tee -a "$tmp/results"
			kill -0 "$PID" 2>/dev/null || { echo "auth_bench: sipwarden died" >&2; exit 1; }
			echo
		done
	done
	r=$((r + 1))
done

# Summary: medians over rounds, and the SHA-256 / MD5 pair ratio.
$PY - "$tmp/results" <<'EOF'
import re, statistics, sys
rows = {}
cur = None
for line in open(sys.argv[1]):
    m = re.match(r"authbench: .* mode=(\S+) algorithm=(\S+)", line)
    if m:
        cur = rows.setdefault((m.group(1), m.group(2)), {"rate": [], "p50": [], "p99": [], "cpu": []})
        continue
    if cur is None:
        continue
    m = re.match(r"(?:pairs|refreshes)_per_s=(\d+)", line)
    if m:
        cur["rate"].append(float(m.group(1)))
    m = re.match(r"latency_ms p50=([\d.]+) p90=[\d.]+ p99=([\d.]+)", line)
    if m:
        cur["p50"].append(float(m.group(1)))
        cur["p99"].append(float(m.group(2)))
    m = re.search(r"server_cpu_us_per_unit=([\d.]+)", line)
    if m:
        cur["cpu"].append(float(m.group(1)))
med = lambda v: statistics.median(v) if v else float("nan")
print("summary (median over rounds)")
print("%-8s %-12s %10s %9s %9s %16s" % ("mode", "algorithm", "units/s", "p50 ms", "p99 ms", "server µs/unit"))
for (mode, alg), r in rows.items():
    print("%-8s %-12s %10.0f %9.3f %9.3f %16.1f" % (mode, alg, med(r["rate"]), med(r["p50"]),
                                                   med(r["p99"]), med(r["cpu"])))
for mode in ("pair", "refresh"):
    a, b = rows.get((mode, "MD5")), rows.get((mode, "SHA-256"))
    if a and b and med(a["cpu"]) > 0 and med(b["rate"]) > 0:
        print("%s: SHA-256/MD5 server CPU per unit = %.2f, MD5/SHA-256 throughput = %.2f "
              "(target for a pair: < 1.5)" % (mode, med(b["cpu"]) / med(a["cpu"]),
                                              med(a["rate"]) / med(b["rate"])))
EOF
