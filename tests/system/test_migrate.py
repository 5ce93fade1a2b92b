"""`ligero migrate`: an OpenVZ container into a qcow2 overlay of a base, checked offline.

Oracles: the kernel's own view of the result (its root filesystem mounted read-only through a
loop device), e2fsck -fn, debugfs, qemu-img check/info, dpkg-query --admindir on the result's
dpkg database, rsync's recipe run on the same trees (to show the rules matter), and the base's
hash (never written). Fixtures (tests/system/migrate_fixtures.py): a Debian 12 container made
by debootstrap with vzctl's venet configuration and the templates' leftovers, a Debian 12 base
with a stand-in kernel package on a GPT qcow2, and small synthetic trees for the layout rules
and a RHEL container.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import migrate_fixtures as mf
from conftest import run_cmd, sha256

KVER = mf.KVER


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            pytest.skip(f"{t} is not installed (see .ci/packages)")


@pytest.fixture(scope="module", autouse=True)
def requirements():
    if os.geteuid() != 0:
        pytest.skip("the migrate fixtures need root (debootstrap, device nodes, loop mounts)")
    need("debootstrap", "sgdisk", "sfdisk", "mkfs.ext4", "e2fsck", "debugfs", "qemu-img",
         "setfacl", "dpkg-deb", "dpkg-query", "tar")
    if not mf.can_mount():
        pytest.skip("no loop devices: the result is checked through the kernel's ext4")


def lg(ligero, *args, check=True, env=None):
    p = run_cmd(ligero, "migrate", *args, env=env)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def lgj(ligero, *args, env=None):
    p = lg(ligero, *args, "--output=json", env=env)
    return json.loads(p.stdout)


def one_line_error(p, *words):
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ligero: "), p.stderr
    for w in words:
        assert w in lines[0], p.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("migrate")
    ct = mf.container(d / "ct")
    base_tree = mf.debootstrap_tree("base", d / "base-tree")
    base = mf.cached_base_image(base_tree, d / "base.qcow2")
    conf = d / "101.conf"
    conf.write_text(mf.CTID_CONF)
    return SimpleNamespace(dir=d, ct=ct, base_tree=base_tree, base=base, conf=conf,
                           base_hash=sha256(base))


class Result:
    """The root filesystem of a migrated image: e2fsck-clean, mounted read-only."""

    def __init__(self, image, work):
        self.image = Path(image)
        p = run_cmd("qemu-img", "check", image)
        assert p.returncode == 0, p.stdout + p.stderr
        self.fs = mf.root_partition(image, Path(work) / (self.image.name + ".root"))
        p = run_cmd("e2fsck", "-fn", self.fs)
        assert p.returncode == 0, p.stdout + p.stderr
        self._m = mf.mounted(self.fs)
        self.root = self._m.__enter__()
        self._manifests = {}

    def close(self):
        if self._m:
            self._m.__exit__(None, None, None)
            self.fs.unlink()
            self._m = None

    def __truediv__(self, rel):
        return self.root / rel.lstrip("/")

    def manifest(self, sub="", skip=()):
        """Computed once per (sub, skip): the filesystem is mounted read-only."""
        key = (sub, tuple(skip))
        if key not in self._manifests:
            self._manifests[key] = mf.manifest(self / sub, skip)
        return self._manifests[key]


@pytest.fixture
def results(tmp_path):
    opened = []

    def open_(image):
        r = Result(image, tmp_path)
        opened.append(r)
        return r
    yield open_
    for r in opened:
        r.close()


@pytest.fixture(scope="module")
def dir_run(world, ligero):
    """The directory source, migrated once; other sources are compared with it."""
    vm = world.dir / "dir.qcow2"
    report = lgj(ligero, world.ct, "--base", world.base, "-o", vm, "--config", world.conf,
                 "--gateway", "192.0.2.1")
    return SimpleNamespace(vm=vm, report=report)


@pytest.fixture(scope="module")
def dir_result(world, dir_run):
    """dir_run's result, opened once for the tests that read it or compare with it."""
    r = Result(dir_run.vm, world.dir)
    yield r
    r.close()


def same_result(a, b, changes):
    """Two migrations of the same container: the same trees, but for the state file (which
    names the source) and the times of what ligero wrote (now)."""
    written = {c["path"] for c in changes} | {c["backup"] for c in changes if c.get("backup")}
    out = []
    for files, links in (a, b):
        files = {k: {x: y for x, y in v.items() if k not in written or x != "mtime"}
                 for k, v in files.items() if k != "/var/lib/ligero-migrate/state.json"}
        out.append((files, links))
    assert out[0] == out[1]


# ---- a directory (simfs private area) -------------------------------------------------------

