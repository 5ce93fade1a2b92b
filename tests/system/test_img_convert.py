"""`ligero img convert` against qemu-img: contents by qemu-img compare, every image ligero
writes clean under qemu-img check, compressed output no larger than qemu-img's, refusals that
leave nothing behind, and Ctrl-C that removes a half-written destination."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

from imgwf import (MiB, assert_clean, assert_same, digest, make_mixed_raw, make_qcow2,
                   one_error_line, qimg, run)


def guest_map(img):
    """qemu-img map without host offsets (layouts differ; what the guest sees must not)."""
    import json
    out = []
    for e in json.loads(qimg("map", "--output=json", img).stdout):
        e.pop("offset", None)
        if out and all(out[-1][k] == e[k] for k in e if k not in ("start", "length")):
            out[-1]["length"] += e["length"]
        else:
            out.append(e)
    return out


@pytest.fixture
def mixed(tmp_path):
    return make_mixed_raw(tmp_path / "src.raw", 8 * MiB)


def test_round_trip_raw_qcow2_zlib_zstd_raw(ligero, tmp_path, mixed):
    q = tmp_path / "a.qcow2"
    z = tmp_path / "z.qcow2"
    zs = tmp_path / "zs.qcow2"
    back = tmp_path / "back.raw"
    run(ligero, "img", "convert", "-O", "qcow2", mixed, q, check=True)
    run(ligero, "img", "convert", "-c", "-O", "qcow2", q, z, check=True)
    run(ligero, "img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", z, zs,
        check=True)
    run(ligero, "img", "convert", "-O", "raw", zs, back, check=True)
    for img in (q, z, zs):
        assert_clean(img)
    assert "compression type: zstd" in qimg("info", zs).stdout
    with open(mixed, "rb") as f1, open(back, "rb") as f2:
        assert f1.read() == f2.read()
    # Zero runs became holes / unallocated clusters, like qemu-img's output.
    ours = tmp_path / "ours.qcow2"
    theirs = tmp_path / "theirs.qcow2"
    run(ligero, "img", "convert", "-O", "qcow2", mixed, ours, check=True)
    qimg("convert", "-O", "qcow2", mixed, theirs, check=True)
    assert guest_map(ours) == guest_map(theirs)


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
def test_compressed_same_clusters_as_qemu(ligero, tmp_path, mixed, ctype):
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    opts = f"compression_type={ctype}"
    run(ligero, "img", "convert", "-c", "-m", "2", "-O", "qcow2", "-o", opts, mixed, ours,
        check=True)
    qimg("convert", "-c", "-O", "qcow2", "-o", opts, mixed, theirs, check=True)
    assert_clean(ours)
    assert_same(mixed, ours)
    # As many compressed clusters as qemu-img (qemu-img check counts them).
    import json
    ours_n = json.loads(qimg("check", "--output=json", ours).stdout)["compressed-clusters"]
    theirs_n = json.loads(qimg("check", "--output=json", theirs).stdout)["compressed-clusters"]
    assert ours_n > 0 and ours_n == theirs_n


def make_letters(path, size, seed=1):
    """Random letters from a 16-letter alphabet: 4 bits of entropy a byte and few repeats
    longer than 5 bytes, so a compressor gains nothing from the marginal short matches it
    finds, and a few KiB of layout (a lost partial host cluster) show in the file size."""
    rnd = random.Random(seed)
    path.write_bytes(bytes(rnd.choices(b"abcdefghijklmnop", k=size)))
    return path


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
@pytest.mark.parametrize("kind", ["mixed", "letters"])
def test_compressed_file_no_larger_than_qemu(ligero, tmp_path, mixed, ctype, kind):
    src = mixed if kind == "mixed" else make_letters(tmp_path / "letters.raw", 8 * MiB)
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    opts = f"compression_type={ctype}"
    run(ligero, "img", "convert", "-c", "-O", "qcow2", "-o", opts, src, ours, check=True)
    qimg("convert", "-c", "-O", "qcow2", "-o", opts, src, theirs, check=True)
    assert_clean(ours)
    assert_same(src, ours)
    assert os.path.getsize(ours) <= os.path.getsize(theirs)


def test_chain_source_and_multiple_sources(ligero, tmp_path):
    base = make_qcow2(tmp_path / "base.qcow2", "4M", "write -P 1 0 1M", "write -P 2 3M 64k")
    top = make_qcow2(tmp_path / "top.qcow2", "4M", "write -P 3 512k 1M", "write -z 3M 64k",
                     backing=base)
    out = tmp_path / "flat.qcow2"
    run(ligero, "img", "convert", "-O", "qcow2", top, out, check=True)
    assert_clean(out)
    assert_same(top, out)
    assert "backing file" not in qimg("info", out).stdout
    # Several sources are concatenated.
    r1 = make_mixed_raw(tmp_path / "r1.raw", 1 * MiB, seed=2)
    cat = tmp_path / "cat.qcow2"
    run(ligero, "img", "convert", "-O", "qcow2", r1, top, cat, check=True)
    theirs = tmp_path / "theirs.raw"
    qimg("convert", "-O", "raw", r1, top, theirs, check=True)
    assert_clean(cat)
    assert_same(cat, theirs)


def test_backing_writes_only_differences(ligero, tmp_path, mixed):
    base = tmp_path / "base.qcow2"
    qimg("convert", "-O", "qcow2", mixed, base, check=True)
    changed = tmp_path / "changed.raw"
    changed.write_bytes(mixed.read_bytes())
    with open(changed, "r+b") as f:
        f.seek(3 * MiB)
        f.write(b"\xaa" * 70000)
        f.seek(6 * MiB)
        f.write(bytes(131072))  # zeroes over data: must hide the backing's bytes
    out = tmp_path / "over.qcow2"
    run(ligero, "img", "convert", "-O", "qcow2", "-B", base.name, "-F", "qcow2", changed, out,
        check=True, cwd=tmp_path)
    assert_clean(out)
    assert_same(changed, out)
    # Only the clusters that differ are allocated in the overlay.
    p = qimg("map", "--output=json", out).stdout
    import json
    top = [e for e in json.loads(p) if e["depth"] == 0 and e["present"]]
    assert 0 < sum(e["length"] for e in top) <= 6 * 65536


def test_sparse_size_and_target_is_zero(ligero, tmp_path, mixed):
    full = tmp_path / "full.qcow2"
    run(ligero, "img", "convert", "-S", "0", "-O", "qcow2", mixed, full, check=True)
    assert_clean(full)
    assert_same(mixed, full)
    # -S 0: every cluster allocated, like qemu-img -S 0.
    theirs = tmp_path / "theirs.qcow2"
    qimg("convert", "-S", "0", "-O", "qcow2", mixed, theirs, check=True)
    assert guest_map(full) == guest_map(theirs)
    tgt = tmp_path / "tgt.qcow2"
    qimg("create", "-q", "-f", "qcow2", tgt, "8M", check=True)
    run(ligero, "img", "convert", "-n", "--target-is-zero", "-O", "qcow2", mixed, tgt,
        check=True)
    assert_clean(tgt)
    assert_same(mixed, tgt)
    # -n into an image full of other data: zero runs must be written too.
    dirty = tmp_path / "dirty.raw"
    dirty.write_bytes(b"\x55" * (8 * MiB))
    run(ligero, "img", "convert", "-n", "-O", "raw", mixed, dirty, check=True)
    assert_same(mixed, dirty)


def test_refusals_leave_nothing(ligero, tmp_path, mixed):
    dst = tmp_path / "dst.qcow2"
    line = one_error_line(run(ligero, "img", "convert", "-O", "qcow2", tmp_path / "nope", dst))
    assert "nope" in line
    assert not dst.exists()
    # Destination exists: refused without -n/--force, untouched.
    qimg("create", "-q", "-f", "qcow2", dst, "8M", check=True)
    before = digest(dst)
    line = one_error_line(run(ligero, "img", "convert", "-O", "qcow2", mixed, dst))
    assert "exists" in line
    assert digest(dst) == before
    # Options the output format does not have.
    raw = tmp_path / "out.raw"
    line = one_error_line(run(ligero, "img", "convert", "-c", "-O", "raw", mixed, raw))
    assert "compression" in line
    line = one_error_line(run(ligero, "img", "convert", "-O", "raw", "-o", "cluster_size=4k",
                              mixed, raw))
    assert "raw" in line
    line = one_error_line(run(ligero, "img", "convert", "-O", "qcow2", "-o", "bogus=1", mixed,
                              tmp_path / "x.qcow2"))
    assert "bogus" in line
    assert not raw.exists() and not (tmp_path / "x.qcow2").exists()
    # A target too small for -n.
    small = tmp_path / "small.raw"
    small.write_bytes(bytes(4096))
    before = digest(small)
    one_error_line(run(ligero, "img", "convert", "-n", "-O", "raw", mixed, small))
    assert digest(small) == before
    # --force replaces.
    run(ligero, "img", "convert", "--force", "-O", "qcow2", mixed, dst, check=True)
    assert_same(mixed, dst)


def slow_source(tmp_path):
    """96 MiB of random letters: compressible (so not skipped as random) but slow to deflate,
    so that a compressed convert of it is still running when the test intervenes."""
    src = tmp_path / "big.raw"
    table = bytes(b"abcdefghijklmnop"[i % 16] for i in range(256))
    with open(src, "wb") as f:
        for i in range(96):
            f.write(os.urandom(MiB).translate(table))
    return src


def stop_midway(p, dst, tmp_path):
    """Freeze a running convert (SIGSTOP) once its destination holds 2 MiB, so what the test
    does next happens mid-copy whatever the machine's speed. Fails if it finished first."""
    deadline = time.monotonic() + 120  # a hang guard only
    while p.poll() is None and time.monotonic() < deadline:
        if dst.exists() and dst.stat().st_size > 2 * MiB:
            p.send_signal(signal.SIGSTOP)
            break
        time.sleep(0.005)
    assert p.poll() is None, "convert finished before it could be stopped: make the source bigger"


