#!/usr/bin/env python3
"""A stand-in for `ligero run` that boots nothing, for testing `ligero vm` on hosts whose KVM
cannot run a guest (tests/system/test_vm.py points LIGERO_VM_EXEC here).

It keeps the VMM's side of the contract `ligero vm` relies on, as the qmp branch states it:
--qmp PATH (QMP on a UNIX socket, mode 0600: greeting, qmp_capabilities, query-status,
query-name, query-block, query-balloon, stop, cont, system_powerdown, system_reset, quit, with
the events STOP, RESUME, POWERDOWN, SHUTDOWN, RESET), --console-socket PATH (many clients; a
new one first gets the last 64 KiB of output; input from any goes to the "guest"),
--console-log FILE, --pidfile FILE written once the sockets listen, --exit-status-file FILE
written atomically at exit ({"reason", "message", "status"}), SIGTERM = the power button.

The "guest" is a line-oriented shell on the console: it echoes what is typed and answers
`echo WORDS` with "out: WORDS". Its behaviour comes from the kernel command line (--cmdline):
  fake.fail=WORDS         fail at start: "ligero: WORDS" on stderr, exit record kvm-error
  fake.fail-quietly=WORDS the same without an exit record (an argument error of the VMM)
  fake.button=ignore      the power button is pressed and nothing happens
  fake.panic-after=N      the guest panics N seconds after start (exit record "panic", status 1)
"""
import json
import os
import selectors
import signal
import socket
import sys
import time

args = sys.argv[1:]
if not args or args[0] != "run":
    print("fake_vmm: usage: fake_vmm.py run OPTIONS", file=sys.stderr)
    sys.exit(2)


def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default


def opts(name):
    return [args[i + 1] for i, a in enumerate(args) if a == name]


name = opt("--name")
qmp_path = opt("--qmp")
console_path = opt("--console-socket")
console_log = opt("--console-log")
pidfile = opt("--pidfile")
exit_file = opt("--exit-status-file")
cmdline = opt("--cmdline", "")
knobs = dict(w.split("=", 1) for w in cmdline.split() if w.startswith("fake.") and "=" in w)
memory = opt("--memory", "256M")


