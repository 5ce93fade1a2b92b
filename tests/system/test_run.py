"""`ligero run` (issue 4). The guest cases boot the test guest (tests/guest/) inside the emulated
host (tests/vmhost/), all in one emulated-host boot; the guest itself is the oracle: nproc,
/proc/meminfo, /proc/cmdline and the marker its init prints. The error cases run on this host."""
import base64
import gzip
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vmhost as vh  # noqa: E402  (tests/vmhost, on sys.path through conftest)

# The VMM runs under ASan/UBSan in CI for these boots too (conftest: the asan marker).
pytestmark = pytest.mark.asan

MARKER = "LIGERO-MARKER"

# name -> (ligero run arguments after --kernel/--initrd, expected exit status)
CASES = {
    "cpus1": (["--cpus", "1", "--memory", "256M"], 0),
    # also: the console to a file instead of stdout
    "cpus2": (["--cpus", "2", "--memory", "512M", "--console", "/tmp/console.txt"], 0),
    "cpus4": (["--cpus", "4", "--memory", "1G"], 0),
    # past 3 GiB: RAM continues above the 32-bit PCI hole, at 4 GiB
    "mem3584": (["--cpus", "1", "--memory", "3584M"], 0),
    "reboot": (["--cpus", "1", "--memory", "256M", "--exit", "reboot"], 0),
    "panic": (["--cpus", "1", "--memory", "256M", "--exit", "panic"], 1),
    # sampled by LIGERO_PROFILE (test_profile_samples_guest)
    "profile": (["--cpus", "2", "--memory", "256M"], 0),
}
# per case: environment for ligero, and the guest's command instead of the usual one
CASE_ENV = {"profile": "LIGERO_PROFILE=/tmp/prof"}
CASE_RUN = {"profile": "grep -w -e _stext -e _etext /proc/kallsyms | sed s/^/KSYM=/"}
MEMORY = {"cpus1": 256, "cpus2": 512, "cpus4": 1024, "mem3584": 3584}


