"""Shared helpers for the `ligero fs` system tests: the ligero binary, a generated source tree and
its manifest (the independent oracle), and disk images built from it with mkfs.ext4 -d, sfdisk,
sgdisk and qemu-img (never with ligero)."""
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIGERO = os.environ.get("LIGERO", str(REPO / "build" / "ligero"))
MiB = 1 << 20


def run(*args, input=None, check=True, env=None):
    """Run a command; returns CompletedProcess with bytes stdout/stderr."""
    p = subprocess.run([str(a) for a in args], input=input, capture_output=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p


def lg(*args, input=None, check=True, env=None):
    """Run `ligero fs ARGS...`."""
    return run(LIGERO, "fs", *args, input=input, check=check, env=env)


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            pytest.skip(f"{t} is not installed (apt-get install the package that has it)")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- the source tree -------------------------------------------------------------------------

ODD_NAMES = ["with space", "ñandú-ü", "-dash", "semi;colon", "dollar$name", "back\\slash",
             "quote'\"", "x" * 255, ".hidden"]


def make_tree(root, seed=6, big=3 * MiB):
    """A tree with every kind of content the copy verbs must preserve. Returns root."""
    rnd = random.Random(seed)
    root = Path(root)
    root.mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n')
    deep = root / "a/b/c/d/e"
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_bytes(b"deep\n")
    (root / "empty").write_bytes(b"")
    (root / "one").write_bytes(b"1")
    (root / "big.bin").write_bytes(rnd.randbytes(big))
    (root / "block-edge.bin").write_bytes(rnd.randbytes(4096 * 3 + 1))
    files = root / "files"
    files.mkdir()
    for i in range(40):
        (files / f"f{i:02d}").write_bytes(rnd.randbytes(rnd.randrange(0, 20000)))
    for n in ODD_NAMES:
        (root / "odd").mkdir(exist_ok=True)
        (root / "odd" / n).write_bytes(n.encode() + b"\n")
    # Sparse: holes at the start, middle and end.
    with open(root / "sparse", "wb") as f:
        f.seek(5 * MiB)
        f.write(b"middle" * 1000)
        f.seek(9 * MiB)
        f.write(b"tail")
        f.truncate(12 * MiB)
    # Hard links (one across directories), symlinks (relative, absolute, dangling, to a dir).
    os.link(root / "one", root / "a/one-link")
    os.link(root / "one", root / "files/one-link2")
    os.symlink("../etc/os-release", root / "a/rel-link")
    os.symlink("/etc/os-release", root / "abs-link")
    os.symlink("does/not/exist", root / "dangling")
    os.symlink("a/b", root / "dir-link")
    os.symlink("t" * 200, root / "long-link")  # too long for a fast symlink
    # Modes and owners.
    os.chmod(root / "files/f00", 0o600)
    os.chmod(root / "files/f01", 0o4755)
    os.chmod(root / "files/f02", 0o2711)
    os.chmod(root / "a/b", 0o1777)
    os.chown(root / "files/f03", 1000, 1000)
    os.chown(root / "files/f04", 12345, 54321)
    os.lchown(root / "abs-link", 7, 8)
    os.chown(root / "a/b/c", 1001, 1002)
    # Extended attributes.
    os.setxattr(root / "files/f05", "user.comment", b"hello xattr")
    os.setxattr(root / "files/f05", "trusted.bin", bytes(range(256)))
    os.setxattr(root / "a", "user.dir", b"on a directory")
    os.setxattr(root / "big.bin", "user.big", rnd.randbytes(2000))
    # Times last (whole seconds: mkfs.ext4 -d keeps seconds only).
    for p in sorted(root.rglob("*"), reverse=True):
        t = 1_600_000_000 + rnd.randrange(10**7)
        os.utime(p, (t, t + 1), follow_symlinks=False)
    return root


def manifest(root, nsec=False):
    """path -> attributes; hard links as groups. The oracle for every comparison."""
    root = Path(root)
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = "/" + str(p.relative_to(root))
            if rel == "/lost+found":
                continue
            st = os.lstat(p)
            e = {"mode": stat.S_IMODE(st.st_mode), "type": stat.S_IFMT(st.st_mode),
                 "uid": st.st_uid, "gid": st.st_gid,
                 "mtime": st.st_mtime_ns if nsec else st.st_mtime_ns // 10**9}
            if stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                e["sha256"] = sha256(p)
                e["sparse"] = st.st_blocks * 512 < st.st_size // 2
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            else:
                e["xattrs"] = {k: os.getxattr(p, k, follow_symlinks=False)
                               for k in sorted(os.listxattr(p, follow_symlinks=False))
                               if not k.startswith("security.")}
            out[rel] = e
    groups = sorted(sorted(g) for g in inodes.values())
    return out, groups


def assert_same_tree(got, want, skip_mtime=()):
    gm, gg = got
    wm, wg = want
    assert sorted(gm) == sorted(wm), (set(gm) ^ set(wm))
    for path in wm:
        g, w = dict(gm[path]), dict(wm[path])
        if path in skip_mtime or stat.S_ISDIR(w["type"]):
            # Directory mtimes change when entries are added; the tests that care check them.
            g.pop("mtime"), w.pop("mtime")
        assert g == w, f"{path}: got {g}, want {w}"
    assert gg == wg


# ---- images ---------------------------------------------------------------------------------

FS_UUID = "5e1f0c2a-6a39-4c57-9f0e-7f8a1b2c3d4e"


def mkfs(path, tree, size_mb, label="root", uuid=FS_UUID, extra=()):
    need("mkfs.ext4")
    run("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", label, "-U", uuid, *extra, "-d", tree,
        path, f"{size_mb}M")
    return path


def place(disk, fsimg, offset):
    """Copy a filesystem image into a disk image at a byte offset (like dd conv=notrunc)."""
    with open(fsimg, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(offset)
        shutil.copyfileobj(src, dst, 4 * MiB)


def make_mbr(path, tree, size_mb=160):
    """MBR: 1 = small ext2 'boot', 2 = extended holding 5 = ext4 root (the tree), 6 = swap."""
    need("sfdisk", "mkswap")
    run("truncate", "-s", f"{size_mb}M", path)
    script = ("label: dos\n"
              "start=2048, size=16MiB, type=83\n"
              "start=34816, type=5\n"
              "size=110MiB, type=83\n"
              "size=8MiB, type=82\n")
    run("sfdisk", "-q", path, input=script.encode())
    parts = sfdisk_parts(path)
    d = Path(path).parent
    boot = d / (Path(path).name + ".p1")
    run("mkfs.ext2", "-q", "-F", "-L", "boot", boot, "16M")
    place(path, boot, parts[1]["start"])
    rootfs = mkfs(d / (Path(path).name + ".p5"), tree, 110)
    place(path, rootfs, parts[5]["start"])
    swap = d / (Path(path).name + ".p6")
    run("truncate", "-s", "8M", swap)
    run("mkswap", "-q", "-L", "swp", swap)
    place(path, swap, parts[6]["start"])
    return path


def make_gpt(path, tree, size_mb=160):
    """GPT: 1 = vfat 'ESP' (left empty without dosfstools), 2 = ext4 root (the tree)."""
    need("sgdisk")
    run("truncate", "-s", f"{size_mb}M", path)
    run("sgdisk", "-n", "1:2048:+16M", "-t", "1:ef00", "-c", "1:EFI system",
        "-n", "2:0:+120M", "-t", "2:8300", "-c", "2:root", path)
    parts = sfdisk_parts(path)
    d = Path(path).parent
    if shutil.which("mkfs.vfat"):
        esp = d / (Path(path).name + ".p1")
        run("truncate", "-s", "16M", esp)
        run("mkfs.vfat", "-n", "ESP", "-i", "1234abcd", esp)
        place(path, esp, parts[1]["start"])
    rootfs = mkfs(d / (Path(path).name + ".p2"), tree, 120)
    place(path, rootfs, parts[2]["start"])
    return path


def sfdisk_parts(path):
    """The oracle's view of a partition table: number -> start/size in bytes."""
    need("sfdisk")
    j = json.loads(run("sfdisk", "--json", path).stdout)["partitiontable"]
    sector = j.get("sectorsize", 512)
    out = {}
    for p in j.get("partitions", []):
        num = int(p["node"][len(str(path)):].lstrip("p"))
        out[num] = {"start": p["start"] * sector, "size": p["size"] * sector, "type": p["type"]}
    return out


def extract(disk, start, size, out):
    """The bytes of one partition of a (raw or qcow2) disk, via qemu-img (not ligero)."""
    raw = str(out) + ".whole"
    run("qemu-img", "convert", "-O", "raw", disk, raw)
    with open(raw, "rb") as src, open(out, "wb") as dst:
        src.seek(start)
        left = size
        while left:
            b = src.read(min(left, 4 * MiB))
            if not b:
                break
            dst.write(b)
            left -= len(b)
    os.unlink(raw)
    return out


def e2fsck_clean(fsimg):
    p = run("e2fsck", "-fn", fsimg, check=False)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()


def debugfs(fsimg, cmd):
    return run("debugfs", "-R", cmd, fsimg).stdout.decode(errors="replace")


def overlay(base, path):
    """A qcow2 overlay over base, made by qemu-img."""
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", Path(base).resolve(), "-F", "qcow2",
        path)
    return path


@pytest.fixture(scope="session")
def fs_src(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("src") / "tree")


@pytest.fixture(scope="session")
def fs_images(tmp_path_factory, fs_src):
    """Read-only images shared by the read tests (tests that write copy them first)."""
    need("qemu-img", "mkfs.ext4")
    d = tmp_path_factory.mktemp("img")
    imgs = {"whole": mkfs(d / "whole.img", fs_src, 64),
            "mbr": make_mbr(d / "mbr.img", fs_src),
            "gpt": make_gpt(d / "gpt.img", fs_src)}
    run("qemu-img", "convert", "-O", "qcow2", imgs["gpt"], d / "base.qcow2")
    imgs["qcow2"] = overlay(d / "base.qcow2", d / "overlay.qcow2")
    imgs["base"] = d / "base.qcow2"
    return imgs
