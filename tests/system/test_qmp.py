"""A VM as a VM host drives it (issue 21): its QMP socket, its console socket and log, the
pidfile and the exit-status file of `ligero run`.

The guest cases run in one emulated-host boot (tests/vmhost/); qmp/host_qmp.sh says what each
does. The oracles: QEMU's JSON shapes and error classes (QEMU 7.2's qapi schema; the unit test
test_vmm_qmp.c replays a recorded QEMU session), the guest's own view (its tick counter and
uptime around a pause, its MemFree before and after the balloon, the command typed into the
console running there, its acpid powering off on the button), qemu-img check on the disk, and
the process's exit status. Clients are raw sockets (tests/tools/unixcat.c): no python and no
QMP library in the emulated host. On this host: the QEMU recording is taken again from the
installed QEMU and the unit test is run against it."""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "vmhost"))
import vmhost as vh  # noqa: E402

MiB = 1 << 20
# the emulated-host tests run under ASan/UBSan in CI too: the QMP server and the console's
# fan-out run in the VMM there, against a real guest
pytestmark = pytest.mark.asan


def garbage():
    """200 messages a fuzzer might send, and one over the 64 KiB limit. Deterministic."""
    rnd = random.Random(21)
    pieces = ['{"execute":', '"query-status"', "}", "{", "[", "]", '"arguments":', "null",
              '{"value": ', "true", "-1e999", '"\\u0000"', ",", ":", "'", '"', " ", "42",
              '"id": ', "12345678901234567890", '{"execute": "nosuch"}',
              '{"execute": "balloon", "arguments": {"value": "x"}}',
              '{"execute": "query-name", "arguments": {"x": [[[{}]]]}}', "foo"]
    out = [b'{"execute": "qmp_capabilities"}\n']
    for _ in range(200):
        if rnd.random() < 0.25:
            msg = bytes(rnd.randrange(0, 0xfe) for _ in range(rnd.randrange(1, 40)))
        else:
            msg = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 8))).encode()
        out.append(msg + b"\n")
    out.append(b'{"execute": "query-name", "id": "' + b"a" * (100 * 1024) + b'"}\n')
    out.append(b"\xff\n")  # back to a known state, as QEMU's clients do
    out.append(b'{"execute": "query-status", "id": "last"}\n')
    return b"".join(out)


def parse(out):
    kv, lines = {"_out": out}, {}
    for line in out.splitlines():
        m = re.match(r"([a-z]+): (.*)$", line)
        if m:
            lines.setdefault(m.group(1), []).append(m.group(2))
            continue
        for m in re.finditer(r"([A-Z0-9-]+)=(.*?)(?= [A-Z0-9-]+=|$)", line):
            kv.setdefault(m.group(1), m.group(2))
    kv["_lines"] = lines
    return kv


@pytest.fixture(scope="module")
def host(vmhost, tmp_path_factory):
    """One emulated-host boot (the vmhost fixture marks the tests that use it `vmhost`)."""
    if not shutil.which("qemu-img"):
        pytest.skip("needs qemu-img (qemu-utils)")
    unixcat = vh.build_dir() / "tests" / "tools" / "unixcat"
    if not unixcat.exists():
        pytest.skip(f"{unixcat} does not exist (build first)")
    d = tmp_path_factory.mktemp("qmp")
    (d / "garbage.txt").write_bytes(garbage())
    # The main VM's guest triple-faulted at times in the emulated host, in the middle of the
    # scenario (three of six runs, plain and ASan builds, each time while the guest printed
    # `seq 1 2000` to the console after stop/cont): the VMM then exits as it should, and every
    # later step fails. Not stop/cont's doing: in one emulated host, six boots printing the same
    # with a ticking guest died in one of three with stop/cont and one of three without, and
    # then the emulated host's own kernel died (QEMU TCG's nested SVM; docs/ligero-run.md).
    # Each such run is reported (a warning, its log kept) and the whole scenario booted
    # again, three boots at most.
    for attempt in (1, 2, 3):
        res = vmhost(f"UC={unixcat} sh /work/host_qmp.sh 2>&1\n",
                     files=[str(d / "garbage.txt"), str(HERE / "qmp" / "host_qmp.sh")],
                     bins=[shutil.which("qemu-img"), str(unixcat)],
                     timeout=int(os.environ.get("LIGERO_QMP_TIMEOUT", 1800)))
        (vh.build_dir() / "vmhost").mkdir(parents=True, exist_ok=True)
        (vh.build_dir() / "vmhost" / f"test_qmp.{attempt}.log").write_text(res.output + res.log)
        vh.skip_if_host_failed(res)
        if "VMM-GONE ligero: guest triple-faulted" not in res.output:
            break
        warnings.warn("test_qmp: the guest triple-faulted in the emulated host; scenario "
                      f"booted again (log: {vh.build_dir() / 'vmhost' / 'test_qmp.1.log'})")
    return parse(res.output)


