"""RFC 4475 and RFC 5118 torture messages over the wire (UDP).

Each message is sent byte for byte as the RFC prints it (RFC 5118: the
CRLF-derived copies, see tests/torture/rfc5118-crlf-derived/README.md) to a
running sipwarden that serves the messages' domains, and the answer is
checked against the table below (verdicts from the MANIFEST.tsv notes and
issue 2: every invalid request is rejected). After every message the server
must still answer an OPTIONS.

Where a reply goes: the messages' Vias name foreign hosts, so the server
answers to the source address ("received", RFC 3261 §18.2.2) at the Via's
port (5060 by default) unless rport is present. Each message is therefore
sent from its own 127.x.y.z address, from the Via's port, and we also
listen (UDP and TCP) on 5060/5061 of that address, so the reply is caught
however the Via's port and transport are honoured.
"""

import os
import pathlib
import random
import select
import socket
import time

import pytest

import sipwire

TORTURE = pathlib.Path(__file__).resolve().parents[1] / "torture"

NO_REPLY = "no-reply"   # the server must stay silent (responses are dropped)
ANY = "any"             # no verdict (the RFC gives none); only liveness
# A well-formed request the server parsed and handled: any final answer
# except the ones that mean "I could not parse/accept the syntax". A
# registrar-only server has no fixed answer for an INVITE/BYE/MESSAGE/OPTIONS
# to a user (it does not proxy yet): 200, 403, 404, 405, 480, 483, 501 ...
PARSED = "parsed"
SYNTAX_REJECT = {400, 416, 420, 505, 513}
PARSED_OR_400 = "parsed-or-400"  # the RFC allows either

# Domains the messages' Request-URIs name; served so the registrar path runs.
REALMS = ["example.com", "example.net", "example.org", "company.com",
          "registrar.example.com", "chair-dnrc.example.com",
          "host.example.net"]

# (file, expected, comment). expected: an int status, a set of statuses,
# PARSED, NO_REPLY or ANY.
RFC4475 = [
    ("wsinv", PARSED, "3.1.1.1 valid: folding, LWS, escaped quotes; INVITE must parse"),
    ("intmeth", 501, "3.1.1.2 valid: unknown token method -> endpoint 501"),
    ("esc01", PARSED, "3.1.1.3 valid: %-escapes in R-URI/From/To/Contact"),
    ("escnull", 200, "3.1.1.4 valid: REGISTER with %00 in the AOR user part"),
    ("esc02", 501, "3.1.1.5 valid: RE%47IST%45R is an unknown method -> 501"),
    ("lwsdisp", PARSED, "3.1.1.6 valid: no LWS before '<' in From; accept"),
    ("longreq", PARSED, "3.1.1.7 valid: long header values, must be accepted"),
    ("dblreq", 200, "3.1.1.8 valid: REGISTER, trailing octets after CL ignored"),
    ("semiuri", PARSED, "3.1.1.9 valid: ';' in R-URI user part"),
    ("transports", PARSED, "3.1.1.10 valid: unknown transport in a lower Via"),
    ("mpart01", PARSED, "3.1.1.11 valid: multipart body with NUL, framed by CL"),
    ("unreason", NO_REPLY, "3.1.1.12 valid response: stray response, dropped"),
    ("noreason", NO_REPLY, "3.1.1.13 valid response (empty phrase): dropped"),
    ("badinv01", 400, "3.1.2.1 invalid: empty ';' ',' in Via -> 400"),
    ("clerr", 400, "3.1.2.2 invalid: CL larger than the datagram -> 400 (UDP)"),
    ("ncl", 400, "3.1.2.3 invalid: negative Content-Length -> error"),
    ("scalar02", 400, "3.1.2.4 invalid: CSeq > 2^32-1 -> 400"),
    ("scalarlg", NO_REPLY, "3.1.2.5 invalid response (huge scalars): discarded"),
    ("quotbal", 400, "3.1.2.6 invalid: unterminated quoted string -> 400"),
    ("ltgtruri", 400, "3.1.2.7 invalid: <> around the Request-URI -> 400"),
    ("lwsruri", 400, "3.1.2.8 invalid: LWS inside the Request-URI -> 400"),
    ("lwsstart", 400, "3.1.2.9 invalid: several SP in the Request-Line -> reject"),
    ("trws", 400, "3.1.2.10 invalid: SP after SIP-Version -> reject"),
    ("escruri", 400, "3.1.2.11 invalid: escaped headers in the R-URI -> 400"),
    ("baddate", 400, "3.1.2.12 invalid: non-GMT Date -> reject (issue 2: every invalid one)"),
    ("regbadct", 400, "3.1.2.13 invalid: Contact with '?' not in <> -> 400"),
    ("badaspec", 400, "3.1.2.14 invalid: spaces inside <addr-spec> -> 400"),
    ("baddn", 400, "3.1.2.15 invalid: non-token chars in unquoted display name"),
    ("badvers", 505, "3.1.2.16 invalid: SIP/7.0 -> 505 Version Not Supported"),
    ("mismatch01", 400, "3.1.2.17 invalid: method vs CSeq method mismatch -> 400"),
    ("mismatch02", 501, "3.1.2.18 invalid: unknown method, CSeq mismatch -> 501 preferred"),
    ("bigcode", NO_REPLY, "3.1.2.19 invalid response code 4294967301: dropped"),
    ("badbranch", PARSED_OR_400,
     "3.2.1 branch is only the magic cookie: must not break; 400 allowed"),
    ("insuf", 400, "3.3.1 invalid: no Call-ID/From/To -> 400"),
    ("unkscm", 416, "3.3.2 valid: unknown R-URI scheme -> 416"),
    ("novelsc", {416, 404}, "3.3.3 valid: soap.beep R-URI -> 416 (or 404)"),
    ("unksm2", 400, "3.3.4 valid: REGISTER with To isbn: -> registrar 400"),
    ("bext01", 420, "3.3.5 valid: unknown Require -> 420 + Unsupported"),
    ("invut", PARSED, "3.3.6 valid: unknown Content-Type; endpoint would 415"),
    ("regaut01", 200, "3.3.7 valid: unknown Authorization scheme; registrar without auth ignores it"),
    ("multi01", 400, "3.3.8 invalid: several values in single-value fields -> 400"),
    ("mcl01", 400, "3.3.9 invalid: conflicting Content-Lengths -> error"),
    ("bcast", NO_REPLY, "3.3.10 valid 200 with broadcast Via: stray response, dropped"),
    ("zeromf", PARSED, "3.3.11 valid: Max-Forwards 0; 483 if proxied, else normal"),
    ("cparam01", 200, "3.3.12 valid: contact-param outside <> -> REGISTER succeeds"),
    ("cparam02", 200, "3.3.13 valid: unknown url-param in Contact -> succeeds"),
    ("regescrt", 200, "3.3.14 valid: escaped Route in Contact URI -> succeeds"),
    ("sdp01", PARSED, "3.3.15 valid: Accept without application/sdp (406 or 400 allowed)"),
    ("inv2543", PARSED, "3.4.1 valid: RFC 2543 INVITE (no branch, no CL)"),
    ("test", ANY, "archive extra, no verdict: liveness only"),
]

