"""Graceful power-off from the host (issue 20): the ACPI power button, what `ligero run` does on
SIGTERM and SIGINT, and the disks after every way a VM ends.

The guest cases run in one emulated-host boot (tests/vmhost/), one VM after the other
(power/host_power.sh says which). The oracles are the guest's own view (its acpid ran the power
key's action and printed the SCI's line of /proc/interrupts), ligero's exit status and message,
and the disks as qemu-img check, e2fsck and debugfs see them afterwards. On this host: the ACPI
tables ligero gives the guest, disassembled by iasl (acpica-tools), and option errors."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "vmhost"))
import vmhost as vh  # noqa: E402

MiB = 1 << 20
pytestmark = pytest.mark.vmhost


def sha(data):
    return hashlib.sha256(data).hexdigest()


PATTERN_SHA = sha((b"ligero-power\n" * (4 * MiB // 13 + 1))[:4 * MiB])
SEQ_SHA = sha("".join("%d\n" % i for i in range(1, 100001)).encode())


def parse(out):
    kv = {"_out": out}
    for line in out.splitlines():
        m = re.match(r"([A-Za-z0-9-]+)=(.*)$", line)
        if m:
            key = m.group(1)
            if key.endswith("-CONSOLE"):
                kv.setdefault(key, []).append(m.group(2))
            else:
                kv.setdefault(key, m.group(2).strip())
    return kv


@pytest.fixture(scope="module")
def power(tmp_path_factory):
    why = vh.missing()
    if why:
        pytest.skip(why)
    for tool in ("qemu-img", "mkfs.ext4", "e2fsck", "debugfs"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} (qemu-utils, e2fsprogs)")
    try:
        vh.build_guest()
    except RuntimeError as e:
        pytest.skip(str(e))
    d = tmp_path_factory.mktemp("power")
    subprocess.run(["mkfs.ext4", "-q", "-F", str(d / "fs.raw"), "64M"], check=True)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(d / "fs.raw"),
                    str(d / "fs.qcow2")], check=True)
    bins = [shutil.which(b) for b in ("qemu-img", "e2fsck", "debugfs")]
    res = vh.run("sh /work/host_power.sh 2>&1\n",
                 files=[str(d / "fs.qcow2"), str(HERE / "power" / "host_power.sh")],
                 bins=bins, timeout=int(os.environ.get("LIGERO_POWER_TIMEOUT", 1800)))
    (vh.build_dir() / "vmhost").mkdir(parents=True, exist_ok=True)
    (vh.build_dir() / "vmhost" / "test_power.log").write_text(res.output + res.log)
    vh.skip_if_host_failed(res)
    return parse(res.output)


def show(kv, case=None):
    out = kv["_out"]
    if case:
        out = "\n".join(line for line in out.splitlines() if line.startswith(case + "-"))
    return out[-6000:]


def button_line(kv, case):
    """The SCI's /proc/interrupts line the guest printed when its acpid got the power key."""
    lines = [c for c in kv.get(case + "-CONSOLE", []) if c.startswith("LIGERO-POWER-BUTTON")]
    assert len(lines) == 1, show(kv, case)
    return lines[0]


def sci_count(line):
    """Interrupts on the SCI, all CPUs: ' 9: 1 IO-APIC 9-fasteoi acpi' -> 1."""
    m = re.search(r"\b9:((?: \d+)+) IO-APIC 9-fasteoi acpi", line)
    assert m, line
    return sum(int(n) for n in m.group(1).split())


def assert_qcow2_clean(kv, case):
    assert kv.get(case + "-CHECK-RC") == "0", show(kv, case)
    assert "No errors were found on the image." in show(kv, case), show(kv, case)


@pytest.mark.parametrize("case", ["poweroff", "sigint"])
def test_signal_presses_button_guest_powers_off(power, case):
    """SIGTERM, and SIGINT when stdin is not a terminal: the guest's ACPI button driver gets the
    press (one SCI, on a level-triggered IOAPIC line, none before), its acpid powers off, and
    ligero exits 0 with nothing on stderr."""
    ready = [c for c in power.get(case + "-CONSOLE", []) if c.startswith("READY")]
    assert ready and sci_count(ready[0]) == 0, show(power, case)
    assert sci_count(button_line(power, case)) == 1
    assert power.get(case + "-RC") == "0", show(power, case)
    assert power.get(case + "-STDERR") == "", show(power, case)


@pytest.mark.parametrize("case", ["poweroff", "sigint"])
def test_disk_clean_after_graceful_poweroff(power, case):
    """The guest mounted ext4 on the qcow2 disk, wrote a file, and was powered off by the
    button: the image is clean, the filesystem is clean, the file is whole."""
    assert_qcow2_clean(power, case)
    assert power.get(case + "-FSCK-RC") == "0", show(power, case)
    assert power.get(case + "-SEQ-SHA") == SEQ_SHA, show(power, case)


def test_ignored_button_stop_timeout(power):
    """A guest that sees the button and ignores it is stopped once --stop-timeout has passed
    (never before), with exit status 1 and one line."""
    c = "ignore"
    assert sci_count(button_line(power, c)) == 1
    assert power.get(c + "-RC") == "1", show(power, c)
    assert power.get(c + "-STDERR") == \
        "ligero: the guest did not power off within 5 s of SIGTERM; stopped it|", show(power, c)
    t0, t1 = (float(t) for t in power[c + "-ELAPSED"].split())
    assert t1 - t0 >= 5.0, show(power, c)


