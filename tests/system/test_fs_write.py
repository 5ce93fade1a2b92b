"""ligero fs write verbs on raw and qcow2-overlay disks: afterwards e2fsck -fn is clean, debugfs
sees the changes, copy-out of what was copied in matches the host tree to the nanosecond, and a
backing image is byte-identical."""
import os
import shutil
import stat

import pytest

from fs_fixtures import (MiB, assert_same_tree, debugfs, e2fsck_clean, extract, lg, make_tree,
                         manifest, overlay, run, sfdisk_parts, sha256,
                         fs_images, fs_src)  # noqa: F401 (fixtures)


@pytest.fixture(params=["raw-gpt", "qcow2-overlay", "raw-mbr"])
def rw_disk(request, fs_images, tmp_path):
    """A writable disk, the partition holding the tree, and the backing image (if any)."""
    if request.param == "raw-gpt":
        disk = tmp_path / "gpt.img"
        shutil.copy(fs_images["gpt"], disk)
        return disk, 2, None
    if request.param == "raw-mbr":
        disk = tmp_path / "mbr.img"
        shutil.copy(fs_images["mbr"], disk)
        return disk, 5, None
    return overlay(fs_images["base"], tmp_path / "ov.qcow2"), 2, fs_images["base"]


def partition(disk, num, tmp_path, layout_src):
    p = sfdisk_parts(layout_src)[num]
    return extract(disk, p["start"], p["size"], tmp_path / f"part{num}.img")


def test_write_verbs(rw_disk, fs_images, fs_src, tmp_path):
    disk, num, base = rw_disk
    layout_src = fs_images["mbr"] if num == 5 else fs_images["gpt"]
    base_hash = sha256(base) if base else None
    incoming = make_tree(tmp_path / "incoming", seed=7, big=1 * MiB)
    for p in sorted(incoming.rglob("*"), reverse=True):  # nanosecond times this time
        os.utime(p, ns=(1_700_000_000_123_456_789, 1_700_000_001_987_654_321),
                 follow_symlinks=False)
    os.utime(incoming, ns=(1_700_000_000_123_456_789, 1_700_000_001_987_654_321))

    lg("copy-in", incoming, disk, "/")
    lg("write", disk, "/etc/hostname", input=b"guest-1\n")
    lg("write", disk, "/one", input=b"rewritten through one name\n")  # a hard-linked file
    lg("mkdir", "-p", disk, "/x/y/z")
    lg("mkdir", "-m", "0700", disk, "/priv")
    lg("rm", disk, "/files/f10")
    lg("rm", "-r", disk, "/a/b/c")
    lg("chmod", disk, "0640", "/files/f11")
    lg("chown", disk, "4242:4343", "/files/f12")
    lg("ln", "-s", disk, "/etc/hostname", "/hostlink")

    part = partition(disk, num, tmp_path, layout_src)
    e2fsck_clean(part)
    assert debugfs(part, "cat /etc/hostname") == "guest-1\n"
    assert debugfs(part, "cat /a/one-link") == "rewritten through one name\n"
    assert "Mode:  0640" in debugfs(part, "stat /files/f11")
    assert "User:  4242   Group:  4343" in debugfs(part, "stat /files/f12")
    assert 'Fast link dest: "/etc/hostname"' in debugfs(part, "stat /hostlink")
    assert "Mode:  0700" in debugfs(part, "stat /priv")
    assert "Type: directory" in debugfs(part, "stat /x/y/z")
    for gone in ["/files/f10", "/a/b/c", "/a/b/c/d/e/deep.txt"]:
        p = run("debugfs", "-R", f"stat {gone}", part)
        assert b"File not found" in p.stderr + p.stdout, gone
    assert "f11" in debugfs(part, "ls /files") and "f10" not in debugfs(part, "ls -p /files")

    # What went in comes back out identical, times to the nanosecond.
    out = tmp_path / "out"
    out.mkdir()
    lg("copy-out", disk, "/incoming", out)
    assert_same_tree(manifest(out / "incoming", nsec=True), manifest(incoming, nsec=True))
    got = os.stat(out / "incoming")
    assert got.st_mtime_ns == 1_700_000_001_987_654_321
    # The rest of the original tree is intact.
    rest = tmp_path / "rest"
    rest.mkdir()
    lg("copy-out", disk, "/big.bin", "/sparse", "/odd", rest)
    assert sha256(rest / "big.bin") == sha256(fs_src / "big.bin")
    assert os.stat(rest / "sparse").st_blocks * 512 < MiB
    assert sorted(os.listdir(rest / "odd")) == sorted(os.listdir(fs_src / "odd"))
    if base:
        assert sha256(base) == base_hash
        run("qemu-img", "check", disk)


