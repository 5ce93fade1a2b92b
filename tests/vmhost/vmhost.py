"""Python side of the emulated-host harness: run a shell script inside the emulated host
(tests/vmhost/vmhost.sh) and get its output and exit status back."""
import fcntl
import os
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "vmhost" / "vmhost.sh"
HOST_FAILED = 125  # vmhost.sh: the emulated host itself failed


@dataclass
class VmhostResult:
    rc: int  # the script's exit status
    output: str  # its stdout and stderr, as printed inside the emulated host
    log: str  # vmhost.sh's own stderr (QEMU warnings, L1 console on failure)


def build_dir():
    return Path(os.environ.get("LIGERO_BUILD", REPO / "build")).resolve()


def ligero_binary():
    return Path(os.environ.get("LIGERO", build_dir() / "ligero")).resolve()


def missing():
    """Why the emulated host cannot run here, or None."""
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    if not shutil.which("busybox"):
        return "busybox is not installed (apt-get install busybox-static)"
    if not ligero_binary().exists():
        return f"{ligero_binary()} does not exist (build first, or set LIGERO)"
    return None


def build_guest():
    """Build (or reuse) the test guest; returns its directory."""
    env = dict(os.environ, LIGERO_BUILD=str(build_dir()))
    out = subprocess.run(["sh", str(REPO / "tests/guest/build.sh"), str(build_dir() / "guest")],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError("tests/guest/build.sh failed: " + out.stderr.strip())
    return Path(out.stdout.strip())


def build_debian():
    """Build (or reuse) the real test guests (tests/guest/debian.sh, as root); returns the
    dict of debian.json with an added "rhel" key holding rhel.json (paths, UUIDs, kernel
    version, boot entries). The disks are shared by every test: boot overlays or copies."""
    import json
    env = dict(os.environ, LIGERO_BUILD=str(build_dir()))
    out = subprocess.run(["sh", str(REPO / "tests/guest/debian.sh"), str(build_dir() / "guest")],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError("tests/guest/debian.sh failed: " + out.stderr.strip())
    d = Path(out.stdout.strip().splitlines()[-1])
    info = json.loads((d / "debian.json").read_text())
    info["rhel"] = json.loads((d / "rhel.json").read_text())
    return info


def run(script, files=(), bins=(), trees=(), timeout=900, smp=2, mem="2G", env=None,
        disks=(), disk_space=None, disks_out=None, tap=None, netns=None):
    """Run `script` (shell text) in the emulated host; see vmhost.sh for the layout. `env`
    adds variables for vmhost.sh itself (VMHOST_NPT, VMHOST_STALL...). `disks` are
    "FILE[:NAME]" strings, seen as /work/disks/NAME (read-write copies); `disks_out` is a
    directory that receives the files at the top of /work/disks after the run. `tap` names a
    tap device L1 gets as its eth0, in the network namespace `netns` (`ip netns exec`) that
    vmhost.sh then runs in."""
    work = build_dir() / "vmhost"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"script.{os.getpid()}.sh"
    path.write_text(script)
    cmd = ["sh", str(SCRIPT), "--timeout", str(timeout), "--smp", str(smp), "--mem", mem]
    for f in files:
        cmd += ["--file", f]
    for b in bins:
        cmd += ["--bin", b]
    for t in trees:
        cmd += ["--tree", t]
    for d in disks:
        cmd += ["--disk", str(d)]
    if disk_space:
        cmd += ["--disk-space", str(disk_space)]
    if disks_out:
        cmd += ["--disks-out", str(disks_out)]
    if tap:
        cmd += ["--tap", tap]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    env = dict(os.environ, LIGERO_BUILD=str(build_dir()), LIGERO=str(ligero_binary()),
               **(env or {}))
    log = ""
    lock = None
    try:
        # VMHOST_LOCK: wait for the emulated host's turn here, before the hang guard's clock
        # starts (vmhost.sh, told by VMHOST_LOCKED, then does not wait again)
        if os.environ.get("VMHOST_LOCK") and not os.environ.get("VMHOST_LOCKED"):
            lock = open(os.environ["VMHOST_LOCK"], "a")
            fcntl.flock(lock, fcntl.LOCK_EX)
            env["VMHOST_LOCKED"] = "1"
        for attempt in (1, 2):  # an emulated host whose own kernel failed gets one more boot
            out = subprocess.run(cmd + [str(path)], env=env, capture_output=True, text=True,
                                 errors="replace", timeout=timeout + 120)
            log += out.stderr
            if out.returncode != HOST_FAILED:
                break
            log += f"\nvmhost: attempt {attempt} failed (emulated host)\n"
            # said in the test run's summary too: a retried boot is where the suite's time goes
            # (the caller's line names the test)
            lines = out.stderr.splitlines()
            why = [x for x in lines if re.search(
                r"soft lockup|Kernel panic|BUG: |Oops|stopped responding|qemu exited", x)]
            why = (why or [x for x in lines if x.startswith("vmhost: ")] or [""])[0].strip()
            warnings.warn(f"emulated host: attempt {attempt} failed"
                          f"{', booted again' if attempt == 1 else ''}"
                          f"{': ' + why[:160] if why else ''}", stacklevel=2)
    finally:
        path.unlink(missing_ok=True)
        if lock:
            lock.close()
    return VmhostResult(out.returncode, out.stdout, log)


def skip_if_host_failed(res):
    """Skip (with the reason) when the emulated host itself failed twice: its kernel locked up
    or crashed under the emulator (docs/ligero-run.md), which says nothing about ligero."""
    import pytest
    if res.rc == HOST_FAILED:
        pytest.skip("the emulated host itself failed twice (QEMU TCG nested SVM; see "
                    "docs/ligero-run.md): " + " | ".join(res.log.strip().splitlines()[-3:]))
