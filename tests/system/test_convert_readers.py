"""img convert with several source reads in flight (the copy engine's reader threads): from an
NBD export (qemu-nbd) and from RBD (a throwaway Ceph cluster), the output equals the source for
qemu-img compare, passes qemu-img check, keeps the holes, and is byte for byte the same file
whatever -m says (one reader or eight), which is what "written in guest order" means on disk.
A source that dies mid-copy (an NBD server that drops the connection after some reads) ends
the copy with one line naming it and no destination left behind. The NBD driver keeps the
readers' requests in flight on its one connection at once: a server that holds its replies
and answers them out of order sees more than one READ outstanding with several readers, one
with -m 1, and several pieces of one request when it advertises a small maximum block size. A read's
structured reply must cover the whole read: chunks out of order are fine, a reply with bytes
missing or chunks overlapping fails the copy."""
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import threading

import pytest
from ceph_cluster import ceph  # noqa: F401 (fixture)
from conftest import run_cmd
from nbd_helpers import (CMD_DISC, CMD_READ, CMD_WRITE, HANG, IHAVEOPT, NBD_MAGIC, OPT_GO, REP_ACK,
                         REP_INFO, REP_MAGIC, REQ_MAGIC, SIMPLE_MAGIC, qemu_nbd)

pytestmark = pytest.mark.skipif(not shutil.which("qemu-nbd"), reason="needs qemu-nbd")

REP_ERR_UNSUP = 0x80000001
EIO = 5
MIB = 1 << 20


def tool(*args, check=True):
    return run_cmd(*args, check=check, timeout=HANG)


@pytest.fixture
def regions(img_factory):
    """A 72 MiB qcow2 whose data, zeroed ranges and holes start and end at odd offsets, inside
    and across the engine's 4 MiB batches and 64 KiB clusters."""
    writes = []
    for i in range(18):
        at = i * 4 * MIB - (i % 3) * 61440 + (512 if i % 2 else 0)
        if at < 0:
            at = 0
        writes.append(f"write -P {0x20 + i} {at} {(i % 5 + 1) * 300 * 1024}")
    writes += ["write -z 12M 2M", "write -z 33M 70k", "write -P 0x77 71M 1M",
               "write -z 71M 128k", "discard 50M 3M"]
    return img_factory("regions.qcow2", "72M", writes=writes)


def data_ranges(path, fmt):
    out = tool("qemu-img", "map", "-f", fmt, "--output=json", path).stdout
    return [(e["start"], e["start"] + e["length"]) for e in json.loads(out) if e["data"]]


def within(inner, outer, grain=64 * 1024):
    """Every range of inner lies inside the union of outer (widened to whole clusters)."""
    def covered(a, b):
        for s, e in outer:
            if s // grain * grain <= a and b <= -(-e // grain) * grain:
                return True
        return False
    return all(covered(a, b) for a, b in inner)


def convert_all_ways(ligero, src, tmp_path, extra=()):
    """Convert src with one reader (-m 1), the default and eight (-m 16), plain and compressed;
    every output equals the regions image and the outputs of one kind are the same file."""
    outs = {}
    for opts in ((), ("-c",)):
        files = []
        for m in (["-m", "1"], [], ["-m", "16"]):
            out = tmp_path / f"out{''.join(opts)}{''.join(m)}.qcow2"
            tool(ligero, "img", "convert", *extra, *m, *opts, "-O", "qcow2", src, out)
            tool("qemu-img", "check", out)
            files.append(out)
        for f in files[1:]:
            tool("cmp", files[0], f)
        outs[opts] = files[0]
    return outs