def size_bytes(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def write_exit(reason, message, status):
    if not exit_file:
        return
    tmp = exit_file + ".fake-tmp"
    with open(tmp, "w") as f:
        json.dump({"reason": reason, "message": message, "status": status}, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, exit_file)


if "fake.fail" in knobs:
    msg = knobs["fake.fail"].replace("_", " ")
    print(f"ligero: {msg}", file=sys.stderr)
    write_exit("kvm-error", msg, 1)
    sys.exit(1)
if "fake.fail-quietly" in knobs:
    print(f"ligero: {knobs['fake.fail-quietly'].replace('_', ' ')}", file=sys.stderr)
    sys.exit(1)

sel = selectors.DefaultSelector()


def listen(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    s.bind(path)
    os.umask(old)
    s.listen(16)
    s.setblocking(False)
    return s


qmp_srv = listen(qmp_path)
con_srv = listen(console_path)
sel.register(qmp_srv, selectors.EVENT_READ, "qmp-accept")
sel.register(con_srv, selectors.EVENT_READ, "con-accept")
qmp_clients = {}  # socket -> bytearray of unparsed input
con_clients = {}  # socket -> bytearray of unfinished line
ring = bytearray()
status = "running"
started = time.monotonic()
ending = None  # (reason, message, exit status) once the guest is done
log = open(console_log, "ab") if console_log else None


def console_out(data):
    global ring
    ring += data
    del ring[:-65536]
    if log:
        log.write(data)
        log.flush()
    for c in list(con_clients):
        try:
            c.sendall(data)
        except OSError:
            pass  # a watcher that left: its socket is dropped once read says so


def drop(c):
    sel.unregister(c)
    qmp_clients.pop(c, None)
    con_clients.pop(c, None)
    c.close()


def event(name, data=None):
    t = time.time()
    ev = {"event": name, "timestamp": {"seconds": int(t), "microseconds": int(t % 1 * 1e6)}}
    if data is not None:
        ev["data"] = data
    raw = (json.dumps(ev) + "\r\n").encode()
    for c in list(qmp_clients):
        try:
            c.sendall(raw)
        except OSError:
            drop(c)


def power_button():
    event("POWERDOWN")
    console_out(b"LIGERO-POWER-BUTTON\r\n")
    if knobs.get("fake.button") != "ignore":
        shutdown("poweroff", "the guest powered off", 0, "guest-shutdown")


def shutdown(reason, message, code, qmp_reason):
    global ending
    if ending:
        return
    event("SHUTDOWN", {"guest": qmp_reason != "host-qmp-quit", "reason": qmp_reason})
    ending = (reason, message, code)


def execute(cmd, arguments):
    global status
    if cmd == "qmp_capabilities":
        return {}
    if cmd == "query-status":
        return {"status": status, "singlestep": False, "running": status == "running"}
    if cmd == "query-name":
        return {"name": name}
    if cmd == "query-block":
        out = []
        for i, d in enumerate(opts("--disk")):
            path, *rest = d.split(",")
            kv = dict(x.split("=", 1) for x in rest)
            out.append({"device": f"virtio{i}", "locked": False, "removable": False,
                        "inserted": {"file": path, "drv": kv.get("format", "raw"),
                                     "ro": kv.get("readonly") == "on"}})
        return out
    if cmd == "query-balloon" and "--balloon" in args:
        return {"actual": size_bytes(memory)}
    if cmd == "stop":
        status = "paused"
        event("STOP")
        return {}
    if cmd == "cont":
        status = "running"
        event("RESUME")
        return {}
    if cmd == "system_powerdown":
        power_button()
        return {}
    if cmd == "system_reset":
        event("RESET", {"guest": False, "reason": "host-qmp-system-reset"})
        return {}
    if cmd == "quit":
        shutdown("quit", "stopped by QMP quit", 0, "host-qmp-quit")
        return {}
    return None


def qmp_input(c, data):
    buf = qmp_clients[c]
    buf += data
    dec = json.JSONDecoder()
    text = buf.decode(errors="replace")
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        try:
            msg, end = dec.raw_decode(text, pos)
        except ValueError:
            break
        pos = end
        cmd = msg.get("execute") if isinstance(msg, dict) else None
        ret = execute(cmd, msg.get("arguments")) if cmd else None
        if ret is None:
            reply = {"error": {"class": "CommandNotFound",
                               "desc": f"The command {cmd} has not been found"}}
        else:
            reply = {"return": ret}
        if isinstance(msg, dict) and "id" in msg:
            reply["id"] = msg["id"]
        c.sendall((json.dumps(reply) + "\r\n").encode())
    qmp_clients[c] = bytearray(text[pos:].encode())


def console_input(c, data):
    line = con_clients[c]
    for b in data:
        ch = bytes([b])
        if ch in (b"\r", b"\n"):
            console_out(b"\r\n")
            text = line.decode(errors="replace")
            line.clear()
            if text.startswith("echo "):
                console_out(f"out: {text[5:]}\r\n".encode())
            console_out(b"/ # ")
        else:
            line += ch
            console_out(ch)


# A signal wakes the select() below through this pair (its handler runs in between).
wake_r, wake_w = socket.socketpair()
wake_r.setblocking(False)
wake_w.setblocking(False)
signal.set_wakeup_fd(wake_w.fileno())
sel.register(wake_r, selectors.EVENT_READ, "wake")
signal.signal(signal.SIGTERM, lambda s, f: power_button())
signal.signal(signal.SIGINT, lambda s, f: power_button())
console_out(f"fake guest {name}: booted\r\n/ # ".encode())
with open(pidfile + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\n")
os.rename(pidfile + ".tmp", pidfile)

panic_at = float(knobs["fake.panic-after"]) if "fake.panic-after" in knobs else None
while not ending:
    timeout = None
    if panic_at is not None:
        timeout = max(0.0, started + panic_at - time.monotonic())
    for key, _ in sel.select(timeout):
        what = key.data
        if what == "wake":
            try:
                wake_r.recv(512)
            except BlockingIOError:
                pass
            continue
        if what in ("qmp-accept", "con-accept"):
            try:
                c, _ = key.fileobj.accept()
            except BlockingIOError:
                continue
            if what == "qmp-accept":
                qmp_clients[c] = bytearray()
                sel.register(c, selectors.EVENT_READ, "qmp")
                c.sendall((json.dumps({"QMP": {"version": {"qemu": {"micro": 0, "minor": 1,
                                                                    "major": 0},
                                                           "package": "fake"},
                                               "capabilities": []}}) + "\r\n").encode())
            else:
                con_clients[c] = bytearray()
                sel.register(c, selectors.EVENT_READ, "con")
                try:
                    c.sendall(bytes(ring))
                except OSError:
                    pass  # gone already: what it typed is still read below

            continue
        c = key.fileobj
        try:
            data = c.recv(65536)
        except OSError:
            data = b""
        if not data:
            drop(c)
        elif what == "qmp":
            qmp_input(c, data)
        else:
            console_input(c, data)
    if panic_at is not None and time.monotonic() >= started + panic_at and not ending:
        console_out(b"Kernel panic - not syncing: fake\r\n")
        shutdown("panic", "the guest panicked", 1, "guest-panic")

reason, message, code = ending
write_exit(reason, message, code)
for p in (qmp_path, console_path):
    try:
        os.unlink(p)
    except OSError:
        pass
sys.exit(code)
