"""Helpers for the NBD tests: servers started and stopped by pid (ligero img serve, qemu-nbd),
a small NBD client on a raw socket that can also misbehave on purpose, TLS certificates made with
certtool. Nothing here waits for a fixed time: every wait polls for a state (a pid file, a socket,
an exit) under a generous hang guard."""
import os
import signal
import socket
import struct
import subprocess
import time

HANG = 120  # seconds: only a hung program gets this far

NBD_MAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x0003E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
STRUCT_MAGIC = 0x668E33EF

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO = 1, 2, 3, 5, 6, 7
OPT_STRUCTURED, OPT_LIST_META, OPT_SET_META = 8, 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META = 1, 2, 3, 4
REP_ERR_INVALID, REP_ERR_UNKNOWN = 0x80000003, 0x80000006
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_ZEROES, CMD_STATUS = range(8)
FLAG_FUA = 1
EPERM, EINVAL, ENOSPC = 1, 22, 28

# nbdsh and python3-libnbd belong to Debian's python3, whichever python runs pytest
SYSTEM_PATH = "/usr/bin:/bin:" + os.environ.get("PATH", "")


def wait_for(pred, what, proc=None, timeout=HANG):
    """Poll pred() until true; fail with what if proc exits first or the hang guard runs out."""
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        assert time.monotonic() < deadline, f"{what}: still waiting after {timeout} s"
        time.sleep(0.02)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process (ligero img serve or qemu-nbd) that is ready once its pid file exists.
    stop() sends SIGTERM and returns the exit code; the log is in self.log_path."""

    def __init__(self, argv, workdir, name, sock=None, port=None, export="", env=None):
        self.workdir = workdir
        self.pidfile = workdir / f"{name}.pid"
        self.log_path = workdir / f"{name}.log"
        self.sock, self.port, self.export = sock, port, export
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(a) for a in argv] + self.pid_args(), stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        wait_for(self.pidfile.exists, f"{argv[0]} pid file", self.proc)
        if sock:
            wait_for(lambda: os.path.exists(sock), f"{argv[0]} socket", self.proc)

    def pid_args(self):
        return ["--pid-file", str(self.pidfile)]

    @property
    def uri(self):
        if self.sock:
            return f"nbd+unix:///{self.export}?socket={self.sock}"
        return f"nbd://127.0.0.1:{self.port}/{self.export}"

    def alive(self):
        return self.proc.poll() is None

    def logtext(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=HANG)
        self.log.close()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=HANG)
        self.log.close()


def ligero_serve(ligero, image, workdir, *opts, name="ligero", tcp=False, export="",
                 inline=True):
    """ligero img serve on a Unix socket in workdir (or a free TCP port on 127.0.0.1).
    inline=False sends every request to the server's workers (LIGERO_NBD_NO_INLINE), the
    path reads take when the page cache does not hold the image."""
    args = [ligero, "img", "serve", *opts]
    env = None if inline else {"LIGERO_NBD_NO_INLINE": "1"}
    if export:
        args += ["--export-name", export]
    if tcp:
        port = free_port()
        return Server(args + ["--port", port, "--bind", "127.0.0.1", image], workdir, name,
                      port=port, export=export, env=env)
    sock = str(workdir / f"{name}.sock")
    return Server(args + ["--socket", sock, image], workdir, name, sock=sock, export=export,
                  env=env)


def qemu_nbd(image, workdir, *opts, name="qemu-nbd", tcp=False, export=""):
    """qemu-nbd, the peer ligero is measured against, on the same terms."""
    args = ["qemu-nbd", *opts]
    if export:
        args += ["-x", export]
    if tcp:
        port = free_port()
        return Server(args + ["-b", "127.0.0.1", "-p", port, image], workdir, name, port=port,
                      export=export)
    sock = str(workdir / f"{name}.sock")
    return Server(args + ["-k", sock, image], workdir, name, sock=sock, export=export)


class Client:
    """An NBD client on a raw socket: fixed newstyle handshake, requests, replies (simple and
    structured). Every method sends exactly what it is told, so tests can also lie."""

    def __init__(self, sock=None, port=None):
        if sock:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(HANG)
            self.s.connect(sock)
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        self.structured = False
        self.greeted = False

    def close(self):
        self.s.close()

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            d = self.s.recv(n - len(buf))
            if not d:
                raise EOFError(f"server closed the connection ({len(buf)} of {n} bytes)")
            buf += d
        return buf

    def closed_by_server(self):
        """True once the server has closed its end (reads until EOF, dropping replies)."""
        try:
            while self.s.recv(65536):
                pass
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True

    def greet(self, flags=3):
        magic, opt, hflags = struct.unpack(">QQH", self.recv(18))
        assert magic == NBD_MAGIC and opt == IHAVEOPT, (hex(magic), hex(opt))
        self.s.sendall(struct.pack(">I", flags))
        self.greeted = True
        return hflags

    def option(self, opt, data=b"", length=None):
        n = len(data) if length is None else length
        self.s.sendall(struct.pack(">QII", IHAVEOPT, opt, n) + data)

    def reply(self):
        magic, opt, rtype, n = struct.unpack(">QIII", self.recv(20))
        assert magic == REP_MAGIC, hex(magic)
        return opt, rtype, self.recv(n)

    def go(self, export=b"", structured=True, meta=()):
        """Handshake to the transmission phase; returns (size, transmission flags)."""
        if not self.greeted:
            self.greet()
        if structured:
            self.option(OPT_STRUCTURED)
            assert self.reply()[1] == REP_ACK
            self.structured = True
        if meta:
            q = b"".join(struct.pack(">I", len(m)) + m for m in meta)
            self.option(OPT_SET_META, struct.pack(">I", len(export)) + export +
                        struct.pack(">I", len(meta)) + q)
            while self.reply()[1] != REP_ACK:
                pass
        self.option(OPT_GO, struct.pack(">I", len(export)) + export + struct.pack(">H", 0))
        size = flags = None
        while True:
            _, rtype, data = self.reply()
            if rtype == REP_ACK:
                return size, flags
            assert rtype == REP_INFO, hex(rtype)
            if struct.unpack(">H", data[:2])[0] == 0:
                size, flags = struct.unpack(">QH", data[2:])

    def request(self, cmd, off=0, length=0, cookie=1, flags=0, payload=b"", magic=REQ_MAGIC):
        self.s.sendall(struct.pack(">IHHQQI", magic, flags, cmd, cookie, off, length) + payload)

    def replies(self, want, lengths=None):
        """Read until `want` replies are complete: {cookie: (error, data)}. lengths maps a
        cookie of a READ to its length (simple replies carry no length)."""
        done, data, err = {}, {}, {}
        while len(done) < want:
            magic = struct.unpack(">I", self.recv(4))[0]
            if magic == SIMPLE_MAGIC:
                e, cookie = struct.unpack(">IQ", self.recv(12))
                body = b""
                if lengths and cookie in lengths and not e:
                    body = self.recv(lengths[cookie])
                done[cookie] = (e, body)
                continue
            assert magic == STRUCT_MAGIC, hex(magic)
            flags, ctype, cookie, n = struct.unpack(">HHQI", self.recv(16))
            payload = self.recv(n)
            chunks = data.setdefault(cookie, [])
            if ctype & 0x8000:
                err[cookie] = struct.unpack(">I", payload[:4])[0]
            elif ctype in (1, 2, 5):
                chunks.append((ctype, payload))
            if flags & 1:
                done[cookie] = (err.get(cookie, 0), data.pop(cookie, []))
        return done

    def read(self, off, length, cookie=1):
        """One READ; the bytes (holes filled) or the error number."""
        self.request(CMD_READ, off, length, cookie)
        e, body = self.replies(1, {cookie: length})[cookie]
        if e or not self.structured:
            return e or body
        buf = bytearray(length)
        for ctype, p in body:
            o = struct.unpack(">Q", p[:8])[0] - off
            if ctype == 1:
                buf[o:o + len(p) - 8] = p[8:]
        return bytes(buf)


def make_certs(d, name="ca"):
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate in d, laid
    out as QEMU's tls-creds-x509 and libnbd expect (ca-cert.pem, server-*.pem, client-*.pem)."""
    d.mkdir(parents=True, exist_ok=True)

    def tool(*args):
        subprocess.run(["certtool", *[str(a) for a in args]], check=True, capture_output=True,
                       timeout=HANG)

    (d / "ca.info").write_text(f"cn = {name}\nca\ncert_signing_key\nexpiration_days = 30\n")
    (d / "server.info").write_text("organization = ligero\ncn = localhost\n"
                                   "dns_name = localhost\nip_address = 127.0.0.1\n"
                                   "tls_www_server\nencryption_key\nsigning_key\n"
                                   "expiration_days = 30\n")
    (d / "client.info").write_text("organization = ligero\ncn = client\ntls_www_client\n"
                                   "encryption_key\nsigning_key\nexpiration_days = 30\n")
    tool("--generate-privkey", "--outfile", d / "ca-key.pem")
    tool("--generate-self-signed", "--load-privkey", d / "ca-key.pem", "--template",
         d / "ca.info", "--outfile", d / "ca-cert.pem")
    for who in ("server", "client"):
        tool("--generate-privkey", "--outfile", d / f"{who}-key.pem")
        tool("--generate-certificate", "--load-ca-certificate", d / "ca-cert.pem",
             "--load-ca-privkey", d / "ca-key.pem", "--load-privkey", d / f"{who}-key.pem",
             "--template", d / f"{who}.info", "--outfile", d / f"{who}-cert.pem")
    return d