def test_nbd_source_several_reads_in_flight(ligero, regions, tmp_path):
    with qemu_nbd(regions, tmp_path, "-f", "qcow2", "-r", "-t", "-e", "8") as s:
        outs = convert_all_ways(ligero, s.uri, tmp_path)
        tool(ligero, "img", "convert", "-O", "raw", s.uri, tmp_path / "out.raw")
        # -n --target-is-zero into a fresh image, and -B: only what differs from the backing
        tool("qemu-img", "create", "-q", "-f", "qcow2", tmp_path / "n.qcow2", "72M")
        tool(ligero, "img", "convert", "-n", "--target-is-zero", "-O", "qcow2", s.uri,
             tmp_path / "n.qcow2")
        base = tmp_path / "base.qcow2"
        tool("qemu-img", "create", "-q", "-f", "qcow2", base, "72M")
        tool("qemu-io", "-c", "write -P 0x20 0 8M", "-c", "write -P 0x5a 20M 4M", base)
        tool(ligero, "img", "convert", "-B", base, "-F", "qcow2", "-O", "qcow2", s.uri,
             tmp_path / "b.qcow2")
        assert s.stop() == 0
    for out in (*outs.values(), tmp_path / "n.qcow2", tmp_path / "b.qcow2"):
        tool("qemu-img", "compare", out, regions)
    tool("qemu-img", "compare", "-f", "raw", "-F", "qcow2", tmp_path / "out.raw", regions)
    # holes stay holes: the plain output's data lies inside the source's
    src_data = data_ranges(regions, "qcow2")
    assert within(data_ranges(outs[()], "qcow2"), src_data)
    assert within(data_ranges(tmp_path / "out.raw", "raw"), src_data)
    assert within(data_ranges(tmp_path / "n.qcow2", "qcow2"), src_data)


def recv_exact(c, n):
    """n bytes from socket c; EOFError when the peer closes first."""
    b = b""
    while len(b) < n:
        p = c.recv(n - len(b))
        if not p:
            raise EOFError
        b += p
    return b


def opt_reply(c, opt, typ, data=b""):
    c.sendall(struct.pack(">QIII", REP_MAGIC, opt, typ, len(data)) + data)


def handshake(c, size, flags, max_block=0):
    """The fixed newstyle handshake of the test servers below: every option but GO refused,
    GO answered with the export's size and flags (and block sizes when max_block)."""
    c.sendall(struct.pack(">QQH", NBD_MAGIC, IHAVEOPT, 3))
    recv_exact(c, 4)
    while True:
        _, opt, n = struct.unpack(">QII", recv_exact(c, 16))
        recv_exact(c, n)
        if opt != OPT_GO:
            opt_reply(c, opt, REP_ERR_UNSUP)
            continue
        opt_reply(c, opt, REP_INFO, struct.pack(">HQH", 0, size, flags))
        if max_block:
            opt_reply(c, opt, REP_INFO, struct.pack(">HIII", 3, 1, 4096, max_block))
        opt_reply(c, opt, REP_ACK)
        return


class DyingServer:
    """An NBD server (fixed newstyle, simple replies, read-only) on a unix socket that serves
    a raw file and drops the connection when asked for more than `reads` reads: a server that
    dies mid-copy, at the same point every run."""

    def __init__(self, path, sock, reads):
        self.data, self.left = open(path, "rb").read(), reads
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(sock))
        self.listener.listen(4)
        self.uri = f"nbd+unix:///?socket={sock}"
        self.served = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    recv = staticmethod(recv_exact)

    def serve(self):
        c, _ = self.listener.accept()
        try:
            handshake(c, len(self.data), 1 | 2)  # HAS_FLAGS, READ_ONLY
            while True:
                magic, _, typ, cookie, off, n = struct.unpack(">IHHQQI", self.recv(c, 28))
                assert magic == REQ_MAGIC
                if typ == CMD_DISC:
                    break
                if typ == CMD_READ and self.left == 0:
                    break  # the server dies: the connection drops mid-request
                if typ == CMD_READ:
                    self.left -= 1
                    self.served += 1
                    c.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie) +
                              self.data[off:off + n])
                else:
                    c.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie))
        except (EOFError, OSError):
            pass
        finally:
            c.close()
            self.listener.close()


def test_nbd_source_dies_mid_copy(ligero, regions, tmp_path):
    raw = tmp_path / "regions.raw"
    tool("qemu-img", "convert", "-O", "raw", regions, raw)
    for m in (["-m", "1"], [], ["-m", "16"]):
        sock = tmp_path / f"dying{len(m)}{''.join(m)}.sock"
        srv = DyingServer(raw, sock, reads=5)
        out = tmp_path / "out.qcow2"
        p = run_cmd(ligero, "img", "convert", *m, "-O", "qcow2", srv.uri, out, timeout=HANG)
        srv.thread.join(HANG)
        assert srv.served == 5, "the copy did not reach the failing read"
        assert p.returncode == 1, p
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ligero: "), p.stderr
        assert f"nbd+unix://?socket={sock}: read at offset" in lines[0], p.stderr
        assert not out.exists(), "a failed convert left its destination behind"


