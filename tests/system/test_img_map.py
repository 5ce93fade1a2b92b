"""`ligero img map` prints exactly what `qemu-img map` prints (json and human), on chains,
zero clusters, compressed clusters, raw sparse files and shorter backing files."""
import pytest

from imgwf import MiB, make_mixed_raw, make_qcow2, one_error_line, qimg, run


def images(tmp_path):
    base = make_qcow2(tmp_path / "base.qcow2", "4M", "write -P 1 0 128k", "write -z 512k 64k",
                      "write -P 2 1M 64k", "write -P 7 3M 1M")
    top = make_qcow2(tmp_path / "top.qcow2", "4M", "write -P 3 64k 64k", "write -z 1M 32k",
                     "write -P 5 3M 4k", "write -z 3200k 128k", backing=base)
    short = make_qcow2(tmp_path / "short.qcow2", "1M", "write -P 4 0 64k")
    longer = make_qcow2(tmp_path / "long.qcow2", "3M", "write -P 6 2M 64k", backing=short)
    v2 = make_qcow2(tmp_path / "v2.qcow2", "2M", "write -P 1 0 64k", "write -z 64k 64k",
                    opts="compat=0.10")
    raw = make_mixed_raw(tmp_path / "mixed.raw", 4 * MiB)
    comp = tmp_path / "comp.qcow2"
    qimg("convert", "-c", "-O", "qcow2", raw, comp, check=True)
    prealloc = tmp_path / "pre.qcow2"
    qimg("create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", prealloc, "1M",
         check=True)
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    small = make_qcow2(tmp_path / "small4k.qcow2", "1M", "write -P 8 5k 10k",
                       opts="cluster_size=4k")
    return [base, top, short, longer, v2, raw, comp, prealloc, empty, small]


def test_json_equals_qemu(ligero, tmp_path):
    for img in images(tmp_path):
        ours = run(ligero, "img", "map", "--output=json", img, check=True).stdout
        theirs = qimg("map", "--output=json", img, check=True).stdout
        assert ours == theirs, img


def test_human_equals_qemu(ligero, tmp_path):
    for img in images(tmp_path):
        if img.name == "comp.qcow2":
            continue
        ours = run(ligero, "img", "map", img, check=True).stdout
        theirs = qimg("map", img, check=True).stdout
        assert ours == theirs, img


def test_human_refuses_compressed_and_ranges(ligero, tmp_path):
    imgs = images(tmp_path)
    comp = tmp_path / "comp.qcow2"
    assert qimg("map", comp).returncode != 0
    one_error_line(run(ligero, "img", "map", comp))
    top = imgs[1]
    for args in (["--start-offset=1M"], ["--start-offset=64k", "--max-length=2M"]):
        ours = run(ligero, "img", "map", "--output=json", *args, top, check=True).stdout
        theirs = qimg("map", "--output=json", *args, top, check=True).stdout
        assert ours == theirs, args


def test_missing_file(ligero, tmp_path):
    line = one_error_line(run(ligero, "img", "map", tmp_path / "nope.qcow2"))
    assert "nope.qcow2" in line
