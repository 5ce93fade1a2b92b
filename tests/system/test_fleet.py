"""`ligero fleet` (issue 22, the fleet part), on this host: nothing boots.

Members are checked with tools that are not ligero's fleet code: `qemu-img info --output=json`
(each overlay's backing file and format) and `qemu-img check`, the definition files (JSON),
debugfs on the overlay's root partition as qemu-img extracts it and `ligero fs cat` (hostname,
machine-id, SSH host keys, udev rules), the base's sha256 (unchanged by create, reset and
delete), and for start/stop/kill the stand-in VMM of test_vm.py (tests/system/fake_vmm.py) with
/proc and `vm list`. The sysprep checks use the small Debian-like disk of test_sysprep.py and,
where it can be built here, the real Debian guest disk (tests/guest/debian.sh).
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_cmd
from fs_fixtures import debugfs, extract, sha256
from test_sysprep import debian_tree, make_disk
from test_vm import FAKE_VMM, GUARD, Env, env, one_line_error  # noqa: F401 (env: test_vm's fixture)

MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@pytest.fixture
def blank(env, qemu_img):
    """A small qcow2 with no filesystem: a base for --no-sysprep fleets."""
    path = env.base / "disks" / "base.qcow2"
    path.parent.mkdir()
    qemu_img("create", "-q", "-f", "qcow2", path, "64M", check=True)
    return path


def info(path):
    return json.loads(run_cmd("qemu-img", "info", "--output=json", "-U", path,
                              check=True).stdout)


def snapshot(*dirs):
    """Every file under dirs with its content hash: 'nothing left behind' is equality."""
    out = {}
    for d in dirs:
        for p in sorted(Path(d).rglob("*")) if Path(d).exists() else []:
            if p.is_file() and not p.name.endswith(".lock") and p.name != ".lock":
                out[str(p)] = sha256(p)
            elif p.is_symlink():
                out[str(p)] = os.readlink(p)
    return out


def create_blank(env, blank, prefix="lab", count=3, *extra, check=True):
    return env("fleet", "create", prefix, "--count", str(count), "--base", blank,
               "--no-sysprep", "--kernel", FAKE_VMM, "--memory", "256M",
               "--net", "bridge=br0", *extra, check=check)


# ---- create, list, delete: files ----

def test_create_overlays_macs_and_delete(env, blank):
    before = sha256(blank)
    p = create_blank(env, blank, "lab", 5)
    assert p.stderr == ""
    for i in range(1, 6):
        ov = blank.parent / f"lab{i}.qcow2"
        j = info(ov)
        assert j["format"] == "qcow2"
        assert j["full-backing-filename"] == str(blank)
        assert j["backing-filename-format"] == "qcow2"
        assert j["virtual-size"] == 64 << 20
        assert run_cmd("qemu-img", "check", "-q", ov).returncode == 0
        d = env.definition(f"lab{i}")
        assert d["disks"][0]["path"] == str(ov) and d["disks"][0]["format"] == "qcow2"
        assert d["memory"] == "256M"
    macs = [env.definition(f"lab{i}")["net"][0]["mac"] for i in range(1, 6)]
    assert len(set(macs)) == 5
    for m in macs:
        assert MAC_RE.fullmatch(m)
        first = int(m[:2], 16)
        assert first & 2 and not first & 1  # locally administered, unicast
    # Deterministic: the same prefix made again (elsewhere) gets the same MACs.
    other = Env(env.ligero, env.base / "again")
    (env.base / "again").mkdir()
    create_blank(other, blank, "lab", 5, "--disk-dir", env.base / "again")
    assert [other.definition(f"lab{i}")["net"][0]["mac"] for i in range(1, 6)] == macs
    # Another prefix, other MACs.
    create_blank(env, blank, "aula", 2)
    assert not set(macs) & {env.definition(f"aula{i}")["net"][0]["mac"] for i in (1, 2)}

    rows = json.loads(env("fleet", "list", "lab", "--output=json", check=True).stdout)
    assert [r["name"] for r in rows] == [f"lab{i}" for i in range(1, 6)]
    assert all(r["state"] == "defined" and r["pid"] is None and r["memory"] == 256 << 20
               for r in rows)
    assert rows[0]["disk"] == str(blank.parent / "lab1.qcow2") and rows[0]["disk-size"] > 0
    human = env("fleet", "list", "lab", check=True).stdout
    assert "5 members, 0 running" in human and "1.2G if all run" in human

    env("fleet", "delete", "lab", "--disks", check=True)
    assert sorted(p.name for p in blank.parent.iterdir()) == \
        ["aula1.qcow2", "aula2.qcow2", "base.qcow2"]
    assert sorted(p.name for p in (env.state / "vms").iterdir()) == ["aula1.json", "aula2.json"]
    env("fleet", "delete", "aula", check=True)  # without --disks the overlays stay
    assert (blank.parent / "aula1.qcow2").exists()
    assert list((env.state / "vms").iterdir()) == []
    assert sha256(blank) == before


def test_members_ordered_and_foreign_vms_ignored(env, blank):
    create_blank(env, blank, "pc", 11)
    env("vm", "create", "pcx", "--kernel", FAKE_VMM, check=True)  # not a member: no index
    env("vm", "create", "pc-1", "--kernel", FAKE_VMM, check=True)  # nor this
    rows = json.loads(env("fleet", "list", "pc", "--output=json", check=True).stdout)
    assert [r["name"] for r in rows] == [f"pc{i}" for i in range(1, 12)]
    # A VM named like a member makes the prefix taken.
    p = env("fleet", "create", "pc-", "--count", "2", "--base", blank, "--no-sysprep")
    one_line_error(p, "pc-1", "exists")


# ---- all or nothing ----

def test_bad_input_leaves_nothing(env, blank, tmp_path):
    d = blank.parent
    create_blank(env, blank, "keep", 1)
    state0 = snapshot(env.state / "vms", d)

    def refused(*args, words=()):
        p = env("fleet", "create", *map(str, args))
        one_line_error(p, *words)
        assert snapshot(env.state / "vms", d) == state0, args

    k = ["--no-sysprep", "--kernel", FAKE_VMM]
    refused("lab", "--count", "3", "--base", d / "nope.qcow2", *k, words=["nope.qcow2"])
    refused("lab", "--count", "3", "--base", d, *k, words=["not an image"])
    refused("lab", "--count", "0", "--base", blank, *k, words=["--count", "0"])
    refused("lab", "--count", "100000", "--base", blank, *k, words=["--count"])
    refused("lab", "--count", "x", "--base", blank, *k, words=["--count"])
    refused("la/b", "--count", "3", "--base", blank, *k, words=["la/b", "'/'"])
    refused("lab1", "--count", "3", "--base", blank, *k, words=["lab1", "digit"])
    refused("lab", "--count", "3", "--base", blank, "--disk-dir", d / "nodir", *k,
            words=["nodir"])
    refused("lab", "--count", "3", "--base", blank, "--net", "bridge=br0,mac=52:54:00:00:00:01",
            *k, words=["mac"])
    refused("lab", "--count", "3", "--base", blank, "--net", "tap=t0", *k, words=["tap"])
    refused("lab", "--count", "3", "--base", blank, "--disk", blank, *k,
            words=["readonly=on"])
    refused("keep", "--count", "2", "--base", blank, *k, words=["keep1", "exists"])
    # An existing member disk: named, nothing made.
    (d / "lab2.qcow2").write_bytes(b"mine")
    state1 = snapshot(env.state / "vms", d)
    p = env("fleet", "create", "lab", "--count", "3", "--base", blank, *k)
    one_line_error(p, str(d / "lab2.qcow2"), "exists")
    assert snapshot(env.state / "vms", d) == state1
    (d / "lab2.qcow2").unlink()
    # A failure after two members were made (lab3's file appears as a dangling symlink, which
    # O_EXCL refuses): lab1 and lab2 are taken back.
    os.symlink(d / "elsewhere", d / "lab3.qcow2")
    state2 = snapshot(env.state / "vms", d)
    p = env("fleet", "create", "lab", "--count", "3", "--base", blank, *k)
    one_line_error(p, "lab3", str(d / "lab3.qcow2"))
    assert snapshot(env.state / "vms", d) == state2
    os.unlink(d / "lab3.qcow2")
    # sysprep of a base with no Linux root: refused with the way out, nothing left.
    p = env("fleet", "create", "lab", "--count", "2", "--base", blank, "--kernel", FAKE_VMM)
    one_line_error(p, "lab1", "no Linux root", "--no-sysprep")
    assert snapshot(env.state / "vms", d) == state0


def test_disk_dir_not_writable(env, blank, tmp_path):
    """As an unprivileged user (root writes anywhere): a directory it cannot write."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run ligero as nobody")
    ro = env.base / "ro"
    ro.mkdir(mode=0o555)
    state = env.base / "nobody-state"
    state.mkdir()
    os.chown(state, 65534, 65534)
    os.chmod(env.base, 0o755)
    os.chmod(blank.parent, 0o755)
    os.chmod(blank, 0o644)
    # The binary and the kernel file from copies here: the checkout may sit in a directory
    # nobody cannot walk into (mktemp -d makes it 0700).
    exe, kernel = env.base / "ligero", env.base / "kernel"
    shutil.copy2(env.ligero, exe)
    shutil.copy2(FAKE_VMM, kernel)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        exe, "fleet", "create", "lab", "--count", "2", "--base", blank,
                        "--disk-dir", ro, "--no-sysprep", "--kernel", kernel],
                       env=dict(env.env, LIGERO_STATE_DIR=str(state),
                                LIGERO_RUNTIME_DIR=str(state / "run")),
                       capture_output=True, text=True, timeout=GUARD)
    one_line_error(p, str(ro), "not writable")
    assert list(ro.iterdir()) == [] and not (state / "vms").exists()


