"""`ligero ksm`: status, enable/disable, auto, against a scripted host (a fake root directory
with proc/ and sys/kernel/mm/ksm/, selected with LIGERO_KSM_ROOT) and on this live host.

Oracles: the values the test scripted; the live kernel's sysfs and /proc read in the same test;
systemd-tmpfiles applying the drop-in `enable --persist` writes; systemd-analyze verify on the
unit `auto --persist` installs; Debian's ksmtuned script itself (apt-get download ksmtuned),
run on the same inputs as `ksm auto --once`. KSM is never switched on on the live host (it is
shared): tests that write knobs use a fake root; the emulated host's test (test_vm_memory.py)
switches the real one.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("LIGERO_BUILD", REPO / "build"))
KSM_FILES = {"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20",
             "merge_across_nodes": "1", "use_zero_pages": "0", "max_page_sharing": "256",
             "pages_shared": "1000", "pages_sharing": "9000", "pages_unshared": "50",
             "pages_volatile": "7", "full_scans": "12"}
MEMINFO = ("MemTotal:        2097152 kB\nMemFree:          307200 kB\n"
           "MemAvailable:     614400 kB\nBuffers:           10240 kB\nCached:           102400 kB\n")


def make_root(base, ksm=KSM_FILES, meminfo=MEMINFO, vms=()):
    """A fake host: sys/kernel/mm/ksm/* from ksm, proc/meminfo, and for each VM
    (pid, argv, rss_kb, merging or None, exe) proc/PID/{exe,cmdline,status,ksm_merging_pages}."""
    root = Path(base) / "root"
    k = root / "sys/kernel/mm/ksm"
    k.mkdir(parents=True)
    for name, v in ksm.items():
        (k / name).write_text(v + "\n")
    (root / "proc").mkdir()
    (root / "proc/meminfo").write_text(meminfo)
    for vm in vms:
        pid, argv, rss, merging = vm[:4]
        exe = vm[4] if len(vm) > 4 else "/usr/local/bin/ligero"
        d = root / "proc" / str(pid)
        d.mkdir()
        os.symlink(exe, d / "exe")
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (d / "status").write_text(f"Name:\tligero\nVmRSS:\t{rss} kB\n")
        if merging is not None:
            (d / "ksm_merging_pages").write_text(f"{merging}\n")
    return root


def ksm(ligero, run, root, *args, check=True):
    env = dict(os.environ)
    if root is not None:
        env["LIGERO_KSM_ROOT"] = str(root)
    return run(ligero, "ksm", *args, env=env, check=check)


VMS = [(4242, ["ligero", "run", "--kernel", "k", "--memory", "900M"], 614400, 51200),
       (4243, ["/opt/ligero", "run", "--memory=900M", "--cpus", "1"], 307200, 0),
       (4244, ["ligero", "run", "--kernel", "k"], 102400, None),
       (4245, ["qemu-system-x86_64", "run", "--memory", "2G"], 999999, 1,
        "/usr/bin/qemu-system-x86_64"),
       (4246, ["ligero", "img", "info", "x"], 5000, 1)]


def test_status_fake_root(ligero, run, tmp_path):
    root = make_root(tmp_path, vms=VMS)
    st = json.loads(ksm(ligero, run, root, "status", "--output=json").stdout)
    k = st["ksm"]
    assert k["present"] is True
    for name, v in KSM_FILES.items():
        group = "knobs" if name in ("run", "pages_to_scan", "sleep_millisecs",
                                    "merge_across_nodes", "use_zero_pages",
                                    "max_page_sharing") else "counters"
        assert k[group][name] == int(v), name
    # files this kernel lacks are unknown, not zero
    assert k["counters"]["ksm_zero_pages"] is None and k["general-profit-bytes"] is None
    page = k["page-size"]
    assert k["saved-bytes"] == 9000 * page
    assert [v["pid"] for v in st["vms"]] == [4242, 4243, 4244]
    a, b, c = st["vms"]
    assert a["memory-bytes"] == b["memory-bytes"] == 900 << 20
    assert c["memory-bytes"] == 256 << 20 and c["memory-source"] == "ligero run's default"
    assert a["rss-bytes"] == 614400 * 1024 and a["rss-source"] == "/proc/4242/status VmRSS"
    assert a["merging-pages"] == 51200
    assert a["merging-source"] == "/proc/4242/ksm_merging_pages"
    assert a["saved-bytes"] == 51200 * 9000 // 10000 * page
    assert b["merging-pages"] == 0 and b["saved-bytes"] == 0
    assert c["merging-pages"] is None and c["merging-source"] is None
    assert c["saved-bytes"] is None and c["profit-bytes"] is None
    h = st["host"]
    assert h["memory-total-bytes"] == 2097152 * 1024
    assert h["promised-bytes"] == (900 + 900 + 256) << 20
    assert h["used-bytes"] == (2097152 - 614400) * 1024
    assert h["saved-bytes"] == 9000 * page

    text = ksm(ligero, run, root, "status").stdout
    assert "KSM: stopped (run=0)" in text
    assert re.search(r"\n  4244 .* unknown .* unknown: this kernel has no per-process", text), text
    assert "guest memory promised 2056.0 MiB" in text
    assert "host memory used 1448.0 MiB" in text


def test_status_without_ksm(ligero, run, tmp_path):
    root = make_root(tmp_path, vms=VMS[:1])
    shutil.rmtree(root / "sys")
    st = json.loads(ksm(ligero, run, root, "status", "--output=json").stdout)
    assert st["ksm"]["present"] is False and st["ksm"]["saved-bytes"] is None
    assert st["vms"][0]["saved-bytes"] is None and st["vms"][0]["merging-pages"] == 51200
    text = ksm(ligero, run, root, "status").stdout
    assert "KSM: not available" in text
    p = ksm(ligero, run, root, "enable", check=False)
    assert p.returncode == 1 and "has no KSM" in p.stderr and p.stderr.startswith("ligero: ")


def test_enable_disable_and_persist(ligero, run, tmp_path):
    root = make_root(tmp_path)
    k = root / "sys/kernel/mm/ksm"
    p = ksm(ligero, run, root, "enable", "--pages-to-scan", "4000", "--sleep-ms", "10",
            "--persist", check=True)
    assert (k / "run").read_text() == "1" and (k / "pages_to_scan").read_text() == "4000"
    assert (k / "sleep_millisecs").read_text() == "10"
    dropin = root / "etc/tmpfiles.d/ligero-ksm.conf"
    assert dropin.exists() and "persisted" in p.stdout
    # systemd-tmpfiles itself applies the drop-in to a fresh fake sysfs (empty files: `w`
    # does not truncate, the kernel's files have no length)
    if shutil.which("systemd-tmpfiles"):
        for f in ("run", "pages_to_scan", "sleep_millisecs"):
            (k / f).write_text("")
        run("systemd-tmpfiles", f"--root={root}", "--create", "ligero-ksm.conf", check=True)
        assert (k / "run").read_text() == "1"
        assert (k / "pages_to_scan").read_text() == "4000"
        assert (k / "sleep_millisecs").read_text() == "10"
    p = ksm(ligero, run, root, "disable", "--unmerge")
    assert (k / "run").read_text() == "2"
    assert not dropin.exists() and "removed" in p.stdout
    ksm(ligero, run, root, "disable")
    assert (k / "run").read_text() == "0"
    # bad values: one line, nothing written
    (k / "run").write_text("0")
    for args in (["--pages-to-scan", "0"], ["--pages-to-scan", "x"], ["--sleep-ms", "-1"],
                 ["extra"]):
        p = ksm(ligero, run, root, "enable", *args, check=False)
        assert p.returncode == 1 and p.stderr.startswith("ligero: "), (args, p.stderr)
        assert p.stderr.count("\n") == 1, p.stderr
        assert (k / "run").read_text() == "0"


def test_enable_needs_root(ligero, run, tmp_path):
    """A non-root caller is told the knobs are root's (the fake sysfs is read-only for it)."""
    if os.geteuid() != 0:
        p = ksm(ligero, run, None, "enable", check=False)
        assert p.returncode == 1 and "root" in p.stderr
        return
    base = Path(tempfile.mkdtemp(prefix="ligero-ksm-"))
    try:
        os.chmod(base, 0o755)  # the caller below may walk to the knob, not write it
        root = make_root(base)
        os.chmod(root / "sys/kernel/mm/ksm/run", 0o644)
        # The binary runs from a copy there: the checkout's own directory may not be one the
        # unprivileged user can walk into (mktemp -d makes it 0700).
        exe = base / "ligero"
        shutil.copy2(ligero, exe)
        p = subprocess.run([exe, "ksm", "enable"], capture_output=True, text=True,
                           env=dict(os.environ, LIGERO_KSM_ROOT=str(root)),
                           preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    finally:
        shutil.rmtree(base)
    assert p.returncode == 1, p.stderr
    assert "permission denied" in p.stderr and "run as root" in p.stderr, p.stderr


# ---- ksm auto ----

def auto_once(ligero, run, root, *args):
    p = ksm(ligero, run, root, "auto", "--once", "--output=json", *args)
    return json.loads(p.stdout)


def meminfo(total, free, buffers=0, cached=0, available=None):
    return (f"MemTotal: {total} kB\nMemFree: {free} kB\nMemAvailable: "
            f"{available if available is not None else free} kB\nBuffers: {buffers} kB\n"
            f"Cached: {cached} kB\n")


def test_auto_once_decisions(ligero, run, tmp_path):
    """Three hosts, decided as ksmtuned decides (numbers worked out in test_host_ksm.c)."""
    vms = [(10, ["ligero", "run", "--memory", "1G"], 900 * 1024, 0),
           (11, ["ligero", "run", "--memory", "1G"], 900 * 1024, 0)]
    # 2 GiB host, 1800 MiB of VMs, 100 MiB free: run, boost
    root = make_root(tmp_path / "a", meminfo=meminfo(2097152, 102400), vms=vms)
    d = auto_once(ligero, run, root)
    assert d["vms"] == 2 and d["committed-kb"] == 1800 * 1024 and d["threshold-kb"] == 419430
    assert d["run"] is True and d["pages_to_scan"] == 300 and d["sleep_millisecs"] == 80
    k = root / "sys/kernel/mm/ksm"
    assert (k / "run").read_text() == "1" and (k / "pages_to_scan").read_text() == "300"
    # the next decision goes on from what runs: 300 + 300
    assert auto_once(ligero, run, root)["pages_to_scan"] == 600
    # plenty of room: stop
    (root / "proc/meminfo").write_text(meminfo(16 * 1048576, 10 * 1048576))
    d = auto_once(ligero, run, root)
    assert d["run"] is False and (k / "run").read_text() == "0"
    # --dry-run writes nothing
    (root / "proc/meminfo").write_text(meminfo(2097152, 102400))
    d = auto_once(ligero, run, root, "--dry-run")
    assert d["run"] is True and d["applied"] is False and (k / "run").read_text() == "0"
    # settings with ksmtuned's names
    d = auto_once(ligero, run, root, "--npages-boost", "5000", "--npages-max", "4000",
                  "--sleep-msec", "40")
    assert d["pages_to_scan"] == 4000 and d["sleep_millisecs"] == 320
    for args, msg in ((["--npages-min", "10", "--npages-max", "5"], "--npages-min"),
                      (["--interval", "x"], "--interval 'x'"),
                      (["--thres-coef", "101"], "--thres-coef '101'"),
                      (["--output=xml"], "--output")):
        p = ksm(ligero, run, root, "auto", "--once", *args, check=False)
        assert p.returncode == 1 and msg in p.stderr and p.stderr.count("\n") == 1, p.stderr
    # the kernel's advisor (6.7+): refused where absent, used where present
    p = ksm(ligero, run, root, "auto", "--once", "--advisor", check=False)
    assert p.returncode == 1 and "advisor" in p.stderr
    (k / "advisor_mode").write_text("[none] scan-time\n")
    d = auto_once(ligero, run, root, "--advisor")
    assert d["run"] is True and "pages_to_scan" not in d
    assert (k / "advisor_mode").read_text() == "scan-time"


def ksmtuned_script(tmp_path_factory):
    """Debian's ksmtuned script, from the package (downloaded, unpacked, never installed)."""
    if os.path.exists("/usr/sbin/ksmtuned"):
        return Path("/usr/sbin/ksmtuned").read_text()
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    d = tmp_path_factory.mktemp("ksmtuned")
    p = subprocess.run(["apt-get", "download", "ksmtuned"], cwd=d, capture_output=True)
    debs = list(d.glob("ksmtuned_*.deb"))
    if p.returncode or not debs:
        return None
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(d / "x")], check=True)
    f = d / "x/usr/sbin/ksmtuned"
    return f.read_text() if f.exists() else None


@pytest.fixture(scope="module")
def ksmtuned(tmp_path_factory):
    s = ksmtuned_script(tmp_path_factory)
    if s is None:
        pytest.skip("Debian's ksmtuned script is not available (apt-get download ksmtuned)")
    if not shutil.which("bash"):
        pytest.skip("ksmtuned is a bash script: no bash")
    return s


def run_ksmtuned(script, root, committed_kb, npages):
    """Debian's ksmtuned, its functions only (everything before it starts its loop), with its
    paths moved under root and its qemu process count replaced by ours; one adjust."""
    head = script[:script.index("PIDFILE=")]
    head = head.replace("/etc/ksmtuned.conf", "/nonexistent/ksmtuned.conf")
    head = head.replace("/proc/meminfo", f"{root}/proc/meminfo")
    head = head.replace("/sys/kernel/mm/ksm", f"{root}/sys/kernel/mm/ksm")
    tail = (f"\ncommitted_memory () {{ echo {committed_kb}; }}\nnpages={npages}\nadjust\n"
            "echo npages=$npages\n")
    p = subprocess.run(["bash", "-c", head + tail], capture_output=True, text=True)
    assert p.returncode in (0, 1), p.stderr  # adjust returns 1 when it stops KSM
    return p.stdout


@pytest.mark.parametrize("total,free,buffers,cached,vm_rss,start", [
    (2097152, 102400, 0, 0, [921600, 921600], 0),         # seed-sized host, short: boost
    (2097152, 102400, 0, 0, [921600, 921600], 1200),      # boost, capped at 1250
    (2097152, 400000, 10000, 20000, [900000, 700000], 300),  # tight but free: decay
    (2097152, 400000, 10000, 20000, [900000, 700000], 80),   # decay, floored at 64
    (16777216, 9000000, 0, 500000, [1048576], 500),       # lots of room: stop
    (2097152, 419430, 0, 0, [], 100),                     # free == threshold: decay
    (8192, 4000, 0, 0, [1000], 0),                        # tiny host: KSM_THRES_CONST
    (67108864, 1048576, 0, 0, [66060288], 0),             # big host: sleep floor 10 ms
])
def test_auto_matches_ksmtuned(ligero, run, tmp_path, ksmtuned, total, free, buffers, cached,
                               vm_rss, start):
    """The same host given to ksmtuned and to `ligero ksm auto --once`: same knobs written."""
    vms = [(100 + i, ["ligero", "run", "--memory", "1G"], rss, 0) for i, rss in enumerate(vm_rss)]
    ksm_files = dict(KSM_FILES)
    if start:
        ksm_files.update(run="1", pages_to_scan=str(start))
    mi = meminfo(total, free, buffers, cached)
    ours = make_root(tmp_path / "ours", ksm=ksm_files, meminfo=mi, vms=vms)
    theirs = make_root(tmp_path / "theirs", ksm=ksm_files, meminfo=mi)
    auto_once(ligero, run, ours)
    out = run_ksmtuned(ksmtuned, theirs, sum(vm_rss), start)
    for f in ("run", "pages_to_scan", "sleep_millisecs"):
        a = (ours / "sys/kernel/mm/ksm" / f).read_text().strip()
        b = (theirs / "sys/kernel/mm/ksm" / f).read_text().strip()
        assert a == b, f"{f}: ligero wrote {a}, ksmtuned {b} ({out.strip()})"


def test_auto_loop_signals(ligero, tmp_path):
    """The foreground loop decides at start, again on SIGUSR1 (as ksmtuned), ends on SIGTERM."""
    root = make_root(tmp_path, meminfo=meminfo(2097152, 102400),
                     vms=[(10, ["ligero", "run"], 1800 * 1024, 0)])
    p = subprocess.Popen([ligero, "ksm", "auto", "--interval", "3600"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, LIGERO_KSM_ROOT=str(root)))
    try:
        first = p.stdout.readline()
        assert "boost" in first and "pages_to_scan=300" in first, first
        (root / "proc/meminfo").write_text(meminfo(16 * 1048576, 10 * 1048576))
        p.send_signal(signal.SIGUSR1)
        second = p.stdout.readline()
        assert "stop" in second and "=> run=0" in second, second
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=300) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_auto_persist_unit(ligero, run, tmp_path):
    root = make_root(tmp_path)
    p = ksm(ligero, run, root, "auto", "--persist", "--interval", "30", "--advisor")
    unit = root / "etc/systemd/system/ligero-ksm-auto.service"
    wants = root / "etc/systemd/system/multi-user.target.wants/ligero-ksm-auto.service"
    text = unit.read_text()
    exe = os.path.realpath(ligero)
    assert f"\nExecStart={exe} ksm auto --interval 30 --advisor\n" in text
    assert os.readlink(wants) == "/etc/systemd/system/ligero-ksm-auto.service"
    assert "installed" in p.stdout
    # the contributed unit is the same text with the installed binary's path
    contrib = (REPO / "contrib/ligero-ksm-auto.service").read_text()
    assert contrib == text.replace(f"{exe} ksm auto --interval 30 --advisor",
                                   "/usr/local/bin/ligero ksm auto")
    # disable says the unit would start KSM again
    p = ksm(ligero, run, root, "disable")
    assert "ligero-ksm-auto.service is enabled" in p.stdout
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed: the unit was not verified")
    v = run("systemd-analyze", "verify", str(unit))
    assert v.returncode == 0 and not v.stderr.strip(), v.stderr
    # the contributed unit, with an ExecStart that exists here
    c = tmp_path / "ligero-ksm-auto.service"
    c.write_text(contrib.replace("/usr/local/bin/ligero", exe))
    v = run("systemd-analyze", "verify", str(c))
    assert v.returncode == 0 and not v.stderr.strip(), v.stderr


# ---- the live host ----

def read_ksm():
    d = Path("/sys/kernel/mm/ksm")
    return {f.name: f.read_text().strip() for f in d.iterdir() if f.is_file()} \
        if d.is_dir() else None


def test_status_live_host(ligero, run, tmp_path):
    """ksm status on this host agrees with sysfs and /proc read in the same test; a process
    that looks like a ligero VM (tests/tools/fakevm.c copied to a file named ligero) is listed
    with the kernel's own per-process figures where the kernel has them."""
    fake = BUILD / "tests/tools/fakevm"
    if not fake.exists():
        pytest.skip(f"{fake} is not built")
    exe = tmp_path / "ligero"
    shutil.copy(fake, exe)
    vm = subprocess.Popen([str(exe), "run", "--kernel", "none", "--memory", "64M"],
                          stdout=subprocess.PIPE, text=True)
    try:
        assert vm.stdout.readline().strip() == "ready"
        status = Path(f"/proc/{vm.pid}/status")
        rss = lambda: int(re.search(r"VmRSS:\s+(\d+)", status.read_text()).group(1)) * 1024
        merging = Path(f"/proc/{vm.pid}/ksm_merging_pages")
        before, rss_a = read_ksm(), rss()
        m_a = merging.read_text().strip() if merging.exists() else None
        st = json.loads(run(ligero, "ksm", "status", "--output=json", check=True).stdout)
        after, rss_b = read_ksm(), rss()
        m_b = merging.read_text().strip() if merging.exists() else None
    finally:
        vm.terminate()
        vm.wait()
    k = st["ksm"]
    if before is None:
        assert k["present"] is False
    else:
        for group in ("knobs", "counters"):
            for name, v in k[group].items():
                if name == "advisor_mode":
                    want = before.get(name)
                    assert (v is None) == (want is None)
                    if want:
                        assert f"[{v}]" in want
                    continue
                if name not in before:
                    assert v is None, name
                    continue
                a, b = int(before[name]), int(after[name])
                assert min(a, b) <= v <= max(a, b), f"{name}: {v} not in {a}..{b}"
        sharing = k["counters"]["pages_sharing"]
        zero = k["counters"]["ksm_zero_pages"] or 0
        assert k["saved-bytes"] == (sharing + zero) * os.sysconf("SC_PAGESIZE")
        gp = k["general-profit-bytes"]
        if "general_profit" in before:
            assert min(int(before["general_profit"]), int(after["general_profit"])) <= gp <= \
                max(int(before["general_profit"]), int(after["general_profit"]))
    mine = [v for v in st["vms"] if v["pid"] == vm.pid]
    assert len(mine) == 1, st["vms"]
    v = mine[0]
    assert v["memory-bytes"] == 64 << 20
    assert min(rss_a, rss_b) <= v["rss-bytes"] <= max(rss_a, rss_b)
    assert v["rss-bytes"] >= 64 << 20
    if m_a is not None:
        assert v["merging-source"] in (f"/proc/{vm.pid}/ksm_stat",
                                       f"/proc/{vm.pid}/ksm_merging_pages")
        assert min(int(m_a), int(m_b)) <= v["merging-pages"] <= max(int(m_a), int(m_b))
    else:
        assert v["merging-pages"] is None and v["merging-source"] is None
    mt = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    assert st["host"]["memory-total-bytes"] == mt * 1024
    assert st["host"]["promised-bytes"] >= 64 << 20
