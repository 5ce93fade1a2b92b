"""Helpers shared by the image-workflow tests (convert, map, compare, commit, rebase, resize,
snapshot, amend): run ligero and qemu-img, build small test images, assert with the oracle.
The `ligero` fixture (the binary under test) comes from conftest.py."""
import hashlib
import os
import subprocess

MiB = 1 << 20


def run(*args, check=False, timeout=900, cwd=None):  # timeout: a hang guard
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"{[str(a) for a in args]} failed ({p.returncode}):\n{p.stderr}")
    return p


def qimg(*args, **kw):
    return run("qemu-img", *args, **kw)


def qio(path, *cmds, fmt=None):
    args = ["qemu-io"] + (["-f", fmt] if fmt else [])
    for c in cmds:
        args += ["-c", c]
    run(*args, path, check=True)


def assert_clean(path):
    """qemu-img check finds nothing wrong (leaks included) in an image ligero wrote."""
    p = qimg("check", path)
    assert p.returncode == 0, f"qemu-img check {path}: {p.stdout}{p.stderr}"
    assert "No errors were found" in p.stdout, p.stdout


def assert_same(a, b, fmt_a=None, fmt_b=None):
    args = ["compare"]
    if fmt_a:
        args += ["-f", fmt_a]
    if fmt_b:
        args += ["-F", fmt_b]
    p = qimg(*args, a, b)
    assert p.returncode == 0, f"qemu-img compare {a} {b}: {p.stdout}{p.stderr}"


def one_error_line(p):
    """A refusal: non-zero exit, one line on stderr naming the problem."""
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest(), os.stat(path).st_mtime_ns


def make_mixed_raw(path, size=8 * MiB, seed=1):
    """A raw image with text, random and repeated data, zero runs and holes."""
    import random
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        pos = 0
        while pos < size:
            kind = rnd.choice(["text", "random", "zero", "hole", "pattern", "small"])
            n = min(rnd.choice([4096, 65536, 200000, 512 * 1024]), size - pos)
            f.seek(pos)
            if kind == "text":
                words = [b"ligero", b"qcow2", b"cluster", b"backing", b"image", b"\n"]
                data = b" ".join(rnd.choice(words) for _ in range(n // 4))[:n]
                f.write(data.ljust(n, b"."))
            elif kind == "random":
                f.write(rnd.randbytes(n))
            elif kind == "zero":
                f.write(bytes(n))
            elif kind == "pattern":
                f.write(bytes([rnd.randrange(1, 256)]) * n)
            elif kind == "small":
                f.write(b"x" * 3)  # a few bytes in an otherwise empty range
            pos += n
    return path


def make_qcow2(path, size="8M", *cmds, backing=None, opts=None):
    args = ["create", "-q", "-f", "qcow2"]
    if backing:
        args += ["-b", backing, "-F", "qcow2"]
    if opts:
        args += ["-o", opts]
    qimg(*args, path, size, check=True)
    if cmds:
        qio(path, *cmds)
    return path