def test_directory_source(world, dir_run, dir_result, ligero):
    r = dir_run.report
    assert r["source-kind"] == "directory" and r["os-id"] == "debian" and r["usr-layout"] == "merged"
    assert r["hostname"] == "ct101.example.com" and r["ctid"] == "101"
    assert r["ram"] == 262144 * 4096 and r["disk"] == 11534336 * 1024
    # The base is untouched and the overlay records it.
    assert sha256(world.base) == world.base_hash
    info = json.loads(run_cmd("qemu-img", "info", "--output=json", dir_run.vm).stdout)
    assert info["backing-filename"] == str(world.base.resolve())
    res = dir_result
    # The container's data, exactly (the kernel's view of both trees).
    assert res.manifest("srv/data") == mf.manifest(world.ct / "srv/data")
    # What belongs to the VM is the base's.
    base = world.base_tree
    for p in (f"usr/lib/modules/{KVER}/kernel/drivers/net/virtio_net.ko",
              f"usr/lib/modules/{KVER}/modules.dep", f"boot/vmlinuz-{KVER}",
              f"boot/initrd.img-{KVER}", "etc/fstab", "usr/lib/udev/rules.d/99-base.rules"):
        assert (res / p).read_bytes() == (base / p).read_bytes(), p
    assert not (res / "usr/lib/modules/2.6.32-042stab").exists()
    assert not (res / "boot/not-a-kernel").exists()
    assert not (res / "opt/only-in-base").exists()  # --delete
    assert (res / "etc/hostname").read_text() == "ct101.example.com\n"
    # dpkg knows the kernel (and kmod, which it depends on and the container lacked).
    q = run_cmd("dpkg-query", f"--admindir={res / 'var/lib/dpkg'}", "-W",
                "-f=${Package} ${Status}\\n")
    assert q.returncode == 0, q.stderr
    status = dict(line.split(" ", 1) for line in q.stdout.splitlines())
    assert status[f"linux-image-{KVER}"] == "install ok installed"
    assert status["kmod"] == "install ok installed"
    assert status["ifupdown"] == "install ok installed"
    assert set(r["kernel-packages"]) >= {f"linux-image-{KVER}", "kmod"}
    lst = (res / f"var/lib/dpkg/info/linux-image-{KVER}.list").read_text()
    assert f"/boot/vmlinuz-{KVER}" in lst
    assert (res / "usr/bin/kmod").exists()
    assert q.stdout.count("\n") == len(status)


def test_directory_network(world, dir_run, dir_result):
    r = dir_run.report
    mac = r["mac"]
    assert mac.startswith("52:54:00:") and r["network"] == "ifupdown"
    assert r["addresses"] == ["192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/64"]
    assert r["gateways"] == ["192.0.2.1"] and r["dns"] == ["192.0.2.53", "2001:db8::53"]
    assert any(mac in n for n in r["notes"])
    res = dir_result
    ifs = (res / "etc/network/interfaces").read_text()
    assert "venet" not in ifs
    assert "auto lo\niface lo inet loopback" in ifs
    assert ("auto eth0\niface eth0 inet static\n\taddress 192.0.2.10/32\n\tgateway 192.0.2.1\n"
            "\tup ip addr add 192.0.2.11/32 dev eth0\n") in ifs
    assert "iface eth0 inet6 static\n\taddress 2001:db8::10/64\n" in ifs
    link = (res / "etc/systemd/network/10-ligero-eth0.link").read_text()
    assert f"MACAddress={mac}" in link and "Name=eth0" in link
    backup = res / "var/lib/ligero-migrate/orig/etc/network/interfaces.ligero-orig"
    assert backup.read_text() == mf.VZ_INTERFACES
    orig = os.lstat(world.ct / "etc/network/interfaces")
    assert os.lstat(backup).st_mtime_ns == orig.st_mtime_ns
    changes = {c["path"]: c for c in r["changes"]}
    ch = changes["/etc/network/interfaces"]
    assert ch["action"] == "modified" and "venet" in ch["why"]
    assert ch["backup"] == "/var/lib/ligero-migrate/orig/etc/network/interfaces.ligero-orig"


def test_directory_leftovers(world, dir_run, dir_result):
    changes = {c["path"]: c for c in dir_run.report["changes"]}
    res = dir_result
    sysd = res / "etc/systemd/system"
    assert not (res / "etc/init.d/vzquota").exists()
    assert not os.path.lexists(res / "etc/rc2.d/S10vzquota")
    assert not (sysd / "vzfifo.service").exists()
    assert not os.path.lexists(sysd / "multi-user.target.wants/vzfifo.service")
    assert os.readlink(res / "etc/mtab") == "../proc/self/mounts"
    for unit in ("getty@.service", "serial-getty@.service", "systemd-udevd.service"):
        assert not os.path.lexists(sysd / unit), unit
        assert changes[f"/etc/systemd/system/{unit}"]["action"] == "removed"
    assert os.readlink(sysd / "getty.target.wants/serial-getty@ttyS0.service") == \
        "/lib/systemd/system/serial-getty@.service"
    assert os.readlink(sysd / "getty.target.wants/getty@tty1.service") == \
        "/lib/systemd/system/getty@.service"
    sysctl = (res / "etc/sysctl.conf").read_text()
    assert "\nkernel.sysrq = 1\n" in sysctl and "#net.ipv4.ip_forward=1" in sysctl
    # Every change has a reason; every change to something that was there, a backup of it.
    for c in dir_run.report["changes"]:
        assert c["why"], c
        if c["action"] in ("modified", "removed"):
            b = res / c["backup"].lstrip("/")
            assert os.path.lexists(b), c
    quota = res / "var/lib/ligero-migrate/orig/etc/init.d/vzquota.ligero-orig"
    assert quota.read_text() == (world.ct / "etc/init.d/vzquota").read_text()
    state = json.loads((res / "var/lib/ligero-migrate/state.json").read_text())
    assert state["complete"] is True and state["mac"] == dir_run.report["mac"]


