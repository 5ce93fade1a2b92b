"""ligero img serve, the NBD server, checked by peers we did not write: qemu-img and qemu-io
(nbd+unix:// and nbd://127.0.0.1:PORT), nbdinfo, nbdcopy and nbdsh (libnbd), with qemu-nbd
serving the same image as the reference for what a client must see. A client on a raw socket
(nbd_helpers.Client) misbehaves on purpose; the server must stay up and the image clean.
Servers are started and stopped by pid; readiness is the pid file, never a sleep."""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading

import pytest
from conftest import io_args, run_cmd, sha256
from nbd_helpers import (CMD_CACHE, CMD_DISC, CMD_FLUSH, CMD_READ, CMD_STATUS, CMD_TRIM,
                         CMD_WRITE, CMD_ZEROES, EINVAL, ENOSPC, EPERM, FLAG_FUA, HANG,
                         OPT_INFO, REP_ERR_INVALID, SYSTEM_PATH, Client, Server, free_port,
                         ligero_serve, make_certs, qemu_nbd)

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("qemu-nbd", "nbdinfo", "nbdcopy", "nbdsh", "certtool")),
    reason="needs qemu-nbd (qemu-utils), nbdinfo/nbdcopy/nbdsh (libnbd-bin, python3-libnbd) "
           "and certtool (gnutls-bin)")


def tool(*args, check=True, env=None, timeout=HANG):
    return run_cmd(*args, check=check, env=env, timeout=timeout)


def nbdsh(uri, script):
    env = dict(os.environ, PATH=SYSTEM_PATH)
    return tool("nbdsh", "-u", uri, "-c", script, env=env).stdout


@pytest.fixture
def chain(img_factory):
    """base <- top: data in both layers, a zero cluster and unallocated space in top."""
    base = img_factory("base.qcow2", "64M", writes=[
        "write -P 0x11 0 1M", "write -P 0x22 4M 64k", "write -P 0x33 16M 2M"])
    top = img_factory("top.qcow2", None, backing=base, writes=[
        "write -P 0x44 512k 1M", "write -z 8M 64k", "write -P 0x55 16M 64k",
        "write -z 17M 128k"])
    return base, top


def merged(extents):
    """Neighbours with equal attributes joined: [(start, length, attrs...)]."""
    out = []
    for e in extents:
        if out and out[-1][2:] == e[2:] and out[-1][0] + out[-1][1] == e[0]:
            out[-1] = (out[-1][0], out[-1][1] + e[1], *e[2:])
        else:
            out.append(tuple(e))
    return out


def file_map(image):
    return json.loads(tool("qemu-img", "map", "--output=json", image).stdout)


def nbdinfo_map(uri, context="base:allocation"):
    out = tool("nbdinfo", "--json", f"--map={context}", uri).stdout
    return [(e["offset"], e["length"], e["type"]) for e in json.loads(out)]


