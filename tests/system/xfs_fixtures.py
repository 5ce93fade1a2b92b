"""Helpers for the XFS read tests. The oracles are independent of ligero: a generated tree
described as a spec (what mkfs.xfs -p was told to put in the filesystem), xfs_db's view of the
image, and the Linux kernel's view through a loop mount."""
import calendar
import contextlib
import os
import random
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fs_fixtures import MiB, need, run

# mkfs.xfs refuses filesystems under 300 MB unless these are set (its switch for fstests).
SMALL = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}

# Directory sizes: 0 and 5 entries stay in the inode (short form); with 4 KiB directory blocks
# 50 fill one block (block form), 500 need a leaf (leaf form), 5000 a hash btree (node form).
DIR_SIZES = [0, 5, 50, 500, 5000]


COLLIDE = 1200


def colliding_names(count):
    """Names sharing one xfs_da_hashname value. A 4-byte block adds c0<<21 ^ c1<<14 ^ c2<<7 ^
    c3 to the hash, so flipping the low bit of one byte and the top bit of the next cancels out:
    three such pairs per block, 8 variants of each of 4 blocks, 4096 names. The bytes >= 0x80
    are not UTF-8: names are str through os.fsdecode, as Python gives them."""
    base = b"abcdefghijklmnop"
    out = []
    for v in range(count):
        b = bytearray(base)
        for blk in range(4):
            t = (v >> (3 * blk)) & 7
            i = 4 * blk
            if t & 1:
                b[i + 2] ^= 1
                b[i + 3] ^= 0x80
            if t & 2:
                b[i + 1] ^= 1
                b[i + 2] ^= 0x80
            if t & 4:
                b[i] ^= 1
                b[i + 1] ^= 0x80
        out.append(os.fsdecode(bytes(b)))
    return out


@dataclass
class Entry:
    kind: str  # "f" file, "d" directory, "l" symlink, "c"/"b" device, "p" fifo
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    target: str = ""
    dev: tuple = (0, 0)
    children: list = field(default_factory=list)


def make_spec(seed=20, big=3 * MiB, long_symlink=True):
    """path -> Entry, parents before children. Names need no quoting in a protofile: no
    whitespace, no ':' (comments), none starting with '$'. long_symlink adds a symlink too long
    for the inode: mkfs.xfs 6.1 -p writes those without the v5 block header (the kernel and
    xfs_repair reject them too), so v5 images leave it out."""
    rnd = random.Random(seed)
    spec = {"/": Entry("d", 0o755)}

    def add(path, e):
        spec[path] = e
        parent = path.rsplit("/", 1)[0] or "/"
        spec[parent].children.append(path)

    add("/etc", Entry("d", 0o755))
    add("/etc/os-release", Entry("f", data=b'NAME="AlmaLinux"\nID="almalinux"\nVERSION_ID="9.3"\n'))
    add("/empty", Entry("f", 0o600))
    add("/one", Entry("f", data=b"1"))
    add("/big.bin", Entry("f", 0o755, 1000, 1000, rnd.randbytes(big)))
    add("/edge.bin", Entry("f", data=rnd.randbytes(4096 * 3 + 1)))
    add("/modes", Entry("d", 0o711, 1001, 1002))
    for i, m in enumerate([0o600, 0o4755, 0o2711, 0o6750, 0o000, 0o777, 0o444]):
        add(f"/modes/m{i}", Entry("f", m, 12345 + i, 54321 - i, f"mode {m:o}\n".encode()))
    add("/names", Entry("d"))
    for n in ["x" * 255, "ñ" * 127 + "a", "-dash", "semi;colon", "back\\slash", "quote'\"",
              ".hidden", "a", "é", "dollar$in"]:
        add(f"/names/{n}", Entry("f", data=n.encode() + b"\n"))
    add("/deep", Entry("d"))
    p = "/deep"
    for c in "abcdefgh":
        p += "/" + c
        add(p, Entry("d", 0o750, 7, 8))
    add(p + "/deep.txt", Entry("f", data=b"deep\n"))
    add("/links", Entry("d"))
    add("/links/short", Entry("l", 0o777, target="../one"))
    add("/links/abs", Entry("l", 0o777, 7, 8, target="/etc/os-release"))
    add("/links/dangling", Entry("l", 0o777, target="does/not/exist"))
    add("/links/todir", Entry("l", 0o777, target="../deep/a/b"))
    add("/links/loop", Entry("l", 0o777, target="loop"))
    if long_symlink:
        # 995 bytes: out of the inode (remote), two blocks when blocks are 512 bytes.
        add("/links/long", Entry("l", 0o777, target="./" * 495 + "short"))
    add("/dev", Entry("d"))
    add("/dev/null", Entry("c", 0o666, dev=(1, 3)))
    add("/dev/sda1", Entry("b", 0o660, 0, 6, dev=(8, 1)))
    add("/dev/big", Entry("c", 0o600, dev=(259, 70000)))
    add("/dev/fifo", Entry("p", 0o644))
    # 1200 names with one hash value: their leaf entries run across several leaf blocks of a
    # node-form directory, which a lookup must follow by the leaves' sibling links.
    add("/collide", Entry("d", 0o755))
    for i, name in enumerate(colliding_names(COLLIDE)):
        add(f"/collide/{name}", Entry("f", 0o644, data=f"c{i}\n".encode()))
    for n in DIR_SIZES:
        add(f"/d{n}", Entry("d", 0o755))
        for i in range(n):
            name = f"entry-{i:05d}-" + "n" * (i % 40)
            add(f"/d{n}/{name}", Entry("f", 0o644, data=f"{n}/{i}\n".encode()))
    return spec


