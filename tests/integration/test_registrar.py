"""Registrar semantics (RFC 3261 §10.3, RFC 3327 Path) over raw UDP and TCP,
persistence across kill -9, TCP framing and RFC 5626 keepalives."""

import os
import socket
import subprocess
import time

import pytest

import sipwire
from conftest import have_ipv6_loopback, sipwarden_bin

DOMAIN = "example.test"


def aor(user):
    return "sip:%s@%s" % (user, DOMAIN)


def register(peer, srv, user, contacts=(), expires=None, call_id=None,
             cseq=1, extra=(), ruri="sip:" + DOMAIN, dest=None):
    """REGISTER for user; returns the final response (None on timeout)."""
    return peer.request(dest or srv.addr, "REGISTER", ruri,
                        to="<%s>" % aor(user), from_="<%s>;tag=%s" % (
                            aor(user), sipwire.rand_token(4)),
                        call_id=call_id, cseq=cseq, contacts=list(contacts),
                        expires=expires, extra=list(extra))


def bindings(resp):
    """{contact uri: params} of a 200 to REGISTER."""
    assert resp is not None, "no response"
    assert resp.status == 200, "expected 200, got %s %s" % (resp.status, resp.reason)
    return {u: p for u, p in resp.contacts()}


def expires_of(params):
    assert "expires" in params, "binding listed without ;expires=: %r" % params
    return int(params["expires"])


@pytest.fixture
def ua():
    p = sipwire.UdpPeer()
    yield p
    p.close()


def test_options_to_server(server, ua):
    r = ua.request(server.addr, "OPTIONS", "sip:%s:%d" % server.addr)
    assert r is not None and r.status == 200
    allow = set(r.tokens("allow"))
    assert {"register", "options"} <= allow, allow
    assert r.get("supported") is not None, "200 to OPTIONS without Supported"
    assert r.to_tag()


def test_unknown_method_501(server, ua):
    r = ua.request(server.addr, "FROBNICATE", "sip:%s" % DOMAIN)
    assert r is not None and r.status == 501, r


def test_register_lists_binding_with_expires(server, ua):
    c = "sip:alice@127.0.0.1:5999"
    r = register(ua, server, "alice", ["<%s>" % c], expires=120)
    b = bindings(r)
    assert list(b) == [c], b
    assert 115 <= expires_of(b[c]) <= 120
    assert r.to_tag()
    # the contact param beats the Expires header (§10.3 step 6)
    r = register(ua, server, "alice", ["<%s>;expires=300" % c], expires=120,
                 call_id=r.get("call-id"), cseq=2)
    assert 295 <= expires_of(bindings(r)[c]) <= 300


def test_default_and_max_expires(server, ua):
    c = "sip:bob@127.0.0.1:5999"
    b = bindings(register(ua, server, "bob", ["<%s>" % c]))
    assert 3590 <= expires_of(b[c]) <= 3600, "default_expires = 3600"
    b = bindings(register(ua, server, "bob2", ["<%s>" % c], expires=99999))
    assert expires_of(b[c]) <= 3600, "max_expires = 3600 must clamp"


def test_query_without_contact(server, ua):
    c = "sip:carol@127.0.0.1:5999"
    bindings(register(ua, server, "carol", ["<%s>" % c], expires=600))
    b = bindings(register(ua, server, "carol"))
    assert list(b) == [c]
    assert 590 <= expires_of(b[c]) <= 600
    assert bindings(register(ua, server, "nobody-here")) == {}


def test_refresh_keeps_one_binding(server, ua):
    c = "sip:dave@127.0.0.1:5999"
    cid = sipwire.rand_token(8)
    bindings(register(ua, server, "dave", ["<%s>" % c], expires=100, call_id=cid, cseq=1))
    b = bindings(register(ua, server, "dave", ["<%s>" % c], expires=900, call_id=cid, cseq=2))
    assert list(b) == [c]
    assert 890 <= expires_of(b[c]) <= 900
    # §10.3 step 7: same Call-ID, CSeq not higher -> the update is refused
    r = register(ua, server, "dave", ["<%s>" % c], expires=100, call_id=cid, cseq=2)
    assert r is not None and r.status >= 400, r
    assert 880 <= expires_of(bindings(register(ua, server, "dave"))[c]) <= 900