# RFC 5118 (IPv6). The Request-URIs name IPv6 literals that are not served
# realms, so REGISTERs there get 403 ("REGISTER to other domains").
RFC5118 = [
    ("ipv6-good", 403, "4.1 valid: REGISTER sip:[2001:db8::10] parses; domain not served -> 403"),
    ("ipv6-bad", 400, "4.2 invalid: IPv6 R-URI without [] -> 400"),
    ("port-ambiguous", 403, "4.3 valid parse (host 2001:db8::10:5070); not served -> 403"),
    ("port-unambiguous", 403, "4.4 valid: [2001:db8::10]:5070; not served -> 403"),
    ("via-received-param-with-delim", PARSED, "4.5 valid: received=[v6] must parse (BYE)"),
    ("via-received-param-no-delim", PARSED, "4.5 valid: received=v6 (OPTIONS)"),
    ("ipv6-in-sdp", 400, "4.6: CL 268 > CRLF body 251 (archive quirk) -> 400 over UDP"),
    ("mult-ip-in-header", PARSED, "4.7 valid: mixed v4/v6 Vias (BYE)"),
    ("mult-ip-in-sdp", PARSED, "4.8 valid: CL 181 < body 189: body cut at CL, parses"),
    ("ipv4-mapped-ipv6", PARSED, "4.9 valid: ::ffff: addresses; CL 236 < body 245"),
    ("ipv6-bug-abnf-3-colons", PARSED_OR_400,
     "4.10 doubtful: '2001:db8:::192.0.2.1' tolerated or rejected (RFC 5954)"),
    ("ipv6-correct-abnf-2-colons", PARSED, "4.10 valid: [2001:db8::192.0.2.1]"),
]


