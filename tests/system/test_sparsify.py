"""ligero sparsify against independent oracles: qemu-img check/compare/convert, e2fsck, debugfs.

The test disk is what the seed's retired VM looks like: an MBR disk with an ext4 root holding
live files and the blocks of deleted files (random data the bitmaps call free), a swap
partition full of old pages, and unpartitioned space with stale bytes.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

MiB = 1 << 20
P1_START, P1_SIZE = 1 * MiB, 96 * MiB     # ext4
P2_START, P2_SIZE = 98 * MiB, 16 * MiB    # swap (1 MiB gap before it)
DISK = 128 * MiB                          # 14 MiB unpartitioned at the end

need = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("qemu-img", "mkfs.ext4", "debugfs", "e2fsck",
                                          "sfdisk", "mkswap")),
    reason="needs qemu-img, e2fsprogs (mkfs.ext4, debugfs, e2fsck), fdisk (sfdisk), mkswap")


def sh(*args, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{args}: {p.stdout}{p.stderr}"
    return p


def rand(n, seed):
    """Seeded incompressible bytes."""
    return random.Random(str(seed)).randbytes(n)


def tree_digest(root):
    """Map relative path -> (mode, size, sha256 or link target) of a directory tree."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel.startswith("lost+found"):
                continue
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("l", os.readlink(p))
            elif p.is_file():
                out[rel] = (oct(st.st_mode), st.st_size,
                            hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = (oct(st.st_mode),)
    return out


def extract_part(image, workdir, name):
    """The ext4 partition of an image, as a raw file (qemu-img convert is the reader)."""
    raw = workdir / f"{name}.raw"
    sh("qemu-img", "convert", "-O", "raw", image, raw)
    part = workdir / f"{name}.p1"
    with open(raw, "rb") as f, open(part, "wb") as o:
        f.seek(P1_START)
        o.write(f.read(P1_SIZE))
    return raw, part


def fs_files(part, workdir, name):
    out = workdir / f"{name}.tree"
    out.mkdir()
    sh("debugfs", "-R", f"rdump / {out}", part)
    return tree_digest(out)


@pytest.fixture(scope="module")
def vm_disk(tmp_path_factory):
    """Build the retired VM's disk once: returns (dir, qcow2 path, live tree digest)."""
    d = tmp_path_factory.mktemp("sparsify")
    src = d / "tree"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "os-release").write_text('NAME="Debian GNU/Linux"\nVERSION_ID="12"\n')
    (src / "home" / "ana").mkdir(parents=True)
    for i in range(12):
        (src / "home" / "ana" / f"doc{i}.bin").write_bytes(rand(300_000 + i * 4099, i))
    (src / "var" / "log").mkdir(parents=True)
    (src / "var" / "log" / "syslog").write_text("boot ok\n" * 50000)
    os.symlink("../etc/os-release", src / "home" / "link")
    fsimg = d / "fs.img"
    sh("mkfs.ext4", "-q", "-F", "-d", src, fsimg, f"{P1_SIZE // 1024}k")
    # Deleted data: files written and removed; their blocks keep random bytes but are free.
    junk = d / "junk.bin"
    for i in range(3):
        junk.write_bytes(rand(12 * MiB, 100 + i))
        sh("debugfs", "-w", "-R", f"write {junk} old{i}", fsimg)
    for i in range(3):
        sh("debugfs", "-w", "-R", f"rm old{i}", fsimg)
    sh("e2fsck", "-fn", fsimg)
    disk = d / "disk.raw"
    with open(disk, "wb") as f:
        f.write(rand(DISK, "stale"))          # stale bytes everywhere, like a reused disk
    sh("sfdisk", "-q", disk, input=f"start={P1_START // 512}, size={P1_SIZE // 512}, type=83\n"
                                    f"start={P2_START // 512}, size={P2_SIZE // 512}, type=82\n")
    swap = d / "swap.img"
    swap.write_bytes(rand(P2_SIZE, "swap"))
    sh("mkswap", "-q", swap)
    with open(disk, "r+b") as f:
        f.seek(P1_START)
        f.write(fsimg.read_bytes())
        f.seek(P2_START)
        f.write(swap.read_bytes())
    qcow = d / "mivm.qcow2"
    sh("qemu-img", "convert", "-O", "qcow2", disk, qcow)
    live = tree_digest(src)
    return d, qcow, live


def check_same_files(image, d, name, live):
    raw, part = extract_part(image, d, name)
    sh("e2fsck", "-fn", part)
    got = fs_files(part, d, name)
    for rel, val in live.items():
        assert got.get(rel) == val, f"{rel} differs after sparsify"
    return raw


