"""RBD images on a throwaway Ceph cluster (tests/ceph/cluster.sh): ligero's rbd driver
(librbd) creates, converts to and from, maps, compares, resizes, snapshots and clones them, and
qemu-img with its rbd driver (qemu-block-extra) is the oracle on the same rbd: names. Writers
take the image's exclusive lock; a crash of the OSD mid-write loses no acknowledged write."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from ceph_cluster import HANG  # (the fixtures ceph and ceph_durable: conftest.py)
from conftest import io_args, run_cmd


def qemu_has_rbd():
    p = subprocess.run(["qemu-img", "--help"], capture_output=True, text=True)
    return " rbd" in p.stdout


pytestmark = pytest.mark.skipif(not shutil.which("qemu-img") or not qemu_has_rbd(),
                                reason="needs qemu-img with its rbd driver (qemu-block-extra)")


def tool(*args, check=True, env=None):
    return run_cmd(*args, check=check, timeout=HANG, env=env)


_seq = [0]


def fresh(prefix):
    """A new image name for this session's cluster."""
    _seq[0] += 1
    return f"{prefix}{os.getpid()}x{_seq[0]}"


@pytest.fixture
def source(img_factory):
    """A qcow2 chain whose data is spread over RBD objects, with holes and zeroed ranges."""
    base = img_factory("base.qcow2", "96M", writes=[
        "write -P 0x11 0 3M", "write -P 0x22 10M 100k", "write -P 0x33 40M 9M"])
    return img_factory("top.qcow2", None, backing=base, writes=[
        "write -P 0x44 1M 64k", "write -z 40M 4M", "write -P 0x55 95M 1M"])


def assert_same(ligero, *args, env=None):
    a = run_cmd(ligero, "img", *args, timeout=HANG, env=env)
    b = run_cmd("qemu-img", *args, timeout=HANG, env=env)
    assert (a.returncode, a.stdout) == (b.returncode, b.stdout), (a.stderr, b.stderr)
    return a


def info(prog, name):
    args = ["img"] if prog != "qemu-img" else []
    out = tool(prog, *args, "info", "--output=json", name).stdout
    return json.loads(out)


def test_convert_to_rbd_and_back_equal_qemu_img(ligero, ceph, source, tmp_path):
    mine, theirs = ceph.name(fresh("l")), ceph.name(fresh("q"))
    tool(ligero, "img", "convert", "-O", "raw", source, mine)
    tool("qemu-img", "convert", "-O", "raw", source, theirs)
    tool("qemu-img", "compare", source, mine)
    # The same image on the cluster: the same allocation (objects that exist) both ways.
    a = tool("qemu-img", "map", "--output=json", mine).stdout
    assert a == tool("qemu-img", "map", "--output=json", theirs).stdout
    # ligero reads it as qemu-img does: map, compare, info.
    assert_same(ligero, "map", "--output=json", mine)
    assert_same(ligero, "compare", mine, source)
    assert_same(ligero, "compare", "-s", mine, theirs)
    a, b = info(ligero, mine), info("qemu-img", mine)
    for k in ("virtual-size", "format", "cluster-size", "dirty-flag"):
        assert a[k] == b[k], k
    assert a["format-specific"]["data"]["object-size"] == b["cluster-size"]
    # check: qemu-img's rbd driver has none, and neither has ours.
    a = run_cmd(ligero, "img", "check", mine, timeout=HANG)
    b = run_cmd("qemu-img", "check", mine, timeout=HANG)
    assert a.returncode == b.returncode == 63
    assert "does not support checks" in a.stderr
    # And back to files.
    tool(ligero, "img", "convert", "-O", "qcow2", mine, tmp_path / "back.qcow2")
    tool("qemu-img", "check", tmp_path / "back.qcow2")
    tool("qemu-img", "compare", tmp_path / "back.qcow2", source)
    tool(ligero, "img", "convert", "-O", "raw", theirs, tmp_path / "back.raw")
    tool("qemu-img", "compare", "-f", "raw", "-F", "qcow2", tmp_path / "back.raw", source)


