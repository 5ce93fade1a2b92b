"""Fixtures of the `ligero migrate` tests and bench: OpenVZ-like containers and the bases they
migrate onto, built without ligero.

- Debian 12 trees installed by debootstrap (--variant=minbase) from the mirror apt's own
  sources name, cached as tarballs in $LIGERO_CACHE/migrate/: a container (systemd, ifupdown)
  and a base (the same plus udev, kmod and a kernel package: a stand-in
  linux-image-6.1.0-99-amd64 made here with dpkg-deb, which owns /boot/vmlinuz-6.1.0-99-amd64
  and /lib/modules/6.1.0-99-amd64 and depends on kmod, as a real one does).
- container(tree): vzctl's venet configuration (its debian-add_ip.sh output), what OpenVZ
  templates leave (vzquota, vzfifo, masked gettys, /etc/mtab as a file, commented sysctl
  lines), and data with hard links, xattrs, ACLs, sparse files, device nodes and odd names.
- base_image(tree, path): a GPT qcow2 (BIOS boot partition, ext4 root made by mkfs.ext4 -d);
  cached_base_image(tree, path): the same made from the base tree, once per cached base
  tarball (kept beside it in the cache), copied to path.
- Small synthetic trees for the layout rules (merged and split /usr) and a RHEL layout.
- manifest(root): the kernel's view of a tree (mounted read-only through a loop device),
  the oracle every comparison uses.

`python3 tests/system/migrate_fixtures.py DIR` builds a container tree and a base image in DIR
(bench/migrate.sh uses it).
"""
import fcntl
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

MiB = 1 << 20
SUITE = "bookworm"
KVER = "6.1.0-99-amd64"
HERE = Path(__file__).resolve().parent
VERSION = "3"  # bump to rebuild the cached trees

CT_PACKAGES = "systemd,systemd-sysv,ifupdown,iproute2,iputils-ping,procps,net-tools"
BASE_PACKAGES = CT_PACKAGES + ",udev,kmod"

ODD_NAMES = ["with space", "ñandú-ü", "-dash", "semi;colon", "dollar$name", "back\\slash",
             "quote'\"", "x" * 255, ".hidden", "new\nline"]


def sh(*args, input=None, check=True, env=None, cwd=None):
    p = subprocess.run([str(a) for a in args], input=input, capture_output=True, env=env,
                       cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): "
                             f"{p.stderr.decode(errors='replace')}")
    return p


def cache_dir():
    d = Path(os.environ.get("LIGERO_CACHE") or Path(tempfile.gettempdir()) / "ligero-cache")
    d = d / "migrate"
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def locked(path):
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def mirror():
    """The Debian mirror apt uses for the suite."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        uri = None
        for line in f.read_text().splitlines():
            if line.startswith("URIs:"):
                uri = line.split()[1]
            if line.startswith("Suites:") and SUITE in line.split()[1:] and uri:
                return uri
    p = Path("/etc/apt/sources.list")
    if p.exists():
        for line in p.read_text().splitlines():
            w = line.split()
            if len(w) >= 3 and w[0] == "deb" and w[2] == SUITE:
                return w[1]
    return "http://deb.debian.org/debian"


def fake_kernel_deb(out):
    """linux-image-KVER: /boot's files and a module tree, Depends: kmod."""
    root = Path(tempfile.mkdtemp(dir=out.parent))
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: linux-image-{KVER}\nVersion: 6.1.99-1\nArchitecture: amd64\n"
        "Maintainer: ligero tests <tests@ligero.invalid>\nDepends: kmod\n"
        "Section: kernel\nPriority: optional\n"
        "Description: stand-in kernel for the migrate tests\n")
    rnd = random.Random(99)
    (root / "boot").mkdir()
    (root / f"boot/vmlinuz-{KVER}").write_bytes(rnd.randbytes(200000))
    (root / f"boot/System.map-{KVER}").write_text("ffffffff81000000 T _text\n")
    (root / f"boot/config-{KVER}").write_text("CONFIG_EXT4_FS=y\n")
    mod = root / f"lib/modules/{KVER}/kernel/drivers/net"
    mod.mkdir(parents=True)
    (mod / "virtio_net.ko").write_bytes(rnd.randbytes(30000))
    (root / f"lib/modules/{KVER}/modules.dep").write_text(
        "kernel/drivers/net/virtio_net.ko:\n")
    sh("dpkg-deb", "--root-owner-group", "-b", root, out)
    shutil.rmtree(root)
    return out