def _rows():
    for name, exp, why in RFC4475:
        yield pytest.param(TORTURE / "rfc4475" / (name + ".dat"), exp, why,
                           id="rfc4475-" + name)
    for name, exp, why in RFC5118:
        yield pytest.param(TORTURE / "rfc5118-crlf-derived" / (name + ".dat"),
                           exp, why, id="rfc5118-" + name)


def test_table_covers_every_file():
    """One row per message file, no more, no less."""
    have = {p.stem for p in (TORTURE / "rfc4475").glob("*.dat")}
    assert have == {r[0] for r in RFC4475}
    have = {p.stem for p in (TORTURE / "rfc5118-crlf-derived").glob("*.dat")}
    assert have == {r[0] for r in RFC5118}


@pytest.fixture(scope="module")
def torture_server(tmp_path_factory):
    from conftest import Server
    s = Server(tmp_path_factory.mktemp("torture"), realms=REALMS)
    s.start()
    _SERVER[:] = [s]
    yield s
    died = s.proc is not None and s.proc.poll() is not None
    s.stop()
    assert not died, "sipwarden died:\n" + s.log_tail()


class Catcher:
    """UDP+TCP listeners on one fresh loopback address, ports {via, 5060,
    5061}; the message is sent from the Via's port."""

    def __init__(self, via_port):
        self.udp, self.tcp, self.conns = {}, {}, []
        err = None
        for _ in range(40):
            self.host = "127.%d.%d.%d" % (random.randint(1, 254),
                                          random.randint(0, 255),
                                          random.randint(2, 254))
            try:
                for port in sorted({via_port, 5060, 5061}):
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    self.udp[port] = u
                    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    u.bind((self.host, port))
                    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    self.tcp[port] = t
                    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    t.bind((self.host, port))
                    t.listen(4)
                break
            except OSError as e:
                err = e
                self.close()
        else:
            # e.g. another program holds 0.0.0.0:5060: the reply could not
            # be caught, which says nothing about the server.
            pytest.skip("cannot listen on 127.x.y.z:%s (%s): port held by "
                        "another process on the wildcard address" % (
                            sorted({via_port, 5060, 5061}), err))
        self.send_sock = self.udp[via_port]
        self.framers = {}

    def close(self):
        for s in list(self.udp.values()) + list(self.tcp.values()) + \
                list(getattr(self, "conns", [])):
            s.close()
        self.udp, self.tcp, self.conns = {}, {}, []

    def collect(self, timeout, stop_on_final=True):
        """Messages received within timeout: [(transport, Message|bytes)]."""
        got = []
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            socks = list(self.udp.values()) + list(self.tcp.values()) + self.conns
            r, _, _ = select.select(socks, [], [], left)
            for s in r:
                if s in self.tcp.values():
                    c, _ = s.accept()
                    self.conns.append(c)
                    self.framers[c] = sipwire.StreamFramer()
                elif s in self.conns:
                    data = s.recv(65536)
                    if not data:
                        self.conns.remove(s)
                        s.close()
                        continue
                    fr = self.framers[s]
                    fr.feed(data)
                    while True:
                        f = fr.next()
                        if f is None:
                            break
                        got.append(("TCP", _parse(f)))
                else:
                    data, _ = s.recvfrom(65535)
                    got.append(("UDP", _parse(data)))
            if stop_on_final and any(
                    isinstance(m, sipwire.Message) and m.is_response and m.status >= 200
                    for _, m in got):
                break
        return got


def _parse(data):
    try:
        return sipwire.parse_message(data)
    except (ValueError, IndexError):
        return data


def _check(expected, status):
    if expected == PARSED:
        return status not in SYNTAX_REJECT and status != 500
    if expected == PARSED_OR_400:
        return status == 400 or _check(PARSED, status)
    if isinstance(expected, set):
        return status in expected
    return status == expected