OPT_STRUCTURED_REPLY = 8
STRUCT_MAGIC = 0x668E33EF
CHUNK_DONE = 1
CHUNK_OFFSET_DATA = 1


class ChunkServer:
    """An NBD server (fixed newstyle, structured replies, read-only) on a unix socket that
    serves a raw file and answers each read with data chunks cut as `mode` says:
      reversed  the second half first, then the first (legal: chunks may come in any order)
      scattered eighths in the order 0 2 4 6 1 3 5 7 (legal: gaps filled in the middle)
      short     the first half only, then done (the second half never sent)
      repeat    the first half twice (as many bytes as asked, but half of them never sent)"""

    def __init__(self, path, sock, mode):
        self.data, self.mode = open(path, "rb").read(), mode
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(sock))
        self.listener.listen(4)
        self.uri = f"nbd+unix:///?socket={sock}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def chunk(self, c, cookie, off, n, done):
        c.sendall(struct.pack(">IHHQIQ", STRUCT_MAGIC, CHUNK_DONE if done else 0,
                              CHUNK_OFFSET_DATA, cookie, 8 + n, off) + self.data[off:off + n])

    def go(self, c):
        """The handshake, structured replies accepted."""
        c.sendall(struct.pack(">QQH", NBD_MAGIC, IHAVEOPT, 3))
        recv_exact(c, 4)
        while True:
            _, opt, n = struct.unpack(">QII", recv_exact(c, 16))
            recv_exact(c, n)
            if opt == OPT_STRUCTURED_REPLY:
                opt_reply(c, opt, REP_ACK)
            elif opt != OPT_GO:
                opt_reply(c, opt, REP_ERR_UNSUP)
            else:
                opt_reply(c, opt, REP_INFO, struct.pack(">HQH", 0, len(self.data), 1 | 2))
                opt_reply(c, opt, REP_ACK)
                return

    def serve(self):
        c, _ = self.listener.accept()
        try:
            self.go(c)
            while True:
                magic, _, typ, cookie, off, n = struct.unpack(">IHHQQI", recv_exact(c, 28))
                assert magic == REQ_MAGIC
                if typ == CMD_DISC:
                    break
                h = n // 2
                if typ != CMD_READ:
                    c.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie))
                elif self.mode == "reversed" and h:
                    self.chunk(c, cookie, off + h, n - h, False)
                    self.chunk(c, cookie, off, h, True)
                elif self.mode == "scattered" and n % 8 == 0:
                    for k, i in enumerate((0, 2, 4, 6, 1, 3, 5, 7)):
                        self.chunk(c, cookie, off + i * n // 8, n // 8, k == 7)
                elif self.mode in ("reversed", "scattered"):
                    self.chunk(c, cookie, off, n, True)
                elif self.mode == "short":
                    self.chunk(c, cookie, off, h, True)
                else:
                    self.chunk(c, cookie, off, h, False)
                    self.chunk(c, cookie, off, h, True)
        except (EOFError, OSError):
            pass
        finally:
            c.close()
            self.listener.close()


def test_nbd_read_reply_coverage(ligero, small_regions, tmp_path):
    """Read buffers are not cleared before the reply fills them, so a reply must cover the
    whole read: chunks out of order give the source (qemu-img compare), a reply that leaves
    half of a read unsent, or sends one half twice, ends the copy with one line naming the
    export and the offset, and no destination."""
    raw = tmp_path / "small.raw"
    tool("qemu-img", "convert", "-O", "raw", small_regions, raw)
    out = tmp_path / "out.qcow2"
    for mode in ("reversed", "scattered"):
        srv = ChunkServer(raw, tmp_path / f"{mode}.sock", mode)
        tool(ligero, "img", "convert", "-O", "qcow2", srv.uri, out)
        srv.thread.join(HANG)
        tool("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, out)
        tool("qemu-img", "check", out)
        out.unlink()
    for mode, why in (("short", "left part of the read unsent"),
                      ("repeat", "overlapping or stray chunks")):
        sock = tmp_path / f"{mode}.sock"
        srv = ChunkServer(raw, sock, mode)
        p = run_cmd(ligero, "img", "convert", "-O", "qcow2", srv.uri, out, timeout=HANG)
        srv.thread.join(HANG)
        assert p.returncode == 1, p
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ligero: "), p.stderr
        assert f"nbd+unix://?socket={sock}: read at offset" in lines[0], p.stderr
        assert why in lines[0], p.stderr
        assert not out.exists(), "a failed convert left its destination behind"


class HoldingServer:
    """An NBD server (fixed newstyle, simple replies) on a unix socket that serves a raw file
    from memory and records how many READs and WRITEs are outstanding at once. It holds each
    request until a second one is outstanding or none has come for HOLD seconds, then answers
    the pending ones newest first: replies come out of order, and requests the client sent
    together are seen together. HOLD only sets how long a lone request waits; no assertion
    depends on time. max_block: advertise that maximum request size (NBD_INFO_BLOCK_SIZE);
    fail_at: answer the READ that covers this offset with EIO."""

    HOLD = 0.5

    def __init__(self, path, sock, max_block=0, writable=False, fail_at=None):
        self.data = bytearray(open(path, "rb").read())
        self.max_block, self.writable, self.fail_at = max_block, writable, fail_at
        self.lock = threading.Lock()
        self.peak = {CMD_READ: 0, CMD_WRITE: 0}
        self.count = {CMD_READ: 0, CMD_WRITE: 0}
        self.out_of_order = 0  # replies sent before the reply to an earlier request
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(sock))
        self.listener.listen(4)
        self.uri = f"nbd+unix:///?socket={sock}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def close(self):
        self.listener.close()

    recv = staticmethod(recv_exact)

    def handshake(self, c):
        flags = 1 if self.writable else 1 | 2  # HAS_FLAGS, READ_ONLY
        handshake(c, len(self.data), flags, self.max_block)

    def answer(self, c, pending):
        for cookie, typ, off, n in reversed(pending):
            data = bytes(self.data[off:off + n]) if typ == CMD_READ else b""
            if typ == CMD_READ and self.fail_at is not None and off <= self.fail_at < off + n:
                c.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, EIO, cookie))
                continue
            c.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie) + data)
        with self.lock:
            self.out_of_order += len(pending) - 1
        pending.clear()

    def conn(self, c):
        pending = []
        try:
            self.handshake(c)
            while True:
                if pending and not select.select([c], [], [], self.HOLD)[0]:
                    self.answer(c, pending)  # nothing more is coming for now
                    continue
                magic, _, typ, cookie, off, n = struct.unpack(">IHHQQI", self.recv(c, 28))
                assert magic == REQ_MAGIC
                if typ == CMD_DISC:
                    break
                if typ == CMD_WRITE:
                    self.data[off:off + n] = self.recv(c, n)
                if typ not in (CMD_READ, CMD_WRITE):
                    c.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie))
                    continue
                pending.append((cookie, typ, off, n))
                with self.lock:
                    self.count[typ] += 1
                    same = sum(1 for p in pending if p[1] == typ)
                    self.peak[typ] = max(self.peak[typ], same)
                if len(pending) >= 2:
                    self.answer(c, pending)
        except (EOFError, OSError):
            pass
        finally:
            c.close()