def msgs(kv, name):
    """The JSON messages a client received, in order."""
    return [json.loads(x) for x in kv["_lines"].get(name, []) if x.strip()]


def answers(kv, name):
    return [m for m in msgs(kv, name) if "return" in m or "error" in m]


def events(kv, name):
    return [m for m in msgs(kv, name) if "event" in m]


def show(kv):
    return kv["_out"][-8000:]


def test_files_and_sockets(host):
    """The pidfile appears once the sockets listen (both 0600), holding the VMM's pid; the
    process is named after the VM; all three are gone after the VM powered off."""
    assert host["PIDFILE"] == host["PID"], show(host)
    assert host["SOCKETS"] == "600 socket,600 socket,", show(host)
    assert host["COMM"] == "qmptest", show(host)
    assert "No such file" in host["AFTER-EXIT"] and host["AFTER-EXIT"].count("No such") == 3


def test_second_vmm_refused(host):
    """A second `ligero run` on a live VM's QMP socket fails at once with one line (before
    KVM), and its exit-status file says so; the first VM is untouched."""
    assert host["SECOND-RC"] == "1", show(host)
    assert host["SECOND-ERR"] == "ligero: --qmp /tmp/q.sock: a server is already listening there"
    ex = json.loads(host["SECOND-EXIT"])
    assert ex == {"reason": "error", "message": "--qmp /tmp/q.sock: a server is already "
                  "listening there", "status": 1}


def test_queries(host):
    """Greeting and answers with QEMU's shapes; values from the VM's own configuration."""
    m = msgs(host, "queries")
    assert m[0]["QMP"]["version"]["qemu"] == {"micro": 0, "minor": 2, "major": 7}
    assert m[0]["QMP"]["capabilities"] == []
    a = [x["return"] for x in answers(host, "queries")]
    caps, status, name, cpus, block, mem, version, balloon, stats, exit_, cmds = a
    assert caps == {}
    assert status == {"status": "running", "singlestep": False, "running": True}
    assert name == {"name": "qmptest"}
    assert [c["cpu-index"] for c in cpus] == [0, 1]
    assert all(c["target"] == "x86_64" and c["thread-id"] > 0 for c in cpus)
    assert cpus[0]["qom-path"] == "/machine/unattached/device[0]"
    # the thread ids are the VMM's vCPU threads, named as QEMU names them
    threads = dict(t.split(":", 1) for t in host["VCPU-THREADS"].split())
    assert sorted(threads.values()) == ["CPU_0/KVM", "CPU_1/KVM"], host["VCPU-THREADS"]
    assert {int(t) for t in threads} == {c["thread-id"] for c in cpus}, host["VCPU-THREADS"]
    assert len(block) == 1
    ins = block[0]["inserted"]
    assert block[0]["device"] == "virtio0"
    assert (ins["file"], ins["drv"], ins["ro"]) == ("/tmp/disk.qcow2", "qcow2", False)
    assert ins["backing_file"] == "/tmp/base.qcow2" and ins["backing_file_depth"] == 1
    assert ins["image"]["virtual-size"] == 64 * MiB
    assert mem == {"base-memory": 384 * MiB, "plugged-memory": 0}
    assert version["package"].startswith("ligero ")
    assert balloon == {"actual": 384 * MiB}
    # the VMM's own memory is far below the guest's RAM it holds
    assert 0 < stats["rss-vmm"] < stats["rss"] and stats["guest-ram"] == 384 * MiB
    assert exit_ == {"stopping": False, "powerdown-requested": False}
    names = {c["name"] for c in cmds}
    assert {"qmp_capabilities", "query-status", "stop", "cont", "system_powerdown", "quit",
            "balloon", "query-balloon", "ligero-query-exit"} <= names


