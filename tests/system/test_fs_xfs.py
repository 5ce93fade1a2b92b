"""ligero fs ls/cat/stat/copy-out/inspect/mount on XFS, against independent oracles: the spec a
filesystem was built from with mkfs.xfs -p (content, modes, owners, links, devices), xfs_db's
view of every inode (numbers, link counts, times to the nanosecond, data fork format, directory
form), and the kernel's view through a loop mount (hard links, holes, unwritten extents,
fragmented files, nanosecond times)."""
import json
import os
import shutil
import stat
import subprocess

import pytest

from fs_fixtures import LIGERO, MiB, lg, need, run, sfdisk_parts, place, mkfs
from xfs_fixtures import (DIR_SIZES, can_loop_mount, db_inodes, db_time, dir_form, file_format, lgx,
                          loop_mounted, make_spec, mkfs_xfs, parse_fields, sb_fields, write_proto,
                          xfs_db)

# name: mkfs.xfs options, size, small (under 300 MB), v5
CONFIGS = {
    "v5-4k": ([], "320M", False, True),
    "v5-1k": (["-b", "size=1024"], "320M", False, True),
    "v5-dir8k": (["-n", "size=8192"], "320M", False, True),
    "v5-sect4k-nrext64": (["-s", "size=4096", "-i", "nrext64=1"], "320M", False, True),
    "v4-512": (["-m", "crc=0", "-b", "size=512"], "160M", True, False),
    "v4-4k-noftype": (["-m", "crc=0", "-n", "ftype=0"], "160M", True, False),
}

# What each generated directory must be, on every configuration (checked with xfs_db).
WANT_FORMS = {0: "shortform", 5: "shortform", 50: "block", 500: "leaf", 5000: "node"}


@pytest.fixture(scope="module")
def protos(tmp_path_factory):
    """(spec, protofile) for v4 (with a remote symlink) and v5 (without: see make_spec)."""
    need("mkfs.xfs", "xfs_db")
    out = {}
    for v5 in (False, True):
        spec = make_spec(long_symlink=not v5)
        d = tmp_path_factory.mktemp("xfsproto")
        write_proto(spec, d / "src", d / "proto")
        out[v5] = (spec, d / "proto")
    return out


@pytest.fixture(scope="module")
def proto(protos):
    return protos[False][1]


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def image(request, protos, tmp_path_factory):
    opts, size, small, v5 = CONFIGS[request.param]
    img = tmp_path_factory.mktemp("xfsimg") / f"{request.param}.img"
    mkfs_xfs(img, size, opts, protos[v5][1], small)
    return {"img": img, "v5": v5, "name": request.param, "sb": sb_fields(img),
            "spec": protos[v5][0]}


@pytest.fixture
def spec(image):
    return image["spec"]


def stats(img, paths, follow=False):
    """ligero fs stat --output=json for many paths in one run: path -> object."""
    out = lgx("stat", "--output=json", img, *paths).stdout.decode()
    dec, pos, res = json.JSONDecoder(), 0, {}
    while pos < len(out):
        while pos < len(out) and out[pos].isspace():
            pos += 1
        if pos == len(out):
            break
        o, pos = dec.raw_decode(out, pos)
        res[o["path"]] = o
    return res