@pytest.fixture
def small_regions(img_factory):
    """32 MiB (8 batches of the copy engine) of data at odd offsets, a zeroed range, holes."""
    writes = [f"write -P {0x31 + i} {i * 4 * MIB + (i % 3) * 4096 + 512} {MIB + i * 65536}"
              for i in range(8)]
    return img_factory("small.qcow2", "32M", writes=writes + ["write -z 9M 100k"])


def test_nbd_reads_overlap(ligero, small_regions, tmp_path):
    """Several readers: more than one READ outstanding at once on the one connection, answered
    out of order; one reader (-m 1): never more than one. The copies equal the source."""
    raw = tmp_path / "small.raw"
    tool("qemu-img", "convert", "-O", "raw", small_regions, raw)
    peaks = {}
    for m in (["-m", "1"], [], ["-m", "16"]):
        srv = HoldingServer(raw, tmp_path / f"hold{''.join(m)}.sock")
        out = tmp_path / f"out{''.join(m)}.qcow2"
        tool(ligero, "img", "convert", *m, "-O", "qcow2", srv.uri, out)
        srv.close()
        tool("qemu-img", "check", out)
        tool("qemu-img", "compare", out, small_regions)
        assert srv.count[CMD_READ] >= 8, "the copy read less than its 8 batches"
        peaks[" ".join(m)] = (srv.peak[CMD_READ], srv.out_of_order)
    assert peaks["-m 1"] == (1, 0), peaks
    for m in ("", "-m 16"):
        assert peaks[m][0] > 1 and peaks[m][1] > 0, peaks


