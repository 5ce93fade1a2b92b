"""`ligero img rebase`: safe mode keeps the guest view (qemu-img compare against a flattened
copy made before), -u only rewrites the header, -b "" flattens; images stay clean."""
import json

import pytest

from imgwf import (MiB, assert_clean, assert_same, digest, make_qcow2, one_error_line,
                   qimg, run)


def make_chain(tmp_path):
    base = make_qcow2(tmp_path / "base.qcow2", "4M", "write -P 1 0 1M", "write -P 2 2M 512k")
    top = make_qcow2(tmp_path / "top.qcow2", "4M", "write -P 3 512k 64k", "write -z 2M 64k",
                     backing=base)
    nb = make_qcow2(tmp_path / "nb.qcow2", "3M", "write -P 1 0 512k", "write -P 9 1M 2M")
    want = tmp_path / "want.raw"
    qimg("convert", "-O", "raw", top, want, check=True)
    return base, top, nb, want


def backing_of(img):
    info = json.loads(qimg("info", "--output=json", img).stdout)
    return info.get("backing-filename"), info.get("backing-filename-format")


def test_safe_rebase(ligero, tmp_path):
    base, top, nb, want = make_chain(tmp_path)
    run(ligero, "img", "rebase", "-b", "nb.qcow2", "-F", "qcow2", top, check=True)
    assert backing_of(top) == ("nb.qcow2", "qcow2")
    assert_clean(top)
    assert_same(want, top)


def test_safe_rebase_probes_format_and_matches_qemu(ligero, tmp_path):
    base, top, nb, want = make_chain(tmp_path)
    theirs = tmp_path / "theirs.qcow2"
    theirs.write_bytes(top.read_bytes())
    run(ligero, "img", "rebase", "-b", "nb.qcow2", top, check=True)
    qimg("rebase", "-b", "nb.qcow2", "-F", "qcow2", theirs, check=True)
    assert backing_of(top) == ("nb.qcow2", "qcow2")
    assert_same(top, theirs)
    # Nothing more allocated than qemu-img allocates.
    alloc = lambda p: sum(e["length"] for e in json.loads(
        qimg("map", "--output=json", p).stdout) if e["depth"] == 0 and e["present"])
    assert alloc(top) <= alloc(theirs)


def test_unsafe(ligero, tmp_path):
    base, top, nb, want = make_chain(tmp_path)
    before = qimg("map", "--output=json", top).stdout
    run(ligero, "img", "rebase", "-u", "-b", "nb.qcow2", "-F", "qcow2", top, check=True)
    assert backing_of(top) == ("nb.qcow2", "qcow2")
    assert_clean(top)
    # Same clusters in the top layer; the guest now sees nb below them.
    after = json.loads(qimg("map", "--output=json", top).stdout)
    assert [e for e in after if e["depth"] == 0 and e["present"]] == \
        [e for e in json.loads(before) if e["depth"] == 0 and e["present"]]


def test_flatten(ligero, tmp_path):
    base, top, nb, want = make_chain(tmp_path)
    run(ligero, "img", "rebase", "-b", "", top, check=True)
    assert backing_of(top) == (None, None)
    assert_clean(top)
    assert_same(want, top)


def test_refusals(ligero, tmp_path):
    base, top, nb, want = make_chain(tmp_path)
    before = digest(top)
    one_error_line(run(ligero, "img", "rebase", "-b", "missing.qcow2", "-F", "qcow2", top))
    one_error_line(run(ligero, "img", "rebase", top))
    assert digest(top) == before


def test_ctrl_c_keeps_guest_view(ligero, tmp_path):
    import signal
    import subprocess
    import time
    base = make_qcow2(tmp_path / "base.qcow2", "256M", "write -P 1 0 192M")
    top = make_qcow2(tmp_path / "top.qcow2", "256M", "write -P 2 0 1M", backing=base)
    want = tmp_path / "want.raw"
    qimg("convert", "-O", "raw", top, want, check=True)
    p = subprocess.Popen([ligero, "img", "rebase", "-p", "-b", "", str(top)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr.read(1) == " "  # the progress bar's first "    (0.00/100%)": work starts
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=900)
    assert p.returncode == 0 or "interrupted" in err
    assert_clean(top)
    assert_same(want, top)
    # Interrupted: still on the old backing file; finished: flattened.
    assert (backing_of(top)[0] is None) == (p.returncode == 0)