def tree_key(kind):
    """The cache key of a debootstrap tree: what it is built from."""
    pkgs = CT_PACKAGES if kind == "container" else BASE_PACKAGES
    return hashlib.sha256(f"{VERSION} {kind} {pkgs} {KVER}".encode()).hexdigest()[:16]


def debootstrap_tree(kind, dest):
    """Extract the cached tree `kind` ("container", "base") into dest, building it first."""
    key = tree_key(kind)
    pkgs = CT_PACKAGES if kind == "container" else BASE_PACKAGES
    cache = cache_dir()
    tarball = cache / f"debian12-{kind}-{key}.tar"
    with locked(cache / f"{kind}.lock"):
        if not tarball.exists():
            work = Path(tempfile.mkdtemp(dir=cache))
            try:
                tree = work / "tree"
                sh("debootstrap", "--variant=minbase", f"--include={pkgs}", SUITE, tree,
                   mirror())
                if kind == "base":
                    deb = fake_kernel_deb(work / "kernel.deb")
                    sh("dpkg", f"--root={tree}", "--force-script-chrootless", "-i", deb)
                    (tree / f"boot/initrd.img-{KVER}").write_bytes(b"initrd")
                    (tree / "etc/fstab").write_text(
                        "UUID=5e1f0c2a-6a39-4c57-9f0e-7f8a1b2c3d4e / ext4 errors=remount-ro "
                        "0 1\n")
                    (tree / "etc/hostname").write_text("base\n")
                    (tree / "usr/lib/udev/rules.d/99-base.rules").write_text("# the VM's\n")
                    (tree / "opt/only-in-base").mkdir(parents=True)
                    (tree / "opt/only-in-base/file").write_text("deleted by migrate\n")
                for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
                    for p in (tree / d).glob("*"):
                        if p.is_file():
                            p.unlink()
                sh("tar", "--numeric-owner", "--xattrs", "--acls", "-C", tree, "-cf",
                   str(tarball) + ".tmp", ".")
                os.rename(str(tarball) + ".tmp", tarball)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    sh("tar", "--numeric-owner", "--xattrs", "--acls", "-C", dest, "-xf", tarball)
    return dest


# ---- what vzctl and OpenVZ templates leave in a Debian container -----------------------

VZ_INTERFACES = """\
# This configuration file is auto-generated.
#
# WARNING: Do not edit this file, your changes will be lost.
# Please create/edit /etc/network/interfaces.head and
# /etc/network/interfaces.tail instead, their contents will be
# inserted at the beginning and at the end of this file, respectively.
#
# NOTE: it is NOT guaranteed that the contents of /etc/network/interfaces.tail
# will be at the very end of this file.
#

# Auto generated lo interface
auto lo
iface lo inet loopback

# Auto generated venet0 interface
auto venet0
iface venet0 inet manual
\tup ifconfig venet0 up
\tup ifconfig venet0 127.0.0.2
\tup route add default dev venet0
\tdown route del default dev venet0
\tdown ifconfig venet0 down


iface venet0 inet6 manual
\tup ifconfig venet0 add 2001:db8::10/64
\tdown ifconfig venet0 del 2001:db8::10/64
\tup route -A inet6 add default dev venet0
\tdown route -A inet6 del default dev venet0

auto venet0:0
iface venet0:0 inet static
\taddress 192.0.2.10
\tnetmask 255.255.255.255

auto venet0:1
iface venet0:1 inet static
\taddress 192.0.2.11
\tnetmask 255.255.255.255

"""

CTID_CONF = """\
# RAM
PHYSPAGES="0:262144"
# Swap
SWAPPAGES="0:131072"
# Disk quota parameters (in form of softlimit:hardlimit)
DISKSPACE="10485760:11534336"
DISKINODES="655360:720896"
QUOTATIME="0"
CPUUNITS="1000"
VE_ROOT="/vz/root/$VEID"
VE_PRIVATE="/vz/private/$VEID"
OSTEMPLATE="debian-12.0-x86_64"
ORIGIN_SAMPLE="vswap-256m"
IP_ADDRESS="192.0.2.10 192.0.2.11 2001:db8::10/64"
HOSTNAME="ct101.example.com"
NAMESERVER="192.0.2.53 2001:db8::53"
SEARCHDOMAIN="example.com"
VE_LAYOUT="simfs"
VEID="101"
"""