def test_nbd_pieces_overlap(ligero, small_regions, tmp_path):
    """A server whose maximum request is 1 MiB: one 4 MiB read or write of the copy engine goes
    out as 1 MiB pieces all in flight at once, even with one reader; what lands in the export
    and what is read back equal the source."""
    raw = tmp_path / "small.raw"
    tool("qemu-img", "convert", "-O", "raw", small_regions, raw)
    srv = HoldingServer(raw, tmp_path / "pieces.sock", max_block=MIB)
    out = tmp_path / "out.qcow2"
    tool(ligero, "img", "convert", "-m", "1", "-O", "qcow2", srv.uri, out)
    srv.close()
    tool("qemu-img", "compare", out, small_regions)
    assert srv.peak[CMD_READ] > 1 and srv.out_of_order > 0, (srv.peak, srv.out_of_order)

    target = tmp_path / "target.raw"
    with open(target, "wb") as f:
        f.write(b"\xee" * (32 * MIB))  # not zeroes: every range must be written
    dst = HoldingServer(target, tmp_path / "dst.sock", max_block=MIB, writable=True)
    tool(ligero, "img", "convert", "-n", "-O", "raw", small_regions, dst.uri)
    dst.close()
    assert dst.peak[CMD_WRITE] > 1, dst.peak
    with open(target, "wb") as f:
        f.write(dst.data)
    tool("qemu-img", "compare", "-f", "raw", "-F", "raw", target, raw)


def test_nbd_read_error_among_others(ligero, small_regions, tmp_path):
    """The server answers one READ with EIO while others are in flight (and before them): the
    copy ends with one line naming the export and the offset, and leaves no destination."""
    raw = tmp_path / "small.raw"
    tool("qemu-img", "convert", "-O", "raw", small_regions, raw)
    for m in (["-m", "1"], [], ["-m", "16"]):
        sock = tmp_path / f"eio{''.join(m)}.sock"
        srv = HoldingServer(raw, sock, fail_at=13 * MIB)
        out = tmp_path / "out.qcow2"
        p = run_cmd(ligero, "img", "convert", *m, "-O", "qcow2", srv.uri, out, timeout=HANG)
        srv.close()
        assert p.returncode == 1, p
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ligero: "), p.stderr
        assert f"nbd+unix://?socket={sock}: read at offset 12582912 failed" in lines[0], lines
        assert "Input/output error" in lines[0], lines
        assert not out.exists(), "a failed convert left its destination behind"


def qemu_has_rbd():
    p = subprocess.run(["qemu-img", "--help"], capture_output=True, text=True)
    return " rbd" in p.stdout


@pytest.mark.skipif(not qemu_has_rbd(), reason="needs qemu-img's rbd driver (qemu-block-extra)")
def test_rbd_source_several_reads_in_flight(ligero, ceph, regions, tmp_path):
    name = ceph.name(f"readers{os.getpid()}")
    tool("qemu-img", "convert", "-O", "raw", regions, name)
    outs = convert_all_ways(ligero, name, tmp_path)
    for out in outs.values():
        tool("qemu-img", "compare", out, regions)
    # the image's objects that do not exist stay holes in the copy
    assert within(data_ranges(outs[()], "qcow2"), data_ranges(name, "raw"), grain=4 * MIB)