def test_text_report(world, ligero, tmp_path):
    vm = tmp_path / "t.qcow2"
    p = lg(ligero, "--config", world.conf, world.ct, "-o", vm, "--base", world.base)
    out = p.stdout
    assert "migration: " in out and "copy: " in out and "changes:" in out
    assert "modified /etc/network/interfaces: venet0" in out
    assert "(backup: /var/lib/ligero-migrate/orig/etc/network/interfaces.ligero-orig)" in out
    assert "note: give the VM the MAC address 52:54:00:" in out
    assert p.stderr == ""
    # -p: a progress bar on stderr, up to 100%; the report on stdout all the same.
    p = lg(ligero, "--resync", world.ct, vm, "-p")
    assert "(100.00/100%)" in p.stderr and "copy: " in p.stdout


# ---- the other sources give the same result --------------------------------------------------

def test_tar_source(world, dir_run, dir_result, results, ligero, tmp_path):
    tarball = tmp_path / "ct.tar.gz"
    run_cmd("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse",
            "--format=posix", "-I", "gzip -1", "-C", world.ct, "-cf", tarball, ".", check=True)
    vm = tmp_path / "tar.qcow2"
    r = lgj(ligero, tarball, "--base", world.base, "-o", vm, "--config", world.conf,
            "--gateway", "192.0.2.1")
    assert r["source-kind"] == "tar"
    assert r["changes"] == dir_run.report["changes"]
    assert r["copy"] == dir_run.report["copy"] | {"linked": r["copy"]["linked"]}
    a, b = results(vm), dir_result
    same_result(a.manifest(), b.manifest(), r["changes"])
    acl = run_cmd("getfacl", "-n", "--omit-header", a / "srv/data/f06").stdout
    assert "user:1000:rwx" in acl and "group:1000:r-x" in acl
    assert "default:user:1000:rwx" in run_cmd("getfacl", "-n", a / "srv/data/sub").stdout


def test_image_source(world, results, ligero, tmp_path):
    """A disk image holding the container's root (ploop's content, until the ploop driver)."""
    img = tmp_path / "ct.qcow2"
    raw = tmp_path / "ct.raw"
    run_cmd("mkfs.ext4", "-q", "-F", "-d", world.ct, raw, "1G", check=True)
    run_cmd("qemu-img", "convert", "-O", "qcow2", raw, img, check=True)
    raw.unlink()
    vm = tmp_path / "img.qcow2"
    r = lgj(ligero, img, "--base", world.base, "-o", vm)
    assert r["source-kind"] == "image" and r["addresses"] == [
        "192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/64"]
    src = mf.root_partition(img, tmp_path / "src.fs")
    res = results(vm)
    with mf.mounted(src) as s:
        assert res.manifest("srv/data") == mf.manifest(s / "srv/data")
        assert res.manifest("etc/apt") == mf.manifest(s / "etc/apt")
        assert res.manifest("usr/share/doc/bash") == mf.manifest(s / "usr/share/doc/bash")
    assert "venet" not in (res / "etc/network/interfaces").read_text()


def gpt_disk(fs, out):
    """A GPT disk holding the filesystem image fs as partition 1, as ploop lays its disks out."""
    size = os.path.getsize(fs)
    run_cmd("truncate", "-s", str(size + (2 << 20)), out, check=True)
    run_cmd("sgdisk", "-n", f"1:2048:+{size // 1024}K", "-t", "1:8300", out, check=True)
    with open(fs, "rb") as src, open(out, "r+b") as dst:
        dst.seek(2048 * 512)
        shutil.copyfileobj(src, dst, 4 << 20)
    return out


PLOOP_VERSION = "1"  # bump when ploop_source changes what it makes


