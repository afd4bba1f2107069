#!/bin/sh
# One command: the guard under a flood, end to end on loopback (issue 5,
# "Performance"):
#
#   bench/guard_flood.sh
#   RATE=10 DURATION=30 bench/guard_flood.sh
#   bench/guard_flood.sh discard     # only 2. and 3.: no SIPp, no users
#
# 1. Legitimate digest REGISTERs (SIPp, bench/guard_flood/register_auth.xml,
#    one user per call from an injection CSV) from 127.0.0.3 at RATE
#    registrations/s for DURATION s:
#      phase A: alone;
#      phase B: while a SIPp unauthenticated INVITE flood (built-in uac
#               scenario) from 127.0.0.2 offers FLOOD_FACTOR × RATE calls/s.
#    For each phase: legit success %, registration latency (avg/p50/p90/p99/
#    max from SIPp's rtt trace: REGISTER -> 401 -> REGISTER -> 200), server
#    CPU over the phase, SIPp's own CPU; after B whether 127.0.0.2 is banned
#    (`sipwarden ban list`) and the flooder's counts.
# 2. Banned-source discard rate: `sipwarden ban add 127.0.0.2`, then
#    bench/udpblast sends BLAST_COUNT INVITE datagrams (bounded by
#    BLAST_TIME s) from 127.0.0.2 as fast as it can (BLAST_RATE to pace);
#    server pinned to CPU 0, blaster to CPU 1 (taskset). Reports the
#    server's CPU per datagram (from /proc/PID/task/*/schedstat), what the
#    kernel dropped because the server's socket was full (/proc/net/udp
#    "drops" of the server's port, and the namespace-wide /proc/net/snmp
#    RcvbufErrors), and the rate the server actually kept up with.
# 3. Discard capacity without a competing sender (bench/drain.py): rounds of
#    SIGSTOP server, udpblast fills its socket's receive queue from the
#    banned address, SIGCONT, wait until the queue is empty; datagrams /
#    server CPU over the drains = what one core discards per second, the
#    kernel's delivery already paid while the server was stopped. Once with
#    the server's own socket buffer, once with DRAIN_RCVBUF (SO_RCVBUFFORCE
#    on a pidfd_getfd copy of its socket, restored after) for longer rounds;
#    then the same rounds against bench/udpsink (recvmmsg and drop, nothing
#    else) at each batch of DRAIN_BATCHES: the kernel's floor, so the rest is
#    sipwarden's own per-datagram work. Ends with the issue 6 target
#    (>= 1 000 000 datagrams/s on one core) met or not.
#
# The server runs the guard with its defaults (no [guard] section, nothing
# trusted), a realm with a [profile] for sipp* User-Agents (MD5), on a free
# 127.0.0.1 port with a throw-away data_dir; every process started here is
# stopped by PID. Knobs (environment): RATE (legit registrations/s, default
# 20 = 40 REGISTER requests/s, under the default rate_register of 50/s per
# IP), DURATION (s per phase, default 20), FLOOD_FACTOR (default 10), USERS
# (default 100), BLAST_COUNT (default 5000000), BLAST_TIME (s, default 10),
# BLAST_RATE (datagrams/s, default 0 = unpaced), BLAST_SOCKETS (default 1:
# one source port, so one worker/socket takes the whole blast), WORKERS
# (default auto), BUILD (meson build dir, default build), LOG_LEVEL
# (default warn), DRAIN_DATAGRAMS (per receiver, default 1000000),
# DRAIN_TIME (s, bound per receiver, default 60), DRAIN_RCVBUF (bytes,
# default 67108864; 0 = only the server's own buffer), DRAIN_BATCHES
# (udpsink batches, default "32 64 256 1024"; empty = no floor).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=${1:-all}
case $MODE in all | discard) ;; *) echo "usage: $0 [all|discard]" >&2; exit 2 ;; esac
RATE=${RATE:-20}
DURATION=${DURATION:-20}
FLOOD_FACTOR=${FLOOD_FACTOR:-10}
USERS=${USERS:-100}
[ "$MODE" = all ] || USERS=0
BLAST_COUNT=${BLAST_COUNT:-5000000}
BLAST_TIME=${BLAST_TIME:-10}
BLAST_RATE=${BLAST_RATE:-0}
BLAST_SOCKETS=${BLAST_SOCKETS:-1}
DRAIN_DATAGRAMS=${DRAIN_DATAGRAMS:-1000000}
DRAIN_TIME=${DRAIN_TIME:-60}
DRAIN_RCVBUF=${DRAIN_RCVBUF:-67108864}
DRAIN_BATCHES=${DRAIN_BATCHES-32 64 256 1024}
WORKERS=${WORKERS:-auto}
REALM=guard.test
PASSWORD=bench-Guard-Pass-77
LEGIT_IP=127.0.0.3
FLOOD_IP=127.0.0.2
PY=/usr/bin/python3
FLOOD_RATE=$((RATE * FLOOD_FACTOR))

