"""Image locks shared with QEMU: ligero and qemu-img/qemu-io must see each other's claims.

A long-lived qemu-io (interactive, commands on a stdin pipe) or `ligero img io -c 'sleep MS'`
holds an image; the other side's tools must then refuse what QEMU refuses.
"""
import json
import os
import subprocess
import time

import pytest
from conftest import run_cmd as run

IN_USE = "image is in use by another process"


def held_bytes(path):
    """The lock bytes anyone holds on path's inode, from /proc/locks."""
    st = os.stat(path)
    out = set()
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "->" in fields:  # a waiter, not a holder
                continue
            dev_ino = fields[5].split(":")
            if int(dev_ino[2]) != st.st_ino or \
                    os.makedev(int(dev_ino[0], 16), int(dev_ino[1], 16)) != st.st_dev:
                continue
            out.update(range(int(fields[6]), int(fields[7]) + 1))
    return out


def wait_for_bytes(path, want, timeout=120):  # a hang guard
    deadline = time.monotonic() + timeout
    while held_bytes(path) != want:
        assert time.monotonic() < deadline, f"locks on {path}: {sorted(held_bytes(path))}"
        time.sleep(0.02)


def wait_open(pid, path, timeout=120):  # a hang guard
    """Wait until process pid has path open (so its locks, if any, are taken)."""
    deadline = time.monotonic() + timeout
    want = os.path.realpath(path)
    while True:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == want for fd in fds):
                time.sleep(0.1)  # the open and the lock calls are microseconds apart
                return
        except FileNotFoundError:
            pass
        assert time.monotonic() < deadline, f"{pid} never opened {path}"
        time.sleep(0.02)


QEMU_WRITER = {100, 101, 103, 201, 203}  # qemu-io on qcow2, read-write
QEMU_READER = {100, 201, 203}             # qemu-io -r on qcow2 (and a qcow2 backing file)


class Holder:
    """A process that keeps an image open until stopped."""

    def __init__(self, argv, cwd):
        self.p = subprocess.Popen([str(a) for a in argv], cwd=cwd, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        self.p.communicate(timeout=900)


@pytest.fixture
def holders():
    started = []

    def start(argv, cwd):
        h = Holder(argv, cwd)
        started.append(h)
        return h
    yield start
    for h in started:
        h.stop()


@pytest.fixture
def image(tmp_path):
    run("qemu-img", "create", "-q", "-f", "qcow2", tmp_path / "x.qcow2", "64M", check=True)
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 0 64k", tmp_path / "x.qcow2", check=True)
    return tmp_path / "x.qcow2"


def assert_in_use(r, path):
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(path) in lines[0] and IN_USE in lines[0], r.stderr


def test_qemu_writer_blocks_ligero(ligero, image, holders, tmp_path):
    holders(["qemu-io", "-f", "qcow2", image], tmp_path)
    wait_for_bytes(image, QEMU_WRITER)

    r = run(ligero, "img", "io", "-c", "write 0 4k", image)
    assert_in_use(r, image)
    assert 'the "write" permission' in r.stderr

    # qemu-img info refuses too (it does not share write with a writer); so must we.
    assert run("qemu-img", "info", image).returncode != 0
    r = run(ligero, "img", "info", image)
    assert_in_use(r, image)
    assert 'it holds the "write" permission' in r.stderr
    assert "-U" in r.stderr

    # -U looks without locking, as qemu-img info -U does.
    r = run(ligero, "img", "info", "-U", "--output=json", image)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["filename"] == str(image)
    r = run(ligero, "img", "io", "-r", "-U", "-c", "read 0 4k", image)
    assert r.returncode == 0, r.stderr

    # Our failed attempts left nothing behind.
    assert held_bytes(image) == QEMU_WRITER


def test_qemu_reader_blocks_ligero_writer(ligero, image, holders, tmp_path):
    holders(["qemu-io", "-r", "-f", "qcow2", image], tmp_path)
    wait_for_bytes(image, QEMU_READER)
    assert_in_use(run(ligero, "img", "io", "-c", "write 0 4k", image), image)
    # Readers get along.
    r = run(ligero, "img", "io", "-r", "-c", "read -P 0x22 0 4k", image)
    assert r.returncode == 0, r.stderr
    assert run(ligero, "img", "info", image).returncode == 0


def test_ligero_writer_blocks_qemu(ligero, image, holders, tmp_path):
    h = holders([ligero, "img", "io", "-c", "sleep 20000", image], tmp_path)
    # Exactly the bytes qemu-io holds for the same job.
    wait_for_bytes(image, QEMU_WRITER)

    r = run("qemu-img", "info", image)
    assert r.returncode != 0 and "lock" in r.stderr, r.stderr
    r = run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", image)
    assert r.returncode != 0 and "lock" in r.stderr, r.stderr
    r = run("qemu-io", "-r", "-f", "qcow2", "-c", "read 0 4k", image)
    assert r.returncode != 0 and "lock" in r.stderr, r.stderr
    # A second ligero writer is refused as well.
    assert_in_use(run(ligero, "img", "io", "-c", "write 0 4k", image), image)
    assert run("qemu-img", "info", "-U", image).returncode == 0

    # The locks go with the process.
    h.stop()
    assert held_bytes(image) == set()
    assert run("qemu-img", "info", image).returncode == 0
    r = run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", image)
    assert r.returncode == 0, r.stderr


def test_ligero_reader_lets_qemu_read(ligero, image, holders, tmp_path):
    holders([ligero, "img", "io", "-r", "-c", "sleep 20000", image], tmp_path)
    wait_for_bytes(image, QEMU_READER)
    assert run("qemu-img", "info", image).returncode == 0
    r = run("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x22 0 4k", image)
    assert r.returncode == 0, r.stderr
    r = run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", image)
    assert r.returncode != 0 and "lock" in r.stderr, r.stderr


def test_ligero_force_share_takes_no_locks(ligero, image, holders, tmp_path):
    h = holders([ligero, "img", "io", "-r", "-U", "-c", "sleep 20000", image], tmp_path)
    wait_open(h.p.pid, image)
    assert held_bytes(image) == set()
    r = run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", image)
    assert r.returncode == 0, r.stderr


def test_backing_file_is_locked_as_reader(ligero, image, holders, tmp_path):
    """Writing an overlay reads its backing file: QEMU may read the base, not write it."""
    top = tmp_path / "top.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", image.name, "-F", "qcow2", top,
        check=True)
    holders([ligero, "img", "io", "-c", "sleep 20000", top], tmp_path)
    wait_for_bytes(top, QEMU_WRITER)
    wait_for_bytes(image, QEMU_READER)
    r = run("qemu-io", "-f", "qcow2", "-c", "write 0 4k", image)
    assert r.returncode != 0 and "lock" in r.stderr, r.stderr
    assert run("qemu-img", "info", image).returncode == 0


def test_raw_writer_blocks_qemu_writer(ligero, holders, tmp_path):
    """On raw files too a ligero writer does not share write (as a VM's disk does not), so
    qemu-io cannot open the file for writing while it runs."""
    img = tmp_path / "x.img"
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    holders([ligero, "img", "io", "-f", "raw", "-c", "sleep 20000", img], tmp_path)
    wait_for_bytes(img, QEMU_WRITER)
    r = run("qemu-io", "-f", "raw", "-c", "write 0 4k", img)
    assert r.returncode != 0 and "lock" in r.stderr, r.stderr
    assert img.read_bytes() == bytes(1 << 20)
