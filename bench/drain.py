#!/usr/bin/python3
"""Discard capacity of one receiving process, measured without a sender
competing for the CPU (issue 6, "Banned-IP discard"; driven by
bench/guard_flood.sh).

Each round: SIGSTOP the receiver, let bench/udpblast fill its UDP socket's
receive queue from the banned address (the kernel drops what does not fit),
SIGCONT it and wait until the queue (/proc/net/udp rx_queue) is empty and
its threads sleep again. Datagrams drained / CPU time the receiver used
meanwhile (/proc/PID/task/*/schedstat) is the per-core discard capacity,
with the kernel's delivery already paid by the blaster while the receiver
was stopped.

  drain.py --pid PID --port PORT --blast PATH --src 127.0.0.2
           [--datagrams 1000000] [--rounds 1000] [--time 60] [--rcvbuf BYTES]
           [--cpu 1] [--label NAME]

Rounds go on until --datagrams have been drained in rounds that filled the
queue, or --rounds, or --time s, whichever comes first.

--rcvbuf sets the receiver's socket buffer for the run with
SO_RCVBUFFORCE on a copy of its descriptor (pidfd_getfd, root only) and
puts the old size back at the end: a larger queue makes each round longer
than the scheduler's and /proc's granularity without touching the global
net.core.rmem_max (which would not help: sipwarden asks for 4 MB and gets
min(4 MB, rmem_max) doubled).

The receiver is never left stopped: SIGCONT in a finally block, and
SIGTERM/SIGINT/SIGHUP turn into an exception that reaches it.
"""
import argparse
import ctypes
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

SO_RCVBUFFORCE = 33
SYS_PIDFD_GETFD = 438  # x86_64 and the generic table alike
TICK = os.sysconf("SC_CLK_TCK")


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop("signal %d" % signum)


def udp_socks(port):
    """{inode: (rx_queue_bytes, drops)} of the IPv4 UDP sockets bound to port."""
    p = ":%04X" % port
    out = {}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            x = line.split()
            if x[1].endswith(p):
                out[int(x[9])] = (int(x[4].split(":")[1], 16), int(x[-1]))
    return out


def rxq_drops(port, inodes):
    s = udp_socks(port)
    return sum(s[i][0] for i in inodes if i in s), sum(s[i][1] for i in inodes if i in s)


def softnet_dropped():
    with open("/proc/net/softnet_stat") as f:
        return sum(int(line.split()[1], 16) for line in f)


def threads(pid):
    """{tid: (state, cpu_ns, utime_ticks, stime_ticks)}"""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                st = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                ns = int(f.read().split()[0])
        except OSError:
            continue  # the thread ended between listdir and open
        out[int(t)] = (st[0], ns, int(st[11]), int(st[12]))
    return out


def comm(pid, tid):
    try:
        with open("/proc/%d/task/%d/comm" % (pid, tid)) as f:
            return f.read().strip()
    except OSError:
        return "?"


