"""Two registered baresip users call each other through sipwarden (issue 4):
alice dials bob, bob auto-answers, alice hangs up.

No upstream: `[proxy] local_calls = yes` routes user -> user through the
location table (route_proxy.c: to_target -> to_bindings). Both baresip 1.0
instances register over UDP with digest (MD5 through the `baresip*`
User-Agent profile: baresip refuses a challenge list that is not all MD5),
each with its own config dir and sip_listen port on 127.0.0.1. They are
driven and watched through baresip's ctrl_tcp module (netstring JSON:
commands `dial`/`hangup` from the menu module, call events back), and run
with -s (SIP trace) so the messages each side saw can be checked. Audio
uses the aubridge virtual device (no sound card, no sound modules); RTP
goes directly between the two on loopback. Every process is ended by PID
and bounded in time.

The call runs once (module fixture); test_callee_never_sees_callers_credentials
checks that alice's Proxy-Authorization for our realm reaches bob in
none of the INVITE, the 2xx ACK and the BYE (baresip repeats it in all
three)."""

import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import Server, free_port, free_sip_port, tool
from sipdigest import logfmt, user_add

REALM = "example.test"
PASSWORDS = {"alice": "alice-Baresip-Pass-31", "bob": "bob-Baresip-Pass-42"}

CONF = """
[realm {realm}]
algorithms = SHA-256, MD5
md5 = warn

; baresip 1.0 refuses to authenticate when any offered algorithm is not MD5
[profile legacy]
match_user_agent = baresip*
algorithms = MD5

[guard]
trusted = 127.0.0.0/8

; no [upstream]: calls between registered users of the realm go straight
; to the callee's bindings
[proxy]
local_calls = yes
health_interval = 0
""".format(realm=REALM)