def test_ctrl_c_removes_destination(ligero, tmp_path):
    src = slow_source(tmp_path)
    dst = tmp_path / "big.qcow2"
    p = subprocess.Popen([ligero, "img", "convert", "-c", "-m", "1", "-O", "qcow2", str(src),
                          str(dst)], stderr=subprocess.PIPE, text=True)
    stop_midway(p, dst, tmp_path)
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGCONT)
    _, err = p.communicate(timeout=600)
    assert p.returncode != 0 and "interrupted" in err, err
    assert not dst.exists()
    # With -n the target stays a consistent image.
    qimg("create", "-q", "-f", "qcow2", dst, "96M", check=True)
    p = subprocess.Popen([ligero, "img", "convert", "-n", "-c", "-m", "1", "-O", "qcow2",
                          str(src), str(dst)], stderr=subprocess.PIPE, text=True)
    stop_midway(p, dst, tmp_path)
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGCONT)
    _, err = p.communicate(timeout=600)
    assert p.returncode != 0 and "interrupted" in err, err
    assert_clean(dst)


def test_source_shrinking_midway_removes_destination(ligero, tmp_path):
    """Clusters are read through a mapping of the source file; a source truncated underneath
    the copy (possible with -U, which lifts the read lock) ends it with one line naming the
    source, a non-zero exit and no half-written destination, instead of a crash."""
    src = slow_source(tmp_path)
    dst = tmp_path / "big.qcow2"
    p = subprocess.Popen([ligero, "img", "convert", "-U", "-c", "-m", "1", "-O", "qcow2",
                          str(src), str(dst)], stderr=subprocess.PIPE, text=True)
    stop_midway(p, dst, tmp_path)
    os.truncate(src, MiB)
    p.send_signal(signal.SIGCONT)
    _, err = p.communicate(timeout=600)
    assert p.returncode != 0, "convert finished before the truncation: make the source bigger"
    line = one_error_line(subprocess.CompletedProcess(p.args, p.returncode, "", err))
    assert str(src) in line and "shrank" in line and str(dst) in line, line
    assert not dst.exists()