def test_console_late_attach_and_input(host):
    """A client attached after the boot gets the boot's first lines from the ring (which the
    4 KiB log has rotated away), and a command typed into it runs in the guest (6*7 computed
    there); a later client sees that too."""
    console = host["_lines"]["console"]
    assert "LIGERO-INIT" in console, show(host)
    assert host["CMD-RC"] == "0" and host["CLIENT-B-RC"] == "0", show(host)
    assert "CMD-42" in console
    assert host["FIRST-CONSOLE-LINE"] == "LIGERO-INIT"  # the very first line of the boot


def test_console_log_rotated(host):
    """The log, rotated at 4 KiB into FILE.1 and FILE, holds exactly the last bytes of the
    stream the first client received, which is more than the two files hold."""
    assert host["SEQ-RC"] == "0", show(host)
    old, cur = (int(s) for s in host["LOG-SIZES"].split())
    assert old == 4096 and 0 < cur <= 4096, host["LOG-SIZES"]
    assert int(host["CLIENT-BYTES"]) > old + cur
    assert host.get("LOG-TAIL-MATCH") == "1", show(host)


def ticks(host):
    return [(int(t.split()[1]), float(t.split()[2])) for t in host["_lines"]["tick"]]


def test_stop_cont(host):
    """stop: STOP before the answer, status paused, and not one tick while paused; cont:
    RESUME, running, the counter goes on from where it stopped and the guest's uptime never
    goes back. With kvm-clock the guest does not count the pause (KVM_SET_CLOCK)."""
    stop = msgs(host, "stop")
    assert [m.get("event") for m in stop[2:4]] == ["STOP", None], stop
    assert answers(host, "stop")[-1]["return"]["status"] == "paused"
    cont = msgs(host, "cont")
    assert [m.get("event") for m in cont[2:4]] == ["RESUME", None], cont
    assert answers(host, "cont")[-1]["return"]["status"] == "running"
    n1, n2 = host["PAUSE-TICKS"].split()
    assert n1 == n2, show(host)
    assert host["AFTER-CONT-RC"] == "0", show(host)
    t = ticks(host)
    nums = [n for n, _ in t]
    assert nums == sorted(nums) and len(set(nums)) == len(nums)
    up = [u for _, u in t]
    assert up == sorted(up), t
    # the last tick before the pause and the first after: the guest's uptime between them
    # is less than the pause lasted (measured on the host), so it did not count the pause
    before = int(host["TICK-AT-STOP"])
    gap = dict(t)
    t0, t1 = (float(x) for x in host["PAUSE-HOST"].split())
    clocksource = [c for c in host["_lines"]["console"] if c.startswith("CLOCKSOURCE")]
    assert clocksource == ["CLOCKSOURCE kvm-clock"], clocksource
    assert gap[before + 1] - gap[before] < t1 - t0, (gap, t0, t1)


def test_balloon(host):
    """balloon 256 MiB of 384: query-balloon reports it once the guest has inflated, with
    BALLOON_CHANGE events, and the guest's MemFree fell by about the 128 MiB it gave."""
    assert answers(host, "balloon")[-1] == {"return": {}}
    assert answers(host, "qb")[-1]["return"] == {"actual": 256 * MiB}
    mem = {}
    for line in host["_lines"]["console"]:
        m = re.match(r"(MEM[12])-(\w+): +(\d+) kB", line)
        if m:
            mem[(m.group(1), m.group(2))] = int(m.group(3)) * 1024
    assert mem[("MEM1", "MemFree")] - mem[("MEM2", "MemFree")] > 100 * MiB, mem
    ev = [e for e in events(host, "events") if e["event"] == "BALLOON_CHANGE"]
    # an event reported the target reached; the guest may give pages back later on its own
    # (VIRTIO_BALLOON_F_DEFLATE_ON_OOM is offered; one CI run saw it deflate to 384 MiB a few
    # seconds before the power button), but never below the target
    assert any(e["data"] == {"actual": 256 * MiB} for e in ev), events(host, "events")
    assert all(e["data"]["actual"] >= 256 * MiB for e in ev), events(host, "events")
    # throttled as QEMU does: at most one a second (the guest reports every 1 MiB)
    stamps = [e["timestamp"]["seconds"] + e["timestamp"]["microseconds"] / 1e6 for e in ev]
    assert all(b - a >= 0.95 for a, b in zip(stamps, stamps[1:])), stamps