# ---- sysprep ----

def partition_fs(tmp_path, disk, part, name):
    out = tmp_path / name
    extract(disk, part["start"], part["size"], out)
    return out


def test_create_sysprep_and_reset(env, tmp_path, ligero):
    base, part = make_disk(tmp_path, debian_tree)
    before = sha256(base)
    env("fleet", "create", "estudiante", "--count", "3", "--base", base,
        "--disk-dir", tmp_path, "--kernel", FAKE_VMM, "--net", "bridge=br0", check=True)
    assert sha256(base) == before
    for i in (1, 2, 3):
        name = f"estudiante{i}"
        ov = tmp_path / f"{name}.qcow2"
        assert info(ov)["full-backing-filename"] == str(base)
        assert run_cmd("qemu-img", "check", "-q", ov).returncode == 0
        fs = partition_fs(tmp_path, ov, part, f"{name}.img")
        assert debugfs(fs, "cat /etc/hostname") == f"{name}\n"
        assert f"\t{name}" in debugfs(fs, "cat /etc/hosts")
        assert debugfs(fs, "cat /etc/machine-id") == ""
        ssh = debugfs(fs, "ls /etc/ssh")
        assert "ssh_host_" not in ssh and "sshd_config" in ssh
        assert "70-persistent-net.rules" not in debugfs(fs, "ls /etc/udev/rules.d")
        # ligero's own reader agrees
        assert run_cmd(ligero, "fs", "cat", f"{ov}:2", "/etc/hostname",
                       check=True).stdout == f"{name}\n"
    # The base still says what it said.
    bfs = partition_fs(tmp_path, base, part, "base.img")
    assert debugfs(bfs, "cat /etc/hostname") == "template\n"

    # reset: a file written into a member is gone, its sysprep is back, MAC and path kept.
    mac = env.definition("estudiante2")["net"][0]["mac"]
    src = tmp_path / "homework.txt"
    src.write_text("done\n")
    run_cmd(ligero, "fs", "copy-in", src, f"{tmp_path / 'estudiante2.qcow2'}:2", "/root",
            check=True)
    assert run_cmd(ligero, "fs", "cat", f"{tmp_path / 'estudiante2.qcow2'}:2",
                   "/root/homework.txt", check=True).stdout == "done\n"
    env("fleet", "reset", "estudiante", check=True)
    fs = partition_fs(tmp_path, tmp_path / "estudiante2.qcow2", part, "after.img")
    assert "homework.txt" not in debugfs(fs, "ls /root")
    assert debugfs(fs, "cat /etc/hostname") == "estudiante2\n"
    assert debugfs(fs, "cat /etc/machine-id") == ""
    assert env.definition("estudiante2")["net"][0]["mac"] == mac
    assert run_cmd("qemu-img", "check", "-q", tmp_path / "estudiante2.qcow2").returncode == 0
    assert not list(tmp_path.glob("*.reset-*"))
    assert sha256(base) == before
    env("fleet", "delete", "estudiante", "--disks", check=True)
    assert not list(tmp_path.glob("estudiante*.qcow2"))
    assert sha256(base) == before