def test_progress(ligero, tmp_path, mixed):
    p = run(ligero, "img", "convert", "-p", "-O", "qcow2", mixed, tmp_path / "p.qcow2",
            check=True)
    assert "(100.00/100%)" in p.stderr
    p = run(ligero, "img", "convert", "-O", "qcow2", mixed, tmp_path / "q.qcow2", check=True)
    assert p.stderr == ""


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
def test_compressed_odd_size(ligero, tmp_path, ctype):
    # The short last cluster must inflate to a whole cluster, as qemu-img reads it.
    src = tmp_path / "odd.raw"
    src.write_bytes(b"ligero " * 14285 + b"x" * 5)  # 100000 bytes
    out = tmp_path / "odd.qcow2"
    run(ligero, "img", "convert", "-c", "-O", "qcow2", "-o", f"compression_type={ctype}", src,
        out, check=True)
    assert_clean(out)
    assert_same(src, out)
    back = tmp_path / "back.raw"
    run(ligero, "img", "convert", "-O", "raw", out, back, check=True)
    assert back.read_bytes()[:100000] == src.read_bytes()
    assert not any(back.read_bytes()[100000:])


def test_compressed_into_larger_target_keeps_its_tail(ligero, tmp_path):
    # -n -c into a bigger image: the short last cluster must not be zero-padded over the
    # target's own bytes past the end of the source.
    src = tmp_path / "s.raw"
    src.write_bytes(b"a" * 100352)
    tgt = make_qcow2(tmp_path / "t.qcow2", "1M", "write -P 0x55 0 1M")
    run(ligero, "img", "convert", "-n", "-c", "-O", "qcow2", src, tgt, check=True)
    assert_clean(tgt)
    out = tmp_path / "t.raw"
    qimg("convert", "-O", "raw", tgt, out, check=True)
    data = out.read_bytes()
    assert data[:100352] == src.read_bytes()
    assert data[100352:] == b"\x55" * (MiB - 100352)


