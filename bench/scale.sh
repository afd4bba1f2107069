#!/bin/sh
# Scale checks (issue 6): start-up time and RSS of sipwarden (1 worker) with
# N provisioned users and N active bindings, then authenticated throughput
# with those N users next to the same run with SMALL users (ratio from one
# run). Bindings are written into the journal's snapshot (bindings.snap,
# by BUILD/bench/mkbindings) before start-up, as REGISTERs from authbench
# leave them, so the server loads them as after a restart.
#
#   bench/scale.sh                 # N=1000000, SMALL=10000
#   N=200000 DURATION=10 bench/scale.sh
#   BUILD=build-rel bench/scale.sh # another build dir (default build)
set -eu
cd "$(dirname "$0")/.."
N=${N:-1000000}
SMALL=${SMALL:-10000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
LOAD=${LOAD:-"-s 4 -c 200"}
SCPU=${SERVER_CPU:-0}
GCPU=${GEN_CPU:-1}
REALM=bench.test
PASSWORD=bench-password-1234
PY=/usr/bin/python3
BUILD=${BUILD:-build}
BIN=${SW_BIN:-$BUILD/sipwarden}
GEN=$BUILD/bench/authbench
[ -d "$BUILD" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
if [ ! -x "$GEN" ] || [ bench/authbench.c -nt "$GEN" ]; then
	cc -O2 -Wall -Wextra -o "$GEN" bench/authbench.c $(pkg-config --cflags --libs libcrypto)
fi
tmp=$(mktemp -d /tmp/sipwarden-scale.XXXXXX)
PID=
stop() {
	[ -n "$PID" ] || return 0
	kill "$PID" 2>/dev/null || true
	n=0; while kill -0 "$PID" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	kill -0 "$PID" 2>/dev/null && kill -9 "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null || true
	PID=
}
trap 'stop; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

conf() { # dir port
	cat <<EOF2
[server]
listen = udp:127.0.0.1:$2
workers = 1
data_dir = $1
log_level = warn
[registrar]
min_expires = 60
max_expires = 3600
default_expires = 3600
max_bindings_per_aor = 10
max_bindings = $((N + N / 10))
[limits]
; Timer J keeps every completed UDP REGISTER 32 s: at ~64k pairs/s that is
; 4M transactions, more than the default 1M per worker (then 503
; transaction-table-full). Sized as an operator would (as compare.sh).
max_transactions = 8388608
[guard]
trusted = 127.0.0.0/8
[realm $REALM]
algorithms = SHA-512-256, SHA-256, MD5
md5 = allow
EOF2
}

provision() { # dir users
	mkdir -p "$1"
	conf "$1" 5999 >"$1/c.conf"
	printf '%s\n' "$PASSWORD" | "$BIN" user add "b0@$REALM" --password-stdin -c "$1/c.conf" >/dev/null
	$PY bench/provision.py --users "$2" --realm "$REALM" --password "$PASSWORD" --sipwarden "$1/credentials.db"
	# bindings as a REGISTER from authbench leaves them (aor, contact, Call-ID, CSeq, source)
	"$BUILD/bench/mkbindings" "$1" "$2"
}

free_port() { $PY -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start DIR: prints start-up seconds (exec to the first OPTIONS answer)
start() {
	port=$(free_port)
	conf "$1" "$port" >"$1/run.conf"
	t0=$(date +%s.%N)
	taskset -c "$SCPU" "$BIN" run -c "$1/run.conf" 2>"$1/server.log" &
	PID=$!
	$PY - "$port" <<'EOF2'
import sys
sys.path.insert(0, "tests/integration")
import sipwire
port = int(sys.argv[1])
with sipwire.UdpPeer() as p:
    for _ in range(3000):
        if p.request(("127.0.0.1", port), "OPTIONS", "sip:127.0.0.1:%d" % port, timeout=0.02) is not None:
            sys.exit(0)
sys.exit("scale: not answering")
EOF2
	t1=$(date +%s.%N)
	PORT=$port
	STARTUP=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')
}

rss() { awk '/^VmRSS/{print $2}' "/proc/$PID/status"; }

echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
echo "machine: nproc=$(nproc) kernel=$(uname -r) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "setup:   1 worker on CPU $SCPU, authbench on CPU $GCPU, load=\"$LOAD\", $DURATION s per figure"
echo "scale: provisioning $SMALL and $N users and bindings" >&2
provision "$tmp/small" "$SMALL"
provision "$tmp/big" "$N"

for set in small big; do
	users=$SMALL; [ $set = big ] && users=$N
	start "$tmp/$set"
	r0=$(rss)
	echo "== $users users, $users bindings: startup_s=$STARTUP rss_after_start_kb=$r0"
	for mode in pair refresh; do
		taskset -c "$GCPU" "$GEN" -d "127.0.0.1:$PORT" -m $mode -A MD5 -u "$users" -P "$PASSWORD" \
			-r "$REALM" -t "$DURATION" -w "$WARMUP" $LOAD >"$tmp/out" || true
		grep -E "_per_s|generator" "$tmp/out" | sed 's/^/    /'
		echo "$set $mode $(sed -n 's/^\(pairs\|refreshes\)_per_s=\([0-9]*\).*/\2/p' "$tmp/out")" >>"$tmp/fig"
	done
	echo "    rss_after_load_kb=$(rss)"
	stop
done
awk '{ r[$1" "$2] = $3 } END {
	printf "ratio %s/%s users: pairs %.2f, refreshes %.2f\n", "big", "small",
		r["big pair"] / r["small pair"], r["big refresh"] / r["small refresh"] }' "$tmp/fig"
