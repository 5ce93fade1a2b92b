"""ploop disks and parallels images, read-only.

qemu-img is the oracle. Fixtures: v2 images from `qemu-img convert -O parallels` (several
cluster sizes), v1 images written here byte by byte (BAT in sectors, clusters out of order and
unaligned), ploop disks (DiskDescriptor.xml as ploop writes it over a base and delta images).
Every fixture must read as qemu-img reads it (for chains: as QEMU's parallels driver reads a
delta over its base, and as decoded here in Python); `img map` must equal qemu-img's on single
images; hostile headers, BATs and descriptors are refused with one line naming the file; no
image is ever changed (sha256 before and after).
"""
import json
import os
import re
import struct
from pathlib import Path

import pytest

from conftest import run_cmd, settle, sha256
import ploop_fixtures as pf

MiB = 1 << 20
SIZE = 20 * MiB + 3 * 512  # not a whole number of clusters


def fill(path, size, writes):
    """A raw file of size bytes with (offset, bytes) written into it."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in writes:
            f.seek(off)
            f.write(data)
    return Path(path)


def pattern(n, seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


RAW_WRITES = [(0, pattern(4096, 1)), (3 * MiB + 100, pattern(70000, 2)),
              (9 * MiB - 512, pattern(1024, 3)), (SIZE - 512, b"\xee" * 512),
              (15 * MiB, pattern(2 * MiB + 4096, 4))]


@pytest.fixture
def raw(tmp_path):
    return fill(tmp_path / "disk.raw", SIZE, RAW_WRITES)


@pytest.fixture(scope="session")
def need_qemu(qemu_img, qemu_io):
    return qemu_img


def ligero_ok(ligero, *args):
    return run_cmd(ligero, *args, check=True)


def convert_raw(tool, src, out, *opts):
    """src read by tool (ligero or qemu-img) into a raw file; its bytes."""
    run_cmd(tool, *(["img"] if tool != "qemu-img" else []), "convert", *opts, "-O", "raw", src,
            out, check=True)
    return Path(out).read_bytes()


def qemu_chain_json(paths):
    """QEMU's own view of a delta chain (top first): each parallels image with the next as its
    backing file, through a json: filename."""
    node = None
    for p in reversed(paths):
        n = {"driver": "parallels", "file": {"driver": "file", "filename": str(p)}}
        if node:
            n["backing"] = node
        node = n
    return "json:" + json.dumps(node)


def one_line_error(p, *names):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("ligero: "), p.stderr
    assert any(str(n) in lines[0] for n in names), (names, p.stderr)
    return lines[0]


def same_as_qemu(ligero, img, tmp_path, check=True):
    """img reads, maps, checks and describes itself in ligero as in qemu-img."""
    want = convert_raw("qemu-img", img, tmp_path / "q.raw")
    got = convert_raw(ligero, img, tmp_path / "l.raw")
    assert got == want
    settle(img)
    for verb in (["map", "--output=json"], ["map"], ["info", "--output=json"],
                 ["check", "--output=json"])[:4 if check else 3]:
        q = run_cmd("qemu-img", *verb, img)
        lg = run_cmd(ligero, "img", *verb, img)
        assert (lg.returncode, lg.stdout) == (q.returncode, q.stdout), verb
    return got


# --- single parallels images ---------------------------------------------------------------

@pytest.mark.parametrize("cluster", [None, "64k", "4k", "2M"])
def test_v2_reads_like_qemu(ligero, need_qemu, raw, tmp_path, cluster):
    img = pf.parallels_from_raw(raw, tmp_path / "disk.hds", cluster)
    before = sha256(img)
    assert same_as_qemu(ligero, img, tmp_path) == raw.read_bytes()
    assert run_cmd(ligero, "img", "compare", img, raw).returncode == 0
    info = json.loads(ligero_ok(ligero, "img", "info", "--output=json", img).stdout)
    assert (info["format"], info["virtual-size"]) == ("parallels", SIZE)
    assert sha256(img) == before


@pytest.mark.parametrize("tracks,reverse,gap", [(2048, False, 0), (128, True, 3), (63, False, 1)])
def test_v1_reads_like_qemu(ligero, need_qemu, raw, tmp_path, tracks, reverse, gap):
    """v1 written here: BAT entries count sectors; clusters may lie backwards, unaligned, and be
    63 sectors long (old Parallels products made such images)."""
    img = pf.v1_from_raw(raw.read_bytes(), tmp_path / "v1.hdd", tracks, reverse, gap)
    before = sha256(img)
    assert same_as_qemu(ligero, img, tmp_path) == raw.read_bytes()
    assert sha256(img) == before


def test_probe_and_explicit_format(ligero, need_qemu, raw, tmp_path):
    img = pf.parallels_from_raw(raw, tmp_path / "disk.hds")
    for args in (["-f", "parallels"], []):
        info = json.loads(ligero_ok(ligero, "img", "info", *args, "--output=json", img).stdout)
        assert info["format"] == "parallels"
    p = run_cmd(ligero, "img", "info", "-f", "ploop", img)
    one_line_error(p, img)


def test_sparse_convert(ligero, need_qemu, raw, tmp_path):
    """Unmapped clusters stay unallocated in a qcow2 copy; mapped ones of zeroes too."""
    img = pf.parallels_from_raw(raw, tmp_path / "disk.hds", "64k")
    out = tmp_path / "out.qcow2"
    ligero_ok(ligero, "img", "convert", "-O", "qcow2", img, out)
    run_cmd("qemu-img", "check", out, check=True)
    assert run_cmd("qemu-img", "compare", out, raw).returncode == 0
    ext = json.loads(run_cmd("qemu-img", "map", "--output=json", out, check=True).stdout)
    data = sum(e["length"] for e in ext if e["data"])
    src = json.loads(run_cmd("qemu-img", "map", "--output=json", img, check=True).stdout)
    assert data <= sum(e["length"] for e in src if e["data"]) < SIZE // 2


def test_in_use_needs_force_share(ligero, need_qemu, raw, tmp_path):
    img = pf.parallels_from_raw(raw, tmp_path / "disk.hds")
    with open(img, "r+b") as f:
        f.seek(44)
        f.write(struct.pack("<I", pf.INUSE))
    before = sha256(img)
    for verb in (["info"], ["map"], ["convert", "-O", "raw", img, tmp_path / "x.raw"]):
        args = verb if verb[0] == "convert" else verb + [img]
        msg = one_line_error(run_cmd(ligero, "img", *args), img)
        assert "marked in use" in msg and "-U" in msg
    p = run_cmd(ligero, "img", "convert", "-U", "-O", "raw", img, tmp_path / "l.raw")
    assert p.returncode == 0
    assert p.stderr.strip() == (f"ligero: warning: {img}: image is marked in use (the container "
                                "may be running); reading it anyway")
    assert (tmp_path / "l.raw").read_bytes() == raw.read_bytes()
    # check needs no -U: it reports the flag, counted as qemu-img counts it
    q = run_cmd("qemu-img", "check", "--output=json", img)
    lg = run_cmd(ligero, "img", "check", "--output=json", img)
    assert (lg.returncode, lg.stdout) == (q.returncode, q.stdout) and q.returncode == 2
    assert "marked in use" in lg.stderr
    assert sha256(img) == before


def test_never_written(ligero, need_qemu, raw, tmp_path):
    """Opening for writing is refused (img io opens for writing unless -r)."""
    img = pf.parallels_from_raw(raw, tmp_path / "disk.hds")
    before = sha256(img)
    for args in (["io", "-c", "write 0 512", img], ["resize", img, "30M"],
                 ["check", "-r", "all", img]):
        msg = one_line_error(run_cmd(ligero, "img", *args), img)
        assert "read-only" in msg, msg
    ligero_ok(ligero, "img", "io", "-r", "-c", "read -P 0 20M 512", "-c",
              f"read -P 0xee {SIZE - 512} 512", img)
    assert sha256(img) == before


def with_ext(tmp_path, raw, bad_entry=False):
    """A v2 image with a format extension holding a dirty bitmap in its own cluster (QEMU reads
    such an image only if the extension is well formed: MD5 and sizes)."""
    img = pf.parallels_from_raw(raw, tmp_path / "ext.hds", "64k")
    h, bat = pf.parse(img)
    cluster = h["tracks"] * 512
    end = os.path.getsize(img)
    ext_at, bm_at = end, end + cluster
    gran = 128  # sectors per bit: 40 bytes of bitmap, one cluster
    feature = struct.pack("<Q16sII", h["nb_sectors"], b"\x11" * 16, gran, 1)
    feature += struct.pack("<Q", bm_at // 512)
    blob = pf.ext_cluster(cluster, [(0x20385FAE252CB34A, 0, feature)])
    with open(img, "r+b") as f:
        f.seek(ext_at)
        f.write(blob + b"\xff" * 40 + bytes(cluster - 40))
        f.seek(56)
        f.write(struct.pack("<Q", ext_at // 512))
        if bad_entry:  # an unmapped guest cluster pointed at the bitmap's cluster
            i = bat.index(0)
            f.seek(64 + 4 * i)
            f.write(struct.pack("<I", bm_at // cluster))
    return img


def test_format_extension(ligero, need_qemu, raw, tmp_path):
    """The extension and its bitmap clusters are neither data nor leaks (qemu-img 7.2 reads the
    image the same, but its check counts those two clusters as leaked)."""
    img = with_ext(tmp_path, raw)
    before = sha256(img)
    assert same_as_qemu(ligero, img, tmp_path, check=False) == raw.read_bytes()
    p = run_cmd(ligero, "img", "check", "--output=json", img)
    assert p.returncode == 0 and json.loads(p.stdout)["image-end-offset"] == os.path.getsize(img)
    assert json.loads(run_cmd("qemu-img", "check", "--output=json", img).stdout)["leaks"] == 2
    assert sha256(img) == before
    (tmp_path / "bad").mkdir()
    bad = with_ext(tmp_path / "bad", raw, True)
    p = run_cmd(ligero, "img", "check", "--output=json", bad)
    assert p.returncode == 2 and json.loads(p.stdout)["corruptions"] == 1
    assert "format extension" in p.stderr


@pytest.mark.parametrize("fault", ["leak", "past-eof", "both"])
def test_check_counts_like_qemu(ligero, need_qemu, raw, tmp_path, fault):
    """Space after the last cluster (leaked clusters, rounded up) and a BAT entry outside the
    file (a corruption; check opens such an image, other verbs refuse it): the same JSON and
    exit status as qemu-img check."""
    img = pf.parallels_from_raw(raw, tmp_path / "disk.hds", "64k")
    if fault in ("leak", "both"):
        with open(img, "ab") as f:
            f.write(b"\x01" * 200000)
    if fault in ("past-eof", "both"):
        poke(img, 64 + 4 * 7, "I", 100000)
    before = sha256(img)
    q = run_cmd("qemu-img", "check", "--output=json", img)
    lg = run_cmd(ligero, "img", "check", "--output=json", img)
    assert (lg.returncode, lg.stdout) == (q.returncode, q.stdout)
    assert q.returncode in (2, 3)
    assert sha256(img) == before


def test_empty_image_has_no_leaks(ligero, need_qemu, tmp_path):
    """A new image whose BAT spans several clusters ends where its data area starts: nothing is
    leaked (qemu-img 7.2 counts the BAT's clusters after the first as leaked)."""
    img = tmp_path / "empty.hds"
    run_cmd("qemu-img", "create", "-q", "-f", "parallels", "-o", "cluster_size=64k", img, "10G",
            check=True)
    h, _ = pf.parse(img)
    assert h["data_off"] * 512 == os.path.getsize(img) > 64 * 1024
    lg = run_cmd(ligero, "img", "check", "--output=json", img)
    assert lg.returncode == 0
    assert json.loads(lg.stdout)["image-end-offset"] == os.path.getsize(img)
    q = json.loads(run_cmd("qemu-img", "check", "--output=json", img).stdout)
    assert q["leaks"] == os.path.getsize(img) // (64 * 1024) - 1


def test_shared_clusters_found(ligero, raw, tmp_path):
    """Two BAT entries on one host cluster: a corruption (qemu-img 7.2 does not look)."""
    img = pf.v1_from_raw(raw.read_bytes(), tmp_path / "dup.hdd", 2048)
    h, bat = pf.parse(img)
    used = [i for i, e in enumerate(bat) if e]
    with open(img, "r+b") as f:
        f.seek(64 + 4 * used[1])
        f.write(struct.pack("<I", bat[used[0]]))
    p = run_cmd(ligero, "img", "check", "--output=json", img)
    assert p.returncode == 2 and json.loads(p.stdout)["corruptions"] == 1
    assert f"BAT entries {used[0]} and {used[1]} share" in p.stderr


# --- hostile single images ------------------------------------------------------------------

def poke(path, off, fmt, value):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(struct.pack("<" + fmt, value))


def first_used(path):
    return next(i for i, e in enumerate(pf.parse(path)[1]) if e)


HOSTILE = {
    "bat-past-eof": (lambda p: poke(p, 64 + 4 * first_used(p), "I", 0x7FFFFFF),
                     "past the end of the file"),
    "huge-bat": (lambda p: poke(p, 32, "I", 0xFFFFFFFF), "BAT larger than 256 MiB"),
    "bat-past-file": (lambda p: poke(p, 32, "I", 1 << 24), "runs past the end of the file"),
    "zero-cluster": (lambda p: poke(p, 28, "I", 0), "cluster size of 0 sectors"),
    "odd-cluster": (lambda p: poke(p, 28, "I", 3), "not a power of two"),
    "huge-cluster": (lambda p: poke(p, 28, "I", 1 << 20), "more than 64 MiB"),
    "size-past-bat": (lambda p: poke(p, 36, "Q", 1 << 40), "needs more than its"),
    "data-in-bat": (lambda p: poke(p, 48, "I", 1), "inside the BAT"),
    "version": (lambda p: poke(p, 16, "I", 3), "version 3"),
    "converting": (lambda p: poke(p, 52, "I", 2), "conversion"),
    "ext-past-eof": (lambda p: poke(p, 56, "Q", 1 << 40), "format extension"),
    "ext-in-bat": (lambda p: poke(p, 56, "Q", 1), "format extension"),
    "truncated": (lambda p: os.truncate(p, 40), "shorter than a parallels header"),
    "not-parallels": (lambda p: poke(p, 0, "Q", 0), "not a parallels image"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_image(ligero, need_qemu, raw, tmp_path, name):
    img = pf.parallels_from_raw(raw, tmp_path / "bad.hds", "64k")
    mutate, phrase = HOSTILE[name]
    mutate(img)
    before = sha256(img)
    for args in (["info", "-f", "parallels", img], ["map", "-f", "parallels", img],
                 ["convert", "-f", "parallels", "-O", "raw", img, tmp_path / "o.raw"]):
        msg = one_line_error(run_cmd(ligero, "img", *args), img)
        assert phrase in msg, msg
    assert sha256(img) == before
    assert not (tmp_path / "o.raw").exists()


def test_bat_entry_into_bat_refused(ligero, need_qemu, raw, tmp_path):
    """v2 entries count clusters (0 is unmapped): with 4 KiB clusters the BAT spans several,
    and entry 2 points into it; v1 entries count sectors: entry 1 points into the header."""
    v2 = pf.parallels_from_raw(raw, tmp_path / "bad.hds", "4k")
    assert pf.parse(v2)[0]["data_off"] > 2 * 8
    poke(v2, 64 + 4 * first_used(v2), "I", 2)
    v1 = pf.v1_from_raw(raw.read_bytes(), tmp_path / "bad.hdd", 128)
    poke(v1, 64 + 4 * first_used(v1), "I", 1)
    for img in (v2, v1):
        msg = one_line_error(run_cmd(ligero, "img", "info", img), img)
        assert "inside the header or BAT" in msg
        p = run_cmd(ligero, "img", "check", img)
        assert p.returncode == 2 and "inside the header or BAT" in p.stderr


# --- ploop disks ----------------------------------------------------------------------------

def make_chain(tmp_path, raw, depth=2, root="Parallels_disk_image", plain_base=False,
               cluster=None):
    """A ploop disk in tmp_path/root.hdd: the base from raw, then depth-1 deltas, each with a
    few writes (partial clusters included); images named as ploop names them."""
    d = tmp_path / "root.hdd"
    d.mkdir()
    base = d / "root.hdd"
    if plain_base:
        base.write_bytes(raw.read_bytes())
    else:
        pf.parallels_from_raw(raw, base, cluster)
    images = [(pf.guid(), "root.hdd", "Plain" if plain_base else "Compressed")]
    paths = [base]
    for level in range(1, depth):
        g = pf.TOP_GUID if level == depth - 1 else pf.guid()
        f = f"root.hdd.{pf.guid()}"
        writes = [f"write -P {0x30 + level} {level}M 64k",
                  f"write -P {0x40 + level} {3 * level + 1}M 4k",
                  f"write -P {0x50 + level} 15M 512", f"write -z {level * 2}M 8k",
                  f"write -P {0x60 + level} {SIZE - 4096} 4096"]
        pf.delta(d / f, str(SIZE), writes, cluster)
        images.append((g, f, "Plain" if plain_base else "Compressed"))  # as ploop writes
        paths.append(d / f)
    xml = pf.descriptor(d, images, SIZE // 512, root=root,
                        blocksize=(pf.parse(paths[-1])[0]["tracks"]))
    return d, xml, list(reversed(paths)), images


@pytest.mark.parametrize("root", ["Parallels_disk_image", "Virtuozzo_disk_image"])
@pytest.mark.parametrize("how", ["dir", "xml", "explicit"])
def test_chain_reads_like_qemu(ligero, need_qemu, raw, tmp_path, root, how):
    d, xml, paths, images = make_chain(tmp_path, raw, 2, root)
    hashes = {p: sha256(p) for p in paths + [xml]}
    src = {"dir": [d], "xml": [xml], "explicit": ["-f", "ploop", d]}[how]
    want = pf.expected_chain(paths, SIZE)
    assert want == convert_raw("qemu-img", qemu_chain_json(paths), tmp_path / "q.raw")
    assert want != raw.read_bytes()
    assert convert_raw(ligero, src[-1], tmp_path / "l.raw", *src[:-1]) == want
    (tmp_path / "want.raw").write_bytes(want)
    assert run_cmd(ligero, "img", "compare", *src, tmp_path / "want.raw").returncode == 0
    settle(*paths)
    info = json.loads(ligero_ok(ligero, "img", "info", "--output=json", *src).stdout)
    assert (info["format"], info["virtual-size"]) == ("ploop", SIZE)
    spec = info["format-specific"]["data"]
    assert [i["guid"] for i in spec["images"]] == [g for g, _, _ in reversed(images)]
    assert [i["filename"] for i in spec["images"]] == [str(p) for p in paths]
    assert info["actual-size"] == sum(os.stat(p).st_blocks * 512 for p in paths)
    p = run_cmd(ligero, "img", "check", *src)
    assert p.returncode == 0 and "No errors" in p.stdout
    assert {p: sha256(p) for p in paths + [xml]} == hashes


def check_map_points_at_data(ligero, src, want):
    """Every extent img map names holds the guest's bytes at that offset of that file."""
    out = ligero_ok(ligero, "img", "map", src).stdout.splitlines()
    assert out[0].split() == ["Offset", "Length", "Mapped", "to", "File"]
    n = 0
    for line in out[1:]:
        off, length, host, name = line.split(maxsplit=3)
        off, length, host = int(off, 16), int(length, 16), int(host, 16)
        with open(name, "rb") as f:
            f.seek(host)
            assert f.read(length) == want[off:off + length], line
        n += length
    return n


def test_chain_map_and_sparse(ligero, need_qemu, raw, tmp_path):
    d, xml, paths, _ = make_chain(tmp_path, raw, 3)
    want = pf.expected_chain(paths, SIZE)
    mapped = check_map_points_at_data(ligero, d, want)
    ext = json.loads(ligero_ok(ligero, "img", "map", "--output=json", d).stdout)
    assert sum(e["length"] for e in ext if e["data"]) == mapped
    assert all(e["zero"] and not e["present"] for e in ext if not e["data"])
    assert sum(e["length"] for e in ext) == SIZE
    # A zero range of the guest is unmapped everywhere: convert leaves it out
    out = tmp_path / "out.qcow2"
    ligero_ok(ligero, "img", "convert", "-O", "qcow2", d, out)
    (tmp_path / "want.raw").write_bytes(want)
    assert run_cmd("qemu-img", "compare", out, tmp_path / "want.raw").returncode == 0
    q = json.loads(run_cmd("qemu-img", "map", "--output=json", out, check=True).stdout)
    assert sum(e["length"] for e in q if e["data"]) <= mapped
    assert want == convert_raw("qemu-img", qemu_chain_json(paths), tmp_path / "q.raw")


def test_chain_plain_base(ligero, need_qemu, raw, tmp_path):
    """A raw base (read raw even where its guest wrote a parallels magic) under a delta that,
    as ploop writes it, says Plain too."""
    with open(raw, "r+b") as f:
        f.write(pf.header_bytes(pf.V2, 8, 10, 80, 8))
    d, xml, paths, _ = make_chain(tmp_path, raw, 2, plain_base=True)
    assert "<Type>Compressed</Type>" not in xml.read_text()
    want = bytearray(raw.read_bytes())
    top = pf.expected_chain(paths[:1], SIZE)
    h, bat = pf.parse(paths[0])
    cl = h["tracks"] * 512
    for i, e in enumerate(bat):
        if e:
            want[i * cl:(i + 1) * cl] = top[i * cl:(i + 1) * cl]
    assert convert_raw(ligero, d, tmp_path / "l.raw") == bytes(want[:SIZE])
    check_map_points_at_data(ligero, d, bytes(want))


def test_chain_in_use_top(ligero, need_qemu, raw, tmp_path):
    d, xml, paths, _ = make_chain(tmp_path, raw, 2)
    poke(paths[0], 44, "I", pf.INUSE)
    msg = one_line_error(run_cmd(ligero, "img", "info", d), paths[0])
    assert "marked in use" in msg
    p = run_cmd(ligero, "img", "info", "-U", d)
    assert p.returncode == 0 and p.stderr.strip() == (
        f"ligero: warning: {paths[0]}: image is marked in use (the container may be running); "
        "reading it anyway")
    p = run_cmd(ligero, "img", "check", d)
    assert p.returncode == 2 and f"{paths[0]}: ERROR image is marked in use" in p.stderr


def test_filesystem_in_a_chain(ligero, need_qemu, tmp_path):
    """ligero fs reads an ext4 filesystem through a base and a delta that changed it, as
    debugfs reads the same filesystem written to a raw file."""
    if run_cmd("which", "debugfs").returncode:
        pytest.skip("debugfs is not installed")
    old, new = tmp_path / "old.raw", tmp_path / "new.raw"
    fill(old, 32 * MiB, [])
    run_cmd("mkfs.ext4", "-q", "-F", old, check=True)
    (tmp_path / "a").write_text("first version\n")
    (tmp_path / "b").write_text("new file\n" * 1000)
    run_cmd("debugfs", "-w", "-R", f"write {tmp_path / 'a'} hello", old, check=True)
    new.write_bytes(old.read_bytes())
    (tmp_path / "a").write_text("second version\n")
    for cmd in ("rm hello", f"write {tmp_path / 'a'} hello", f"write {tmp_path / 'b'} added"):
        run_cmd("debugfs", "-w", "-R", cmd, new, check=True)
    d = tmp_path / "root.hdd"
    d.mkdir()
    pf.parallels_from_raw(old, d / "root.hdd")
    top = f"root.hdd.{pf.guid()}"
    pf.delta_between(old, new, d / top)
    pf.descriptor(d, [(pf.guid(), "root.hdd", "Compressed"), (pf.TOP_GUID, top, "Compressed")],
                  32 * MiB // 512)
    assert convert_raw(ligero, d, tmp_path / "l.raw") == new.read_bytes()
    assert ligero_ok(ligero, "fs", "cat", d, "/hello").stdout == "second version\n"
    assert ligero_ok(ligero, "fs", "cat", d, "/added").stdout == "new file\n" * 1000
    names = set(ligero_ok(ligero, "fs", "ls", d, "/").stdout.split())
    want = run_cmd("debugfs", "-R", "ls -l /", new, check=True).stdout
    assert names == {line.split()[-1] for line in want.splitlines() if line.strip()} - {".", ".."}


def test_write_refused(ligero, need_qemu, raw, tmp_path):
    d, xml, paths, _ = make_chain(tmp_path, raw, 2)
    hashes = [sha256(p) for p in paths + [xml]]
    for src in (d, xml):
        msg = one_line_error(run_cmd(ligero, "img", "io", "-c", "write 0 512", src), src)
        assert "read-only" in msg
    assert [sha256(p) for p in paths + [xml]] == hashes


def xml_case(tmp_path, raw, name):
    """A broken disk: returns (path to open, phrase the error must hold)."""
    d, xml, paths, images = make_chain(tmp_path, raw, 3)
    text = xml.read_text()
    (g0, f0, _), (g1, f1, _), (g2, f2, _) = images

    def sub(old, new, count=1):
        assert old in text, old
        xml.write_text(text.replace(old, new, count))

    if name == "loop":
        sub(f"<ParentGUID>{pf.NONE_GUID}</ParentGUID>", f"<ParentGUID>{g2}</ParentGUID>")
        return d, "loops back"
    if name == "missing-file":
        (d / f1).unlink()
        return d, f1
    if name == "unknown-guid":
        bogus = pf.guid()
        sub(f"<ParentGUID>{g1}</ParentGUID>", f"<ParentGUID>{bogus}</ParentGUID>")
        return d, bogus
    if name == "garbage":
        xml.write_text(text[: len(text) // 2] + "\x00<<&&")
        return d, "not well-formed XML"
    if name == "doctype":
        xml.write_text(text.replace('<?xml version="1.0"?>',
                                    '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e '
                                    '"aaaaaaaa">]>'))
        return d, "DOCTYPE"
    if name == "entity-in-text":
        xml.write_text(text.replace('<?xml version="1.0"?>',
                                    '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e '
                                    f'"{f0}">]>').replace(f"<File>{f0}</File>", "<File>&e;</File>"))
        return d, "DOCTYPE"
    if name == "key-id":
        sub("    <Padding>0</Padding>", "    <Padding>0</Padding>\n    <Encryption>\n"
            "      <KeyId>4b1d0000-feed</KeyId>\n    </Encryption>")
        return d, "encrypted"
    if name == "engine":
        sub("    <Padding>0</Padding>", "    <Padding>0</Padding>\n    <Encryption>\n"
            "      <Engine>{1b2f69c1-8ac2-4b3b-8f40-2bb6bf1c8fd5}</Engine>\n"
            "      <Data>ZZZZ</Data>\n    </Encryption>")
        return d, "encrypted"
    if name == "split":
        i = text.index("    <Storage>")
        j = text.index("    </Storage>") + len("    </Storage>\n")
        xml.write_text(text[:j] + text[i:j] + text[j:])
        return d, "split"
    if name == "root":
        xml.write_text(text.replace("Parallels_disk_image", "domain"))
        return d, "root element"
    if name == "size":
        sub(f"<Disk_size>{SIZE // 512}</Disk_size>", f"<Disk_size>{SIZE // 512 + 4096}"
            "</Disk_size>")
        return d, "Disk_size"
    if name == "blocksize":
        sub("<Blocksize>2048</Blocksize>", "<Blocksize>128</Blocksize>")
        return d, "Blocksize"
    if name == "type":
        sub("<Type>Compressed</Type>", "<Type>Encrypted</Type>")
        return d, "Type"
    if name == "no-top":  # no <TopGUID>, and the top is not ploop's fixed GUID
        other = "{11111111-2222-3333-4444-555555555555}"
        xml.write_text(text.replace(f"    <TopGUID>{g2}</TopGUID>\n", "").replace(g2, other))
        return d, "on top"
    if name == "same-file":
        sub(f"<File>{f1}</File>", f"<File>{f2}</File>")
        return d, "same file"
    if name == "bad-guid":
        sub(f"<GUID>{g0}</GUID>", "<GUID>root</GUID>")
        return d, "not a GUID"
    if name == "huge-size":
        sub(f"<Disk_size>{SIZE // 512}</Disk_size>", "<Disk_size>99999999999999999999999"
            "</Disk_size>")
        return d, "Disk_size"
    if name == "empty":
        xml.write_text("")
        return d, "too small"
    if name == "absolute-missing":
        sub(f"<File>{f0}</File>", "<File>/nonexistent/ploop/base.hdd</File>")
        return d, "/nonexistent/ploop/base.hdd"
    raise AssertionError(name)


XML_CASES = ["loop", "missing-file", "unknown-guid", "garbage", "doctype", "entity-in-text",
             "key-id", "engine", "split", "root", "size", "blocksize", "type", "no-top",
             "same-file", "bad-guid", "huge-size", "empty", "absolute-missing"]


@pytest.mark.parametrize("name", XML_CASES)
def test_hostile_descriptor(ligero, need_qemu, raw, tmp_path, name):
    src, phrase = xml_case(tmp_path, raw, name)
    files = sorted(p for p in Path(src).iterdir())
    hashes = [sha256(p) for p in files]
    for args in (["info", src], ["info", "-f", "ploop", src / "DiskDescriptor.xml"],
                 ["convert", "-O", "raw", src, tmp_path / "o.raw"]):
        msg = one_line_error(run_cmd(ligero, "img", *args), src)
        assert phrase in msg, msg
    assert [sha256(p) for p in files] == hashes
    assert not (tmp_path / "o.raw").exists()


def test_descriptor_text_in_raw_disk_not_followed(ligero, raw, tmp_path):
    """A raw disk whose first sector a guest filled with descriptor text naming host files is
    not taken for a ploop disk by probing: only a file named DiskDescriptor.xml is."""
    disk = tmp_path / "guest.img"
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret" * 100)
    g = pf.guid()
    text = pf.descriptor(tmp_path, [(g, str(secret), "Plain")], 2, name="x.xml").read_bytes()
    disk.write_bytes(text + bytes(MiB - len(text)))
    msg = one_line_error(run_cmd(ligero, "img", "convert", "-O", "raw", disk, tmp_path / "o"),
                         disk)
    assert "-f ploop" in msg
    assert ligero_ok(ligero, "img", "info", "-f", "raw", disk).returncode == 0


def test_directory_without_descriptor(ligero, tmp_path):
    msg = one_line_error(run_cmd(ligero, "img", "info", tmp_path), tmp_path)
    assert "is a directory" in msg
    msg = one_line_error(run_cmd(ligero, "img", "info", "-f", "ploop", tmp_path), tmp_path)
    assert "DiskDescriptor.xml" in msg


def test_info_human(ligero, need_qemu, raw, tmp_path):
    d, xml, paths, images = make_chain(tmp_path, raw, 2)
    out = ligero_ok(ligero, "img", "info", d).stdout
    assert re.search(r"^file format: ploop$", out, re.M)
    assert f"virtual size: 20 MiB ({SIZE} bytes)" in out
    assert f"top guid: {pf.TOP_GUID}" in out
    for p in paths:
        assert f"filename: {p}" in out