def test_copy_in_replaces_and_merges(fs_images, tmp_path):
    disk = tmp_path / "whole.img"
    shutil.copy(fs_images["whole"], disk)
    host = tmp_path / "h"
    (host / "a").mkdir(parents=True)
    (host / "a" / "newfile").write_bytes(b"new")
    (host / "a" / "one-link").write_bytes(b"replaced")  # replaces a hard link of /one
    lg("copy-in", str(host) + "/.", disk, "/")
    assert lg("cat", disk, "/a/one-link").stdout == b"replaced"
    assert lg("cat", disk, "/one").stdout == b"1"  # the other names keep the old inode
    assert lg("cat", disk, "/a/newfile").stdout == b"new"
    assert lg("cat", disk, "/a/b/c/d/e/deep.txt").stdout == b"deep\n"  # merged, not replaced
    assert lg("stat", "--output=json", disk, "/one").stdout.count(b'"links":2') == 1
    e2fsck_clean(disk)


def test_many_entries_grow_directory(fs_images, tmp_path):
    """Enough names to need new directory blocks (and an htree on ext4)."""
    disk = tmp_path / "whole.img"
    shutil.copy(fs_images["whole"], disk)
    host = tmp_path / "many"
    host.mkdir()
    for i in range(600):
        (host / f"entry-with-a-long-name-{i:04d}").write_bytes(str(i).encode())
    lg("copy-in", host, disk, "/")
    listed = lg("ls", disk, "/many").stdout.decode().split()
    assert listed == sorted(os.listdir(host))
    assert lg("cat", disk, "/many/entry-with-a-long-name-0599").stdout == b"599"
    lg("rm", "-r", disk, "/many")
    e2fsck_clean(disk)


def test_edit(fs_images, tmp_path):
    disk = tmp_path / "whole.img"
    shutil.copy(fs_images["whole"], disk)
    editor = tmp_path / "ed.sh"
    editor.write_text('#!/bin/sh\nsed -i s/debian/edited/ "$1"\n')
    editor.chmod(0o755)
    env = dict(os.environ, EDITOR=str(editor))
    env.pop("VISUAL", None)
    lg("edit", disk, "/etc/os-release", env=env)
    assert b"ID=edited" in lg("cat", disk, "/etc/os-release").stdout
    e2fsck_clean(disk)
    # An editor that changes nothing: nothing is written.
    before = sha256(disk)
    lg("edit", disk, "/etc/os-release", env=dict(env, EDITOR="true"))
    assert sha256(disk) == before
    # A failing editor: nothing is written, non-zero exit.
    p = lg("edit", disk, "/etc/os-release", env=dict(env, EDITOR="false"), check=False)
    assert p.returncode != 0 and sha256(disk) == before


def test_special_files_and_xattr_roundtrip(fs_images, tmp_path):
    disk = tmp_path / "whole.img"
    shutil.copy(fs_images["whole"], disk)
    host = tmp_path / "sp"
    host.mkdir()
    os.mkfifo(host / "fifo")
    os.mknod(host / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(host / "bigdev", 0o600 | stat.S_IFBLK, os.makedev(259, 70000))
    (host / "x").write_bytes(b"x")
    os.setxattr(host / "x", "user.a", b"1")
    os.setxattr(host / "x", "trusted.b", b"\0" * 3000)  # too big for the inode: an xattr block
    lg("copy-in", host, disk, "/")
    out = tmp_path / "out"
    out.mkdir()
    lg("copy-out", disk, "/sp", out)
    assert_same_tree(manifest(out / "sp"), manifest(host))
    for n in ["null", "bigdev"]:
        assert os.stat(out / "sp" / n).st_rdev == os.stat(host / n).st_rdev
    assert "Type: FIFO" in debugfs(disk, "stat /sp/fifo")
    e2fsck_clean(disk)