def wait_states(pid, ok, timeout):
    """Until every thread's state is in ok (e.g. "T" after SIGSTOP)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(v[0] in ok for v in threads(pid).values()):
            return True
        time.sleep(0.0005)
    return False


def fds_of(pid, inodes):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and int(link[8:-1]) in inodes:
            out.append(int(fd))
    return out


def grab(pid, fds):
    """Copies of the receiver's socket descriptors (pidfd_getfd), or []."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    pfd = os.pidfd_open(pid)
    try:
        socks = []
        for fd in fds:
            r = libc.syscall(ctypes.c_long(SYS_PIDFD_GETFD), ctypes.c_int(pfd), ctypes.c_int(fd),
                             ctypes.c_uint(0))
            if r < 0:
                raise OSError(ctypes.get_errno(), "pidfd_getfd")
            socks.append(socket.socket(fileno=r))
        return socks
    finally:
        os.close(pfd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--blast", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", default="127.0.0.1")
    ap.add_argument("--datagrams", type=int, default=1000000, help="drained in full rounds, then stop")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--time", type=float, default=60.0, help="bound on the whole run, s")
    ap.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUFFORCE bytes (0: leave it)")
    ap.add_argument("--cpu", type=int, default=1, help="CPU of the blaster and of this poller")
    ap.add_argument("--label", default="receiver")
    a = ap.parse_args()

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        os.sched_setaffinity(0, {a.cpu})
    except OSError:
        pass
    inodes = set(udp_socks(a.port))
    if not inodes:
        sys.exit("drain: no UDP socket on port %d" % a.port)
    socks, old_rcvbuf, rcvbuf = [], [], "?"
    try:
        socks = grab(a.pid, fds_of(a.pid, inodes))
        old_rcvbuf = [s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in socks]
    except OSError as e:
        print("drain: cannot read the socket buffer (%s)" % e, file=sys.stderr)
        if a.rcvbuf:
            sys.exit(1)

    rounds = []
    stopped = False
    deadline = time.monotonic() + a.time
    want = 20000  # datagrams per fill; grows until a fill overflows the queue
    try:
        if a.rcvbuf:
            for s in socks:
                # the kernel doubles the value for its bookkeeping overhead
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, a.rcvbuf // 2)
        if socks:
            rcvbuf = "/".join(str(s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)) for s in socks)
        for _ in range(a.rounds):
            if time.monotonic() > deadline or \
                    sum(r["queued"] for r in rounds if r["dropped"] > 0) >= a.datagrams:
                break
            q, _d = rxq_drops(a.port, inodes)
            if q:  # something else is still queued: let it drain first
                time.sleep(0.05)
            os.kill(a.pid, signal.SIGSTOP)
            stopped = True
            if not wait_states(a.pid, "TtZX", 2.0):
                raise Stop("receiver did not stop")
            q0, d0 = rxq_drops(a.port, inodes)
            sn0 = softnet_dropped()
            tb = time.monotonic()
            out = subprocess.run([a.blast, "-d", "%s:%d" % (a.dst, a.port), "-b", a.src, "-n", str(want),
                                  "-t", "10"], capture_output=True, text=True, timeout=20, check=True).stdout
            b = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
            sent, bcpu = int(b["sent"]), float(b["cpu_s"])
            tb = time.monotonic() - tb
            # loopback delivery runs in the sender's softirq; wait until the
            # queue stops growing in case ksoftirqd took over
            q1, d1 = rxq_drops(a.port, inodes)
            for _i in range(200):
                time.sleep(0.002)
                qq, dd = rxq_drops(a.port, inodes)
                if (qq, dd) == (q1, d1):
                    break
                q1, d1 = qq, dd
            sn = softnet_dropped() - sn0
            dropped = d1 - d0
            queued = sent - dropped - sn  # conservative: softnet drops are machine-wide
            th0 = threads(a.pid)
            t0 = time.monotonic()
            os.kill(a.pid, signal.SIGCONT)
            stopped = False
            t_empty = None
            end = t0 + 10.0
            while time.monotonic() < end:
                if rxq_drops(a.port, inodes)[0] == 0:
                    t_empty = time.monotonic()
                    break
                time.sleep(0.0002)
            # the last batch is dequeued; wait for the threads to sleep again
            wait_states(a.pid, "SDI", 0.5)
            th1 = threads(a.pid)
            if t_empty is None:
                raise Stop("queue not drained after 10 s")
            per = {t: th1[t][1] - th0.get(t, (0, 0))[1] for t in th1}
            busy = max(per, key=per.get)
            rounds.append(dict(
                sent=sent, dropped=dropped, softnet=sn, queued=queued, qbytes=q1 - q0,
                cpu=sum(per.values()), busy=busy, busy_cpu=per[busy],
                ut=sum(th1[t][2] - th0.get(t, (0, 0, 0, 0))[2] for t in th1),
                st=sum(th1[t][3] - th0.get(t, (0, 0, 0, 0))[3] for t in th1),
                wall=t_empty - t0, bcpu=bcpu, bwall=tb))
            if dropped == 0:
                want = min(want * 2, 4000000)  # the queue did not fill: more next time
            else:
                want = int(queued * 1.05) + 64
    except (Stop, subprocess.SubprocessError, OSError, KeyError, ValueError) as e:
        print("drain: stopped early: %s" % e, file=sys.stderr)
    finally:
        if stopped:
            os.kill(a.pid, signal.SIGCONT)
        for s, v in zip(socks, old_rcvbuf):
            if a.rcvbuf:
                try:
                    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, v // 2)
                except OSError as e:
                    print("drain: could not restore SO_RCVBUF: %s" % e, file=sys.stderr)
            s.close()  # our copy only; the receiver keeps its socket

    full = [r for r in rounds if r["dropped"] > 0 and r["queued"] > 0]
    if not full:
        sys.exit("drain: no round filled the queue (%d rounds)" % len(rounds))
    n = sum(r["queued"] for r in full)
    cpu = sum(r["cpu"] for r in full)
    ut, st = sum(r["ut"] for r in full), sum(r["st"] for r in full)
    per_round = sorted(r["queued"] / (r["cpu"] / 1e9) for r in full)
    wall_rate = sorted(r["queued"] / r["wall"] for r in full)
    busy = full[-1]["busy"]
    print("%s: SO_RCVBUF %s bytes, %d full rounds (of %d), %d datagrams queued per round (median), "
          "%.0f bytes of rx_queue each (skb truesize), softnet drops %d" % (
              a.label, rcvbuf, len(full), len(rounds), statistics.median(r["queued"] for r in full),
              statistics.median(r["qbytes"] / r["queued"] for r in full), sum(r["softnet"] for r in full)))
    print("  drained %d datagrams with %.3f s of CPU = %.0f ns each -> %.0f datagrams/s per core "
          "(rounds: min %.0f, median %.0f, max %.0f)" % (
              n, cpu / 1e9, cpu / n, n / (cpu / 1e9), per_round[0], statistics.median(per_round),
              per_round[-1]))
    print("  busiest thread %s (%s) %.0f %% of that CPU; user %.0f %% / kernel %.0f %% (%d/%d ticks of "
          "1/%d s)" % (busy, comm(a.pid, busy), 100.0 * sum(r["busy_cpu"] for r in full) / cpu,
                       100.0 * ut / (ut + st) if ut + st else 0, 100.0 * st / (ut + st) if ut + st else 0,
                       ut, st, TICK))
    print("  wall-clock drain rate (SIGCONT .. queue empty, shared machine): median %.0f/s, max %.0f/s; "
          "blaster %.0f ns CPU per datagram sent while the receiver was stopped" % (
              statistics.median(wall_rate), wall_rate[-1],
              1e9 * sum(r["bcpu"] for r in full) / sum(r["sent"] for r in full)))
    print("RESULT label=%s datagrams=%d cpu_s=%.4f ns_per=%.1f per_s=%.0f median_round_per_s=%.0f "
          "user_pct=%.1f wall_median_per_s=%.0f" % (
              a.label, n, cpu / 1e9, cpu / n, n / (cpu / 1e9), statistics.median(per_round),
              100.0 * ut / (ut + st) if ut + st else 0, statistics.median(wall_rate)))


if __name__ == "__main__":
    main()
