"""tests/guest/stall-guard.sh, the progress guard the emulated-host boot tests put on a Debian
guest (test_disk_boot, test_fleet_boot, test_migrate_boot): run here on stand-ins for a VM, a
shell loop that prints. The oracle is the process table (/proc) and the files the stand-in
writes: a stopped process and every process under it are gone, a process that makes progress is
left alone. No assertion on how long anything took: the guard's own clock is what is tested,
and the waits here are hang guards."""
import os
import subprocess
import time
from pathlib import Path

import pytest

# a shell script under test, no binary of the build: CI's ASan/UBSan pass leaves it out
pytestmark = pytest.mark.no_asan

GUARD = Path(__file__).resolve().parents[1] / "guest" / "stall-guard.sh"
HANG = 120  # seconds: a hang guard for the guard


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def spawn(tmp_path, body):
    """A stand-in VM: `sh -c BODY` in tmp_path, its console in console.log; it writes the pid
    of its own child (a `sleep` below it, as ligero is below console-session.sh) to child.pid."""
    p = subprocess.Popen(["sh", "-c", "sleep 100000 & echo $! >child.pid; " + body],
                         cwd=tmp_path, stdout=open(tmp_path / "console.log", "w"))
    for _ in range(HANG * 10):
        if (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text().strip():
            break
        time.sleep(0.1)
    return p, int((tmp_path / "child.pid").read_text())


def guard(p, tmp_path, *args):
    return subprocess.run(["sh", str(GUARD), *args, str(p.pid), str(tmp_path / "console.log")],
                          capture_output=True, text=True, timeout=HANG)


@pytest.mark.parametrize("after", [
    "",  # silent
    # the stall reports, with the register dumps and backtraces that come with them (a frozen
    # guest in CI printed those for over ten minutes; the first version of the guard counted
    # the backtraces as progress)
    'while :; do echo "[  99.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"; '
    'echo "[  99.1] rcu: rcu_preempt kthread starved for 5002 jiffies!"; '
    'echo "[  99.2] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!"; '
    'echo "[  99.3] INFO: task systemd:1 blocked for more than 120 seconds."; '
    'echo "[  99.4] NMI backtrace for cpu 1"; echo "[  99.5] Call Trace:"; '
    'echo "[  99.6]  <TASK>"; echo "[  99.7] RIP: 0010:native_safe_halt+0xb/0x10"; '
    'echo "rcu: INFO: rcu_sched self-detected stall on CPU"; sleep 0.2; done',
    # a kernel that only ever prints its own lines (it never reaches user space)
    'i=0; while :; do i=$((i + 1)); echo "[ $i.000000] virtio_blk virtio1: [vda] 4194304 '
    '512-byte logical blocks"; sleep 0.2; done',
])
def test_a_frozen_console_is_stopped_with_what_runs_under_it(tmp_path, after):
    p, child = spawn(tmp_path, f"echo booting; echo login:; {after or 'sleep 100000'}")
    r = guard(p, tmp_path, "--stall", "2")
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith(f"stall-guard: {p.pid} stopped: its console showed nothing new "
                               "for 2 s"), r.stderr
    assert p.wait(timeout=HANG) == -9
    for _ in range(HANG * 10):
        if not alive(child):
            break
        time.sleep(0.1)
    assert not alive(child), "the process under the stopped one was left running"
    assert "login:" in (tmp_path / "console.log").read_text()


def test_a_console_that_moves_is_left_alone(tmp_path):
    # lines that only mention a stall in passing are progress: the filter is on the kernel's
    # lines, not on the word
    p, child = spawn(tmp_path, "i=0; while [ $i -lt 30 ]; do echo \"line $i: no stall here\"; "
                     "sleep 0.1; i=$((i + 1)); done; kill $(cat child.pid)")
    r = guard(p, tmp_path, "--stall", "30")
    assert r.returncode == 0, r.stderr
    assert p.wait(timeout=HANG) == 0
    assert r.stderr.startswith(f"stall-guard: {p.pid} ended; longest silence "), r.stderr
    assert int(r.stderr.split()[-2]) < 30
    assert (tmp_path / "console.log").read_text().count("no stall here") == 30


def test_the_limit_stops_a_console_that_moves(tmp_path):
    p, child = spawn(tmp_path, "while :; do echo still booting; sleep 0.1; done")
    r = guard(p, tmp_path, "--stall", "100000", "--limit", "2")
    assert r.returncode == 3
    assert "stopped: still running after 2 s" in r.stderr
    assert p.wait(timeout=HANG) == -9


def test_count_leaves_out_kernel_lines_and_stall_reports(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("booting\n[ 12.0] rcu: INFO: rcu_sched self-detected stall on CPU\n"
                 "[  12.100000] Call Trace:\n\x1b[?2004l[   12.2] RIP: 0010:halt\n"
                 "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n")
    b.write_text("login:\n")

    def count(*files):
        r = subprocess.run(["sh", str(GUARD), "--count", *map(str, files)], capture_output=True,
                           text=True, timeout=HANG, check=True)
        return int(r.stdout)

    assert count(a) == len("booting\n")
    assert count(a, b, tmp_path / "absent") == len("booting\nlogin:\n")
    # systemd's status lines and the getty's are what user space writes: progress
    b.write_text("[  OK  ] Started systemd-logind.service - User Login Management.\n")
    assert count(b) > 0
    # systemd redrawing a job it waits for is not
    with open(a, "a") as f:
        f.write("\r\x1b[K[  *** ] A start job is running for /dev/disk/by-uuid/x (1min / no "
                "limit)\r\x1b[K[ ***  ] A start job is running for /dev/disk/by-uuid/x (1min 1s"
                " / no limit)\n")
    assert count(a) == len("booting\n")
    with open(a, "a") as f:
        f.write("[ 75.0] rcu: INFO: rcu_sched detected expedited stalls on CPUs/tasks\n")
    assert count(a) == len("booting\n")


def test_usage(tmp_path):
    r = subprocess.run(["sh", str(GUARD), str(os.getpid())], capture_output=True, text=True,
                       timeout=HANG)
    assert r.returncode == 2 and "usage: stall-guard.sh" in r.stderr