def corrupt_compressed_cluster(path, index):
    """Overwrite the start of the compressed data of guest cluster `index` (64 KiB clusters,
    one L2 table): reading that cluster then fails (the stream does not decompress)."""
    import struct
    with open(path, "r+b") as f:
        h = f.read(72)
        l1 = struct.unpack(">Q", h[40:48])[0]
        f.seek(l1)
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
        f.seek(l2 + 8 * index)
        e = struct.unpack(">Q", f.read(8))[0]
        assert e >> 62 == 1, "not a compressed cluster"
        f.seek(e & ((1 << 54) - 1))
        f.write(b"\xff" * 64)


@pytest.mark.parametrize("ofmt", ["qcow2", "raw"])
def test_salvage_matches_qemu_img(ligero, tmp_path, ofmt):
    """A source cluster that cannot be read: without --salvage one error and no destination;
    with it the copy completes with zeroes there, one warning line for the range, and the
    same content as qemu-img convert --salvage writes."""
    src = tmp_path / "src.raw"
    src.write_bytes(bytes(range(256)) * 2048 + os.urandom(64 * 1024) + b"ligero\n" * 30000)
    comp = tmp_path / "c.qcow2"
    qimg("convert", "-c", "-O", "qcow2", src, comp, check=True)
    corrupt_compressed_cluster(comp, 3)
    plain = tmp_path / "plain.out"
    p = run(ligero, "img", "convert", "-O", ofmt, comp, plain)
    assert p.returncode == 1
    one_error_line(p)
    assert not plain.exists()
    ours, theirs = tmp_path / "ours.out", tmp_path / "theirs.out"
    p = run(ligero, "img", "convert", "--salvage", "-O", ofmt, comp, ours)
    assert p.returncode == 0, p.stderr
    warn = p.stderr.splitlines()
    assert len(warn) == 1 and "warning" in warn[0] and "65536 bytes from offset 196608" in warn[0]
    qimg("convert", "--salvage", "-O", ofmt, comp, theirs, check=True)
    assert_same(ours, theirs, ofmt, ofmt)
    if ofmt == "qcow2":
        assert_clean(ours)
    data = src.read_bytes()
    got = bytearray(data)
    got[3 * 65536:4 * 65536] = bytes(65536)
    q = tmp_path / "ours.raw"
    qimg("convert", "-O", "raw", ours, q, check=True)
    assert q.read_bytes()[:len(data)] == bytes(got)
    p = run(ligero, "img", "convert", "-q", "--salvage", "-O", ofmt, comp, tmp_path / "q.out")
    assert p.returncode == 0 and p.stderr == ""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_layouts_match_qemu_img(ligero, tmp_path, seed):
    """Sources whose data, holes and zero clusters start and end off cluster boundaries, of odd
    sizes, concatenated, one of them a qcow2 with a backing file: what ligero writes (plain,
    with -S, compressed) reads the same as what qemu-img convert writes. Whole clusters are
    read where they lie in the source file and partial ones are copied, so every boundary case
    between the two is crossed."""
    rnd = random.Random(seed)
    srcs = []
    for i in range(3):  # raw files: random runs of data and holes, odd total size
        p = tmp_path / ("r%d.raw" % i)
        size = rnd.randrange(2 * MiB, 9 * MiB) | rnd.choice([0, 511, 4095])
        with open(p, "wb") as f:
            f.truncate(size)
            for _ in range(rnd.randrange(4, 16)):
                off = rnd.randrange(size)
                n = min(size - off, rnd.randrange(1, 400 * 1024))
                f.seek(off)
                # a repeated 64-byte piece (compressible) and a random tail
                f.write(rnd.randbytes(64) * (n // 64) + rnd.randbytes(n % 64))
        srcs.append(p)
    cs = rnd.choice(["4k", "64k"])
    base = make_qcow2(tmp_path / "base.qcow2", "2M", "write -P 5 0 700k", "write -P 6 1500k 300k",
                      opts="cluster_size=" + cs)
    top = make_qcow2(tmp_path / "top.qcow2", "2M", "write -P 7 100k 333k", "write -z 1500k 100k",
                     "write -P 8 1900k 1k", backing=base, opts="cluster_size=" + cs)
    srcs.insert(rnd.randrange(len(srcs) + 1), top)
    theirs = tmp_path / "theirs.raw"
    qimg("convert", "-O", "raw", *srcs, theirs, check=True)
    for args in (["-O", "qcow2"], ["-O", "raw"], ["-O", "qcow2", "-S", "0"],
                 ["-O", "qcow2", "-S", "64k"], ["-O", "qcow2", "-c"],
                 ["-O", "qcow2", "-c", "-o", "compression_type=zstd,cluster_size=4k"]):
        out = tmp_path / "out.img"
        if out.exists():
            out.unlink()
        run(ligero, "img", "convert", *args, *srcs, out, check=True)
        if "qcow2" in args:
            assert_clean(out)
        assert_same(out, theirs)


def o_direct_ok(directory):
    """Whether the file system of directory takes O_DIRECT opens."""
    probe = os.path.join(directory, ".o_direct_probe")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def cached_fraction(path):
    """The share of path's pages in the page cache, as util-linux fincore counts them."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", path],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]) / int(out[1])


@pytest.mark.parametrize("compress", [False, True])
def test_default_cache_mode_leaves_page_cache_alone(ligero, tmp_path, compress):
    """-t unsafe (the default) writes whole clusters with O_DIRECT: the copy's data is not left
    in the page cache (with -t writeback it is), and the image is the same either way."""
    if not o_direct_ok(str(tmp_path)):
        pytest.skip(f"{tmp_path}: the file system has no O_DIRECT")
    src = tmp_path / "src.raw"
    with open(src, "wb") as f:
        f.write(os.urandom(16 * MiB))  # incompressible: written as plain clusters even with -c
    opts = ["-c"] if compress else []
    direct, buffered = tmp_path / "direct.qcow2", tmp_path / "buffered.qcow2"
    run(ligero, "img", "convert", "-O", "qcow2", *opts, src, direct, check=True)
    run(ligero, "img", "convert", "-t", "writeback", "-O", "qcow2", *opts, src, buffered,
        check=True)
    assert cached_fraction(direct) < 0.25
    assert cached_fraction(buffered) > 0.9
    for img in (direct, buffered):
        assert_clean(img)
        assert_same(src, img)


def test_incompressible_runs_written_in_large_writes(ligero, tmp_path):
    """With -c, clusters that do not shrink are written plainly, and a run of them goes out
    in one vectored write per batch, not one write per cluster (which left the writer waiting
    on the disk 64 KiB at a time). strace shows the write sizes; the image is the same."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    src = tmp_path / "src.raw"
    with open(src, "wb") as f:
        f.write(os.urandom(8 * MiB))
        f.write(b"ligero\n" * (MiB // 7))
        f.write(os.urandom(8 * MiB))
    dst, log = tmp_path / "dst.qcow2", tmp_path / "strace.log"
    # LeakSanitizer cannot run under ptrace: in the sanitizer build, leaks are left to the
    # other tests
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=pwrite64,pwritev,pwritev2,write",
                    "-o", str(log), ligero, "img", "convert", "-c", "-O", "qcow2", str(src),
                    str(dst)], check=True, env=env)
    sizes = [int(m) for m in re.findall(r"= (\d+)$", log.read_text(), re.M)]
    big = sum(n for n in sizes if n >= MiB)
    assert big >= 14 * MiB, f"only {big} bytes of 16 MiB of random data in writes of 1 MiB+"
    assert_clean(dst)
    assert_same(src, dst)
    m = json.loads(qimg("map", "--output=json", dst, check=True).stdout)
    plain = sum(e["length"] for e in m if e["data"] and "offset" in e)
    assert plain >= 16 * MiB  # the random data is stored uncompressed


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
def test_compressed_output_buffered_in_large_writes(ligero, tmp_path, ctype):
    """With the default cache mode the packed compressed clusters collect in a buffer and
    reach the file in large aligned writes; plain (incompressible) and zero clusters between
    them, and buffers that fill up many times over, must give the very file that -t writeback
    (each cluster written as it comes) gives, clean, with the source's content."""
    rnd = random.Random(7)
    table = bytes(b"abcdefghijklmnop"[i % 16] for i in range(256))
    src = tmp_path / "src.raw"
    with open(src, "wb") as f:
        f.truncate(40 * MiB)
        pos = 0
        while pos < 40 * MiB:
            n = min(rnd.choice([4096, 65536, 200000, MiB]), 40 * MiB - pos)
            kind = rnd.choice(["letters", "letters", "letters", "random", "zero"])
            f.seek(pos)
            if kind == "letters":  # compresses to about 55%
                f.write(rnd.randbytes(n).translate(table))
            elif kind == "random":
                f.write(rnd.randbytes(n))
            pos += n
    opts = ["-c", "-o", f"compression_type={ctype}"]
    direct, buffered = tmp_path / "direct.qcow2", tmp_path / "buffered.qcow2"
    run(ligero, "img", "convert", "-O", "qcow2", *opts, src, direct, check=True)
    run(ligero, "img", "convert", "-t", "writeback", "-O", "qcow2", *opts, src, buffered,
        check=True)
    assert direct.read_bytes() == buffered.read_bytes()
    assert_clean(direct)
    assert_same(src, direct)
    assert os.path.getsize(direct) > 8 * MiB  # the buffer (1 MiB) filled several times


def test_default_cache_mode_without_o_direct(ligero, tmp_path):
    """On a file system without O_DIRECT (ramfs) the default cache mode writes through the page
    cache instead of failing: the same content, a clean image."""
    if os.geteuid() != 0:
        pytest.skip("mounting a ramfs (a file system without O_DIRECT) needs root")
    mnt = tmp_path / "ramfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "none", str(mnt)], check=True)
    try:
        assert not o_direct_ok(str(mnt))
        src = make_mixed_raw(tmp_path / "src.raw", 8 * MiB)
        dst = mnt / "dst.qcow2"
        run(ligero, "img", "convert", "-c", "-O", "qcow2", src, dst, check=True)
        assert_clean(dst)
        assert_same(src, dst)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
