"""Writes cut short or interrupted (EINTR) change nothing: the images that
tests/unit/test_qcow2_inject.c writes under each injection mode, kept with LIGERO_INJECT_KEEP,
are the images it writes without injection, and qemu-img check finds every one of them clean.

The test program is found via $INJECT_TEST, else under $LIGERO_BUILD (or next to $LIGERO):
<build>/tests/unit/test_qcow2_inject.

Its images are kept in $LIGERO_CACHE/inject/<key> (when LIGERO_CACHE is set), the key being the
digest of the program and of the shared libraries it loads: a second run with the same build
checks the images the same program wrote (the program's own pass/fail is `meson test`'s).
"""
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import run_cmd, sha256

# the program it runs is a unit test, which the sanitized build's `meson test` runs itself: CI's
# ASan/UBSan pass leaves this out
pytestmark = pytest.mark.no_asan

MODES = ("plain", "short", "eintr", "mixed")
IMAGES = ("a.qcow2", "b.qcow2", "c.qcow2")


@pytest.fixture(scope="module")
def kept(ligero, tmp_path_factory):
    build = os.environ.get("LIGERO_BUILD") or str(Path(ligero).parent)
    exe = os.environ.get("INJECT_TEST") or os.path.join(build, "tests", "unit",
                                                         "test_qcow2_inject")
    if not os.access(exe, os.X_OK):
        pytest.skip(f"no test_qcow2_inject at {exe}: build the unit tests or set INJECT_TEST")
    if not run_cmd("which", "qemu-img").stdout:
        pytest.skip("qemu-img is not installed (the oracle of this test)")
    cache = os.environ.get("LIGERO_CACHE")
    if not cache:
        keep = tmp_path_factory.mktemp("inject")
        run_cmd(exe, env=dict(os.environ, LIGERO_INJECT_KEEP=str(keep)), timeout=1800,
                check=True)
        return keep
    keep = Path(cache) / "inject" / inputs_digest(exe)
    if not keep.is_dir():
        keep.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=keep.parent, prefix=".new-"))
        try:
            run_cmd(exe, env=dict(os.environ, LIGERO_INJECT_KEEP=str(work)), timeout=1800,
                    check=True)
            os.rename(work, keep)  # whole or not at all; a concurrent run's rename wins
        except OSError:
            if not keep.is_dir():
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return keep


def inputs_digest(exe):
    """sha256 of the program's bytes and of every shared library ldd resolves for it."""
    h = hashlib.sha256()
    libs = re.findall(r"=> (/\S+)", run_cmd("ldd", exe, check=True).stdout)
    for f in [exe, *sorted(libs)]:
        h.update(Path(f).name.encode() + b"\0" + sha256(f).encode())
    return h.hexdigest()[:32]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("image", IMAGES)
def test_qemu_img_check_clean(kept, mode, image):
    r = run_cmd("qemu-img", "check", "--output=json", kept / mode / image)
    assert r.returncode == 0, f"qemu-img check exit {r.returncode}: {r.stdout}{r.stderr}"
    j = json.loads(r.stdout)
    assert j.get("corruptions", 0) == 0 and j.get("leaks", 0) == 0, j
    assert j.get("check-errors", 0) == 0, j


@pytest.mark.parametrize("mode", MODES[1:])
@pytest.mark.parametrize("image", IMAGES)
def test_same_as_plain(kept, mode, image):
    assert sha256(kept / mode / image) == sha256(kept / "plain" / image)
    r = run_cmd("qemu-img", "compare", "-s", kept / "plain" / image, kept / mode / image)
    assert r.returncode == 0, r.stdout + r.stderr


def test_scenario_reached_its_end(kept):
    """What the last steps of the scenario leave, as qemu-img sees it."""
    info = {}
    for image in IMAGES:
        r = run_cmd("qemu-img", "info", "--output=json", kept / "plain" / image, check=True)
        info[image] = json.loads(r.stdout)
    assert [s["name"] for s in info["a.qcow2"].get("snapshots", [])] == ["two"]
    assert info["a.qcow2"]["virtual-size"] == 8 << 20
    assert info["b.qcow2"]["format-specific"]["data"]["compat"] == "0.10"
    assert info["c.qcow2"]["backing-filename"] == "b.qcow2"
