"""`ligero img snapshot` interoperates with qemu-img snapshot: each lists, applies and deletes
what the other made; the list table is qemu-img's, byte for byte."""
import pytest

from imgwf import (assert_clean, assert_same, digest, make_qcow2, one_error_line, qimg,
                   qio, run)


def test_list_format_equals_qemu(ligero, tmp_path):
    img = make_qcow2(tmp_path / "a.qcow2", "4M", "write -P 1 0 64k")
    assert run(ligero, "img", "snapshot", "-l", img, check=True).stdout == ""
    qimg("snapshot", "-c", "first", img, check=True)
    run(ligero, "img", "snapshot", "-c", "second one", img, check=True)
    assert_clean(img)
    ours = run(ligero, "img", "snapshot", "-l", img, check=True).stdout
    assert ours == qimg("snapshot", "-l", img, check=True).stdout
    assert "first" in ours and "second one" in ours


@pytest.mark.parametrize("maker,user", [("qemu", "ligero"), ("ligero", "qemu")])
def test_cross_tool(ligero, tmp_path, maker, user):
    img = make_qcow2(tmp_path / "a.qcow2", "4M", "write -P 1 0 1M")
    snap_view = tmp_path / "snap.raw"
    qimg("convert", "-O", "raw", img, snap_view, check=True)
    tool = {"ligero": [ligero, "img"], "qemu": ["qemu-img"]}
    run(*tool[maker], "snapshot", "-c", "s1", img, check=True)
    assert_clean(img)
    qio(img, "write -P 2 512k 1M")
    assert "s1" in run(*tool[user], "snapshot", "-l", img, check=True).stdout
    run(*tool[user], "snapshot", "-a", "s1", img, check=True)
    assert_clean(img)
    assert_same(snap_view, img)
    run(*tool[user], "snapshot", "-d", "s1", img, check=True)
    assert_clean(img)
    assert "s1" not in qimg("snapshot", "-l", img).stdout
    assert_same(snap_view, img)


def test_errors(ligero, tmp_path):
    img = make_qcow2(tmp_path / "a.qcow2", "1M")
    before = digest(img)
    one_error_line(run(ligero, "img", "snapshot", "-a", "nope", img))
    one_error_line(run(ligero, "img", "snapshot", "-d", "nope", img))
    # No action lists, as with qemu-img (tests/system/test_cli_args.py compares the two).
    p = run(ligero, "img", "snapshot", img)
    assert p.returncode == 0 and p.stdout == qimg("snapshot", img).stdout == "", p.stderr
    raw = tmp_path / "a.raw"
    raw.write_bytes(bytes(4096))
    one_error_line(run(ligero, "img", "snapshot", "-c", "x", raw))
    assert digest(img) == before
