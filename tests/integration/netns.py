"""A private network namespace for clients that refuse to run without a
non-loopback default route (linphone: "no default route, no sockets").

The namespace holds `lo` (up) and an interface sw0 with a TEST-NET-3
address (RFC 5737) and the default route: a dummy device, or where the
kernel has no dummy driver, a veth pair whose two ends are both inside the
namespace. Either way nothing can leave the namespace: all the test's
traffic stays on the namespace's own loopback.

Usage (root, or CAP_SYS_ADMIN + CAP_NET_ADMIN):

    with NetNs() as ns:          # creates it; deletes it on exit
        with ns.entered():       # this thread, and every process it starts
            ...                  # sockets and subprocesses live in ns

Entering switches the calling thread only (setns(2) on the thread), and
processes started from it inherit the namespace; sockets keep the
namespace they were created in after the thread switches back.
"""

import contextlib
import ctypes
import os
import subprocess

CLONE_NEWNET = 0x40000000
DUMMY_ADDR = "203.0.113.1/24"   # RFC 5737 TEST-NET-3, only inside the namespace

_libc = ctypes.CDLL(None, use_errno=True)


class NetNsError(RuntimeError):
    pass


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise NetNsError("setns: %s" % os.strerror(e))


def _ip(*args):
    p = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        raise NetNsError("ip %s: %s" % (" ".join(args), (p.stderr or p.stdout).strip()))


class NetNs:
    def __init__(self, name=None):
        self.name = name or "swtest-%d-%s" % (os.getpid(), os.urandom(3).hex())
        self.created = False

    def create(self):
        _ip("netns", "add", self.name)
        self.created = True
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            try:
                _ip("-n", self.name, "link", "add", "sw0", "type", "dummy")
            except NetNsError:
                # No dummy driver (some kernels): a veth pair with BOTH ends
                # in the namespace; the peer has no address, so what goes
                # out of sw0 ends there.
                _ip("-n", self.name, "link", "add", "sw0", "type", "veth", "peer", "name", "sw1")
                _ip("-n", self.name, "link", "set", "sw1", "up")
            _ip("-n", self.name, "addr", "add", DUMMY_ADDR, "dev", "sw0")
            _ip("-n", self.name, "link", "set", "sw0", "up")
            _ip("-n", self.name, "route", "add", "default", "dev", "sw0")
        except Exception:
            self.delete()
            raise
        return self

    def delete(self):
        if self.created:
            self.created = False
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)

    def __enter__(self):
        return self.create()

    def __exit__(self, *a):
        self.delete()

    @contextlib.contextmanager
    def entered(self):
        """Run the with-block (this thread) inside the namespace."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/%s" % self.name, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield self
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)


def available():
    """'' if namespaces can be made here, else why not."""
    if not any(os.access(os.path.join(d, "ip"), os.X_OK)
               for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin")):
        return "iproute2 (ip) not installed"
    try:
        with NetNs() as ns, ns.entered():
            pass
    except (NetNsError, OSError, subprocess.SubprocessError) as e:
        return "cannot create a network namespace: %s" % e
    return ""