def test_second_sigterm_stops_at_once(power):
    """The second SIGTERM stops the VM without waiting for the 600 s timeout: status 128+15 and
    the line that says so (the timeout would have said otherwise and exited 1)."""
    c = "twice"
    assert sci_count(button_line(power, c)) == 1
    assert power.get(c + "-RC") == "143", show(power, c)
    assert power.get(c + "-STDERR") == \
        "ligero: SIGTERM after SIGTERM, before the guest powered off; stopped it|", show(power, c)


@pytest.mark.parametrize("case,rc", [("ignore", "1"), ("twice", "143"), ("panic", "1"),
                                     ("reboot", "0")])
def test_disk_flushed_on_every_exit(power, case, rc):
    """Whatever ended the VM (timeout, second signal, guest panic, guest reboot), the writes the
    guest made (O_DIRECT, never flushed by the guest) are in the image, and qemu-img finds it
    consistent: ligero finished, flushed and closed the disk on the way out."""
    assert power.get(case + "-RC") == rc, show(power, case)
    if case == "panic":
        assert power.get(case + "-STDERR") == "ligero: guest kernel panicked|", show(power, case)
    assert_qcow2_clean(power, case)
    assert power.get(case + "-SHA") == PATTERN_SHA, show(power, case)


def test_no_hangs(power):
    assert "-HUNG=1" not in power["_out"], show(power)
    assert int(power.get("EARLY-BOOT-RETRIES", "0")) <= 2, show(power)


# --- on this host, no guest needed -------------------------------------------------------------

def ligero(*args):
    if not vh.ligero_binary().exists():
        pytest.skip(f"{vh.ligero_binary()} does not exist")
    return subprocess.run([str(vh.ligero_binary()), *args], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The tables a 2-vCPU guest sees, disassembled by iasl."""
    if not shutil.which("iasl"):
        pytest.skip("needs iasl (acpica-tools)")
    d = tmp_path_factory.mktemp("acpi")
    r = ligero("run", "--dump-acpi", str(d), "--cpus", "2")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert sorted(p.name for p in d.iterdir()) == [
        "APIC.dat", "DSDT.dat", "FACP.dat", "FACS.dat", "MCFG.dat", "RSDP.dat", "XSDT.dat"]
    out = {}
    # iasl 20200925 does not take a bare RSDP; the others are whole tables
    for name in ("APIC", "DSDT", "FACP", "FACS", "MCFG", "XSDT"):
        r = subprocess.run(["iasl", "-d", f"{name}.dat"], cwd=d, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Error" not in r.stdout + r.stderr, r.stdout + r.stderr
        out[name] = (d / f"{name}.dsl").read_text()
    return out


def dsl_field(text, name):
    m = re.search(rf"^\s*(?:\[[^\]]*\])?\s*{re.escape(name)} : (\S+)", text, re.M)
    assert m, f"no '{name}' in:\n{text}"
    return m.group(1)


def test_fadt_fixed_power_button_iasl(tables):
    f = tables["FACP"]
    # the fixed-feature power button (V1 flag clear), no sleep button
    assert dsl_field(f, "Control Method Power Button (V1)") == "0"
    assert dsl_field(f, "Control Method Sleep Button (V1)") == "1"
    # its status and enable registers, and the SCI
    assert dsl_field(f, "PM1A Event Block Address") == "00000600"
    assert dsl_field(f, "PM1 Event Block Length") == "04"
    assert dsl_field(f, "SCI Interrupt") == "0009"
    assert dsl_field(f, "SMI Command Port") == "00000000"  # ACPI mode from the start
    assert dsl_field(f, "Hardware Reduced (V5)") == "0"


def test_madt_sci_level_active_high_iasl(tables):
    a = tables["APIC"]
    overrides = re.findall(r"Subtable Type : 02 \[Interrupt Source Override\](.*?)(?=Subtable "
                           r"Type|\Z)", a, re.S)
    sci = [o for o in overrides if dsl_field(o, "Source") == "09"]
    assert len(sci) == 1, a
    assert dsl_field(sci[0], "Interrupt") == "00000009"
    assert dsl_field(sci[0], "Polarity") == "1"  # active high
    assert dsl_field(sci[0], "Trigger Mode") == "3"  # level


def test_dsdt_iasl(tables):
    d = tables["DSDT"]
    assert re.search(r"Name \(_S5, Package \(0x04\)\s*//[^\n]*\n\s*\{\s*0x05,", d), d
    assert "Device (PCI0)" in d and "Device (PEVT)" in d
    # no control-method power button beside the fixed one
    assert "PNP0C0C" not in d


@pytest.mark.parametrize("value", ["-1", "soon", "", "31536001", "5s"])
def test_bad_stop_timeout(value):
    r = ligero("run", "--kernel", "/nonexistent", "--stop-timeout", value)
    assert r.returncode == 1
    assert r.stderr == (f"ligero: --stop-timeout '{value}' is not a number of seconds "
                        "(0 to 31536000)\n"), r.stderr


def test_dump_acpi_bad_dir(tmp_path):
    r = ligero("run", "--dump-acpi", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert r.stderr == f"ligero: {tmp_path / 'nope'}/RSDP.dat: No such file or directory\n"
