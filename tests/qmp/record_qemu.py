#!/usr/bin/env python3
"""Record QEMU's own QMP answers: the oracle that tests/unit/test_vmm_qmp.c holds ligero's QMP
server to (same requests, answers of the same shape, same error classes, events in the same
order).

usage: record_qemu.py OUT.jsonl [QEMU-BINARY]

QEMU runs with TCG (no KVM needed), -no-reboot (a reset ends the process, as in ligero), a
qcow2 disk with a backing file on virtio, and a virtio balloon. Each line of OUT is one
exchange: {"send": TEXT, "recv": [MESSAGE, ...]} where recv holds what QEMU wrote back until
it had given `replies` answers (returns and errors; events are kept in between, in order).
The greeting is the first line's recv, with an empty send. Timestamps, thread ids and file
names differ from run to run: the test compares shapes, not values.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# (text to send, answers to wait for). Bytes above 0x7f are sent as they are (latin-1).
CASES = [
    ('{"execute": "query-status"}', 1),
    ('{"execute": "qmp_capabilities", "id": 1}', 1),
    ('{"execute": "qmp_capabilities"}', 1),
    ('{"execute": "query-version"}', 1),
    ('{"execute": "query-status", "id": {"a": [1, 2]}}', 1),
    ('{"execute": "query-name"}', 1),
    ('{"execute": "query-kvm"}', 1),
    ('{"execute": "query-cpus-fast"}', 1),
    ('{"execute": "query-block"}', 1),
    ('{"execute": "query-balloon"}', 1),
    ('{"execute": "query-memory-size-summary"}', 1),
    ('{"execute": "nosuch", "id": "x"}', 1),
    ('{"execute": "balloon", "arguments": {"value": "x"}}', 1),
    ('{"execute": "balloon", "arguments": {}}', 1),
    ('{"execute": "balloon", "arguments": {"value": 1, "foo": 2}}', 1),
    ('{"execute": "balloon", "arguments": {"value": 0}}', 1),
    ('{"execute": "balloon", "arguments": {"value": -5}}', 1),
    ('{"execute": "balloon", "arguments": {"value": 1.5}}', 1),
    ('{"execute": "balloon", "arguments": [1]}', 1),
    ('{"execute": 42}', 1),
    ('{"exec": "query-status"}', 1),
    ('{"execute": "query-status", "foo": 1, "id": 3}', 1),
    ('{}', 1),
    ('[1, 2]', 1),
    ('42 ', 1),
    ('"str"', 1),
    ("'abc'", 1),
    ("{'execute': 'query-name'}", 1),
    ('{"execute": }', 1),
    ('}', 1),
    (']', 1),
    ('foo ', 1),
    ('\xff', 1),
    ('{"execute": "query-status"', 0),
    ('}', 1),
    ('{"execute": "query-status"}  {"execute": "query-name"}', 2),
    ('{"execute": "query-status", "arguments": {"x": 1}}', 1),
    ('{"execute": "query-status", "arguments": null}', 1),
    ('{"execute": "query-status", "id": null}', 1),
    ('{"execute": "qmp_capabilities", "arguments": {"enable": "x"}}', 1),
    ('{"execute": "stop"}', 1),
    ('{"execute": "stop"}', 1),
    ('{"execute": "query-status"}', 1),
    ('{"execute": "cont"}', 1),
    ('{"execute": "cont"}', 1),
    ('{"execute": "system_powerdown"}', 1),
    ('{"execute": "balloon", "arguments": {"value": 134217728}}', 1),
    ('{"execute": "quit", "id": 7}', 1),
]


def main():
    out = sys.argv[1]
    qemu = sys.argv[2] if len(sys.argv) > 2 else "qemu-system-x86_64"
    d = tempfile.mkdtemp()
    base, disk, sock = (os.path.join(d, n) for n in ("base.qcow2", "disk.qcow2", "qmp.sock"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "64M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", disk],
                   check=True)
    vm = subprocess.Popen([qemu, "-M", "pc", "-accel", "tcg", "-nodefaults", "-display", "none",
                           "-no-reboot", "-m", "256", "-smp", "2", "-name", "oracle",
                           "-drive", f"file={disk},if=virtio,format=qcow2",
                           "-device", "virtio-balloon-pci",
                           "-qmp", f"unix:{sock},server=on,wait=off"])
    try:
        for _ in range(600):  # a hang guard, not a timing assumption
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.settimeout(120)
        rd = s.makefile("rb")
        lines = [{"send": "", "recv": [json.loads(rd.readline())]}]
        for text, replies in CASES:
            # nothing after quit: unread bytes would make the closing socket reset
            s.sendall(text.encode("latin-1") + (b"" if '"quit"' in text else b"\n"))
            recv = []
            while sum(1 for m in recv if "return" in m or "error" in m) < replies:
                line = rd.readline()
                if not line:
                    break
                recv.append(json.loads(line))
            lines.append({"send": text, "recv": recv})
        # after quit: what QEMU sends before it closes the socket
        while line := rd.readline():
            lines[-1]["recv"].append(json.loads(line))
        with open(out, "w") as f:
            for x in lines:
                f.write(json.dumps(x) + "\n")
    finally:
        vm.kill()
        vm.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