def openvz_leftovers(root):
    """What vzctl and the container templates do inside a Debian container."""
    root = Path(root)
    (root / "etc/network/interfaces").write_text(VZ_INTERFACES)
    (root / "etc/hostname").write_text("ct101.example.com\n")
    (root / "etc/resolv.conf").write_text("nameserver 192.0.2.53\nsearch example.com\n")
    (root / "etc/init.d/vzquota").write_text("#!/bin/sh\n# vzquota setup\n")
    os.chmod(root / "etc/init.d/vzquota", 0o755)
    os.symlink("../init.d/vzquota", root / "etc/rc2.d/S10vzquota")
    sysd = root / "etc/systemd/system"
    (sysd / "vzfifo.service").write_text(
        "[Unit]\nDescription=Tell that Container is started\n"
        "[Service]\nType=oneshot\nExecStart=/bin/touch /.vzfifo\n"
        "[Install]\nWantedBy=multi-user.target\n")
    os.symlink("/etc/systemd/system/vzfifo.service",
               sysd / "multi-user.target.wants/vzfifo.service")
    for unit in ("getty@.service", "serial-getty@.service", "systemd-udevd.service"):
        os.symlink("/dev/null", sysd / unit)
    wants = sysd / "getty.target.wants/getty@tty1.service"
    if wants.is_symlink():
        wants.unlink()
    mtab = root / "etc/mtab"
    if mtab.is_symlink() or mtab.exists():
        mtab.unlink()
    mtab.write_text("/dev/simfs / simfs rw 0 0\n")
    sysctl = root / "etc/sysctl.conf"
    sysctl.write_text(sysctl.read_text() + "# kernel.sysrq = 1\n#net.ipv4.ip_forward=1\n")
    # A container's own stand-ins for what the VM owns: never copied.
    (root / "usr/lib/modules/2.6.32-042stab").mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/modules/2.6.32-042stab/junk").write_text("openvz has no modules here\n")
    (root / "boot").mkdir(exist_ok=True)
    (root / "boot/not-a-kernel").write_text("junk\n")
    (root / "etc/fstab").write_text("proc /proc proc defaults 0 0\n")


def data_tree(root, seed=7, big=3 * MiB):
    """Content the copy must keep exactly: /srv/data in the container."""
    rnd = random.Random(seed)
    d = Path(root) / "srv/data"
    d.mkdir(parents=True)
    (d / "big.bin").write_bytes(rnd.randbytes(big))
    (d / "empty").write_bytes(b"")
    for i in range(30):
        (d / f"f{i:02d}").write_bytes(rnd.randbytes(rnd.randrange(0, 20000)))
    odd = d / "odd"
    odd.mkdir()
    for n in ODD_NAMES:
        (odd / n).write_bytes(n.encode() + b"\n")
    with open(d / "sparse", "wb") as f:
        f.seek(5 * MiB)
        f.write(b"middle" * 1000)
        f.seek(9 * MiB)
        f.write(b"tail")
        f.truncate(12 * MiB)
    os.link(d / "f01", d / "f01-link")
    (d / "sub").mkdir()
    os.link(d / "f01", d / "sub/f01-link2")
    os.symlink("../big.bin", d / "sub/rel-link")
    os.symlink("/srv/data/big.bin", d / "abs-link")
    os.symlink("does/not/exist", d / "dangling")
    os.chmod(d / "f02", 0o4755)
    os.chmod(d / "sub", 0o1777)
    os.chown(d / "f03", 1000, 1000)
    os.chown(d / "f04", 12345, 54321)
    os.lchown(d / "abs-link", 7, 8)
    os.setxattr(d / "f05", "user.comment", b"hello xattr")
    os.setxattr(d / "f05", "trusted.bin", bytes(range(256)))
    os.setxattr(d / "sub", "user.dir", b"on a directory")
    sh("setfacl", "-m", "u:1000:rwx,g:1000:r-x", d / "f06")
    sh("setfacl", "-d", "-m", "u:1000:rwx", d / "sub")
    os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(d / "fifo", 0o640)
    for p in sorted(d.rglob("*"), reverse=True):
        t = 1_600_000_000_123_456_789 + rnd.randrange(10**16)
        os.utime(p, ns=(t, t + 1000), follow_symlinks=False)
    return d


def container(dest):
    """A Debian 12 container's private area, as vzctl leaves it."""
    root = debootstrap_tree("container", dest)
    openvz_leftovers(root)
    data_tree(root)
    return root


# ---- images ---------------------------------------------------------------------------------

