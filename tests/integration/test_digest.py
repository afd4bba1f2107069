"""Digest authentication (issue 3) against the live server, over raw SIP:
responses computed here with hashlib (sipdigest.py), verdicts checked on
the wire and in the server's auth log line."""

import re
import statistics
import time

import pytest

import sipwire
from conftest import Server
from sipdigest import (ALGORITHMS, DigestUA, H, auth_events, authorization, challenge_for,
                       challenges, ha1, log_mark, user_add, user_cmd, wait_auth_event)

REALM = "example.test"      # every algorithm, qop auth and auth-int
OTHER = "other.test"        # a second realm (realm scoping, realm-mismatch)
SHORT = "short.test"        # nonce_lifetime = 10 s (the minimum) for stale
STRICT = "strict.test"      # userhash, nonces bound to the IP, 403 after 3 failures
TRUSTED_SRC = "127.0.0.2"   # [registrar] trust: registers without a password

PW = {"alice": "alice-Secret-Pass-1", "bob": "bob-Secret-Pass-2",
      "a7f3k9": "a7f3k9-Secret-Pass-3", "carol": "carol-Secret-Pass-4",
      "dave": "dave-Secret-Pass-5", "erin": "erin-Secret-Pass-6",
      "mallory": "mallory-Secret-Pass-7"}
OTHER_PW = "alice-at-other-Pass-8"

CONF = """
[realm {realm}]
algorithms = SHA-512-256, SHA-512-256-sess, SHA-256, SHA-256-sess, MD5, MD5-sess
md5 = allow
qop = auth, auth-int
identity = a7f3k9:1001

[realm {other}]
algorithms = SHA-256, MD5

[realm {short}]
algorithms = SHA-256
nonce_lifetime = 10

[realm {strict}]
algorithms = SHA-256, SHA-512-256
userhash = yes
bind_nonce_to_ip = yes
after_failure = reject
max_failures = 3

; rates and bans are the guard's tests; here they would only get in the way
[guard]
trusted = 127.0.0.0/8
""".format(realm=REALM, other=OTHER, short=SHORT, strict=STRICT)

# Everything a test sends as a secret; the log must contain none of it.
SECRETS = set()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("digest"), realms=(), trust=TRUSTED_SRC + "/32",
               registrar={"max_bindings_per_aor": 128},
               extra=CONF)
    for u, pw in PW.items():
        user_add(s, "%s@%s" % (u, REALM), pw)
    user_add(s, "alice@%s" % OTHER, OTHER_PW)
    user_add(s, "alice@%s" % SHORT, PW["alice"])
    user_add(s, "alice@%s" % STRICT, PW["alice"])
    user_cmd(s, "disable", "mallory@%s" % REALM)
    user_cmd(s, "aors", "carol@%s" % REALM, "2002")
    s.start()
    yield s
    crashed = s.proc is not None and s.proc.poll() is not None
    tail = s.log_tail()
    s.stop()
    assert not crashed, "sipwarden died during the module:\n" + tail


def remember(ua):
    SECRETS.update(ua.sent_responses)
    SECRETS.add(ua.password)


def ua_for(srv, user, alg="SHA-256", realm=REALM, **kw):
    return DigestUA(srv, user, PW.get(user, "no-such-password-123"), realm, alg=alg, **kw)


# -- success per algorithm and qop --------------------------------------------

def test_challenge_lists_every_algorithm_with_one_nonce(srv):
    with ua_for(srv, "alice") as ua:
        r = ua.send()
    assert r.status == 401
    ch = challenges(r)
    assert [c["algorithm"] for c in ch] == ["SHA-512-256", "SHA-512-256-sess", "SHA-256",
                                            "SHA-256-sess", "MD5", "MD5-sess"]
    assert len({c["nonce"] for c in ch}) == 1, ch        # RFC 8760 §2.4
    assert all(c["realm"] == REALM and c["qop"] == "auth,auth-int" for c in ch), ch
    assert all("stale" not in c for c in ch), ch


@pytest.mark.parametrize("qop", ["auth", "auth-int"])
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_register_ok(srv, alg, qop):
    mark = log_mark(srv)
    body = b"auth-int covers this body\r\n" if qop == "auth-int" else b""
    with ua_for(srv, "alice", alg=alg, qop=qop) as ua:
        r = ua.register(body=body)
        remember(ua)
        assert r is not None and r.status == 200, r and r.raw
        assert any(u.startswith("sip:alice@127.0.0.1:%d" % ua.peer.port)
                   for u, _ in r.contacts()), r.contacts()
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.ok", mark)
    assert ev and ev["user"] == "alice" and ev["realm"] == REALM and ev["algorithm"] == alg, ev


