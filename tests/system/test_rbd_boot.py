"""A guest whose disk lives on a Ceph cluster (issue 24: `ligero run --disk rbd:...`), inside
the emulated host, in one boot of it. The throwaway cluster (tests/ceph/cluster.sh) runs in a
network namespace of its own and listens on the address of a tap device there; the emulated
host runs in the same namespace with that tap as its eth0, so L1's ligero reaches the monitor
and the OSD over a network, as a KVM host reaches its storage cluster, with its own copy of the
client's ceph.conf and keyring.

Two boots of the test guest:
  rbd      `ligero run --disk rbd:rbd/boot:conf=...`: the guest reads the whole image (its
           SHA-256 must be the image's as written here), writes a pattern with fsync and reads
           it back; afterwards qemu-img (qemu-block-extra's rbd driver, the oracle) reads the
           image here: the pattern in place, everything else as before, and `rbd status` shows
           no watcher left (ligero closed the image; a client that died would hold one)
  overlay  a qcow2 overlay made in L1 whose backing file is the rbd: image (`img create -b
           rbd:...`, the class's base on the cluster and each member's overlay local): the
           guest reads the image as the first boot left it, and its write lands in the overlay
           (qemu-img check, convert here), while the RBD image stays as it was."""
import os
import re
import shlex
import shutil
import subprocess

import pytest

import vmhost as vh  # noqa: E402  (tests/vmhost, on sys.path through conftest)
from ceph_cluster import _cluster
from conftest import run_cmd
from test_nbd_boot import BOOT_FN, PATTERN, SIZE, guest_cmd, guest_retried, parse_cases, sha

pytestmark = pytest.mark.vmhost

MiB = 1 << 20
NS = f"ligero-rbdboot-{os.getpid()}"
TAP = "lgrbd0"
HOST_IP, L1_IP = "10.77.0.1", "10.77.0.2"
WRITE_RBD = 5 * MiB + 4096  # inside the first 4 MiB object's neighbour, not at its start
WRITE_OV = 9 * MiB + 8192  # the overlay's write: somewhere the first boot did not write


def ip(*args):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"ip {' '.join(args)}: {p.stderr}"


@pytest.fixture(scope="module")
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 (a network namespace with a tap device)")
    ip("netns", "add", NS)
    try:
        ip("-n", NS, "link", "set", "lo", "up")
        ip("-n", NS, "tuntap", "add", "dev", TAP, "mode", "tap")
        ip("-n", NS, "addr", "add", f"{HOST_IP}/24", "dev", TAP)
        ip("-n", NS, "link", "set", TAP, "up")
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], timeout=60)


@pytest.fixture(scope="module")
def cluster(netns):
    c, tmp = _cluster("memstore", netns=netns, addr=HOST_IP)
    yield c
    c.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def in_ns(*cmd, check=True):
    return run_cmd("ip", "netns", "exec", NS, *map(str, cmd), check=check)


def l1_conf(cluster, d):
    """The client's ceph.conf as L1 sees it (its own paths), and the keyring beside it."""
    mon = re.search(r"^mon host = (.*)$", cluster.conf.read_text(), re.M).group(1)
    (d / "ceph.conf").write_text(
        "[global]\n"
        f"mon host = {mon}\n"
        "keyring = /work/ceph/keyring\n"
        "auth cluster required = cephx\nauth service required = cephx\n"
        "auth client required = cephx\n"
        "ms bind ipv6 = false\nms bind msgr2 = false\n"
        "[client]\nadmin socket =\nlog file = /dev/null\n")
    shutil.copy(cluster.dir / "keyring", d / "keyring")
    return [f"{d / 'ceph.conf'}:ceph/ceph.conf", f"{d / 'keyring'}:ceph/keyring"]


RBD_L1 = "rbd:rbd/boot:conf=/work/ceph/ceph.conf"


def l1_script():
    rbd = shlex.quote(f'quiet ligero.run="{guest_cmd(True, WRITE_RBD)}"')
    ov = shlex.quote(f'quiet ligero.run="{guest_cmd(True, WRITE_OV)}"')
    # the overlay is made afresh for each attempt of its boot (BOOT_FN's retry)
    create = (f"rm -f disks/ov.qcow2; ./ligero img create -q -f qcow2 -b {shlex.quote(RBD_L1)} "
              "-F raw disks/ov.qcow2; echo \"CREATE-RC=$?\"")
    return "\n".join([
        BOOT_FN,
        f"ip addr add {L1_IP}/24 dev eth0 && ip link set eth0 up || echo NET-FAILED",
        "echo '=== CASE rbd'",
        # a lost first attempt may have written the pattern already: the retry reads the image
        # as it left it, and the test accepts either image (the pattern is the only change)
        f"boot {shlex.quote(RBD_L1)} {rbd} :",
        "echo '=== CASE overlay'",
        create,
        f"boot disks/ov.qcow2 {ov} {shlex.quote(create)}",
    ]) + "\n"