[ "$MODE" = discard ] || command -v sipp >/dev/null || { echo "guard_flood: sipp not found" >&2; exit 1; }
BUILD=${BUILD:-build}
[ -d "$BUILD" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" sipwarden bench/udpsink >/dev/null
BIN=$ROOT/$BUILD/sipwarden
case $BUILD in /*) BIN=$BUILD/sipwarden ;; esac
BLAST=$(dirname "$BIN")/bench/udpblast
SINK=$(dirname "$BIN")/bench/udpsink
mkdir -p "$(dirname "$BLAST")"
if [ ! -x "$BLAST" ] || [ bench/udpblast.c -nt "$BLAST" ]; then
	cc -O2 -Wall -Wextra -o "$BLAST" bench/udpblast.c
fi

tmp=$(mktemp -d /tmp/sipwarden-guardflood.XXXXXX)
PID=
KIDS=
cleanup() {
	for k in $KIDS; do
		kill "$k" 2>/dev/null || true
		wait "$k" 2>/dev/null || true
	done
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		# drain.py continues it on every exit path; a stopped process
		# would hold SIGTERM pending, so make sure
		kill -CONT "$PID" 2>/dev/null || true
		kill "$PID"
		n=0
		while kill -0 "$PID" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
		if kill -0 "$PID" 2>/dev/null; then
			echo "guard_flood: sipwarden ignored SIGTERM for 5 s; SIGKILL" >&2
			kill -9 "$PID"
		fi
		wait "$PID" 2>/dev/null || true
	elif [ -n "$PID" ]; then
		wait "$PID" 2>/dev/null; rc=$?
		echo "guard_flood: sipwarden exited early (status $rc); log tail:" >&2
		tail -20 "$tmp/server.log" >&2
	fi
	if [ -n "${KEEP:-}" ]; then echo "guard_flood: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
forget() {  # a child that was waited for: never signal its PID again
	KIDS=$(for k in $KIDS; do [ "$k" = "$1" ] || printf '%s ' "$k"; done)
}
trap 'exit 130' INT TERM

free_port() {
	$PY -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
# CPU time (ns) of every live thread of a process; 0 once it is gone.
cpu_ns() {
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s + 0}'
}
# Per-thread CPU (ns) "tid comm ns", to find the busiest thread of a phase.
thread_ns() {
	for t in /proc/"$1"/task/*; do
		printf '%s %s %s\n' "${t##*/}" "$(cat "$t/comm" 2>/dev/null)" "$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null)"
	done
}
ticks() {  # "utime stime" of a process, clock ticks
	sed 's/.*) //' /proc/"$1"/stat | awk '{ print $12, $13 }'
}
alive() {  # running, not a zombie waiting to be reaped
	_st=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null) && [ -n "$_st" ] && [ "${_st%% *}" != Z ]
}
# Syscalls of the server while a blast or drain runs (perf stat on the
# syscall tracepoints; nothing when perf cannot count them): datagrams per
# recvmmsg call is what the per-datagram cost depends on.
SC_PID=
syscalls_start() {  # PID
	SC_PID=
	command -v perf >/dev/null || return 0
	perf stat -x, -o "$tmp/syscalls" -e syscalls:sys_enter_recvmmsg,syscalls:sys_enter_epoll_wait \
		-p "$1" >/dev/null 2>&1 &
	SC_PID=$!
	KIDS="$KIDS $SC_PID"
	sleep 0.3 # attached
}
syscalls_stop() {  # DATAGRAMS: prints "recvmmsg calls N (D per call), epoll_wait calls M"
	[ -n "$SC_PID" ] || return 0
	kill -INT "$SC_PID" 2>/dev/null || true
	wait "$SC_PID" 2>/dev/null || true
	forget "$SC_PID"
	awk -F, -v n="$1" '$3 ~ /recvmmsg/ { r = $1 } $3 ~ /epoll_wait/ { e = $1 }
		END { if (r + 0 > 0) printf "  server syscalls (perf stat): recvmmsg %d calls = %.1f datagrams per call, epoll_wait %d calls\n", r, n / r, e }' \
		"$tmp/syscalls" 2>/dev/null || true
}
# wait_bounded PID SECONDS OUTVAR: waits for PID, samples its CPU while it
# runs (the last sample is its CPU), kills it after SECONDS.
wait_bounded() {
	_end=$(($(date +%s) + $2)); _cpu=0
	while alive "$1"; do
		_c=$(cpu_ns "$1"); [ "$_c" -gt 0 ] && _cpu=$_c
		if [ "$(date +%s)" -ge $_end ]; then
			echo "guard_flood: pid $1 still running after $2 s; killing it" >&2
			kill "$1" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	wait "$1" 2>/dev/null || true
	eval "$3=\$_cpu"
}
# Server UDP sockets on PORT: "rx_queue_bytes drops" summed over them.
udp_sock() {
	$PY -c 'import sys
p = "%04X" % int(sys.argv[1]); rx = d = 0
for l in list(open("/proc/net/udp"))[1:]:
    f = l.split()
    if f[1].split(":")[1] == p:
        rx += int(f[4].split(":")[1], 16); d += int(f[-1])
print(rx, d)' "$PORT"
}
udp_bound() {  # is a UDP socket bound to 127.0.0.1:$1?
	awk -v a="0100007F:$(printf %04X "$1")" '$2 == a { f = 1 } END { exit !f }' /proc/net/udp
}
snmp_udp() {  # InDatagrams RcvbufErrors (namespace-wide)
	awk '/^Udp:/ { n++; if (n == 1) for (i = 2; i <= NF; i++) h[$i] = i;
		else printf "%s %s\n", $h["InDatagrams"], $h["RcvbufErrors"] }' /proc/net/snmp
}
answers_from() {  # does the server answer an OPTIONS from address $1?
	$PY - "$1" "$PORT" <<'EOF'
import sys
sys.path.insert(0, "tests/integration")
import sipwire
with sipwire.UdpPeer(sys.argv[1]) as p:
    ok = p.request(("127.0.0.1", int(sys.argv[2])), "OPTIONS",
                   "sip:127.0.0.1:%s" % sys.argv[2], timeout=0.3) is not None
sys.exit(0 if ok else 1)
EOF
}

