"""`ligero img compare` answers like qemu-img compare: same exit code (0 identical,
1 different, 2 error) and the same first line naming the mismatch offset."""
import pytest

from imgwf import MiB, make_mixed_raw, make_qcow2, qimg, run


def both(ligero, *args):
    ours = run(ligero, "img", "compare", *args)
    theirs = qimg("compare", *args)
    assert ours.returncode == theirs.returncode, (args, ours.stdout, ours.stderr, theirs.stdout)
    if theirs.returncode != 2:
        assert ours.stdout == theirs.stdout, args
    else:
        assert len(ours.stderr.strip().splitlines()) == 1
    return ours


def test_identical_and_different(ligero, tmp_path):
    raw = make_mixed_raw(tmp_path / "a.raw", 4 * MiB)
    q = tmp_path / "a.qcow2"
    qimg("convert", "-O", "qcow2", raw, q, check=True)
    assert both(ligero, raw, q).returncode == 0
    assert both(ligero, "-f", "raw", "-F", "qcow2", raw, q).returncode == 0
    for off in (0, 1000, 65536 + 7, 4 * MiB - 1):
        b = tmp_path / f"b{off}.raw"
        data = bytearray(raw.read_bytes())
        data[off] ^= 0xFF
        b.write_bytes(bytes(data))
        assert both(ligero, raw, b).returncode == 1
        assert both(ligero, q, b).returncode == 1


def test_chains_and_zero_clusters(ligero, tmp_path):
    base = make_qcow2(tmp_path / "base.qcow2", "4M", "write -P 1 0 2M")
    top = make_qcow2(tmp_path / "top.qcow2", "4M", "write -z 64k 64k", backing=base)
    flat = tmp_path / "flat.raw"
    qimg("convert", "-O", "raw", top, flat, check=True)
    assert both(ligero, top, flat).returncode == 0
    assert both(ligero, top, base).returncode == 1
    empty = make_qcow2(tmp_path / "empty.qcow2", "4M")
    zeroes = make_qcow2(tmp_path / "zeroes.qcow2", "4M", "write -P 0 0 4M")
    assert both(ligero, empty, zeroes).returncode == 0
    assert both(ligero, "-s", empty, zeroes).returncode == 1


def test_sizes(ligero, tmp_path):
    a = tmp_path / "a.raw"
    a.write_bytes(b"x" * MiB)
    b = tmp_path / "b.raw"
    b.write_bytes(b"x" * MiB + bytes(MiB))
    c = tmp_path / "c.raw"
    c.write_bytes(b"x" * MiB + bytes(1500000 - MiB) + b"y" + bytes(2 * MiB - 1500001))
    assert both(ligero, a, b).returncode == 0
    assert both(ligero, "-s", a, b).returncode == 1
    assert both(ligero, a, c).returncode == 1
    assert both(ligero, c, a).returncode == 1


def test_errors_exit_2(ligero, tmp_path):
    a = tmp_path / "a.raw"
    a.write_bytes(bytes(4096))
    both(ligero, a, tmp_path / "nope")
    both(ligero, "-f", "qcow2", a, a)
