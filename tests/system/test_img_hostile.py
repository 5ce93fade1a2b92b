"""Corrupt and hostile images.

For each, `ligero img info` and `ligero img io -c 'read 0 64k'` must:
  - exit non-zero without a signal (no crash, no abort);
  - print exactly one line on stderr, naming the file at fault;
  - leave every file involved (image and backing files) unchanged: same sha256, same mtime.
qemu-img refuses the same images (checked where QEMU refuses; noted where it does not).

An image with the `corrupt` bit is the exception QEMU makes too: it opens read-only, so info
works and reads work, and writes are refused.
"""
import os
import struct
from pathlib import Path

import pytest

from conftest import run_cmd, sha256

MiB = 1 << 20
EXT_END, EXT_BACKING_FMT, EXT_FEATURES = 0, 0xE2792ACA, 0x6803F857

# Header field offsets (docs/interop/qcow2.txt).
O_VERSION, O_BACKING_OFF, O_BACKING_LEN, O_CLUSTER_BITS, O_SIZE = 4, 8, 16, 20, 24
O_L1_SIZE, O_L1_OFF, O_RT_OFF, O_RT_CLUSTERS = 36, 40, 48, 56
O_NB_SNAP, O_SNAP_OFF, O_INCOMPAT, O_HDR_LEN = 60, 64, 72, 100


def put(path, off, fmt, value):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(">" + fmt, value))


def get(path, off, fmt):
    with open(path, "rb") as f:
        f.seek(off)
        return struct.unpack(">" + fmt, f.read(struct.calcsize(fmt)))[0]


def read_exts(path):
    """Header extensions of a v3 image: [(type, data)], without the end marker."""
    data = open(path, "rb").read(65536)
    off = get(path, O_HDR_LEN, "I")
    exts = []
    while True:
        t, n = struct.unpack_from(">II", data, off)
        if t == EXT_END:
            return exts
        exts.append((t, data[off + 8:off + 8 + n]))
        off += 8 + (n + 7) // 8 * 8


def write_exts(path, exts, raw_tail=b""):
    out = b""
    for t, d in exts:
        out += struct.pack(">II", t, len(d)) + d + bytes(-len(d) % 8)
    out += struct.pack(">II", EXT_END, 0) + raw_tail
    with open(path, "r+b") as f:
        f.seek(get(path, O_HDR_LEN, "I"))
        f.write(out)


def base_image(tmp_path, name="bad.qcow2", opts="cluster_size=65536"):
    img = tmp_path / name
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, img, "4M", check=True)
    run_cmd("qemu-io", "-c", "write -P 0x5a 0 128k", "-c", "write -P 0x6b 2M 64k", img,
            check=True)
    return img


# Each maker returns (image to open, [files that must not change], [names the error may
# name], does qemu-img info refuse it too). Makers listed in CHAIN break the backing chain, not
# the image: like qemu-img, plain `info` (which opens no backing file) works on them, and
# `info --backing-chain` fails instead.

def mk_truncated_header(tmp_path):
    img = base_image(tmp_path)
    with open(img, "r+b") as f:
        f.truncate(50)
    return img, [img], [img], True


def mk_l1_past_eof(tmp_path):
    img = base_image(tmp_path)
    put(img, O_L1_OFF, "Q", 1 << 40)
    return img, [img], [img], False  # QEMU opens it (reads zeroes); its check reports it


def mk_rt_overlaps_header(tmp_path):
    img = base_image(tmp_path)
    put(img, O_RT_OFF, "Q", 0)
    return img, [img], [img], False  # QEMU opens it; its check finds 38 errors


def mk_l1_size_huge(tmp_path):
    img = base_image(tmp_path)
    put(img, O_L1_SIZE, "I", 0xFFFFFFFF)
    return img, [img], [img], True


def mk_l1_size_small(tmp_path):
    """Too small for the virtual size: reads past the L1 table would index beyond it."""
    img = base_image(tmp_path)
    put(img, O_L1_SIZE, "I", 0)
    put(img, O_SIZE, "Q", 1 << 40)
    return img, [img], [img], True


def mk_rt_clusters_huge(tmp_path):
    img = base_image(tmp_path)
    put(img, O_RT_CLUSTERS, "I", 0xFFFFFFFF)
    return img, [img], [img], True


def mk_nb_snapshots_huge(tmp_path):
    img = base_image(tmp_path)
    put(img, O_NB_SNAP, "I", 0xFFFFFFFF)
    put(img, O_SNAP_OFF, "Q", 0x10000)
    return img, [img], [img], True