def test_423_min_expires(server, ua):
    r = register(ua, server, "erin", ["<sip:erin@127.0.0.1:5999>"], expires=30)
    assert r is not None and r.status == 423, r
    assert r.get("min-expires") is not None and int(r.get("min-expires")) == 60
    r = register(ua, server, "erin", ["<sip:erin@127.0.0.1:5999>;expires=10"])
    assert r is not None and r.status == 423, r
    assert bindings(register(ua, server, "erin")) == {}


def test_unregister_one_and_star(server, ua):
    c1, c2 = "sip:frank@127.0.0.1:5001", "sip:frank@127.0.0.1:5002"
    cid = sipwire.rand_token(8)
    b = bindings(register(ua, server, "frank", ["<%s>" % c1, "<%s>" % c2],
                          expires=600, call_id=cid, cseq=1))
    assert set(b) == {c1, c2}
    b = bindings(register(ua, server, "frank", ["<%s>" % c1], expires=0,
                          call_id=cid, cseq=2))
    assert set(b) == {c2}, "Expires 0 removes only that contact"
    # Contact: * without Expires: 0 is a 400 (§10.3 step 6)
    r = register(ua, server, "frank", ["*"], call_id=cid, cseq=3)
    assert r is not None and r.status == 400, r
    b = bindings(register(ua, server, "frank", ["*"], expires=0, call_id=cid, cseq=4))
    assert b == {}, "Contact * with Expires 0 removes all"
    assert bindings(register(ua, server, "frank")) == {}


def test_max_bindings_per_aor(make_server, ua):
    srv = make_server(registrar={"max_bindings_per_aor": 3})
    for i in range(3):
        bindings(register(ua, srv, "gina", ["<sip:gina@127.0.0.1:%d>" % (6000 + i)],
                          expires=600))
    r = register(ua, srv, "gina", ["<sip:gina@127.0.0.1:6003>"], expires=600)
    assert r is not None and r.status >= 400, "4th binding accepted: %r" % r
    assert len(bindings(register(ua, srv, "gina"))) == 3
    # refreshing an existing one is still fine
    bindings(register(ua, srv, "gina", ["<sip:gina@127.0.0.1:6000>"], expires=600))


def test_q_values_listed(server, ua):
    c1, c2 = "sip:hal@127.0.0.1:5001", "sip:hal@127.0.0.1:5002"
    b = bindings(register(ua, server, "hal", ["<%s>;q=0.5" % c1, "<%s>;q=1.0" % c2],
                          expires=600))
    assert float(b[c1]["q"]) == 0.5 and float(b[c2]["q"]) == 1.0, b


def test_path_echoed(server, ua):
    path = "<sip:edge.example.test;lr>"
    r = register(ua, server, "ivy", ["<sip:ivy@127.0.0.1:5999>"], expires=600,
                 extra=["Supported: path", "Path: " + path])
    bindings(r)
    assert [p.replace(" ", "") for p in r.get_all("path")] == [path], r.get_all("path")
    # RFC 3327 §5.3: without Supported: path the Path is not echoed
    # (a registrar may also refuse such a REGISTER with 420)
    r = register(ua, server, "ivy2", ["<sip:ivy2@127.0.0.1:5999>"], expires=600,
                 extra=["Path: " + path])
    assert r is not None and r.status in (200, 420), r
    if r.status == 200:
        assert r.get_all("path") == [], r.raw


def test_instance_and_reg_id(server, ua):
    inst = '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'
    r = register(ua, server, "jay",
                 ["<sip:jay@127.0.0.1:5999>;+sip.instance=%s;reg-id=1" % inst],
                 expires=600, extra=["Supported: outbound, path"])
    (uri, params), = bindings(r).items()
    assert params.get("+sip.instance") == inst.strip('"'), params