def test_garbage_does_not_hurt(host):
    """200 garbage messages and one of 100 KiB: answered with errors, the VM alive, the same
    connection then served (the last line), and a new one too."""
    assert host["GARBAGE-RC"] == "0", show(host)
    assert int(host["GARBAGE-ERRORS"]) >= 20, show(host)
    assert json.loads(host["GARBAGE-LAST"]) == {
        "return": {"status": "running", "singlestep": False, "running": True}, "id": "last"}
    assert host.get("ALIVE-AFTER-GARBAGE") == "1"
    assert answers(host, "after")[-1]["return"]["status"] == "running"


def test_powerdown_to_the_end(host):
    """system_powerdown: POWERDOWN before the answer, the guest's acpid powers off,
    SHUTDOWN (guest-shutdown) to every client, clients see the end, exit 0 with the reason
    in the exit-status file, the disk clean."""
    # events go to every client, so a BALLOON_CHANGE (the guest deflating, test_balloon) may
    # come between these; a QMP client skips what it did not ask about
    pd = [m for m in msgs(host, "pd") if m.get("event") != "BALLOON_CHANGE"]
    assert [m.get("event") for m in pd[2:]] == ["POWERDOWN", None, "SHUTDOWN"], pd
    assert pd[4]["data"] == {"guest": True, "reason": "guest-shutdown"}
    assert host["MAIN-RC"] == "0" and host["STDERR"] == "", show(host)
    assert host["PD-CLIENT-RC"] == "0" and host["EVENTS-CLIENT-RC"] == "0"
    assert host["CONSOLE-CLIENT-RC"] == "0"
    names = [e["event"] for e in events(host, "events") if e["event"] != "BALLOON_CHANGE"]
    assert names[:2] == ["STOP", "RESUME"] and names[-2:] == ["POWERDOWN", "SHUTDOWN"], names
    for e in events(host, "events"):
        assert set(e["timestamp"]) == {"seconds", "microseconds"}
    assert json.loads(host["EXIT-FILE"]) == {"reason": "poweroff", "message": "powered off",
                                             "status": 0}
    assert host["DISK-CHECK-RC"] == "0"


def test_stale_socket_replaced_reset_and_quit(host):
    """SIGKILL leaves the socket and the pidfile (and no exit-status file); the next VMM
    replaces the stale socket. system_reset: SHUTDOWN host-qmp-system-reset, then the process
    ends (as QEMU with -no-reboot), reason reset. quit: SHUTDOWN host-qmp-quit, then the
    answer with its id, reason quit."""
    assert "No such" not in host["STALE-LEFT"].split("STALE-EXIT")[0], show(host)
    assert "No such file" in host["STALE-EXIT"]
    r = msgs(host, "reset")
    assert r[2]["data"] == {"guest": False, "reason": "host-qmp-system-reset"}, r
    assert r[3] == {"return": {}}
    assert host["RESET-RC"] == "0"
    assert json.loads(host["RESET-EXIT"])["reason"] == "reset"
    q = msgs(host, "quit")
    assert q[2]["data"] == {"guest": False, "reason": "host-qmp-quit"}, q
    assert q[3] == {"return": {}, "id": "bye"}
    assert host["QUIT-RC"] == "0"
    assert json.loads(host["QUIT-EXIT"]) == {"reason": "quit", "message": "terminated",
                                             "status": 0}
    assert host["QUIT-AFTER"].count("No such") == 2