@pytest.fixture(scope="module")
def boots(vmhost, cluster, qemu_img, tmp_path_factory):
    d = tmp_path_factory.mktemp("rbdboot")
    src = d / "src.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", src, str(SIZE), check=True)
    run_cmd("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 3M", "-c",
            "write -P 0x22 40M 1M", "-c", "write -P 0x33 1M 64k", src, check=True)
    qemu_img("convert", "-O", "raw", src, d / "before.raw", check=True)
    in_ns(vh.ligero_binary(), "img", "convert", "-O", "raw", src, cluster.name("boot"))
    out = d / "out"
    # (the source rides along as a --disk only so that L1 has /work/disks for the overlay)
    # ligero loads librbd when it first opens an rbd: image (src/block/rbd_dl.h), so the
    # emulated host gets it (and what it links) besides ligero's own libraries
    librbd = re.search(r"=> (\S+librbd\.so\.1)$", run_cmd("ldconfig", "-p", check=True).stdout,
                       re.M)
    assert librbd, "librbd.so.1 is not installed"
    res = vmhost(l1_script(), files=l1_conf(cluster, d), disks=[f"{src}:src.qcow2"],
                 bins=[librbd.group(1)],
                 disks_out=str(out), timeout=2400, mem="2G", tap=TAP, netns=NS)
    (vh.build_dir() / "vmhost" / "test_rbd_boot.log").write_text(res.output + res.log)
    vh.skip_if_host_failed(res)
    cases = parse_cases(res.output)
    assert "NET-FAILED" not in res.output, res.output[-4000:]
    assert set(cases) == {"rbd", "overlay"}, res.output[-4000:] + res.log[-3000:]
    # the image as qemu-img's rbd driver reads it after both boots
    in_ns("qemu-img", "convert", "-O", "raw", cluster.name("boot"), d / "after.raw")
    # vmhost.py boots the emulated host once more when its own kernel failed; the retry finds
    # the RBD image as the first attempt's guest left it (it lives in the cluster, outside L1)
    retried = "attempt 1 failed" in res.log
    return {"cases": cases, "dir": d, "out": out, "cluster": cluster, "retried": retried}


def test_guest_reads_and_writes_the_rbd_image(boots):
    c = boots["cases"]["rbd"]
    assert re.search(r"^=== RC 0$", c["_out"], re.M), c["_out"]
    assert "LIGERO-RC=0" in c["_out"], c["_out"]
    # read before its write, or (a retried emulated host, or a guest the emulated host lost and
    # booted again) after the first attempt's, which the checks below prove is the same write
    want = {sha(boots["dir"] / "before.raw")}
    lost = guest_retried(c)
    if lost or boots["retried"]:
        want.add(sha(boots["dir"] / "after.raw"))
    assert c.get("DISK-SHA") in want, c["_out"]
    assert c.get("WRITE-RC") == "0" and c.get("BACK") == "1024", c["_out"]
    before = (boots["dir"] / "before.raw").read_bytes()
    after = (boots["dir"] / "after.raw").read_bytes()
    n = len(PATTERN)
    assert after[WRITE_RBD:WRITE_RBD + n] == PATTERN
    assert after[:WRITE_RBD] == before[:WRITE_RBD]
    assert after[WRITE_RBD + n:] == before[WRITE_RBD + n:]


def test_no_watcher_left(boots):
    # a clean close unregisters the image's watch at once; a client that died keeps it until
    # the OSD's watch timeout
    st = boots["cluster"].rbd("status", "boot").stdout
    assert "Watchers: none" in st, st


def test_local_overlay_on_an_rbd_base(boots, qemu_img):
    c = boots["cases"]["overlay"]
    assert c.get("CREATE-RC") == "0", c["_out"]
    assert re.search(r"^=== RC 0$", c["_out"], re.M), c["_out"]
    guest_retried(c)
    # it read the base as the first boot left it
    assert c.get("DISK-SHA") == sha(boots["dir"] / "after.raw"), c["_out"]
    assert c.get("WRITE-RC") == "0" and c.get("BACK") == "1024", c["_out"]
    ov = boots["out"] / "ov.qcow2"
    # the overlay names the rbd: image as its backing file, with L1's conf path; give it this
    # host's (rebase -u rewrites only the name), then qemu-img checks it and reads it through
    # the cluster
    info = qemu_img("info", "--output=json", ov, check=True).stdout
    assert RBD_L1 in info, info
    qemu_img("rebase", "-u", "-f", "qcow2", "-b", boots["cluster"].name("boot"), "-F", "raw",
             ov, check=True)
    in_ns("qemu-img", "check", ov)
    got = boots["dir"] / "ov.raw"
    in_ns("qemu-img", "convert", "-O", "raw", ov, got)
    base = (boots["dir"] / "after.raw").read_bytes()
    data = got.read_bytes()
    n = len(PATTERN)
    assert data[WRITE_OV:WRITE_OV + n] == PATTERN
    assert data[:WRITE_OV] == base[:WRITE_OV] and data[WRITE_OV + n:] == base[WRITE_OV + n:]
