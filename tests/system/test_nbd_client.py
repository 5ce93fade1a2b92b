"""NBD exports as images: qemu-nbd serves, ligero's nbd driver (libnbd) reads, maps, compares,
converts from and to, and uses the export as a backing file, and every answer must equal
qemu-img's on the same name (nbd+unix://, nbd://, nbds://, nbd:unix:, json:)."""
import json
import os
import shutil

import pytest
from conftest import io_args, run_cmd
from nbd_helpers import HANG, make_certs, qemu_nbd

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("qemu-nbd", "certtool")),
                                reason="needs qemu-nbd (qemu-utils) and certtool (gnutls-bin)")


def tool(*args, check=True):
    return run_cmd(*args, check=check, timeout=HANG)


@pytest.fixture
def chain(img_factory):
    base = img_factory("base.qcow2", "64M", writes=[
        "write -P 0x11 0 1M", "write -P 0x22 4M 64k", "write -P 0x33 16M 2M"])
    top = img_factory("top.qcow2", None, backing=base, writes=[
        "write -P 0x44 512k 1M", "write -z 8M 64k", "write -P 0x55 16M 64k"])
    return base, top


def both(ligero, *args):
    """(ligero img ARGS, qemu-img ARGS): exit codes and output."""
    a = run_cmd(ligero, "img", *args, timeout=HANG)
    b = run_cmd("qemu-img", *args, timeout=HANG)
    return a, b


def assert_same(ligero, *args):
    a, b = both(ligero, *args)
    assert (a.returncode, a.stdout) == (b.returncode, b.stdout), (a.stderr, b.stderr)


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
@pytest.mark.parametrize("export", ["", "disk"])
def test_read_verbs_equal_qemu_img(ligero, chain, tmp_path, tcp, export):
    base, top = chain
    with qemu_nbd(top, tmp_path, "-f", "qcow2", "-r", "-t", "-e", "4", tcp=tcp,
                  export=export) as s:
        for out in ("human", "json"):
            assert_same(ligero, "info", f"--output={out}", s.uri)
            assert_same(ligero, "map", f"--output={out}", s.uri)
        assert_same(ligero, "compare", s.uri, top)
        assert_same(ligero, "compare", "-s", s.uri, top)
        a, b = both(ligero, "check", s.uri)
        assert a.returncode == b.returncode == 63
        tool(ligero, "img", "convert", "-O", "qcow2", s.uri, tmp_path / "copy.qcow2")
        tool("qemu-img", "compare", tmp_path / "copy.qcow2", top)
        tool("qemu-img", "check", tmp_path / "copy.qcow2")
        tool(ligero, "img", "convert", "-O", "raw", s.uri, tmp_path / "copy.raw")
        tool("qemu-img", "compare", "-f", "raw", tmp_path / "copy.raw", top)
        assert s.stop() == 0


def test_other_names(ligero, chain, tmp_path):
    """QEMU's old nbd:unix: syntax and json: names, nested and flattened, under raw too."""
    base, top = chain
    with qemu_nbd(top, tmp_path, "-f", "qcow2", "-r", "-t", "-e", "4") as s:
        names = [f"nbd:unix:{s.sock}",
                 'json:{"driver":"nbd","server":{"type":"unix","path":"%s"}}' % s.sock,
                 'json:{"driver":"raw","file":{"driver":"nbd","server.type":"unix",'
                 '"server.path":"%s"}}' % s.sock]
        for n in names:
            assert_same(ligero, "compare", n, top)
            assert_same(ligero, "map", "--output=json", n)
        bad = run_cmd(ligero, "img", "info", "nbd+unix:///")
        assert bad.returncode != 0 and "socket=" in bad.stderr
        assert s.stop() == 0


def test_nbd_backing_file(ligero, chain, tmp_path):
    """An overlay whose backing file is an NBD export (plain URI made by ligero, json: made by
    qemu-img): opened, mapped and written like any chain, equal to qemu-img's view."""
    base, top = chain
    with qemu_nbd(top, tmp_path, "-f", "qcow2", "-r", "-t", "-e", "8") as s:
        ov = tmp_path / "ov.qcow2"
        tool(ligero, "img", "create", "-f", "qcow2", "-b", s.uri, "-F", "raw", ov)
        ref = tmp_path / "ref.qcow2"
        tool("qemu-img", "create", "-f", "qcow2", "-b", s.uri, "-F", "raw", ref)
        assert_same(ligero, "info", "--output=json", "--backing-chain", ov)
        cmds = ["write -P 0x99 100k 64k", "write -z 16M 4k"]
        tool(ligero, "img", "io", *io_args(cmds), ov)
        tool("qemu-io", *io_args(cmds), ref)
        for out in ("json", "human"):
            a, b = both(ligero, "map", f"--output={out}", ov)
            assert a.stdout == b.stdout.replace(str(ref), str(ov))
        tool("qemu-img", "compare", ov, ref)
        tool("qemu-img", "check", ov)
        js = tmp_path / "js.qcow2"
        tool("qemu-img", "create", "-q", "-u", "-f", "qcow2", "-F", "raw", "-b",
             'json:{"driver":"raw","file":{"driver":"nbd","server":{"type":"unix",'
             '"path":"%s"}}}' % s.sock, js, "64M")
        assert_same(ligero, "map", "--output=json", js)
        assert_same(ligero, "compare", js, top)
        assert s.stop() == 0