def test_real_debian_base(env, tmp_path, ligero):
    from guest_disks import build_guests, debugfs_cat, debugfs_exists, extract as gextract
    from guest_disks import partitions, to_raw
    g = build_guests()
    base = Path(g["disk"])
    before = sha256(base)
    p = env("fleet", "create", "clase", "--count", "2", "--base", base, "--disk-dir", tmp_path,
            "--memory", "600M", "--net", "bridge=br0", check=True)
    assert sha256(base) == before, p.stdout
    ids = set()
    for i in (1, 2):
        ov = tmp_path / f"clase{i}.qcow2"
        assert info(ov)["full-backing-filename"] == str(base.resolve())
        raw = to_raw(ov, tmp_path, f"clase{i}")
        root = [q for q in partitions(raw)["partitions"] if q["size"] > 100000][-1]
        fs = gextract(raw, root, tmp_path / f"clase{i}.root")
        assert debugfs_cat(fs, "/etc/hostname") == f"clase{i}\n"
        assert debugfs_cat(fs, "/etc/machine-id") == ""
        assert not debugfs_exists(fs, "/etc/ssh/ssh_host_ed25519_key")
        ids.add(env.definition(f"clase{i}")["net"][0]["mac"])
        os.unlink(raw)
        os.unlink(fs)
    assert len(ids) == 2
    env("fleet", "delete", "clase", "--disks", check=True)
    assert sha256(base) == before and not list(tmp_path.glob("clase*.qcow2"))


