"""ligero img serve --vhost-user: QEMU's vhost-user-blk-pci as the front-end, under TCG on this
host (no KVM needed), with its guest RAM in a shared memfd and the busybox test guest
(tests/guest/), about 5 to 10 s per boot. The guest's own view is the oracle for what it reads
(size, serial, the sha256 of the whole disk against qemu-img convert's raw copy), qemu-img check
and qemu-io for what it wrote, zeroed and discarded, the base's hash for what it must not touch.
Waits poll for states (a pid file, a log line, a marker on the guest's console) under generous
hang guards; nothing depends on how fast this machine is."""
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import REPO, run_cmd, sha256  # noqa: E402
from nbd_helpers import HANG, Server, wait_for  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "vmhost"))
import vmhost as _vmhost  # noqa: E402

BOOT_HANG = 900  # seconds: TCG under a loaded machine is slow, a hung boot is slower still
QEMU = "qemu-system-x86_64"
MiB = 1 << 20


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    """The test guest's kernel and initrd, the initrd with util-linux's blkdiscard and
    fallocate added (busybox's cannot ask for write-zeroes)."""
    for tool in (QEMU, "qemu-img", "qemu-io", "busybox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    try:
        d = _vmhost.build_guest()
    except RuntimeError as e:
        pytest.skip(str(e))
    tmp = tmp_path_factory.mktemp("guest")
    extra = tmp / "extra.cpio"
    run_cmd("sh", REPO / "tests/guest/addbins.sh", extra, "/usr/sbin/blkdiscard:ul-blkdiscard",
            "/usr/bin/fallocate:ul-fallocate", check=True)
    initrd = tmp / "initrd-plus.img"
    # the kernel reads an archive that follows a compressed one only at a 4-byte boundary
    base = (d / "initrd.img").read_bytes()
    initrd.write_bytes(base + b"\0" * (-len(base) % 4) + extra.read_bytes())
    return {"kernel": d / "vmlinuz", "initrd": initrd}


def serve(ligero, image, workdir, *opts, name="vub"):
    sock = str(workdir / f"{name}.sock")
    return Server([ligero, "img", "serve", "--vhost-user", sock, *opts, image], workdir, name,
                  sock=sock)


def qemu_args(guest, sock, run, smp=1, queues=None):
    """QEMU under TCG as the front-end. maxcpus is at least 2: with one possible vCPU TCG
    leaves out the guest's memory barriers, and the guest's store of used_event and its next
    load of used->idx can pass each other while the back-end, another process, completes a
    request; the interrupt the guest waits for is then never sent (bench/vhost-user.sh saw
    guests hang that way at queue depth 8 with ligero and with qemu-storage-daemon)."""
    dev = "vhost-user-blk-pci,chardev=c" + (f",num-queues={queues}" if queues else "")
    return [QEMU, "-M", "pc", "-accel", "tcg", "-m", "256M", "-smp",
            f"{smp},maxcpus={max(smp, 2)}", "-nographic",
            "-no-reboot", "-kernel", guest["kernel"], "-initrd", guest["initrd"],
            "-append", f'console=ttyS0 quiet panic=-1 ligero.run="{run}"',
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
            "-numa", "node,memdev=mem", "-chardev", f"socket,id=c,path={sock}",
            "-device", dev]


def guest_output(text):
    """The guest command's output lines and exit code (None when it never finished)."""
    if "LIGERO-MARKER" not in text:
        return [], None
    body = text.split("LIGERO-MARKER", 1)[1]
    rc = None
    lines = []
    for line in body.replace("\r", "").splitlines():
        if "LIGERO-RC=" in line:
            before, after = line.split("LIGERO-RC=", 1)
            if before.strip():
                lines.append(before.strip())
            rc = int(after.split()[0])
            break
        if line.strip():
            lines.append(line.strip())
    return lines, rc


def boot(guest, srv, run, **kw):
    """Boot the guest on srv's socket, run `run` (no double quotes), return its output lines;
    the command must succeed and the server must still be up."""
    p = subprocess.run([str(a) for a in qemu_args(guest, srv.sock, run, **kw)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=BOOT_HANG)
    lines, rc = guest_output(p.stdout)
    assert rc == 0, (f"guest command failed (rc {rc}, QEMU {p.returncode})\n{p.stdout[-3000:]}"
                     f"\n{p.stderr}\nserver log:\n{srv.logtext()}")
    assert srv.alive(), srv.logtext()
    return lines


def value(lines, key):
    """The word after 'key=' in the guest's output."""
    for line in lines:
        if line.startswith(key + "="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"no {key}= in the guest's output: {lines}")


@pytest.fixture
def chain(img_factory):
    """A qcow2 chain: a 64 MiB base with data in its first 8 MiB and at 40 MiB, an overlay with
    writes of its own over part of it."""
    base = img_factory("base.qcow2", "64M", writes=["write -P 0xab 0 8M",
                                                     "write -P 0x17 40M 3M"])
    top = img_factory("top.qcow2", None, backing=base,
                      writes=["write -P 0xcd 1M 512k", "write -P 0xee 41M 64k"])
    return base, top


def raw_sha(qemu_img, image, tmp_path):
    raw = tmp_path / (Path(image).name + ".raw")
    qemu_img("convert", "-O", "raw", image, raw, check=True)
    return sha256(raw)


@pytest.mark.slow
def test_guest_sees_the_chain(ligero, guest, chain, qemu_img, tmp_path):
    base, top = chain
    want = raw_sha(qemu_img, top, tmp_path)
    with serve(ligero, top, tmp_path) as srv:
        lines = boot(guest, srv, "echo size=$(cat /sys/block/vda/size); "
                     "echo serial=$(cat /sys/block/vda/serial); "
                     "echo ro=$(cat /sys/block/vda/ro); "
                     "echo wz=$(cat /sys/block/vda/queue/write_zeroes_max_bytes); "
                     "echo sha=$(sha256sum /dev/vda | cut -d' ' -f1)")
        assert srv.stop() == 0
    assert value(lines, "size") == str(64 * MiB // 512)
    assert value(lines, "serial") == "top.qcow2"
    assert value(lines, "ro") == "0"
    assert int(value(lines, "wz")) > 0
    assert value(lines, "sha") == want
    assert not os.path.exists(srv.sock), "the socket is removed at exit"


@pytest.mark.slow
def test_guest_writes_zeroes_and_discards(ligero, guest, chain, qemu_img, qemu_io, tmp_path):
    """The guest writes a pattern (then flushes), zeroes with and without unmap, discards; all
    of it lands in the overlay, which qemu-img finds clean, and the base is untouched."""
    base, top = chain
    base_sha = sha256(base)
    run = ("head -c 1048576 /dev/zero | tr '\\000' Z | "
           "dd of=/dev/vda bs=65536 seek=160 conv=fsync 2>/dev/null && "  # 10 MiB: 0x5a
           "ul-blkdiscard -z -o 0 -l 1048576 /dev/vda && "  # write-zeroes over base data
           "ul-fallocate -p -o 2097152 -l 1048576 /dev/vda && "  # write-zeroes, unmap allowed
           "blkdiscard -o 41943040 -l 2097152 /dev/vda && "  # discard over base and overlay
           "sync && echo sha=$(sha256sum /dev/vda | cut -d' ' -f1)")
    with serve(ligero, top, tmp_path) as srv:
        lines = boot(guest, srv, run)
        assert srv.stop() == 0
    assert "the front-end has gone" in srv.logtext()
    qemu_img("check", top, check=True)
    assert sha256(base) == base_sha
    qemu_io("-f", "qcow2", "-c", "read -P 0x5a 10M 1M", "-c", "read -P 0 0 1M",
            "-c", "read -P 0 2M 1M", "-c", "read -P 0xab 3M 1M",
            "-c", "read -P 0xcd 1M 512k", top, check=True)
    # discarded ranges read as zeroes here, as in QEMU's qcow2 overlays; the guest saw the
    # same bytes the file holds now
    qemu_io("-f", "qcow2", "-c", "read -P 0 40M 2M", top, check=True)
    assert value(lines, "sha") == raw_sha(qemu_img, top, tmp_path)


@pytest.mark.slow
def test_read_only(ligero, guest, chain, tmp_path):
    base, top = chain
    before = sha256(top)
    with serve(ligero, top, tmp_path, "-r") as srv:
        lines = boot(guest, srv, "echo ro=$(cat /sys/block/vda/ro); "
                     "echo wz=$(cat /sys/block/vda/queue/write_zeroes_max_bytes); "
                     "dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct 2>/dev/null; "
                     "echo dd=$?")
        assert srv.stop() == 0
    assert value(lines, "ro") == "1"
    assert value(lines, "wz") == "0"
    assert value(lines, "dd") != "0"
    assert sha256(top) == before


@pytest.mark.slow
def test_snapshot_leaves_the_image(ligero, guest, chain, tmp_path):
    base, top = chain
    before = sha256(top)
    with serve(ligero, top, tmp_path, "--snapshot") as srv:
        lines = boot(guest, srv, "head -c 65536 /dev/zero | tr '\\000' Q | "
                     "dd of=/dev/vda bs=65536 conv=fsync 2>/dev/null && "
                     "echo head=$(head -c 4 /dev/vda)")
        assert srv.stop() == 0
    assert value(lines, "head") == "QQQQ"
    assert sha256(top) == before


@pytest.mark.slow
def test_two_queues(ligero, guest, chain, qemu_img, tmp_path):
    """Two vCPUs, two request queues: a reader on each CPU, both see the whole disk."""
    base, top = chain
    want = raw_sha(qemu_img, top, tmp_path)
    with serve(ligero, top, tmp_path) as srv:
        lines = boot(guest, srv, "echo mq=$(ls /sys/block/vda/mq | wc -l); "
                     "taskset 1 sha256sum /dev/vda >/tmp/a & taskset 2 sha256sum /dev/vda >/tmp/b; "
                     "wait; echo a=$(cut -d' ' -f1 /tmp/a); echo b=$(cut -d' ' -f1 /tmp/b)",
                     smp=2, queues=2)
        assert srv.stop() == 0
    assert value(lines, "mq") == "2"
    assert value(lines, "a") == want
    assert value(lines, "b") == want


@pytest.mark.slow
def test_coalesced_interrupts(ligero, guest, chain, qemu_img, tmp_path):
    """--coalesce-us: four readers at once (O_DIRECT, so the requests overlap at the back-end
    and interrupts are held back), each over its own 4 MiB of the disk (where the chain has
    data: base, overlay and zeroes), and every piece reads as qemu-img's raw copy does, and the
    whole disk too; coalescing bounded at 200 us and off (0; the other tests run the default,
    1000 us)."""
    base, top = chain
    raw = tmp_path / "top.raw"
    qemu_img("convert", "-O", "raw", top, raw, check=True)
    data = raw.read_bytes()
    starts = [0, 4, 40, 44]  # MiB
    want = [hashlib.sha256(data[m * MiB:(m + 4) * MiB]).hexdigest() for m in starts]
    readers = " ".join(f"dd if=/dev/vda bs=4096 skip={m * 256} count=1024 iflag=direct "
                        f"2>/dev/null | sha256sum >/tmp/p{i} &" for i, m in enumerate(starts))
    for us in ("200", "0"):
        with serve(ligero, top, tmp_path, "--coalesce-us", us) as srv:
            lines = boot(guest, srv, readers + " wait; " + "; ".join(
                f"echo p{i}=$(cut -d' ' -f1 /tmp/p{i})" for i in range(4)) +
                "; echo all=$(sha256sum /dev/vda | cut -d' ' -f1)")
            assert srv.stop() == 0
        for i in range(4):
            assert value(lines, f"p{i}") == want[i], f"--coalesce-us {us}, piece {i}"
        assert value(lines, "all") == hashlib.sha256(data).hexdigest()


def vhost_user_garbage(sock):
    """A front-end that lies: a SET_MEM_TABLE claiming 3 regions and sending none, then a
    request of a kind nobody offered."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(HANG)
        s.connect(sock)
        s.sendall(struct.pack("<III", 1, 1, 0))  # GET_FEATURES
        assert len(s.recv(20)) == 20
        s.sendall(struct.pack("<IIIII", 5, 1, 8 + 96, 3, 0) + bytes(96))
        assert s.recv(1) == b""  # dropped


@pytest.mark.slow
def test_front_ends_come_and_go(ligero, guest, chain, qemu_img, tmp_path):
    """A lying front-end is dropped; a VM is served; a second VM while it runs is turned away;
    the first is killed mid-read; the next VM is served as if nothing happened."""
    base, top = chain
    want = raw_sha(qemu_img, top, tmp_path)
    with serve(ligero, top, tmp_path) as srv:
        vhost_user_garbage(srv.sock)
        wait_for(lambda: "front-end dropped" in srv.logtext(), "the lying front-end dropped",
                 srv.proc)
        out = tmp_path / "vm1.out"
        with open(out, "w") as f:
            vm1 = subprocess.Popen(
                [str(a) for a in qemu_args(guest, srv.sock, "while :; do dd if=/dev/vda "
                                           "of=/dev/null bs=1M 2>/dev/null; done")],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "LIGERO-MARKER" in out.read_text(errors="replace"),
                     "the first VM's guest running", vm1, timeout=BOOT_HANG)
            vm2 = subprocess.run([str(a) for a in qemu_args(guest, srv.sock, "true")],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=BOOT_HANG)
            assert vm2.returncode != 0
            assert "turned away: another one is attached" in srv.logtext()
            assert vm1.poll() is None
        finally:
            vm1.send_signal(signal.SIGKILL)
            vm1.wait(timeout=HANG)
        wait_for(lambda: "the front-end has gone" in srv.logtext(), "the first VM gone",
                 srv.proc)
        lines = boot(guest, srv, "echo sha=$(sha256sum /dev/vda | cut -d' ' -f1)")
        assert value(lines, "sha") == want
        assert srv.stop() == 0
    qemu_img("check", top, check=True)


def test_refused_setups(ligero, chain, tmp_path, run):
    base, top = chain
    sock = tmp_path / "s.sock"
    for opts in (["--port", "10809"], ["--socket", str(tmp_path / "n.sock")],
                 ["--export-name", "x"], ["--shared", "2"], ["--tls-creds", str(tmp_path)]):
        p = run(ligero, "img", "serve", "--vhost-user", sock, *opts, top)
        assert p.returncode != 0
        assert p.stderr.count("\n") == 1 and "--vhost-user" in p.stderr, p.stderr
    # --coalesce-us: a number in range, and for --vhost-user only; refused after the file too
    for opts, msg in ((["--vhost-user", sock, top, "--coalesce-us", "abc"],
                       "--coalesce-us must be a number from 0 to 10000, not 'abc'"),
                      (["--vhost-user", sock, "--coalesce-us", "10001", top],
                       "--coalesce-us must be a number from 0 to 10000, not '10001'"),
                      (["--coalesce-us", "50", top], "--coalesce-us is for --vhost-user")):
        p = run(ligero, "img", "serve", *opts)
        assert p.returncode == 1 and p.stderr == f"ligero: img serve: {msg}\n", p.stderr
        assert not sock.exists()
    (tmp_path / "file").write_text("not a socket")
    p = run(ligero, "img", "serve", "--vhost-user", tmp_path / "file", top)
    assert p.returncode != 0 and "exists and is not a socket" in p.stderr
    assert (tmp_path / "file").read_text() == "not a socket"
    p = run(ligero, "img", "serve", "--vhost-user", sock, tmp_path / "missing.qcow2")
    assert p.returncode != 0 and "missing.qcow2" in p.stderr
    assert not sock.exists()
    # a second server on a socket somebody serves is refused, the first keeps it
    with serve(ligero, top, tmp_path, "-r", "-U") as srv:
        p = run(ligero, "img", "serve", "-r", "-U", "--vhost-user", srv.sock, top)
        assert p.returncode != 0 and "another server is listening" in p.stderr
        assert srv.alive() and os.path.exists(srv.sock)
        assert srv.stop() == 0