def test_map_of_unaligned_writes_equals_qemu_img(ligero, ceph):
    """Objects written at odd offsets and zeroed again: map asked from every offset (the
    object-alignment workaround for librbd < 1.17) agrees with qemu-img."""
    name = ceph.name(fresh("m"))
    tool(ligero, "img", "create", "-f", "raw", name, "41M")
    tool("qemu-io", "-f", "raw", *io_args([
        "write -P 1 5000 10000", "write -P 2 9M 512", "write -P 3 20971000 4096",
        "write -P 4 40M 1M", "write -z 20M 4M", "discard 36M 4M"]), name)
    assert_same(ligero, "map", "--output=json", name)
    for start in ("1", "4194303", "6M", "9437184"):
        a = tool(ligero, "img", "map", "--output=json", f"--start-offset={start}", name,
                 check=False)
        b = tool("qemu-img", "map", "--output=json", f"--start-offset={start}", name,
                 check=False)
        assert (a.returncode, a.stdout) == (b.returncode, b.stdout), (a.stderr, b.stderr)


def test_create_resize_snapshots(ligero, ceph):
    name = ceph.name(fresh("s"))
    out = tool(ligero, "img", "create", "-f", "raw", name, "64M").stdout
    assert out.startswith(f"Formatting '{name}', fmt=raw size=67108864")
    r = run_cmd(ligero, "img", "create", "-f", "raw", name, "64M", timeout=HANG)
    assert r.returncode != 0 and "already exists" in r.stderr
    tool(ligero, "img", "resize", name, "+64M")
    assert info("qemu-img", name)["virtual-size"] == 128 << 20
    r = run_cmd(ligero, "img", "resize", name, "64M", timeout=HANG)
    assert r.returncode != 0 and "--shrink" in r.stderr
    tool(ligero, "img", "resize", "--shrink", name, "64M")
    assert info("qemu-img", name)["virtual-size"] == 64 << 20
    # Snapshots are the cluster's: qemu-img lists what ligero made, and the reverse.
    tool("qemu-io", "-f", "raw", "-c", "write -P 0x61 0 1M", name)
    tool(ligero, "img", "snapshot", "-c", "one", name)
    tool("qemu-io", "-f", "raw", "-c", "write -P 0x62 0 1M", name)
    tool("qemu-img", "snapshot", "-c", "two", name)
    assert_same(ligero, "snapshot", "-l", name)
    assert "two" in ceph.rbd("snap", "ls", name.split(":")[1]).stdout
    tool(ligero, "img", "snapshot", "-a", "one", name)
    tool("qemu-io", "-f", "raw", "-c", "read -P 0x61 0 1M", name)
    tool(ligero, "img", "snapshot", "-d", "two", name)
    assert "two" not in tool("qemu-img", "snapshot", "-l", name).stdout
    assert_same(ligero, "compare", ceph.name(name.split("/")[1].split(":")[0], "one"), name)


def test_clone_reads_fall_through_and_snapshot_is_read_only(ligero, ceph, tmp_path):
    base_img, child_img = fresh("base"), fresh("est")
    base, child = ceph.name(base_img), ceph.name(child_img)
    tool(ligero, "img", "create", "-f", "raw", base, "32M")
    tool(ligero, "img", "io", *io_args(["write -P 0xa1 0 5M", "write -P 0xa2 20M 1M"]), base)
    tool(ligero, "img", "snapshot", "-c", "gold", base)
    gold = ceph.name(base_img, "gold")
    # A clone of an unprotected snapshot: ligero protects it, then clones (format 2, layering).
    tool(ligero, "img", "create", "-b", gold, child)
    meta = json.loads(ceph.rbd("info", "--format", "json", f"rbd/{child_img}").stdout)
    assert meta["parent"]["image"] == base_img and meta["parent"]["snapshot"] == "gold"
    assert "layering" in meta["features"] and meta["format"] == 2
    snaps = json.loads(ceph.rbd("snap", "ls", "--format", "json", f"rbd/{base_img}").stdout)
    assert json.loads(ceph.rbd("info", "--format", "json",
                               f"rbd/{base_img}@gold").stdout)["protected"] == "true", snaps
    # Reads fall through to the parent: qemu-img sees the base's data in the clone.
    tool("qemu-io", "-f", "raw", "-r", *io_args(["read -P 0xa1 0 5M", "read -P 0xa2 20M 1M",
                                           "read -P 0 5M 15M"]), child)
    assert_same(ligero, "compare", gold, child)
    assert_same(ligero, "map", "--output=json", child)
    assert "parent: rbd:rbd/" in tool(ligero, "img", "info", child).stdout
    # Writing the clone leaves the parent's snapshot alone.
    tool(ligero, "img", "io", "-c", "write -P 0xc3 1M 64k", child)
    tool("qemu-io", "-f", "raw", "-r", "-c", "read -P 0xa1 1M 64k", gold)
    tool("qemu-io", "-f", "raw", "-c", "read -P 0xc3 1M 64k", child)
    # A snapshot is read-only, and a protected one cannot be removed.
    r = run_cmd(ligero, "img", "io", "-c", "write -P 1 0 4k", gold, timeout=HANG)
    assert r.returncode != 0 and "read-only" in r.stderr and r.stderr.count("\n") == 1
    r = run_cmd(ligero, "img", "snapshot", "-d", "gold", base, timeout=HANG)
    assert r.returncode != 0 and "protected" in r.stderr
    r = run_cmd(ligero, "img", "create", "-b", base, ceph.name(fresh("x")), timeout=HANG)
    assert r.returncode != 0 and "@SNAP" in r.stderr
    # A local overlay on the clone's snapshot-free parent head, the way qemu-img writes it.
    ov = tmp_path / "ov.qcow2"
    tool(ligero, "img", "create", "-f", "qcow2", "-b", gold, "-F", "raw", ov)
    assert_same(ligero, "compare", ov, gold)


