"""Raw SIP over UDP/TCP for the integration tests: build requests, parse
responses, frame TCP streams. Deliberately small and independent of the
server's code, so a parser bug on one side does not hide one on the other.
"""

import os
import re
import select
import socket
import time

CRLF = "\r\n"

# RFC 3261 §7.3.3 compact forms (plus the RFC 3265/3515/3892/4028/4474 ones).
COMPACT = {
    "i": "call-id", "m": "contact", "e": "content-encoding",
    "l": "content-length", "c": "content-type", "f": "from", "s": "subject",
    "k": "supported", "t": "to", "v": "via", "o": "event",
    "u": "allow-events", "r": "refer-to", "b": "referred-by",
    "x": "session-expires", "y": "identity",
}

# Headers whose value is a comma-separated list (RFC 3261 §7.3.1); others
# (Date, WWW-Authenticate, ...) contain commas inside a single value.
LIST_HEADERS = {
    "via", "contact", "route", "record-route", "path", "supported",
    "require", "proxy-require", "unsupported", "allow", "accept",
    "accept-encoding", "accept-language", "allow-events", "service-route",
}


def rand_token(n=10):
    return os.urandom(n).hex()


def new_branch():
    return "z9hG4bK" + rand_token(8)


def split_commas(value):
    """Split a header value on commas that are outside quotes and <>."""
    out, cur, q, ang, esc = [], [], False, False, False
    for ch in value:
        if esc:
            cur.append(ch)
            esc = False
            continue
        if q and ch == "\\":
            cur.append(ch)
            esc = True
            continue
        if ch == '"':
            q = not q
        elif not q and ch == "<":
            ang = True
        elif not q and ch == ">":
            ang = False
        elif ch == "," and not q and not ang:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    tail = "".join(cur).strip()
    if tail or out:
        out.append(tail)
    return [v for v in out if v != ""]


class Message:
    """A parsed SIP message. Header names are kept lower-case, compact
    forms expanded; values are unfolded."""

    def __init__(self, start, headers, body, raw):
        self.start = start
        self.headers = headers      # [(lname, value)]
        self.body = body
        self.raw = raw
        parts = start.split(" ", 2)
        self.is_response = start.startswith("SIP/")
        if self.is_response:
            self.version = parts[0]
            self.status = int(parts[1])
            self.reason = parts[2] if len(parts) > 2 else ""
            self.method = None
        else:
            self.method, self.ruri = parts[0], parts[1]
            self.version = parts[2] if len(parts) > 2 else ""
            self.status = None

    def get(self, name):
        name = COMPACT.get(name.lower(), name.lower())
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def get_all(self, name):
        """Every value of a header: one per line, and split on commas for
        list headers."""
        name = COMPACT.get(name.lower(), name.lower())
        out = []
        for n, v in self.headers:
            if n != name:
                continue
            if name in LIST_HEADERS:
                out.extend(split_commas(v))
            else:
                out.append(v)
        return out

    def tokens(self, name):
        """Lower-cased option tags / methods of a list header."""
        return [t.strip().lower() for t in self.get_all(name) if t.strip()]

    def contacts(self):
        """[(uri, {param: value})] of every Contact value ('*' -> ('*', {}))."""
        return [parse_contact(v) for v in self.get_all("contact")]

    def cseq(self):
        v = self.get("cseq") or ""
        n, _, m = v.strip().partition(" ")
        return int(n), m.strip()

    def to_tag(self):
        m = re.search(r";\s*tag\s*=\s*([^;\s]+)", self.get("to") or "")
        return m.group(1) if m else None

    def __repr__(self):
        return "<SIP %s>" % self.start


