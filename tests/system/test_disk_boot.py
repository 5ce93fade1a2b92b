"""Real installed systems booted from their own disks: `ligero run --disk DISK` with no --kernel
(issue 20), on the test guests of tests/guest/debian.sh.

All the boots run in one emulated-host run, one VM after the other (disk_boot/host_disk_boot.sh
says which and how): two overlays of one copy of the Debian disk (its grub.cfg entry; the second
one typed at and stopped with the power button), an overlay of the RHEL-layout disk (its BLS
default entry), and --boot-entry with the other entry, stopped once the guest's kernel has
printed its command line (which entry booted is all that boot shows). Four boots, three of them
whole: CI runs this file serially with the other
emulated-host tests, and a whole boot takes minutes of the emulated host's time. The oracles
are the guests' own view (nproc, /proc/meminfo, findmnt, sysfs drivers, ip, ping to the
emulated host, /proc/cmdline, systemctl), ligero's exit status and its stderr, the console,
and afterwards, on this host, the overlays as qemu-img check, e2fsck, debugfs,
xfs_repair and journalctl see them. Listing the entries needs no KVM and runs here."""
import base64
import json
import os
import re
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path

import pytest

from conftest import run_cmd, sha256
from guest_disks import build_guests, check_overlay, debugfs_cat, debugfs_exists, extract
from guest_disks import _vmhost
from vmhost_fixture import vmhost  # noqa: F401

HERE = Path(__file__).resolve().parent
MAC = "52:54:00:4c:47:01"
GUARD = 1200  # seconds for one boot, command and power-off (they take 1-3 minutes here)
# A boot whose console shows nothing new but the kernel's own lines for this long is lost
# (tests/guest/stall-guard.sh): booted once more well before GUARD runs out. The longest
# silence of each boot is printed ("NAME-guard| ... longest silence N s").
STALL = 420

VM1_CMD = r"""
echo NPROC=$(nproc)
echo MEMTOTAL_KB=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
echo ROOT=$(findmnt -n -o SOURCE,FSTYPE,OPTIONS /)
echo ROOT_DRIVER=$(basename "$(readlink -f /sys/block/vda/device/driver)")
echo ROOT_BLOCK_RO=$(cat /sys/block/vda/ro)
echo STATE=$(systemctl is-system-running --wait)
systemctl --failed --no-legend --plain
echo UNAME=$(uname -r)
echo KERNEL_SHA=$(sha256sum /boot/vmlinuz-$(uname -r) | cut -d' ' -f1)
echo CMDLINE=$(cat /proc/cmdline)
for d in /sys/class/net/*; do
	[ -e $d/device ] && echo "NIC=${d##*/} $(cat $d/address) $(basename "$(readlink -f $d/device/driver)")"
done
i=0
until ip -4 -o addr show scope global | grep -q inet || [ $i -ge 180 ]; do sleep 1; i=$((i + 1)); done
ip -br link
echo ADDR=$(ip -4 -o addr show scope global | awk '{print $4}')
ping -c 3 -W 10 10.0.2.1 >/dev/null
echo PING_RC=$?
systemd-analyze
systemd-analyze blame --no-pager | head -n 8
echo written-by-vm1 >/root/vm1-file
"""

# The guest stays up after this one (ligero.exit=none): the host then sends SIGTERM.
VM2_CMD = r"""
echo written-by-vm2 >/root/vm2-file
sync
udevadm settle --timeout=120
echo BUTTON=$(grep -A2 'Name="Power Button"' /proc/bus/input/devices | sed -n 's/^P: Phys=//p')
i=0
until ls -l /proc/$(pgrep -x systemd-logind)/fd 2>/dev/null | grep -q /dev/input/event || [ $i -ge 120 ]
do sleep 1; i=$((i + 1)); done
echo LOGIND_INPUTS=$(ls -l /proc/$(pgrep -x systemd-logind)/fd | grep -c /dev/input/event)
echo STATE=$(systemctl is-system-running --wait)
echo NPROC=$(nproc)
"""

# Typed at the autologin shell on vm2's serial console once its command has ended; the host
# presses the power button once the second line's output is there.
VM2_LINES = ("echo typed-at-the-console >/root/console-file",
             "echo TYPED $(nproc) $(grep MemTotal /proc/meminfo)")