def same_text(a, b, *subst):
    for x, y in subst:
        a = a.replace(x, y)
        b = b.replace(x, y)
    assert a == b


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "workers"])
def test_chain_seen_as_through_qemu_nbd(ligero, chain, tmp_path, inline):
    """qemu-img map over the export equals qemu-img map over qemu-nbd's export of the same
    chain (both contexts), and equals the file's own map in data, zero and chain depth."""
    base, top = chain
    with ligero_serve(ligero, top, tmp_path, "-r", "--persistent", "--shared", "4",
                      inline=inline) as ls, \
            qemu_nbd(top, tmp_path, "-f", "qcow2", "-r", "-t", "-A") as qs:
        names = ((ls.sock, "SOCK"), (qs.sock, "SOCK"))
        for fmt in ("json", "human"):
            same_text(tool("qemu-img", "map", f"--output={fmt}", ls.uri).stdout,
                      tool("qemu-img", "map", f"--output={fmt}", qs.uri).stdout, *names)
        for s in (ls, qs):
            s.depth_map = tool("qemu-img", "map", "--output=json", "--image-opts",
                               f"driver=nbd,server.type=unix,server.path={s.sock},"
                               "x-dirty-bitmap=qemu:allocation-depth").stdout
        same_text(ls.depth_map, qs.depth_map, *names)
        for ctx in ("base:allocation", "qemu:allocation-depth"):
            assert nbdinfo_map(ls.uri, ctx) == nbdinfo_map(qs.uri, ctx)
        # the file itself: data/zero, and depth (1 = top, 2 = base, 0 = nowhere)
        fm = file_map(top)
        want = merged((e["start"], e["length"], 0 if e["data"] else 1, 2 if e["zero"] else 0)
                      for e in fm)
        got = merged((o, n, t & 1, t & 2) for o, n, t in nbdinfo_map(ls.uri))
        assert got == want
        want = merged((e["start"], e["length"], e["depth"] + 1 if e["present"] else 0)
                      for e in fm)
        assert merged(nbdinfo_map(ls.uri, "qemu:allocation-depth")) == want
        qm = json.loads(tool("qemu-img", "map", "--output=json", ls.uri).stdout)
        assert merged((e["start"], e["length"], e["data"], e["zero"]) for e in qm) == \
            merged((e["start"], e["length"], e["data"], e["zero"]) for e in fm)
        # the bytes
        tool("qemu-img", "compare", "-f", "raw", "-F", "qcow2", ls.uri, top)
        tool("nbdcopy", ls.uri, tmp_path / "copy.raw")
        tool("qemu-img", "convert", "-O", "raw", top, tmp_path / "ref.raw")
        assert sha256(tmp_path / "copy.raw") == sha256(tmp_path / "ref.raw")
        assert ls.stop() == 0
    assert not os.path.exists(ls.sock) and not ls.pidfile.exists()


WRITES = ["write -P 0x66 100k 300k", "write -z 2M 1M", "write -z -u 16M 64k",
          "discard 20M 1M", "write -f -P 0x77 30M 4k", "write -P 0x78 12345 1000", "flush"]


def test_writes_from_peers(ligero, chain, tmp_path):
    """qemu-io, nbdsh and nbdcopy write through the export (Unix and TCP); the qcow2 ends up
    equal to a copy that qemu-io changed directly, and qemu-img check finds nothing."""
    base, top = chain
    ref = tmp_path / "ref.qcow2"
    shutil.copy(top, ref)
    with ligero_serve(ligero, top, tmp_path, "--persistent", "--shared", "2") as s:
        tool("qemu-io", "-f", "raw", *io_args(WRITES), s.uri)
        out = nbdsh(s.uri, f"""
h.pwrite(b"\\x88" * 65536, {40 * MiB}, nbd.CMD_FLAG_FUA)
h.zero(65536, {41 * MiB}, nbd.CMD_FLAG_NO_HOLE)
h.zero(65536, {42 * MiB})
h.trim(65536, {43 * MiB})
h.cache(MiB := {MiB}, 0)
h.flush()
assert h.pread(4, {40 * MiB}) == b"\\x88" * 4
print(h.can_multi_conn(), h.can_fast_zero(), h.can_trim(), h.is_read_only())
""")
        assert out.split() == ["True", "True", "True", "False"]
        assert s.stop() == 0
    with ligero_serve(ligero, top, tmp_path, "--persistent", tcp=True, name="tcp") as s:
        tool("qemu-io", "-f", "raw", "-c", "write -P 0x99 50M 1M", s.uri)
        assert s.uri.startswith("nbd://127.0.0.1:")
        assert s.stop() == 0
    tool("qemu-io", *io_args(WRITES + [
        f"write -P 0x88 {40 * MiB} 64k", f"write -z {41 * MiB} 64k", f"write -z -u {42 * MiB} 64k",
        f"discard {43 * MiB} 64k", "write -P 0x99 50M 1M"]), ref)
    tool("qemu-img", "check", top)
    tool("qemu-img", "compare", top, ref)


