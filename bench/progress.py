#!/usr/bin/env python3
"""Where a long ligero command spends its time: runs it under a pseudo-terminal (so that it
draws its progress bar), prints the wall time at every STEP% of progress (default 5), then the
whole machine's CPU time during the run by kind (/proc/stat), so idle cores show.
Usage: bench/progress.py [--step N] ligero img convert -p ... SRC DST"""
import os
import pty
import re
import sys
import time


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    return {n: v[i] / hz for i, n in enumerate(names)}


def main():
    args = sys.argv[1:]
    step = 5.0
    if args[:1] == ["--step"]:
        step, args = float(args[1]), args[2:]
    c0, t0 = cpu_times(), time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(args[0], args)
    last, line = -step, []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        for m in re.findall(rb"\(([0-9.]+)/100%\)", data):
            p = float(m)
            if p - last >= step:
                line.append(f"{time.monotonic() - t0:.2f}s {p:.0f}%")
                last = p
    _, status = os.waitpid(pid, 0)
    wall, c1 = time.monotonic() - t0, cpu_times()
    print(" | ".join(line))
    d = {k: c1[k] - c0[k] for k in c0}
    print(f"wall {wall:.2f} s, exit {os.waitstatus_to_exitcode(status)}; whole machine: " +
          ", ".join(f"{k} {d[k]:.2f} s" for k in ("user", "system", "idle", "iowait", "softirq")))


main()