# From a script disk, in the RHEL-layout disk's boot.
RHEL_CMD = r"""
echo ROOT=$(findmnt -n -o SOURCE,FSTYPE /)
echo BOOT=$(findmnt -n -o SOURCE,FSTYPE /boot)
echo ENTRIES=$(ls /boot/loader/entries | sort | tr '\n' ' ')
echo GRUBENV_SIZE=$(stat -c %s /boot/grub2/grubenv)
echo CMDLINE=$(cat /proc/cmdline)
echo KERNEL_SHA=$(sha256sum /boot/vmlinuz-$(uname -r) | cut -d' ' -f1)
echo STATE=$(systemctl is-system-running --wait)
systemctl --failed --no-legend --plain
echo written-by-the-rhel-guest-default >/root/rhel-default
"""


@pytest.fixture(scope="module")
def guests():
    return build_guests()


def run64(cmd):
    return "ligero.run64=" + base64.b64encode(cmd.encode()).decode()


def l1_modules():
    """tun and bridge (with what they need) for the emulated host, which loads only KVM."""
    mods = _vmhost.build_guest() / "modules"
    order = run_cmd(sys.executable, HERE.parent / "guest" / "modules.py", mods, "tun", "bridge",
                    check=True).stdout.split()
    return [f"{mods / m}:mods/{i:02d}-{Path(m).name}" for i, m in enumerate(order)]


def parse(output):
    """VMT lines as {name: {key: value}} (a later value wins, retries are listed), and the
    prefixed lines as {prefix: [lines]}."""
    vmt, lines = {}, {}
    for line in output.splitlines():
        if line.startswith("VMT "):
            name, *kvs = line.split()[1:]
            d = vmt.setdefault(name, {})
            for kv in kvs:
                k, _, v = kv.partition("=")
                if k == "retry":
                    d.setdefault("retries", []).append(line)
                else:
                    d[k] = v
            continue
        m = re.match(r"^([\w-]+)\| ?(.*)$", line)
        if m:
            lines.setdefault(m.group(1), []).append(m.group(2))
    return vmt, lines