# aubridge: a virtual audio device (player -> source of the same name), so
# the call has a working audio stream without any sound hardware. ausine
# would do as a source only at 48 kHz (it fails the PCMU 8 kHz stream).
BARESIP_CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
net_interface		127.0.0.1
module_path		{mods}
module			g711.so
module			aubridge.so
module			menu.so
module			ctrl_tcp.so
module_tmp		account.so
ctrl_tcp_listen		127.0.0.1:{ctrl_port}
dns_server		127.0.0.1:53
audio_player		aubridge,{user}
audio_source		aubridge,{user}
audio_alert		aubridge,{user}
"""

# generous: a loaded 2-core CI machine; every wait polls
STEP = 15.0
LIFETIME = 60          # baresip -t: quits by itself even if the test is killed


def _modules_dir():
    for d in ("/usr/lib/baresip/modules", "/usr/lib/x86_64-linux-gnu/baresip/modules"):
        if os.path.isdir(d):
            for m in ("g711.so", "aubridge.so", "menu.so", "ctrl_tcp.so", "account.so"):
                if not os.path.exists(os.path.join(d, m)):
                    pytest.skip("baresip module %s not installed" % m)
            return d
    pytest.skip("baresip modules not found")


STATUS = re.compile(r"\[\d+:\d\d:\d\d\] audio=\d+/\d+ \(bit/s\) *\r?\n?")


def _netstring(obj):
    b = json.dumps(obj).encode()
    return b"%d:%s," % (len(b), b)


class Baresip:
    """One baresip with one account, its own config dir, a SIP trace on
    stdout (-s) and a ctrl_tcp connection for commands and events."""

    def __init__(self, workdir, user, srv, extra_params=""):
        self.user = user
        self.dir = workdir / ("baresip-" + user)
        self.dir.mkdir()
        self.sip_port = free_sip_port()
        self.ctrl_port = free_port()
        (self.dir / "config").write_text(BARESIP_CONFIG.format(
            sip_port=self.sip_port, ctrl_port=self.ctrl_port, mods=_modules_dir(), user=user))
        (self.dir / "accounts").write_text(
            '<sip:%s@%s;transport=udp>;auth_pass=%s;regint=60;'
            'outbound="sip:%s:%d;transport=udp"%s\n'
            % (user, REALM, PASSWORDS[user], srv.host, srv.port, extra_params))
        (self.dir / "contacts").write_text("")
        self.log_path = self.dir / "baresip.log"
        self.proc = None
        self.sock = None
        self.buf = b""
        self.events = []
        self.responses = []
        self.token = 0

    def start(self):
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([tool("baresip"), "-s", "-f", str(self.dir),
                                      "-t", str(LIFETIME)],
                                     cwd=str(self.dir), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def output(self):
        """baresip's stdout, without the call's status line ("[0:00:03]
        audio=64000/0 (bit/s)", repainted many times a second)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return STATUS.sub("", text)

    def wait(self, pred, what, timeout=STEP):
        end = time.monotonic() + timeout
        while True:
            got = pred()
            if got:
                return got
            if self.proc.poll() is not None:
                raise AssertionError("baresip %s exited (%s) waiting for %s\n%s"
                                     % (self.user, self.proc.returncode, what,
                                        self.output()[-4000:]))
            if time.monotonic() > end:
                raise AssertionError("baresip %s: no %s within %.0fs\nevents: %s\n%s"
                                     % (self.user, what, timeout,
                                        [e.get("type") for e in self.events],
                                        self.output()[-4000:]))
            time.sleep(0.1)

    def registered(self):
        # e.g. "alice@example.test: {0/UDP/v4} 200 OK (sipwarden) [1 binding]"
        return "%s@%s: {0/UDP/v4} 200 OK" % (self.user, REALM) in self.output()

    def connect(self):
        def attempt():
            try:
                s = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            except OSError:
                return None
            s.settimeout(0.1)
            return s
        self.sock = self.wait(attempt, "ctrl_tcp listener")
        return self

    def pump(self):
        """Read what ctrl_tcp sent; split netstrings into events/responses."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        while True:
            head, colon, rest = self.buf.partition(b":")
            if not colon or not head.isdigit() or len(rest) < int(head) + 1:
                break
            n = int(head)
            msg = json.loads(rest[:n].decode(errors="replace"))
            self.buf = rest[n + 1:]
            (self.events if msg.get("event") else self.responses).append(msg)

    def command(self, cmd, params=None):
        self.token += 1
        tok = str(self.token)
        obj = {"command": cmd, "token": tok}
        if params is not None:
            obj["params"] = params
        self.sock.sendall(_netstring(obj))

        def answered():
            self.pump()
            return [r for r in self.responses if r.get("token") == tok]
        r = self.wait(answered, "answer to %s" % cmd)[0]
        assert r.get("ok"), (cmd, r)
        return r

    def event(self, type_):
        def seen():
            self.pump()
            return [e for e in self.events if e.get("type") == type_]
        return self.wait(seen, "event %s" % type_)[0]

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)      # unregisters, then exits
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


TRACE = re.compile(r"\x1b\[36;1m#\n(\w+) (\S+) -> (\S+)\n(.*?)\x1b\[;m", re.S)


def sip_trace(ua):
    """The SIP messages in a baresip -s trace as (direction, text), direction
    'rx' when sent to this baresip's sip_listen port, else 'tx'."""
    own = "127.0.0.1:%d" % ua.sip_port
    return [("rx" if dst == own else "tx", text.replace("\r\n", "\n"))
            for _proto, _src, dst, text in TRACE.findall(ua.output())]


def find(msgs, direction, start, cseq=None):
    """The messages of one direction whose start line begins with start
    (and whose CSeq method is cseq)."""
    out = []
    for d, text in msgs:
        if d != direction or not text.startswith(start):
            continue
        if cseq and not re.search(r"^CSeq: *\d+ %s\s*$" % cseq, text, re.M):
            continue
        out.append(text)
    return out


def header(text, name):
    head = text.split("\n\n", 1)[0]
    return [ln.split(":", 1)[1].strip() for ln in head.split("\n")[1:]
            if ln.split(":", 1)[0].strip().lower() == name.lower()]


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    """Run the whole call once: alice and bob register, alice dials bob, bob
    auto-answers, alice hangs up. Returns what each side and the server saw
    (the tests below check different parts of it)."""
    tool("baresip")
    _modules_dir()
    tmp = tmp_path_factory.mktemp("proxy-baresip")
    srv = Server(tmp / "srv", realms=(), trust=None, extra=CONF)
    # debug: proxy.forward lines name each forwarded request and its route
    srv.config.write_text(srv.config_text.replace("log_level = info", "log_level = debug"))
    for u, pw in PASSWORDS.items():
        user_add(srv, "%s@%s" % (u, REALM), pw)
    srv.start()
    alice = Baresip(tmp, "alice", srv)
    bob = Baresip(tmp, "bob", srv, extra_params=";answermode=auto")
    uas = (alice, bob)
    res = {"srv": srv, "alice": alice, "bob": bob}
    try:
        for ua in uas:
            ua.start()
        for ua in uas:
            ua.wait(ua.registered, "REGISTER 200 from sipwarden")
            ua.connect()
        res["mark"] = len(srv.log_text())

        alice.command("dial", "sip:bob@%s" % REALM)
        # (auto-answer: baresip 1.0 sends no CALL_INCOMING event then)
        res["est_bob"] = bob.event("CALL_ESTABLISHED")
        res["est_alice"] = alice.event("CALL_ESTABLISHED")
        # the ACK must reach bob before the BYE is sent (UDP: no ordering)
        bob.wait(lambda: find(sip_trace(bob), "rx", "ACK "), "ACK for the 200")

        alice.command("hangup")
        res["closed_alice"] = alice.event("CALL_CLOSED")
        res["closed_bob"] = bob.event("CALL_CLOSED")          # the BYE reached bob
        alice.wait(lambda: find(sip_trace(alice), "rx", "SIP/2.0 200", cseq="BYE"),
                   "200 to the BYE")
    finally:
        for ua in uas:
            ua.stop()
        crashed = srv.proc is not None and srv.proc.poll() is not None
        res["log"] = srv.log_text()
        srv.stop()
    res["why"] = "\n--- alice\n%s\n--- bob\n%s\n--- sipwarden\n%s" % (
        alice.output()[-6000:], bob.output()[-6000:], "\n".join(res["log"].splitlines()[-30:]))
    assert not crashed, "sipwarden died during the call" + res["why"]
    res["a"] = sip_trace(alice)
    res["b"] = sip_trace(bob)
    res["events"] = [logfmt(ln) for ln in res["log"][res["mark"]:].splitlines()]
    return res


def test_alice_calls_bob_through_sipwarden(call):
    why = call["why"]
    est_b = call["est_bob"]
    assert est_b["direction"] == "incoming" and est_b["peeruri"].startswith(
        "sip:alice@%s" % REALM), est_b
    assert "answering call on line 1 from sip:alice@%s" % REALM in call["bob"].output(), why
    assert call["est_alice"]["peeruri"].startswith("sip:bob@%s" % REALM), call["est_alice"]
    assert call["closed_alice"]["id"] == call["est_alice"]["id"]
    assert call["closed_bob"]["id"] == call["est_bob"]["id"]
    events = call["events"]

    # the server: INVITE challenged (407), then accepted with alice's MD5
    # credentials (the baresip profile), forwarded to bob's binding (no
    # upstream); the BYE forwarded along the dialog's Record-Route
    inv = [e for e in events if e.get("method") == "INVITE"
           and e.get("event") in ("auth.fail", "auth.ok")]
    assert [(e["event"], e["reason"], e["status"]) for e in inv] == [
        ("auth.fail", "no-credentials", "407"), ("auth.ok", "ok", "0")], inv
    assert (inv[1]["user"], inv[1]["algorithm"], inv[1]["profile"]) == (
        "alice", "MD5", "legacy"), inv
    assert not [e for e in events if e.get("event") == "auth.fail"
                and e.get("reason") != "no-credentials"], why
    fwd = [(e.get("method"), e.get("to")) for e in events if e.get("event") == "proxy.forward"]
    assert fwd == [("INVITE", "bindings"), ("BYE", "dialog")], (fwd, why)

    # alice: INVITE -> 407 -> INVITE with Proxy-Authorization -> 100/180/200
    # -> ACK -> BYE -> 200, all through sipwarden (her outbound proxy)
    a = call["a"]
    invites = find(a, "tx", "INVITE sip:bob@")
    assert len(invites) == 2 and not header(invites[0], "Proxy-Authorization") \
        and header(invites[1], "Proxy-Authorization"), why
    assert find(a, "rx", "SIP/2.0 407", cseq="INVITE"), why
    ok = find(a, "rx", "SIP/2.0 200", cseq="INVITE")
    assert ok, why
    rr = header(ok[0], "Record-Route")
    assert len(rr) == 1 and ";swrr=" in rr[0] and ";lr" in rr[0], ok[0]
    for method in ("ACK", "BYE"):
        msg = find(a, "tx", method + " sip:bob-")       # to bob's Contact
        assert msg and header(msg[0], "Route") == rr, (method, why)
    assert find(a, "rx", "SIP/2.0 200", cseq="BYE"), why

    # bob: the INVITE from sipwarden (our Via on top, the signed
    # Record-Route, alice's asserted identity, no credentials), then the ACK
    # and the BYE of that dialog
    b = call["b"]
    inv_b = find(b, "rx", "INVITE sip:bob-")
    assert len(inv_b) == 1, why
    assert header(inv_b[0], "Record-Route") == rr, inv_b[0]
    assert header(inv_b[0], "P-Asserted-Identity") == ["<sip:alice@%s>" % REALM], inv_b[0]
    assert not header(inv_b[0], "Proxy-Authorization"), inv_b[0]
    assert ";branch=z9hG4bKsw" in header(inv_b[0], "Via")[0], inv_b[0]
    assert find(b, "tx", "SIP/2.0 200", cseq="INVITE"), why
    assert len(find(b, "rx", "ACK sip:bob-")) >= 1, why
    assert len(find(b, "rx", "BYE sip:bob-")) >= 1, why
    assert find(b, "tx", "SIP/2.0 200", cseq="BYE"), why


def test_callee_never_sees_callers_credentials(call):
    """RFC 3261 §22.3 / README: credentials for our realm are consumed here
    and never forwarded. baresip repeats its Proxy-Authorization in the ACK
    and the BYE; bob must not get them (with MD5 they allow an offline guess
    of alice's password)."""
    b = call["b"]
    leaked = [t.split("\n", 1)[0] for t in find(b, "rx", "") if header(t, "Proxy-Authorization")]
    assert not leaked, leaked
