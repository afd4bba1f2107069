#!/bin/sh
# Scale checks (issue 6): start-up time and RSS of sipwarden (1 worker) with
# N provisioned users and N active bindings, and authenticated throughput
# with those N users against the same server with SMALL users. Bindings
# are written into the journal's snapshot (bindings.snap, by
# BUILD/bench/mkbindings) before start-up, as REGISTERs from authbench
# leave them, so the server loads them as after a restart.
#
# Both servers stay up (each on CPU 0, one loaded at a time) and the
# figures alternate: ROUNDS rounds of MD5 pairs, then ROUNDS of refreshes,
# small and big in turn (the order swaps each round), a N/SMALL ratio per
# round and their median. The VM's speed moves by more than the 10 % the target
# allows within minutes; figures taken a minute apart compare two phases.
#
#   bench/scale.sh                 # N=1000000, SMALL=10000, ROUNDS=5
#   N=200000 DURATION=10 bench/scale.sh
#   BUILD=build-rel bench/scale.sh # another build dir (default build)
#   WARM=0 bench/scale.sh          # no warm-up (default 35 s per server)
set -eu
cd "$(dirname "$0")/.."
N=${N:-1000000}
SMALL=${SMALL:-10000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-5}
# Unmeasured pairs per server before the first figure: past Timer J's 32 s,
# so every figure sees the transaction expiries of steady state.
WARM=${WARM:-35}
# Refreshes reuse a nonce that authbench got in this run: its first pass
# over N users is full challenges. The refresh figures' warm-up covers that
# pass (N / 40000 s + 2) for both sets, or the N figure is a pair figure.
RWARM=${RWARM:-$((N / 40000 + 2))}
# [auth] nonce_slots for both servers; empty = the server's default (twice
# the users). NONCE_SLOTS=65536 is the fixed size before the sixth session.
NONCE_SLOTS=${NONCE_SLOTS:-}
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
PIDS=
stop() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do
		n=0; while kill -0 "$p" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
		kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null || true
	done
	PIDS=
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
$([ -n "$NONCE_SLOTS" ] && printf '[auth]\nnonce_slots = %s\n' "$NONCE_SLOTS")
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
	PIDS="$PIDS $PID"
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

rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
echo "machine: nproc=$(nproc) kernel=$(uname -r) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "setup:   1 worker per server on CPU $SCPU, authbench on CPU $GCPU, load=\"$LOAD\", $DURATION s per figure, $ROUNDS rounds, warm-up $WARM s (refresh figures: $RWARM s each)"
echo "scale: provisioning $SMALL and $N users and bindings" >&2
provision "$tmp/small" "$SMALL"
provision "$tmp/big" "$N"
sync  # start-up as after a restart: not competing with writeback of the provisioning

for set in small big; do
	users=$SMALL; [ $set = big ] && users=$N
	start "$tmp/$set"
	eval "PID_$set=\$PID PORT_$set=\$PORT USERS_$set=\$users"
	echo "== $set: $users users, $users bindings: startup_s=$STARTUP rss_after_start_kb=$(rss "$PID")"
done

# figure SET MODE [authbench args]: one measured run against SET's server
figure() {
	set_=$1 mode_=$2; shift 2
	eval "port_=\$PORT_$set_ users_=\$USERS_$set_"
	taskset -c "$GCPU" "$GEN" -d "127.0.0.1:$port_" -m "$mode_" -A MD5 -u "$users_" -P "$PASSWORD" \
		-r "$REALM" "$@" $LOAD >"$tmp/out" || true
}

if [ "$WARM" -gt 0 ]; then
	for set in small big; do
		echo "== $set: warm-up, $WARM s of MD5 pairs (not measured)"
		figure $set pair -t "$WARM" -w 0
	done
fi

# All pair rounds, then all refresh rounds: a figure after a refresh figure
# inherits its Timer J expiries (a refresh run keeps ~80k transactions a
# second for 32 s), so mixing the modes made each pair figure depend on
# which server had refreshed last.
for mode in pair refresh; do
	r=1
	while [ $r -le "$ROUNDS" ]; do
		order="small big"; [ $((r % 2)) -eq 0 ] && order="big small"
		for set in $order; do
			w=$WARMUP; [ $mode = refresh ] && w=$RWARM
			figure $set $mode -t "$DURATION" -w "$w"
			v=$(sed -n 's/^\(pairs\|refreshes\)_per_s=\([0-9]*\).*/\2/p' "$tmp/out")
			echo "round $r $mode $set: $(grep -E '_per_s|generator_cpu' "$tmp/out" | tr '\n' ' ')"
			echo "$r $mode $set ${v:-0}" >>"$tmp/fig"
		done
		r=$((r + 1))
	done
done
echo "== rss_after_load_kb: small=$(rss "$PID_small") big=$(rss "$PID_big")"
stop
# per round: big/small for each mode; then the median over rounds
awk '{ v[$1" "$2" "$3] = $4; if ($1 > nr) nr = $1 }
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	split("pair refresh", modes, " ")
	for (m = 1; m <= 2; m++) {
		line = ""; k = 0; delete rs
		for (r = 1; r <= nr; r++) {
			s = v[r" "modes[m]" small"]; b = v[r" "modes[m]" big"]
			if (s > 0) { rs[++k] = b / s; line = line sprintf(" %.2f", b / s) }
		}
		if (k) printf "ratio big/small %s: rounds%s, median %.2f\n", modes[m], line, median(rs, k)
	}
}' "$tmp/fig"