PORT=$(free_port 127.0.0.1)
cat >"$tmp/bench.conf" <<EOF
[server]
listen = udp:127.0.0.1:$PORT
workers = $WORKERS
data_dir = $tmp/var
log_level = ${LOG_LEVEL:-warn}

[registrar]
min_expires = 60
max_expires = 3600
default_expires = 3600
max_bindings_per_aor = 10

; no [guard] section: the guard with its defaults, nothing trusted

[realm $REALM]
algorithms = SHA-256, MD5
md5 = allow

; SIPp answers only the first challenge, with MD5
[profile sipp]
match_user_agent = sipp*
algorithms = MD5
EOF
"$BIN" check -c "$tmp/bench.conf" >/dev/null 2>&1 || {
	echo "guard_flood: config rejected:" >&2; "$BIN" check -c "$tmp/bench.conf" >&2; exit 1; }

echo SEQUENTIAL >"$tmp/users.csv"
i=0
while [ $i -lt "$USERS" ]; do
	printf '%s\n' "$PASSWORD" | "$BIN" user add "gf$i@$REALM" --password-stdin -c "$tmp/bench.conf" >/dev/null
	printf 'gf%d;[authentication username=gf%d password=%s];\n' $i $i "$PASSWORD" >>"$tmp/users.csv"
	i=$((i + 1))
