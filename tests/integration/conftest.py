"""pytest fixtures: start the real build/sipwarden on free loopback ports.

Binary: $SIPWARDEN_BIN, else <repo>/build/sipwarden (the repo root is found
from this file's location). Every process started here is ended by PID.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import sipwire  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent


def sipwarden_bin():
    b = os.environ.get("SIPWARDEN_BIN") or str(REPO / "build" / "sipwarden")
    return os.path.abspath(b)


def free_port(host="127.0.0.1"):
    """A port free for both UDP and TCP on host (races are possible but
    harmless: the server then fails to start and the test says why)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        t = socket.socket(fam, socket.SOCK_STREAM)
        t.bind((host, 0))
        port = t.getsockname()[1]
        u = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            u.bind((host, port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        return port
    raise RuntimeError("no free port")


def _bindable(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(fam, kind)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_sip_port(host="127.0.0.1"):
    """A SIP listen port for baresip: it binds UDP and TCP on the port and
    TLS on the port + 1, so both must be free (a busy P+1 made baresip
    fail to start now and then)."""
    for _ in range(50):
        port = free_port(host)
        if port < 65535 and _bindable(host, port + 1):
            return port
    raise RuntimeError("no free port pair")


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


class Server:
    """One sipwarden process with its own config and data_dir."""

    def __init__(self, workdir, realms=("example.test",), trust="127.0.0.0/8",
                 tcp=True, ipv6=False, workers=2, registrar=None, extra=""):
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "var"
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.addr = (self.host, self.port)
        self.v6port = free_port("::1") if ipv6 else None
        self.realms = list(realms)
        self.proc = None
        self.log_path = self.dir / "sipwarden.log"
        self.starts = 0
        reg = {"min_expires": 60, "max_expires": 3600, "default_expires": 3600,
               "max_bindings_per_aor": 10}
        reg.update(registrar or {})
        lines = ["[server]", "listen = udp:%s:%d" % (self.host, self.port)]
        if tcp:
            lines.append("listen = tcp:%s:%d" % (self.host, self.port))
        if ipv6:
            lines.append("listen = udp:[::1]:%d" % self.v6port)
            if tcp:
                lines.append("listen = tcp:[::1]:%d" % self.v6port)
        lines += ["workers = %s" % workers, "data_dir = %s" % self.data_dir,
                  "log_level = info", "", "[registrar]"]
        if trust:
            lines.append("trust = %s" % trust)
        lines += ["%s = %s" % kv for kv in reg.items()]
        lines.append("")
        for r in self.realms:
            lines += ["[realm %s]" % r, ""]
        self.config_text = "\n".join(lines) + extra + "\n"
        self.config = self.dir / "sipwarden.conf"
        self.config.write_text(self.config_text)

    # -- process control ---------------------------------------------------
    def start(self, timeout=10.0):
        assert self.proc is None
        self.starts += 1
        logf = open(self.log_path, "ab")
        logf.write(b"--- start %d ---\n" % self.starts)
        logf.flush()
        self.proc = subprocess.Popen(
            [sipwarden_bin(), "run", "-c", str(self.config)],
            cwd=str(self.dir), stdin=subprocess.DEVNULL,
            stdout=logf, stderr=logf)
        logf.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout):
        """Until the server answers an OPTIONS over UDP."""
        end = time.monotonic() + timeout
        with sipwire.UdpPeer() as ua:
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise AssertionError("sipwarden exited with %s at start:\n%s"
                                         % (self.proc.returncode, self.log_tail()))
                r = ua.request(self.addr, "OPTIONS",
                               "sip:%s:%d" % self.addr, timeout=0.2)
                if r is not None:
                    return
        self.stop()
        raise AssertionError("sipwarden did not answer OPTIONS within %.0fs:\n%s"
                             % (timeout, self.log_tail()))

    def stop(self, timeout=5.0):
        """SIGTERM by PID, SIGKILL if it does not exit."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            raise AssertionError("sipwarden ignored SIGTERM for %.0fs" % timeout)

    def kill9(self):
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

    def restart(self, hard=True):
        """kill -9 (hard) or SIGTERM, then start again on the same data_dir."""
        if hard:
            self.kill9()
        else:
            self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    # -- SIP helpers --------------------------------------------------------
    def options_ok(self, peer=None, timeout=1.0):
        """True if an OPTIONS to the server gets a 200."""
        own = peer is None
        peer = peer or sipwire.UdpPeer()
        try:
            r = peer.request(self.addr, "OPTIONS", "sip:%s:%d" % self.addr,
                             timeout=timeout)
            return r is not None and r.status == 200
        finally:
            if own:
                peer.close()


@pytest.fixture
def make_server(tmp_path):
    """Factory: make_server(**Server kwargs) -> started Server. All are
    stopped (by PID) at teardown; a crashed server fails the test."""
    servers = []

    def make(start=True, **kw):
        s = Server(tmp_path / ("srv%d" % len(servers)), **kw)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    crashed = []
    for s in servers:
        if s.proc is not None and s.proc.poll() is not None:
            crashed.append("exit %s:\n%s" % (s.proc.returncode, s.log_tail()))
            s.proc = None
        s.stop()
    if crashed:
        pytest.fail("sipwarden died during the test: " + "\n".join(crashed))


@pytest.fixture
def server(make_server):
    """A started server serving example.test, trusting 127.0.0.0/8."""
    return make_server()


def tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not path:
        pytest.skip("%s not installed" % name)
    return path


def run_bounded(argv, timeout, **kw):
    """Run a client with a hard time bound; kill it by PID on overrun."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=5)
        return None, out.decode(errors="replace")
    return p.returncode, out.decode(errors="replace")