def test_foreign_domain_403(server, ua):
    r = register(ua, server, "kim", ["<sip:kim@127.0.0.1:5999>"], expires=600,
                 ruri="sip:not-served.example")
    assert r is not None and r.status == 403, r


def test_untrusted_source_challenged(make_server, ua):
    """Outside [registrar] trust a REGISTER must prove a password: 401 with
    a digest challenge, and no binding is created."""
    srv = make_server(trust="127.0.0.2/32")
    r = register(ua, srv, "lee", ["<sip:lee@127.0.0.1:5999>"], expires=600)
    assert r is not None and r.status == 401, r
    assert (r.get("www-authenticate") or "").startswith("Digest "), r.raw
    # but a trusted source (127.0.0.2) is accepted
    with sipwire.UdpPeer("127.0.0.2") as ok:
        bindings(register(ok, srv, "lee", ["<sip:lee@127.0.0.2:5999>"], expires=600))


def test_no_trust_configured_not_open(make_server, ua):
    """No trust list, no users: nobody registers (never an open registrar)."""
    srv = make_server(trust=None)
    r = register(ua, srv, "mo", ["<sip:mo@127.0.0.1:5999>"], expires=600)
    assert r is not None and r.status == 401, "open registrar by default: %r" % r
    with sipwire.UdpPeer("127.0.0.2") as other:
        q = register(other, srv, "mo", [], expires=None)
        assert q is not None and q.status == 401, q


def test_retransmission_identical_200(server, ua):
    """§17.2.2: a retransmitted REGISTER (same branch) gets the stored
    response again, byte for byte, and is not processed twice."""
    data = sipwire.build_request(
        "REGISTER", "sip:" + DOMAIN, via_host=ua.host, via_port=ua.port,
        to="<%s>" % aor("nina"), contacts=["<sip:nina@127.0.0.1:5999>"],
        expires=600)
    ua.send(data, server.addr)
    first = ua.recv(2.0)
    ua.send(data, server.addr)
    second = ua.recv(2.0)
    assert first and second, "missing response (first=%r)" % (first,)
    assert sipwire.parse_message(first[0]).status == 200
    assert first[0] == second[0], "retransmission answered differently:\n%r\n%r" % (
        first[0], second[0])
    assert ua.recv(0.3) is None, "more responses than requests"


def test_restart_kill9_keeps_bindings(server, ua):
    c = "sip:olga@127.0.0.1:5999"
    bindings(register(ua, server, "olga", ["<%s>" % c], expires=1200))
    t0 = time.monotonic()
    server.restart(hard=True)      # kill -9, then start on the same data_dir
    b = bindings(register(ua, server, "olga"))
    gone = int(time.monotonic() - t0) + 1
    assert list(b) == [c], "binding lost across kill -9: %r" % b
    assert 1200 - gone - 1 <= expires_of(b[c]) <= 1200
    # and a graceful restart too
    server.restart(hard=False)
    assert list(bindings(register(ua, server, "olga"))) == [c]


def test_restart_forgets_removed(server, ua):
    c = "sip:pia@127.0.0.1:5999"
    cid = sipwire.rand_token(8)
    bindings(register(ua, server, "pia", ["<%s>" % c], expires=1200, call_id=cid, cseq=1))
    bindings(register(ua, server, "pia", ["*"], expires=0, call_id=cid, cseq=2))
    server.restart(hard=True)
    assert bindings(register(ua, server, "pia")) == {}


