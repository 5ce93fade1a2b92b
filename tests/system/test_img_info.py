"""`ligero img info` against the oracle: qemu-img info on the very same files.

Every image here is made by qemu-img/qemu-io, then both tools describe it. JSON must parse to
the same value with the same key order; human output must be the same text.
"""
import json
import os
import signal
import subprocess
import time

import pytest
from conftest import run_cmd as run, settle


def qemu_img(*args, cwd=None):
    return run("qemu-img", *args, cwd=cwd, check=True)


def ordered(text):
    """JSON as nested lists of (key, value) pairs, so key order is part of the comparison."""
    return json.loads(text, object_pairs_hook=lambda pairs: [(k, v) for k, v in pairs])


def both(ligero, cwd, *args):
    """Run `info ARGS` with both tools; return (ligero, qemu-img) results."""
    settle(cwd)
    ours = run(ligero, "img", "info", *args, cwd=cwd)
    theirs = run("qemu-img", "info", *args, cwd=cwd)
    return ours, theirs


def assert_same_info(ligero, cwd, *args):
    for output in ("json", "human"):
        ours, theirs = both(ligero, cwd, f"--output={output}", *args)
        assert theirs.returncode == 0, theirs.stderr
        assert ours.returncode == 0, ours.stderr
        if output == "json":
            assert ordered(ours.stdout) == ordered(theirs.stdout)
        else:
            assert ours.stdout == theirs.stdout


QCOW2_OPTS = [
    "",
    "compat=0.10",
    "compat=1.1",
    "cluster_size=512",
    "cluster_size=4096",
    "cluster_size=2M",
    "compression_type=zstd",
    "lazy_refcounts=on",
    "refcount_bits=1",
    "refcount_bits=64",
    "compat=0.10,cluster_size=4096",
]


@pytest.mark.parametrize("opts", QCOW2_OPTS)
def test_qcow2_fresh(ligero, tmp_path, opts):
    extra = ["-o", opts] if opts else []
    qemu_img("create", "-q", "-f", "qcow2", *extra, "a.qcow2", "10G", cwd=tmp_path)
    assert_same_info(ligero, tmp_path, "a.qcow2")
    assert_same_info(ligero, tmp_path, "-f", "qcow2", "a.qcow2")


@pytest.mark.parametrize("opts", ["", "cluster_size=4096", "compat=0.10"])
def test_qcow2_with_data(ligero, tmp_path, opts):
    extra = ["-o", opts] if opts else []
    qemu_img("create", "-q", "-f", "qcow2", *extra, "a.qcow2", "64M", cwd=tmp_path)
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 3M", "-c", "write -z 8M 1M",
        "-c", "write 63M 1M", "a.qcow2", cwd=tmp_path, check=True)
    assert_same_info(ligero, tmp_path, "a.qcow2")


def test_raw(ligero, tmp_path):
    qemu_img("create", "-q", "-f", "raw", "a.img", "100M", cwd=tmp_path)
    run("qemu-io", "-f", "raw", "-c", "write 1M 64k", "a.img", cwd=tmp_path, check=True)
    assert_same_info(ligero, tmp_path, "a.img")
    assert_same_info(ligero, tmp_path, "-f", "raw", "a.img")


def test_raw_odd_size(ligero, tmp_path):
    (tmp_path / "a.img").write_bytes(b"x" * 1000)
    assert_same_info(ligero, tmp_path, "a.img")


def test_qcow2_forced_raw(ligero, tmp_path):
    """-f raw on a qcow2 file describes the file as raw, as qemu-img does."""
    qemu_img("create", "-q", "-f", "qcow2", "a.qcow2", "1G", cwd=tmp_path)
    assert_same_info(ligero, tmp_path, "-f", "raw", "a.qcow2")


def make_chain(tmp_path):
    qemu_img("create", "-q", "-f", "qcow2", "base.qcow2", "1G", cwd=tmp_path)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "mid.qcow2",
             cwd=tmp_path)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2",
             "2G", cwd=tmp_path)
    run("qemu-io", "-f", "qcow2", "-c", "write 0 1M", "mid.qcow2", cwd=tmp_path, check=True)