def mk_snapshots_past_eof(tmp_path):
    img = base_image(tmp_path)
    put(img, O_NB_SNAP, "I", 3)
    put(img, O_SNAP_OFF, "Q", 1 << 40)
    return img, [img], [img], False  # QEMU reads zeroes past the end and lists 3 snapshots


def mk_ext_len_huge(tmp_path):
    img = base_image(tmp_path)
    with open(img, "r+b") as f:
        f.seek(get(img, O_HDR_LEN, "I"))
        f.write(struct.pack(">II", 0x12345678, 0xFFFFFF00))
    return img, [img], [img], True


def mk_cluster_bits_30(tmp_path):
    img = base_image(tmp_path)
    put(img, O_CLUSTER_BITS, "I", 30)
    return img, [img], [img], True


def mk_cluster_bits_8(tmp_path):
    img = base_image(tmp_path)
    put(img, O_CLUSTER_BITS, "I", 8)
    return img, [img], [img], True


def mk_size_2_63(tmp_path):
    img = base_image(tmp_path)
    put(img, O_SIZE, "Q", 1 << 63)
    return img, [img], [img], True


def mk_version_4(tmp_path):
    img = base_image(tmp_path)
    put(img, O_VERSION, "I", 4)
    return img, [img], [img], True


def mk_header_length_huge(tmp_path):
    img = base_image(tmp_path)
    put(img, O_HDR_LEN, "I", 0x7FFFFFF8)
    return img, [img], [img], True


def mk_backing_name_past_eof(tmp_path):
    img = base_image(tmp_path)
    put(img, O_BACKING_OFF, "Q", 1 << 40)
    put(img, O_BACKING_LEN, "I", 100)
    return img, [img], [img], True


def mk_backing_name_too_long(tmp_path):
    img = base_image(tmp_path)
    put(img, O_BACKING_OFF, "Q", 0x200)
    put(img, O_BACKING_LEN, "I", 0xFFFFFFFF)
    return img, [img], [img], True


def mk_cyclic_backing(tmp_path):
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "b.qcow2", "-F", "qcow2", a,
            "4M", check=True)
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2", b,
            "4M", check=True)
    return a, [a, b], [a, b], True


def mk_self_backing(tmp_path):
    a = tmp_path / "a.qcow2"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2", a,
            "4M", check=True)
    return a, [a], [a], True


def mk_backing_missing(tmp_path):
    a = tmp_path / "a.qcow2"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "gone.qcow2", "-F", "qcow2",
            a, "4M", check=True)
    return a, [a], ["gone.qcow2"], True


def mk_backing_is_directory(tmp_path):
    (tmp_path / "dir.qcow2").mkdir()
    a = tmp_path / "a.qcow2"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "dir.qcow2", "-F", "qcow2",
            a, "4M", check=True)
    return a, [a], ["dir.qcow2"], True


def mk_backing_bad_middle(tmp_path):
    """A 3-deep chain whose middle image is corrupt: the error names the middle image."""
    base = tmp_path / "base.qcow2"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", base, "4M", check=True)
    mid = tmp_path / "mid.qcow2"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid,
            check=True)
    top = tmp_path / "top.qcow2"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top,
            check=True)
    put(mid, O_CLUSTER_BITS, "I", 30)
    return top, [base, mid, top], ["mid.qcow2"], True


def mk_unknown_incompat_bit(tmp_path):
    img = base_image(tmp_path)
    put(img, O_INCOMPAT, "Q", 1 << 17)
    return img, [img], [img], True


CASES = {name[3:]: fn for name, fn in globals().items() if name.startswith("mk_")}
CHAIN = {"cyclic_backing", "self_backing", "backing_missing", "backing_is_directory",
         "backing_bad_middle"}


def assert_one_clear_error(r, names, what):
    assert r.returncode > 0, f"{what}: exit {r.returncode} (negative: killed by a signal)\n" \
                             f"{r.stderr}"
    lines = r.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0], f"{what}: want one stderr line, got {r.stderr!r}"
    assert any(os.path.basename(str(n)) in lines[0] for n in names), \
        f"{what}: {lines[0]!r} names none of {names}"
    assert "Assertion" not in lines[0] and "Sanitizer" not in r.stderr
    return lines[0]


