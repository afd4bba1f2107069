"""contrib/sipwarden.service against the server it starts: every system
call sipwarden makes while it starts as the unprivileged service user,
answers over UDP and TCP, writes a binding and stops on SIGTERM must be
allowed by the unit's SystemCallFilter lines (evaluated in order, groups
expanded by systemd-analyze). A call the filter refuses fails with EPERM
(SystemCallErrorNumber) only under systemd, so nothing else would notice:
the shipped unit once refused sched_setscheduler, and every background
thread then stayed at normal priority next to the workers."""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

import sipwire
from conftest import REPO, Server, sipwarden_bin

UNIT = REPO / "contrib" / "sipwarden.service"


def expand(name, cache={}):
    """A syscall name, or every syscall of a @group (nested groups too)."""
    if not name.startswith("@"):
        return {name}
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                             capture_output=True, text=True, check=True).stdout
        names = set()
        for line in out.splitlines()[1:]:
            t = line.strip()
            if t and not t.startswith("#"):
                names |= expand(t)
        cache[name] = names
    return cache[name]


def unit_allowed(text):
    """The allow-list the unit's SystemCallFilter= lines leave, in order:
    the first (an allow-list) sets it, ~lines remove, later lines add."""
    allow = None
    for line in text.splitlines():
        if not line.startswith("SystemCallFilter="):
            continue
        value = line.split("=", 1)[1].strip()
        deny = value.startswith("~")
        names = set()
        for item in value.lstrip("~").split():
            names |= expand(item)
        if allow is None:
            assert not deny, "the unit's first SystemCallFilter= is expected to be an allow-list"
            allow = set()
        allow = allow - names if deny else allow | names
    assert allow, "no SystemCallFilter= in %s" % UNIT
    return allow


def traced_calls(path):
    calls = set()
    for line in open(path, errors="replace"):
        m = re.match(r"\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()", line)
        if m:
            calls.add(m.group(1) or m.group(2))
    return calls


def test_unit_allows_every_syscall():
    for tool in ("strace", "setpriv", "systemd-analyze"):
        if not shutil.which(tool):
            pytest.skip("%s not installed (scripts/deps.sh test installs it)" % tool)
    if os.geteuid() != 0:
        pytest.skip("needs root (to run the server as nobody, as the unit runs it as its user)")
    allowed = unit_allowed(UNIT.read_text())
    # the unit's own check: sched_setscheduler is in, real-time is refused
    assert "sched_setscheduler" in allowed
    assert "RestrictRealtime=yes" in UNIT.read_text()

    work = tempfile.mkdtemp(prefix="sw-unit-")
    os.chmod(work, 0o777)   # nobody writes data_dir and the trace here
    trace = pathlib.Path(work) / "trace.txt"
    s = Server(work, workers=2)
    tracer = None
    try:
        with open(str(s.log_path), "ab") as logf:
            # as the unit does: started directly as the service user
            tracer = subprocess.Popen(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                 "strace", "-f", "-qq", "-o", str(trace),
                 sipwarden_bin(), "run", "-c", str(s.config)],
                cwd=work, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        s.proc = tracer
        s.wait_ready(30)
        with sipwire.UdpPeer() as ua:
            r = ua.request(s.addr, "REGISTER", "sip:example.test", to="<sip:u@example.test>",
                           contacts=["<sip:u@%s:%d>" % (ua.host, ua.port)], expires=300)
            assert r is not None and r.status == 200, r and r.start
        tp = sipwire.TcpPeer(s.addr)
        try:
            r = tp.request(s.addr, "OPTIONS", "sip:%s:%d" % s.addr)
            assert r is not None and r.status == 200, r and r.start
        finally:
            tp.close()
        # the server is strace's child: SIGTERM it, strace ends with it
        with open("/proc/%d/task/%d/children" % (tracer.pid, tracer.pid)) as f:
            kids = [int(x) for x in f.read().split()]
        assert len(kids) == 1, kids
        os.kill(kids[0], 15)
        tracer.wait(30)
        s.proc = None
        assert "event=server.stopped" in s.log_text(), s.log_tail()
        calls = traced_calls(trace)
        assert {"recvmmsg", "sendmmsg", "sched_setscheduler"} <= calls, sorted(calls)
        refused = sorted(calls - allowed)
        assert not refused, "contrib/sipwarden.service refuses: %s" % refused
    finally:
        if tracer is not None and tracer.poll() is None:
            tracer.kill()
            tracer.wait(5)
        s.proc = None
        shutil.rmtree(work, ignore_errors=True)
