"""Shared fixtures and helpers for ligero's system tests (pytest).

The API is small on purpose; suites depend on it:

fixtures
    ligero       absolute path of the binary under test (env LIGERO, default <repo>/build/ligero);
                 every test that uses it is skipped with a clear message when it is missing.
    run          run(*args, cwd=None, input=None, timeout=900, check=False) -> CompletedProcess
    qemu_img     qemu_img(*args, ...) -> CompletedProcess of `qemu-img args` (skips without it)
    qemu_io      qemu_io(*args, ...)  -> CompletedProcess of `qemu-io args`  (skips without it)
    vmhost       vmhost(script, files=(), ...) -> VmhostResult, run in the emulated host
    img_factory  img_factory(name, size="64M", fmt="qcow2", opts=None, backing=None,
                             backing_fmt="qcow2", writes=()) -> Path of a qemu-img-made image

markers
    vmhost       the test boots the emulated host (set for every user of the vmhost fixture);
                 `pytest -m "not vmhost"` is the host-side tier
    asan         an emulated-host test CI also runs under ASan/UBSan (`-m "vmhost and asan"`)
    slow         a host-side test of a minute or more; the fast tier (`bash .ci/run --fast`)
                 leaves it out, CI runs it
    repeat       set here, never by hand: a parametrized case after the first of its test
                 function (see "The fast tier" below); the fast tier leaves it out, every
                 other pass (CI's plain and ASan/UBSan ones, a plain `pytest`) runs it
    no_asan      a host-side test whose sanitized run adds nothing: what it tests is not the
                 build's C code (a shell script of tests/, the bash completion, the manual
                 pages, a build of its own; the binary runs at most for its --help texts), or
                 the program it runs is a unit test the sanitized build's `meson test` ran
                 already. CI's ASan/UBSan pass leaves it out; the plain pass runs it

The fast tier (`bash .ci/run --fast`, `-m "not vmhost and not slow and not repeat"`) runs every
test function, but of a parametrized one only its first case (in collection order, the first not
marked slow): the other cases repeat that code path with other inputs and carry the marker
`repeat`. A module may keep one case per value of one parameter instead, with a dict
`FAST_TIER_PER = {"test_function": "parameter"}` (test_cli_args keeps one case per verb).

Plain helpers (importable: `from conftest import run_cmd, io_args`):
    run_cmd(*args, ...)  the function behind the `run` fixture
    io_args(cmds)        ["-c", c1, "-c", c2, ...] for qemu-io style command lists
    sha256(path)         hex digest of a file
"""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "vmhost"))
import vmhost as _vmhost  # noqa: E402
# The Ceph clusters' fixtures, defined here once for every module: a module that imports `ceph`
# itself gets a cluster of its own (ceph_cluster.py)
from ceph_cluster import ceph, ceph_durable  # noqa: E402,F401


