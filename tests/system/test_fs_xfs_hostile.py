"""Damaged and hostile XFS images: a field at a time is corrupted with xfs_db -x (write -d keeps
v5 CRCs valid so the field's own check is what is tested; write -c breaks the CRC on purpose).
Every verb must either work or fail with one line naming the image and what is wrong: no crash,
no sanitizer report (run this file with LIGERO=build-asan/ligero too), no hang."""
import os
import shutil
import subprocess

import pytest

from fs_fixtures import need, run
from xfs_fixtures import SMALL, lgx, make_spec, mkfs_xfs, write_proto, xfs_db

# A sanitizer's report must not pass for ligero's own "exit 1".
os.environ.setdefault("ASAN_OPTIONS", "exitcode=99:detect_leaks=1")
os.environ.setdefault("UBSAN_OPTIONS", "halt_on_error=1:exitcode=98:print_stacktrace=1")

LEAF = {4096: 8388608}  # the leaf/node space (32 GiB) in 4 KiB blocks


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Small v5 and v4 images holding every directory form, a multi-extent file and links."""
    need("mkfs.xfs", "xfs_db")
    d = tmp_path_factory.mktemp("xfshostile")
    spec = make_spec(big=200 * 1024, long_symlink=False)
    for p, e in spec.items():
        if p.startswith("/d5000/"):
            e.data = b""  # no data blocks: keeps the image small
    write_proto(spec, d / "src", d / "proto")
    out = {}
    for name, opts in [("v5", []), ("v4", ["-m", "crc=0"])]:
        out[name] = mkfs_xfs(d / f"{name}.img", "32M", opts, d / "proto", small=True)
    return out


def corrupt(bases, tmp_path, base, *cmds):
    img = tmp_path / f"bad-{base}.img"
    run("cp", "--sparse=always", bases[base], img)
    if cmds:
        xfs_db(img, *cmds, expert=True)
    return img


def check_fails(img, args, want):
    p = lgx(*[img if a == "IMG" else a for a in args], check=False)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, (args, p.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ligero: {img}"), err
    for w in want:
        assert w in lines[0], (w, err)


def survive(img, tmp_path):
    """Whole-tree walks reach whatever is damaged: each ends in success or one clean line."""
    out = tmp_path / "walk"
    out.mkdir(exist_ok=True)
    for args in (["ls", "-lR", img, "/"], ["copy-out", img, "/", out],
                 ["inspect", img], ["list", img]):
        p = lgx(*args, check=False)
        err = p.stderr.decode(errors="replace")
        assert p.returncode in (0, 1), (args, p.returncode, err)
        assert len(err.strip().splitlines()) <= 1, err
        if p.returncode:
            assert err.startswith("ligero: "), err
    shutil.rmtree(out)


LS = ["ls", "-R", "IMG", "/"]

SB = [
    ("blocksize", "v5", ["sb 0", "write -d blocksize 3000"], LS, ["impossible block size"]),
    ("blocklog", "v5", ["sb 0", "write -d blocklog 20"], LS, ["impossible block size"]),
    ("sectsize", "v5", ["sb 0", "write -d sectsize 1024"], LS, ["impossible sector size"]),
    ("inodesize", "v5", ["sb 0", "write -d inodesize 100"], LS, ["impossible inode size"]),
    ("inopblock", "v5", ["sb 0", "write -d inopblock 3"], LS, ["impossible inodes per block"]),
    ("agblocks", "v5", ["sb 0", "write -d agblocks 1"], LS, ["impossible allocation group size"]),
    ("agcount-0", "v5", ["sb 0", "write -d agcount 0"], LS, ["impossible allocation group count"]),
    ("agcount-big", "v5", ["sb 0", "write -d agcount 1000000"], LS, ["impossible block count"]),
    ("dblocks", "v5", ["sb 0", "write -d dblocks 0xffffffffffff"], LS, ["impossible block count"]),
    ("dirblklog", "v5", ["sb 0", "write -d dirblklog 9"], LS, ["impossible directory block size"]),
    ("version", "v5", ["sb 0", "write -d versionnum 0xb4a6"], LS,
     ["unsupported superblock version 6"]),
    ("incompat", "v5", ["sb 0", "write -d features_incompat 0x1000b"], LS,
     ["unknown incompat feature 0x10000"]),
    ("needsrepair", "v5", ["sb 0", "write -d features_incompat 0x1b"], LS, ["xfs_repair"]),
    ("realtime", "v5", ["sb 0", "write -d rblocks 100"], LS, ["realtime subvolume"]),
    ("inprogress", "v5", ["sb 0", "write -d inprogress 1"], LS, ["mkfs did not finish"]),
    ("sb-crc", "v5", ["sb 0", "write -c crc 0x1234"], LS, ["bad superblock CRC"]),
    ("rootino-out", "v5", ["sb 0", "write -d rootino 0xffffffffff"], LS,
     ["inode number 1099511627775 is outside the filesystem"]),
    ("rootino-file", "v5", ["path /one", "stack"], LS, []),  # filled in below
    ("v4-dirv1", "v4", ["sb 0", "write versionnum 0x94a4"], LS, ["version 1 directories"]),
    ("v4-asciici", "v4", ["sb 0", "write versionnum 0xf4a4"], LS, ["ascii-ci"]),
    ("v4-features2", "v4", ["sb 0", "write features2 0x1028a", "write bad_features2 0x1028a"],
     LS, ["unknown v4 feature 0x10000"]),
]

INODE = [
    ("root-magic", "v5", ["inode 128", "write -d core.magic 0"], LS, ["inode 128: bad magic"]),
    ("root-crc", "v5", ["inode 128", "write -c v3.crc 0"], LS, ["inode 128: bad CRC"]),
    ("version", "v5", ["path /one", "write -d core.version 2"], ["cat", "IMG", "/one"],
     ["bad inode version"]),
    ("inumber", "v5", ["path /one", "write -d v3.inumber 999"], ["cat", "IMG", "/one"],
     ["records another inode number"]),
    ("free", "v5", ["path /one", "write -d core.mode 0"], ["cat", "IMG", "/one"],
     ["is not in use"]),
    ("type", "v5", ["path /one", "write -d core.mode 0170644"], ["cat", "IMG", "/one"],
     ["unknown file type"]),
    ("format", "v5", ["path /big.bin", "write -d core.format 1"], ["cat", "IMG", "/big.bin"],
     ["data fork format does not match"]),
    ("nextents", "v5", ["path /big.bin", "write -d core.nextents 5000"],
     ["cat", "IMG", "/big.bin"], ["more extents than the inode holds"]),
    ("forkoff", "v5", ["path /big.bin", "write -d core.forkoff 250"], ["cat", "IMG", "/big.bin"],
     ["attribute fork offset past the inode"]),
    ("size", "v5", [], ["cat", "IMG", "/big.bin"], ["impossible size"]),  # see raw_size
    ("nsec", "v5", ["path /one", "write -d v3.bigtime 0", "write -d core.mtime.nsec 2000000000"],
     ["stat", "IMG", "/one"],
     ["nanoseconds out of range"]),
    ("extent-out", "v5", ["path /big.bin", "write -d u3.bmx[0].startblock 0xfffffffff"],
     ["cat", "IMG", "/big.bin"], ["extent outside the filesystem or its allocation group"]),
    ("extent-cross-ag", "v5", ["path /big.bin", "write -d u3.bmx[0].blockcount 2000000"],
     ["cat", "IMG", "/big.bin"], ["extent outside the filesystem or its allocation group"]),
    ("extent-empty", "v5", ["path /big.bin", "write -d u3.bmx[0].blockcount 0"],
     ["cat", "IMG", "/big.bin"], ["empty extent"]),
    ("local-size", "v5", ["path /d5", "write -d core.size 4000"], ["ls", "IMG", "/d5"],
     ["inline data larger than the inode"]),
    ("symlink-len", "v5", ["path /links/short", "write -d core.size 0"],
     ["stat", "IMG", "/links/short"], ["impossible symbolic link length"]),
    ("symlink-nul", "v5", ["path /links/short", "write -d u3.symlink \"..\\000one\""],
     ["stat", "IMG", "/links/short"], ["NUL byte"]),
    ("v4-magic", "v4", ["path /one", "write core.magic 0"], ["cat", "IMG", "/one"],
     ["bad magic"]),
    ("v4-version", "v4", ["path /one", "write core.version 3"], ["cat", "IMG", "/one"],
     ["bad inode version"]),
]

BTREE = [  # /d5000's data fork is a bmap btree: root in the inode, one leaf block
    ("level", "v5", ["path /d5000", "write -d u3.bmbt.level 20"], LS,
     ["impossible btree depth"]),
    ("root-numrecs", "v5", ["path /d5000", "write -d u3.bmbt.numrecs 0"], LS,
     ["impossible btree root record count"]),
    ("ptr-out", "v5", ["path /d5000", "write -d u3.bmbt.ptrs[1] 0xfffffffffff"], LS,
     ["btree block outside the filesystem"]),
    ("ptr-sb", "v5", ["path /d5000", "write -d u3.bmbt.ptrs[1] 0"], LS, ["bad magic"]),
    ("leaf-numrecs", "v5", ["path /d5000", "addr u3.bmbt.ptrs[1]", "write -d numrecs 0"], LS,
     ["impossible record count 0"]),
    ("leaf-level", "v5", ["path /d5000", "addr u3.bmbt.ptrs[1]", "write -d level 3"], LS,
     ["wrong level"]),
    ("leaf-order", "v5", ["path /d5000", "addr u3.bmbt.ptrs[1]", "write -d recs[3].startoff 0"],
     LS, ["extents out of order or overlapping"]),
    ("leaf-crc", "v5", ["path /d5000", "addr u3.bmbt.ptrs[1]", "write -c crc 1"], LS,
     ["bad CRC"]),
    ("leaf-owner", "v5", ["path /d5000", "addr u3.bmbt.ptrs[1]", "write -d owner 128"], LS,
     ["owned by inode 128"]),
    ("leaf-blkno", "v5", ["path /d5000", "addr u3.bmbt.ptrs[1]", "write -d bno 8"], LS,
     ["misdirected"]),
    ("leaf-uuid", "v5", ["path /d5000", "addr u3.bmbt.ptrs[1]",
                         "write -d uuid 01234567-89ab-cdef-0123-456789abcdef"], LS,
     ["UUID mismatch"]),
    ("v4-ptr-sb", "v4", ["path /d5000", "write u.bmbt.ptrs[1] 0"], LS, ["bad magic"]),
    ("v4-leaf-numrecs", "v4", ["path /d5000", "addr u.bmbt.ptrs[1]", "write numrecs 1000"], LS,
     ["impossible record count 1000"]),
]

DIRS = [
    ("sf-count", "v5", ["path /d5", "write -d u3.sfdir3.hdr.count 200"], ["ls", "IMG", "/d5"],
     ["short-form entry past the end"]),
    ("sf-namelen", "v5", ["path /d5", "write -d u3.sfdir3.list[2].namelen 0"],
     ["ls", "IMG", "/d5"], ["short-form entry past the end"]),
    ("sf-slash", "v5", ["path /d5", "write -d u3.sfdir3.list[1].name \"a/../../x\""],
     ["ls", "IMG", "/d5"], ["entry name holds '/'"]),
    ("sf-ino-out", "v5", ["path /d5", "write -d u3.sfdir3.list[0].inumber.i4 0xffffffff"],
     ["ls", "IMG", "/d5"], ["entry points outside the filesystem"]),
    ("sf-loop", "v5", ["path /d5", "write -d u3.sfdir3.list[0].inumber.i4 128"],
     ["ls", "-R", "IMG", "/d5"], ["loop"]),
    ("block-magic", "v5", ["path /d50", "dblock 0", "write -d bhdr.hdr.magic 0x58444433"],
     ["ls", "IMG", "/d50"], ["bad directory block magic"]),
    ("block-namelen", "v5", ["path /d50", "dblock 0", "write -d bu[3].namelen 255"],
     ["ls", "IMG", "/d50"], ["entry past the end of its block"]),
    ("block-tag", "v5", ["path /d50", "dblock 0", "write -d bu[3].tag 0x10"],
     ["ls", "IMG", "/d50"], ["entry past the end of its block"]),
    ("block-count", "v5", ["path /d50", "dblock 0", "write -d btail.count 100000"],
     ["ls", "IMG", "/d50"], ["impossible hash entry count"]),
    ("block-crc", "v5", ["path /d50", "dblock 0", "write -c bhdr.hdr.crc 7"],
     ["ls", "IMG", "/d50"], ["bad CRC"]),
    ("block-owner", "v5", ["path /d50", "dblock 0", "write -d bhdr.hdr.owner 128"],
     ["ls", "IMG", "/d50"], ["owned by inode 128"]),
    ("leaf-count", "v5", ["path /d500", f"dblock {LEAF[4096]}", "write -d lhdr.count 60000"],
     ["cat", "IMG", "/d500/entry-00007-nnnnnnn"], ["impossible leaf entry count"]),
    ("leaf-magic", "v4", ["path /d500", f"dblock {LEAF[4096]}", "write lhdr.info.magic 0xd2fe"],
     ["cat", "IMG", "/d500/entry-00007-nnnnnnn"], ["bad leaf block magic"]),
    ("leaf-address", "v5", ["path /d500", f"dblock {LEAF[4096]}"]
     + [f"write -d lents[{i}].address 1" for i in range(502)],
     ["cat", "IMG", "/d500/entry-00007-nnnnnnn"], ["hash index points outside the data space"]),
    ("leaf-address-hole", "v5", ["path /d500", f"dblock {LEAF[4096]}"]
     + [f"write -d lents[{i}].address 0x7fffffff" for i in range(502)],
     ["cat", "IMG", "/d500/entry-00007-nnnnnnn"], ["directory block at file block 4194303 is "
                                                  "not mapped"]),
    ("node-level", "v5", ["path /d5000", f"dblock {LEAF[4096]}", "write -d nhdr.level 9"],
     ["cat", "IMG", "/d5000/entry-00007-nnnnnnn"], ["bad hash btree node"]),
    ("node-count", "v5", ["path /d5000", f"dblock {LEAF[4096]}", "write -d nhdr.count 0"],
     ["cat", "IMG", "/d5000/entry-00007-nnnnnnn"], ["bad hash btree node"]),
    ("node-before", "v5", ["path /d5000", f"dblock {LEAF[4096]}"]
     + [f"write -d nbtree[{i}].before 5" for i in range(16)],
     ["cat", "IMG", "/d5000/entry-00007-nnnnnnn"], ["hash btree points outside the leaf space"]),
    ("node-self", "v5", ["path /d5000", f"dblock {LEAF[4096]}"]
     + [f"write -d nbtree[{i}].before {LEAF[4096]}" for i in range(16)],
     ["cat", "IMG", "/d5000/entry-00007-nnnnnnn"], ["bad hash btree node"]),
    ("v4-block-magic", "v4", ["path /d50", "dblock 0", "write bhdr.magic 0"],
     ["ls", "IMG", "/d50"], ["bad directory block magic"]),
    ("v4-sf-count", "v4", ["path /d5", "write u.sfdir3.hdr.count 200"], ["ls", "IMG", "/d5"],
     ["short-form entry past the end"]),
]


def raw_size(bases, tmp_path):
    """di_size = 2^64-1, past what xfs_db writes (it clamps to 2^63-1, a legal sparse size): the
    bytes go in by hand, then a harmless xfs_db write recomputes the inode's CRC."""
    img = corrupt(bases, tmp_path, "v5")
    where = xfs_db(img, "path /big.bin", "stack")
    off = int(where.split("byte offset ")[1].split(",")[0])
    ino = int(where.split("\tinode ")[1].split(",")[0])
    with open(img, "r+b") as f:
        f.seek(off + 56)
        f.write(b"\xff" * 8)
    xfs_db(img, f"inode {ino}", "write -d core.gen 1", expert=True)
    return img