def write_proto(spec, srcdir, protofile):
    """A protofile (mkfs.xfs(8), PROTOTYPE FILES) building spec, with file contents in srcdir."""
    srcdir = Path(srcdir)
    srcdir.mkdir(parents=True, exist_ok=True)
    lines = ["ligero-test", "0 0"]
    count = [0]

    def mode_str(e):
        return ("u" if e.mode & 0o4000 else "-") + ("g" if e.mode & 0o2000 else "-") + \
            f"{e.mode & 0o777:03o}"

    def emit(path, e, name):
        t = {"f": "-", "d": "d", "l": "l", "c": "c", "b": "b", "p": "p"}[e.kind]
        head = f"{name} {t}{mode_str(e)} {e.uid} {e.gid}".lstrip()
        if e.kind == "f":
            count[0] += 1
            src = srcdir / str(count[0])
            src.write_bytes(e.data)
            lines.append(f"{head} {src}")
        elif e.kind == "l":
            lines.append(f"{head} {e.target}")
        elif e.kind in "cb":
            lines.append(f"{head} {e.dev[0]} {e.dev[1]}")
        else:
            lines.append(head)
        if e.kind == "d":
            for c in e.children:
                emit(c, spec[c], c.rsplit("/", 1)[1])
            lines.append("$")

    emit("/", spec["/"], "")
    lines.append("$")
    Path(protofile).write_text("\n".join(lines) + "\n", errors="surrogateescape")


def lgx(*args, check=True):
    """`ligero fs ARGS...` whose failure message does not repeat thousands of arguments."""
    p = subprocess.run([os.environ.get("LIGERO", str(Path(__file__).resolve().parents[2] /
                                                        "build" / "ligero")), "fs"] +
                       [str(a) for a in args], capture_output=True)
    if check and p.returncode != 0:
        shown = " ".join(str(a) for a in args[:4]) + (" ..." if len(args) > 4 else "")
        raise AssertionError(f"ligero fs {shown} failed ({p.returncode}): "
                             f"{p.stderr.decode(errors='replace')}")
    return p


def mkfs_xfs(img, size, opts=(), proto=None, small=False):
    need("mkfs.xfs")
    if os.path.exists(img):
        os.unlink(img)
    run("truncate", "-s", size, img)
    env = dict(os.environ, **SMALL) if small else None
    args = ["mkfs.xfs", "-q", "-f", *opts] + (["-p", proto] if proto else []) + [img]
    run(*args, env=env)
    return img


# ---- xfs_db, the second oracle ----------------------------------------------------------------

def xfs_db(img, *cmds, expert=False):
    need("xfs_db")
    args = ["xfs_db", "-x" if expert else "-r"]
    for c in cmds:
        args += ["-c", c]
    p = subprocess.run(args + [str(img)], capture_output=True, text=True,
                       env=dict(os.environ, TZ="UTC"))
    bad = ("not found", "parsing error", "bad option", "invalid option", "no current",
           "not allowed", "unknown command", "bad value")
    if p.returncode != 0 or (expert and any(b in p.stdout + p.stderr for b in bad)):
        raise AssertionError(f"xfs_db {cmds[:6]} failed: {p.stdout[-2000:]} {p.stderr}")
    return p.stdout