def test_register_ok_tcp(srv):
    with sipwire.TcpPeer(srv.addr) as peer:
        ua = ua_for(srv, "alice", alg="SHA-256", peer=peer)
        r = ua.register()
        remember(ua)
    assert r is not None and r.status == 200, r and r.raw


def test_auth_int_body_is_verified(srv):
    """auth-int: the hash covers the real body; a response computed over
    another body fails as bad-response."""
    mark = log_mark(srv)
    with ua_for(srv, "alice", qop="auth-int") as ua:
        ua.challenge()
        line = ua.auth_line(body=b"the body we claim")
        r = ua.send(line, body=b"the body we send")
        remember(ua)
    assert r.status == 401, r.raw
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.fail", mark)
    assert ev and ev["reason"] == "bad-response", ev


# -- wrong password, unknown user, enumeration ---------------------------------

def _normalise(resp):
    """A 401's bytes with what must differ per request masked: the nonce,
    the Via port/branch/rport (each case uses its own socket), the To-tag
    and the CSeq number."""
    t = resp.raw.decode("latin-1")
    t = re.sub(r'nonce="[^"]*"', 'nonce="N"', t)
    t = re.sub(r"branch=[^;\r\n]+", "branch=B", t)
    t = re.sub(r"rport=\d+", "rport=P", t)
    t = re.sub(r"(?m)^(Via: SIP/2\.0/\w+ [^:\s]+:)\d+", r"\1PORT", t)
    t = re.sub(r"(?m)^(To: .*;tag=)\S+", r"\1T", t)
    t = re.sub(r"(?m)^CSeq: \d+", "CSeq: C", t)
    return t


def _failed_401(srv, auth_user, password, alg="SHA-256"):
    """A full challenge pair for the AOR alice with Auth ID auth_user:
    (the second answer, its latency in s). Same AOR, Call-ID, tags for all."""
    ua = DigestUA(srv, auth_user, password, REALM, alg=alg, aor_user="alice")
    ua.call_id, ua.from_tag = "enum-call@test", "enumtag"
    with ua:
        ua.challenge()
        t0 = time.perf_counter()
        r = ua.answer()
        dt = time.perf_counter() - t0
        remember(ua)
    assert r is not None, "no answer"
    return r, dt


def test_wrong_password_rechallenges_like_unknown_user(srv):
    mark = log_mark(srv)
    wrong, _ = _failed_401(srv, "alice", "not-alices-password")
    unknown, _ = _failed_401(srv, "nosuchuser", "not-alices-password")
    assert wrong.status == unknown.status == 401
    w, u = _normalise(wrong), _normalise(unknown)
    assert w == u, "the 401s differ beyond the nonce:\n%s\n---\n%s" % (w, u)
    assert all("stale" not in c for c in challenges(wrong)), wrong.raw
    assert wait_auth_event(srv, lambda e: e.get("reason") == "bad-response" and
                           e.get("user") == "alice", mark)
    assert wait_auth_event(srv, lambda e: e.get("reason") == "unknown-user" and
                           e.get("user") == "nosuchuser", mark)


def test_enumeration_equivalence(srv, record_property, capsys):
    """Unknown user, disabled user and wrong password: identical 401s
    (bytes, nonce masked) and latencies of the same order. The latencies
    are recorded, not asserted (a loaded CI box makes them noisy)."""
    cases = {"wrong-password": ("alice", "not-alices-password"),
             "unknown-user": ("nosuchuser", "whatever-password"),
             "disabled-user": ("mallory", PW["mallory"])}
    shapes, lat = {}, {k: [] for k in cases}
    mark = log_mark(srv)
    for rnd in range(40):
        for name, (u, pw) in cases.items():
            r, dt = _failed_401(srv, u, pw)
            assert r.status == 401, (name, r.raw)
            lat[name].append(dt)
            if rnd == 0:
                shapes[name] = _normalise(r)
    assert shapes["wrong-password"] == shapes["unknown-user"] == shapes["disabled-user"], shapes
    reasons = {e["reason"] for e in auth_events(srv, mark) if e.get("event") == "auth.fail"}
    assert {"bad-response", "unknown-user", "disabled"} <= reasons, reasons
    summary = {k: "median %.0f us, p90 %.0f us" % (statistics.median(v) * 1e6,
                                                   sorted(v)[int(len(v) * 0.9)] * 1e6)
               for k, v in lat.items()}
    for k, v in summary.items():
        record_property("latency_" + k, v)
    with capsys.disabled():
        print("\n[enumeration latency, 40 rounds each] " +
              "; ".join("%s: %s" % kv for kv in summary.items()))


