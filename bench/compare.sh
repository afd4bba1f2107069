#!/bin/sh
# One command, side by side (issue 6): the echo responder (physical limit),
# sipwarden (1 worker) and Kamailio (Debian, tuned as an operator would,
# bench/kamailio/kamailio.cfg) as authenticating registrars, each on CPU 0,
# with the same generator (bench/authbench) on CPU 1 and the same users.
#
#   bench/compare.sh             # throughput: pairs/s and refreshes/s + ratios
#   bench/compare.sh callgrind   # instructions per authenticated REGISTER pair
#                                # (valgrind --tool=callgrind; repeatable on a
#                                # noisy machine)
#   bench/compare.sh interleave  # two targets (IL_PAIR, "echo sipwarden"),
#                                # figure by figure: both servers up, MD5 pairs
#                                # and refreshes measured alternately ROUNDS (5)
#                                # times, order swapped each round; a ratio per
#                                # round and their median (the VM's speed
#                                # changes within a run; alternating figures
#                                # puts both targets in the same phase)
#   bench/compare.sh latency     # MD5 pairs and refreshes: closed-loop maximum,
#                                # then open loop (authbench -R) at LAT_PCT % of
#                                # it: p50..max, and p99 <= 1 ms? (issue 6)
#
# Knobs (environment): USERS (10000), DURATION (s per figure, 10), WARMUP
# (2), LOAD (authbench -s/-c, "-s 4 -c 200"), ALGS (sipwarden pair
# algorithms, "MD5 SHA-256 SHA-512-256"), TARGETS ("echo sipwarden
# kamailio"), SW_WORKERS (1), CG_PAIRS_S (callgrind: measured seconds, 20),
# SERVER_CPU / GEN_CPU (0 / 1), SW_BIN (build/sipwarden), SW_FSYNC
# (sipwarden's [registrar] fsync, no; yes = msync before each 200); target
# sipwarden_b runs SW_BIN_B (default: SW_BIN) the same way, with a data_dir
# of its own (A/B of two builds in one run; with interleave, side by side),
# SW_RT_PRIO / SW_RT_PRIO_B (sipwarden's / sipwarden_b's [server]
# realtime_priority, 0 = normal priority; default 0 / SW_RT_PRIO),
# TP_WARM (throughput: s of unmeasured load per server before its first
# figure, 35: past Timer J; 0 = none).
# latency: LAT_PCT (50: open-loop rate in % of the closed-loop maximum),
# LAT_WARMUP (s of open loop before its window, 35: past Timer J), LAT_TICK
# (authbench -i, µs, 100), LAT_CAP (open-loop units in flight, -c, 2000).
#
# Kamailio comes from Debian (kamailio, kamailio-sqlite-modules), installed
# here with apt-get when missing, idempotently (never by CI).
set -eu
cd "$(dirname "$0")/.."

MODE=${1:-throughput}
USERS=${USERS:-10000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
LOAD=${LOAD:-"-s 4 -c 200"}
ALGS=${ALGS:-"MD5 SHA-256 SHA-512-256"}
TARGETS=${TARGETS:-"echo sipwarden kamailio"}
TP_WARM=${TP_WARM:-35}
SW_WORKERS=${SW_WORKERS:-1}
SW_FSYNC=${SW_FSYNC:-no}
CG_PAIRS_S=${CG_PAIRS_S:-20}
LAT_PCT=${LAT_PCT:-50}
# Timer J keeps a completed UDP REGISTER transaction 64*T1 = 32 s (RFC 3261
# §17.2.2): the first expiries come 32 s after the load starts, so a window
# that opens earlier never sees the worker's expiry work of steady state.
LAT_WARMUP=${LAT_WARMUP:-35}
LAT_TICK=${LAT_TICK:-100}
# Open loop: units in flight at most. A unit due while all are busy is
# skipped and missing from the percentiles, so the cap must outlast a
# stall: 2000 is 60 ms at 33k/s.
LAT_CAP=${LAT_CAP:-2000}
SCPU=${SERVER_CPU:-0}
GCPU=${GEN_CPU:-1}
REALM=bench.test
PASSWORD=bench-password-1234
PY=/usr/bin/python3

case "$MODE" in throughput|callgrind|latency|interleave) ;; *) echo "usage: $0 [throughput|callgrind|latency|interleave]" >&2; exit 2 ;; esac