@need
def test_copy_compress_smaller_than_qemu_img(ligero, vm_disk, tmp_path):
    d, qcow, live = vm_disk
    out = tmp_path / "mivm-new.qcow2"
    noexec = tmp_path / "tmp"
    noexec.mkdir()
    os.chmod(noexec, 0o500)  # no temporary file may be created anywhere
    env = dict(os.environ, TMPDIR=str(noexec))
    p = subprocess.run([ligero, "sparsify", "--compress", str(qcow), str(out)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert "mivm.qcow2:1" in p.stdout and "ext4" in p.stdout and "swap" in p.stdout
    assert os.listdir(noexec) == []
    assert sorted(os.listdir(tmp_path)) == ["mivm-new.qcow2", "tmp"]
    sh("qemu-img", "check", out)
    check_same_files(out, tmp_path, "new", live)
    ref = tmp_path / "ref.qcow2"
    sh("qemu-img", "convert", "-c", "-O", "qcow2", qcow, ref)
    assert out.stat().st_size < ref.stat().st_size / 2, (out.stat().st_size,
                                                        ref.stat().st_size)


@need
@pytest.mark.parametrize("opts,want", [([], "zstd"), (["-o", "compression_type=zlib"], "zlib"),
                                       (["-o", "compat=0.10"], "zlib")])
def test_copy_compress_codec(ligero, vm_disk, tmp_path, opts, want):
    """--compress writes zstd unless told zlib, or compat=0.10 (which cannot record zstd)."""
    d, qcow, live = vm_disk
    out = tmp_path / "c.qcow2"
    sh(ligero, "sparsify", "--compress", *opts, qcow, out)
    sh("qemu-img", "check", out)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(out)],
                                     capture_output=True, text=True, check=True).stdout)
    spec = info["format-specific"]["data"]
    assert spec.get("compression-type") == want, spec
    assert spec["compat"] == ("0.10" if "compat=0.10" in opts else "1.1"), spec
    check_same_files(out, tmp_path, "c", live)


@need
def test_copy_keeps_boot_area_and_swap_header(ligero, vm_disk, tmp_path):
    d, qcow, live = vm_disk
    out = tmp_path / "out.qcow2"
    sh(ligero, "sparsify", qcow, out)
    a = tmp_path / "a.raw"
    b = tmp_path / "b.raw"
    sh("qemu-img", "convert", "-O", "raw", qcow, a)
    sh("qemu-img", "convert", "-O", "raw", out, b)
    A, B = a.read_bytes(), b.read_bytes()
    assert A[:P1_START] == B[:P1_START]                      # MBR and boot loader gap
    assert A[P2_START:P2_START + 4096] == B[P2_START:P2_START + 4096]  # swap signature
    assert B[P2_START + 64 * 1024:P2_START + P2_SIZE] == bytes(P2_SIZE - 64 * 1024)
    assert B[P2_START + P2_SIZE:] == bytes(DISK - P2_START - P2_SIZE)  # unpartitioned tail
    sh("sfdisk", "-d", b)  # the table still parses
    check_same_files(out, tmp_path, "plain", live)
    assert out.stat().st_size < qcow.stat().st_size * 0.7


@need
def test_in_place_qcow2(ligero, vm_disk, tmp_path):
    d, qcow, live = vm_disk
    img = tmp_path / "inplace.qcow2"
    shutil.copy(qcow, img)
    before = img.stat().st_blocks
    p = subprocess.run([ligero, "sparsify", "--in-place", "--output=json", str(img)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    sh("qemu-img", "check", img)
    assert img.stat().st_blocks < before * 0.7
    check_same_files(img, tmp_path, "inplace", live)


@need
def test_in_place_raw_punches_holes(ligero, vm_disk, tmp_path):
    d, qcow, live = vm_disk
    raw = tmp_path / "disk.raw"
    sh("qemu-img", "convert", "-O", "raw", qcow, raw)
    full = sum(1 for _ in [0])
    before = raw.stat().st_blocks
    sh(ligero, "sparsify", "--in-place", raw)
    assert raw.stat().st_blocks < before * 0.7
    assert raw.stat().st_size == DISK
    _ = full
    part = tmp_path / "p1"
    with open(raw, "rb") as f:
        f.seek(P1_START)
        part.write_bytes(f.read(P1_SIZE))
    sh("e2fsck", "-fn", part)
    got = fs_files(part, tmp_path, "rawtree")
    for rel, val in live.items():
        assert got.get(rel) == val


@need
def test_refusals(ligero, vm_disk, tmp_path):
    d, qcow, live = vm_disk
    out = tmp_path / "exists.qcow2"
    out.write_bytes(b"keep me")
    p = subprocess.run([ligero, "sparsify", str(qcow), str(out)], capture_output=True, text=True)
    assert p.returncode != 0 and "exists" in p.stderr and len(p.stderr.splitlines()) == 1
    assert out.read_bytes() == b"keep me"
    p = subprocess.run([ligero, "sparsify", str(tmp_path / "nope.qcow2"), str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "nope.qcow2" in p.stderr and not (tmp_path / "x").exists()
    # A base that an overlay depends on is not sparsified in place unless forced.
    base = tmp_path / "base.qcow2"
    shutil.copy(qcow, base)
    sh(ligero, "img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
       tmp_path / "ov.qcow2", cwd=tmp_path)
    digest = hashlib.sha256(base.read_bytes()).hexdigest()
    p = subprocess.run([ligero, "sparsify", "--in-place", str(base)], capture_output=True,
                       text=True)
    assert p.returncode != 0 and "backing file" in p.stderr
    assert hashlib.sha256(base.read_bytes()).hexdigest() == digest