def case_script():
    # a NUL byte in the script's output, as a guest console can print: the harness passes the
    # text on anyway (test_harness_output_with_nul_bytes)
    lines = ["printf 'VMHOST-NUL-PROBE\\000=1\\n'", "K=guest/vmlinuz; I=guest/initrd.img"]
    for name, (args, _) in CASES.items():
        args = list(args)
        exit_how = "poweroff"
        if "--exit" in args:
            i = args.index("--exit")
            exit_how = args[i + 1]
            del args[i:i + 2]
        token = f"tok-{name}-{os.getpid()}"
        run = CASE_RUN.get(name, "echo NPROC=$(nproc); grep MemTotal /proc/meminfo; "
                           "echo CMDLINE=$(cat /proc/cmdline)")
        cmdline = f'quiet ligero.token={token} ligero.exit={exit_how} ligero.run="{run}"'
        lines += [
            f"echo '=== CASE {name}'",
            "t0=$(cut -d' ' -f1 /proc/uptime)",
            # A boot that has not ended after 600 s is stuck (they take 5-30 s on a quiet
            # machine, ASan included; the bound is a hang guard, far above a loaded
            # machine's times), and one that triple-faults died in the emulated host's model of
            # nested SVM: early in the kernel's start, or with 4 vCPUs on L1's 2 also after
            # the guest's init began (a vCPU reset with a page fault as its last exception;
            # docs/ligero-run.md). Both are reported and tried once more, so they do not hide
            # what the other boots show; no case here expects either, and two failures fail
            # the case. A failed attempt leaves
            # its console tail, ligero's start-up marks, exit counts and vCPU state
            # (LIGERO_STATS, printed as the timeout's SIGTERM ends it) in the log.
            f"for try in 1 2; do rm -f /tmp/stats /tmp/prof; LIGERO_STATS=/tmp/stats "
            f"{CASE_ENV.get(name, '')} timeout 600 "
            f"./ligero run --stop-timeout 0 --kernel $K --initrd $I {' '.join(args)} "
            f"--cmdline {shlex.quote(cmdline)} >/tmp/out 2>/tmp/err; rc=$?; "
            "if [ $rc -ne 124 ]; then grep -q triple-faulted /tmp/err || break; fi; "
            "echo \"=== RETRY attempt $try (rc $rc)\"; tail -c 3000 /tmp/out; "
            "[ -f /tmp/console.txt ] && tail -c 3000 /tmp/console.txt; cat /tmp/err /tmp/stats; "
            "rm -f /tmp/console.txt; done",
            "echo \"=== TIME $t0 $(cut -d' ' -f1 /proc/uptime)\"",
            "if [ -f /tmp/console.txt ]; then echo \"=== STDOUT-BYTES $(wc -c </tmp/out)\";"
            " cat /tmp/console.txt >>/tmp/out; rm /tmp/console.txt; fi",
            "echo '=== STDOUT'; cat /tmp/out; echo '=== STDERR'; cat /tmp/err",
            "echo \"=== RC $rc\"",
            "if [ -f /tmp/prof ]; then echo '=== PROF'; gzip </tmp/prof | base64; "
            "echo '=== PROF-END'; fi",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def cases(vmhost):
    # 4G: the mem3584 case needs that much host RAM in the emulated host (ligero refuses more
    # guest RAM than the host has)
    res = vmhost(case_script(), timeout=3600, mem="4G")
    (vh.build_dir() / "vmhost" / "test_run.log").write_text(res.output + res.log)
    vh.skip_if_host_failed(res)
    RAW["output"] = res.output
    if "=== RETRY" in res.output:
        warnings.warn("a boot hung or died early and was retried; its console tail and "
                      "LIGERO_STATS are in "
                      f"{vh.build_dir() / 'vmhost' / 'test_run.log'}")
    out = {}
    for block in res.output.split("=== CASE ")[1:]:
        name = block.split("\n", 1)[0].strip()
        m = re.search(r"=== STDOUT\n(.*)=== STDERR\n(.*)=== RC (\d+)\n", block, re.S)
        assert m, f"case {name}: malformed output:\n{block}"
        p = re.search(r"=== PROF\n(.*)=== PROF-END", block, re.S)
        t = re.search(r"=== TIME (\S+) (\S+)", block)
        out[name] = {"stdout": m.group(1), "stderr": m.group(2), "rc": int(m.group(3)),
                     "block": block.split("=== PROF\n")[0],
                     "prof": gzip.decompress(base64.b64decode(p.group(1))).decode() if p else None,
                     "time": (float(t.group(1)), float(t.group(2))) if t else None}
    assert set(out) == set(CASES), "cases missing from the output:\n" + res.output[-4000:]
    return out


RAW = {}


def test_harness_output_with_nul_bytes(cases):
    # GNU grep calls output holding a NUL "binary" and prints none of it: vmhost.sh must not
    # lose a whole run's results that way
    assert "VMHOST-NUL-PROBE=1" in RAW["output"], RAW["output"][:2000]
    assert "=== CASE cpus1" in RAW["output"]


def field(case, key):
    m = re.search(rf"^{key}[=:]\s*(.*)$", case["stdout"], re.M)
    assert m, f"no {key} in the guest's output:\n{case['block']}"
    return m.group(1).strip()


@pytest.mark.parametrize("name", list(CASES))
def test_marker_and_exit_status(cases, name):
    c = cases[name]
    assert MARKER in c["stdout"], c["block"]
    assert c["rc"] == CASES[name][1], c["block"]


@pytest.mark.parametrize("name,cpus", [("cpus1", 1), ("cpus2", 2), ("cpus4", 4)])
def test_nproc_equals_cpus(cases, name, cpus):
    assert int(field(cases[name], "NPROC")) == cpus


@pytest.mark.parametrize("name", list(MEMORY))
def test_memtotal_matches_memory(cases, name):
    mem_kb = int(field(cases[name], "MemTotal").split()[0])
    want = MEMORY[name] * 1024
    # The kernel keeps its image, memmap and early allocations out of MemTotal: allow 64 MiB
    # plus 3%; the BIOS area below 1 MiB is never counted.
    assert want - 64 * 1024 - want * 3 // 100 <= mem_kb <= want - 640, (mem_kb, want)


def test_cmdline_reaches_guest(cases):
    line = field(cases["cpus1"], "CMDLINE")
    assert f"ligero.token=tok-cpus1-{os.getpid()}" in line
    # what the VMM adds (docs/ligero-run.md), ahead of the user's part
    assert line.startswith("panic=-1 reboot=k 8250.nr_uarts=1 console=ttyS0 quiet")


def test_console_to_file(cases):
    c = cases["cpus2"]
    # the guest's console went to the file (appended to stdout by the script), none to stdout
    assert "=== STDOUT-BYTES 0\n" in c["block"]
    assert MARKER in c["stdout"] and "NPROC=2" in c["stdout"]


def test_poweroff_and_reboot_exit_zero(cases):
    for name in ("cpus1", "reboot"):
        assert cases[name]["rc"] == 0 and "LIGERO-RC=0" in cases[name]["stdout"]
        assert cases[name]["stderr"] == "", cases[name]["stderr"]


def test_panic_exits_nonzero_with_message(cases):
    c = cases["panic"]
    assert c["rc"] == 1
    assert "Kernel panic" in c["stdout"]
    assert "ligero: guest kernel panicked" in c["stderr"]


def test_profile_samples_guest(cases):
    """LIGERO_PROFILE: samples from both vCPUs, in time order inside the run, about one per
    millisecond each, the boot vCPU's first in the bzImage's decompressor (below 4 GiB, before the
    kernel proper), and the kernel's samples in its text as the guest's own /proc/kallsyms
    places it (KASLR on)."""
    c = cases["profile"]
    assert c["prof"] is not None, "no profile written:\n" + c["block"]
    lines = c["prof"].splitlines()
    assert lines[0] == "# ligero guest profile: seconds (CLOCK_BOOTTIME) vcpu rip"
    head = re.fullmatch(r"# interval_us 1000 samples (\d+) dropped 0", lines[1])
    assert head, lines[1]
    samples = [(float(t), int(cpu), int(rip, 16)) for t, cpu, rip in
               (line.split() for line in lines[2:])]
    assert len(samples) == int(head.group(1))
    ksym = dict(reversed(line.split("=", 1)[1].split()[::2]) for line in
                c["stdout"].splitlines() if line.startswith("KSYM="))
    stext, etext = int(ksym["_stext"], 16), int(ksym["_etext"], 16)
    t0, t1 = c["time"]
    times = [t for t, _, _ in samples]
    assert times == sorted(times) and t0 <= times[0] and times[-1] <= t1
    for cpu in (0, 1):
        mine = [s for s in samples if s[1] == cpu]
        # one signal a millisecond; under emulation some are late or merged
        assert 0.2 * (t1 - t0) * 1000 <= len(mine) <= (t1 - t0) * 1000 + 10, (cpu, len(mine))
    boot = [rip for _, cpu, rip in samples if cpu == 0]
    assert boot[0] < 1 << 32, hex(boot[0])
    kernel = [rip for rip in boot if rip >= 0xffff800000000000]
    in_text = [rip for rip in kernel if stext <= rip < etext]
    # the rest: module text, once the init has loaded the modules
    assert len(kernel) > 100 and len(in_text) >= 0.9 * len(kernel), (len(kernel), len(in_text))


# --- on this host, no guest needed -------------------------------------------------------------

def ligero(*args, timeout=30, env=None):
    return subprocess.run([str(vh.ligero_binary()), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def guest():
    if not vh.ligero_binary().exists():
        pytest.skip(f"{vh.ligero_binary()} does not exist")
    try:
        return vh.build_guest()
    except RuntimeError as e:
        pytest.skip(str(e))


def test_not_a_kernel(guest):
    r = ligero("run", "--kernel", str(guest / "initrd.img"))
    assert r.returncode == 1
    assert r.stderr == (f"ligero: {guest / 'initrd.img'}: "
                        "not a Linux bzImage (no 'HdrS' setup header)\n")


def test_missing_kernel(tmp_path):
    missing = tmp_path / "vmlinuz"
    r = ligero("run", "--kernel", str(missing))
    assert r.returncode == 1
    assert r.stderr == f"ligero: {missing}: No such file or directory\n"


def test_missing_initrd(guest, tmp_path):
    r = ligero("run", "--kernel", str(guest / "vmlinuz"), "--initrd", str(tmp_path / "nope"))
    assert r.returncode == 1 and r.stderr.strip().endswith("nope: No such file or directory")


@pytest.mark.parametrize("args,msg", [
    (["--memory", "12M"], "guest memory must be at least 32 MiB"),
    (["--memory", "lots"], "--memory 'lots' is not a size"),
    (["--memory", "64T"], "is more than this host's"),
    (["--cpus", "0"], "--cpus '0' is not a CPU count"),
    (["--cpus", "300"], "--cpus '300' is not a CPU count"),
])
def test_bad_sizes(guest, args, msg):
    r = ligero("run", "--kernel", str(guest / "vmlinuz"), *args)
    assert r.returncode == 1 and msg in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_pvm_host_refuses_stock_kernel(guest):
    """On a PVM host, a stock kernel is refused at once with the way out. Some PVM hosts have
    the module loaded and no /dev/kvm at all: the message then says both."""
    if not Path("/sys/module/kvm_pvm").exists():
        pytest.skip("this host's KVM is not PVM")
    r = ligero("run", "--kernel", str(guest / "vmlinuz"), "--initrd", str(guest / "initrd.img"))
    assert r.returncode == 1
    if Path("/dev/kvm").exists():
        assert "/dev/kvm is PVM (module kvm_pvm)" in r.stderr and "--force" in r.stderr
    else:
        assert "/dev/kvm does not exist" in r.stderr and "module kvm_pvm" in r.stderr
        assert "load kvm_intel" not in r.stderr
    assert "tests/vmhost/vmhost.sh" in r.stderr
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("env,msg", [
    ({"LIGERO_PROFILE": "/nonexistent-dir/prof"},
     "ligero: LIGERO_PROFILE: /nonexistent-dir/prof: No such file or directory"),
    ({"LIGERO_PROFILE": "PROF", "LIGERO_PROFILE_US": "5"},
     "ligero: LIGERO_PROFILE_US=5: want microseconds from 100 to 1000000"),
])
def test_profile_bad_settings(guest, tmp_path, env, msg):
    env = {k: v.replace("PROF", str(tmp_path / "prof")) for k, v in env.items()}
    r = ligero("run", "--kernel", str(guest / "vmlinuz"), env=env)
    assert r.returncode != 0 and r.stderr.strip() == msg, r.stderr
    assert not (tmp_path / "prof").exists()


def test_profile_left_out_when_vm_cannot_run(guest, tmp_path):
    """A run that fails before the guest starts (here: this host's KVM) leaves no empty profile."""
    prof = tmp_path / "prof"
    r = ligero("run", "--kernel", str(guest / "vmlinuz"), env={"LIGERO_PROFILE": str(prof)})
    if r.returncode == 0:
        pytest.skip("this host's KVM ran the guest")
    assert r.stderr.startswith("ligero: ") and not prof.exists()