def run_cmd(*args, cwd=None, input=None, timeout=900, check=False, env=None):
    """Run a command (arguments are str()-ed) with text capture; never raises on a non-zero
    exit unless check=True, in which case the AssertionError carries stdout and stderr."""
    p = subprocess.run([str(a) for a in args], cwd=cwd, input=input, capture_output=True,
                       text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def io_args(cmds):
    """qemu-io style: ['write 0 4k', 'flush'] -> ['-c', 'write 0 4k', '-c', 'flush']."""
    out = []
    for c in cmds:
        out += ["-c", c]
    return out


def settle(*paths):
    """fsync each file (each regular file under a directory), so the blocks the
    filesystem allocates at writeback (ext4's delayed allocation, its extent tree blocks) are
    allocated before two tools are asked for the same 'disk size' / actual-size: otherwise
    writeback between the two calls changes st_blocks under the comparison."""
    for path in paths:
        path = Path(path)
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def sha256(path):
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pytest_configure(config):
    config.addinivalue_line("markers", "vmhost: boots the emulated host (tests/vmhost/); set "
                            "automatically for every test that uses the vmhost fixture")
    config.addinivalue_line("markers", "asan: an emulated-host test that CI also runs with the "
                            "ASan/UBSan build (the others run with the plain build only)")
    config.addinivalue_line("markers", "slow: a host-side test of a minute or more (crash "
                            "consistency, every XFS name): CI runs it, the fast tier leaves it out")


    config.addinivalue_line("markers", "repeat: set by conftest.py on a parametrized case after "
                            "the first of its function: the fast tier leaves it out")
    config.addinivalue_line("markers", "no_asan: its sanitized run adds nothing (it tests no C "
                            "code of the build, or re-runs a unit test): CI's ASan/UBSan pass "
                            "leaves it out")


def _fast_tier_key(item):
    """The group a parametrized case belongs to for the fast tier (None: not parametrized)."""
    spec = getattr(item, "callspec", None)
    if spec is None:
        return None
    name = getattr(item, "originalname", item.name)
    key = (item.nodeid.split("::")[0], getattr(item.cls, "__name__", None), name)
    per = getattr(item.module, "FAST_TIER_PER", {}).get(name)
    if per is not None:
        key += (repr(spec.params[per]),)
    return key


def pytest_collection_modifyitems(config, items):
    kept = set()
    for item in items:
        if "vmhost" in getattr(item, "fixturenames", ()):
            item.add_marker("vmhost")
        key = _fast_tier_key(item)
        if key is None or item.get_closest_marker("slow") is not None:
            continue
        if key in kept:
            item.add_marker("repeat")
        kept.add(key)


# A test that boots the emulated host without the vmhost marker would run in the host-side tier
# (`-m "not vmhost"`, in parallel with other tests) and take CI's time or fail there. Every boot
# goes through vmhost.run; it refuses to start for a test that is not marked.
_current = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    _current[:] = [item]


_plain_run = _vmhost.run


def _marked_run(*args, **kwargs):
    if _current and _current[0].get_closest_marker("vmhost") is None:
        raise RuntimeError(f"{_current[0].nodeid} boots the emulated host but is not marked "
                           "vmhost (use the vmhost fixture or pytestmark = pytest.mark.vmhost)")
    return _plain_run(*args, **kwargs)


_vmhost.run = _marked_run


# A passed test's tmp_path is removed at once: the suite writes tens of gigabytes of images over
# a run, and pytest keeps every test's directory (and the last three runs'), which filled CI's disk.
# A failed or errored test keeps its directory for inspection. (pytest 7.3's
# tmp_path_retention_policy does this; Debian 12 has pytest 7.2.)
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and "tmp_path" in getattr(item, "funcargs", {}):
        item._ligero_tmp = item.funcargs["tmp_path"]
    if rep.failed:
        item._ligero_keep = True
    if rep.when == "teardown" and not getattr(item, "_ligero_keep", False):
        path = getattr(item, "_ligero_tmp", None)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def _need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (the oracle these tests compare against)")


@pytest.fixture(scope="session")
def ligero():
    """Absolute path of the ligero binary under test: $LIGERO, else <repo>/build/ligero.
    Skips the test with a clear message when there is no executable there."""
    path = os.environ.get("LIGERO") or str(REPO / "build" / "ligero")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.skip(f"no ligero binary at {path}: build it (ninja -C build) or set LIGERO")
    return path


@pytest.fixture(scope="session")
def run():
    """run(*args, cwd=None, input=None, timeout=900, check=False) -> CompletedProcess (text,
    captured stdout/stderr). With check=True a non-zero exit fails the test with the output."""
    return run_cmd


@pytest.fixture(scope="session")
def qemu_img():
    """qemu_img(*args, **kw) runs `qemu-img args` like run(); skips when qemu-img is missing."""
    _need("qemu-img")
    return lambda *args, **kw: run_cmd("qemu-img", *args, **kw)


@pytest.fixture(scope="session")
def qemu_io():
    """qemu_io(*args, **kw) runs `qemu-io args` like run(); skips when qemu-io is missing."""
    _need("qemu-io")
    return lambda *args, **kw: run_cmd("qemu-io", *args, **kw)


@pytest.fixture
def img_factory(tmp_path):
    """Make images with qemu-img in the test's tmp_path.

    img_factory(name, size="64M", fmt="qcow2", opts=None, backing=None, backing_fmt="qcow2",
                writes=()) -> Path
      opts     dict or "k=v,k=v" string for `qemu-img create -o`
      backing  path of a backing file (recorded as given; size may then be None)
      writes   qemu-io commands run on the new image, e.g. ["write -P 0xab 0 64k"]
    Fails the test if qemu-img or qemu-io fail.
    """
    _need("qemu-img")

    def make(name, size="64M", fmt="qcow2", opts=None, backing=None, backing_fmt="qcow2",
             writes=()):
        path = tmp_path / name
        args = ["qemu-img", "create", "-q", "-f", fmt]
        if isinstance(opts, dict):
            opts = ",".join(f"{k}={v}" for k, v in opts.items())
        if opts:
            args += ["-o", opts]
        if backing is not None:
            args += ["-b", str(backing), "-F", backing_fmt]
        args.append(path)
        if size is not None:
            args.append(size)
        run_cmd(*args, check=True)
        if writes:
            _need("qemu-io")
            run_cmd("qemu-io", "-f", fmt, *io_args(writes), path, check=True)
        return path

    return make


@pytest.fixture(scope="session")
def vmhost():
    """run(script, files=(), ...) -> VmhostResult: shell text run inside the emulated host (a
    QEMU/TCG machine with a real, nested KVM; tests/vmhost/vmhost.py). Skips when the emulated
    host cannot run here or the test guest cannot be built. Tests using it are marked vmhost."""
    why = _vmhost.missing()
    if why:
        pytest.skip(why)
    try:
        _vmhost.build_guest()
    except RuntimeError as e:
        pytest.skip(str(e))
    return _vmhost.run
