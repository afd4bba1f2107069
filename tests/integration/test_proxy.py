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
                 extra=(), timeout=20, transport="u1"):
        self.err = tmp_path / ("%s-err.log" % name)
        self.msgs = tmp_path / ("%s-msg.log" % name)
        argv = [tool("sipp")]
        if target:
            argv.append("%s:%d" % target)
        argv += ["-sf", str(SIPP_DIR / (scenario + ".xml")),
                 "-s", user, "-key", "domain", DOMAIN, "-key", "callee", "bob",
                 "-i", ip, "-p", str(port), "-t", transport, "-m", "1",
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

    def run(uas, uac, uac_ip="127.0.0.1", user="alice", password=PASSWORD, timeout=20,
            auth_uri=True):
        pbx = Sipp(tmp_path, "uas-" + uas, uas, PBX_IP, pbx_port, timeout=timeout)
        started.append(pbx)
        time.sleep(0.3)
        extra = ["-au", user, "-ap", password] if password else []
        if password and auth_uri:
            extra += ["-auth_uri", "bob@" + DOMAIN]
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


# --- in-dialog requests, retransmissions (issue 4) ---------------------------


def test_reinvite_in_dialog(proxy):
    """A re-INVITE follows the dialog's Route set (our signed Record-Route,
    loose routing) to the PBX and back; then BYE ends the call."""
    uac, rc, uas, rc_uas = proxy.run("proxy_uas_reinvite", "proxy_uac_reinvite")
    assert rc == 0 and rc_uas == 0, why(proxy, uac, uas)
    m = uas.messages()
    assert m.count("CSeq: 3 INVITE") >= 1, m


def test_bye_from_pbx_reaches_caller(proxy):
    """The PBX hangs up: its BYE goes to sipwarden along the Record-Route
    and on to the caller through the flow the Route carries."""
    uac, rc, uas, rc_uas = proxy.run("proxy_uas_bye", "proxy_uac_byein")
    assert rc == 0 and rc_uas == 0, why(proxy, uac, uas)


def test_invite_retransmission_absorbed(proxy):
    """The authenticated INVITE arrives twice (one branch): the server
    transaction absorbs the copy, the PBX sees one INVITE."""
    uac, rc, uas, rc_uas = proxy.run("proxy_uas_slow", "proxy_uac_retrans")
    assert rc == 0 and rc_uas == 0, why(proxy, uac, uas)
    m = uas.messages()
    assert m.count("INVITE sip:bob@") == 1, m


# --- configurations of their own -----------------------------------------------


@pytest.fixture
def proxy_with(make_server, tmp_path):
    """proxy_with(upstream_uri, extra_conf) -> server; alice exists; the
    PBX listens on PBX_IP:srv.pbx_port (upstream_uri may use {pbx_port})."""
    def make(upstream, extra="", pbx_port=None):
        pbx_port = pbx_port or free_port(PBX_IP)
        conf = CONF.replace("uri = sip:{pbx}:{pbx_port}", "uri = " + upstream)
        conf = conf.format(domain=DOMAIN, pbx=PBX_IP, pbx_port=pbx_port) + extra
        srv = make_server(start=False, realms=(), trust=None, extra=conf)
        srv.config.write_text(srv.config_text.replace("log_level = info", "log_level = debug"))
        user_add(srv, "alice@" + DOMAIN, PASSWORD)
        srv.start()
        srv.pbx_port = pbx_port
        return srv
    return make


def call(srv, tmp_path, uas, uac, pbx=(PBX_IP, None), pbx_transport="u1", auth_uri=True,
         others=(), uac_extra=()):
    """One call: a SIPp PBX (uas) on pbx, the caller (uac) via srv."""
    procs = []
    try:
        for o in others:
            procs.append(o)
        ip, port = pbx
        pbx_p = Sipp(tmp_path, "uas-" + uas, uas, ip, port or srv.pbx_port,
                     transport=pbx_transport)
        procs.append(pbx_p)
        time.sleep(0.3)
        extra = ["-au", "alice", "-ap", PASSWORD] + list(uac_extra)
        if auth_uri:
            extra += ["-auth_uri", "bob@" + DOMAIN]
        uac_p = Sipp(tmp_path, "uac-" + uac, uac, "127.0.0.1", free_port(), target=srv.addr,
                     extra=extra)
        procs.append(uac_p)
        rc = uac_p.wait()
        try:
            pbx_p.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        pbx_p.stop()
        rc_uas = pbx_p.wait()
        return uac_p, rc, pbx_p, rc_uas
    finally:
        for p in procs:
            p.stop()


def test_rechallenge_in_dialog_keeps_call(proxy_with, tmp_path):
    """rechallenge_in_dialog = yes: the caller's re-INVITE is challenged
    (407), sent again with credentials and reaches the PBX; the call is
    not dropped; the BYE is challenged too and ends it."""
    srv = proxy_with("sip:{pbx}:{pbx_port}", "rechallenge_in_dialog = yes\n")
    pbx = "%s:%d" % (PBX_IP, srv.pbx_port)
    uac, rc, uas, rc_uas = call(srv, tmp_path, "proxy_uas_rechallenge", "proxy_uac_rechallenge",
                                auth_uri=False,
                                uac_extra=["-key", "pbx", pbx, "-auth_uri", "bob@" + pbx])
    assert rc == 0 and rc_uas == 0, why(srv, uac, uas)
    m = uac.messages()
    assert m.count("SIP/2.0 407") >= 3, m  # initial INVITE, re-INVITE, BYE


def test_tcp_upstream(proxy_with, tmp_path):
    """transport=tcp: sipwarden opens the connection to the PBX itself
    (sw_tp_connect), the caller stays on UDP; ACK and BYE reuse it; a
    double Record-Route names our UDP and TCP sides."""
    srv = proxy_with("sip:{pbx}:{pbx_port};transport=tcp")
    uac, rc, uas, rc_uas = call(srv, tmp_path, "proxy_uas", "proxy_uac", pbx_transport="t1")
    assert rc == 0 and rc_uas == 0, why(srv, uac, uas)
    m = uas.messages()
    assert "Via: SIP/2.0/TCP" in m, m
    # RFC 5658: one Record-Route value per side (TCP towards the PBX on
    # top, UDP towards the caller below); in-dialog requests drop both
    rr = [l for l in m.splitlines() if l.startswith("Record-Route:")][0]
    assert rr.index("transport=tcp") < rr.index("transport=udp"), rr
    bye = m.split("BYE sip:", 1)[1].split("\n\n", 1)[0]
    assert "swrr" not in bye, bye


def test_tcp_upstream_refused_fails_over(proxy_with, tmp_path):
    """The first upstream (TCP) refuses the connection: the call fails over
    to the second at once, and the first is marked down."""
    dead = free_port("127.0.0.8")
    pbx_port = free_port(PBX_IP)
    srv = proxy_with("sip:127.0.0.8:%d;transport=tcp" % dead,
                     "\n[upstream pbx2]\nuri = sip:%s:%d\n" % (PBX_IP, pbx_port), pbx_port=pbx_port)
    uac, rc, uas, rc_uas = call(srv, tmp_path, "proxy_uas", "proxy_uac")
    assert rc == 0 and rc_uas == 0, why(srv, uac, uas)
    assert "proxy.upstream_down" in srv.log_text(), srv.log_tail(30)


# --- RFC 3263: host names through a DNS server the test starts -----------------


class Dns:
    """dnsmasq on 127.0.0.1:port answering only the records given (no
    upstream resolver, no /etc/hosts), ended by PID."""

    def __init__(self, tmp_path, records):
        self.port = free_port("127.0.0.1")
        self.log = tmp_path / "dnsmasq.log"
        argv = [tool("dnsmasq"), "-k", "--conf-file=/dev/null", "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                "--local=/sipwarden.test/", "--local-ttl=30", "--pid-file=", "--log-queries",
                "--log-facility=%s" % self.log, "--user=root"] + list(records)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise AssertionError("dnsmasq exited: %s" % _read(self.log))

    def queries(self):
        return _read(self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def dns(tmp_path):
    started = []

    def make(records):
        d = Dns(tmp_path, records)
        started.append(d)
        return d
    yield make
    for d in started:
        d.stop()


def test_hostname_upstream_naptr_srv_a(proxy_with, dns, tmp_path):
    """uri = sip:pbx.sipwarden.test (no port, no transport): NAPTR prefers
    TCP (order 10) whose SRV target refuses connections, then UDP (order
    20) -> SRV -> A = the PBX. The call goes through after failover."""
    pbx_port = free_port(PBX_IP)
    dead = free_port("127.0.0.8")
    d = dns([
        '--naptr-record=pbx.sipwarden.test,10,10,S,SIP+D2T,,_sip._tcp.pbx.sipwarden.test',
        '--naptr-record=pbx.sipwarden.test,20,10,S,SIP+D2U,,_sip._udp.pbx.sipwarden.test',
        '--srv-host=_sip._tcp.pbx.sipwarden.test,dead.sipwarden.test,%d,10,10' % dead,
        '--srv-host=_sip._udp.pbx.sipwarden.test,pbx1.sipwarden.test,%d,10,10' % pbx_port,
        '--host-record=dead.sipwarden.test,127.0.0.8',
        '--host-record=pbx1.sipwarden.test,%s' % PBX_IP,
    ])
    srv = proxy_with("sip:pbx.sipwarden.test",
                     "dns_servers = 127.0.0.1:%d\n" % d.port, pbx_port=pbx_port)
    uac, rc, uas, rc_uas = call(srv, tmp_path, "proxy_uas", "proxy_uac")
    assert rc == 0 and rc_uas == 0, why(srv, uac, uas) + d.queries()[-2000:]
    q = d.queries()
    assert "NAPTR" in q and "_sip._udp.pbx.sipwarden.test" in q, q
    log = srv.log_text()
    assert 'proxy.dns' in log and 'host="pbx.sipwarden.test"' in log, log[-3000:]
    assert "ttl_s=30" in log, log[-3000:]  # cached for the records' TTL
    assert "proxy.connect_failed" in log or "proxy.target_down" in log, log[-3000:]


def test_hostname_upstream_srv_priority_failover(proxy_with, dns, tmp_path):
    """uri = sip:pbx.sipwarden.test;transport=udp: SRV only (RFC 3263
    §4.2). Priority 10 answers 503, priority 20 takes the call; the BYE
    from the PBX side is recognised as the upstream's (a resolved
    address)."""
    pbx_port = free_port(PBX_IP)
    bad_ip = "127.0.0.9"
    bad_port = free_port(bad_ip)
    d = dns([
        '--srv-host=_sip._udp.pbx.sipwarden.test,bad.sipwarden.test,%d,10,10' % bad_port,
        '--srv-host=_sip._udp.pbx.sipwarden.test,pbx1.sipwarden.test,%d,20,10' % pbx_port,
        '--host-record=bad.sipwarden.test,%s' % bad_ip,
        '--host-record=pbx1.sipwarden.test,%s' % PBX_IP,
    ])
    srv = proxy_with("sip:pbx.sipwarden.test;transport=udp",
                     "dns_servers = 127.0.0.1:%d\n" % d.port, pbx_port=pbx_port)
    bad = Sipp(tmp_path, "uas-503", "proxy_uas_503", bad_ip, bad_port)
    uac, rc, uas, rc_uas = call(srv, tmp_path, "proxy_uas_bye", "proxy_uac_byein",
                                others=[bad])
    bad_rc = bad.wait()
    assert rc == 0 and rc_uas == 0, why(srv, uac, uas) + bad.detail()
    assert bad_rc == 0, bad.detail()
    assert "_sip._udp.pbx.sipwarden.test" in d.queries()