# --- tools -------------------------------------------------------------
kam_pkgs="kamailio kamailio-sqlite-modules"
[ "$MODE" = callgrind ] && kam_pkgs="$kam_pkgs valgrind"
missing=
for p in $kam_pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "compare: installing$missing" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
BIN=${SW_BIN:-build/sipwarden}
BIN_B=${SW_BIN_B:-$BIN} # target sipwarden_b: another binary (before/after in one run)
SW_RT_PRIO=${SW_RT_PRIO:-0}
SW_RT_PRIO_B=${SW_RT_PRIO_B:-$SW_RT_PRIO}
ECHO=build/bench/echo
GEN=build/bench/authbench
if [ ! -x "$GEN" ] || [ bench/authbench.c -nt "$GEN" ]; then
	cc -O2 -Wall -Wextra -o "$GEN" bench/authbench.c $(pkg-config --cflags --libs libcrypto)
fi

tmp=$(mktemp -d /tmp/sipwarden-compare.XXXXXX)
PID=
stop_server() {
	[ -n "$PID" ] || return 0
	if kill -0 "$PID" 2>/dev/null; then
		kill "$PID" 2>/dev/null || true
		n=0
		while kill -0 "$PID" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
		kill -0 "$PID" 2>/dev/null && kill -9 "$PID" 2>/dev/null
	fi
	wait "$PID" 2>/dev/null || true
	PID=
}
PID_E= PID_S=
cleanup() {
	stop_server
	for p in $PID_E $PID_S; do PID=$p; stop_server; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { $PY -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() { # port: any answer to an OPTIONS
	$PY - "$1" <<'EOF'
import sys
sys.path.insert(0, "tests/integration")
import sipwire
port = int(sys.argv[1])
with sipwire.UdpPeer() as p:
    for _ in range(600):
        r = p.request(("127.0.0.1", port), "OPTIONS", "sip:127.0.0.1:%d" % port, timeout=0.1)
        if r is not None:
            sys.exit(0)
sys.exit("compare: server on port %d not answering" % port)
EOF
}

# utime+stime (ticks) of every process in the server's process group
group_ticks() {
	t=0
	# the leader is in its own group (setsid): once, not twice
	for p in $({ pgrep -g "$PID" 2>/dev/null; echo "$PID"; } | sort -u); do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
		t=$((t + v))
	done
	echo "$t"
}

# ns every thread of the server's process group spent runnable but waiting
# for a CPU (/proc/PID/task/*/schedstat, 2nd field): another task had CPU
# SERVER_CPU, i.e. the noise of a shared machine, not the server's work.
# Threads at SCHED_IDLE (policy 5: sipwarden's compaction, guard writer and
# housekeeping) are left out: waiting for the worker is what they are for.
group_wait_ns() {
	for p in $({ pgrep -g "$PID" 2>/dev/null; echo "$PID"; } | sort -u); do
		for t in /proc/"$p"/task/*; do
			[ "$(awk '{print $41}' "$t/stat" 2>/dev/null)" = 5 ] && continue
			cat "$t/schedstat" 2>/dev/null
		done
	done | awk '{s += $2} END {printf "%.0f\n", s + 0}'
}

# --- users -------------------------------------------------------------
echo "compare: provisioning $USERS users" >&2
cat >"$tmp/sw.conf" <<EOF
[server]
listen = udp:127.0.0.1:5999
workers = $SW_WORKERS
realtime_priority = 0
data_dir = $tmp/var
log_level = warn

[registrar]
min_expires = 60
max_expires = 3600
default_expires = 3600
max_bindings_per_aor = 10
fsync = $SW_FSYNC

[guard]
trusted = 127.0.0.0/8

[limits]
; Timer J keeps every completed UDP REGISTER 32 s (64*T1): at 64k pairs/s
; that is 4.1M transactions alive, beyond the default 1M per worker (which
; then answers 503 transaction-table-full; 4M was the edge in a 64k/s run).
; Sized as an operator would; untouched entries cost no memory.
max_transactions = 8388608

[realm $REALM]
algorithms = SHA-512-256, SHA-256, MD5
md5 = allow
EOF
printf '%s\n' "$PASSWORD" | "$BIN" user add "b0@$REALM" --password-stdin -c "$tmp/sw.conf" >/dev/null
$PY bench/provision.py --users "$USERS" --realm "$REALM" --password "$PASSWORD" \
	--sipwarden "$tmp/var/credentials.db" --kamailio "$tmp/kam.db"
# sipwarden_b gets the same users in a data_dir of its own (a data_dir is
# locked by the server using it: interleave runs both at once)
cp -a "$tmp/var" "$tmp/var_b"

HZ=$(getconf CLK_TCK)
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
echo "machine: nproc=$(nproc) kernel=$(uname -r) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "setup:   server on CPU $SCPU, generator on CPU $GCPU, users=$USERS, load=\"$LOAD\", $DURATION s per figure after $WARMUP s; $("$BIN" version 2>&1 | head -1) workers=$SW_WORKERS realtime_priority=$SW_RT_PRIO (sipwarden_b: $SW_RT_PRIO_B); $(kamailio -v 2>/dev/null | head -1)"
echo

# start_<target> PORT [wrapper...]: sets PID
start_echo() {
	port=$1; shift
	setsid "$@" taskset -c "$SCPU" "$ECHO" -l "127.0.0.1:$port" 2>"$tmp/echo.log" &
	PID=$!
}
start_sipwarden() {
	port=$1; shift
	sed -e "s/^listen = udp:127.0.0.1:5999/listen = udp:127.0.0.1:$port/" \
		-e "s/^realtime_priority = 0/realtime_priority = $SW_RT_PRIO/" "$tmp/sw.conf" >"$tmp/sw-run.conf"
	setsid "$@" taskset -c "$SCPU" "$BIN" run -c "$tmp/sw-run.conf" 2>"$tmp/sw.log" &
	PID=$!
}
start_sipwarden_b() {
	port=$1; shift
	sed -e "s/^listen = udp:127.0.0.1:5999/listen = udp:127.0.0.1:$port/" \
		-e "s/^realtime_priority = 0/realtime_priority = $SW_RT_PRIO_B/" \
		-e "s|^data_dir = .*|data_dir = $tmp/var_b|" "$tmp/sw.conf" >"$tmp/sw-run-b.conf"
	setsid "$@" taskset -c "$SCPU" "$BIN_B" run -c "$tmp/sw-run-b.conf" 2>"$tmp/sw-b.log" &
	PID=$!
}
start_kamailio() {
	port=$1; shift
	# -x tlsf -m 4096: the allocator and shared memory an operator gives a
	# busy registrar (tm keeps each transaction's ~8 KB cell for wait_timer;
	# with 1024 MB, 35 s of warm-up load ran it out: 500s by the 100 000)
	setsid "$@" taskset -c "$SCPU" kamailio -f bench/kamailio/kamailio.cfg \
		-A "LISTEN=udp:127.0.0.1:$port" -A "DBURL=\"sqlite://$tmp/kam.db\"" \
		-x tlsf -m 4096 -M 16 -DD -E >"$tmp/kam.log" 2>&1 &
	PID=$!
}

# one authbench figure: prints its output (kept in $tmp/out), leaves the
# rate in $RATE and the server's run-queue wait in $WAIT_PCT (% of the run,
# warm-up included); further arguments are added to authbench's (after LOAD)
measure() { # target port mode alg [authbench options...]
	m_target=$1 m_port=$2 m_mode=$3 m_alg=$4
	shift 4
	c0=$(group_ticks)
	w0=$(group_wait_ns)
	ns0=$(date +%s%N)
	taskset -c "$GCPU" "$GEN" -d "127.0.0.1:$m_port" -m "$m_mode" -A "$m_alg" -u "$USERS" -P "$PASSWORD" \
		-r "$REALM" -t "$DURATION" -w "$WARMUP" $LOAD "$@" >"$tmp/out" || true
	c1=$(group_ticks)
	w1=$(group_wait_ns)
	ns1=$(date +%s%N)
	sed 's/^/    /' "$tmp/out"
	RATE=$(sed -n 's/^\(pairs\|refreshes\)_per_s=\([0-9]*\).*/\2/p' "$tmp/out")
	ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' "$tmp/out")
	sat=$(grep -c generator_saturated "$tmp/out" || true)
	scpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}')
	us=$(awk -v s="$scpu" -v n="${ok:-0}" 'BEGIN{if (n > 0) printf "%.1f", s * 1e6 / n; else print "-"}')
	WAIT_PCT=$(awk -v a="$w0" -v b="$w1" -v d="$((ns1 - ns0))" 'BEGIN{printf "%.1f", (d > 0 ? 100 * (b - a) / d : 0)}')
	# per unit at the window's rate: CPU per second of the whole run over
	# units per second of the window (the long open-loop warm-up would
	# otherwise be charged to the window's units)
	usr=$(awk -v s="$scpu" -v d="$((ns1 - ns0))" -v n="${ok:-0}" -v w="$DURATION" \
		'BEGIN{if (n > 0 && d > 0) printf "%.1f", (s / (d / 1e9)) / (n / w) * 1e6; else print "-"}')
	echo "    server_cpu_s=$scpu (all its processes, warmup included) server_cpu_us_per_unit=$us server_cpu_us_per_unit_at_rate=$usr server_runq_wait=$WAIT_PCT% (of the run: runnable, CPU taken by another task)"
	echo "$m_target $m_mode $m_alg ${RATE:-0} $sat" >>"$tmp/figures"
}

# each_target FN: every target of TARGETS in turn on a free port, with
# FN TARGET PORT run against it; a target that died on the way stops the run
each_target() {
	for target in $TARGETS; do
		port=$(free_port)
		"start_$target" "$port"
		wait_ready "$port"
		"$1" "$target" "$port"
		kill -0 "$PID" 2>/dev/null || { echo "compare: $target died" >&2; tail "$tmp"/*.log >&2; exit 1; }
		stop_server
		echo
	done
}

throughput_one() { # target port
	case $1 in
		sipwarden*) pairs=$ALGS; refr="MD5 SHA-256" ;;
		*) pairs=MD5; refr=MD5 ;;
	esac
	# Unmeasured load first, past Timer J (32 s): every server's first
	# figure then meets a transaction table in its steady state (filled,
	# reused), like the later ones, instead of paying its first touches.
	if [ "$TP_WARM" -gt 0 ]; then
		echo "== $1: warm-up, $TP_WARM s of MD5 pairs (not measured)"
		taskset -c "$GCPU" "$GEN" -d "127.0.0.1:$2" -m pair -A MD5 -u "$USERS" -P "$PASSWORD" \
			-r "$REALM" -t "$TP_WARM" -w 0 $LOAD >/dev/null 2>&1 || true
	fi
	for alg in $pairs; do
		echo "== $1: full-challenge pairs, $alg"
		measure "$1" "$2" pair "$alg"
	done
	for alg in $refr; do
		echo "== $1: nonce-reusing refreshes, $alg"
		measure "$1" "$2" refresh "$alg"
	done
}

throughput() {
	: >"$tmp/figures"
	each_target throughput_one
	echo "== summary (per second; ratios from this one run)"
	awk '
	{ r[$1" "$2" "$3] = $4; if ($5 > 0) sat[$1" "$2" "$3] = 1 }
	function f(k) { return (k in r) ? r[k] : "-" }
	function ratio(a, b) { return (a in r && b in r && r[b] > 0) ? sprintf("%.2f", r[a] / r[b]) : "-" }
	END {
		printf "%-34s %10s %10s %10s %8s %8s\n", "figure", "sipwarden", "kamailio", "echo", "sw/kam", "sw/echo"
		n = split("pair:MD5 pair:SHA-256 pair:SHA-512-256 refresh:MD5 refresh:SHA-256", F, " ")
		for (i = 1; i <= n; i++) {
			split(F[i], p, ":")
			s = "sipwarden " p[1] " " p[2]; k = "kamailio " p[1] " MD5"; e = "echo " p[1] " MD5"
			printf "%-34s %10s %10s %10s %8s %8s\n", (p[1] == "pair" ? "full-challenge pairs " : "nonce-reusing refreshes ") p[2],
				f(s), f(k), f(e), ratio(s, k), ratio(s, e)
		}
		for (k in r) if (k ~ /^sipwarden_b /) {
			split(k, q, " "); a = "sipwarden " q[2] " " q[3]
			printf "sipwarden_b %s %s: %s (sipwarden/sipwarden_b = %s)\n", q[2], q[3], r[k], ratio(a, k)
		}
		for (k in sat) print "generator saturated (figure is a lower bound): " k
	}' "$tmp/figures"
}

# --- callgrind: instructions per authenticated REGISTER pair -------------
cg_one() { # target
	target=$1
	port=$(free_port)
	"start_$target" "$port" valgrind --tool=callgrind --trace-children=yes \
		--callgrind-out-file="$tmp/cg.$target.%p" --dump-instr=no --collect-atstart=yes
	wait_ready "$port"
	# warm: users, nonce slots, caches, first allocations
	taskset -c "$GCPU" "$GEN" -d "127.0.0.1:$port" -m pair -A MD5 -u "$USERS" -P "$PASSWORD" \
		-r "$REALM" -t 5 -w 0 -T 5 -s 1 -c 8 >/dev/null
	pids=$(pgrep -g "$PID" | tr '\n' ' ')
	for p in $pids; do callgrind_control -z "$p" >/dev/null 2>&1 || true; done
	taskset -c "$GCPU" "$GEN" -d "127.0.0.1:$port" -m pair -A MD5 -u "$USERS" -P "$PASSWORD" \
		-r "$REALM" -t "$CG_PAIRS_S" -w 0 -T 5 -s 1 -c 8 >"$tmp/cg.out"
	rm -f "$tmp"/cg."$target".*
	for p in $pids; do callgrind_control -d "$p" >/dev/null 2>&1 || true; done
	sleep 1
	ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' "$tmp/cg.out")
	ir=$(cat "$tmp"/cg."$target".* 2>/dev/null | awk '/^summary:/{s += $2} END{printf "%.0f", s}')  # each file has summary: and totals:, the same count: sum one
	stop_server
	echo "$target: pairs=$ok instructions=$ir instructions_per_pair=$(awk -v i="$ir" -v n="${ok:-0}" 'BEGIN{if (n > 0) printf "%.0f", i / n; else print "-"}') (all processes, between zero and dump)"
}

# --- latency: open loop at LAT_PCT % of the closed-loop maximum ----------
# Open loop (authbench -R): units start on a fixed schedule whatever the
# server does, and latency counts from the scheduled start, so a stall
# shows in the percentiles instead of slowing the load (coordinated
# omission). The closed-loop run just before gives the maximum. The echo
# responder's own maximum is the generator's, so echo runs last, at
# sipwarden's open-loop rate: the floor that the machine, the kernel and
# the generator alone put under the same load.
latency_one() { # target port
	for mode in pair refresh; do
		floor=$(awk -v m="$mode" '$1 == "sipwarden" && $2 == m { for (i = 5; i <= NF; i++) if ($i ~ /^offered=/) { sub("offered=", "", $i); print $i } }' "$tmp/latency")
		if [ "$1" = echo ] && [ -n "$floor" ]; then
			max=- max_sat=0 rate=$floor
			echo "== $1: open loop at sipwarden's rate, $rate/s, $mode MD5"
		else
			echo "== $1: closed-loop maximum, $mode MD5"
			measure "$1" "$2" "$mode" MD5
			max=${RATE:-0}
			max_sat=$sat
			rate=$(awk -v r="$max" -v f="$LAT_PCT" 'BEGIN{printf "%d", r * f / 100}')
			if [ "$rate" -le 0 ]; then
				echo "compare: no closed-loop rate for $1 $mode" >&2
				continue
			fi
			echo "== $1: open loop at $LAT_PCT % of it, $rate/s, $mode MD5"
		fi
		measure "$1" "$2" "$mode" MD5 -w "$LAT_WARMUP" -R "$rate" -i "$LAT_TICK" -c "$LAT_CAP"
		# target mode max max_saturated and authbench's key=value pairs
		echo "$1 $mode $max $max_sat $(sed -n \
			-e 's/^\(pairs\|refreshes\)_per_s=\([0-9]*\).* non200=\([0-9]*\) timeouts=\([0-9]*\).*/achieved=\2 non200=\3 timeouts=\4/p' \
			-e 's/^offered_per_s=\([0-9]*\).* skipped=\([0-9]*\).*/offered=\1 skipped=\2/p' \
			-e 's/^latency_ms p50=\([^ ]*\) p90=\([^ ]*\) p99=\([^ ]*\) p999=\([^ ]*\) max<=\([^ ]*\).*/p50=\1 p90=\2 p99=\3 p999=\4 max=\5/p' \
			-e 's/^latency_from_send_ms .*p99=\([^ ]*\) p999.*/send_p99=\1/p' \
			-e 's/^send_lag_ms .*p99=\([^ ]*\) p999.*/lag_p99=\1/p' \
			-e 's/^generator_cpu_s=[^ ]* (\([0-9]*\)% of one core) generator_runq_wait_ms=\([0-9.]*\).*/gen_cpu=\1 gen_wait_ms=\2/p' \
			"$tmp/out" | tr '\n' ' ') srv_wait=$WAIT_PCT" >>"$tmp/latency"
	done
}

latency() {
	: >"$tmp/figures"
	: >"$tmp/latency"
	case " $TARGETS " in *" echo "*) TARGETS="$(echo " $TARGETS " | sed 's/ echo / /g') echo" ;; esac
	each_target latency_one
	echo "== summary: open loop at $LAT_PCT % of each target's own closed-loop maximum (echo: at sipwarden's"
	echo "   rate, the floor of machine + kernel + generator), MD5, $DURATION s after $LAT_WARMUP s"
	echo "   latency (ms) from the scheduled start; send_p99: from the actual first send; lag_p99: the"
	echo "   generator's schedule-to-send delay; gen_cpu: % of its core; srv_wait / gen_wait: % of the time"
	echo "   the server's threads (whole run) / the generator (window) sat runnable while another task had"
	echo "   the CPU: a shared machine's noise, not work of the server. Skipped units (all $LAT_CAP slots busy) are"
	echo "   not in the percentiles: with more than 1 % of the offered skipped, a p99 is a lower bound (yes?)"
	awk -v dur="$DURATION" '
	{ for (i = 5; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	  if (!hdr++) printf "%-9s %-7s %7s %7s %8s %7s %6s %7s %7s %7s %7s %7s %8s %7s %7s %8s %8s %8s %s\n",
		"target", "mode", "max/s", "offered", "achieved", "skipped", "failed", "p50", "p90", "p99", "p99.9", "max",
		"send_p99", "lag_p99", "gen_cpu", "gen_wait", "srv_wait", "p99<=1ms", ""
	  printf "%-9s %-7s %7s %7s %8s %7s %6s %7s %7s %7s %7s %7s %8s %7s %6s%% %7.1f%% %7s%% %8s %s\n",
		$1, $2, $3, v["offered"], v["achieved"], v["skipped"], v["non200"] + v["timeouts"], v["p50"], v["p90"],
		v["p99"], v["p999"], v["max"], v["send_p99"], v["lag_p99"], v["gen_cpu"],
		(dur > 0 ? v["gen_wait_ms"] / (dur * 10) : 0), v["srv_wait"],
		(v["p99"] != "" && v["p99"] + 0 <= 1.0 ? (v["skipped"] * 100 > v["offered"] ? "yes?" : "yes") : "NO"),
		($4 > 0 ? "(max: generator saturated, a lower bound)" : $3 == "-" ? "(floor: at sipwarden'"'"'s rate)" : "")
	  delete v
	}' "$tmp/latency"
}

ROUNDS=${ROUNDS:-5}
# IL_PAIR: the two targets interleave compares, the second over the first
# ("echo sipwarden": sipwarden/echo; "sipwarden sipwarden_b": an A/B of
# two builds, each figure next to the other's)
IL_PAIR=${IL_PAIR:-"echo sipwarden"}
interleave() {
	: >"$tmp/figures"
	set -- $IL_PAIR
	[ $# -eq 2 ] && [ "$1" != "$2" ] || { echo "compare: IL_PAIR needs two different targets" >&2; exit 2; }
	ta=$1 tb=$2
	pa=$(free_port)
	"start_$ta" "$pa"
	PID_E=$PID
	wait_ready "$pa"
	pb=$(free_port)
	"start_$tb" "$pb"
	PID_S=$PID
	wait_ready "$pb"
	if [ "$TP_WARM" -gt 0 ]; then
		for t in "$ta:$pa" "$tb:$pb"; do
			case ${t%%:*} in echo) continue ;; esac
			echo "== ${t%%:*}: warm-up, $TP_WARM s of MD5 pairs (not measured)"
			taskset -c "$GCPU" "$GEN" -d "127.0.0.1:${t##*:}" -m pair -A MD5 -u "$USERS" -P "$PASSWORD" \
				-r "$REALM" -t "$TP_WARM" -w 0 $LOAD >/dev/null 2>&1 || true
		done
	fi
	r=1
	while [ "$r" -le "$ROUNDS" ]; do
		for mode in pair refresh; do
			# the order swaps every round: neither target always follows
			# the other's load
			if [ $((r % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
			for x in $order; do
				if [ "$x" = a ]; then PID=$PID_E t=$ta p=$pa; else PID=$PID_S t=$tb p=$pb; fi
				echo "== round $r: $t, $mode MD5"
				measure "$t" "$p" "$mode" MD5
			done
			for p in $PID_E $PID_S; do
				kill -0 "$p" 2>/dev/null || { echo "compare: a server died" >&2; tail "$tmp"/*.log >&2; exit 1; }
			done
		done
		r=$((r + 1))
	done
	PID=
	echo "== summary: $tb/$ta per round (measured next to each other, order swapped each round), MD5, $DURATION s each"
	awk -v ta="$ta" -v tb="$tb" '
	$1 == ta { e[$2] = $4; es[$2] = $5 }
	$1 == tb { f[$2] = $4 }
	($1 == ta || $1 == tb) && (($2 in e) && ($2 in f)) {
		if (e[$2] > 0) {
			n[$2]++; q = f[$2] / e[$2]; v[$2, n[$2]] = q
			printf "%-8s round %d: %s %7d  %s %7d  ratio %.2f%s\n", $2, n[$2], tb, f[$2], ta, e[$2], q,
				(es[$2] > 0 ? "  (" ta " generator-bound)" : "")
		}
		delete e[$2]; delete f[$2]
	}
	END {
		for (m in n) {
			k = n[m]
			for (i = 1; i <= k; i++) a[i] = v[m, i]
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
			med = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
			printf "%-8s median of %d rounds: %.2f (min %.2f, max %.2f)\n", m, k, med, a[1], a[k]
		}
	}' "$tmp/figures"
}

if [ "$MODE" = callgrind ]; then
	for target in $TARGETS; do
		[ "$target" = echo ] && continue
		cg_one "$target" | tee -a "$tmp/cg.summary"
	done
	awk '{ split($4, a, "="); v[$1] = a[2] }
	END { if (("sipwarden:" in v) && ("kamailio:" in v) && v["sipwarden:"] > 0)
		printf "instructions per pair, kamailio/sipwarden = %.2f\n", v["kamailio:"] / v["sipwarden:"] }' "$tmp/cg.summary"
else
	"$MODE"
fi