def snapshot(files):
    return {str(f): (sha256(f), os.stat(f).st_mtime_ns) for f in files}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile(ligero, tmp_path, case):
    img, files, names, qemu_refuses = CASES[case](tmp_path)
    before = snapshot(files)
    info = ["info", "--backing-chain"] if case in CHAIN else ["info"]
    q = run_cmd("qemu-img", *info, img)
    if qemu_refuses:
        assert q.returncode != 0, f"the oracle accepts this image: {q.stdout}"
    if case in CHAIN:
        r = run_cmd(ligero, "img", "info", img)
        assert r.returncode == 0, r.stderr
    for args in (info + [img], info + ["--output=json", img],
                 ["io", "-c", "read 0 64k", img], ["io", "-r", "-c", "read 0 64k", img],
                 ["io", "-c", "write -P 0x11 0 64k", img]):
        r = run_cmd(ligero, "img", *args, timeout=30)
        assert_one_clear_error(r, names, " ".join(map(str, args)))
    # check reports (exit 1: could not open, 2: corrupt, 3: leaks) and repairs nothing.
    # (Broken chains: see test_check_broken_chain.)
    r = run_cmd(ligero, "img", "check", img, timeout=30)
    assert r.returncode >= 0, f"check: killed by signal {-r.returncode}"
    if case not in CHAIN:
        assert r.returncode in (1, 2, 3), f"check: exit {r.returncode}: {r.stderr}"
    assert snapshot(files) == before, "a hostile image was modified"


@pytest.mark.parametrize("case", ["backing_missing", "backing_is_directory",
                                  "backing_bad_middle"])
def test_check_broken_chain(ligero, tmp_path, case):
    """qemu-img check opens the backing chain and fails (exit 1) when it cannot."""
    img, files, names, _ = CASES[case](tmp_path)
    before = snapshot(files)
    q = run_cmd("qemu-img", "check", img, timeout=30)
    assert q.returncode == 1, q.stdout + q.stderr
    r = run_cmd(ligero, "img", "check", img, timeout=30)
    assert r.returncode == q.returncode, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert_one_clear_error(r, names, "check")
    assert snapshot(files) == before


def test_unknown_incompat_bit_named(ligero, tmp_path):
    """The message names the unknown bit; with a feature-name table entry, the name too."""
    img = base_image(tmp_path)
    put(img, O_INCOMPAT, "Q", 1 << 17)
    r = run_cmd(ligero, "img", "info", img)
    line = assert_one_clear_error(r, [img], "info")
    assert "17" in line, line
    # Name it in the feature-name table: type 0 (incompatible), bit 17.
    exts = read_exts(img)
    names = [(t, d) for t, d in exts if t == EXT_FEATURES]
    table = names[0][1] if names else b""
    table += struct.pack(">BB46s", 0, 17, b"frobnicated clusters")
    exts = [(t, table if t == EXT_FEATURES else d) for t, d in exts]
    if not names:
        exts.append((EXT_FEATURES, table))
    write_exts(img, exts)
    q = run_cmd("qemu-img", "info", img)
    assert q.returncode != 0 and "frobnicated clusters" in q.stderr, q.stderr  # the oracle
    before = snapshot([img])
    for args in (["info", img], ["io", "-c", "read 0 64k", img]):
        line = assert_one_clear_error(run_cmd(ligero, "img", *args), [img], args[0])
        assert "frobnicated clusters" in line, line
    assert snapshot([img]) == before


def test_corrupt_bit_opens_read_only(ligero, tmp_path):
    img = base_image(tmp_path)
    put(img, O_INCOMPAT, "Q", 1 << 1)
    before = snapshot([img])
    # The oracle: QEMU refuses read-write and allows read-only.
    assert run_cmd("qemu-io", "-c", "write 0 4k", img).returncode != 0
    assert run_cmd("qemu-io", "-r", "-c", "read -P 0x5a 0 64k", img).returncode == 0
    r = run_cmd(ligero, "img", "info", img)
    assert r.returncode == 0, r.stderr
    r = run_cmd(ligero, "img", "info", "--output=json", img)
    assert r.returncode == 0 and '"corrupt": true' in r.stdout, r.stdout + r.stderr
    r = run_cmd(ligero, "img", "io", "-r", "-c", "read -P 0x5a 0 64k", img)
    assert r.returncode == 0, r.stderr
    r = run_cmd(ligero, "img", "io", "-c", "read -P 0x5a 0 64k", img)
    assert r.returncode == 0, r.stderr
    r = run_cmd(ligero, "img", "io", "-c", "write -P 0x11 0 64k", img)
    assert_one_clear_error(r, [img], "io write")
    assert snapshot([img]) == before