def test_no_hangs(host):
    assert "HUNG=" not in host["_out"], show(host)
    assert int(host.get("EARLY-BOOT-RETRIES", "0")) <= 2


# --- on this host, no guest needed -------------------------------------------------------------

def test_qemu_oracle_recorded_again(tmp_path):
    """The committed QEMU session is what QEMU says: record it again from the installed QEMU
    (TCG, no KVM needed) and hold ligero's server to that recording too."""
    qemu = shutil.which("qemu-system-x86_64")
    unit = vh.build_dir() / "tests" / "unit" / "test_vmm_qmp"
    if not qemu or not shutil.which("qemu-img") or not unit.exists():
        pytest.skip("needs qemu-system-x86_64, qemu-img and the unit tests built")
    rec = tmp_path / "qemu.jsonl"
    subprocess.run([sys.executable, str(HERE.parent / "qmp" / "record_qemu.py"), str(rec), qemu],
                   check=True, timeout=600)
    fresh = [json.loads(x) for x in rec.read_text().splitlines()]
    kept = [json.loads(x) for x in (HERE.parent / "qmp" / "qemu-7.2.jsonl").read_text()
            .splitlines()]
    assert [x["send"] for x in fresh] == [x["send"] for x in kept]

    def classes(rec):
        return [[m.get("event") or ("error", m["error"]["class"]) if "error" in m or "event" in m
                 else "return" for m in x["recv"]] for x in rec]
    assert classes(fresh) == classes(kept)
    r = subprocess.run([str(unit)], env=dict(os.environ, QMP_ORACLE=str(rec)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def ligero(*args, **kw):
    if not vh.ligero_binary().exists():
        pytest.skip(f"{vh.ligero_binary()} does not exist")
    return subprocess.run([str(vh.ligero_binary()), *args], capture_output=True, text=True,
                          timeout=60, **kw)


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "é", "a/b"])
def test_bad_name(name):
    r = ligero("run", "--kernel", "/nonexistent", "--name", name)
    assert r.returncode == 1
    assert r.stderr == (f"ligero: --name '{name}': a name is 1 to 64 letters, digits, '-', '_' "
                        "or '.'\n")


def test_socket_path_errors(tmp_path):
    """Paths that cannot be a socket: one line naming the option and the path, nothing left
    behind, the exit-status file written."""
    f = tmp_path / "file"
    f.write_text("x")
    ex = tmp_path / "exit.json"
    guest = vh.build_dir() / "guest" / "vmlinuz"
    if not guest.exists():
        pytest.skip("the test guest is not built")
    for opt, path, msg in [
            ("--qmp", f, f"--qmp {f}: the file exists and is not a socket"),
            ("--console-socket", tmp_path / "nodir" / "s", f"--console-socket {tmp_path}/nodir/s: "
             "No such file or directory"),
            ("--qmp", tmp_path / ("x" * 120), None)]:
        r = ligero("run", "--kernel", str(guest), opt, str(path), "--console", "none",
                   "--exit-status-file", str(ex))
        assert r.returncode == 1, r.stderr
        if msg:
            assert r.stderr == f"ligero: {msg}\n"
        else:
            assert "the path is too long for a socket" in r.stderr
        assert json.loads(ex.read_text())["reason"] == "error"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exit.json", "file"]


def test_console_log_unwritable(tmp_path):
    guest = vh.build_dir() / "guest" / "vmlinuz"
    if not guest.exists():
        pytest.skip("the test guest is not built")
    r = ligero("run", "--kernel", str(guest), "--console-log", str(tmp_path / "no" / "log"))
    assert r.returncode == 1
    assert r.stderr == f"ligero: --console-log {tmp_path}/no/log: No such file or directory\n"


@pytest.mark.parametrize("value", ["1K", "x", "-1"])
def test_bad_console_log_size(value):
    r = ligero("run", "--kernel", "/nonexistent", "--console-log-size", value)
    assert r.returncode == 1
    assert r.stderr.startswith("ligero: --console-log-size"), r.stderr