# -- nonce reuse, replay, stale -------------------------------------------------

def test_nonce_reuse_nc_plus_one_is_one_round_trip(srv):
    with ua_for(srv, "alice", alg="SHA-256") as ua:
        r = ua.register()
        assert r.status == 200, r.raw
        for nc in (2, 3, 4):
            r = ua.answer(nc=nc)
            assert r.status == 200, (nc, r.raw)
        remember(ua)


def test_retransmission_is_not_a_replay(srv):
    """The same datagram twice (same branch): the transaction layer answers
    the copy with the stored 200; auth never sees it as nc-replay."""
    mark = log_mark(srv)
    with ua_for(srv, "alice") as ua:
        ua.challenge()
        line = ua.auth_line()
        aor = "sip:alice@%s" % REALM
        data = sipwire.build_request(
            "REGISTER", ua.ruri, via_host=ua.peer.via_host, via_port=ua.peer.port,
            to="<%s>" % aor, from_="<%s>;tag=rt" % aor, call_id=ua.call_id, cseq=10,
            contacts=["<sip:alice@127.0.0.1:%d>" % ua.peer.port], expires=300,
            extra=[line])
        ua.peer.send(data, srv.addr)
        first = ua.peer.wait_final(2)
        ua.peer.send(data, srv.addr)
        second = ua.peer.wait_final(2)
        remember(ua)
    assert first.status == 200 and second is not None and second.status == 200
    assert not [e for e in auth_events(srv, mark) if e.get("reason") == "nc-replay"]


def test_retransmissions_get_the_same_bytes(srv):
    """A transaction keeps a non-INVITE reply without the fields copied
    from the request and rebuilds them from the retransmission: the copy
    of a wrong-password REGISTER (a stateful 401, nonce in it) and of a
    good one (200) must come back byte for byte, also with two Via rows,
    a compact-form Via and a folded From."""
    with ua_for(srv, "alice") as ua:
        ua.challenge()
        aor = "sip:alice@%s" % REALM
        got = []
        for cseq, password in ((30, "not-alices-password"), (31, None)):
            data = sipwire.build_request(
                "REGISTER", ua.ruri, via_host=ua.peer.via_host, via_port=ua.peer.port,
                to="<%s>" % aor, from_="Alice\r\n <%s>;tag=rb" % aor, call_id=ua.call_id,
                cseq=cseq, contacts=["<sip:alice@127.0.0.1:%d>" % ua.peer.port],
                expires=300, extra=[ua.auth_line(password)])
            head, rest = data.split(b"\r\n", 2)[:2], data.split(b"\r\n", 2)[2]
            data = b"\r\n".join(head) + b"\r\nv: SIP/2.0/UDP 192.0.2.7:5080;branch=z9hG4bKlower\r\n" + rest
            ua.peer.send(data, srv.addr)
            first = ua.peer.wait_final(2)
            ua.peer.send(data, srv.addr)
            second = ua.peer.wait_final(2)
            assert first is not None and second is not None, (cseq, first)
            assert first.raw == second.raw, "retransmission answered differently:\n%r\n%r" % (
                first.raw, second.raw)
            got.append(first.status)
        remember(ua)
    assert got == [401, 200], got