def parse_fields(text):
    """'a.b = v' lines -> {'a.b': 'v'}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+) = (.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def db_time(fields, prefix, name):
    """An inode timestamp from xfs_db's print (seconds as a UTC date) as (sec, nsec)."""
    sec = fields[f"{prefix}.{name}.sec"]
    t = calendar.timegm(time.strptime(sec, "%a %b %d %H:%M:%S %Y"))
    return t, int(fields[f"{prefix}.{name}.nsec"])


def db_inodes(img, paths, v5=True):
    """For each path, what xfs_db says of its inode (one xfs_db run for all of them)."""
    cmds = []
    for p in paths:
        cmds += [f"path {p}", "print core.mode core.uid core.gid core.nlinkv2 core.onlink "
                 "core.size core.nblocks core.format core.version core.atime core.mtime "
                 "core.ctime" + (" v3.inumber v3.crtime" if v5 else ""), "stack", "echo ---"]
    text = xfs_db(img, *cmds)
    chunks = re.split(r"^--- ?$", text, flags=re.M)
    out = {}
    for p, chunk in zip(paths, chunks):
        f = parse_fields(chunk)
        f["ino"] = int(re.search(r"\tinode (\d+)", chunk).group(1))
        out[p] = f
    return out


def db_ino(img, path):
    """An inode number, as xfs_db's `path` + `inode` report it (works on v4 too)."""
    text = xfs_db(img, f"path {path}", "stack")
    m = re.search(r"inode (\d+)", text)
    assert m, text
    return int(m.group(1))


def dir_form(img, path, blocklog, dirblklog=0):
    """Which directory form xfs_db sees: shortform, block, leaf or node (with the data fork
    format: extents or btree)."""
    f = parse_fields(xfs_db(img, f"path {path}", "print core.format core.size"))
    fmt = f["core.format"].split()[1].strip("()")
    if fmt == "local":
        return "shortform", fmt
    leaf_fb = (32 << 30) >> blocklog
    bmap = xfs_db(img, f"path {path}", "bmap")
    ends = [int(m.group(1)) + int(m.group(2))
            for m in re.finditer(r"data offset (\d+) startblock \d+ \(\S+\) count (\d+)", bmap)]
    last = max(ends)
    if last == 1 << dirblklog:
        return "block", fmt
    text = xfs_db(img, f"path {path}", f"dblock {leaf_fb}", "print")
    m = re.search(r"^[ln]hdr\.info\.(?:hdr\.)?magic = (0x[0-9a-f]+)$", text, re.M)
    magic = m.group(1) if m else None
    if magic in ("0x3df1", "0xd2f1"):
        return "leaf", fmt
    if magic in ("0x3ebe", "0xfebe", "0x3dff", "0xd2ff"):
        return "node", fmt  # (a hash btree may still be a single leaf: magic ...ff)
    raise AssertionError(f"{path}: unknown directory form: {magic}")


def file_format(img, path):
    """(data fork format, btree levels or 0) as xfs_db reports them."""
    f = parse_fields(xfs_db(img, f"path {path}", "print core.format core.version"))
    fmt = f["core.format"].split()[1].strip("()")
    if fmt != "btree":
        return fmt, 0
    u = "u3" if f["core.version"] == "3" else "u"
    f = parse_fields(xfs_db(img, f"path {path}", f"print {u}.bmbt.level"))
    return fmt, int(f[f"{u}.bmbt.level"])


def sb_fields(img):
    return parse_fields(xfs_db(img, "sb 0", "print"))


# ---- loop mounts (root only) -------------------------------------------------------------------

def can_loop_mount(tmp_path):
    """None when this machine can loop-mount an XFS image, else why not."""
    if os.geteuid() != 0:
        return "loop mounts need root"
    if not shutil.which("mount") or not os.path.exists("/dev/loop-control"):
        return "no loop devices"
    with open("/proc/filesystems") as f:
        if "xfs" not in f.read():
            return "the kernel has no xfs"
    return None


@contextlib.contextmanager
def loop_mounted(img, mnt, *opts):
    mnt = Path(mnt)
    mnt.mkdir(exist_ok=True)
    o = ",".join(("loop",) + opts)
    p = subprocess.run(["mount", "-o", o, str(img), str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot loop-mount an xfs image here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