def sample(spec):
    """Every path but the big directories' entries, and a few of those (first, last, middle)."""
    out = []
    for p in spec:
        parent = p.rsplit("/", 1)[0]
        if parent == "/collide":
            continue
        if parent in (f"/d{n}" for n in DIR_SIZES) and int(parent[2:]) > 5:
            i = int(p.split("-")[1])
            if i not in (0, 1, int(parent[2:]) // 2, int(parent[2:]) - 1):
                continue
        if p != "/":
            out.append(p)
    return out


def test_directory_forms_and_listing(image, spec):
    img, sb = image["img"], image["sb"]
    bl, dl = int(sb["blocklog"]), int(sb["dirblklog"])
    forms = {n: dir_form(img, f"/d{n}", bl, dl) for n in DIR_SIZES}
    assert {n: f[0] for n, f in forms.items()} == WANT_FORMS, forms
    # The node-form directory is fragmented enough that its map is a btree (bmbt blocks).
    assert forms[5000][1] == "btree", forms
    assert dir_form(img, "/collide", bl, dl)[0] == "node"
    listed = [os.fsdecode(x) for x in lgx("ls", "-R", img, "/").stdout.splitlines()]
    assert sorted(listed) == sorted(p for p in spec if p != "/")
    for n in DIR_SIZES:
        names = lg("ls", img, f"/d{n}").stdout.decode().splitlines()
        assert names == sorted(c.rsplit("/", 1)[1] for c in spec[f"/d{n}"].children)


@pytest.mark.slow
def test_every_name_looks_up(image, spec):
    """cat of every file by path: each lookup goes through the hash index (leaf and node
    forms), the in-block search (block form) or the inode (short form). /collide's names share
    one hash (xfs_db agrees), so finding them walks a run of equal hashes across leaf blocks."""
    img = image["img"]
    names = [p.rsplit("/", 1)[1] for p in spec["/collide"].children]
    hashes = {xfs_db(img, f"hash {n}").strip() for n in [names[0], names[1], names[-1]]}
    assert len(hashes) == 1, hashes
    leaves = xfs_db(img, "path /collide", "bmap")
    leaf_blocks = sum(int(m.split()[-3]) for m in leaves.splitlines()
                      if int(m.split()[2]) >= (32 << 30) >> int(image["sb"]["blocklog"]) and
                      int(m.split()[2]) < (64 << 30) >> int(image["sb"]["blocklog"]))
    assert leaf_blocks >> int(image["sb"]["dirblklog"]) >= 3  # a node and at least 2 leaves
    files = [p for p in spec if spec[p].kind == "f"]
    want = b"".join(spec[p].data for p in files)
    got = lgx("cat", img, *files).stdout
    assert got == want


def test_copy_out_matches_spec(image, spec, tmp_path):
    img = image["img"]
    out = tmp_path / "out"
    out.mkdir()
    lg("copy-out", img, "/", out)
    seen = set()
    for dirpath, dirnames, filenames in os.walk(out):
        for n in dirnames + filenames:
            seen.add("/" + os.path.relpath(os.path.join(dirpath, n), out))
    assert seen == set(spec) - {"/"}
    kinds = {"f": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK, "c": stat.S_IFCHR,
             "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    for p, e in spec.items():
        if p == "/":
            continue
        st = os.lstat(out / p[1:])
        assert stat.S_IFMT(st.st_mode) == kinds[e.kind], p
        assert (st.st_uid, st.st_gid) == (e.uid, e.gid), p
        if e.kind == "l":
            assert os.readlink(out / p[1:]) == e.target, p
            continue
        assert stat.S_IMODE(st.st_mode) == e.mode, p
        if e.kind == "f":
            assert (out / p[1:]).read_bytes() == e.data, p
        if e.kind in "cb":
            assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == e.dev, p


def test_stat_matches_xfs_db(image, spec):
    img, v5 = image["img"], image["v5"]
    paths = sample(spec)
    db = db_inodes(img, paths, v5)
    got = stats(img, paths)
    for p in paths:
        j, d = got[p], db[p]
        assert j["inode"] == d["ino"], p
        if v5:
            assert j["inode"] == int(d["v3.inumber"]), p
        assert j["mode"] == int(d["core.mode"], 8) & 0o7777, p
        assert (j["uid"], j["gid"]) == (int(d["core.uid"]), int(d["core.gid"])), p
        assert j["links"] == int(d["core.nlinkv2"]), p
        assert j["size"] == int(d["core.size"]), p
        assert j["blocks"] * 512 == int(d["core.nblocks"]) << int(image["sb"]["blocklog"]), p
        for t in ["atime", "mtime", "ctime"] + (["crtime"] if v5 else []):
            prefix = "v3" if t == "crtime" else "core"
            assert (j[t], j[f"{t}-nsec"]) == db_time(d, prefix, t), (p, t)


def test_inode_numbers_span_allocation_groups(image, spec):
    """Inode numbers carry the allocation group in their high bits (agblklog + inopblog):
    mkfs spreads directories over the groups, and stat reports the numbers xfs_db does."""
    img, sb = image["img"], image["sb"]
    shift = int(sb["agblklog"]) + int(sb["inopblog"])
    paths = [f"/d{n}" for n in DIR_SIZES] + ["/etc", "/links", "/dev", "/deep", "/modes"]
    got = stats(img, paths)
    groups = {got[p]["inode"] >> shift for p in paths}
    assert len(groups) > 1, groups
    db = db_inodes(img, paths, image["v5"])
    assert all(got[p]["inode"] == db[p]["ino"] for p in paths)


def test_symlinks_and_paths(image, spec):
    img = image["img"]
    assert lg("cat", img, "/links/short").stdout == b"1"
    if "/links/long" in spec:
        assert lg("cat", img, "/links/long").stdout == b"1"  # remote, then local link
        j = stats(img, ["/links/long"])["/links/long"]
        assert j["target"] == spec["/links/long"].target and j["size"] == 995
    assert lg("cat", img, "/links/abs").stdout == spec["/etc/os-release"].data
    assert lg("cat", img, "/links/todir/c/d/e/f/g/h/deep.txt").stdout == b"deep\n"
    assert lg("cat", img, "/deep/a/b/../b/c/./d/../../c/d/e/f/g/h/deep.txt").stdout == b"deep\n"
    assert lg("cat", img, "/../../deep/a/b/c/d/e/f/g/h/deep.txt").stdout == b"deep\n"
    p = lg("cat", img, "/links/loop", check=False)
    assert p.returncode == 1 and b"too many levels of symbolic links" in p.stderr
    p = lg("cat", img, "/links/dangling", check=False)
    assert p.returncode == 1 and b"no such file" in p.stderr
    p = lg("cat", img, "/one/x", check=False)
    assert p.returncode == 1 and b"not a directory" in p.stderr
    p = lg("cat", img, "/names/" + "y" * 256, check=False)
    assert p.returncode == 1 and b"longer than 255" in p.stderr


def test_v5_remote_symlink_without_header_is_refused(tmp_path):
    """mkfs.xfs 6.1 -p writes a v5 remote symlink as bare bytes, without the XSLM header and
    CRC a v5 symlink block has: xfs_db calls the block bad, the kernel fails readlink with
    EFSBADCRC. ligero refuses it too, in one line, and reads everything else."""
    spec = make_spec(long_symlink=True)
    write_proto(spec, tmp_path / "src", tmp_path / "proto")
    img = mkfs_xfs(tmp_path / "bad.img", "320M", [], tmp_path / "proto")
    assert "(bad)" in xfs_db(img, "path /links/long", "dblock 0", "type symlink", "print crc")
    p = lg("stat", img, "/links/long", check=False)
    assert p.returncode == 1
    assert p.stderr.decode().startswith(f"ligero: {img}: xfs: symbolic link block of inode ")
    assert p.stderr.decode().endswith(": bad magic (damaged)\n")
    assert lg("cat", img, "/links/short").stdout == b"1"


def test_inode_version_1(tmp_path, proto):
    """Version 1 inodes keep the link count in the 16-bit di_onlink; xfs_db turns a v2 inode into
    one (on a v4 filesystem) and ligero must read that count, not di_nlink."""
    img = mkfs_xfs(tmp_path / "v1.img", "160M", ["-m", "crc=0"], proto, small=True)
    xfs_db(img, "path /one", "write core.nlinkv2 9", "write core.version 1",
           "write core.nlinkv1 3", expert=True)
    f = parse_fields(xfs_db(img, "path /one", "print core.version core.nlinkv1"))
    assert (f["core.version"], f["core.nlinkv1"]) == ("1", "3")
    j = stats(img, ["/one"])["/one"]
    assert j["links"] == 3 and j["size"] == 1
    assert lg("cat", img, "/one").stdout == b"1"


def test_write_verbs_refuse_xfs(tmp_path, proto):
    img = mkfs_xfs(tmp_path / "ro.img", "320M", [], proto)
    before = subprocess.run(["sha256sum", str(img)], capture_output=True).stdout
    for verb in (["write", img, "/x"], ["mkdir", img, "/x"], ["rm", img, "/one"],
                 ["chmod", img, "0600", "/one"], ["ln", "-s", img, "/a", "/b"],
                 ["copy-in", "/etc/hostname", img, "/"]):
        p = lg(*verb, input=b"x", check=False)
        assert p.returncode == 1, verb
        assert p.stderr.decode() == (f"ligero: {img}: xfs is read-only in ligero; writes need "
                                     "ext2/3/4\n"), verb
    assert subprocess.run(["sha256sum", str(img)], capture_output=True).stdout == before


# ---- a filesystem written by the kernel (loop mount) ------------------------------------------

def populate(root):
    """Content only a running kernel makes: hard links, holes, unwritten and punched extents, a
    file fragmented into a two-level extent btree, nanosecond times, a socket."""
    root.joinpath("links").mkdir()
    root.joinpath("links/a").write_bytes(b"hard\n")
    os.link(root / "links/a", root / "links/b")
    root.joinpath("other").mkdir()
    os.link(root / "links/a", root / "other/c")
    bs = 1024
    # 1500 mapped pieces: data, unwritten, hole, repeating. 1000 extents in a v5 inode's data
    # fork need a btree; with 1 KiB blocks its leaves hold 59 records, so it gets two levels.
    with open(root / "frag", "wb") as f:
        for i in range(1500):
            if i % 3 == 0:
                f.seek(i * 2 * bs)
                f.write(bytes([i % 251 + 1]) * bs)
            elif i % 3 == 1:
                os.posix_fallocate(f.fileno(), i * 2 * bs, bs)
        f.truncate(3001 * bs + 17)
    with open(root / "sparse", "wb") as f:
        f.seek(5 * MiB)
        f.write(b"middle" * 1000)
        f.seek(9 * MiB)
        f.write(b"tail")
        f.truncate(12 * MiB)
    with open(root / "punched", "wb") as f:
        f.write(os.urandom(MiB))
        f.flush()
        for off in range(4096, MiB, 65536):
            subprocess.run(["fallocate", "-p", "-o", str(off), "-l", "8192", str(root / "punched")],
                           check=True)
    with open(root / "prealloc", "wb") as f:
        f.write(b"kept size\n")
        f.flush()
        subprocess.run(["fallocate", "-n", "-o", "0", "-l", str(4 * MiB), str(root / "prealloc")],
                       check=True)
    root.joinpath("big").mkdir()
    for i in range(3000):
        root.joinpath(f"big/file-{i:05d}-{'z' * (i % 50)}").write_bytes(str(i).encode())
    os.mknod(root / "sock", 0o755 | stat.S_IFSOCK)
    os.mknod(root / "fifo", 0o600 | stat.S_IFIFO)
    os.mknod(root / "tty", 0o620 | stat.S_IFCHR, os.makedev(4, 1))
    os.symlink("x" * 1000, root / "longlink")  # two remote blocks with 1 KiB blocks
    os.symlink("links/a", root / "shortlink")
    os.chown(root / "links/a", 1234, 5678)
    every = [os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs]
    for k, p in enumerate(sorted(every, reverse=True)):
        t = 1_700_000_000_123_456_789 + k * 1_000_000_007
        os.utime(p, ns=(t, t + 987_654_321), follow_symlinks=False)


def data_ranges(fd, size):
    """[(start, end)] of a file's data as SEEK_DATA/SEEK_HOLE report it (XFS counts unwritten
    extents as holes)."""
    out, off = [], 0
    while off < size:
        try:
            start = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        out.append((start, end))
        off = end
    return out


def blocks_touched(ranges, bs):
    return len({b for s, e in ranges for b in range(s // bs, (e + bs - 1) // bs)})


def kernel_view(root):
    """path -> what the kernel says of it (lstat, content, link target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            e = {"ino": st.st_ino, "mode": st.st_mode, "nlink": st.st_nlink, "uid": st.st_uid,
                 "gid": st.st_gid, "size": st.st_size, "blocks": st.st_blocks,
                 "atime": st.st_atime_ns, "mtime": st.st_mtime_ns, "ctime": st.st_ctime_ns,
                 "rdev": st.st_rdev}
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    e["data"] = f.read()
                    e["ranges"] = data_ranges(f.fileno(), st.st_size)
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            out["/" + os.path.relpath(p, root)] = e
    return out


@pytest.fixture(scope="module")
def kernel_image(tmp_path_factory):
    """v5, 1 KiB blocks, 8 KiB directory blocks, 64-bit extent counters, filled by the kernel."""
    tmp = tmp_path_factory.mktemp("xfskernel")
    why = can_loop_mount(tmp)
    if why:
        pytest.skip(why)
    img = mkfs_xfs(tmp / "k.img", "320M", ["-b", "size=1024", "-n", "size=8192",
                                            "-i", "nrext64=1"])
    with loop_mounted(img, tmp / "mnt", "noatime") as mnt:
        populate(mnt)
    with loop_mounted(img, tmp / "mnt", "ro", "noatime") as mnt:
        view = kernel_view(mnt)
    return img, view


def test_kernel_written_image_matches_loop_mount(kernel_image, tmp_path):
    img, view = kernel_image
    got = stats(img, sorted(view))
    for p, k in view.items():
        j = got[p]
        assert j["inode"] == k["ino"], p
        assert j["mode"] == stat.S_IMODE(k["mode"]), p
        assert (j["uid"], j["gid"], j["links"]) == (k["uid"], k["gid"], k["nlink"]), p
        assert j["blocks"] == k["blocks"], p
        if not stat.S_ISDIR(k["mode"]):
            assert j["size"] == k["size"], p
        for t in ("atime", "mtime", "ctime"):
            assert j[t] * 10**9 + j[f"{t}-nsec"] == k[t], (p, t)
        if "target" in k:
            assert j["target"] == k["target"], p
    for p in ["/frag", "/sparse", "/punched", "/prealloc", "/links/b"]:
        assert lg("cat", img, p).stdout == view[p]["data"], p
    out = tmp_path / "out"
    out.mkdir()
    lg("copy-out", img, "/", out)
    for p, k in view.items():
        st = os.lstat(out / p[1:])
        assert stat.S_IFMT(st.st_mode) == stat.S_IFMT(k["mode"]), p
        assert st.st_mtime_ns == k["mtime"], p
        if "data" in k:
            assert (out / p[1:]).read_bytes() == k["data"], p
        if stat.S_ISCHR(k["mode"]):
            assert st.st_rdev == k["rdev"], p
    # Hard links come out as hard links; holes and unwritten extents are not written out:
    # the copy allocates no host block the kernel's data does not touch.
    assert os.stat(out / "links/a").st_ino == os.stat(out / "other/c").st_ino
    host_bs = os.statvfs(out).f_bsize
    for p in ["/frag", "/sparse", "/punched", "/prealloc"]:
        with open(out / p[1:], "rb") as f:
            got = data_ranges(f.fileno(), view[p]["size"])
        assert blocks_touched(got, host_bs) <= blocks_touched(view[p]["ranges"], host_bs), p
    assert os.stat(out / "sparse").st_blocks * 512 < MiB


def test_kernel_written_image_formats(kernel_image):
    """What the kernel image holds, per xfs_db: the forms the test above went through."""
    img, view = kernel_image
    sb = sb_fields(img)
    assert int(sb["features_incompat"], 16) & 0x20  # nrext64
    assert file_format(img, "/frag") == ("btree", 2)
    f = db_inodes(img, ["/frag"])["/frag"]
    assert int(f["core.format"].split()[0]) == 3
    assert "v3.nrext64 = 1" in xfs_db(img, "path /frag", "print v3.nrext64")
    assert dir_form(img, "/big", int(sb["blocklog"]), int(sb["dirblklog"]))[0] == "node"
    assert int(sb["dirblklog"]) == 3
    assert file_format(img, "/longlink") == ("extents", 0)
    bmap = xfs_db(img, "path /frag", "bmap")
    assert " flag 1" in bmap and " flag 0" in bmap  # unwritten and written extents


def test_64bit_inode_numbers(tmp_path):
    """A 4 TiB (sparse) filesystem in 16 groups: the kernel puts each new directory in the next
    group, so inode numbers pass 2^32 and the root's short-form directory stores 8-byte numbers
    (i8count). ligero must split them into group, block and slot as the kernel does."""
    why = can_loop_mount(tmp_path)
    if why:
        pytest.skip(why)
    img = mkfs_xfs(tmp_path / "wide.img", "4T", ["-d", "agcount=16", "-l", "size=64m"])
    with loop_mounted(img, tmp_path / "mnt") as mnt:
        for i in range(1, 11):
            (mnt / f"d{i}").mkdir()
            (mnt / f"d{i}/f").write_text(f"{i}\n")
    with loop_mounted(img, tmp_path / "mnt", "ro") as mnt:
        view = kernel_view(mnt)
    assert max(k["ino"] for k in view.values()) > 1 << 32
    root = parse_fields(xfs_db(img, "inode 128", "print core.format u3.sfdir3.hdr.i8count"))
    assert root["core.format"].startswith("1 ") and int(root["u3.sfdir3.hdr.i8count"]) > 0
    got = stats(img, sorted(view))
    for p, k in view.items():
        assert got[p]["inode"] == k["ino"], p
        assert got[p]["links"] == k["nlink"], p
    assert lgx("cat", img, *[f"/d{i}/f" for i in range(1, 11)]).stdout == \
        b"".join(f"{i}\n".encode() for i in range(1, 11))
    assert sorted(lgx("ls", img, "/").stdout.decode().split()) == sorted(f"d{i}" for i in range(1, 11))


# ---- inspection: RHEL layout, /boot on XFS ---------------------------------------------------

BOOT = {"vmlinuz-5.14.0-362.el9.x86_64": b"kernel 362",
        "initramfs-5.14.0-362.el9.x86_64.img": b"initramfs 362",
        "vmlinuz-5.14.0-284.el9.x86_64": b"kernel 284",
        "initramfs-5.14.0-284.el9.x86_64.img": b"initramfs 284",
        "loader/entries/abc-5.14.0-362.el9.x86_64.conf": b"title AlmaLinux\nlinux /vmlinuz\n"}


def rhel_trees(tmp):
    boot, root = tmp / "boot", tmp / "root"
    for rel, data in BOOT.items():
        (boot / rel).parent.mkdir(parents=True, exist_ok=True)
        (boot / rel).write_bytes(data)
    (root / "etc/sysconfig/network-scripts").mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "etc/os-release").write_text('NAME="AlmaLinux"\nVERSION_ID="9.3"\nID="almalinux"\n'
                                         'PRETTY_NAME="AlmaLinux 9.3 (Shamrock Pampas Cat)"\n')
    (root / "etc/hostname").write_text("alma9\n")
    (root / "etc/fstab").write_text("UUID=1 / xfs defaults 0 0\nUUID=2 /boot xfs defaults 0 0\n")
    (root / "etc/sysconfig/network-scripts/ifcfg-eth0").write_text("DEVICE=eth0\n")
    return boot, root


def proto_from_tree(tree, protofile):
    """A protofile copying a host tree (directories and regular files)."""
    lines = ["x", "0 0", "d--755 0 0"]

    def walk(d):
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isdir(p):
                lines.append(f"{n} d--755 0 0")
                walk(p)
                lines.append("$")
            else:
                lines.append(f"{n} ---644 0 0 {p}")
    walk(tree)
    lines.append("$")
    protofile.write_text("\n".join(lines) + "\n")
    return protofile


@pytest.mark.parametrize("layout", [(1, 2, "xfs"), (1, 2, "ext4"), (2, 3, "xfs")])
def test_inspect_rhel_xfs_boot(layout, tmp_path):
    bootnum, rootnum, roottype = layout
    need("sgdisk")
    boot, root = rhel_trees(tmp_path)
    disk = tmp_path / "rhel.img"
    run("truncate", "-s", "800M", disk)
    args = ["sgdisk"]
    if bootnum == 2:
        args += ["-n", "1:2048:+1M", "-t", "1:ef02"]  # BIOS boot partition first
    args += ["-n", f"{bootnum}:0:+320M", "-n", f"{rootnum}:0:+320M", str(disk)]
    run(*args)
    parts = sfdisk_parts(disk)
    bfs = mkfs_xfs(tmp_path / "boot.fs", "320M", ["-L", "boot"],
                   proto_from_tree(boot, tmp_path / "boot.proto"))
    place(disk, bfs, parts[bootnum]["start"])
    if roottype == "xfs":
        rfs = mkfs_xfs(tmp_path / "root.fs", "320M", [],
                       proto_from_tree(root, tmp_path / "root.proto"))
    else:
        rfs = mkfs(tmp_path / "root.fs", root, 320)
    place(disk, rfs, parts[rootnum]["start"])

    j = json.loads(lg("inspect", "--output=json", disk).stdout)
    assert (j["root-partition"], j["boot-partition"]) == (rootnum, bootnum)
    assert j["os"]["id"] == "almalinux" and j["hostname"] == "alma9"
    assert j["kernels"] == [
        {"version": v, "kernel": f"/vmlinuz-{v}", "initrd": f"/initramfs-{v}.img"}
        for v in ["5.14.0-284.el9.x86_64", "5.14.0-362.el9.x86_64"]]
    assert j["network-config"] == ["/etc/sysconfig/network-scripts/ifcfg-eth0"]
    assert lg("cat", f"{disk}:{bootnum}", "/vmlinuz-5.14.0-362.el9.x86_64").stdout == \
        b"kernel 362"
    listed = json.loads(lg("list", "--output=json", disk).stdout)
    fs = {p["number"]: p.get("filesystem", {}) for p in listed["partitions"]}
    assert fs[bootnum]["type"] == "xfs" and fs[bootnum]["label"] == "boot"


# ---- FUSE, read-only ---------------------------------------------------------------------------

def test_mount_ro_reads_xfs(image, spec, tmp_path):
    if image["name"] != "v5-4k":
        pytest.skip("one configuration is enough for the mount path")
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        pytest.skip(f"/dev/fuse is not usable here: {e.strerror}")
    img = image["img"]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = lg("mount", img, mnt, check=False)  # read-write is refused, with the way out
    assert p.returncode == 1 and b"xfs is read-only" in p.stderr and b"--ro" in p.stderr
    lg("mount", "--ro", img, mnt)
    try:
        assert (mnt / "one").read_bytes() == b"1"
        assert sorted(os.listdir(mnt / "d500")) == \
            sorted(c.rsplit("/", 1)[1] for c in spec["/d500"].children)
        assert os.readlink(mnt / "links/abs") == "/etc/os-release"
        assert stat.S_IMODE(os.stat(mnt / "modes/m1").st_mode) == 0o4755
        with pytest.raises(OSError):
            (mnt / "new").write_bytes(b"x")
    finally:
        lg("umount", mnt, check=False)