def test_convert_into_an_export(ligero, chain, img_factory, tmp_path):
    """convert writes into an existing export (which does not read as zeroes: every zero range
    is written too), as qemu-img convert does."""
    base, top = chain
    target = img_factory("target.raw", "64M", fmt="raw", writes=["write -P 0xff 0 64M"])
    with qemu_nbd(target, tmp_path, "-f", "raw", "-t") as s:
        tool(ligero, "img", "convert", "-O", "raw", top, s.uri)
        tool("qemu-img", "compare", "-f", "raw", "-F", "qcow2", s.uri, top)
        small = run_cmd(ligero, "img", "convert", "-O", "raw", tmp_path / "big.raw", s.uri)
        assert small.returncode != 0
        tool("qemu-img", "create", "-f", "raw", tmp_path / "big.raw", "128M")
        small = run_cmd(ligero, "img", "convert", "-O", "raw", tmp_path / "big.raw", s.uri)
        assert small.returncode != 0 and "smaller" in small.stderr
        q = run_cmd(ligero, "img", "convert", "-O", "qcow2", top, s.uri)
        assert q.returncode != 0 and "NBD" in q.stderr
        assert s.stop() == 0
    tool("qemu-img", "compare", "-f", "raw", "-F", "qcow2", target, top)


def test_qcow2_bytes_over_nbd_refused(ligero, chain, tmp_path):
    """An export that carries a qcow2 file's bytes is refused unless -f raw says so."""
    base, top = chain
    with qemu_nbd(base, tmp_path, "-f", "raw", "-r", "-t") as s:
        p = run_cmd(ligero, "img", "info", s.uri)
        assert p.returncode != 0 and "qcow2" in p.stderr and "-f raw" in p.stderr
        info = json.loads(tool(ligero, "img", "info", "-f", "raw", "--output=json",
                               s.uri).stdout)
        assert info["format"] == "raw"
        assert s.stop() == 0


def test_tls_client(ligero, chain, tmp_path):
    """nbds:// with libnbd's tls-certificates against qemu-nbd with a tls-creds-x509 object."""
    base, top = chain
    creds = make_certs(tmp_path / "pki")
    with qemu_nbd(top, tmp_path, "-f", "qcow2", "-r", "-t", "--object",
                  f"tls-creds-x509,id=tls0,endpoint=server,dir={creds}", "--tls-creds", "tls0",
                  tcp=True) as s:
        uri = f"nbds://localhost:{s.port}/?tls-certificates={creds}"
        tool(ligero, "img", "compare", uri, top)
        plain = run_cmd(ligero, "img", "info", f"nbd://127.0.0.1:{s.port}")
        assert plain.returncode != 0
        assert s.stop() == 0


def fuse_usable():
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError:
        return False
    return all(shutil.which(t) for t in ("mkfs.ext4", "debugfs", "e2fsck"))


@pytest.mark.skipif(not fuse_usable(), reason="needs /dev/fuse and e2fsprogs")
def test_fs_mount_in_background(ligero, tmp_path):
    """fs mount opens the export, then forks to the background: the child serves the mount on
    the connection it inherited, with an I/O thread of its own (the parent's does not exist
    there, and the idle parent never reads the child's replies). Reads through the mount
    equal the file, a write lands in the export (debugfs, e2fsck on the file qemu-nbd serves)."""
    disk = tmp_path / "fs.raw"
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    tool("mkfs.ext4", "-q", "-F", disk)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20) + b"end")
    tool(ligero, "fs", "copy-in", big, disk, "/")
    (tmp_path / "hello").write_bytes(b"hello over nbd\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with qemu_nbd(disk, tmp_path, "-f", "raw", "-t") as s:
        tool(ligero, "fs", "mount", "--disk", s.uri, mnt)
        try:
            tool("cmp", big, mnt / "big")
            tool("cp", tmp_path / "hello", mnt / "hello.txt")
        finally:
            if os.path.ismount(mnt):
                run_cmd(ligero, "fs", "umount", mnt, timeout=HANG)
        assert s.stop() == 0
    tool("e2fsck", "-fn", disk)
    assert tool("debugfs", "-R", "cat /hello.txt", disk).stdout == "hello over nbd\n"