# ---- start, stop, kill, list with the stand-in VMM ----

def test_parallel_start_one_fails(env, blank):
    create_blank(env, blank, "lab", 5)
    # lab3 cannot start: its VMM fails as one whose disk is missing would.
    env("vm", "edit", "lab3", "--cmdline", "fake.fail=lab3.qcow2:_no_such_file", check=True)
    p = env("fleet", "start", "lab", "--parallel", "3")
    assert p.returncode == 1
    err = p.stderr.splitlines()
    assert [line for line in err if line.startswith("ligero: fleet: ")] == \
        [line for line in err if "lab3" in line and "no such file" in line]
    assert len(err) == 2 and "1 of 5" in err[1]
    rows = {r["name"]: r for r in json.loads(env("fleet", "list", "lab", "--output=json",
                                                 check=True).stdout)}
    for i in (1, 2, 4, 5):
        r = rows[f"lab{i}"]
        assert r["state"] == "running" and r["pid"] > 0 and r["rss"] > 0
        cmd = Path(f"/proc/{r['pid']}/cmdline").read_bytes().split(b"\0")
        assert f"lab{i}".encode() in cmd
        assert f"lab{i}: running (pid {r['pid']})" in p.stdout
    assert rows["lab3"]["state"] in ("crashed", "stopped") and rows["lab3"]["pid"] is None
    assert len({r["pid"] for r in rows.values() if r["pid"]}) == 4
    human = env("fleet", "list", "lab", check=True).stdout
    assert "5 members, 4 running; memory promised 1G (1.2G if all run)" in human

    # Running members block reset and delete, which name them and change nothing.
    for verb in (["reset"], ["delete", "--disks"]):
        p = env("fleet", *verb, "lab")
        line = one_line_error(p, "lab1", "lab5", "running", "fleet stop lab")
        assert "lab3" not in line
    assert len(list(blank.parent.glob("lab*.qcow2"))) == 5

    # Start again: the running ones are left alone, lab3 fails again.
    p = env("fleet", "start", "lab")
    assert p.returncode == 1 and "lab1: already running" in p.stdout
    env("vm", "edit", "lab3", "--cmdline", "", check=True)
    p = env("fleet", "start", "lab", check=True)
    assert "lab3: running" in p.stdout

    pids = [r["pid"] for r in json.loads(env("fleet", "list", "lab", "--output=json",
                                             check=True).stdout)]
    p = env("fleet", "stop", "lab", "--parallel", "2", check=True)
    assert p.stdout.count(": stopped") == 5
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            b"lab" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert {r["state"] for r in json.loads(env("fleet", "list", "lab", "--output=json",
                                                check=True).stdout)} == {"stopped"}
    p = env("fleet", "stop", "lab", check=True)
    assert p.stdout.count("already not running") == 5

    env("fleet", "start", "lab", check=True)
    p = env("fleet", "kill", "lab", check=True)
    assert p.stdout.count(": killed") == 5
    env("fleet", "restart", "lab", "--parallel", "5", check=True)
    assert {r["state"] for r in json.loads(env("fleet", "list", "lab", "--output=json",
                                                check=True).stdout)} == {"running"}
    env("fleet", "kill", "lab", check=True)
    env("fleet", "delete", "lab", "--disks", check=True)
    assert list(blank.parent.iterdir()) == [blank]