def test_raw_export_tcp_and_list(ligero, img_factory, tmp_path):
    """A raw file over TCP with a named export: nbdinfo --list names it, nbdcopy copies it both
    ways, qemu-io reads what qemu-io wrote."""
    img = img_factory("disk.raw", "32M", fmt="raw", writes=["write -P 0x5a 1M 3M"])
    with ligero_serve(ligero, img, tmp_path, "--persistent", "--description", "class disk",
                      tcp=True, export="disk1") as s:
        listing = tool("nbdinfo", "--list", "--json", s.uri).stdout
        exports = json.loads(listing)["exports"]
        assert [(e["export-name"], e.get("description")) for e in exports] == \
            [("disk1", "class disk")]
        tool("nbdcopy", s.uri, tmp_path / "out.raw")
        assert sha256(tmp_path / "out.raw") == sha256(img)
        new = tmp_path / "new.raw"
        new.write_bytes(os.urandom(4 * MiB) + bytes(12 * MiB) + os.urandom(MiB) + bytes(15 * MiB))
        tool("nbdcopy", new, s.uri)
        tool("qemu-io", "-f", "raw", "-c", "read -P 0 5M 1M", s.uri)
        bad = run_cmd("nbdinfo", s.uri.rsplit("/", 1)[0] + "/nosuch")
        assert bad.returncode != 0
        assert s.stop() == 0
    assert sha256(img) == sha256(new)


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "workers"])
def test_odd_sized_raw_tail_reads_zero(ligero, tmp_path, inline):
    """A raw file whose size is not a multiple of 512 is exported rounded up, as qemu-img sees
    it; the bytes past the file's end read as zeroes through every path (small reads, large
    reads whose data goes out with sendfile, a copy by nbdcopy)."""
    img = tmp_path / "odd.raw"
    data = os.urandom(3 * MiB + 1000)
    img.write_bytes(data)
    with ligero_serve(ligero, img, tmp_path, "-r", "--persistent", "--shared", "4",
                      inline=inline) as s:
        tool("nbdcopy", s.uri, tmp_path / "copy.raw")
        c = Client(s.sock)
        size, _ = c.go()
        assert size == 3 * MiB + 1024
        assert c.read(3 * MiB, 1024) == data[3 * MiB:] + bytes(24)
        assert c.read(0, size) == data + bytes(24)
        c.close()
        assert s.stop() == 0
    assert (tmp_path / "copy.raw").read_bytes() == data + bytes(24)
    tool("qemu-img", "compare", "-f", "raw", "-F", "raw", tmp_path / "copy.raw", img)


def test_read_only_refuses_writes(ligero, chain, tmp_path):
    base, top = chain
    before = sha256(top), sha256(base)
    with ligero_serve(ligero, top, tmp_path, "-r", "--persistent", "--shared", "2") as s:
        out = nbdsh(s.uri, """
h.set_strict_mode(0)
print(h.is_read_only(), h.can_multi_conn())
for call in (lambda: h.pwrite(b"x" * 512, 0), lambda: h.trim(4096, 0),
             lambda: h.zero(4096, 0)):
    try:
        call()
        print("accepted")
    except nbd.Error as e:
        print(e.errno)
""")
        assert out.split() == ["True", "True", "EPERM", "EPERM", "EPERM"]
        c = Client(s.sock)
        c.go()
        c.request(CMD_WRITE, 0, 512, cookie=5, payload=b"y" * 512)
        assert c.replies(1)[5][0] == EPERM
        assert c.read(0, 4) == b"\x11" * 4  # still serving
        c.close()
        assert run_cmd("qemu-io", "-f", "raw", "-c", "write 0 4k", s.uri).returncode != 0
        assert s.stop() == 0
    assert (sha256(top), sha256(base)) == before


def test_snapshot_leaves_image_untouched(ligero, chain, tmp_path):
    base, top = chain
    before = sha256(top), sha256(base)
    snapdir = tmp_path / "snap"
    snapdir.mkdir()
    env_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(snapdir)
    try:
        s = ligero_serve(ligero, top, tmp_path, "--snapshot", "--persistent")
    finally:
        if env_tmp is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = env_tmp
    with s:
        assert os.listdir(snapdir) == []  # the overlay is unlinked once open
        tool("qemu-io", "-f", "raw", *io_args(WRITES), s.uri)
        tool("qemu-io", "-f", "raw", "-c", "read -P 0x66 100k 300k", "-c", "read -P 0x11 0 12k",
             "-c", "read -P 0x77 30M 4k", s.uri)
        # the top image is only read: qemu-img may look at it meanwhile
        tool("qemu-img", "check", "-U", top)
        assert s.stop() == 0
    assert (sha256(top), sha256(base)) == before
    assert os.listdir(snapdir) == []


