"""Client side of SIP Digest (RFC 7616, RFC 8760, RFC 3261 §22) for the
integration tests, written from the RFCs with hashlib only, independent of
the server's code. Also: credential management through the real
`sipwarden user` CLI and reading the server's logfmt auth lines.
"""

import hashlib
import os
import re
import subprocess
import time

import sipwire
from conftest import sipwarden_bin

HASHES = {
    "MD5": lambda b: hashlib.md5(b).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
    "SHA-512-256": lambda b: hashlib.new("sha512_256", b).hexdigest(),
}

ALGORITHMS = ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess",
              "SHA-512-256", "SHA-512-256-sess"]


def H(alg, s):
    """The hash of algorithm alg ("SHA-256-sess" → SHA-256) over s."""
    base = alg[:-5] if alg.endswith("-sess") else alg
    if isinstance(s, str):
        s = s.encode()
    return HASHES[base](s)


def parse_challenge(value):
    """'Digest realm="x", nonce="y", algorithm=MD5, ...' → dict (lower-case
    keys, unquoted values) with the scheme under '_scheme'."""
    scheme, _, rest = value.strip().partition(" ")
    out = {"_scheme": scheme}
    for item in sipwire.split_commas(rest):
        k, eq, v = item.partition("=")
        if not eq:
            continue
        v = v.strip()
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[k.strip().lower()] = v
    return out


def challenges(resp, name="www-authenticate"):
    """Every challenge of a 401/407 as dicts, in order."""
    return [parse_challenge(v) for v in resp.get_all(name)]


def challenge_for(resp, alg):
    for c in challenges(resp):
        if c.get("algorithm", "MD5").lower() == alg.lower():
            return c
    raise AssertionError("no %s challenge in %r" % (alg, resp.get_all("www-authenticate")))


def ha1(alg, user, realm, password, nonce=None, cnonce=None):
    h = H(alg, "%s:%s:%s" % (user, realm, password))
    if alg.endswith("-sess"):
        h = H(alg, "%s:%s:%s" % (h, nonce, cnonce))
    return h


def response(alg, user, realm, password, method, uri, nonce, *, qop="auth",
             nc=1, cnonce=None, body=b""):
    """RFC 7616 §3.4.1 request-digest (and RFC 2069 when qop is None)."""
    a1 = ha1(alg, user, realm, password, nonce, cnonce)
    if qop == "auth-int":
        a2 = H(alg, "%s:%s:%s" % (method, uri, H(alg, body)))
    else:
        a2 = H(alg, "%s:%s" % (method, uri))
    if qop is None:
        return H(alg, "%s:%s:%s" % (a1, nonce, a2))
    return H(alg, "%s:%s:%08x:%s:%s:%s" % (a1, nonce, nc, cnonce, qop, a2))


def authorization(chal, user, password, method, uri, *, alg=None, qop="auth",
                  nc=1, cnonce=None, body=b"", realm=None, resp_override=None,
                  auth_user=None, extra_params=()):
    """The Authorization header line answering chal (a parse_challenge dict).
    Returns (header_line, response_value). realm: what the client claims
    (default: the challenge's); auth_user: the username parameter when it
    should differ from the one hashed."""
    alg = alg or chal.get("algorithm", "MD5")
    realm = chal["realm"] if realm is None else realm
    cnonce = cnonce or os.urandom(8).hex()
    resp = resp_override or response(alg, user, chal["realm"], password, method, uri,
                                     chal["nonce"], qop=qop, nc=nc, cnonce=cnonce, body=body)
    parts = ['username="%s"' % (auth_user or user), 'realm="%s"' % realm,
             'nonce="%s"' % chal["nonce"], 'uri="%s"' % uri,
             'response="%s"' % resp, "algorithm=%s" % alg]
    if qop:
        parts += ['cnonce="%s"' % cnonce, "qop=%s" % qop, "nc=%08x" % nc]
    if "opaque" in chal:
        parts.append('opaque="%s"' % chal["opaque"])
    parts += list(extra_params)
    return "Authorization: Digest " + ", ".join(parts), resp


