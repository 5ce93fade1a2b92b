"""`ligero img amend -o compat=...,lazy_refcounts=...`: the result is what qemu-img info reports
and qemu-img check finds clean; options amend cannot change are refused, image untouched."""
import json

import pytest

from imgwf import assert_clean, assert_same, digest, make_qcow2, one_error_line, qimg, run


def spec(img):
    return json.loads(qimg("info", "--output=json", img).stdout)["format-specific"]["data"]


def test_compat_and_lazy(ligero, tmp_path):
    img = make_qcow2(tmp_path / "a.qcow2", "4M", "write -P 1 0 1M", "write -P 2 2M 64k")
    ref = tmp_path / "ref.raw"
    qimg("convert", "-O", "raw", img, ref, check=True)
    run(ligero, "img", "amend", "-o", "lazy_refcounts=on", img, check=True)
    assert spec(img)["lazy-refcounts"] is True
    run(ligero, "img", "amend", "-o", "lazy_refcounts=off", img, check=True)
    assert spec(img)["lazy-refcounts"] is False
    run(ligero, "img", "amend", "-o", "compat=0.10", img, check=True)
    assert spec(img)["compat"] == "0.10"
    assert_clean(img)
    assert_same(ref, img)
    run(ligero, "img", "amend", "-o", "compat=1.1,lazy_refcounts=on", img, check=True)
    assert spec(img)["compat"] == "1.1" and spec(img)["lazy-refcounts"] is True
    assert_clean(img)
    assert_same(ref, img)


def test_downgrade_with_zero_clusters(ligero, tmp_path):
    img = make_qcow2(tmp_path / "a.qcow2", "4M", "write -P 1 0 1M", "write -z 64k 64k")
    ref = tmp_path / "ref.raw"
    qimg("convert", "-O", "raw", img, ref, check=True)
    run(ligero, "img", "amend", "-o", "compat=0.10", img, check=True)
    assert spec(img)["compat"] == "0.10"
    assert_clean(img)
    assert_same(ref, img)


def test_refusals(ligero, tmp_path):
    img = make_qcow2(tmp_path / "a.qcow2", "4M")
    before = digest(img)
    assert "cluster_size" in one_error_line(run(ligero, "img", "amend", "-o",
                                                "cluster_size=4k", img))
    one_error_line(run(ligero, "img", "amend", "-o", "bogus=1", img))
    one_error_line(run(ligero, "img", "amend", img))
    assert digest(img) == before
    raw = tmp_path / "a.raw"
    raw.write_bytes(bytes(4096))
    one_error_line(run(ligero, "img", "amend", "-o", "compat=1.1", raw))