@pytest.mark.parametrize("server", ["ligero", "qemu-nbd"])
def test_three_clients_and_a_fourth_waits(ligero, chain, tmp_path, server):
    """--shared 3: three clients work at once; a fourth connects but gets no greeting until
    one of them leaves (qemu-nbd's behaviour, checked on qemu-nbd too)."""
    base, top = chain
    if server == "ligero":
        s = ligero_serve(ligero, top, tmp_path, "-r", "--persistent", "--shared", "3")
    else:
        s = qemu_nbd(top, tmp_path, "-f", "qcow2", "-r", "-t", "-e", "3")
    with s:
        clients = [Client(s.sock) for _ in range(3)]
        for c in clients:
            c.go()
        for i, c in enumerate(clients):  # interleaved: all three are served
            c.request(CMD_READ, i * MiB, 4096, cookie=i + 1)
        for i, c in enumerate(clients):
            e, _ = c.replies(1)[i + 1]
            assert e == 0
        fourth = Client(s.sock)  # queued in the listen backlog
        for c in clients:  # the server has been round its loop since the fourth arrived
            assert c.read(0, 4) == b"\x11" * 4
        fourth.s.setblocking(False)
        with pytest.raises(BlockingIOError):
            fourth.s.recv(1)
        fourth.s.setblocking(True)
        fourth.s.settimeout(HANG)
        clients[0].request(CMD_DISC)
        clients[0].close()
        fourth.go()
        assert fourth.read(512 * 1024, 4) == b"\x44" * 4
        for c in clients[1:] + [fourth]:
            c.close()
        assert s.stop() == 0


def expect_dropped(c):
    assert c.closed_by_server()
    c.close()


def test_misbehaving_clients(ligero, chain, tmp_path):
    """Garbage, lies about lengths, oversized and truncated writes, unknown commands: each bad
    client is dropped (or refused) with one log line; the server keeps serving, and the image
    holds exactly the writes that were complete."""
    base, top = chain
    ref = tmp_path / "ref.qcow2"
    shutil.copy(top, ref)
    with ligero_serve(ligero, top, tmp_path, "--persistent") as s:
        c = Client(s.sock)  # garbage instead of client flags
        c.recv(18)
        c.s.sendall(b"\xff" * 64)
        expect_dropped(c)

        c = Client(s.sock)  # bad option magic
        c.greet()
        c.s.sendall(b"GARBAGE!" + b"\0" * 8)
        expect_dropped(c)

        c = Client(s.sock)  # an INFO whose name length runs past the option: refused, alive
        c.greet()
        c.option(OPT_INFO, struct.pack(">I", 1000) + b"ab" + struct.pack(">H", 0))
        assert c.reply()[1] == REP_ERR_INVALID
        c.go()
        assert c.read(0, 4) == b"\x11" * 4
        c.close()

        c = Client(s.sock)  # option length says more than is sent, then the client goes
        c.greet()
        c.option(OPT_INFO, b"abc", length=100)
        c.close()

        c = Client(s.sock)  # truncated request header
        c.go()
        c.s.sendall(struct.pack(">IHH", 0x25609513, 0, CMD_READ))
        c.close()

        c = Client(s.sock)  # a write larger than 32 MiB
        c.go()
        c.request(CMD_WRITE, 0, 64 * MiB, cookie=3)
        expect_dropped(c)

        c = Client(s.sock)  # disconnects in the middle of a write's payload
        c.go()
        c.request(CMD_WRITE, 20 * MiB, MiB, cookie=4, payload=b"\xee" * (100 * 1024))
        c.close()

        c = Client(s.sock)  # length lies: write past the end, unknown command, bad flags
        size, _ = c.go()
        c.request(CMD_WRITE, size - 512, 4096, cookie=5, payload=b"z" * 4096)
        c.request(42, 0, 0, cookie=6)
        c.request(CMD_TRIM, 0, 4096, cookie=7, flags=0x2)
        c.request(CMD_STATUS, 0, 4096, cookie=8)  # no context was selected
        c.request(CMD_READ, size, 1, cookie=9)
        r = c.replies(5)
        assert [r[k][0] for k in (5, 6, 7, 8, 9)] == [ENOSPC, EINVAL, EINVAL, EINVAL, EINVAL]
        c.request(CMD_WRITE, 33 * MiB, 4096, cookie=10, payload=b"\xab" * 4096)
        assert c.replies(1)[10][0] == 0
        c.request(CMD_DISC)
        expect_dropped(c)

        c = Client(s.sock)  # bad request magic
        c.go()
        c.request(CMD_READ, 0, 512, magic=0x12345678)
        expect_dropped(c)

        assert s.alive()
        tool("qemu-io", "-f", "raw", "-c", "read -P 0xab 33M 4k", "-c", "read -P 0 20M 1M",
             "-c", "read -P 0x11 0 512k", s.uri)
        assert s.stop() == 0
    log = s.logtext().splitlines()
    for why, n in (("client flags", 1), ("option magic", 1), ("disconnected in the middle", 2),
                   ("write of 67108864 bytes", 1),
                   ("disconnected after 102400 of the 1048576 bytes", 1), ("request magic", 1)):
        assert sum(why in line for line in log) == n, (why, log)
    assert sum("dropped" in line for line in log) == 7, log
    tool("qemu-io", "-c", "write -P 0xab 33M 4k", ref)
    tool("qemu-img", "check", top)
    tool("qemu-img", "compare", top, ref)