def ploop_source(world, out):
    """The ploop area of test_ploop_source in out/private/101/root.hdd and the filesystem its
    top holds in out/fs2. Made from the container once per cached container tree (two
    mkfs.ext4 -d and two parallels images take most of the test) and kept in the cache; each
    caller gets its own copy."""
    import ploop_fixtures as pf
    cache = mf.cache_dir()
    cached = cache / f"ploop-{mf.tree_key('container')}-{mf.VERSION}-{PLOOP_VERSION}"
    with mf.locked(cache / "ploop.lock"):
        if not cached.exists():
            work = Path(tempfile.mkdtemp(dir=cache))
            try:
                ct2 = copy_tree(world.ct, work / "ct2")
                (ct2 / "srv/data/f07").write_bytes(b"changed after the snapshot\n")
                fs1, fs2 = work / "fs1", work / "out/fs2"
                fs2.parent.mkdir()
                for tree, fs in ((world.ct, fs1), (ct2, fs2)):
                    run_cmd("mkfs.ext4", "-q", "-F", "-b", "4096", "-U",
                            "2d5fa2a6-45c7-4e8e-9d3c-6a3f5b0b9a11", "-E",
                            "hash_seed=3e9e7d25-7bb4-4a1c-8a3a-0f1d2e3c4b5a", "-d", tree, fs,
                            "400M", check=True)
                d1, d2 = gpt_disk(fs1, work / "d1.raw"), gpt_disk(fs2, work / "d2.raw")
                hdd = work / "out/private/101/root.hdd"
                hdd.mkdir(parents=True)
                base_guid, top = pf.guid(), pf.TOP_GUID
                pf.parallels_from_raw(d1, hdd / "root.hds")
                pf.delta_between(d1, d2, hdd / f"root.hds.{top}")
                pf.descriptor(hdd, [(base_guid, "root.hds", "Compressed"),
                                    (top, f"root.hds.{top}", "Compressed")],
                              os.path.getsize(d1) // 512)
                os.rename(work / "out", cached)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    run_cmd("cp", "-a", "--reflink=auto", "--sparse=always", cached, out, check=True)
    return out / "private/101/root.hdd", out / "fs2"


def test_ploop_source(world, results, ligero, tmp_path):
    """OpenVZ 7's layout: /vz/private/CTID/root.hdd/ with DiskDescriptor.xml and a snapshot
    chain (a base image and a top delta, parallels images made by qemu-img) holding a GPT
    disk; the top's content (the container with srv/data/f07 changed) is what gets
    migrated."""
    hdd, fs2 = ploop_source(world, tmp_path / "src")
    conf = tmp_path / "ve.conf"
    conf.write_text(mf.CTID_CONF.replace('VE_LAYOUT="simfs"', 'VE_LAYOUT="ploop"'))
    vm = tmp_path / "ploop.qcow2"
    before = {p.name: sha256(p) for p in hdd.iterdir()}
    r = lgj(ligero, hdd.parent, "--base", world.base, "-o", vm, "--config", conf)
    assert r["source-kind"] == "image" and r["ve-layout"] == "ploop"
    assert {p.name: sha256(p) for p in hdd.iterdir()} == before  # the source is not written
    res = results(vm)
    with mf.mounted(fs2) as s:
        assert res.manifest("srv/data") == mf.manifest(s / "srv/data")
    assert (res / "srv/data/f07").read_bytes() == b"changed after the snapshot\n"
    assert "venet" not in (res / "etc/network/interfaces").read_text()
    # root.hdd itself (the directory holding DiskDescriptor.xml) names the same source.
    r2 = lgj(ligero, hdd, "--base", world.base, "-o", tmp_path / "dry.qcow2", "--config", conf,
             "--dry-run")
    assert r2["source-kind"] == "image" and r2["dry-run"] is True
    for key in ("entries", "created", "updated", "deleted", "kept", "linked"):
        assert r2["copy"][key] == r["copy"][key], key
    assert not (tmp_path / "dry.qcow2").exists()


@pytest.fixture
def sshd(tmp_path):
    """An sshd of our own on 127.0.0.1, a free port, a key made here; stopped by pid."""
    need("sshd", "ssh", "ssh-keygen")
    d = tmp_path / "sshd"
    d.mkdir()
    run_cmd("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "hostkey", check=True)
    run_cmd("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "id", check=True)
    shutil.copy(d / "id.pub", d / "authorized_keys")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                         stderr=open(d / "log", "w"))
    deadline = time.monotonic() + 120  # a hang guard
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            break
        except OSError:
            assert p.poll() is None, (d / "log").read_text()
            assert time.monotonic() < deadline, "sshd never listened"
            time.sleep(0.05)
    rsh = (f"ssh -i {d}/id -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no "
           "-o BatchMode=yes -o LogLevel=ERROR")
    yield SimpleNamespace(port=port, rsh=rsh)
    p.terminate()
    p.wait(timeout=60)


def test_ssh_source(world, dir_run, dir_result, results, ligero, sshd, tmp_path):
    """The server's own tar, over the system's ssh: the same result as the directory."""
    vm = tmp_path / "ssh.qcow2"
    url = f"ssh://root@127.0.0.1:{sshd.port}{world.ct}"
    r = lgj(ligero, "--from", url, "-e", sshd.rsh, "--base", world.base, "-o", vm,
            "--config", world.conf, "--gateway", "192.0.2.1")
    assert r["source-kind"] == "ssh"
    assert r["changes"] == dir_run.report["changes"]
    a, b = results(vm), dir_result
    same_result(a.manifest(), b.manifest(), r["changes"])
    # An unreachable server: one line.
    p = lg(ligero, f"ssh://root@127.0.0.1:1{world.ct}", "-e", sshd.rsh, "--base", world.base,
           "-o", tmp_path / "no.qcow2", check=False)
    one_line_error(p, "ssh://root@127.0.0.1:1")
    assert not (tmp_path / "no.qcow2").exists()


# ---- re-sync ---------------------------------------------------------------------------------

def copy_tree(src, dst):
    run_cmd("cp", "-a", src, dst, check=True)
    return Path(dst)


def test_resync(world, results, ligero, tmp_path):
    ct = copy_tree(world.ct, tmp_path / "ct")
    vm = tmp_path / "vm.qcow2"
    first = lgj(ligero, ct, "--base", world.base, "-o", vm, "--config", world.conf)
    # Nothing changed: nothing copied, ligero's changes kept.
    again = lgj(ligero, "--resync", ct, vm, "--config", world.conf)
    k = again["copy"]
    assert (k["created"], k["updated"], k["attrs"], k["deleted"], k["linked"], k["bytes"]) == \
        (0, 0, 0, 0, 0, 0), k
    assert k["entries"] == first["copy"]["entries"] and again["changes"] == []
    assert again["mac"] == first["mac"]
    # Change, add, delete, chmod in the container.
    d = ct / "srv/data"
    (d / "f10").write_bytes(b"changed content")
    (d / "added").write_bytes(b"new file")
    (d / "f11").unlink()
    os.chmod(d / "f12", 0o600)
    r = lgj(ligero, "--resync", ct, vm)
    k = r["copy"]
    assert (k["created"], k["updated"], k["attrs"], k["deleted"]) == (1, 1, 1, 1), k
    assert k["bytes"] == len(b"changed content") + len(b"new file")
    assert r["changes"] == []
    res = results(vm)
    assert res.manifest("srv/data") == mf.manifest(d)
    assert "venet" not in (res / "etc/network/interfaces").read_text()
    assert (res / "etc/systemd/network/10-ligero-eth0.link").exists()
    res.close()
    # The container's own change to a file ligero changed: its new version, changed again.
    ifs = ct / "etc/network/interfaces"
    ifs.write_text(ifs.read_text() + "auto venet0:2\niface venet0:2 inet static\n"
                   "\taddress 192.0.2.12\n\tnetmask 255.255.255.255\n")
    r = lgj(ligero, "--resync", ct, vm)
    assert [c["path"] for c in r["changes"]] == ["/etc/network/interfaces"]
    assert "192.0.2.12/32" in r["addresses"]
    res = results(vm)
    assert "192.0.2.12/32" in (res / "etc/network/interfaces").read_text()
    assert "venet" not in (res / "etc/network/interfaces").read_text()
    b = res / "var/lib/ligero-migrate/orig/etc/network/interfaces.ligero-orig"
    assert b.read_text() == ifs.read_text()
    assert sha256(world.base) == world.base_hash


def test_checksum(world, results, ligero, tmp_path):
    ct = copy_tree(world.ct, tmp_path / "ct")
    vm = tmp_path / "vm.qcow2"
    lg(ligero, ct, "--base", world.base, "-o", vm)
    f = ct / "srv/data/f13"
    st = os.stat(f)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xff  # same size
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same time
    k = lgj(ligero, "--resync", ct, vm)["copy"]
    assert k["updated"] == 0  # the quick check cannot see it, as rsync's cannot
    k = lgj(ligero, "--resync", "--checksum", ct, vm)["copy"]
    assert k["updated"] == 1 and k["created"] == 0, k
    res = results(vm)
    assert (res / "srv/data/f13").read_bytes() == bytes(data)
    assert os.stat(res / "srv/data/f13").st_mtime_ns == st.st_mtime_ns


# ---- a dry run -------------------------------------------------------------------------------

def test_dry_run(world, dir_run, ligero, tmp_path):
    vm = tmp_path / "dry.qcow2"
    r = lgj(ligero, world.ct, "--base", world.base, "-o", vm, "--config", world.conf,
            "--gateway", "192.0.2.1", "--dry-run")
    assert not vm.exists()
    assert r["dry-run"] is True
    want = dir_run.report
    assert [(c["path"], c["action"]) for c in r["changes"]] == \
        [(c["path"], c["action"]) for c in want["changes"]]
    for key in ("entries", "created", "updated", "deleted", "kept", "linked"):
        assert r["copy"][key] == want["copy"][key], key
    assert r["mac"] == want["mac"] and r["addresses"] == want["addresses"]
    assert sha256(world.base) == world.base_hash


# ---- bad input -------------------------------------------------------------------------------

def synth_base(d, os_release, merged=True, size="64M"):
    """A small installed-looking system (os-release, a kernel, modules, udev, fstab)."""
    t = Path(d)
    for p in ("etc", "usr/lib", "usr/bin", "usr/sbin", "boot", "etc/udev", "var/lib/dpkg",
              "etc/default"):
        (t / p).mkdir(parents=True, exist_ok=True)
    (t / "usr/lib/os-release").write_text(os_release)
    os.symlink("../usr/lib/os-release", t / "etc/os-release")
    libdir = t / ("usr/lib" if merged else "lib")
    if merged:
        for n in ("lib", "bin", "sbin"):
            os.symlink(f"usr/{n}", t / n)
    else:
        for n in ("lib", "bin", "sbin"):
            (t / n).mkdir(exist_ok=True)
    (libdir / f"modules/{KVER}/kernel").mkdir(parents=True)
    (libdir / f"modules/{KVER}/kernel/virtio_net.ko").write_bytes(b"module")
    (libdir / "udev/rules.d").mkdir(parents=True)
    (libdir / "udev/rules.d/99-vm.rules").write_text("vm\n")
    (libdir / "firmware").mkdir()
    (libdir / "firmware/fw.bin").write_bytes(b"fw")
    (t / f"boot/vmlinuz-{KVER}").write_bytes(b"kernel")
    (t / "etc/fstab").write_text("UUID=x / ext4 defaults 0 1\n")
    (t / "etc/udev/udev.conf").write_text("udev_log=info\n")
    (t / "etc/default/grub").write_text("GRUB_TIMEOUT=5\n")
    img = t.parent / (t.name + ".qcow2")
    raw = t.parent / (t.name + ".raw")
    run_cmd("mkfs.ext4", "-q", "-F", "-d", t, raw, size, check=True)
    run_cmd("qemu-img", "convert", "-O", "qcow2", raw, img, check=True)
    raw.unlink()
    return img


DEBIAN12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
ALMA8 = ('NAME="AlmaLinux"\nVERSION="8.9 (Midnight Oncilla)"\nID="almalinux"\n'
         'ID_LIKE="rhel centos fedora"\nVERSION_ID="8.9"\n'
         'PRETTY_NAME="AlmaLinux 8.9 (Midnight Oncilla)"\n')


def synth_container(d, os_release=DEBIAN12, merged=True):
    t = Path(d)
    for p in ("etc/network", "usr/lib", "usr/bin", "usr/sbin", "srv", "boot", "etc/udev",
              "usr/lib/udev/rules.d" if merged else "lib/udev/rules.d"):
        (t / p).mkdir(parents=True, exist_ok=True)
    (t / "usr/lib/os-release").write_text(os_release)
    os.symlink("../usr/lib/os-release", t / "etc/os-release")
    if merged:
        for n in ("lib", "bin", "sbin"):
            os.symlink(f"usr/{n}", t / n)
    else:
        for n in ("bin", "sbin"):
            (t / n).mkdir(exist_ok=True)
    libdir = t / ("usr/lib" if merged else "lib")
    (libdir / "modules").mkdir(exist_ok=True)
    (libdir / "modules/openvz-junk").write_text("junk\n")
    (libdir / "udev/rules.d/10-ct.rules").write_text("container\n")
    (t / "etc/udev/ct.conf").write_text("container\n")
    (t / "etc/fstab").write_text("none /dev/pts devpts rw 0 0\n")
    (t / "srv/file").write_text("data\n")
    (t / "etc/network/interfaces").write_text(mf.VZ_INTERFACES)
    return t


def test_errors(world, ligero, tmp_path):
    vm = tmp_path / "vm.qcow2"
    # Missing base.
    p = lg(ligero, world.ct, "--base", tmp_path / "missing.qcow2", "-o", vm, check=False)
    one_line_error(p, "missing.qcow2")
    assert not vm.exists()
    # A source that is not a container.
    empty = tmp_path / "empty"
    empty.mkdir()
    p = lg(ligero, empty, "--base", world.base, "-o", vm, check=False)
    one_line_error(p, str(empty), "not a container")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(10000))
    p = lg(ligero, junk, "--base", world.base, "-o", vm, check=False)
    one_line_error(p, str(junk))
    # An unknown layout in the configuration.
    conf = tmp_path / "bad.conf"
    conf.write_text(mf.CTID_CONF.replace('VE_LAYOUT="simfs"', 'VE_LAYOUT="zfs"'))
    p = lg(ligero, world.ct, "--config", conf, "--base", world.base, "-o", vm, check=False)
    one_line_error(p, str(conf), "VE_LAYOUT")
    notconf = tmp_path / "not.conf"
    notconf.write_text("hello\nworld\n")
    p = lg(ligero, world.ct, "--config", notconf, "--base", world.base, "-o", vm, check=False)
    one_line_error(p, str(notconf), "not a container configuration")
    # Another release: refused unless --force.
    alma = synth_base(tmp_path / "alma", ALMA8)
    p = lg(ligero, world.ct, "--base", alma, "-o", vm, check=False)
    one_line_error(p, "AlmaLinux 8.9", "Debian GNU/Linux 12", "--force")
    assert not vm.exists()
    # Bad options.
    for args in (["--mac", "01:00:5e:00:00:01"], ["--mac", "zz"], ["--ip", "1.2.3.4/40"],
                 ["--gateway", "nowhere"]):
        p = lg(ligero, world.ct, "--base", world.base, "-o", vm, *args, check=False)
        one_line_error(p)
    assert not vm.exists()
    # The output exists: not overwritten.
    vm.write_bytes(b"precious")
    p = lg(ligero, world.ct, "--base", world.base, "-o", vm, check=False)
    one_line_error(p, str(vm))
    assert vm.read_bytes() == b"precious"
    # A re-sync of something that is not a migration.
    other = tmp_path / "other.qcow2"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-b", world.base, "-F", "qcow2", other,
            check=True)
    p = lg(ligero, "--resync", world.ct, other, check=False)
    one_line_error(p, str(other), "not a ligero migrate result")
    assert sha256(world.base) == world.base_hash


