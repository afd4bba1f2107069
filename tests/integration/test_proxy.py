"""The authenticating proxy (issue 4): SIPp as the caller and SIPp as the
PBX (uas) on loopback with sipwarden in the middle; trunks admitted by IP.

Addresses: the PBX listens on 127.0.0.2, callers use 127.0.0.1, trunks
127.0.0.3.. (all of 127/8 is loopback), so sources tell roles apart."""

import pathlib
import subprocess
import time

import pytest

from conftest import free_port, run_bounded, tool
from sipdigest import user_add

SIPP_DIR = pathlib.Path(__file__).resolve().parent / "sipp"
DOMAIN = "example.test"
PASSWORD = "alice-Proxy-Pass-77"
PBX_IP = "127.0.0.2"

CONF = """
[realm {domain}]

; SIPp answers only the first challenge, with MD5
[profile md5-tools]
match_user_agent = sipp*
algorithms = MD5

[guard]
trusted = 127.0.0.0/8

[timers]
t1 = 100

[upstream pbx]
uri = sip:{pbx}:{pbx_port}

[trunk carrier-a]
match = 127.0.0.3/32
auth = ip

[trunk carrier-b]
match = 127.0.0.5/32, 2001:db8::/32
auth = ip-or-digest

[proxy]
health_interval = 0
"""


def _read(p):
    try:
        return pathlib.Path(p).read_text(errors="replace")
    except FileNotFoundError:
        return ""