def base_image(tree, path, size_mb=1536):
    """GPT: 1 = BIOS boot (1 MiB), 2 = ext4 root (the tree); qcow2 at path."""
    path = Path(path)
    raw = path.with_suffix(".raw")
    sh("truncate", "-s", f"{size_mb}M", raw)
    sh("sgdisk", "-n", "1:2048:+1M", "-t", "1:ef02", "-n", "2:0:0", "-t", "2:8300", raw)
    info = json.loads(sh("sfdisk", "--json", raw).stdout)["partitiontable"]["partitions"][1]
    fs = path.with_suffix(".fs")
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-U", "5e1f0c2a-6a39-4c57-9f0e-7f8a1b2c3d4e",
       "-d", tree, fs, f"{info['size'] * 512 // 1024}k")
    with open(fs, "rb") as src, open(raw, "r+b") as dst:
        dst.seek(info["start"] * 512)
        shutil.copyfileobj(src, dst, 4 * MiB)
    fs.unlink()
    sh("qemu-img", "convert", "-O", "qcow2", raw, path)
    raw.unlink()
    return path


IMAGE_VERSION = "1"  # bump when base_image changes what it makes


def cached_base_image(tree, path, size_mb=1536):
    """base_image(tree, path) for the base tree of debootstrap_tree("base", tree): made once per
    cached base tarball (mkfs.ext4 -d of the whole tree takes most of the migrate tests'
    setup) and kept in the cache beside the tarball; each caller gets its own copy."""
    cache = cache_dir()
    cached = cache / f"debian12-base-{tree_key('base')}-{IMAGE_VERSION}-{size_mb}M.qcow2"
    with locked(cache / "base-image.lock"):
        if not cached.exists():
            work = Path(tempfile.mkdtemp(dir=cache))
            try:
                os.rename(base_image(tree, work / "base.qcow2", size_mb), cached)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    sh("cp", "--reflink=auto", "--sparse=always", cached, path)
    return Path(path)


def copy_sparse(src, dst, start, size):
    """Bytes [start, start + size) of src into a new file dst, holes kept (only the data
    extents SEEK_DATA finds are read and written)."""
    with open(src, "rb") as f, open(dst, "wb") as g:
        fd, end, off = f.fileno(), start + size, start
        while off < end:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after off
                break
            if off >= end:
                break
            hole = min(os.lseek(fd, off, os.SEEK_HOLE), end)
            f.seek(off)
            g.seek(off - start)
            left = hole - off
            while left:
                b = f.read(min(left, 4 * MiB))
                assert b, f"{src} ended early"
                g.write(b)
                left -= len(b)
            off = hole
        g.truncate(size)


def root_partition(image, out):
    """The root filesystem of a GPT disk image (partition 2, or the whole disk), raw, via
    qemu-img and sfdisk (not ligero)."""
    raw = Path(str(out) + ".disk")
    sh("qemu-img", "convert", "-O", "raw", image, raw)
    p = sh("sfdisk", "--json", raw, check=False)
    if p.returncode == 0:
        parts = json.loads(p.stdout)["partitiontable"]["partitions"]
        part = parts[1] if len(parts) > 1 else parts[0]
        copy_sparse(raw, out, part["start"] * 512, part["size"] * 512)
        raw.unlink()
    else:
        os.rename(raw, out)
    return Path(out)


@contextmanager
def mounted(fsimg):
    """The kernel's view of an ext4 image: mounted read-only through a loop device."""
    mnt = Path(tempfile.mkdtemp())
    sh("mount", "-o", "ro,loop,noload", fsimg, mnt)
    try:
        yield mnt
    finally:
        sh("umount", mnt)
        mnt.rmdir()


def can_mount():
    return os.geteuid() == 0 and Path("/dev/loop-control").exists() and \
        "ext4" in Path("/proc/filesystems").read_text()


def manifest(root, skip=()):
    """path -> attributes (type, mode, owner, ns mtime, size, sha256, sparse, link target,
    every xattr including ACLs, device numbers); hard links as groups."""
    root = Path(root)
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = "/" + str(p.relative_to(root))
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            st = os.lstat(p)
            e = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
                 "uid": st.st_uid, "gid": st.st_gid}
            if not stat.S_ISDIR(st.st_mode):
                e["mtime"] = st.st_mtime_ns
            if stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(MiB), b""):
                        h.update(chunk)
                e["sha256"] = h.hexdigest()
                e["sparse"] = st.st_blocks * 512 < st.st_size // 2
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["rdev"] = st.st_rdev
            if not stat.S_ISLNK(st.st_mode):
                e["xattrs"] = {k: os.getxattr(p, k, follow_symlinks=False)
                               for k in sorted(os.listxattr(p, follow_symlinks=False))}
            out[rel] = e
    return out, sorted(sorted(g) for g in inodes.values())


if __name__ == "__main__":
    d = Path(sys.argv[1])
    ct = container(d / "ct")
    base = debootstrap_tree("base", d / "base-tree")
    base_image(base, d / "base.qcow2")
    print(ct)