def parse_message(data):
    """Parse one complete SIP message (bytes). Raises ValueError."""
    sep = data.find(b"\r\n\r\n")
    if sep < 0:
        raise ValueError("no end of headers")
    head = data[:sep].decode("utf-8", "replace")
    body = data[sep + 4:]
    lines = head.split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            n, v = headers[-1]
            headers[-1] = (n, v + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError("header without colon: %r" % line)
        lname = name.strip().lower()
        headers.append((COMPACT.get(lname, lname), value.strip()))
    msg = Message(start, headers, body, data)
    cl = msg.get("content-length")
    if cl is not None:
        msg.body = body[:int(cl)]
    return msg


def parse_contact(value):
    value = value.strip()
    if value == "*":
        return "*", {}
    if "<" in value:
        lt = value.index("<")
        gt = value.index(">", lt)
        uri = value[lt + 1:gt]
        rest = value[gt + 1:]
    else:
        uri, _, rest = value.partition(";")
        rest = ";" + rest if rest else ""
    params = {}
    for p in rest.split(";"):
        p = p.strip()
        if not p:
            continue
        k, eq, v = p.partition("=")
        params[k.strip().lower()] = v.strip().strip('"') if eq else None
    return uri.strip(), params


def build_request(method, ruri, *, via_host, via_port, transport="UDP",
                  branch=None, to=None, from_=None, call_id=None, cseq=1,
                  contacts=None, expires=None, extra=(), body=b"",
                  rport=True, max_forwards=70):
    """A well-formed request. contacts: list of header values (strings)."""
    branch = branch or new_branch()
    via = "SIP/2.0/%s %s:%d;branch=%s" % (transport, via_host, via_port, branch)
    if rport:
        via += ";rport"
    to = to or ruri
    from_ = from_ or ("<%s>;tag=%s" % (to.strip("<>"), rand_token(4)))
    lines = [
        "%s %s SIP/2.0" % (method, ruri),
        "Via: " + via,
        "Max-Forwards: %d" % max_forwards,
        "To: " + to,
        "From: " + from_,
        "Call-ID: " + (call_id or rand_token(12) + "@test"),
        "CSeq: %d %s" % (cseq, method),
    ]
    for c in contacts or ():
        lines.append("Contact: " + c)
    if expires is not None:
        lines.append("Expires: %d" % expires)
    lines.extend(extra)
    if isinstance(body, str):
        body = body.encode()
    lines.append("Content-Length: %d" % len(body))
    return (CRLF.join(lines) + CRLF + CRLF).encode() + body


class StreamFramer:
    """Content-Length framing of a SIP byte stream (RFC 3261 §18.3),
    plus RFC 5626 CRLF keepalives, which come out as b"\\r\\n"."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data

    def next(self):
        while self.buf.startswith(b"\r\n\r\n"):
            self.buf = self.buf[4:]
        if self.buf.startswith(b"\r\n") and not self.buf.startswith(b"\r\n\r\n"):
            if len(self.buf) >= 2:
                self.buf = self.buf[2:]
                return b"\r\n"
        sep = self.buf.find(b"\r\n\r\n")
        if sep < 0:
            return None
        head = self.buf[:sep].decode("utf-8", "replace")
        m = re.search(r"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head)
        cl = int(m.group(1)) if m else 0
        end = sep + 4 + cl
        if len(self.buf) < end:
            return None
        data, self.buf = self.buf[:end], self.buf[end:]
        return data


class UdpPeer:
    """A UDP SIP peer bound to a loopback address."""

    def __init__(self, host="127.0.0.1", port=0, family=None):
        family = family or (socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.transport = "UDP"

    @property
    def via_host(self):
        return "[%s]" % self.host if ":" in self.host else self.host

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data, dest):
        self.sock.sendto(data, dest)

    def recv(self, timeout):
        """One datagram as (bytes, addr), or None on timeout."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return None
        return self.sock.recvfrom(65535)

    def recv_msg(self, timeout):
        got = self.recv(timeout)
        return parse_message(got[0]) if got else None

    def drain(self):
        while self.recv(0):
            pass

    def wait_final(self, timeout=2.0, branch=None, keep_provisional=False):
        """The first final response (matching branch if given), or None."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            msg = self.recv_msg(left)
            if msg is None:
                return None
            if not msg.is_response:
                continue
            if branch and branch not in (msg.get("via") or ""):
                continue
            if msg.status < 200 and not keep_provisional:
                continue
            return msg

    def request(self, dest, method, ruri, timeout=2.0, **kw):
        data = build_request(method, ruri, via_host=self.via_host,
                             via_port=self.port, transport=self.transport, **kw)
        branch = re.search(rb"branch=([^;\r\n]+)", data).group(1).decode()
        self.send(data, dest)
        return self.wait_final(timeout, branch=branch)


class TcpPeer:
    """A TCP SIP connection from a loopback address."""

    def __init__(self, dest, host=None, timeout=3.0):
        family = socket.AF_INET6 if ":" in dest[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if host:
            self.sock.bind((host, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(dest)
        self.host, self.port = self.sock.getsockname()[:2]
        self.dest = dest
        self.framer = StreamFramer()
        self.transport = "TCP"
        self.eof = False

    @property
    def via_host(self):
        return "[%s]" % self.host if ":" in self.host else self.host

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data, dest=None):
        self.sock.sendall(data)

    def recv_frame(self, timeout):
        """Next framed message bytes (or b'\\r\\n' pong); None on timeout
        or EOF (self.eof tells which)."""
        end = time.monotonic() + timeout
        while True:
            f = self.framer.next()
            if f is not None:
                return f
            if self.eof:
                return None
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                self.eof = True
            self.framer.feed(data)

    def wait_closed(self, timeout):
        """True if the server closes the connection within timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            f = self.recv_frame(end - time.monotonic())
            if self.eof:
                return True
            if f is None:
                return False
        return self.eof

    def wait_final(self, timeout=2.0, branch=None):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            f = self.recv_frame(left)
            if f is None:
                return None
            if f == b"\r\n":
                continue
            msg = parse_message(f)
            if not msg.is_response or msg.status < 200:
                continue
            if branch and branch not in (msg.get("via") or ""):
                continue
            return msg

    def request(self, dest, method, ruri, timeout=2.0, **kw):
        data = build_request(method, ruri, via_host=self.via_host,
                             via_port=self.port, transport="TCP", **kw)
        branch = re.search(rb"branch=([^;\r\n]+)", data).group(1).decode()
        self.send(data)
        return self.wait_final(timeout, branch=branch)


def txn_key(data):
    """RFC 3261 §17.2.3 server-transaction key of a raw request: (branch,
    sent-by, method), ACK counted as INVITE; None for responses or when
    there is no readable Via."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    if head.startswith("SIP/"):
        return None
    head = re.sub(r"\r\n[ \t]+", " ", head)
    method = head.split(" ", 1)[0]
    for line in head.split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in ("via", "v"):
            m = re.search(r";\s*branch\s*=\s*([^;,\s]+)", value)
            sb = top_via_sent_by(data)
            return (m.group(1) if m else None, sb and (sb[1], sb[2]),
                    "INVITE" if method == "ACK" else method)
    return None


def top_via_sent_by(data):
    """(transport, host, port-or-None) of the first Via of a raw message,
    tolerating folding and LWS (RFC 4475 wsinv); None if there is none or
    it cannot be read."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    head = re.sub(r"\r\n[ \t]+", " ", head)
    for line in head.split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in ("via", "v"):
            m = re.match(r"\s*SIP\s*/\s*[\d.]+\s*/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+"
                         r"(\[[0-9A-Fa-f:.]+\]|[^\s;:,]+)\s*(?::\s*(\d+))?", value)
            if not m:
                return None
            return (m.group(1).upper(), m.group(2),
                    int(m.group(3)) if m.group(3) else None)
    return None