def test_backing_names_as_qemu_writes_them(ligero, ceph, tmp_path):
    """A qcow2 overlay on an RBD image opens with the backing name qemu-img recorded: the
    plain rbd: name and QEMU's json: spelling (nested and flattened)."""
    img = fresh("b")
    name = ceph.name(img)
    tool("qemu-img", "create", "-f", "raw", name, "16M")
    tool("qemu-io", "-f", "raw", "-c", "write -P 0x5a 1M 2M", name)
    jnested = json.dumps({"driver": "raw", "file": {"driver": "rbd", "pool": "rbd",
                                                     "image": img, "conf": str(ceph.conf)}})
    jflat = json.dumps({"driver": "raw", "file.driver": "rbd", "file.pool": "rbd",
                        "file.image": img, "file.conf": str(ceph.conf),
                        "file.namespace": ""})
    for i, backing in enumerate((name, "json:" + jnested, "json:" + jflat)):
        ov = tmp_path / f"ov{i}.qcow2"
        tool("qemu-img", "create", "-f", "qcow2", "-b", backing, "-F", "raw", ov)
        tool("qemu-io", "-c", "write -P 0x6b 2M 64k", ov)
        assert_same(ligero, "compare", ov, tmp_path / f"ov{i}.qcow2")
        assert_same(ligero, "map", "--output=json", ov)
        tool(ligero, "img", "convert", "-O", "qcow2", ov, tmp_path / f"flat{i}.qcow2")
        tool("qemu-img", "compare", tmp_path / f"flat{i}.qcow2", ov)
        # json: names work on the command line too
        assert_same(ligero, "compare", backing, name)


def test_bad_names_one_line(ligero, ceph):
    for bad, what in (("rbd:rbd", "no pool"),
                      (f"rbd:rbd/nosuch:conf={ceph.conf}", "no such image"),
                      (f"rbd:nopool/x:conf={ceph.conf}", "could not open pool"),
                      (f"rbd:rbd/x:conf={ceph.conf}:nokey", "no value"),
                      ('json:{"driver":"rbd","pool":"rbd"}', "needs \"pool\" and \"image\"")):
        r = run_cmd(ligero, "img", "info", bad, timeout=HANG)
        assert r.returncode == 1 and what in r.stderr, (bad, r.stderr)
        assert r.stderr.startswith("ligero: ") and r.stderr.count("\n") == 1, r.stderr


def hold_lock(ligero, ceph, name, image):
    """A writer that holds the image (ligero img io, a write, then a long sleep): returns once
    its exclusive lock is on the cluster."""
    p = subprocess.Popen([ligero, "img", "io", "-c", "write -P 0x77 0 4k", "-c",
                          "sleep 600000", name], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    guard = time.monotonic() + HANG
    while "exclusive lock" not in ceph.rbd("lock", "ls", f"rbd/{image}").stdout:
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < guard, "the first writer never took the lock"
        time.sleep(0.1)
    return p


def test_second_writer_refused(ligero, ceph, tmp_path):
    """Two writers on one image, as two VMs on two hosts would be: the second gets one line
    naming the image. (The second is `ligero img io` and `ligero run --disk`, which opens the
    disk before booting anything; the emulated host that can boot a guest has no route to this
    host's cluster, so a booted guest holding the lock is not part of this test.)"""
    img = fresh("w")
    name = ceph.name(img)
    tool(ligero, "img", "create", "-f", "raw", name, "16M")
    first = hold_lock(ligero, ceph, name, img)
    try:
        r = run_cmd(ligero, "img", "io", "-c", "write -P 0x88 0 4k", name, timeout=HANG)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert f"{name}: image is in use by another writer" in r.stderr
        # Readers are not writers: they still read.
        tool(ligero, "img", "compare", name, name)
        kernel = next(iter(sorted(__import__("glob").glob(
            os.path.join(os.environ.get("LIGERO_CACHE", "/nonexistent"), "*",
                         "debian.vmlinuz")))), None)
        if kernel and os.path.exists("/dev/kvm"):
            r = run_cmd(ligero, "run", "--force", "--kernel", kernel, "--disk", name,
                        "--console", tmp_path / "console", timeout=HANG)
            assert r.returncode == 1 and "image is in use by another writer" in r.stderr
            assert r.stderr.count("\n") == 1, r.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=HANG)
    # The first writer died holding the lock: librbd breaks a dead client's lock.
    tool(ligero, "img", "io", "-c", "write -P 0x99 0 4k", name)
    tool("qemu-io", "-f", "raw", "-c", "read -P 0x99 0 4k", name)


