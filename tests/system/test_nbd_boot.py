"""A guest whose disk is an NBD export (issue 24: `ligero run --disk nbd+unix://...`), inside the
emulated host, in one boot of it: `ligero img serve` exports a qcow2 overlay (its backing file
beside it) on a Unix socket there, and `ligero run` boots the test guest with that export as its
virtio-blk disk. The guest reads the whole disk (its SHA-256 must be the chain's, computed here
by qemu-img) and writes a pattern through it with fsync; then the VM powers off, the server ends
with its last client, and the overlay comes back to this host, where qemu-img check and qemu-io
are the oracles: the guest's bytes are in the overlay, the rest is what it was, the base is
untouched. A second boot reads the same export served read-only (`-r`) and its write fails."""
import hashlib
import re
import shlex
import warnings

import pytest

import vmhost as vh  # noqa: E402  (tests/vmhost, on sys.path through conftest)
from conftest import run_cmd

pytestmark = pytest.mark.vmhost

MiB = 1 << 20
SIZE = 64 * MiB
WRITE_AT = 5 * MiB + 4096  # an odd place, inside a cluster the overlay does not hold yet


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


PATTERN = b"ZZZZZZZ\n" * 1024  # what the guest writes: `yes ZZZZZZZ | head -c 8192`


def guest_cmd(write, at=WRITE_AT):
    """What the guest runs: the whole disk's SHA-256, then (write) PATTERN at `at` (4 KiB
    aligned), fsynced, and read back (its lines counted). test_rbd_boot.py uses it too."""
    cmd = "echo DISK-SHA=$(sha256sum /dev/vda | cut -c1-64)"
    if write:
        cmd += (f"; yes ZZZZZZZ | head -c 8192 | dd of=/dev/vda bs=4096 seek={at // 4096} "
                "conv=fsync 2>/dev/null; echo WRITE-RC=$?; "
                f"echo BACK=$(dd if=/dev/vda bs=4096 skip={at // 4096} count=2 "
                "2>/dev/null | grep -c ZZZZZZZ)")
    return cmd


# The emulated host's model of nested SVM loses a guest now and then: it triple-faults, early in
# its kernel's start or later (docs/ligero-run.md; test_run.py and test_migrate_boot.py do the
# same). boot DISK CMDLINE HOOK runs the test guest on DISK; when that first attempt ends in a
# triple fault, HOOK puts back what the lost attempt may have changed and the guest boots once
# more. The retry is printed ("=== GUEST-RETRY", the lost attempt's output as RETRY- lines) and
# the tests warn of it; a second loss fails the case. test_rbd_boot.py uses it too.
BOOT_FN = r"""boot() {
	for try in 1 2; do
		timeout 900 ./ligero run --stop-timeout 0 --kernel guest/vmlinuz \
			--initrd guest/initrd.img --memory 256M --disk "$1" --cmdline "$2" \
			>/tmp/out 2>/tmp/err
		rc=$?
		[ $try = 1 ] && [ $rc != 0 ] && grep -q triple-faulted /tmp/err || break
		echo "=== GUEST-RETRY (rc $rc)"
		tr -d '\r' </tmp/out | tail -n 30 | sed 's/^/RETRY-OUT: /'
		sed 's/^/RETRY-ERR: /' /tmp/err
		eval "$3"
	done
	echo "=== RC $rc"; tr -d '\r' </tmp/out; sed 's/^/STDERR: /' /tmp/err
}
"""


def l1_script():
    disk = "'nbd+unix:///?socket=/tmp/nbd.sock{opts}'"
    serve = ("rm -f /tmp/nbd.sock /tmp/nbd.pid; ./ligero img serve {flags} -f qcow2 "
             "--socket /tmp/nbd.sock --pid-file /tmp/nbd.pid disks/ov.qcow2 2>/tmp/serve.err & "
             "s=$!; i=0; while [ ! -s /tmp/nbd.pid ] && [ $i -lt 600 ]; do sleep 0.1; "
             "i=$((i+1)); done")
    # the server ends by itself when its last client has gone (no --persistent)
    reap = ("i=0; while kill -0 $s 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); "
            "done; kill -0 $s 2>/dev/null && { echo SERVER-STILL-UP; kill $s; }; wait $s; "
            "echo \"SERVE-RC=$?\"; sed 's/^/SERVE-ERR: /' /tmp/serve.err")
    cmd = shlex.quote(f'quiet ligero.run="{guest_cmd(True)}"')
    # a lost first attempt of the read-write boot: its server has ended with it; the overlay
    # goes back to what it was before the boot, and a new server exports it
    again = shlex.quote(f"{reap}; cp /tmp/ov.orig disks/ov.qcow2; {serve.format(flags='')}")
    return "\n".join([
        BOOT_FN,
        "cp disks/ov.qcow2 /tmp/ov.orig",
        "echo '=== CASE rw'",
        serve.format(flags=""),
        f"boot {disk.format(opts='')} {cmd} {again}",
        reap,
        # read-only: a read-write open of the export is refused with one line (no boot), then
        # the guest boots on it read-only, and its write fails
        "echo '=== CASE ro'",
        serve.format(flags="-r --persistent"),
        "timeout 300 ./ligero run --stop-timeout 0 --kernel guest/vmlinuz "
        "--initrd guest/initrd.img --memory 256M "
        "--disk 'nbd+unix:///?socket=/tmp/nbd.sock' 2>/tmp/rwerr; echo \"RW-OPEN-RC=$?\"; "
        "sed 's/^/RW-OPEN-ERR: /' /tmp/rwerr",
        f"boot {disk.format(opts=',readonly=on')} {cmd} :",
        "kill $s; wait $s; echo \"SERVE-RC=$?\"; sed 's/^/SERVE-ERR: /' /tmp/serve.err",
    ]) + "\n"