@pytest.mark.parametrize("path,expected,why", list(_rows()))
def test_torture_message(torture_server, path, expected, why):
    data = path.read_bytes()
    via = sipwire.top_via_sent_by(data)
    via_port = via[2] if via and via[2] else (5061 if via and via[0] == "TLS" else 5060)
    # The RFCs reuse branches (z9hG4bKkdjuw, z9hG4bKas3-111) with the same
    # sent-by and method, so a later message would rightly be absorbed as a
    # retransmission of an earlier one (§17.2.3). Restart the server (same
    # data_dir, empty transaction table) rather than edit the messages.
    key = sipwire.txn_key(data)
    if key is not None and key in _SENT_KEYS:
        torture_server.restart(hard=False)
        _SENT_KEYS.clear()
    if key is not None:
        _SENT_KEYS.add(key)
    c = Catcher(via_port)
    try:
        c.send_sock.sendto(data, torture_server.addr)
        wait = 1.0 if expected in (NO_REPLY, ANY) else 3.0
        got = c.collect(wait, stop_on_final=expected != NO_REPLY)
        got += c.collect(0.3, stop_on_final=False)   # duplicates / late extras
    finally:
        c.close()

    junk = [m for _, m in got if not isinstance(m, sipwire.Message)]
    assert not junk, "unparseable bytes from the server: %r" % junk[:1]
    finals = [(t, m) for t, m in got if m.is_response and m.status >= 200]
    requests = [m for _, m in got if not m.is_response]
    assert not requests, "the server sent requests: %r" % requests
    log = "\n(server log tail)\n" + torture_server.log_tail(15)

    if expected == NO_REPLY:
        assert not got, "%s: expected silence, got %r%s" % (why, got, log)
    elif expected != ANY:
        assert finals, "%s: no final response within 3 s%s" % (why, log)
        assert len(finals) == 1, "%s: several finals: %r" % (why, finals)
        t, resp = finals[0]
        assert _check(expected, resp.status), \
            "%s: got %s %s (%s), expected %s%s" % (
                why, resp.status, resp.reason, t, expected, log)
        _check_response_shape(data, resp, path.stem)

    assert torture_server.alive(), "sipwarden died after %s:\n%s" % (
        path.name, torture_server.log_tail())
    assert torture_server.options_ok(), \
        "no 200 to OPTIONS after %s%s" % (path.name, log)


def _check_response_shape(data, resp, name):
    """RFC 3261 §8.2.6.2: the response copies Call-ID, CSeq, From and adds a
    To tag, when the request had them in a usable form."""
    try:
        req = sipwire.parse_message(data)
    except (ValueError, IndexError):
        return
    if resp.status in (400, 505):
        return          # the request's headers may be what was broken
    if req.get("call-id"):
        assert resp.get("call-id") == req.get("call-id"), name
    if resp.get("cseq") and req.get("cseq"):
        assert resp.cseq()[0] == int(req.get("cseq").split()[0]), name
    assert resp.to_tag(), "%s: %s without a To tag" % (name, resp.status)
    if name == "bext01":
        tags = set(resp.tokens("unsupported"))
        req_tags = {"nothingsupportsthis", "nothingsupportsthiseither"}
        proxy_tags = {"noproxiessupportthis", "nordoanyproxiessupportthis"}
        assert req_tags <= tags or proxy_tags <= tags, \
            "420 Unsupported %r must list the Require (or Proxy-Require) tags" % tags
    if resp.status == 200 and req.method == "REGISTER":
        uris = [u for u, _ in resp.contacts()]
        assert uris, "%s: 200 to REGISTER lists no binding" % name
        _check_register(name, uris, resp)


def _check_register(name, uris, resp):
    """Per-message checks of what a torture REGISTER bound (3.1.1.4,
    3.1.1.8, 3.3.12-3.3.14): in the 200 and in a later fetch."""
    gw = [u for u in uris if "gw1.example.net" in u]
    if name == "cparam01":     # unknownparam is a contact-param, not in the URI
        assert gw and all("unknownparam" not in u for u in gw), uris
    elif name == "cparam02":   # unknownparam is a url-parameter, kept
        # (cparam01's URI is equivalent by §19.1.4, so it may be the same
        # binding, updated: then its URI must now carry the parameter)
        assert gw and any("unknownparam" in u for u in gw), uris
    elif name == "regescrt":   # the escaped Route header stays in the URI
        assert any("?Route=%3Csip:sip.example.com%3E" in u for u in uris), uris
    elif name == "escnull":    # two distinct contacts, %00 kept escaped
        assert "sip:%00@host5.example.com" in uris, uris
        assert "sip:%00%00@host5.example.com" in uris, uris
    elif name == "dblreq":
        assert "sip:j.user@host.example.com" in uris, uris
    else:
        return
    if name in ("cparam01", "cparam02", "regescrt"):
        aor = "sip:watson@example.com" if name.startswith("cparam") \
            else "sip:user@example.com"
        with sipwire.UdpPeer() as peer:
            later = peer.request(_SERVER[0].addr, "REGISTER", "sip:example.com",
                                 to="<%s>" % aor)
        assert later is not None and later.status == 200, later
        assert sorted(u for u, _ in later.contacts()) == sorted(uris), \
            "%s: a later fetch lists %r, the 200 listed %r" % (
                name, [u for u, _ in later.contacts()], uris)


_SERVER = []   # the module's server, for the later fetches
_SENT_KEYS = set()   # transaction keys sent since the server (re)started