def test_journal_write_failure_500(make_server, ua):
    """A REGISTER whose journal write fails is answered 500 with
    Retry-After, changes nothing, and is logged; the next one works. The
    failure: the worker's segment name taken by a symlink (never
    followed) to /dev/full."""
    srv = make_server(workers=1)
    seg = srv.data_dir / "bindings-0-1.log"     # fresh data_dir: generation 1
    assert not seg.exists()
    os.symlink("/dev/full", str(seg))
    c = "sip:quill@127.0.0.1:5999"
    r = register(ua, srv, "quill", ["<%s>" % c], expires=600)
    assert r is not None and r.status == 500, r and r.start
    assert r.get("Retry-After") == "5"
    assert "event=registrar.journal_write_failed" in srv.log_text()
    os.unlink(str(seg))
    assert bindings(register(ua, srv, "quill")) == {}
    assert list(bindings(register(ua, srv, "quill", ["<%s>" % c], expires=600,
                                  cseq=2))) == [c]
    srv.restart(hard=True)
    assert list(bindings(register(ua, srv, "quill"))) == [c]


# -- TCP -------------------------------------------------------------------

def test_tcp_two_registers_one_connection(server):
    with sipwire.TcpPeer(server.addr) as t:
        c = "sip:quinn@127.0.0.1:%d;transport=tcp" % t.port
        b = bindings(register(t, server, "quinn", ["<%s>" % c], expires=600))
        assert c in b
        b = bindings(register(t, server, "quinn2", ["<%s>" % c], expires=600))
        assert c in b
        r = t.request(server.addr, "OPTIONS", "sip:%s:%d" % server.addr)
        assert r is not None and r.status == 200


def test_tcp_two_registers_one_segment(server):
    """Pipelined: both requests in one write; both answered in order."""
    with sipwire.TcpPeer(server.addr) as t:
        msgs = [sipwire.build_request(
            "REGISTER", "sip:" + DOMAIN, via_host=t.host, via_port=t.port,
            transport="TCP", to="<%s>" % aor(u),
            contacts=["<sip:%s@127.0.0.1:5999;transport=tcp>" % u], expires=600)
            for u in ("rita", "sam")]
        t.send(msgs[0] + msgs[1])
        r1, r2 = t.wait_final(3.0), t.wait_final(3.0)
        assert r1 is not None and r2 is not None, (r1, r2)
        assert (r1.status, r2.status) == (200, 200)
        # responses are matched by Via/CSeq, not by order (§17.1.3)
        assert sorted(r.get("to").split("@")[0] for r in (r1, r2)) == \
            ["<sip:rita", "<sip:sam"]


def test_tcp_crlf_keepalive(server):
    """RFC 5626 §3.5.1: CRLFCRLF ping -> CRLF pong; connection stays usable."""
    with sipwire.TcpPeer(server.addr) as t:
        t.send(b"\r\n\r\n")
        f = t.recv_frame(2.0)
        assert f == b"\r\n", "no CRLF pong: %r" % (f,)
        r = t.request(server.addr, "OPTIONS", "sip:%s:%d" % server.addr)
        assert r is not None and r.status == 200


@pytest.mark.parametrize("bad", [
    b"Content-Length: -999",                      # RFC 4475 3.1.2.3 (ncl)
    b"Content-Length: 10\r\nContent-Length: 0",   # 3.3.9 (mcl01)
    b"Content-Length: banana",
], ids=["negative-cl", "conflicting-cl", "nonnumeric-cl"])
def test_tcp_framing_error_closes(server, bad):
    with sipwire.TcpPeer(server.addr) as t:
        data = sipwire.build_request("OPTIONS", "sip:%s:%d" % server.addr,
                                     via_host=t.host, via_port=t.port,
                                     transport="TCP")
        data = data.replace(b"Content-Length: 0", bad)
        t.send(data)
        assert t.wait_closed(5.0), "connection left open after a framing error"
    assert server.options_ok()


def test_tcp_garbage_closes(server):
    with sipwire.TcpPeer(server.addr) as t:
        t.send(os.urandom(64).replace(b"\r", b"x").replace(b"\n", b"x") + b"\r\n\r\n")
        assert t.wait_closed(5.0), "connection left open after garbage"
    assert server.options_ok()