def test_backing(ligero, tmp_path):
    make_chain(tmp_path)
    assert_same_info(ligero, tmp_path, "top.qcow2")


def test_backing_chain(ligero, tmp_path):
    make_chain(tmp_path)
    assert_same_info(ligero, tmp_path, "--backing-chain", "top.qcow2")
    ours = json.loads(run(ligero, "img", "info", "--output=json", "--backing-chain",
                          "top.qcow2", cwd=tmp_path).stdout)
    assert [i["filename"] for i in ours] == ["top.qcow2", "mid.qcow2", "base.qcow2"]


def test_backing_relative_in_subdir(ligero, tmp_path):
    """The backing name stays as recorded; the full name is resolved against the image's dir."""
    d = tmp_path / "d"
    d.mkdir()
    qemu_img("create", "-q", "-f", "qcow2", "base.qcow2", "1M", cwd=d)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2",
             cwd=d)
    assert_same_info(ligero, tmp_path, "d/top.qcow2")
    assert_same_info(ligero, tmp_path, "--backing-chain", "d/top.qcow2")
    info = json.loads(run(ligero, "img", "info", "--output=json", "d/top.qcow2",
                          cwd=tmp_path).stdout)
    assert info["backing-filename"] == "base.qcow2"
    assert info["full-backing-filename"] == "d/base.qcow2"


def test_backing_absolute(ligero, tmp_path):
    qemu_img("create", "-q", "-f", "qcow2", str(tmp_path / "base.qcow2"), "1M")
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(tmp_path / "base.qcow2"), "-F", "qcow2",
             "top.qcow2", cwd=tmp_path)
    assert_same_info(ligero, tmp_path, "top.qcow2")
    assert_same_info(ligero, tmp_path, "--backing-chain", "top.qcow2")


def test_raw_backing(ligero, tmp_path):
    qemu_img("create", "-q", "-f", "raw", "base.img", "1M", cwd=tmp_path)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.img", "-F", "raw", "top.qcow2",
             cwd=tmp_path)
    assert_same_info(ligero, tmp_path, "top.qcow2")
    assert_same_info(ligero, tmp_path, "--backing-chain", "top.qcow2")


def test_missing_backing(ligero, tmp_path):
    """qemu-img info does not open the backing file; --backing-chain does and fails."""
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", "gone.qcow2", "-F", "qcow2",
             "top.qcow2", "1M", cwd=tmp_path)
    assert_same_info(ligero, tmp_path, "top.qcow2")
    ours, theirs = both(ligero, tmp_path, "--backing-chain", "top.qcow2")
    assert theirs.returncode != 0
    assert ours.returncode == 1
    assert ours.stdout == ""
    lines = ours.stderr.strip().splitlines()
    assert len(lines) == 1 and "gone.qcow2" in lines[0], ours.stderr


def test_dirty_lazy_refcounts(ligero, tmp_path):
    """A lazy-refcounts writer killed mid-session leaves the dirty bit: dirty-flag true."""
    qemu_img("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", "a.qcow2", "1M",
             cwd=tmp_path)
    p = subprocess.Popen(["qemu-io", "-f", "qcow2", "a.qcow2"], cwd=tmp_path,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdin.write("write 0 64k\n")
    p.stdin.flush()
    while True:  # qemu-io reports the write once it is done (EOF: it died)
        line = p.stdout.readline()
        assert line, "qemu-io ended before its write"
        if "wrote" in line:
            break
    p.send_signal(signal.SIGKILL)
    p.wait()
    theirs = json.loads(qemu_img("info", "--output=json", "a.qcow2", cwd=tmp_path).stdout)
    assert theirs["dirty-flag"] is True  # the oracle agrees the setup worked
    assert_same_info(ligero, tmp_path, "a.qcow2")
    human = run(ligero, "img", "info", "a.qcow2", cwd=tmp_path).stdout
    assert "cleanly shut down: no\n" in human


def test_json_text_is_qemus(ligero, tmp_path):
    """Byte-for-byte the same JSON text: 4-space indentation, "key": value, no "\\/"."""
    d = tmp_path / "sub"
    d.mkdir()
    qemu_img("create", "-q", "-f", "qcow2", "base.qcow2", "1M", cwd=d)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2",
             cwd=d)
    ours, theirs = both(ligero, tmp_path, "--output=json", "--backing-chain", "sub/top.qcow2")
    assert ours.returncode == 0, ours.stderr
    assert "\\/" not in ours.stdout
    assert ours.stdout == theirs.stdout