def test_challenge_without_credentials_is_stateless(srv):
    """RFC 3261 §8.2.7: a request without credentials is challenged
    statelessly, so unauthenticated floods leave no transaction state. The
    same datagram twice (same branch) gets two challenges: the same To tag
    (derived from the request) but a fresh nonce each time, where a stored
    reply would repeat the first nonce. The second nonce works."""
    with ua_for(srv, "alice") as ua:
        aor = "sip:alice@%s" % REALM
        data = sipwire.build_request(
            "REGISTER", ua.ruri, via_host=ua.peer.via_host, via_port=ua.peer.port,
            to="<%s>" % aor, from_="<%s>;tag=sl" % aor, call_id=ua.call_id, cseq=20,
            contacts=["<sip:alice@127.0.0.1:%d>" % ua.peer.port], expires=300)
        ua.peer.send(data, srv.addr)
        first = ua.peer.wait_final(2)
        ua.peer.send(data, srv.addr)
        second = ua.peer.wait_final(2)
        assert first is not None and second is not None
        assert first.status == 401 and second.status == 401, (first.raw, second.raw)
        assert first.get("to") == second.get("to") and ";tag=" in first.get("to")
        n1 = challenge_for(first, ua.alg)["nonce"]
        n2 = challenge_for(second, ua.alg)["nonce"]
        assert n1 != n2, "the retransmission got the stored challenge"
        ua.chal, ua.nc = challenge_for(second, ua.alg), 0
        assert ua.answer().status == 200
        remember(ua)


def test_replayed_nc_is_rejected(srv):
    mark = log_mark(srv)
    with ua_for(srv, "alice") as ua:
        assert ua.register().status == 200
        assert ua.answer(nc=2).status == 200
        r = ua.answer(nc=2)                    # a new transaction, same (nonce, nc)
        remember(ua)
    assert r.status == 401, r.raw
    assert all(c.get("stale") == "true" for c in challenges(r)), r.raw
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.fail", mark)
    assert ev and ev["reason"] == "nc-replay" and ev["user"] == "alice", ev


def test_stale_nonce(srv):
    """nonce_lifetime = 10 s: the right answer to an expired nonce gets
    stale=true (RFC 7616 §3.3) and the new nonce works; a wrong answer to
    an expired nonce does not get stale=true."""
    with ua_for(srv, "alice", realm=SHORT) as ua, \
            ua_for(srv, "alice", realm=SHORT) as bad:
        ua.challenge()
        bad.challenge()
        time.sleep(11.5)
        r = ua.answer()
        assert r.status == 401, r.raw
        ch = challenge_for(r, "SHA-256")
        assert ch.get("stale") == "true", r.raw
        assert ch["nonce"] != ua.chal["nonce"]
        ua.chal, ua.nc = ch, 0
        r = ua.answer()
        assert r.status == 200, r.raw
        r = bad.answer(password="wrong-password-for-stale")
        assert r.status == 401 and "stale" not in challenge_for(r, "SHA-256"), r.raw
        remember(ua)
        remember(bad)


def test_tampered_nonce_is_bad_nonce(srv):
    mark = log_mark(srv)
    with ua_for(srv, "alice") as ua:
        ua.challenge()
        n = ua.chal["nonce"]
        ua.chal = dict(ua.chal, nonce=n[:-2] + ("AA" if n[-2:] != "AA" else "BB"))
        r = ua.answer()
        remember(ua)
    assert r.status == 401, r.raw
    assert wait_auth_event(srv, lambda e: e.get("reason") == "bad-nonce", mark)


# -- what the request claims ------------------------------------------------------

def test_uri_mismatch(srv):
    mark = log_mark(srv)
    with ua_for(srv, "alice") as ua:
        ua.challenge()
        r = ua.answer(uri="sip:elsewhere.test")
        remember(ua)
    assert r.status == 400, r.raw
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.fail", mark)
    assert ev and ev["reason"] == "uri-mismatch", ev


def test_realm_mismatch(srv):
    """Credentials for other.test sent to a REGISTER for example.test."""
    mark = log_mark(srv)
    with ua_for(srv, "alice") as ua:
        ua.challenge()
        line, resp = authorization(dict(ua.chal, realm=OTHER), "alice", OTHER_PW,
                                   "REGISTER", ua.ruri, alg="SHA-256")
        r = ua.send(line)
        SECRETS.add(resp)
    assert r.status == 401, r.raw
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.fail", mark)
    assert ev and ev["reason"] == "realm-mismatch", ev


def test_realms_scope_secrets(srv):
    """alice@other.test has her own password; example.test's fails there."""
    with DigestUA(srv, "alice", OTHER_PW, OTHER, alg="SHA-256") as ua:
        assert ua.register().status == 200
        remember(ua)
    with DigestUA(srv, "alice", PW["alice"], OTHER, alg="SHA-256") as ua:
        assert ua.register().status == 401
        remember(ua)