@pytest.fixture(scope="module")
def boots(guests, vmhost, tmp_path_factory):  # noqa: F811
    g, r = guests, guests["rhel"]
    d = tmp_path_factory.mktemp("disk_boot")
    script = b"LIGERO-SCRIPT\n" + RHEL_CMD.encode()
    (d / "script.img").write_bytes(script + bytes((1 << 20) - len(script)))
    env = {"VM1_CMDLINE": run64(VM1_CMD), "VM2_CMDLINE": run64(VM2_CMD) + " ligero.exit=none",
           "VM2_LINE1": VM2_LINES[0], "VM2_LINE2": VM2_LINES[1],
           "RHEL_OTHER": r["other_entry"], "GUARD": str(GUARD), "STALL": str(STALL)}
    (d / "disk_boot.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
    out = d / "out"
    t0 = time.monotonic()
    res = vmhost("sh /work/host_disk_boot.sh 2>&1\n",
                 files=[str(HERE / "disk_boot" / "host_disk_boot.sh"),
                        str(HERE.parent / "guest" / "console-session.sh"),
                        str(HERE.parent / "guest" / "stall-guard.sh"),
                        str(d / "disk_boot.env")] + l1_modules(),
                 disks=[f"{g['disk']}:base.qcow2", r["disk"], d / "script.img"],
                 disks_out=out, timeout=7200)
    elapsed = time.monotonic() - t0
    (_vmhost.build_dir() / "vmhost").mkdir(parents=True, exist_ok=True)
    (_vmhost.build_dir() / "vmhost" / "test_disk_boot.log").write_text(res.output + res.log)
    _vmhost.skip_if_host_failed(res)
    assert res.rc == 0, res.output[-4000:] + res.log[-2000:]
    vmt, lines = parse(res.output)
    host_retries = res.log.count("failed (emulated host)")
    retried = [x for v in vmt.values() for x in v.get("retries", [])]
    # Reported, never hidden: a boot the emulated host killed (triple fault, hang) was run
    # once more from its disk as it was; an emulated host that failed was booted once more.
    for x in retried:
        warnings.warn("emulated host: " + x)
    if host_retries:
        warnings.warn(f"emulated host: the whole run was repeated {host_retries} time(s)")
    os.symlink(r["disk"], out / "rhel.qcow2")  # the RHEL overlay's base, for qemu-img
    run_l1 = float(vmt["run"]["end"]) - float(vmt["run"]["start"])
    print(f"\ndisk-boot: the emulated host ran for {float(vmt['run']['end']):.0f} s (L1's "
          f"uptime at the end of its script, {run_l1:.0f} s of it the script's); {elapsed:.0f} s "
          f"on this host with the copies in and out and the wait for VMHOST_LOCK; boots retried "
          f"{len(retried)}, emulated host repeated {host_retries}")
    for name in ("vm1", "vm2", "rhel", "rescue"):
        v = vmt.get(name, {})
        if "start" in v:
            mu = multi_user(lines.get(name + "-con", []))
            print(f"disk-boot: {name}: {float(v['end']) - float(v['start']):.1f} s from "
                  f"`ligero run` to its exit (L1's clock); multi-user at "
                  f"{mu[0][1] if mu else '?'} s of guest uptime; status {v.get('rc')}; "
                  f"{'; '.join(lines.get(name + '-guard', []))}")
    return {"vmt": vmt, "lines": lines, "out": out, "output": res.output}


def multi_user(lines):
    """(line index, guest uptime) of each LIGERO-MULTIUSER marker: the unit writes the line in
    one write(), but the getty may have written part of a line on the console before it."""
    return [(i, m.group(1)) for i, x in enumerate(lines)
            for m in [re.search(r"LIGERO-MULTIUSER (\d+\.\d+)$", x)] if m]


def con(boots, name):
    """The console's lines, without terminal control sequences (bash's bracketed-paste mode
    switches, around each prompt on the serial console)."""
    return [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", x) for x in boots["lines"].get(name + "-con", [])]


def err(boots, name):
    return boots["lines"].get(name + "-err", [])


def show(boots, name):
    return "\n".join(err(boots, name) + ["-- console:"] + con(boots, name)[-80:])


def command_output(lines):
    """The lines between LIGERO-TEST-BEGIN and LIGERO-TEST-RC=N, and N."""
    begin = lines.index("LIGERO-TEST-BEGIN")
    for i in range(begin + 1, len(lines)):
        m = re.match(r"^LIGERO-TEST-RC=(\d+)$", lines[i])
        if m:
            return lines[begin + 1:i], int(m.group(1))
    raise AssertionError("no LIGERO-TEST-RC line after LIGERO-TEST-BEGIN")


def values(block):
    return dict(line.split("=", 1) for line in block if re.match(r"^[A-Z_0-9]+=", line))


def powered_down(lines):
    """The kernel's last words when it powers off (printed at KERN_EMERG, so even with
    `quiet`)."""
    return any(re.search(r"(^|\] )reboot: Power down$", x) for x in lines)


def rc(boots, name):
    return int(boots["vmt"].get(name, {}).get("rc", -1))


@pytest.fixture(scope="module")
def overlays(boots, tmp_path_factory):
    """Each Debian overlay checked by qemu-img check (with its base), its root partition
    extracted from the chain converted to raw: {name: root.ext4}."""
    d = tmp_path_factory.mktemp("overlays")
    roots = {}
    for name in ("vm1", "vm2"):
        raw, parts = check_overlay(boots["out"] / f"{name}.qcow2", d, name)
        roots[name] = extract(raw, parts[1], d / f"{name}-root.ext4")
        raw.unlink()
    return roots


# ---- host side: the entries (no KVM) -----------------------------------------------------------

def listing(ligero, disk, *args):
    p = run_cmd(ligero, "run", "--disk", disk, "--list-boot-entries", *args, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_list_boot_entries_debian(ligero, guests):
    g = guests
    j = json.loads(listing(ligero, g["disk"], "--output=json"))
    assert j["default"] == 0 and len(j["entries"]) == 3
    e = j["entries"]
    assert e[0]["title"] == "Debian GNU/Linux" and e[0]["default"] and e[0]["kind"] == "grub.cfg"
    assert e[0]["kernel"] == f"/boot/vmlinuz-{g['kernel_version']}"
    assert e[0]["initrd"] == [f"/boot/initrd.img-{g['kernel_version']}"]
    assert e[0]["filesystem"] == f"{g['disk']}:2"
    assert e[0]["options"] == g["cmdline"]
    assert e[2]["title"].endswith("(recovery mode)") and "single" in e[2]["options"].split()
    text = listing(ligero, g["disk"])
    assert text.startswith("0: Debian GNU/Linux (default)\n")


def test_list_boot_entries_rhel(ligero, guests):
    r = guests["rhel"]
    j = json.loads(listing(ligero, r["disk"], "--output=json"))
    assert [(e["title"], e["id"], e["kind"], e["default"]) for e in j["entries"]] == [
        (r["default_title"], r["default_entry"], "BLS", True),
        (r["other_title"], r["other_entry"], "BLS", False)]
    assert j["default"] == 0
    for e in j["entries"]:
        assert e["filesystem"] == f"{r['disk']}:{r['boot_partition']}"
        assert e["kernel"] == f"/vmlinuz-{r['kernel_version']}"
    assert j["entries"][0]["options"] == r["kernelopts"]  # $kernelopts from grubenv
    assert j["entries"][1]["options"] == f"{r['kernelopts']} {r['other_option']}"
    text = listing(ligero, r["disk"])
    assert f"0: {r['default_title']} (default)\n" in text
    assert f"\n1: {r['other_title']}\n" in text


# ---- the Debian disk --------------------------------------------------------------------------

def test_debian_boots_its_own_entry(boots, guests):
    g = guests
    assert rc(boots, "vm1") == 0, show(boots, "vm1")
    e = err(boots, "vm1")
    kver = g["kernel_version"]
    assert e[0] == (f"ligero: booting 'Debian GNU/Linux' (grub.cfg default entry) from "
                    f"disks/vm1.qcow2:2: /boot/vmlinuz-{kver} with initrd "
                    f"/boot/initrd.img-{kver}"), show(boots, "vm1")
    assert e[1].startswith("ligero: the entry names no serial console"), e
    c = con(boots, "vm1")
    assert any(re.match(r"^debian login: root \(automatic login\)", x) for x in c), \
        "no login prompt on the serial console"
    multi = multi_user(c)
    assert multi and multi[0][0] < c.index("LIGERO-TEST-BEGIN")
    block, status = command_output(c)
    v = values(block)
    assert status == 0, block
    assert v["STATE"] == "running", block  # systemd: every unit up, none failed
    assert v["UNAME"] == kver
    assert v["KERNEL_SHA"] == sha256(g["kernel"])
    words = v["CMDLINE"].split()
    i = words.index(f"root=UUID={g['root_uuid']}")
    assert words[i:i + 4] == g["cmdline"].split() + ["console=ttyS0"], words


def test_debian_sees_its_machine(boots):
    block, _ = command_output(con(boots, "vm1"))
    v = values(block)
    assert v["NPROC"] == "2"
    assert 900_000 < int(v["MEMTOTAL_KB"]) <= 1 << 20
    src, fstype, opts = v["ROOT"].split()
    assert (src, fstype) == ("/dev/vda2", "ext4") and "rw" in opts.split(",")
    assert v["ROOT_DRIVER"] == "virtio_blk" and v["ROOT_BLOCK_RO"] == "0"


def test_debian_network(boots):
    block, _ = command_output(con(boots, "vm1"))
    nics = [x.split("=", 1)[1].split() for x in block if x.startswith("NIC=")]
    assert len(nics) == 1 and nics[0][1:] == [MAC, "virtio_net"], block
    assert nics[0][0].startswith("en"), nics  # a PCI slot name: enp0sN
    v = values(block)
    addr = v["ADDR"]
    assert re.match(r"^10\.0\.2\.1(0\d|1\d|20)/24$", addr), block  # from L1's DHCP server
    assert v["PING_RC"] == "0", block  # and the emulated host answers
    dhcp = "\n".join(boots["lines"].get("dhcp", []))
    assert "error" not in dhcp.lower(), dhcp


def test_debian_poweroff_clean(boots, overlays):
    """`poweroff` in the guest (systemctl poweroff): ligero exits 0, and the overlay and its
    filesystem are clean and hold what the guest wrote."""
    assert rc(boots, "vm1") == 0, show(boots, "vm1")
    assert powered_down(con(boots, "vm1"))
    root = overlays["vm1"]
    fsck = run_cmd("e2fsck", "-fn", root)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert debugfs_cat(root, "/root/vm1-file") == "written-by-vm1\n"


def journal(root, tmp_path, name):
    """The guest's persistent journal, read from its root filesystem (debugfs) by journalctl
    as messages; without journalctl, the MESSAGE= fields found in the journal files' bytes
    (short fields are stored uncompressed)."""
    d = tmp_path / f"journal-{name}"
    d.mkdir()
    run_cmd("debugfs", "-R", f"rdump /var/log/journal {d}", root, check=True)
    if shutil.which("journalctl"):
        p = run_cmd("journalctl", "-D", d / "journal", "-o", "short", "--no-pager", check=True)
        return p.stdout
    data = b"".join(f.read_bytes() for f in d.rglob("*.journal"))
    return "\n".join(m.decode(errors="replace") for m in re.findall(rb"MESSAGE=[ -~]+", data))


def test_debian_sigterm_powers_off(boots, overlays, tmp_path):
    """SIGTERM to ligero presses the ACPI power button; logind powers the guest off; ligero
    exits 0 before --stop-timeout (300 s) and the disk is clean."""
    v = boots["vmt"]["vm2"]
    assert "sigterm" in v, show(boots, "vm2")  # the guest's command ended, the host pressed
    assert rc(boots, "vm2") == 0, show(boots, "vm2")
    assert not any("did not power off" in x for x in err(boots, "vm2")), err(boots, "vm2")
    block, status = command_output(con(boots, "vm2"))
    w = values(block)
    assert status == 0 and w["STATE"] == "running", block
    assert w["BUTTON"] == "LNXPWRBN/button/input0", block  # the ACPI button, from the FADT
    assert int(w["LOGIND_INPUTS"]) >= 1, block  # logind watches it
    c = con(boots, "vm2")
    assert powered_down(c[c.index(f"LIGERO-TEST-RC={status}"):])
    root = overlays["vm2"]
    fsck = run_cmd("e2fsck", "-fn", root)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert debugfs_cat(root, "/root/vm2-file") == "written-by-vm2\n"
    log2 = journal(root, tmp_path, "vm2")
    assert re.search(r"Power key pressed", log2), log2[-3000:]
    assert "System is powering down" in log2 or "Powering off" in log2, log2[-3000:]
    # the control: vm1 was powered off from inside, nobody pressed its button
    log1 = journal(overlays["vm1"], tmp_path, "vm1")
    assert "Power key pressed" not in log1 and log1.strip(), log1[-2000:]
    print(f"disk-boot: vm2 SIGTERM to exit "
          f"{float(v['end']) - float(v['sigterm']):.1f} s of L1's clock")


def test_console_typed_commands(boots, overlays):
    """vm2: commands typed at the serial console's shell once the guest's own command has
    ended run there (their output on the console, their file on the disk); 1 vCPU and
    768 MiB as given; the power button, pressed after them, still ends the VM cleanly."""
    assert rc(boots, "vm2") == 0, show(boots, "vm2")
    c = con(boots, "vm2")
    out = [x for x in c if re.match(r"^TYPED \d+ MemTotal:", x)]
    assert len(out) == 1, show(boots, "vm2")
    _, nproc, _, kb, _ = out[0].split()
    assert nproc == "1"
    assert 640_000 < int(kb) <= 768 * 1024
    # typed after the command's last line, not mixed with it
    assert c.index(out[0]) > c.index("LIGERO-TEST-RC=0"), show(boots, "vm2")
    assert any(x.endswith("# " + VM2_LINES[0]) for x in c), c[-20:]
    assert debugfs_cat(overlays["vm2"], "/root/console-file") == "typed-at-the-console\n"
    assert powered_down(c[c.index(out[0]):])


def test_overlays_keep_their_own_changes(boots, overlays, guests, ligero):
    """Two overlays of one base, booted one after the other: each holds its own file only
    (debugfs, and ligero fs cat through the chain), each is clean, the base is unchanged."""
    for name, root in overlays.items():
        fsck = run_cmd("e2fsck", "-fn", root)
        assert fsck.returncode == 0, (name, fsck.stdout)
        for other in overlays:
            assert debugfs_exists(root, f"/root/{other}-file") == (other == name), (name, other)
        p = run_cmd(ligero, "fs", "cat", boots["out"] / f"{name}.qcow2", f"/root/{name}-file")
        assert p.returncode == 0 and p.stdout == f"written-by-{name}\n", p.stderr
    assert not debugfs_exists(overlays["vm1"], "/root/base-file")
    assert sha256(boots["out"] / "base.qcow2") == sha256(guests["disk"])


def test_base_refuses_writes(boots):
    """While the overlays use it, the base is refused for writing (ligero img io, ligero fs
    write), with a line naming it and its overlays; the hash above shows nothing got in."""
    for case in ("guard-io", "guard-fs"):
        assert rc(boots, case) == 1, boots["lines"].get(case)
        lines = boots["lines"].get(case, [])
        assert len(lines) == 1, lines
        assert re.match(r"^ligero: disks/base\.qcow2: image is the backing file of 2 overlays "
                        r"\(/work/disks/vm\d\.qcow2\); writing to it would corrupt them",
                        lines[0]), lines


# ---- the RHEL-layout disk ---------------------------------------------------------------------

def test_rhel_default_entry(boots, guests):
    r = guests["rhel"]
    assert rc(boots, "rhel") == 0, show(boots, "rhel")
    assert err(boots, "rhel")[0].startswith(
        f"ligero: booting '{r['default_title']}' (BLS default entry) from "
        f"disks/rhel-over.qcow2:1: /vmlinuz-{r['kernel_version']}"), err(boots, "rhel")
    assert not any("added console" in x for x in err(boots, "rhel"))  # kernelopts names ttyS0
    block, status = command_output(con(boots, "rhel"))
    v = values(block)
    assert status == 0, block
    assert v["ROOT"] == "/dev/vda2 ext4" and v["BOOT"] == "/dev/vda1 xfs"
    assert v["ENTRIES"].split() == sorted([r["default_entry"] + ".conf",
                                           r["other_entry"] + ".conf"])
    assert v["GRUBENV_SIZE"] == "1024"
    opts = r["kernelopts"].split()
    words = v["CMDLINE"].split()
    assert words[-len(opts):] == opts and r["other_option"] not in words
    assert v["KERNEL_SHA"] == sha256(guests["kernel"])
    assert v["STATE"] == "running", block


def test_rhel_boot_entry_other(boots, guests):
    """--boot-entry with the other BLS entry: ligero says which it booted, and the guest's kernel
    prints that entry's options (its own `Command line:` line, the first it prints); then
    SIGTERM with --stop-timeout 0 stops it at once (status 128 + 15)."""
    r = guests["rhel"]
    assert "sigterm" in boots["vmt"].get("rescue", {}), show(boots, "rescue")
    assert rc(boots, "rescue") == 143, show(boots, "rescue")
    assert err(boots, "rescue")[0].startswith(
        f"ligero: booting '{r['other_title']}' (BLS entry 1, --boot-entry) from "
        f"disks/rescue.qcow2:{r['boot_partition']}: /vmlinuz-{r['kernel_version']}"), \
        err(boots, "rescue")
    lines = [x for x in con(boots, "rescue") if re.search(r"\] Command line: ", x)]
    assert len(lines) == 1, show(boots, "rescue")
    words = lines[0].split("Command line: ", 1)[1].split()
    assert words[-len(r["kernelopts"].split()) - 1:] == r["kernelopts"].split() + [
        r["other_option"]], words
    # the default entry's boot, for contrast, has not the other entry's option
    c = [x for x in con(boots, "rhel") if re.search(r"\] Command line: ", x)]
    assert len(c) == 1 and r["other_option"] not in c[0].split(), c


def test_rhel_overlay_clean(boots, guests, tmp_path):
    raw, parts = check_overlay(boots["out"] / "rhel-over.qcow2", tmp_path, "rhel")
    boot = extract(raw, parts[0], tmp_path / "boot.xfs")
    root = extract(raw, parts[1], tmp_path / "root.ext4")
    raw.unlink()
    rep = run_cmd("xfs_repair", "-n", "-f", boot)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    fsck = run_cmd("e2fsck", "-fn", root)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert debugfs_cat(root, "/root/rhel-default") == "written-by-the-rhel-guest-default\n"
