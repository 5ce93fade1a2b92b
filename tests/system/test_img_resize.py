"""`ligero img resize`: grows qcow2 and raw like qemu-img; shrinks only with --shrink and only
when no allocated data would be lost, else refuses with the image unchanged."""
import pytest

from imgwf import (MiB, assert_clean, assert_same, digest, make_qcow2, one_error_line,
                   qimg, qio, run)


def vsize(img):
    import json
    return json.loads(qimg("info", "--output=json", img).stdout)["virtual-size"]


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_grow_and_relative(ligero, tmp_path, fmt):
    img = tmp_path / f"a.{fmt}"
    qimg("create", "-q", "-f", fmt, img, "4M", check=True)
    qio(img, "write -P 3 1M 64k", fmt=fmt)
    ref = tmp_path / "ref.raw"
    qimg("convert", "-O", "raw", img, ref, check=True)
    p = run(ligero, "img", "resize", img, "8M", check=True)
    assert p.stdout == "Image resized.\n"
    assert vsize(img) == 8 * MiB
    run(ligero, "img", "resize", "-f", fmt, img, "+1M", check=True)
    assert vsize(img) == 9 * MiB
    run(ligero, "img", "resize", "--shrink", img, "-5M", check=True)
    assert vsize(img) == 4 * MiB
    if fmt == "qcow2":
        assert_clean(img)
    assert_same(img, ref)


def test_shrink_needs_flag_and_free_tail(ligero, tmp_path):
    img = make_qcow2(tmp_path / "a.qcow2", "8M", "write -P 1 0 64k", "write -P 2 6M 64k",
                     "write -z 7M 64k")
    before = digest(img)
    line = one_error_line(run(ligero, "img", "resize", img, "4M"))
    assert "--shrink" in line
    line = one_error_line(run(ligero, "img", "resize", "--shrink", img, "4M"))
    assert "6291456" in line  # names the first data that would be lost
    assert digest(img) == before
    # Past the data (only a zero cluster beyond): allowed.
    run(ligero, "img", "resize", "--shrink", img, str(6 * MiB + 65536), check=True)
    assert_clean(img)
    assert vsize(img) == 6 * MiB + 65536
    raw = tmp_path / "a.raw"
    raw.write_bytes(b"z" * MiB)
    before = digest(raw)
    one_error_line(run(ligero, "img", "resize", "--shrink", raw, "512k"))
    assert digest(raw) == before


def test_bad_size(ligero, tmp_path):
    img = make_qcow2(tmp_path / "a.qcow2", "1M")
    before = digest(img)
    one_error_line(run(ligero, "img", "resize", img, "12Q"))
    one_error_line(run(ligero, "img", "resize", "--shrink", img, "-2M"))
    assert digest(img) == before