def test_alg_not_allowed(srv):
    mark = log_mark(srv)
    with DigestUA(srv, "alice", PW["alice"], SHORT, alg="SHA-256") as ua:
        ua.challenge()
        ua.alg = "MD5"
        r = ua.answer()
        remember(ua)
    assert r.status == 401, r.raw
    assert [c["algorithm"] for c in challenges(r)] == ["SHA-256"], r.raw
    assert wait_auth_event(srv, lambda e: e.get("reason") == "alg-not-allowed", mark)


def test_disabled_user(srv):
    mark = log_mark(srv)
    with ua_for(srv, "mallory") as ua:
        r = ua.register()
        remember(ua)
    assert r.status == 401, r.raw
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.fail", mark)
    assert ev and ev["reason"] == "disabled" and ev["user"] == "mallory", ev


def test_username_mismatch_is_403(srv):
    """Auth ID bob (right password) registering alice's AOR."""
    mark = log_mark(srv)
    with ua_for(srv, "bob", aor_user="alice") as ua:
        r = ua.register()
        remember(ua)
    assert r.status == 403, r.raw
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.fail", mark)
    assert ev and ev["reason"] == "username-mismatch" and ev["user"] == "bob", ev


def test_identity_mapping_from_config(srv):
    """[realm] identity = a7f3k9:1001: Auth ID a7f3k9 registers 1001."""
    mark = log_mark(srv)
    with ua_for(srv, "a7f3k9", aor_user="1001") as ua:
        r = ua.register()
        remember(ua)
    assert r.status == 200, r.raw
    assert any(u.startswith("sip:1001@") for u, _ in r.contacts()), r.contacts()
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.ok", mark)
    assert ev and ev["user"] == "a7f3k9" and ev.get("aor") == "1001@" + REALM, ev
    with ua_for(srv, "a7f3k9", aor_user="1002") as ua:     # not mapped
        assert ua.register().status == 403
        remember(ua)


def test_identity_mapping_from_user_aors(srv):
    """`sipwarden user aors carol@example.test 2002`."""
    with ua_for(srv, "carol", aor_user="2002") as ua:
        r = ua.register()
        remember(ua)
    assert r.status == 200, r.raw


# -- credentials changing under the running server ---------------------------------