def test_udp_response_to_rport(server):
    """RFC 3581: Via with rport and a wrong sent-by port -> reply to the
    source port, with received/rport filled in."""
    with sipwire.UdpPeer() as p:
        data = sipwire.build_request("OPTIONS", "sip:%s:%d" % server.addr,
                                     via_host="192.0.2.1", via_port=9,
                                     rport=True)
        p.send(data, server.addr)
        r = p.wait_final(2.0)
        assert r is not None and r.status == 200
        via = r.get("via")
        assert "received=127.0.0.1" in via and "rport=%d" % p.port in via, via


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no ::1")
def test_ipv6_udp_and_tcp(make_server):
    srv = make_server(ipv6=True, trust="::1/128")
    dest = ("::1", srv.v6port)
    with sipwire.UdpPeer("::1") as p:
        r = p.request(dest, "OPTIONS", "sip:[::1]:%d" % srv.v6port)
        assert r is not None and r.status == 200
        c = "sip:v6@[::1]:%d" % p.port
        assert c in bindings(register(p, srv, "v6", ["<%s>" % c], expires=600,
                                      dest=dest))
    with sipwire.TcpPeer(dest) as t:
        c = "sip:v6t@[::1]:%d;transport=tcp" % t.port
        assert c in bindings(register(t, srv, "v6t", ["<%s>" % c], expires=600,
                                      dest=dest))


def test_tcp_many_connections_then_udp_still_fine(server):
    conns = [socket.create_connection(server.addr, timeout=2) for _ in range(50)]
    for s in conns:
        s.close()
    assert server.options_ok()


def test_second_instance_on_the_same_port_refuses(make_server):
    """Every listener is SO_REUSEPORT (a socket per worker): without a check
    a second sipwarden (another data_dir, the same port) would bind too and
    silently take a share of the first one's traffic. It must refuse to
    start, naming the address; the first keeps answering."""
    first = make_server()
    second = make_server(start=False)
    text = second.config_text.replace(":%d" % second.port, ":%d" % first.port)
    second.config.write_text(text)
    p = subprocess.run([sipwarden_bin(), "run", "-c", str(second.config)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0, out
    assert "listen.failed" in out and "udp:127.0.0.1:%d" % first.port in out, out
    assert "in use" in out, out
    with sipwire.UdpPeer() as peer:
        r = peer.request(first.addr, "OPTIONS", "sip:%s:%d" % first.addr, timeout=2)
        assert r is not None and r.status == 200


def test_reply_memory_spent_is_told(make_server, ua):
    """[limits] txn_memory bounds the replies kept for retransmissions:
    once spent, requests are still answered, a retransmission of one whose
    reply was not kept goes unanswered, and the operator is told why
    (txn.reply_memory_spent, at most once a minute)."""
    srv = make_server(workers=1, extra="\n[limits]\ntxn_memory = 1M\n[guard]\ntrusted = 127.0.0.0/8\n")
    sent = []
    for i in range(9000):          # ~1.6 MB of replies at ~180 bytes each
        data = sipwire.build_request(
            "REGISTER", "sip:" + DOMAIN, via_host=ua.host, via_port=ua.port,
            to="<%s>" % aor("m%d" % i), contacts=["<sip:m%d@127.0.0.1:5999>" % i],
            expires=600)
        ua.send(data, srv.addr)
        sent.append(data)
        if i % 200 == 199:          # let the server keep up: no drops
            while ua.recv(0.05):
                pass
    while ua.recv(0.3):
        pass
    deadline = time.monotonic() + 5
    while "txn.reply_memory_spent" not in srv.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "txn.reply_memory_spent" in srv.log_text(), srv.log_tail()
    # the first request's reply was kept, the last one's was not
    ua.send(sent[0], srv.addr)
    first = ua.recv(2.0)
    assert first and sipwire.parse_message(first[0]).status == 200
    ua.send(sent[-1], srv.addr)
    assert ua.recv(1.0) is None, "a reply that did not fit was resent"
    # new requests are still answered
    r = register(ua, srv, "late", ["<sip:late@127.0.0.1:5999>"], expires=600)
    assert r is not None and r.status == 200, r