@pytest.mark.parametrize("mode", ["rw", "ro", "ro-workers"])
def test_ten_thousand_pipelined_requests(ligero, chain, tmp_path, mode):
    """10000 requests sent without waiting: every one answered, in any order, with its data;
    the sender is throttled by its own socket, not by the server's memory."""
    base, top = chain
    n = 10000
    opts = ["-r"] if mode.startswith("ro") else []
    with ligero_serve(ligero, top, tmp_path, "--persistent", *opts,
                      inline=mode != "ro-workers") as s:
        c = Client(s.sock)
        c.go()
        # every fourth read is 64 KiB: on read-only exports those go out with sendfile
        reqs = b"".join(struct.pack(">IHHQQI", 0x25609513, 0, CMD_READ, i, (i % 64) * MiB,
                                    65536 if i % 4 == 0 else 4096) for i in range(n))
        sender = threading.Thread(target=c.s.sendall, args=(reqs,))
        sender.start()
        got = c.replies(n)
        sender.join(HANG)
        assert sorted(got) == list(range(n))
        assert all(e == 0 for e, _ in got.values())
        assert dict(got[0][1])[1][8:] == b"\x11" * 65536  # offset 0: the base's data
        assert dict(got[1][1])[1][8:] == b"\x44" * 4096  # 1 MiB: the overlay's
        assert dict(got[4][1])[1][8:] == b"\x22" * 65536  # 4 MiB: the base's again
        c.request(CMD_FLUSH, cookie=n + 1)
        assert c.replies(1)[n + 1][0] == 0
        c.close()
        assert s.alive()
        assert s.stop() == 0
    tool("qemu-img", "check", top)


def test_sigterm_answers_what_it_took(ligero, img_factory, tmp_path):
    """SIGTERM with writes in flight: the server stops reading, answers what it took, flushes,
    removes its socket and pid file and exits 0; every acknowledged write is in the image."""
    img = img_factory("disk.qcow2", "64M")
    with ligero_serve(ligero, img, tmp_path, "--persistent") as s:
        c = Client(s.sock)
        c.go()
        k = 40
        payload = b"".join(struct.pack(">IHHQQI", 0x25609513, 0, CMD_WRITE, i, i * MiB, 65536) +
                           bytes([i + 1]) * 65536 for i in range(k))

        def send():
            try:
                c.s.sendall(payload)
            except OSError:
                pass  # the server stopped reading and closed

        sender = threading.Thread(target=send)
        sender.start()
        acked = [k for k, (e, _) in c.replies(1).items() if e == 0]  # it is at work
        s.proc.send_signal(signal.SIGTERM)
        try:
            while True:
                acked += [k for k, (e, _) in c.replies(1).items() if e == 0]
        except (EOFError, ConnectionResetError):
            pass
        sender.join(HANG)
        assert s.proc.wait(HANG) == 0
        assert not os.path.exists(s.sock) and not s.pidfile.exists()
    assert acked
    tool("qemu-img", "check", img)
    for i in acked:
        tool("qemu-io", "-c", f"read -P {i + 1} {i * MiB} 64k", img)