def _register_until(srv, user, pw, want, timeout):
    """Register until the final status is want; the seconds it took."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        with DigestUA(srv, user, pw, REALM, alg="SHA-256") as ua:
            last = ua.register()
            remember(ua)
        if last is not None and last.status == want:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError("still %s after %.1fs" % (last and last.status, timeout))


def test_user_added_while_running(srv):
    pw = "frank-Secret-Pass-9"
    SECRETS.add(pw)
    with DigestUA(srv, "frank", pw, REALM) as ua:
        assert ua.register().status == 401
        remember(ua)
    user_add(srv, "frank@" + REALM, pw)
    took = _register_until(srv, "frank", pw, 200, 2.5)
    print("user add picked up after %.2fs" % took)


def test_user_del_takes_effect(srv):
    pw = "gina-Secret-Pass-10"
    SECRETS.add(pw)
    user_add(srv, "gina@" + REALM, pw)
    _register_until(srv, "gina", pw, 200, 2.5)
    mark = log_mark(srv)
    user_cmd(srv, "del", "gina@" + REALM)
    _register_until(srv, "gina", pw, 401, 2.5)
    assert wait_auth_event(srv, lambda e: e.get("reason") == "unknown-user" and
                           e.get("user") == "gina", mark)


def test_disable_enable_while_running(srv):
    _register_until(srv, "dave", PW["dave"], 200, 2.5)
    user_cmd(srv, "disable", "dave@" + REALM)
    _register_until(srv, "dave", PW["dave"], 401, 2.5)
    user_cmd(srv, "enable", "dave@" + REALM)
    _register_until(srv, "dave", PW["dave"], 200, 2.5)


# -- trusted network -----------------------------------------------------------------

def test_trusted_network_registers_without_auth(srv):
    mark = log_mark(srv)
    with sipwire.UdpPeer(TRUSTED_SRC) as p:
        r = p.request(srv.addr, "REGISTER", "sip:" + REALM, to="<sip:trunk@%s>" % REALM,
                      contacts=["<sip:trunk@%s:%d>" % (TRUSTED_SRC, p.port)], expires=300)
    assert r is not None and r.status == 200, r and r.raw
    assert wait_auth_event(srv, lambda e: e.get("reason") == "trusted-source", mark)
    with sipwire.UdpPeer("127.0.0.1") as p:      # not trusted: challenged
        r = p.request(srv.addr, "REGISTER", "sip:" + REALM, to="<sip:trunk@%s>" % REALM,
                      contacts=["<sip:trunk@127.0.0.1:%d>" % p.port], expires=300)
    assert r is not None and r.status == 401, r and r.raw


# -- userhash, nonces bound to the address, 403 after N failures -----------------------

def test_userhash(srv):
    """RFC 7616 §3.4.4: username = H(user:realm), userhash=true. The log
    names the user the hash stood for, and says userhash."""
    mark = log_mark(srv)
    with DigestUA(srv, "alice", PW["alice"], STRICT, alg="SHA-512-256") as ua:
        ua.challenge()
        assert ua.chal.get("userhash") == "true", ua.chal
        uh = H("SHA-512-256", "alice:" + STRICT)
        r = ua.answer(auth_user=uh, extra_params=["userhash=true"])
        remember(ua)
    assert r.status == 200, r.raw
    ev = wait_auth_event(srv, lambda e: e.get("event") == "auth.ok", mark)
    assert ev and ev["user"] == "alice" and ev.get("userhash") == "yes", ev


def test_nonce_bound_to_ip(srv):
    """bind_nonce_to_ip: a nonce issued to 127.0.0.1 is worth nothing from
    127.0.0.3, even with the right password."""
    mark = log_mark(srv)
    with DigestUA(srv, "alice", PW["alice"], STRICT) as ua, \
            DigestUA(srv, "alice", PW["alice"], STRICT,
                     peer=sipwire.UdpPeer("127.0.0.3")) as other:
        ua.challenge()
        other.chal = ua.chal
        r = other.answer()
        remember(other)
        assert r.status == 401, r.raw
        assert wait_auth_event(srv, lambda e: e.get("reason") == "bad-nonce", mark)
        r = ua.answer()                      # the owner of the nonce
        remember(ua)
        assert r.status == 200, r.raw


def test_after_failure_reject(srv):
    """after_failure = reject, max_failures = 3: the 3rd wrong answer from
    one source for one user gets 403; the right password still works."""
    mark = log_mark(srv)
    statuses = []
    with DigestUA(srv, "alice", PW["alice"], STRICT,
                  peer=sipwire.UdpPeer("127.0.0.4")) as ua:
        for _ in range(4):
            ua.challenge()
            statuses.append(ua.answer(password="wrong-Pass-for-reject").status)
        ua.challenge()
        ok = ua.answer()
        remember(ua)
    assert statuses == [401, 401, 403, 403], statuses
    fails = [e for e in auth_events(srv, mark) if e.get("event") == "auth.fail"]
    assert [e.get("status") for e in fails] == ["401", "401", "403", "403"], fails
    assert all(e["reason"] == "bad-response" for e in fails), fails
    assert ok.status == 200, ok.raw


# -- log hygiene (last: checks everything the module sent) ----------------------------

def test_log_never_shows_secrets(srv):
    # One more of each verdict, so the check holds even when run alone.
    for user, pw in (("alice", PW["alice"]), ("alice", "wrong-Pass-for-log"),
                     ("nosuchuser", "nouser-Pass-for-log")):
        for alg in ("MD5", "SHA-256", "SHA-512-256-sess"):
            with DigestUA(srv, user, pw, REALM, alg=alg) as ua:
                ua.register()
                remember(ua)
    for u, pw in list(PW.items()) + [("alice", OTHER_PW)]:
        for alg in ("MD5", "SHA-256", "SHA-512-256"):
            for realm in (REALM, OTHER, SHORT, STRICT):
                SECRETS.add(ha1(alg, u, realm, pw))
    log = srv.log_text()
    assert "event=auth.ok" in log and "event=auth.fail" in log
    leaked = sorted(s for s in SECRETS if s and s in log)
    assert not leaked, "secrets in the server log: %s" % leaked[:5]
    db = (srv.data_dir / "credentials.db").read_bytes()
    assert not [pw for pw in PW.values() if pw.encode() in db], "plaintext password stored"