def rootino_file(bases, tmp_path):
    img = corrupt(bases, tmp_path, "v5")
    ino = int(xfs_db(img, "path /one", "stack").split("inode ")[1].split(",")[0])
    xfs_db(img, "sb 0", f"write -d rootino {ino}", expert=True)
    return img


@pytest.mark.parametrize("case", SB + INODE + BTREE + DIRS,
                         ids=[c[0] for c in SB + INODE + BTREE + DIRS])
def test_hostile(case, bases, tmp_path):
    name, base, cmds, args, want = case
    if name == "rootino-file":
        img, want = rootino_file(bases, tmp_path), ["root inode is not a directory"]
    elif name == "size":
        img = raw_size(bases, tmp_path)
    else:
        img = corrupt(bases, tmp_path, base, *cmds)
    check_fails(img, args, want)
    survive(img, tmp_path)


def test_undamaged_bases_read(bases, tmp_path):
    """The cases above start from images that read cleanly: each failure is the corruption's."""
    for base in bases:
        img = corrupt(bases, tmp_path, base)
        for args in (["ls", "-R", img, "/"], ["cat", img, "/d500/entry-00007-nnnnnnn"],
                     ["cat", img, "/d5000/entry-00007-nnnnnnn"], ["stat", img, "/links/short"]):
            assert lgx(*args).returncode == 0
        survive(img, tmp_path)


