"""`ligero img io` against the oracle: the same qemu-io command lines on two copies of one image,
then the outputs (timings masked) and the resulting images must be the same.
"""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from conftest import io_args, run_cmd as run


# "64 KiB, 1 ops; 00.00 sec (50.035 MiB/sec and 800.5559 ops/sec)": only the first field and
# the op count are deterministic.
TIMING = re.compile(r"^(.*, \d+ ops; ).*$", re.M)


def masked(out):
    return TIMING.sub(r"\1<time>", out)


def compare(ligero, tmp_path, fmt, make, cmds, cmp_files=True):
    """Make two identical images, run cmds with ligero on one and qemu-io on the other."""
    a, b = tmp_path / f"ours.{fmt}", tmp_path / f"theirs.{fmt}"
    make(a)
    shutil.copyfile(a, b)
    ours = run(ligero, "img", "io", "-f", fmt, *io_args(cmds), a)
    theirs = run("qemu-io", "-f", fmt, *io_args(cmds), b)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert masked(ours.stdout) == masked(theirs.stdout).replace(str(b), str(a))
    if cmp_files:
        r = run("qemu-img", "compare", "-f", fmt, "-F", fmt, a, b)
        assert r.returncode == 0, r.stdout + r.stderr
    return ours


def raw_image(size):
    def make(path):
        with open(path, "wb") as f:
            f.truncate(size)
    return make


def qcow2_image(size, opts=""):
    def make(path):
        extra = ["-o", opts] if opts else []
        run("qemu-img", "create", "-q", "-f", "qcow2", *extra, path, size, check=True)
    return make


SCRIPT = [
    "write 64k 64k",
    "read -P 0xcd 64k 64k",
    "write -P 0xab 0x100000 1M",
    "read -P 0xab 1M 1M",
    "read -v 65530 12",
    "read -v 0 20",
    "read 0 1.5k",
    "write -P 7 3 5",
    "read -P 7 3 5",
    "write -z 2M 64k",
    "read -P 0 2M 64k",
    "write -z -u 3M 128k",
    "read -P 0 3M 128k",
    "flush",
    "read -q 0 4k",
    "write -q -P 1 4k 4k",
    "read -P 1 4k 4k",
    "read 0 0",
    "write 0 0",
    "write -P 3 0 200k",
    "write -z 70000 5000",
    "read -P 3 0 70000",
    "read -P 0 70000 5000",
    "discard 1000 100000",
    "read -P 3 0 1000",
    "read -v 4194296 8",
]


def test_raw_script(ligero, tmp_path):
    compare(ligero, tmp_path, "raw", raw_image(4 << 20), SCRIPT)
    a, b = tmp_path / "ours.raw", tmp_path / "theirs.raw"
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("cache", ["none", "writethrough", "directsync", "unsafe"])
def test_cache_modes(ligero, tmp_path, cache):
    """-t: the same results whatever the cache mode (aligned requests: O_DIRECT needs them)."""
    def make(path):
        run("qemu-img", "create", "-q", "-f", "qcow2", path, "8M", check=True)
    a, b = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    make(a)
    make(b)
    cmds = io_args(["write -P 0x61 0 128k", "write -z 64k 4k", "read -P 0x61 0 64k", "flush"])
    ours = run(ligero, "img", "io", "-t", cache, "-f", "qcow2", *cmds, a)
    theirs = run("qemu-io", "-t", cache, "-f", "qcow2", *cmds, b)
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
    assert masked(ours.stdout) == masked(theirs.stdout)
    assert run("qemu-img", "compare", a, b).returncode == 0


def test_raw_map_and_discard(ligero, tmp_path):
    compare(ligero, tmp_path, "raw", raw_image(4 << 20),
            ["write 0 64k", "map", "discard 0 64k", "map", "read -P 0 0 64k"])


@pytest.mark.parametrize("opts", ["", "cluster_size=4096", "compat=0.10", "cluster_size=2M"])
def test_qcow2_script(ligero, tmp_path, opts):
    compare(ligero, tmp_path, "qcow2", qcow2_image("8M", opts), SCRIPT + ["map"])
    r = run("qemu-img", "check", tmp_path / "ours.qcow2")
    assert r.returncode == 0, r.stdout + r.stderr