done

"$BIN" run -c "$tmp/bench.conf" 2>"$tmp/server.log" &
PID=$!
n=0
until answers_from 127.0.0.1; do
	n=$((n + 1))
	[ $n -lt 60 ] || { echo "guard_flood: sipwarden not answering" >&2; exit 1; }
	kill -0 "$PID" 2>/dev/null || exit 1
done

echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
echo "machine: nproc=$(nproc) kernel=$(uname -r) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "server:  $("$BIN" version 2>&1 | head -1), build=$BUILD ($(meson introspect "$BUILD" --buildoptions 2>/dev/null | $PY -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "buildtype"][0])' 2>/dev/null || echo '?')), workers=$WORKERS, udp:127.0.0.1:$PORT, guard defaults, users=$USERS, log_level=${LOG_LEVEL:-warn}"
if [ "$MODE" = all ]; then
	echo "load:    legit $RATE registrations/s from $LEGIT_IP for ${DURATION} s per phase; flood $FLOOD_RATE INVITE calls/s from $FLOOD_IP (phase B)"
else
	echo "load:    discard only: banned $FLOOD_IP, udpblast"
fi
echo

SCEN=$ROOT/bench/guard_flood/register_auth.xml
CALLS=$((RATE * DURATION))
# legit PHASE: starts SIPp (register_auth, -inf users) in $tmp/PHASE; sets LEGIT_PID
legit_start() {
	mkdir -p "$tmp/$1"
	lp=$(free_port $LEGIT_IP); cp=$(free_port 127.0.0.1)
	(cd "$tmp/$1" && exec sipp "127.0.0.1:$PORT" -sf "$SCEN" -inf "$tmp/users.csv" \
		-key domain "$REALM" -auth_uri "$REALM" -i $LEGIT_IP -p "$lp" -cp "$cp" \
		-r "$RATE" -m "$CALLS" -timeout "$((DURATION + 20))s" -recv_timeout 5000 -nostdin \
		-trace_stat -stf "$tmp/$1/stat.csv" -fd 1 -trace_rtt -rtt_freq 1 \
		-trace_screen -screen_file "$tmp/$1/screen.log" \
		-trace_err -error_file "$tmp/$1/errors.log" >"$tmp/$1/stdout" 2>&1) &
	LEGIT_PID=$!
	KIDS="$KIDS $LEGIT_PID"
}