def test_exits_when_the_last_client_leaves(ligero, chain, tmp_path):
    base, top = chain
    with ligero_serve(ligero, top, tmp_path, "-r") as s:
        nbdinfo = tool("nbdinfo", "--list", s.uri)  # a listing does not count as a client
        assert "export-size" in nbdinfo.stdout
        assert s.alive()
        tool("qemu-img", "info", s.uri)
        assert s.proc.wait(HANG) == 0
        assert not os.path.exists(s.sock) and not s.pidfile.exists()


def test_tls(ligero, chain, tmp_path):
    """TLS with certificates in qemu's --tls-creds layout: qemu-img (tls-creds-x509 object,
    --image-opts) and nbdinfo (nbds://) read through it; plain clients and clients with a
    certificate from another CA are refused; the server stays up."""
    base, top = chain
    creds = make_certs(tmp_path / "pki")
    other = make_certs(tmp_path / "other", name="other CA")
    with ligero_serve(ligero, top, tmp_path, "-r", "--persistent", "--tls-creds", creds,
                      tcp=True) as s:
        obj = f"tls-creds-x509,id=tls0,endpoint=client,dir={creds}"
        opts = f"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={s.port}," \
               "tls-creds=tls0"
        tool("qemu-img", "compare", "--object", obj, "--image-opts", opts,
             f"driver=qcow2,file.filename={top}")
        m = tool("qemu-img", "map", "--output=json", "--object", obj, "--image-opts", opts)
        assert json.loads(m.stdout)[0]["data"] is True
        info = tool("nbdinfo", f"nbds://127.0.0.1:{s.port}/?tls-certificates={creds}").stdout
        assert "with TLS" in info
        plain = run_cmd("nbdinfo", f"nbd://127.0.0.1:{s.port}/")
        assert plain.returncode != 0
        stranger = run_cmd("nbdinfo", f"nbds://127.0.0.1:{s.port}/?tls-certificates={other}")
        assert stranger.returncode != 0
        assert s.alive()
        tool("nbdcopy", f"nbds://127.0.0.1:{s.port}/?tls-certificates={creds}",
             tmp_path / "copy.raw")
        assert s.stop() == 0
    tool("qemu-img", "compare", "-f", "raw", "-F", "qcow2", tmp_path / "copy.raw", top)
    assert "TLS" in s.logtext()


def test_refused_setups(ligero, chain, tmp_path):
    base, top = chain
    p = run_cmd(ligero, "img", "serve", "--port", "0", "--bind", "0.0.0.0", top)
    assert p.returncode != 0 and "TLS" in p.stderr and "--allow-insecure" in p.stderr
    assert len(p.stderr.splitlines()) == 1
    notsock = tmp_path / "plain-file"
    notsock.write_text("x")
    p = run_cmd(ligero, "img", "serve", "--socket", notsock, top)
    assert p.returncode != 0 and str(notsock) in p.stderr and "not a socket" in p.stderr
    assert notsock.read_text() == "x"
    p = run_cmd(ligero, "img", "serve", "--socket", tmp_path / "s", tmp_path / "nosuch.qcow2")
    assert p.returncode != 0 and "nosuch.qcow2" in p.stderr
    p = run_cmd(ligero, "img", "serve", "--socket", tmp_path / "s", "--port", "1", top)
    assert p.returncode != 0
    with ligero_serve(ligero, top, tmp_path, "--persistent") as s:
        # the image is locked for writing while served: qemu-io cannot open it
        assert run_cmd("qemu-io", "-c", "read 0 512", top).returncode != 0
        again = run_cmd(ligero, "img", "serve", "-r", "--socket", s.sock, top)
        assert again.returncode != 0
        assert s.stop() == 0
    # with --allow-insecure it listens everywhere
    port = free_port()
    with Server([ligero, "img", "serve", "-r", "--persistent", "--allow-insecure", "--bind",
                 "0.0.0.0", "--port", port, top], tmp_path, "open", port=port) as s:
        assert "export-size" in tool("nbdinfo", s.uri).stdout
        assert s.stop() == 0