def test_qcow2_map(ligero, tmp_path):
    """map reports allocation of the top layer only, merged into runs, as qemu-io prints it."""
    def make(path):
        run("qemu-img", "create", "-q", "-f", "qcow2", tmp_path / "base.qcow2", "8M", check=True)
        run("qemu-io", "-f", "qcow2", "-c", "write 0 2M", tmp_path / "base.qcow2", check=True)
        run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", path,
            check=True)
    compare(ligero, tmp_path, "qcow2", make,
            ["map", "write 64k 64k", "write -z 1M 64k", "write 7M 4k", "map",
             "read -P 0xcd 0 64k", "read -P 0xcd 7M 4k", "discard 7M 64k", "map"])


def test_pattern_mismatch_stops(ligero, tmp_path):
    """qemu-io reports the mismatch and goes on; we report it the same way, then stop, exit 1."""
    img = tmp_path / "a.raw"
    raw_image(1 << 20)(img)
    r = run(ligero, "img", "io", "-f", "raw", "-c", "read -P 0x11 512 1k", "-c",
            "write 0 4k", img)
    assert r.returncode == 1
    q = run("qemu-io", "-f", "raw", "-c", "read -P 0x11 512 1k", img)
    assert "Pattern verification failed at offset 512, 1024 bytes\n" in q.stdout
    assert masked(r.stdout) == masked(q.stdout)
    assert len(r.stderr.strip().splitlines()) == 1 and str(img) in r.stderr
    assert img.read_bytes() == bytes(1 << 20)  # the write after the failure did not run


def test_errors_name_the_file_and_stop(ligero, tmp_path):
    """Each bad command: exit 1, one stderr line naming the file, nothing written (a request
    that ends past the image fails whole, not after its first 4 MiB chunks)."""
    img = tmp_path / "a.raw"
    size = 9 << 20
    raw_image(size)(img)
    for cmd in ["read 9M 1", "read 0 10M", "write 0 10M", "write -P 1 1M 9M", "write -z 0 10M",
                "discard 8M 2M", "write abc 1", "read -P 0x1ff 0 1", "bogus",
                "write -z -P 1 0 1", "write -u 0 1", "read 0", "read 0 -1", "sleep x"]:
        r = run(ligero, "img", "io", "-f", "raw", "-c", cmd, "-c", "write 0 4k", img)
        assert r.returncode == 1, cmd
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(img) in lines[0], (cmd, r.stderr)
        # qemu-io refuses the same command (it reports failures through its exit status).
        assert run("qemu-io", "-f", "raw", "-c", cmd, img).returncode != 0, cmd
    assert img.read_bytes() == bytes(size)


def test_read_only(ligero, tmp_path):
    img = tmp_path / "a.raw"
    raw_image(1 << 20)(img)
    r = run(ligero, "img", "io", "-r", "-f", "raw", "-c", "write 0 4k", img)
    assert r.returncode == 1 and str(img) in r.stderr
    assert img.read_bytes() == bytes(1 << 20)
    r = run(ligero, "img", "io", "-r", "-f", "raw", "-c", "read -P 0 0 4k", img)
    assert r.returncode == 0, r.stderr
    # Like qemu-io, -U needs -r.
    assert run(ligero, "img", "io", "-U", "-f", "raw", "-c", "read 0 1", img).returncode == 1
    assert run("qemu-io", "-U", "-f", "raw", "-c", "read 0 1", img).returncode == 1
    assert run(ligero, "img", "io", "-r", "-U", "-f", "raw", "-c", "read 0 1",
               img).returncode == 0


def test_quit_stops(ligero, tmp_path):
    img = tmp_path / "a.raw"
    raw_image(1 << 20)(img)
    r = run(ligero, "img", "io", "-f", "raw", "-c", "quit", "-c", "write 0 4k", img)
    assert r.returncode == 0 and r.stdout == ""
    assert img.read_bytes() == bytes(1 << 20)