def test_osd_killed_mid_write_loses_no_acknowledged_write(ligero, ceph_durable):
    """kill -9 the OSD while a writer (writethrough: a write is acknowledged once flushed)
    writes 1 MiB pieces, then start it again: the writer goes on, every acknowledged piece is
    on the cluster, and every other piece is either all old or all new data."""
    c = ceph_durable
    img = fresh("k")
    name = c.name(img)
    n = 128
    tool(ligero, "img", "create", "-f", "raw", name, f"{n}M")
    cmds = [f"write -P {i + 1} {i}M 1M" for i in range(n)]
    # stdbuf: a line per acknowledged write as it happens (its preload is fine under ASan)
    env = dict(os.environ, ASAN_OPTIONS="verify_asan_link_order=0:" +
               os.environ.get("ASAN_OPTIONS", ""))
    p = subprocess.Popen(["stdbuf", "-oL", ligero, "img", "io", "-t", "writethrough",
                          *io_args(cmds), name], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    acked = 0
    guard = time.monotonic() + HANG
    while acked < 8:
        line = p.stdout.readline()
        assert line, p.communicate()
        acked += line.startswith("wrote ")
        assert time.monotonic() < guard
    c.osd_kill()
    c.osd_start()
    out, err = p.communicate(timeout=HANG)
    acked += sum(line.startswith("wrote ") for line in out.splitlines())
    assert p.returncode == 0 and acked == n, err  # librados resent what the OSD lost
    got = tool(ligero, "img", "io", "-r", *io_args(
        [f"read -P {i + 1} {i}M 1M" for i in range(n)]), name)
    assert "Pattern verification failed" not in got.stdout + got.stderr
    tool("qemu-io", "-f", "raw", "-r", *io_args(
        [f"read -P {i + 1} {i}M 1M" for i in range(acked)]), name)


def test_ceph_libraries_loaded_only_for_rbd_names(ligero, ceph, tmp_path):
    """librbd and librados (and the dozen libraries they pull in) are loaded when an rbd:
    image is opened, not when ligero starts (src/block/rbd_dl.h): the dynamic loader's own
    account (LD_DEBUG=files) of a command that names no rbd: image has neither, one that
    does has both; without the library, an rbd: name gets one line saying so."""
    img = tmp_path / "a.qcow2"
    run_cmd(ligero, "img", "create", "-q", "-f", "qcow2", img, "1M", check=True)
    env = dict(os.environ, LD_DEBUG="files")
    p = run_cmd(ligero, "img", "info", img, env=env, check=True)
    assert "librbd.so" not in p.stderr and "librados.so" not in p.stderr, p.stderr[-2000:]
    name = fresh("lazy")
    run_cmd(ligero, "img", "create", "-q", "-f", "raw", ceph.name(name), "1M", check=True)
    p = run_cmd(ligero, "img", "info", ceph.name(name), env=env, check=True)
    assert "librbd.so.1" in p.stderr and "librados.so.2" in p.stderr, p.stderr[-2000:]
    missing = str(tmp_path / "no-librbd.so")
    p = run_cmd(ligero, "img", "info", ceph.name(name),
                env=dict(os.environ, LIGERO_LIBRBD=missing))
    assert p.returncode != 0
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ligero: "), p.stderr
    assert f"rbd:rbd/{name}" in lines[0] and "cannot load Ceph's client library" in lines[0] \
        and "no-librbd.so" in lines[0], lines[0]