def test_errors(ligero, tmp_path):
    r = run(ligero, "img", "info", "nothere.qcow2", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "nothere.qcow2" in r.stderr
    qemu_img("create", "-q", "-f", "qcow2", "a.qcow2", "1M", cwd=tmp_path)
    r = run(ligero, "img", "info", "--output=xml", "a.qcow2", cwd=tmp_path)
    assert r.returncode == 1 and "xml" in r.stderr
    r = run(ligero, "img", "info", "-f", "vmdk", "a.qcow2", cwd=tmp_path)
    assert r.returncode == 1 and "vmdk" in r.stderr
    r = run(ligero, "img", "info", cwd=tmp_path)
    assert r.returncode == 1


@pytest.mark.parametrize("opts", ["compat=1.1", "compat=0.10"])
def test_snapshots(ligero, tmp_path, opts, monkeypatch):
    """The snapshot table: JSON list and the human table with local dates (TZ is honoured)."""
    monkeypatch.setenv("TZ", "America/New_York")
    qemu_img("create", "-q", "-f", "qcow2", "base.qcow2", "1M", cwd=tmp_path)
    qemu_img("create", "-q", "-f", "qcow2", "-o", opts, "-b", "base.qcow2", "-F", "qcow2",
             "a.qcow2", cwd=tmp_path)
    run("qemu-io", "-f", "qcow2", "-c", "write 0 64k", "a.qcow2", cwd=tmp_path, check=True)
    qemu_img("snapshot", "-c", "first", "a.qcow2", cwd=tmp_path)
    qemu_img("snapshot", "-c", "a-much-longer-snapshot-name", "a.qcow2", cwd=tmp_path)
    theirs = json.loads(qemu_img("info", "--output=json", "a.qcow2", cwd=tmp_path).stdout)
    assert len(theirs["snapshots"]) == 2
    assert_same_info(ligero, tmp_path, "a.qcow2")
    assert_same_info(ligero, tmp_path, "--backing-chain", "a.qcow2")


@pytest.mark.parametrize("name", [b"caf\xc3\xa9 \xf0\x9f\x98\x80.img", b'q"uo\\te\x01\x7f.img',
                                  b"bad\xff\xc0\x80\xe2\x82.img"])
def test_json_string_escapes(ligero, tmp_path, name):
    """QEMU writes ASCII-only JSON: \\u escapes (surrogate pairs past the BMP, U+FFFD for
    invalid UTF-8). Byte-identical output for odd file names."""
    path = os.path.join(os.fsencode(tmp_path), name)
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    ours = subprocess.run([os.fsencode(ligero), b"img", b"info", b"--output=json", path],
                          capture_output=True)
    theirs = subprocess.run([b"qemu-img", b"info", b"--output=json", path], capture_output=True)
    assert theirs.returncode == 0
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_backing_loop(ligero, tmp_path):
    """a -> b -> a: plain info works (no backing is opened), --backing-chain fails."""
    qemu_img("create", "-q", "-f", "qcow2", "a.qcow2", "1M", cwd=tmp_path)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2",
             cwd=tmp_path)
    qemu_img("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", "a.qcow2", cwd=tmp_path)
    assert_same_info(ligero, tmp_path, "b.qcow2")
    ours, theirs = both(ligero, tmp_path, "--backing-chain", "b.qcow2")
    assert theirs.returncode == 1
    assert ours.returncode == 1 and ours.stdout == ""
    assert len(ours.stderr.strip().splitlines()) == 1 and "loop" in ours.stderr