def guest_retried(case):
    """Whether the case's guest was lost once and booted again (BOOT_FN), with a warning."""
    if "=== GUEST-RETRY" not in case["_out"]:
        return False
    warnings.warn("the emulated host lost a guest (triple fault); it was booted once more: "
                  + case["_out"][:2000])
    return True


def parse_cases(output, skip=("STDERR", "SERVE-ERR", "RW-OPEN-ERR", "RETRY-")):
    """The emulated host's output split at its "=== CASE NAME" lines: {NAME: {KEY: VALUE for
    each KEY=VALUE line not starting with one of skip, "_out": the case's whole text}}.
    test_rbd_boot.py uses it too."""
    cases = {}
    for block in output.split("=== CASE ")[1:]:
        name, body = block.split("\n", 1)
        kv = {}
        for line in body.splitlines():
            if "=" in line and not line.startswith(skip):
                k, v = line.split("=", 1)
                kv[k.strip()] = v.strip()
        kv["_out"] = body
        cases[name.strip()] = kv
    return cases


@pytest.fixture(scope="module")
def boots(vmhost, qemu_img, tmp_path_factory):
    d = tmp_path_factory.mktemp("nbdboot")
    base, ov = d / "base.qcow2", d / "ov.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", base, str(SIZE), check=True)
    run_cmd("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 3M", "-c",
            "write -P 0x22 40M 1M", base, check=True)
    # the backing name as written, relative: it resolves beside the overlay in the emulated host
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", ov, check=True)
    run_cmd("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 1M 64k", ov, check=True)
    qemu_img("convert", "-O", "raw", ov, d / "before.raw", check=True)
    want = sha(d / "before.raw")
    base_sha = sha(base)
    out = d / "out"
    res = vmhost(l1_script(), disks=[f"{base}:base.qcow2", f"{ov}:ov.qcow2"],
                 disks_out=str(out), timeout=2400, mem="2G")
    (vh.build_dir() / "vmhost" / "test_nbd_boot.log").write_text(res.output + res.log)
    vh.skip_if_host_failed(res)
    cases = parse_cases(res.output)
    assert set(cases) == {"rw", "ro"}, res.output[-4000:]
    return {"cases": cases, "want": want, "base": base, "base_sha": base_sha, "out": out,
            "dir": d}


def raw(qemu_img, image, dst):
    qemu_img("convert", "-O", "raw", image, dst, check=True)
    return dst


def test_guest_reads_the_chain_through_nbd(boots):
    for name in ("rw", "ro"):
        c = boots["cases"][name]
        assert re.search(r"^=== RC 0$", c["_out"], re.M), c["_out"]
        assert "LIGERO-RC=0" in c["_out"], c["_out"]
        guest_retried(c)
    # the first boot (or its retry, on the overlay as it was before) saw the chain as qemu-img
    # converts it
    assert boots["cases"]["rw"].get("DISK-SHA") == boots["want"], boots["cases"]["rw"]["_out"]


def test_guest_writes_land_in_the_overlay(boots, qemu_img):
    c = boots["cases"]["rw"]
    assert c.get("WRITE-RC") == "0" and c.get("BACK") == "1024", c["_out"]
    assert c.get("SERVE-RC") == "0" and "SERVER-STILL-UP" not in c["_out"], c["_out"]
    ov = boots["out"] / "ov.qcow2"
    r = qemu_img("check", ov)
    assert r.returncode == 0, r.stdout + r.stderr
    # the base, copied back beside the overlay, is unchanged
    assert sha(boots["out"] / "base.qcow2") == boots["base_sha"]
    # through the chain, as qemu-img reads it: the guest's bytes at WRITE_AT, and everything
    # else as it was before the boot
    after = raw(qemu_img, ov, boots["dir"] / "after.raw").read_bytes()
    before = (boots["dir"] / "before.raw").read_bytes()
    assert after[WRITE_AT:WRITE_AT + len(PATTERN)] == PATTERN
    assert after[:WRITE_AT] == before[:WRITE_AT]
    assert after[WRITE_AT + len(PATTERN):] == before[WRITE_AT + len(PATTERN):]


def test_read_only_export_refuses_the_guest_write(boots, qemu_img):
    c = boots["cases"]["ro"]
    # the second boot read the chain as the first left it, and could not write to it
    after = sha(raw(qemu_img, boots["out"] / "ov.qcow2", boots["dir"] / "after2.raw"))
    assert c.get("DISK-SHA") == after, c["_out"]
    assert c.get("WRITE-RC") not in (None, "0"), c["_out"]
    # opened read-write, the read-only export is refused before anything boots: one line
    assert c.get("RW-OPEN-RC") == "1", c["_out"]
    errs = [l for l in c["_out"].splitlines() if l.startswith("RW-OPEN-ERR: ")]
    assert len(errs) == 1 and "the NBD export is read-only" in errs[0], c["_out"]