def test_broken_definition_reported_others_go_on(env, blank):
    create_blank(env, blank, "lab", 3)
    (env.state / "vms" / "lab2.json").write_text("{ not json")
    p = env("fleet", "start", "lab")
    assert p.returncode == 1
    assert re.search(r"^ligero: fleet: lab2: .*lab2\.json", p.stderr, re.M), p.stderr
    assert "lab1: running" in p.stdout and "lab3: running" in p.stdout
    env("fleet", "kill", "lab")


def test_usage_errors(env, blank):
    one_line_error(env("fleet", "start", "nofleet"), "no fleet 'nofleet'")
    one_line_error(env("fleet", "list", "nofleet"), "no fleet 'nofleet'")
    one_line_error(env("fleet", "delete", "nofleet"), "no fleet 'nofleet'")
    one_line_error(env("fleet", "start", "lab", "--parallel", "0"), "--parallel")
    one_line_error(env("fleet", "start", "lab", "--force"), "--force")
    one_line_error(env("fleet", "frobnicate", "lab"), "frobnicate")
    assert json.loads(env("fleet", "list", "nofleet", "--output=json", check=True).stdout) == []
    # options after the operand, and "--"
    create_blank(env, blank, "lab", 1)
    env("fleet", "list", "--output=json", "--", "lab", check=True)
    assert "usage: ligero fleet create" in env("fleet", "create", "--help", check=True).stdout


def test_delete_disks_keeps_what_another_vm_uses(env, blank):
    create_blank(env, blank, "lab", 2)
    used = blank.parent / "lab1.qcow2"
    env("vm", "create", "teacher", "--disk", f"{used},readonly=on", "--kernel", FAKE_VMM,
        check=True)
    p = env("fleet", "delete", "lab", "--disks", check=True)
    assert re.search(r"^ligero: fleet delete: lab1: disk kept: .*teacher", p.stderr, re.M), \
        p.stderr
    assert used.exists() and not (blank.parent / "lab2.qcow2").exists()
    assert sorted(p.name for p in (env.state / "vms").iterdir()) == ["teacher.json"]
    assert blank.exists()
