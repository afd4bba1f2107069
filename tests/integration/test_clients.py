"""Real SIP clients from Debian against the real server: SIPp (sip-tester),
sipsak and baresip. Each client runs bounded in time and is ended by PID."""

import os
import pathlib
import signal
import subprocess
import time

import pytest

import sipwire
from conftest import free_port, free_sip_port, run_bounded, tool

SIPP_DIR = pathlib.Path(__file__).resolve().parent / "sipp"
DOMAIN = "example.test"


def query(srv, user, peer=None, domain=DOMAIN):
    """REGISTER without Contact: the current bindings of user (a 200)."""
    own = peer is None
    peer = peer or sipwire.UdpPeer()
    try:
        r = peer.request(srv.addr, "REGISTER", "sip:" + domain,
                         to="<sip:%s@%s>" % (user, domain))
    finally:
        if own:
            peer.close()
    assert r is not None and r.status == 200, r
    return r


# -- SIPp ------------------------------------------------------------------

def run_sipp(srv, scenario, user, tmp_path, transport="u1", calls=1,
             timeout=15, extra=()):
    sipp = tool("sipp")
    err = tmp_path / ("%s-%s-err.log" % (scenario, transport))
    msgs = tmp_path / ("%s-%s-msg.log" % (scenario, transport))
    argv = [sipp, "%s:%d" % srv.addr,
            "-sf", str(SIPP_DIR / (scenario + ".xml")),
            "-s", user, "-key", "domain", DOMAIN,
            "-i", "127.0.0.1", "-p", str(free_port()),
            "-t", transport, "-m", str(calls), "-l", "1",
            "-timeout", "%ds" % timeout, "-timeout_error",
            "-recv_timeout", "5000", "-nostdin",
            "-trace_err", "-error_file", str(err),
            "-trace_msg", "-message_file", str(msgs)] + list(extra)
    rc, out = run_bounded(argv, timeout + 10, cwd=str(tmp_path))
    detail = "sipp %s rc=%s\n--- stdout (tail)\n%s\n--- errors\n%s\n--- messages (tail)\n%s" % (
        scenario, rc, out[-1500:], _read(err)[-3000:], _read(msgs)[-4000:])
    return rc, detail


def _read(p):
    try:
        return pathlib.Path(p).read_text(errors="replace")
    except FileNotFoundError:
        return ""


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
@pytest.mark.parametrize("scenario", ["register", "refresh", "unregister", "retrans"])
def test_sipp(server, tmp_path, scenario, transport):
    if scenario == "retrans" and transport == "t1":
        pytest.skip("retransmissions are a UDP matter")
    user = "sipp-%s-%s" % (scenario, transport)
    rc, detail = run_sipp(server, scenario, user, tmp_path, transport)
    assert rc == 0, detail
    b = query(server, user).contacts()
    if scenario == "unregister":
        assert b == [], b
    else:
        assert len(b) == 1 and b[0][0].startswith("sip:%s@127.0.0.1:" % user), b


def test_sipp_many_users(server, tmp_path):
    """50 SIPp calls at 50/s for one AOR, each with its own Call-ID and the
    same Contact: every one gets its 200 and there is still exactly one
    binding (§10.3 step 7: a new Call-ID updates the existing binding)."""
    rc, detail = run_sipp(server, "register", "sipp-many", tmp_path, calls=50,
                          extra=["-r", "50"])
    assert rc == 0, detail
    assert len(query(server, "sipp-many").contacts()) == 1


# -- sipsak ----------------------------------------------------------------

def test_sipsak_options(server):
    sipsak = tool("sipsak")
    rc, out = run_bounded([sipsak, "-s", "sip:%s:%d" % server.addr,
                           "-H", "127.0.0.1", "-k", "127.0.0.1", "-vv"], 15)
    assert rc == 0, out
    assert "200" in out, out


@pytest.fixture
def localhost_server(make_server):
    """sipsak resolves the domain of -s even with -p, so the realm must be
    resolvable without DNS: 'localhost' (from /etc/hosts)."""
    return make_server(realms=("example.test", "localhost"))


def _sipsak_register(srv, user, extra=()):
    sipsak = tool("sipsak")
    # -p for the port: sipsak 0.9.8.1 truncates a 5-digit port in -s
    # (sip:x@localhost:33735 goes out as sip:x@localhost:3373).
    return run_bounded([sipsak, "-U", "-s", "sip:%s@localhost" % user,
                        "-p", "%s:%d" % srv.addr,
                        "-H", "127.0.0.1", "-k", "127.0.0.1",
                        "-x", "300", "-vv"] + list(extra), 20)


def test_sipsak_register(localhost_server):
    """sipsak usrloc mode: REGISTER, and sipsak checks that the 200 lists
    its Contact (then it removes the binding and checks that too)."""
    rc, out = _sipsak_register(localhost_server, "sipsak")
    assert rc == 0, out


def test_sipsak_register_binding_visible(localhost_server):
    lport = free_port()
    contact = "sip:sipsak2@127.0.0.1:%d" % lport
    rc, out = _sipsak_register(localhost_server, "sipsak2",
                               ["-C", contact, "-l", str(lport)])
    assert rc == 0, out
    b = query(localhost_server, "sipsak2", domain="localhost").contacts()
    assert [u for u, _ in b] == [contact], b
    assert 290 <= int(b[0][1]["expires"]) <= 300, b


# -- baresip ---------------------------------------------------------------

BARESIP_CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
module_path		/usr/lib/baresip/modules
module			g711.so
module_tmp		account.so
dns_server		127.0.0.1:53
audio_player		none
audio_source		none
audio_alert		none
"""


def _baresip_modules_dir():
    for d in ("/usr/lib/baresip/modules", "/usr/lib/x86_64-linux-gnu/baresip/modules"):
        if os.path.isdir(d):
            return d
    pytest.skip("baresip modules not found")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_registers(server, tmp_path, transport):
    baresip = tool("baresip")
    mods = _baresip_modules_dir()
    cfg = tmp_path / "baresip"
    cfg.mkdir()
    sip_port = free_sip_port()
    (cfg / "config").write_text(
        BARESIP_CONFIG.format(sip_port=sip_port).replace(
            "/usr/lib/baresip/modules", mods))
    user = "alice-" + transport
    (cfg / "accounts").write_text(
        '<sip:%s@%s;transport=%s>;regint=60;outbound="sip:%s:%d;transport=%s"\n'
        % (user, DOMAIN, transport, server.host, server.port, transport))
    (cfg / "contacts").write_text("")
    log = open(tmp_path / "baresip.log", "wb")
    p = subprocess.Popen([baresip, "-f", str(cfg), "-t", "20"],
                         cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT)
    found = []
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end and p.poll() is None:
            found = query(server, user).contacts()
            if found:
                break
            time.sleep(0.2)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)   # baresip unregisters on exit
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        log.close()
    out = (tmp_path / "baresip.log").read_text(errors="replace")
    assert found, "baresip's binding never appeared\n--- baresip\n%s\n--- server\n%s" % (
        out[-3000:], server.log_tail())
    (uri, params), = found
    assert uri.startswith("sip:%s@127.0.0.1:" % user) or "127.0.0.1" in uri, found
    if transport == "tcp":
        assert "transport=tcp" in uri.lower(), found
    assert 0 < int(params["expires"]) <= 60, found
