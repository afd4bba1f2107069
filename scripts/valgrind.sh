#!/usr/bin/env bash
# Memcheck of the server under a short mixed workload (issue 7):
#
#   bash scripts/valgrind.sh [BINARY]        (default: build/sipwarden)
#
# Starts BINARY under valgrind (memcheck, full leak check) on a free
# loopback port with a throw-away config and data_dir, sends REGISTER
# (trusted and digest-challenged), OPTIONS, malformed datagrams and TCP
# traffic (pipelined, garbage, half-closed, idle) from
# tests/integration/sipwire.py, stops it with SIGTERM and fails if
# valgrind saw any invalid access, use of uninitialised memory, or a
# definite/indirect leak. The full report: <workdir>/valgrind.log (kept on
# failure, path printed). Needs the valgrind package (apt-get install
# valgrind). Takes about a minute.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-build/sipwarden}")
[ -x "$bin" ] || { echo "valgrind.sh: no $bin (build it first: meson setup build && ninja -C build)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed" >&2; exit 2; }

work=$(mktemp -d /tmp/sipwarden-vg-XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/sipwarden.ini" <<EOF
[server]
listen = udp:127.0.0.1:$port
listen = tcp:127.0.0.1:$port
workers = 2
data_dir = $work/var
log_level = info

[registrar]
trust = 127.0.0.2/32

[realm example.test]
algorithms = SHA-256, MD5
md5 = allow

[tcp]
idle_timeout = 2

[guard]
trusted = 127.0.0.0/8
EOF
printf 'Valgrind-Pass-1\n' | "$bin" user add alice@example.test --password-stdin -c "$work/sipwarden.ini" >/dev/null \
  || { echo "valgrind.sh: user add failed" >&2; exit 1; }

valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --track-origins=yes --error-exitcode=99 \
  --log-file="$work/valgrind.log" "$bin" run -c "$work/sipwarden.ini" >"$work/sipwarden.log" 2>&1 &
vg=$!

/usr/bin/python3 - "$port" <<'PY'
import os, socket, sys, time
sys.path.insert(0, "tests/integration")
import sipwire
from sipdigest import authorization, challenge_for

port = int(sys.argv[1])
srv = ("127.0.0.1", port)
ruri = "sip:127.0.0.1:%d" % port
ua = sipwire.UdpPeer()
end = time.monotonic() + 60          # valgrind start-up is slow
while time.monotonic() < end:
    r = ua.request(srv, "OPTIONS", ruri, timeout=1.0)
    if r is not None:
        break
else:
    sys.exit("server did not come up under valgrind")

def ok(r, *want):
    assert r is not None and r.status in want, r and r.start

trusted = sipwire.UdpPeer(host="127.0.0.2")
for i in range(50):
    ok(ua.request(srv, "OPTIONS", ruri), 200)
    aor = "sip:u%d@example.test" % (i % 10)
    ok(trusted.request(srv, "REGISTER", "sip:example.test", to="<%s>" % aor,
                       contacts=["<sip:u%d@127.0.0.2:5070>" % i],
                       expires=0 if i % 7 == 0 else 300), 200)
    # digest: challenge, then a right and a wrong answer
    r = ua.request(srv, "REGISTER", "sip:example.test", to="<sip:alice@example.test>",
                   contacts=["<sip:alice@127.0.0.1:5071>"], expires=300)
    ok(r, 401)
    ch = challenge_for(r, "SHA-256" if i % 2 else "MD5")
    pw = "Valgrind-Pass-1" if i % 3 else "wrong-password"
    line, _ = authorization(ch, "alice", pw, "REGISTER", "sip:example.test")
    ok(ua.request(srv, "REGISTER", "sip:example.test", to="<sip:alice@example.test>",
                  contacts=["<sip:alice@127.0.0.1:5071>"], expires=300, extra=[line]),
       200 if i % 3 else 401)
    # garbage and malformed
    base = sipwire.build_request("OPTIONS", ruri, via_host=ua.host, via_port=ua.port)
    for bad in (os.urandom(300), base[:40], base.replace(b"Max-Forwards", b"Max\x00"),
                base.replace(b"Content-Length: 0", b"Content-Length: -1"),
                base.replace(b"Content-Length: 0", b"a:b\r\n" * 500 + b"Content-Length: 0"),
                base.replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1),
                base.replace(b"OPTIONS", b"FOOBAR", 1),
                b"INVITE " + ruri.encode() + b" SIP/2.0\r\n\r\n"):
        ua.send(bad, srv)
    ua.drain()
    # TCP: a request, pipelined pair, garbage, half-close
    with sipwire.TcpPeer(srv) as t:
        ok(t.request(srv, "OPTIONS", ruri), 200)
        t.send(sipwire.build_request("OPTIONS", ruri, via_host=t.host, via_port=t.port,
                                     transport="TCP") * 2)
        t.wait_final(5.0)
        t.send(b"\r\n\r\n")
        if i % 5 == 0:
            t.send(os.urandom(2000))
        t.sock.shutdown(socket.SHUT_WR)
        t.wait_closed(5.0)
idle = [sipwire.TcpPeer(srv) for _ in range(5)]      # reaped by idle_timeout
time.sleep(3)
for c in idle:
    c.close()
ok(ua.request(srv, "OPTIONS", ruri), 200)
print("workload done")
PY
wl=$?
kill -TERM $vg 2>/dev/null
wait $vg
rc=$?
echo "valgrind: workload rc=$wl, valgrind rc=$rc"
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|Invalid|uninitialised' "$work/valgrind.log" | sort | uniq -c | head -20
if [ $wl -ne 0 ] || [ $rc -ne 0 ]; then
  echo "valgrind: FAILED, see $work/valgrind.log and $work/sipwarden.log" >&2
  exit 1
fi
rm -rf "$work"
echo "valgrind: ok (no invalid accesses, no definite/indirect leaks)"