def test_l2_past_eof(ligero, tmp_path):
    """An L1 entry pointing past the end of the file: opening works (QEMU's too), the read
    through it fails cleanly or returns data, and nothing is written."""
    img = base_image(tmp_path)
    l1 = get(img, O_L1_OFF, "Q")
    put(img, l1, "Q", (1 << 40) | (1 << 63))
    before = snapshot([img])
    r = run_cmd(ligero, "img", "info", img)
    assert r.returncode == 0, r.stderr
    r = run_cmd(ligero, "img", "io", "-c", "read 0 64k", img)
    assert r.returncode >= 0
    if r.returncode:
        assert_one_clear_error(r, [img], "io read")
    r = run_cmd(ligero, "img", "io", "-c", "write 0 64k", img)
    assert r.returncode >= 0
    if r.returncode:
        assert_one_clear_error(r, [img], "io write")
    else:  # it wrote: then the image must still be consistent for QEMU
        assert run_cmd("qemu-img", "check", img).returncode in (0, 3)
        return
    assert snapshot([img]) == before


CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "qcow2"


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*")) or ["(empty)"])
def test_fuzz_corpus_replay(ligero, tmp_path, name):
    """The fuzz seeds (and any regression inputs added there) through info, io and check in a
    normal build: no signal; info agrees with qemu-img on whether the image opens; nothing is
    written to the file."""
    src = CORPUS / name
    if not src.is_file():
        pytest.skip(f"no fuzz corpus at {CORPUS}")
    img = tmp_path / name
    img.write_bytes(src.read_bytes())
    before = snapshot([img])
    q = run_cmd("qemu-img", "info", "-f", "qcow2", img)
    r = run_cmd(ligero, "img", "info", "-f", "qcow2", img)
    assert r.returncode >= 0 and (r.returncode == 0) == (q.returncode == 0), \
        f"ligero {r.returncode} {r.stderr!r}, qemu-img {q.returncode} {q.stderr!r}"
    for args in (["io", "-f", "qcow2", "-r", "-U", "-c", "read 0 4k", "-c", "map", img],
                 ["check", "-f", "qcow2", img]):
        r = run_cmd(ligero, "img", *args)
        assert r.returncode >= 0, f"{args[0]}: killed by signal {-r.returncode}"
    assert snapshot([img]) == before


def table_offsets(img):
    l1 = get(img, O_L1_OFF, "Q")
    rt = get(img, O_RT_OFF, "Q")
    mask = ((1 << 56) - 1) & ~511
    return {"l1": l1, "rt": rt, "refblock": get(img, rt, "Q") & mask,
            "l2": get(img, l1, "Q") & mask}


@pytest.mark.parametrize("entry", ["l1", "l2"])
@pytest.mark.parametrize("target", ["rt", "l1", "refblock"])
def test_write_through_entry_pointing_at_metadata(ligero, tmp_path, entry, target):
    """An L1 entry (used as an L2 table) or an L2 entry (used as a data cluster) that points at
    the refcount table, a refcount block or the L1 table, with the COPIED flag: a write must not
    land on that metadata. QEMU's overlap check refuses the write and marks the image corrupt;
    ligero may do the same (only the corrupt bit may change) or refuse without a change."""
    img = base_image(tmp_path)
    offs = table_offsets(img)
    if entry == "l2" and target == "l2":
        pytest.skip("the L2 table pointing at itself is the same case as l1 -> l2")
    where = offs["l1"] if entry == "l1" else offs["l2"]
    put(img, where, "Q", offs[target] | (1 << 63))
    oracle = tmp_path / "oracle.qcow2"
    oracle.write_bytes(img.read_bytes())
    q = run_cmd("qemu-io", "-c", "write -P 0x11 0 64k", oracle)
    assert q.returncode != 0 or "failed" in q.stdout + q.stderr, q.stdout
    before = img.read_bytes()
    r = run_cmd(ligero, "img", "io", "-c", "write -P 0x11 0 64k", img)
    assert r.returncode > 0, f"the write went through (exit {r.returncode}): {r.stdout}"
    assert_one_clear_error(r, [img], "io write")
    after = img.read_bytes()
    incompat = O_INCOMPAT + 7  # the low byte of the incompatible features: bit 1 = corrupt
    assert len(after) == len(before)
    diff = [i for i in range(len(before)) if before[i] != after[i]]
    assert diff in ([], [incompat]), f"{len(diff)} bytes changed, first at {diff[:4]}"
    if diff:
        assert after[incompat] == before[incompat] | 2