# Phase summary: success, latency, CPU.
report() {  # PHASE WALL_S SERVER_CPU_NS SIPP_CPU_NS [FLOOD_DIR FLOOD_CPU_NS]
	$PY - "$tmp" "$@" <<'EOF'
import csv, glob, os, statistics, sys
tmp, phase, wall, scpu, gcpu = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
d = os.path.join(tmp, phase)

def last_stat(path):
    rows = list(csv.reader(open(path), delimiter=";"))
    h, last = rows[0], rows[-1]
    return {k: last[i] for i, k in enumerate(h) if i < len(last)}

s = last_stat(os.path.join(d, "stat.csv"))
ok, fail = int(s["SuccessfulCall(C)"]), int(s["FailedCall(C)"])
tot = int(s["TotalCallCreated"]) if "TotalCallCreated" in s else ok + fail
rt = []
for f in glob.glob(os.path.join(d, "*_rtt.csv")):
    for line in open(f):
        p = line.strip().split(";")
        try:
            rt.append(float(p[1]))
        except (IndexError, ValueError):
            pass
rt.sort()
pct = lambda q: rt[min(len(rt) - 1, int(q * len(rt)))] if rt else float("nan")
print("phase %s: legit %d calls created, %d ok, %d failed -> success %.2f %%, retransmissions %s" % (
    phase, tot, ok, fail, 100.0 * ok / tot if tot else 0, s.get("Retransmissions(C)", "?")))
print("  registration latency ms (REGISTER..200 incl. the 401 round trip, %d samples, SIPp rtt: whole ms, "
      "0 = under 1 ms): avg %.3f p50 %g p90 %g p99 %g max %g" % (
    len(rt), statistics.mean(rt) if rt else float("nan"), pct(.5), pct(.9), pct(.99), rt[-1] if rt else float("nan")))
edges = [1, 2, 5, 10, 20, 50, 100, 1000]
cnt = [0] * (len(edges) + 1)
for v in rt:
    cnt[next((i for i, e in enumerate(edges) if v < e), len(edges))] += 1
print("  latency buckets: " + ", ".join("<%d ms %d" % (e, c) for e, c in zip(edges, cnt)) + ", >=%d ms %d" % (edges[-1], cnt[-1]))
print("  server CPU %.2f s over %.1f s wall (%.1f %% of one core); legit SIPp CPU %.2f s (%.1f %%)" % (
    scpu / 1e9, wall, 100 * scpu / 1e9 / wall, gcpu / 1e9, 100 * gcpu / 1e9 / wall))
if len(sys.argv) > 6:
    f = last_stat(os.path.join(tmp, sys.argv[6], "stat.csv"))
    fc = int(sys.argv[7])
    print("  flood SIPp: %s calls created, %s retransmissions, %s ok, %s failed; CPU %.2f s (%.1f %%)" % (
        f.get("TotalCallCreated", "?"), f.get("Retransmissions(C)", "?"), f.get("SuccessfulCall(C)", "?"),
        f.get("FailedCall(C)", "?"), fc / 1e9, 100 * fc / 1e9 / wall))
with open(os.path.join(tmp, "summary"), "a") as o:
    o.write("%s %.4f %.4f %.4f %.4f %.4f %.4f\n" % (phase, 100.0 * ok / tot if tot else 0,
            statistics.mean(rt) if rt else float("nan"), pct(.5), pct(.9), pct(.99), scpu / 1e9 / wall))
EOF
}

# Phases A and B (not indented: the Python here-documents would break)
if [ "$MODE" = all ]; then

# ---- phase A: legit alone -------------------------------------------------
echo "== phase A: $RATE registrations/s from $LEGIT_IP, no flood"
c0=$(cpu_ns "$PID"); t0=$(now)
legit_start A
wait_bounded "$LEGIT_PID" $((DURATION + 30)) GCPU
c1=$(cpu_ns "$PID"); t1=$(now)
report A "$(fsub "$t1" "$t0")" $((c1 - c0)) "$GCPU"
echo

