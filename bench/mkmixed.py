#!/usr/bin/env python3
"""Write a sparse raw image holding text, binaries and random data in chunks of 256 KiB to
8 MiB, separated by zero gaps: the bench input for bench/convert.sh. Deterministic for a seed."""
import os
import random
import sys


def files(roots, want_text):
    for root in roots:
        for d, _, names in os.walk(root):
            for n in sorted(names):
                p = os.path.join(d, n)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                try:
                    with open(p, "rb") as f:
                        head = f.read(4096)
                except OSError:
                    continue
                is_text = b"\0" not in head and not head.startswith((b"\x1f\x8b", b"\xfd7z"))
                is_elf = head.startswith(b"\x7fELF")
                if (want_text and is_text) or (not want_text and is_elf):
                    yield p


def stream(paths):
    while True:
        for p in paths:
            try:
                with open(p, "rb") as f:
                    yield f.read()
            except OSError:
                pass


def take(gen, n, buf):
    while len(buf[0]) < n:
        buf[0] += next(gen)
    out, buf[0] = buf[0][:n], buf[0][n:]
    return out


def main():
    path, size, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(42)
    text = stream(list(files(["/usr/share"], True))[:20000])
    bins = stream(list(files(["/usr/bin", "/usr/lib"], False))[:4000])
    tbuf, bbuf = [b""], [b""]
    written = 0
    with open(path, "wb") as f:
        f.truncate(size)
        pos = 0
        while written < data:
            n = rnd.choice([256 << 10, 1 << 20, 2 << 20, 8 << 20])
            gap = rnd.choice([0, 64 << 10, 1 << 20, 4 << 20])
            if pos + gap + n > size:
                break
            pos += gap
            kind = written * 3 // data  # a third each: text, binaries, random
            chunk = take(text, n, tbuf) if kind == 0 else \
                take(bins, n, bbuf) if kind == 1 else os.urandom(n)
            # Interleave kinds a little so every region of the disk is mixed.
            if rnd.random() < 0.3:
                chunk = (take(text, n // 2, tbuf) + take(bins, n - n // 2, bbuf))
            f.seek(pos)
            f.write(chunk)
            pos += n
            written += n
    print(f"{path}: {size} bytes, {written} bytes of data")


main()