class Sipp:
    """One SIPp process (uac or uas), ended by PID."""

    def __init__(self, tmp_path, name, scenario, ip, port, target=None, user="alice",
                 extra=(), timeout=20):
        self.err = tmp_path / ("%s-err.log" % name)
        self.msgs = tmp_path / ("%s-msg.log" % name)
        argv = [tool("sipp")]
        if target:
            argv.append("%s:%d" % target)
        argv += ["-sf", str(SIPP_DIR / (scenario + ".xml")),
                 "-s", user, "-key", "domain", DOMAIN, "-key", "callee", "bob",
                 "-i", ip, "-p", str(port), "-t", "u1", "-m", "1",
                 "-timeout", "%ds" % timeout, "-timeout_error",
                 "-recv_timeout", "12000", "-nostdin",
                 "-trace_err", "-error_file", str(self.err),
                 "-trace_msg", "-message_file", str(self.msgs)] + list(extra)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=str(tmp_path))
        self.timeout = timeout

    def wait(self):
        try:
            out, _ = self.proc.communicate(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=5)
        self.out = out.decode(errors="replace")
        return self.proc.returncode

    def detail(self):
        return "rc=%s\n--- stdout\n%s\n--- errors\n%s\n--- messages\n%s" % (
            self.proc.returncode, getattr(self, "out", "")[-1500:],
            _read(self.err)[-3000:], _read(self.msgs)[-6000:])

    def messages(self):
        return _read(self.msgs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def proxy(make_server, tmp_path):
    """sipwarden proxying to a PBX at PBX_IP:port; alice and carrier-b exist."""
    pbx_port = free_port(PBX_IP)
    srv = make_server(start=False, realms=(), trust=None,
                      extra=CONF.format(domain=DOMAIN, pbx=PBX_IP, pbx_port=pbx_port))
    # debug: proxy.forward lines explain a failing call
    srv.config.write_text(srv.config_text.replace("log_level = info", "log_level = debug"))
    user_add(srv, "alice@" + DOMAIN, PASSWORD)
    user_add(srv, "carrier-b@" + DOMAIN, PASSWORD)
    srv.start()
    srv.pbx_port = pbx_port
    started = []

    def run(uas, uac, uac_ip="127.0.0.1", user="alice", password=PASSWORD, timeout=20):
        pbx = Sipp(tmp_path, "uas-" + uas, uas, PBX_IP, pbx_port, timeout=timeout)
        started.append(pbx)
        time.sleep(0.3)
        extra = ["-au", user, "-ap", password, "-auth_uri", "bob@" + DOMAIN] if password else []
        caller = Sipp(tmp_path, "uac-" + uac, uac, uac_ip, free_port(uac_ip),
                      target=srv.addr, user=user, extra=extra, timeout=timeout)
        started.append(caller)
        rc_uac = caller.wait()
        if pbx.proc.poll() is None:
            try:
                pbx.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        pbx.stop()
        rc_uas = pbx.wait()
        return caller, rc_uac, pbx, rc_uas

    srv.run = run
    yield srv
    for p in started:
        p.stop()


def why(srv, uac, uas):
    return "--- caller\n%s\n--- pbx\n%s\n--- sipwarden\n%s" % (
        uac.detail(), uas.detail(), srv.log_tail(30))


def test_call_with_407_then_answer_and_bye(proxy):
    """INVITE -> 407 -> INVITE with credentials -> 100/180/200 -> ACK -> BYE;
    the PBX sees our Record-Route and P-Asserted-Identity, no credentials."""
    uac, rc, uas, rc_uas = proxy.run("proxy_uas", "proxy_uac")
    assert rc == 0 and rc_uas == 0, why(proxy, uac, uas)
    m = uas.messages()
    assert "P-Asserted-Identity: <sip:alice@example.test>" in m, m
    assert "forged@" not in m.split("INVITE sip:bob@", 1)[1].split("\n\n", 1)[0]


def test_busy_486(proxy):
    uac, rc, uas, rc_uas = proxy.run("proxy_uas_busy", "proxy_uac_fail")
    assert rc == 0 and rc_uas == 0, why(proxy, uac, uas)
    assert "SIP/2.0 486" in uac.messages()


def test_cancel_before_answer(proxy):
    uac, rc, uas, rc_uas = proxy.run("proxy_uas_cancel", "proxy_uac_cancel")
    assert rc == 0 and rc_uas == 0, why(proxy, uac, uas)


def test_timeout_408(proxy):
    """The PBX takes the INVITE and never answers: Timer B (64*T1, T1 = 100
    ms) ends the branch and the caller gets 408."""
    import socket
    # a bare socket that swallows the INVITE plays the dead PBX
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((PBX_IP, proxy.pbx_port))
    try:
        caller = Sipp(pathlib.Path(proxy.dir), "uac-timeout", "proxy_uac_fail", "127.0.0.1",
                      free_port(), target=proxy.addr, extra=["-au", "alice", "-ap", PASSWORD, "-auth_uri", "bob@" + DOMAIN])
        rc = caller.wait()
        assert rc == 0, caller.detail() + proxy.log_tail(30)
        assert "SIP/2.0 408" in caller.messages()
    finally:
        s.close()


def test_trunk_by_ip(proxy):
    """carrier-a (auth = ip) calls from its address without credentials."""
    uac, rc, uas, rc_uas = proxy.run("proxy_uas", "proxy_trunk_uac", uac_ip="127.0.0.3",
                                     user="carrier-a", password=None)
    # the trunk's From is no user of ours: the PBX sees no asserted identity
    assert rc == 0, why(proxy, uac, uas)


def test_trunk_wrong_ip_refused(proxy):
    """The same call from an address on no trunk's list: challenged, never
    forwarded."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((PBX_IP, proxy.pbx_port))
    s.settimeout(1.5)
    try:
        caller = Sipp(pathlib.Path(proxy.dir), "uac-wrongip", "proxy_trunk_uac", "127.0.0.4",
                      free_port("127.0.0.4"), target=proxy.addr, user="carrier-a",
                      timeout=6)
        rc = caller.wait()
        assert rc != 0
        assert "SIP/2.0 407" in caller.messages(), caller.detail()
        with pytest.raises(socket.timeout):
            data, _ = s.recvfrom(65535)
            raise AssertionError("forwarded to the PBX: %r" % data[:200])
    finally:
        s.close()


def test_ip_or_digest_fallback(proxy):
    """carrier-b (ip-or-digest) from outside its networks authenticates by
    digest instead; sipwarden warns that the trunk's address drifted."""
    uac, rc, uas, rc_uas = proxy.run("proxy_uas", "proxy_uac", uac_ip="127.0.0.6",
                                     user="carrier-b")
    assert rc == 0 and rc_uas == 0, why(proxy, uac, uas)
    assert "proxy.trunk_ip_drift" in proxy.log_text()
