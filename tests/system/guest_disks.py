"""Helpers for the tests of the real test guests (tests/guest/debian.sh): building them, and
looking into their disks with tools that are not ligero (qemu-img, sfdisk, dd, blkid, debugfs,
xfs_db). Used by test_guest_disk.py (the disks offline) and test_disk_boot.py (booted)."""
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import run_cmd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vmhost"))
import vmhost as _vmhost  # noqa: E402

TOOLS = ("debootstrap", "sgdisk", "sfdisk", "mkfs.xfs", "xfs_db", "xfs_repair", "debugfs",
         "e2fsck", "blkid", "qemu-img")


_built = {}


def build_guests():
    """debian.json with rhel.json under "rhel" (vmhost.build_debian()); skips the test when
    the disks cannot be built here (not root, a tool missing). debian.sh runs once per test
    process: even when it finds its disks cached it asks apt-cache for the kernel's version
    (seconds), and the disks do not change during a run. (test_guest_disk's
    test_debian_sh_reuses_its_build runs the script a second time itself.)"""
    if os.geteuid() != 0:
        pytest.skip("tests/guest/debian.sh runs as root (debootstrap, chroot)")
    for tool in TOOLS:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/packages)")
    if "info" not in _built:
        _built["info"] = _vmhost.build_debian()
    return json.loads(json.dumps(_built["info"]))  # a copy: callers may change theirs


def to_raw(disk, tmp_path, name):
    raw = tmp_path / (name + ".raw")
    run_cmd("qemu-img", "convert", "-f", "qcow2", "-O", "raw", disk, raw, check=True)
    return raw


def partitions(raw):
    out = run_cmd("sfdisk", "-J", raw, check=True).stdout
    return json.loads(out)["partitiontable"]


def extract(raw, part, out):
    """Copy one partition (an sfdisk -J entry) of a raw disk into its own file."""
    run_cmd("dd", f"if={raw}", f"of={out}", "bs=1M", "iflag=skip_bytes,count_bytes",
            f"skip={part['start'] * 512}", f"count={part['size'] * 512}", "conv=sparse",
            "status=none", check=True)
    return out


def blkid(dev, tag):
    return run_cmd("blkid", "-p", "-o", "value", "-s", tag, dev, check=True).stdout.strip()


def debugfs_cat(fs, path):
    p = run_cmd("debugfs", "-R", f"cat {path}", fs, check=True)
    return p.stdout


def debugfs_exists(fs, path):
    p = run_cmd("debugfs", "-R", f"stat {path}", fs)
    return "Inode:" in p.stdout


def xfs_cat(fs, path):
    """A file's bytes, found by xfs_db (its size, its extents, their byte offsets) and read
    from the image: nothing mounted, no ligero code involved."""
    def db(*cmds):
        args = ["xfs_db", "-r"]
        for c in cmds:
            args += ["-c", c]
        return run_cmd(*args, fs, check=True).stdout

    size = int(db(f"path {path}", "p core.size").split("=")[1])
    bsize = int(db("sb 0", "p blocksize").split("=")[1])
    data = bytearray(size)
    with open(fs, "rb") as f:
        for m in re.finditer(r"data offset (\d+) startblock (\d+) \(\S+\) count (\d+)",
                             db(f"path {path}", "bmap")):
            off, start, count = (int(x) for x in m.groups())
            byte = int(re.search(r"\((\d+)\)", db(f"convert fsblock {start} byte")).group(1))
            f.seek(byte)
            chunk = f.read(count * bsize)[:max(0, size - off * bsize)]
            data[off * bsize:off * bsize + len(chunk)] = chunk
    return bytes(data).decode()


def check_overlay(over, tmp_path, name):
    """qemu-img check of an overlay (its base beside it), then the whole chain as one raw
    disk: (raw path, its partitions as sfdisk -J lists them)."""
    chk = run_cmd("qemu-img", "check", over)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert "No errors were found on the image." in chk.stdout, chk.stdout
    raw = to_raw(over, tmp_path, name)
    return raw, partitions(raw)["partitions"]