def test_truncated_image(bases, tmp_path):
    img = corrupt(bases, tmp_path, "v5")
    os.truncate(img, 16 << 20)
    check_fails(img, LS, ["larger than the 16777216 bytes that hold it"])


def test_partition_smaller_than_filesystem(bases, tmp_path):
    """An XFS whose superblock claims more than its partition holds: refused, not read past."""
    need("sgdisk")
    disk = tmp_path / "disk.img"
    run("truncate", "-s", "64M", disk)
    run("sgdisk", "-n", "1:2048:+20M", "-n", "2:0:+20M", disk)
    with open(bases["v5"], "rb") as s, open(disk, "r+b") as d:
        d.seek(2048 * 512)
        d.write(s.read(20 << 20))
    check_fails(disk, ["ls", f"{disk}:1", "/"], [f"{disk}:1", "larger than the"])


def test_random_bytes_never_crash(bases, tmp_path):
    """Flip bytes all over the metadata (seeded), as a fuzzer would: never a crash or a hang."""
    import random
    rnd = random.Random(7)
    meta = []
    for line in xfs_db(bases["v5"], "path /d5000", "bmap").splitlines():
        parts = line.split()
        if "startblock" in parts:
            meta.append(int(parts[parts.index("startblock") + 1]) * 4096)
    meta += [0, 512, 1024, 1536, 128 * 512]  # superblock, AG headers, the root inode chunk
    for k in range(12):
        img = corrupt(bases, tmp_path, "v5")
        with open(img, "r+b") as f:
            for _ in range(40):
                off = rnd.choice(meta) + rnd.randrange(4096)
                f.seek(off)
                f.write(bytes([rnd.randrange(256)]))
        survive(img, tmp_path)