def test_sleep(ligero, tmp_path):
    img = tmp_path / "a.raw"
    raw_image(1 << 20)(img)
    t = time.monotonic()
    r = run(ligero, "img", "io", "-f", "raw", "-c", "sleep 300", img)
    assert r.returncode == 0 and r.stdout == ""
    assert time.monotonic() - t >= 0.3


def test_commands_from_stdin(ligero, tmp_path):
    img = tmp_path / "a.raw"
    raw_image(1 << 20)(img)
    r = run(ligero, "img", "io", "-f", "raw", img, input="write -P 9 0 4k\nread -P 9 0 4k\n")
    assert r.returncode == 0, r.stderr
    assert img.read_bytes()[:4096] == b"\x09" * 4096
    assert "read 4096/4096 bytes at offset 0" in r.stdout


# Runs a program and reports the kernel's own account of its peak RSS (wait4's ru_maxrss). A
# small launcher forks it, so the count starts from the launcher's few MiB, not this process's.
PEAK_LAUNCHER = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("\\nPEAK-RSS-KIB %d\\n" % usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss_kib(argv):
    """Run argv; return (exit code, stdout, stderr, peak RSS in KiB of the program)."""
    p = subprocess.run([sys.executable, "-c", PEAK_LAUNCHER] + [str(a) for a in argv],
                       capture_output=True, text=True, timeout=1200)
    err, _, peak = p.stderr.rpartition("\nPEAK-RSS-KIB ")
    return p.returncode, p.stdout, err, int(peak)


def test_long_request_uses_bounded_memory(ligero, tmp_path):
    """A 3 GiB request (qemu-io refuses past 2 GiB) is processed in chunks."""
    img = tmp_path / "a.raw"
    raw_image(4 << 30)(img)
    rc, out, err, peak = peak_rss_kib([ligero, "img", "io", "-f", "raw", "-c", "write -z 512 3G",
                                       "-c", "read -P 0 0 3G", img])
    assert rc == 0, err
    assert "wrote 3221225472/3221225472 bytes at offset 512" in out
    assert "read 3221225472/3221225472 bytes at offset 0" in out
    assert 0 < peak < 200 * 1024  # KiB: far below the 3 GiB a single buffer would take
@pytest.mark.parametrize("opts", ["", "compression_type=zstd", "cluster_size=4096"])
def test_compressed_writes(ligero, tmp_path, opts):
    """write -c stores compressed clusters that QEMU reads back; unaligned ranges are refused."""
    r = compare(ligero, tmp_path, "qcow2", qcow2_image("4M", opts),
                ["write -c 0 64k", "write -c -P 0x12 128k 128k", "read -P 0xcd 0 64k",
                 "read -P 0x12 128k 128k", "map"])
    a = tmp_path / "ours.qcow2"
    assert run("qemu-img", "check", a).returncode == 0
    # Compressed clusters have no host "offset" in qemu-img map: the same map means both
    # images hold the same clusters compressed.
    ours_map = run("qemu-img", "map", "--output=json", a, check=True).stdout
    theirs_map = run("qemu-img", "map", "--output=json", tmp_path / "theirs.qcow2",
                     check=True).stdout
    assert ours_map == theirs_map
    assert '"offset"' not in ours_map.splitlines()[0]
    for cmd in ["write -c 1k 64k", "write -c 512k 1k"]:
        assert run("qemu-io", "-f", "qcow2", "-c", cmd, tmp_path / "theirs.qcow2").returncode != 0
        r = run(ligero, "img", "io", "-f", "qcow2", "-c", cmd, a)
        assert r.returncode == 1 and str(a) in r.stderr, cmd


@pytest.mark.parametrize("opts", ["", "compression_type=zstd"])
def test_compressed_writes_unsafe_cache(ligero, tmp_path, opts):
    """With -t unsafe, compressed clusters written back to back are buffered: a read, a plain
    write, a compressed write elsewhere and the close must each find them in the file. The same
    script under qemu-io gives the same output, content and map."""
    a, b = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    qcow2_image("8M", opts)(a)
    shutil.copyfile(a, b)
    cmds = ["write -c -P 1 0 256k", "read -P 1 0 256k", "write -c -P 2 256k 128k",
            "write -P 3 1M 64k", "write -c -P 4 512k 64k", "read -P 4 512k 64k",
            "write -c 2M 1M", "write -c -P 6 4M 64k", "read -P 1 0 256k", "read -P 2 256k 128k",
            "read -P 3 1M 64k", "read -P 0xcd 2M 1M", "map"]
    ours = run(ligero, "img", "io", "-t", "unsafe", "-f", "qcow2", *io_args(cmds), a)
    theirs = run("qemu-io", "-t", "unsafe", "-f", "qcow2", *io_args(cmds), b)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert masked(ours.stdout) == masked(theirs.stdout).replace(str(b), str(a))
    assert run("qemu-img", "check", a).returncode == 0
    assert run("qemu-img", "compare", a, b).returncode == 0
    assert (run("qemu-img", "map", "--output=json", a, check=True).stdout ==
            run("qemu-img", "map", "--output=json", b, check=True).stdout)
    r = run("qemu-io", "-f", "qcow2", "-c", "read -P 6 4M 64k", "-c", "read -P 2 256k 128k", a)
    assert r.returncode == 0 and "Pattern verification failed" not in r.stdout, r.stdout


def test_compressed_overwrites_unsafe_cache(ligero, tmp_path):
    """With -t unsafe, compressed clusters overwritten by compressed ones (which qemu-io
    refuses, and ligero allows) free host clusters that new L2 tables then take, while newer
    compressed clusters wait in the buffer. 4 KiB clusters, so the overwrites empty whole host
    clusters and each 2 MiB of guest space needs an L2 table of its own. (The buffer is written
    out before an overwrite frees anything; whether a table written early would be hit cannot
    be forced from here, so this checks the outcome.) Oracle: the same writes, uncompressed, by
    qemu-io into a raw file; the image must be clean and read the same."""
    a, raw = tmp_path / "ours.qcow2", tmp_path / "expected.raw"
    qcow2_image("3G", "cluster_size=4096")(a)
    run("qemu-img", "create", "-q", "-f", "raw", raw, "3G", check=True)
    cmds = ["write -c -P 1 0 1M", "write -c -P 2 0 768k", "write -c -P 3 256k 512k"]
    cmds += [f"write -c -P {4 + i % 200} {8 + 2 * i}M 8k" for i in range(600)]
    cmds += ["write -c -P 9 0 64k", "write -c -P 10 8M 4k", "write -c -P 11 12M 1M"]
    ours = run(ligero, "img", "io", "-t", "unsafe", "-f", "qcow2", *io_args(cmds), a)
    assert ours.returncode == 0, ours.stderr
    plain = [c.replace("write -c ", "write ") for c in cmds]
    assert run("qemu-io", "-f", "raw", *io_args(plain), raw).returncode == 0
    assert run("qemu-img", "check", a).returncode == 0
    r = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", a, raw)
    assert r.returncode == 0, r.stdout


def test_alloc_length_truncate(ligero, tmp_path):
    def make(path):
        run("qemu-img", "create", "-q", "-f", "qcow2", path, "4M", check=True)
        run("qemu-io", "-f", "qcow2", "-c", "write 0 64k", "-c", "write 128k 128k", path,
            check=True)
    compare(ligero, tmp_path, "qcow2", make,
            ["alloc 0 4M", "alloc 128k", "alloc 100k 100k", "alloc 0x10000 0x10000", "length",
             "truncate 8M", "length", "alloc 0 8M", "write 7M 4k", "map"])


def test_base_write(ligero, tmp_path):
    """An image that ligero recorded as a backing file is refused for writing without
    --base-write (writing it would change what its overlays read)."""
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", base, "1M", check=True)
    run(ligero, "img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", top,
        check=True)
    r = run(ligero, "img", "io", "-c", "write -P 5 0 4k", base)
    assert r.returncode == 1 and str(base) in r.stderr
    assert run("qemu-io", "-r", "-c", "read -P 0 0 4k", base).returncode == 0
    r = run(ligero, "img", "io", "--base-write", "-c", "write -P 5 0 4k", base)
    assert r.returncode == 0, r.stderr
    assert run("qemu-io", "-r", "-c", "read -P 5 0 4k", base).returncode == 0