def test_vm_running(world, ligero, tmp_path):
    """The image lock: a re-sync refuses a disk a VM (here qemu-io) holds."""
    need("qemu-io")
    vm = tmp_path / "vm.qcow2"
    lg(ligero, world.ct, "--base", world.base, "-o", vm)
    before = sha256(vm)
    holder = subprocess.Popen(["qemu-io", "-f", "qcow2", str(vm)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # qemu-io answers a command only once the image is open and locked; polling with
        # qemu-img info instead races with qemu-io's own open (either one can lose the lock).
        holder.stdin.write(b"info\n")
        holder.stdin.flush()
        while True:
            line = holder.stdout.readline()
            assert line, "qemu-io ended: " + holder.stderr.read().decode()
            if b"cluster size" in line:
                break
        assert run_cmd("qemu-img", "info", vm).returncode != 0  # the oracle: QEMU sees the lock
        p = lg(ligero, "--resync", world.ct, vm, check=False)
        one_line_error(p, str(vm), "in use")
    finally:
        holder.communicate(b"quit\n", timeout=120)
    assert sha256(vm) == before


def test_full_target(ligero, tmp_path):
    """A container bigger than the base's filesystem: one line, and a consistent overlay."""
    base = synth_base(tmp_path / "b", DEBIAN12, size="32M")
    ct = synth_container(tmp_path / "ct")
    with open(ct / "srv/huge", "wb") as f:
        f.write(os.urandom(48 << 20))
    vm = tmp_path / "vm.qcow2"
    p = lg(ligero, ct, "--base", base, "-o", vm, check=False)
    one_line_error(p, "full", "/srv/huge")
    assert run_cmd("qemu-img", "check", vm).returncode == 0
    fs = mf.root_partition(vm, tmp_path / "vm.fs")
    p = run_cmd("e2fsck", "-fn", fs)
    assert p.returncode == 0, p.stdout


# ---- interrupted runs ------------------------------------------------------------------------

def test_interrupted_and_resumed(world, dir_run, dir_result, results, ligero, tmp_path):
    vm = tmp_path / "vm.qcow2"
    args = [world.ct, "--base", world.base, "-o", vm, "--config", world.conf, "--gateway",
            "192.0.2.1"]
    # Stopped (as by Ctrl-C) part-way: a clean filesystem, an unfinished state.
    env = dict(os.environ, LIGERO_MIGRATE_STOP_AFTER="3000")
    p = lg(ligero, *args, env=env, check=False)
    one_line_error(p, "interrupted")
    fs = mf.root_partition(vm, tmp_path / "a.fs")
    assert run_cmd("e2fsck", "-fn", fs).returncode == 0
    with mf.mounted(fs) as m:
        assert json.loads((m / "var/lib/ligero-migrate/state.json").read_text())[
            "complete"] is False
    # Killed outright: the qcow2 image stays consistent.
    env = dict(os.environ, LIGERO_MIGRATE_KILL_AFTER="2000")
    p = lg(ligero, *args, env=env, check=False)
    assert p.returncode == -signal.SIGKILL, p.stderr
    # qemu-img check: consistent; leaked clusters (exit 3) are allowed, corruption (2) not.
    check = run_cmd("qemu-img", "check", vm)
    assert check.returncode in (0, 3) and "ERROR" not in check.stderr, check.stderr
    # The same command again finishes the job: the same result as an uninterrupted run.
    r = lgj(ligero, *args)
    assert r["resumed"] is True and any("killed" in n for n in r["notes"])
    assert r["changes"] == dir_run.report["changes"]
    assert "ligero-migrate" not in run_cmd("qemu-img", "snapshot", "-l", vm).stdout
    a, b = results(vm), dir_result
    same_result(a.manifest(), b.manifest(), r["changes"])
    # Finished: running it again is refused (a re-sync is the way).
    p = lg(ligero, *args, check=False)
    one_line_error(p, "--resync")


# ---- the rules hold for both /usr layouts ----------------------------------------------------

@pytest.mark.parametrize("merged", [True, False], ids=["merged", "split"])
def test_layout_rules(ligero, results, tmp_path, merged):
    base = synth_base(tmp_path / "b", DEBIAN12, merged=merged)
    ct = synth_container(tmp_path / "ct", merged=merged)
    vm = tmp_path / "vm.qcow2"
    r = lgj(ligero, ct, "--base", base, "-o", vm)
    assert r["usr-layout"] == ("merged" if merged else "split")
    res = results(vm)
    lib = res / ("usr/lib" if merged else "lib")
    # The VM's modules, firmware and udev rules survive the container's --delete...
    assert (lib / f"modules/{KVER}/kernel/virtio_net.ko").read_bytes() == b"module"
    assert (lib / "firmware/fw.bin").read_bytes() == b"fw"
    assert (lib / "udev/rules.d/99-vm.rules").read_text() == "vm\n"
    assert (res / "etc/fstab").read_text() == "UUID=x / ext4 defaults 0 1\n"
    assert (res / "etc/udev/udev.conf").exists() and not (res / "etc/udev/ct.conf").exists()
    assert (res / "etc/default/grub").read_text() == "GRUB_TIMEOUT=5\n"
    assert (res / f"boot/vmlinuz-{KVER}").read_bytes() == b"kernel"
    # ...and the container's stand-ins are not copied over them.
    assert not (lib / "modules/openvz-junk").exists()
    assert not (lib / "udev/rules.d/10-ct.rules").exists()
    assert (res / "srv/file").read_text() == "data\n"
    if merged:
        # rsync with the recipe's excludes on the same trees deletes what the VM needs.
        need("rsync")
        target = tmp_path / "rsync-target"
        with mf.mounted(mf.root_partition(base, tmp_path / "base.fs")) as m:
            run_cmd("cp", "-a", f"{m}/.", target, check=True)
        run_cmd("rsync", "--exclude=/etc/fstab", "--exclude=/boot", "--exclude=/proc",
                "--exclude=/lib/modules/", "--exclude=/etc/udev", "--exclude=/lib/udev",
                "--exclude=/sys", "--delete", "--numeric-ids", "-apogtStlH", f"{ct}/",
                f"{target}/", check=True)
        assert not (target / f"usr/lib/modules/{KVER}").exists()
        assert not (target / "usr/lib/udev/rules.d/99-vm.rules").exists()


def test_layout_mismatch(ligero, tmp_path):
    base = synth_base(tmp_path / "b", DEBIAN12, merged=False)
    ct = synth_container(tmp_path / "ct", merged=True)
    vm = tmp_path / "vm.qcow2"
    p = lg(ligero, ct, "--base", base, "-o", vm, check=False)
    one_line_error(p, "split", "merged")
    assert not vm.exists()


# ---- a RHEL container; systemd-networkd -------------------------------------------------------

IFCFG_VENET0 = ('DEVICE=venet0\nBOOTPROTO=static\nONBOOT=yes\nARPCHECK="no"\nIPADDR=127.0.0.1\n'
                'NETMASK=255.255.255.255\nBROADCAST=0.0.0.0\nARPCHECK="no"\nIPV6INIT="yes"\n'
                'IPV6ADDR_SECONDARIES="2001:db8::20/128 "\n')
IFCFG_VENET0_0 = 'DEVICE=venet0:0\nONBOOT=yes\nARPCHECK="no"\nIPADDR=192.0.2.20\n' \
                 'NETMASK=255.255.255.255\n'
SYSCONFIG_NETWORK = ('NETWORKING="yes"\nHOSTNAME="alma.example.com"\nGATEWAYDEV="venet0"\n'
                     'NETWORKING_IPV6="yes"\nIPV6_DEFAULTDEV="venet0"\n')


def rhel_container(d):
    t = synth_container(d, ALMA8)
    (t / "etc/network/interfaces").unlink()
    (t / "etc/network").rmdir()
    (t / "etc/redhat-release").write_text("AlmaLinux release 8.9 (Midnight Oncilla)\n")
    nsd = t / "etc/sysconfig/network-scripts"
    nsd.mkdir(parents=True)
    (nsd / "ifcfg-venet0").write_text(IFCFG_VENET0)
    (nsd / "ifcfg-venet0:0").write_text(IFCFG_VENET0_0)
    (nsd / "ifcfg-lo").write_text("DEVICE=lo\nIPADDR=127.0.0.1\n")
    (t / "etc/sysconfig/network").write_text(SYSCONFIG_NETWORK)
    (t / "etc/selinux").mkdir()
    (t / "etc/selinux/config").write_text("SELINUX=enforcing\nSELINUXTYPE=targeted\n")
    (t / "var/lib/rpm").mkdir(parents=True)
    (t / "usr/lib/systemd/system").mkdir(parents=True)
    (t / "usr/lib/systemd/systemd").write_bytes(b"systemd")
    (t / "usr/lib/systemd/system/serial-getty@.service").write_text("[Unit]\n")
    (t / "etc/resolv.conf").write_text("nameserver 192.0.2.53\n")
    return t


@pytest.mark.parametrize("gateway", [None, "192.0.2.1"], ids=["device-route", "gateway"])
def test_rhel_network(ligero, results, tmp_path, gateway):
    base = synth_base(tmp_path / "b", ALMA8)
    ct = rhel_container(tmp_path / "ct")
    vm = tmp_path / "vm.qcow2"
    r = lgj(ligero, ct, "--base", base, "-o", vm, "--mac", "52:54:00:aa:bb:cc",
            *(["--gateway", gateway] if gateway else []))
    assert r["network"] == "ifcfg" and r["packages"] == "rpm"
    assert r["addresses"] == ["192.0.2.20/32", "2001:db8::20/128"]
    res = results(vm)
    nsd = res / "etc/sysconfig/network-scripts"
    # No IPv6 gateway either way: IPv6's default route goes through the device.
    assert sorted(os.listdir(nsd)) == ["ifcfg-eth0", "ifcfg-lo"] + \
        ([] if gateway else ["route-eth0"]) + ["route6-eth0"]
    eth0 = (nsd / "ifcfg-eth0").read_text()
    for line in ("DEVICE=eth0", "HWADDR=52:54:00:aa:bb:cc", "IPADDR0=192.0.2.20", "PREFIX0=32",
                 "IPV6ADDR=2001:db8::20/128", "DNS1=192.0.2.53", "ONBOOT=yes"):
        assert line + "\n" in eth0, line
    assert ("GATEWAY=192.0.2.1\n" in eth0) == bool(gateway)
    if not gateway:
        assert (nsd / "route-eth0").read_text() == "default dev eth0\n"
    net = (res / "etc/sysconfig/network").read_text()
    assert "venet" not in net and 'HOSTNAME="alma.example.com"' in net
    orig = res / "var/lib/ligero-migrate/orig/etc/sysconfig/network-scripts"
    assert (orig / "ifcfg-venet0.ligero-orig").read_text() == IFCFG_VENET0
    assert (orig / "ifcfg-venet0:0.ligero-orig").read_text() == IFCFG_VENET0_0
    assert (res / ".autorelabel").exists()
    unit = res / "etc/systemd/system/ligero-kernel-package.service"
    assert "install" in unit.read_text() and "kernel" in unit.read_text()
    assert os.readlink(res / "etc/systemd/system/multi-user.target.wants/"
                       "ligero-kernel-package.service") == \
        "/etc/systemd/system/ligero-kernel-package.service"
    assert any("ligero-kernel-package.service" in n for n in r["notes"])
    assert os.readlink(res / "etc/systemd/system/getty.target.wants/"
                       "serial-getty@ttyS0.service") == \
        "/usr/lib/systemd/system/serial-getty@.service"
    # The VM's own: modules, udev rules.
    assert (res / f"usr/lib/modules/{KVER}/kernel/virtio_net.ko").exists()


def test_networkd(ligero, results, tmp_path):
    base = synth_base(tmp_path / "b", DEBIAN12)
    ct = synth_container(tmp_path / "ct")
    (ct / "etc/network/interfaces").unlink()
    nd = ct / "etc/systemd/network"
    nd.mkdir(parents=True)
    (nd / "venet0.network").write_text("[Match]\nName=venet0\n\n[Network]\n"
                                       "Address=192.0.2.30/32\nAddress=2001:db8::30/128\n")
    vm = tmp_path / "vm.qcow2"
    r = lgj(ligero, ct, "--base", base, "-o", vm, "--gateway", "192.0.2.1")
    assert r["network"] == "networkd"
    res = results(vm)
    assert sorted(os.listdir(res / "etc/systemd/network")) == ["10-ligero-eth0.network"]
    text = (res / "etc/systemd/network/10-ligero-eth0.network").read_text()
    assert f"MACAddress={r['mac']}" in text and "Address=192.0.2.30/32" in text
    assert "Gateway=192.0.2.1" in text and "Destination=::/0" in text