class DigestUA:
    """A UDP UA that registers one AOR with digest, keeping the nonce so
    refreshes can reuse it with nc+1 (one round trip)."""

    def __init__(self, srv, user, password, realm, *, alg="SHA-256", qop="auth",
                 aor_user=None, peer=None, ua=None):
        self.srv, self.user, self.password, self.realm = srv, user, password, realm
        self.alg, self.qop = alg, qop
        self.aor_user = aor_user or user
        self.peer = peer or sipwire.UdpPeer()
        self.call_id = sipwire.rand_token(12) + "@digest"
        self.from_tag = sipwire.rand_token(4)
        self.cseq = 0
        self.chal = None
        self.nc = 0
        self.ua = ua
        self.sent_responses = []   # response= values sent (never to be logged)

    @property
    def ruri(self):
        return "sip:" + self.realm

    def close(self):
        self.peer.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, auth_line=None, expires=300, body=b"", extra=(), contacts=True):
        """One REGISTER (contacts=False: a query, no Contact)."""
        self.cseq += 1
        aor = "sip:%s@%s" % (self.aor_user, self.realm)
        hdrs = list(extra)
        if self.ua:
            hdrs.append("User-Agent: " + self.ua)
        if auth_line:
            hdrs.append(auth_line)
        if body:
            hdrs.append("Content-Type: text/plain")
        return self.peer.request(
            self.srv.addr, "REGISTER", self.ruri, to="<%s>" % aor,
            from_="<%s>;tag=%s" % (aor, self.from_tag), call_id=self.call_id,
            cseq=self.cseq, expires=expires, body=body,
            contacts=(["<sip:%s@%s:%d>" % (self.aor_user, self.peer.host, self.peer.port)]
                      if contacts else None),
            extra=hdrs)

    def auth_line(self, password=None, nc=None, uri=None, body=b"", **kw):
        self.nc = self.nc + 1 if nc is None else nc
        line, resp = authorization(self.chal, self.user, password or self.password,
                                   "REGISTER", uri or self.ruri, alg=self.alg,
                                   qop=self.qop, nc=self.nc, body=body, **kw)
        self.sent_responses.append(resp)
        return line

    def challenge(self, **send_kw):
        """Send without credentials; keep the challenge for self.alg."""
        r = self.send(**send_kw)
        assert r is not None and r.status == 401, r and r.raw
        self.chal = challenge_for(r, self.alg)
        self.nc = 0
        return r

    def answer(self, password=None, nc=None, uri=None, body=b"", expires=300,
               extra=(), **kw):
        """Send with an Authorization answering the kept challenge."""
        return self.send(self.auth_line(password, nc, uri, body, **kw),
                         expires=expires, body=body, extra=extra)

    def register(self, **kw):
        """Full challenge pair; returns the final response to the second."""
        self.challenge()
        return self.answer(**kw)


# -- credentials through the real CLI ---------------------------------------

def user_cmd(srv, *args, stdin=None, check=True):
    p = subprocess.run([sipwarden_bin(), "user"] + list(args) + ["-c", str(srv.config)],
                       input=stdin, capture_output=True, text=True, timeout=20,
                       cwd=str(srv.dir))
    if check:
        assert p.returncode == 0, "user %s: rc=%d\n%s%s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr)
    return p


def user_add(srv, user_at_realm, password, aors=None):
    args = ["add", user_at_realm, "--password-stdin"]
    if aors:
        args += ["--aor", aors]
    return user_cmd(srv, *args, stdin=password + "\n")


# -- the server's log ---------------------------------------------------------

_KV = re.compile(r'(\w[\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(line):
    out = {}
    for k, v in _KV.findall(line):
        if v.startswith('"'):
            v = v[1:-1]
        out[k] = v
    return out


def auth_events(srv, since=0):
    """[(event dict)] of every auth.ok / auth.fail line (after char offset since)."""
    out = []
    for line in srv.log_text()[since:].splitlines():
        if "event=auth." in line:
            out.append(logfmt(line))
    return out


def wait_auth_event(srv, pred, since=0, timeout=2.0):
    """The first auth event after since matching pred, waiting for the log
    to be written; None if none in time."""
    end = time.monotonic() + timeout
    while True:
        for e in auth_events(srv, since):
            if pred(e):
                return e
        if time.monotonic() >= end:
            return None
        time.sleep(0.05)


def log_mark(srv):
    return len(srv.log_text())