# ---- phase B: the same, with a flood ----------------------------------------
echo "== phase B: $RATE registrations/s from $LEGIT_IP + INVITE flood $FLOOD_RATE calls/s from $FLOOD_IP"
mkdir -p "$tmp/F"
fp=$(free_port $FLOOD_IP); fcp=$(free_port 127.0.0.1)
c0=$(cpu_ns "$PID"); t0=$(now)
# -recv_timeout: a flood call gives up 2 s after its INVITE (3 sends when
# nothing answers), so the flooder's state stays bounded once it is dropped.
(cd "$tmp/F" && exec sipp "127.0.0.1:$PORT" -sn uac -i $FLOOD_IP -p "$fp" -cp "$fcp" \
	-r "$FLOOD_RATE" -m "$((FLOOD_RATE * DURATION))" -l "$((FLOOD_RATE * 4))" \
	-timeout "$((DURATION + 5))s" -recv_timeout 2000 -nostdin \
	-trace_stat -stf "$tmp/F/stat.csv" -fd 1 -trace_screen -screen_file "$tmp/F/screen.log" \
	>"$tmp/F/stdout" 2>&1) &
FLOOD_PID=$!
KIDS="$KIDS $FLOOD_PID"
legit_start B
# when was the flooder banned? poll the log (guard.ban is logged at warn)
ban_at=
GCPU=0; FCPU=0
while alive "$LEGIT_PID"; do
	c=$(cpu_ns "$LEGIT_PID"); [ "$c" -gt 0 ] && GCPU=$c
	c=$(cpu_ns "$FLOOD_PID"); [ "$c" -gt 0 ] && FCPU=$c
	if [ -z "$ban_at" ] && grep -q "guard.ban.*$FLOOD_IP" "$tmp/server.log"; then
		ban_at=$(fsub "$(now)" "$t0")
	fi
	[ "$(date +%s)" -gt $((${t0%.*} + DURATION + 30)) ] && break
	sleep 0.2
done
wait_bounded "$LEGIT_PID" 5 c; [ "$c" -gt 0 ] && GCPU=$c
wait_bounded "$FLOOD_PID" $((DURATION + 10)) c; [ "$c" -gt 0 ] && FCPU=$c
c1=$(cpu_ns "$PID"); t1=$(now)
report B "$(fsub "$t1" "$t0")" $((c1 - c0)) "$GCPU" F "$FCPU"
if "$BIN" ban list -c "$tmp/bench.conf" | grep -q "$FLOOD_IP"; then
	echo "  $FLOOD_IP banned: yes (first seen in the log ${ban_at:-?} s after the flood started)"
else
	echo "  $FLOOD_IP banned: NO"
fi
"$BIN" ban list -c "$tmp/bench.conf" | sed 's/^/  ban list: /'
grep "guard.ban" "$tmp/server.log" | sed 's/^/  log: /' | head -5
$PY - "$tmp/summary" <<'EOF'
import sys
r = {l.split()[0]: [float(x) for x in l.split()[1:]] for l in open(sys.argv[1])}
a, b = r["A"], r["B"]
ratio = lambda x, y: "x%.2f" % (y / x) if x > 0 else "x-"
print("A vs B: success %.2f %% -> %.2f %%; latency avg %.3f -> %.3f ms (%s), p50 %g -> %g ms, p90 %g -> %g ms, "
      "p99 %g -> %g ms (%s); server CPU %.1f %% -> %.1f %% of one core (%s)" % (
      a[0], b[0], a[1], b[1], ratio(a[1], b[1]), a[2], b[2], a[3], b[3], a[4], b[4], ratio(a[4], b[4]),
      100 * a[5], 100 * b[5], ratio(a[5], b[5])))
EOF
echo

fi # phases A and B

# ---- 2: banned-source discard rate -----------------------------------------
echo "== banned-source discard: udpblast from $FLOOD_IP, server on CPU 0, blaster on CPU 1"
"$BIN" ban add $FLOOD_IP --for 1h -c "$tmp/bench.conf" >/dev/null
n=0
while answers_from $FLOOD_IP; do
	n=$((n + 1)); [ $n -lt 20 ] || { echo "guard_flood: ban of $FLOOD_IP not applied" >&2; exit 1; }
	sleep 0.2
