"""ligero fs mount/umount: the tree seen through the FUSE mount matches the source; writes made
through it pass e2fsck -fn and show in debugfs; a qcow2 backing file stays byte-identical."""
import errno
import os
import shutil
import stat
import subprocess
import time

import pytest

from fs_fixtures import (LIGERO, assert_same_tree, debugfs, e2fsck_clean, extract, lg, manifest, overlay,
                         run, sfdisk_parts, sha256, fs_images, fs_src)  # noqa: F401 (fixtures)


def fuse_usable():
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as e:
        return f"/dev/fuse is not usable here: {e.strerror}"
    os.close(fd)
    return None


@pytest.fixture
def mounted(tmp_path):
    """Mount helper that always unmounts, even when a test fails."""
    why = fuse_usable()
    if why:
        pytest.skip(why)
    mounts = []

    def mount(disk, *opts):
        mnt = tmp_path / f"mnt{len(mounts)}"
        mnt.mkdir()
        mounts.append(mnt)  # before mounting: a failing mount may still have mounted
        lg("mount", *opts, disk, mnt)
        return mnt
    yield mount
    for m in mounts:
        if os.path.ismount(m):
            lg("umount", m, check=False)


def test_mount_reads_match_source(fs_images, fs_src, mounted, tmp_path):
    ov = overlay(fs_images["base"], tmp_path / "ov.qcow2")
    base_hash = sha256(fs_images["base"])
    mnt = mounted(ov, "--ro")
    assert_same_tree(manifest(mnt), manifest(fs_src))
    # Hard links share one inode number through the mount.
    assert os.stat(mnt / "one").st_ino == os.stat(mnt / "a/one-link").st_ino
    assert os.stat(mnt / "one").st_nlink == 3
    with pytest.raises(OSError) as e:
        (mnt / "new").write_bytes(b"x")
    assert e.value.errno == errno.EROFS
    lg("umount", mnt)
    assert not os.path.ismount(mnt)
    assert sha256(fs_images["base"]) == base_hash


def test_mount_writes(fs_images, fs_src, mounted, tmp_path):
    ov = overlay(fs_images["base"], tmp_path / "ov.qcow2")
    base_hash = sha256(fs_images["base"])
    mnt = mounted(ov)
    big = os.urandom(3 << 20)
    (mnt / "etc/hostname").write_bytes(b"fuse-host\n")
    (mnt / "big.new").write_bytes(big)
    (mnt / "x/y").mkdir(parents=True)
    os.symlink("../etc/hostname", mnt / "x/hn")
    os.link(mnt / "big.new", mnt / "x/y/big.link")
    os.chmod(mnt / "files/f20", 0o751)
    os.chown(mnt / "files/f21", 321, 654)
    os.setxattr(mnt / "files/f22", "user.via", b"fuse")
    os.rename(mnt / "files/f23", mnt / "x/moved")
    os.rename(mnt / "a/b/c", mnt / "x/c-moved")  # a directory to another parent
    os.unlink(mnt / "files/f24")
    shutil.rmtree(mnt / "odd")
    with open(mnt / "big.bin", "r+b") as f:
        f.truncate(1000)
    os.utime(mnt / "one", ns=(1_500_000_000_000_000_001, 1_500_000_000_999_999_999))
    # Read back through the mount before unmounting.
    assert (mnt / "big.new").read_bytes() == big
    assert os.getxattr(mnt / "files/f22", "user.via") == b"fuse"
    lg("umount", mnt)

    p = sfdisk_parts(fs_images["gpt"])[2]
    part = extract(ov, p["start"], p["size"], tmp_path / "part.img")
    e2fsck_clean(part)
    assert debugfs(part, "cat /etc/hostname") == "fuse-host\n"
    lg("copy-out", ov, "/big.new", tmp_path)
    assert (tmp_path / "big.new").read_bytes() == big
    assert "Links: 2" in debugfs(part, "stat /big.new")
    assert 'Fast link dest: "../etc/hostname"' in debugfs(part, "stat /x/hn")
    assert "Mode:  0751" in debugfs(part, "stat /files/f20")
    assert "User:   321   Group:   654" in debugfs(part, "stat /files/f21")
    assert 'user.via (4) = "fuse"' in debugfs(part, "ea_list /files/f22")
    assert "deep.txt" in debugfs(part, "ls /x/c-moved/d/e")
    assert lg("cat", ov, "/x/moved").stdout == (fs_src / "files/f23").read_bytes()
    assert "Size: 1000" in debugfs(part, "stat /big.bin")
    assert "mtime: 0x59682f00:ee6b27fc" in debugfs(part, "stat /one")
    for gone in ["/files/f24", "/odd", "/a/b/c", "/files/f23"]:
        r = run("debugfs", "-R", f"stat {gone}", part)
        assert b"File not found" in r.stdout + r.stderr, gone
    assert sha256(fs_images["base"]) == base_hash
    run("qemu-img", "check", ov)


def test_foreground_server_exits_cleanly(fs_images, tmp_path):
    """mount -f serves in the foreground; after umount it writes back and exits 0 with nothing
    on stderr (under ASan this is where leaks in the server would show)."""
    why = fuse_usable()
    if why:
        pytest.skip(why)
    disk = tmp_path / "whole.img"
    shutil.copy(fs_images["whole"], disk)
    mnt = tmp_path / "m"
    mnt.mkdir()
    srv = subprocess.Popen([LIGERO, "fs", "mount", "-f", disk, mnt], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a hang guard
        while not os.path.ismount(mnt) and srv.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.path.ismount(mnt)
        (mnt / "fg").write_bytes(b"foreground")
        assert sorted(os.listdir(mnt / "a"))[:2] == ["b", "one-link"]
        lg("umount", mnt)
        out, err = srv.communicate(timeout=60)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    assert srv.returncode == 0 and err == b"", err.decode()
    assert lg("cat", disk, "/fg").stdout == b"foreground"
    e2fsck_clean(disk)


def test_mount_journal_needs_recovery(fs_images, mounted, tmp_path):
    disk = tmp_path / "whole.img"
    shutil.copy(fs_images["whole"], disk)
    run("debugfs", "-w", "-R", "feature needs_recovery", disk)
    before = sha256(disk)
    p = lg("mount", disk, tmp_path, check=False)
    assert p.returncode != 0 and b"journal needs recovery" in p.stderr and b"--ro" in p.stderr
    assert not os.path.ismount(tmp_path)
    mnt = mounted(disk, "--ro")
    assert (mnt / "one").read_bytes() == b"1"
    lg("umount", mnt)
    assert sha256(disk) == before


def test_umount_refuses_other_mounts(tmp_path):
    p = lg("umount", tmp_path, check=False)
    assert p.returncode != 0 and b"not a mount point" in p.stderr
