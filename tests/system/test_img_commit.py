"""`ligero img commit`: the base ends up with the overlay's guest view (qemu-img compare), every
image stays clean (qemu-img check), the overlay is emptied unless -d, -b commits lower down."""
import json

import pytest

from imgwf import (MiB, assert_clean, assert_same, digest, make_qcow2, one_error_line,
                   qimg, run)


def allocated_top(img):
    m = json.loads(qimg("map", "--output=json", img).stdout)
    return [e for e in m if e["depth"] == 0 and e["present"]]


def chain(tmp_path):
    base = make_qcow2(tmp_path / "base.qcow2", "4M", "write -P 1 0 1M", "write -P 2 2M 512k")
    mid = make_qcow2(tmp_path / "mid.qcow2", "4M", "write -P 4 1536k 64k", backing=base)
    top = make_qcow2(tmp_path / "top.qcow2", "4M", "write -P 3 512k 1M", "write -z 2M 64k",
                     "write -P 5 3M 4k", backing=mid)
    want = tmp_path / "want.raw"
    qimg("convert", "-O", "raw", top, want, check=True)
    return base, mid, top, want


def test_commit_into_backing_and_empty(ligero, tmp_path):
    base, mid, top, want = chain(tmp_path)
    p = run(ligero, "img", "commit", top, check=True)
    assert "Image committed." in p.stdout
    for img in (base, mid, top):
        assert_clean(img)
    assert_same(want, top)
    assert_same(want, mid)
    assert allocated_top(top) == []


def test_commit_keep(ligero, tmp_path):
    base, mid, top, want = chain(tmp_path)
    before = allocated_top(top)
    run(ligero, "img", "commit", "-d", top, check=True)
    assert_clean(mid)
    assert_same(want, mid)
    assert allocated_top(top) == before


def test_commit_to_lower_base(ligero, tmp_path):
    base, mid, top, want = chain(tmp_path)
    run(ligero, "img", "commit", "-b", base, top, check=True)
    assert_clean(base)
    assert_same(want, base)
    assert_same(want, top)  # -b implies -d: top still reads the same


def test_commit_matches_qemu(ligero, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "t").mkdir()
    ours, theirs = chain(tmp_path / "o"), chain(tmp_path / "t")
    run(ligero, "img", "commit", ours[2], check=True)
    qimg("commit", theirs[2], check=True)
    assert_same(ours[1], theirs[1])
    assert_same(ours[2], theirs[2])


def test_commit_grows_smaller_base(ligero, tmp_path):
    base = make_qcow2(tmp_path / "base.qcow2", "1M", "write -P 1 0 1M")
    top = make_qcow2(tmp_path / "top.qcow2", "3M", "write -P 2 2M 64k", backing=base)
    want = tmp_path / "want.raw"
    qimg("convert", "-O", "raw", top, want, check=True)
    run(ligero, "img", "commit", top, check=True)
    assert_clean(base)
    assert_same(want, base)


def test_refusals(ligero, tmp_path):
    lone = make_qcow2(tmp_path / "lone.qcow2", "1M", "write -P 1 0 64k")
    before = digest(lone)
    line = one_error_line(run(ligero, "img", "commit", lone))
    assert "backing" in line
    assert digest(lone) == before
    base, mid, top, want = chain(tmp_path)
    other = make_qcow2(tmp_path / "other.qcow2", "4M")
    before = [digest(p) for p in (base, mid, top)]
    one_error_line(run(ligero, "img", "commit", "-b", other, top))
    one_error_line(run(ligero, "img", "commit", tmp_path / "nope.qcow2"))
    assert [digest(p) for p in (base, mid, top)] == before


def test_ctrl_c_leaves_images_consistent(ligero, tmp_path):
    import signal
    import subprocess
    import time
    base = make_qcow2(tmp_path / "base.qcow2", "256M", "write -P 1 0 128M")
    top = make_qcow2(tmp_path / "top.qcow2", "256M", "write -P 2 0 192M", backing=base)
    want = tmp_path / "want.raw"
    qimg("convert", "-O", "raw", top, want, check=True)
    p = subprocess.Popen([ligero, "img", "commit", "-p", str(top)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stderr.read(1) == " "  # the progress bar's first "    (0.00/100%)": work starts
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=900)
    # Stopped or finished: either way every image is clean and the top reads as before.
    assert p.returncode == 0 or "interrupted" in err
    for img in (base, top):
        assert_clean(img)
    assert_same(want, top)