done
PIN="taskset -c 1"
taskset -a -p -c 0 "$PID" >/dev/null 2>&1 || { echo "  (taskset failed: not pinned)"; PIN=; }
sleep 1
thread_ns "$PID" >"$tmp/th0"; c0=$(cpu_ns "$PID")
set -- $(ticks "$PID"); ut0=$1; st0=$2
set -- $(udp_sock); q0=$1; d0=$2
set -- $(snmp_udp); in0=$1; rb0=$2
syscalls_start "$PID"
t0=$(now)
$PIN "$BLAST" -d "127.0.0.1:$PORT" -b $FLOOD_IP -n "$BLAST_COUNT" -t "$BLAST_TIME" \
	-r "$BLAST_RATE" -s "$BLAST_SOCKETS" >"$tmp/blast.out" &
BLAST_PID=$!
KIDS="$KIDS $BLAST_PID"
wait_bounded "$BLAST_PID" $((BLAST_TIME + 10)) BCPU
forget "$BLAST_PID"
tb=$(now)
# let the server drain its socket before reading its CPU
n=0
while [ "$(udp_sock | cut -d' ' -f1)" -gt 0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
c1=$(cpu_ns "$PID"); thread_ns "$PID" >"$tmp/th1"
set -- $(ticks "$PID"); ut1=$1; st1=$2
set -- $(udp_sock); d1=$2
set -- $(snmp_udp); in1=$1; rb1=$2
t1=$(now)
cat "$tmp/blast.out"
syscalls_stop "$(($(sed -n 's/^sent=//p' "$tmp/blast.out") - (d1 - d0)))"
$PY - "$tmp" "$(fsub "$tb" "$t0")" "$(fsub "$t1" "$t0")" $((c1 - c0)) $((d1 - d0)) \
	$((in1 - in0)) $((rb1 - rb0)) $((ut1 - ut0)) $((st1 - st0)) <<'EOF'
import sys
tmp, bwall, wall, cpu, drops, ind, rb = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
ut, st = int(sys.argv[8]), int(sys.argv[9])
b = dict(l.strip().split("=", 1) for l in open(tmp + "/blast.out") if "=" in l)
sent, bcpu = int(b["sent"]), float(b["cpu_s"])
bwall = float(b["wall_s"])  # the blaster's own clock, not the shell's polling
got = sent - drops
def th(p):
    return {l.split()[0]: (l.split()[1], int(l.split()[2])) for l in open(p) if len(l.split()) == 3}
t0, t1 = th(tmp + "/th0"), th(tmp + "/th1")
busy = sorted(((t1[t][1] - t0.get(t, (0, 0))[1], t1[t][0]) for t in t1), reverse=True)
print("sent %d in %.2f s (%.0f/s, blaster CPU %.2f s); server socket drops (rcvbuf full) %d = %.1f %%; "
      "delivered to the server %d" % (sent, bwall, sent / bwall, bcpu, drops, 100.0 * drops / sent, got))
print("server CPU %.3f s for %d delivered datagrams = %.0f ns each -> %.0f datagrams/s per core of discard "
      "capacity; busiest thread %s %.3f s" % (cpu / 1e9, got, cpu / got, got / (cpu / 1e9),
                                             busy[0][1], busy[0][0] / 1e9))
print("  of which user %.0f %% / kernel %.0f %% (utime/stime ticks %d/%d: recvmmsg and wake-ups vs the guard's "
      "lookup)" % (100.0 * ut / (ut + st) if ut + st else 0, 100.0 * st / (ut + st) if ut + st else 0, ut, st))
print("server kept up with %.0f delivered/s over the %.2f s blast (%.1f %% of sent)" % (
    got / bwall, bwall, 100.0 * got / sent))
print("/proc/net/snmp Udp (whole namespace, other traffic included): InDatagrams +%d, RcvbufErrors +%d" % (ind, rb))
EOF
echo

# ---- 3: discard capacity, drained without a competing sender --------------
echo "== discard capacity: rounds of SIGSTOP, fill the queue from $FLOOD_IP, SIGCONT, drain (receiver on CPU 0; blaster and poller on CPU 1)"
: >"$tmp/drain.res"
drain() {  # PID PORT LABEL RCVBUF: bench/drain.py, a child the trap stops
	$PY bench/drain.py --pid "$1" --port "$2" --blast "$BLAST" --src $FLOOD_IP --datagrams "$DRAIN_DATAGRAMS" \
		--time "$DRAIN_TIME" --rcvbuf "$4" --cpu 1 --label "$3" >"$tmp/drain.out" &
	_d=$!
	KIDS="$KIDS $_d"
	_rc=0; wait "$_d" || _rc=$?
	forget "$_d"
	grep -v '^RESULT' "$tmp/drain.out" || true
	grep '^RESULT' "$tmp/drain.out" >>"$tmp/drain.res" || echo "  ($3: no result, drain.py status $_rc)"
}
sink_drain() {  # BATCH RCVBUF LABEL: the same rounds against bench/udpsink on CPU 0
	SPORT=$(free_port 127.0.0.1)
	taskset -c 0 "$SINK" -l "127.0.0.1:$SPORT" -B "$1" 2>"$tmp/sink.err" &
	SPID=$!
	KIDS="$KIDS $SPID"
	n=0
	until udp_bound "$SPORT" || [ $n -ge 50 ]; do sleep 0.1; n=$((n + 1)); done
	drain "$SPID" "$SPORT" "$3" "$2"
	kill "$SPID"; wait "$SPID" 2>/dev/null || true
	forget "$SPID"
}
syscalls_start "$PID"
drain "$PID" "$PORT" sipwarden/own 0
syscalls_stop "$(sed -n 's/.* label=sipwarden\/own datagrams=\([0-9]*\).*/\1/p' "$tmp/drain.res")"
[ -z "$DRAIN_BATCHES" ] || sink_drain 32 0 udpsink-B32/own
if [ "$DRAIN_RCVBUF" -gt 0 ]; then
	drain "$PID" "$PORT" "sipwarden/$((DRAIN_RCVBUF >> 20))M" "$DRAIN_RCVBUF"
	for B in $DRAIN_BATCHES; do
		sink_drain "$B" "$DRAIN_RCVBUF" "udpsink-B$B/$((DRAIN_RCVBUF >> 20))M"
	done
fi
$PY - "$tmp/drain.res" <<'EOF'
import sys
r = {}
for line in open(sys.argv[1]):
    kv = dict(x.split("=", 1) for x in line.split()[1:])
    r[kv["label"]] = kv
if not r:
    sys.exit("no drain result")
print("\nreceiver CPU per drained datagram -> discard capacity of one core (own = the socket buffer sipwarden "
      "sets itself; NM = forced to N MB):")
for k, v in r.items():
    print("  %-20s %5.0f ns  %9.0f datagrams/s  (%s datagrams, user %s %%, median round %s/s; wall-clock "
          "median %s/s)" % (k, float(v["ns_per"]), float(v["per_s"]), v["datagrams"], v["user_pct"],
                            v["median_round_per_s"], v["wall_median_per_s"]))
for k in r:
    f = "udpsink-B32/" + k.split("/")[1]
    if k.startswith("sipwarden/") and f in r:
        print("  %s - %s = %.0f ns: sipwarden's own work per datagram (udp loop, guard_pre, clock, "
              "event loop) over the kernel's recvmmsg at the same batch (32)" % (
                  k, f, float(r[k]["ns_per"]) - float(r[f]["ns_per"])))
sw = r.get("sipwarden/own")
if sw:
    got = float(sw["per_s"])
    print("issue 6 target, banned-IP discard >= 1 000 000 datagrams/s on one core: %s (%.0f/s, sipwarden "
          "with its own socket buffer, CPU of the receiving process)" % ("MET" if got >= 1e6 else "NOT MET", got))
EOF
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
