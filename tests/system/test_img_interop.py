"""qcow2 interop with QEMU 7.2, both directions.

qemu -> ligero: images that qemu-img makes (every cluster size, compat, refcount width, zlib and
zstd compression, 3-deep backing chains) and qemu-io fills must read, through `ligero img io`,
exactly as a Python model of the guest content says: every run of equal bytes is read back
with `read -P` (unwritten ranges with -P 0). qemu-io reads the same script first, so the model
itself is checked against the oracle.

ligero -> qemu: images that `ligero img create` makes and `ligero img io` fills must pass
`qemu-img check` with no errors and no leaks, carry the options asked for (qemu-img info), be
byte-for-byte the model (`qemu-img compare` against a raw file written from the model) and
read the patterns back through qemu-io.
"""
import json
import re

import pytest

from conftest import io_args, run_cmd

MiB = 1 << 20


class Model:
    """Guest-visible bytes of a chain, layer by layer (what QEMU guarantees a reader sees)."""

    def __init__(self, size, backing=None, cluster_size=65536, compat="1.1"):
        self.size = size
        self.backing = backing
        self.cluster = cluster_size
        self.v3 = compat == "1.1"
        self.skip = []  # (start, end) ranges that read_cmds leaves to a byte-wise comparison
        self.data = bytearray(backing.data[:size]) if backing else bytearray(size)
        if len(self.data) < size:
            self.data += bytes(size - len(self.data))

    def write(self, off, n, pat):
        self.data[off:off + n] = bytes([pat]) * n

    def zero(self, off, n):
        self.data[off:off + n] = bytes(n)

    def discard(self, off, n):
        # QEMU drops the partial clusters at either end; whole clusters read as zero. On v2 with
        # a backing file it discards nothing (no zero flag: it would expose the backing data).
        if not self.v3 and self.backing is not None:
            return
        start = -(-off // self.cluster) * self.cluster
        end = min((off + n) // self.cluster * self.cluster, self.size)
        if off + n == self.size:
            end = self.size
        if end <= start:
            return
        self.data[start:end] = bytes(end - start)

    def apply(self, cmd):
        """Apply one qemu-io command ('write -P 0xNN off len', 'write -z off len', 'discard')."""
        f = cmd.split()
        off, n = parse_size(f[-2]), parse_size(f[-1])
        if f[0] == "write" and f[1] == "-P":
            self.write(off, n, int(f[2], 0))
        elif f[0] == "write" and f[1] == "-z":
            self.zero(off, n)
        elif f[0] == "write" and f[1] == "-c":
            self.write(off, n, 0xCD)  # qemu-io's default pattern
        elif f[0] == "discard":
            self.discard(off, n)
        else:
            raise ValueError(cmd)

    def read_cmds(self):
        """`read -P` commands covering the whole disk, one per run of equal bytes."""
        cmds = []
        data = bytes(self.data)
        for off, end in runs(data):
            if any(s <= off and end <= e for s, e in self.skip):
                continue
            assert not any(s < end and off < e for s, e in self.skip), "skip must hold whole runs"
            # Long runs are split so a read never needs more than 4 MiB of buffer.
            while off < end:
                n = min(end - off, 4 * MiB)
                cmds.append(f"read -P 0x{data[off]:02x} {off} {n}")
                off += n
        return cmds


def runs(data):
    """(start, end) of each run of equal bytes, in order. One regex per run that repeats a
    literal byte: the engine scans those fast, where a back-reference (`(.)\\1*`) steps
    through a 32 MiB model byte by byte for seconds."""
    off = 0
    while off < len(data):
        end = re.compile(re.escape(data[off:off + 1]) + b"+").match(data, off).end()
        yield off, end
        off = end


def parse_size(s):
    units = {"k": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s[-1] in units:
        return int(s[:-1]) * units[s[-1]]
    return int(s, 0)


def script(cluster, size, seed_pat):
    """A fill script for one layer: aligned and unaligned writes, some crossing clusters, a
    zero write and a discard, scaled to the cluster size."""
    c = cluster
    p = seed_pat
    cmds = [
        f"write -P 0x{p:02x} 0 {c}",
        f"write -P 0x{p + 1:02x} {c + 512} {2 * c}",            # unaligned start, spans 3
        f"write -P 0x{p + 2:02x} {3 * c + 7} 1000",              # byte-unaligned, partial
        f"write -P 0x{p + 3:02x} {size // 2 - 700} 1400",       # straddles the middle
        f"write -P 0x{p + 4:02x} {size - 3 * c} {3 * c}",        # the last clusters
        f"write -z {c + 1024} {c}",
        f"write -P 0x{p + 5:02x} {size // 4} {4 * c}",
        f"discard {size // 4 + c} {2 * c}",
    ]
    return cmds


def read_ok(r, ncmds):
    """A read script passed: exit 0, no verification failure, one 'read' line per command."""
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "verification failed" not in r.stdout
    assert len(re.findall(r"^read \d+/\d+ bytes", r.stdout, re.M)) == ncmds, r.stdout[-2000:]


def qemu_verify(path, model, fmt="qcow2"):
    cmds = model.read_cmds()
    read_ok(run_cmd("qemu-io", "-r", "-f", fmt, *io_args(cmds), path), len(cmds))


def ligero_verify(ligero, path, model):
    cmds = model.read_cmds()
    read_ok(run_cmd(ligero, "img", "io", "-r", "-f", "qcow2", *io_args(cmds), path), len(cmds))


# --------------------------------------------------------------------------- qemu -> ligero

QEMU_MADE = [
    # id, size, create options
    ("c512", 4 * MiB, "cluster_size=512"),
    ("c4k", 8 * MiB, "cluster_size=4096"),
    ("c64k", 16 * MiB, "cluster_size=65536"),
    ("c2M", 32 * MiB, "cluster_size=2097152"),
    ("v2", 16 * MiB, "compat=0.10"),
    ("v2-c4k", 8 * MiB, "compat=0.10,cluster_size=4096"),
    ("rc1", 8 * MiB, "refcount_bits=1,cluster_size=4096"),
    ("rc16", 8 * MiB, "refcount_bits=16,cluster_size=4096"),
    ("rc64", 8 * MiB, "refcount_bits=64,cluster_size=4096"),
    ("lazy", 8 * MiB, "lazy_refcounts=on,cluster_size=4096"),
    ("zstd-type", 8 * MiB, "compression_type=zstd,cluster_size=4096"),
]


@pytest.mark.parametrize("size,opts", [q[1:] for q in QEMU_MADE], ids=[q[0] for q in QEMU_MADE])
def test_qemu_made_reads(ligero, img_factory, size, opts):
    cluster = int(re.search(r"cluster_size=(\d+)", opts).group(1)) if "cluster_size" in opts \
        else 65536
    compat = "0.10" if "compat=0.10" in opts else "1.1"
    cmds = script(cluster, size, 0x21)
    img = img_factory("a.qcow2", size=str(size), opts=opts, writes=cmds)
    model = Model(size, cluster_size=cluster, compat=compat)
    for c in cmds:
        model.apply(c)
    qemu_verify(img, model)
    ligero_verify(ligero, img, model)
    # The negative control: a wrong pattern on a written range must fail.
    r = run_cmd(ligero, "img", "io", "-r", "-c", f"read -P 0x{0x22 ^ 0xff:02x} 0 512", img)
    assert r.returncode != 0


@pytest.mark.parametrize("compat", ["0.10", "1.1"])
@pytest.mark.parametrize("cluster", [512, 4096, 65536])
def test_qemu_made_chain(ligero, img_factory, compat, cluster):
    """base <- mid <- top, each layer written by qemu-io; ligero reads the top (and each layer
    as its own top)."""
    size = 4 * MiB
    opts = f"cluster_size={cluster},compat={compat}"
    layers, models = [], []
    backing = None
    for i, name in enumerate(["base.qcow2", "mid.qcow2", "top.qcow2"]):
        # Shift each layer so the layers overlap only partly.
        d = i * (cluster + 512)
        cmds = [shift(c, d) for c in script(cluster, size - d, 0x40 + 0x10 * i)]
        img = img_factory(name, size=None if backing else str(size), opts=opts,
                          backing=backing.name if backing else None, writes=cmds)
        m = Model(size, backing=models[-1] if models else None, cluster_size=cluster,
                  compat=compat)
        for c in cmds:
            m.apply(c)
        layers.append(img)
        models.append(m)
        backing = img
    for img, m in zip(layers, models):
        qemu_verify(img, m)
        ligero_verify(ligero, img, m)


def shift(cmd, by):
    f = cmd.split()
    f[-2] = str(parse_size(f[-2]) + by)
    return " ".join(f)


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
@pytest.mark.parametrize("cluster", [512, 4096, 65536])
def test_qemu_compressed(ligero, img_factory, tmp_path, ctype, cluster):
    """qemu-img convert -c makes compressed clusters; qemu-io then overwrites part of some (COW
    out of a compressed cluster) and ligero must read all of it."""
    size = 4 * MiB
    src_cmds = [f"write -P 0x{0x60 + i:02x} {i * 97 * 1024} {40 * 1024 + i * 333}"
                for i in range(30)]
    src = img_factory("src.raw", size=str(size), fmt="raw", writes=src_cmds)
    # Compressible, non-constant data too: a text-like cluster run written through Python.
    with open(src, "r+b") as f:
        f.seek(3 * MiB)
        f.write((b"ligero qcow2 interop " * 5000)[:64 * 1024])
    dst = tmp_path / "c.qcow2"
    run_cmd("qemu-img", "convert", "-c", "-O", "qcow2", "-o",
            f"compression_type={ctype},cluster_size={cluster}", src, dst, check=True)
    info = json.loads(run_cmd("qemu-img", "info", "--output=json", dst, check=True).stdout)
    assert info["format-specific"]["data"]["compression-type"] == ctype
    over = [f"write -P 0x7e {cluster // 2} {cluster}", f"write -z {5 * 97 * 1024} 3000"]
    run_cmd("qemu-io", *io_args(over), dst, check=True)
    model = Model(size, cluster_size=cluster)
    model.data[:] = src.read_bytes()
    model.skip = [(3 * MiB, 3 * MiB + 64 * 1024)]
    for c in over:
        model.apply(c)
    qemu_verify(dst, model)
    ligero_verify(ligero, dst, model)
    # The text-like region is not a run of one byte: compare it byte for byte as a hexdump.
    cmd = f"read -v {3 * MiB} {64 * 1024}"
    ours = run_cmd(ligero, "img", "io", "-r", "-c", cmd, dst)
    theirs = run_cmd("qemu-io", "-r", "-c", cmd, dst)
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
    dump = lambda s: [ln for ln in s.splitlines() if re.match(r"^[0-9a-f]{8}:", ln)]
    assert dump(ours.stdout) == dump(theirs.stdout) and len(dump(ours.stdout)) == 4096


def test_qemu_compressed_chain(ligero, img_factory, tmp_path):
    """A zstd-compressed base under two qemu-made overlays."""
    size = 4 * MiB
    src = img_factory("src.raw", size=str(size), fmt="raw",
                      writes=[f"write -P 0x{0x30 + i:02x} {i * 200 * 1024} 150k" for i in range(20)])
    base = tmp_path / "base.qcow2"
    run_cmd("qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd,"
            "cluster_size=4096", src, base, check=True)
    m0 = Model(size, cluster_size=4096)
    m0.data[:] = src.read_bytes()
    mid_cmds = script(4096, size, 0x90)
    img_factory("mid.qcow2", size=None, backing="base.qcow2", writes=mid_cmds)
    m1 = Model(size, backing=m0, cluster_size=65536)
    for c in mid_cmds:
        m1.apply(c)
    top_cmds = [shift(c, 70000) for c in script(4096, size - 70000, 0xa0)]
    top = img_factory("top.qcow2", size=None, backing="mid.qcow2", writes=top_cmds)
    m2 = Model(size, backing=m1, cluster_size=65536)
    for c in top_cmds:
        m2.apply(c)
    qemu_verify(top, m2)
    ligero_verify(ligero, top, m2)


# --------------------------------------------------------------------------- ligero -> qemu

LIGERO_MADE = [
    ("c512", 4 * MiB, "cluster_size=512"),
    ("c4k", 8 * MiB, "cluster_size=4096"),
    ("c64k", 16 * MiB, "cluster_size=65536"),
    ("c2M", 32 * MiB, "cluster_size=2097152"),
    ("default", 16 * MiB, None),
    ("v2", 16 * MiB, "compat=0.10"),
    ("v2-c512", 4 * MiB, "compat=0.10,cluster_size=512"),
    ("rc1", 8 * MiB, "refcount_bits=1,cluster_size=4096"),
    ("rc16", 8 * MiB, "refcount_bits=16,cluster_size=4096"),
    ("rc64", 8 * MiB, "refcount_bits=64,cluster_size=4096"),
    ("rc1-c512", 4 * MiB, "refcount_bits=1,cluster_size=512"),
    ("lazy", 8 * MiB, "lazy_refcounts=on,cluster_size=4096"),
]


def ligero_create(ligero, path, size=None, opts=None, backing=None, cwd=None):
    args = [ligero, "img", "create", "-f", "qcow2"]
    if opts:
        args += ["-o", opts]
    if backing:
        args += ["-b", backing, "-F", "qcow2"]
    args.append(path)
    if size is not None:
        args.append(str(size))
    run_cmd(*args, cwd=cwd, check=True)


def ligero_write(ligero, path, cmds):
    r = run_cmd(ligero, "img", "io", "-f", "qcow2", *io_args(cmds), path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert len(re.findall(r"^(wrote|discard) \d+/\d+ bytes", r.stdout, re.M)) == len(cmds)


def qemu_check_clean(path):
    r = run_cmd("qemu-img", "check", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No errors were found on the image." in r.stdout, r.stdout
    assert "leaked" not in r.stdout, r.stdout
    j = json.loads(run_cmd("qemu-img", "check", "--output=json", path, check=True).stdout)
    assert j.get("leaks", 0) == 0 and j.get("corruptions", 0) == 0, j
    return j


def qemu_compare_model(path, model, tmp_path):
    raw = tmp_path / f"{path.name}.expected.raw"
    raw.write_bytes(bytes(model.data))
    r = run_cmd("qemu-img", "compare", "-f", "qcow2", "-F", "raw", path, raw)
    assert r.returncode == 0, r.stdout + r.stderr
    # And the negative control: one byte off must be noticed.
    with open(raw, "r+b") as f:
        f.seek(model.size // 2)
        f.write(bytes([model.data[model.size // 2] ^ 0x5a]))
    assert run_cmd("qemu-img", "compare", "-f", "qcow2", "-F", "raw", path, raw).returncode == 1


def expect_info(path, cluster, compat, refcount_bits, size=None):
    info = json.loads(run_cmd("qemu-img", "info", "--output=json", path, check=True).stdout)
    assert info["format"] == "qcow2"
    assert info["cluster-size"] == cluster
    data = info["format-specific"]["data"]
    assert data["compat"] == compat
    if compat == "1.1":
        assert data["refcount-bits"] == refcount_bits
        assert data["corrupt"] is False
    if size is not None:
        assert info["virtual-size"] == size
    return info


@pytest.mark.parametrize("size,opts", [q[1:] for q in LIGERO_MADE],
                         ids=[q[0] for q in LIGERO_MADE])
def test_ligero_made(ligero, tmp_path, size, opts):
    img = tmp_path / "a.qcow2"
    ligero_create(ligero, img, size, opts)
    o = dict(kv.split("=") for kv in opts.split(",")) if opts else {}
    cluster = int(o.get("cluster_size", 65536))
    compat = o.get("compat", "1.1")
    info = expect_info(img, cluster, compat, int(o.get("refcount_bits", 16)), size)
    if o.get("lazy_refcounts") == "on":
        assert info["format-specific"]["data"]["lazy-refcounts"] is True
    qemu_check_clean(img)  # fresh
    cmds = script(cluster, size, 0x31)
    ligero_write(ligero, img, cmds)
    model = Model(size, cluster_size=cluster, compat=compat)
    for c in cmds:
        model.apply(c)
    qemu_check_clean(img)
    qemu_compare_model(img, model, tmp_path)
    qemu_verify(img, model)
    # A second session on the same image: overwrite, COW inside allocated clusters, flush.
    more = [f"write -P 0x77 {cluster // 2} {cluster}", f"write -z 0 {cluster // 4 or 1}",
            f"write -P 0x78 {size - 1000} 1000", "flush"]
    ligero_write(ligero, img, more[:-1])
    for c in more[:-1]:
        model.apply(c)
    qemu_check_clean(img)
    qemu_compare_model(img, model, tmp_path)


@pytest.mark.parametrize("compat", ["0.10", "1.1"])
@pytest.mark.parametrize("cluster", [512, 4096, 65536])
def test_ligero_made_chain(ligero, tmp_path, compat, cluster):
    """ligero creates base <- mid <- top (relative backing names) and writes each layer."""
    size = 4 * MiB
    opts = f"cluster_size={cluster},compat={compat}"
    models, backing = [], None
    names = ["base.qcow2", "mid.qcow2", "top.qcow2"]
    for i, name in enumerate(names):
        img = tmp_path / name
        ligero_create(ligero, name, None if backing else size, opts, backing, cwd=tmp_path)
        d = i * (cluster + 512)
        cmds = [shift(c, d) for c in script(cluster, size - d, 0x50 + 0x10 * i)]
        ligero_write(ligero, img, cmds)
        m = Model(size, backing=models[-1] if models else None, cluster_size=cluster,
                  compat=compat)
        for c in cmds:
            m.apply(c)
        models.append(m)
        backing = name
    for name, m in zip(names, models):
        img = tmp_path / name
        qemu_check_clean(img)
        info = expect_info(img, cluster, compat, 16, size)
        if name != "base.qcow2":
            assert info["backing-filename"] == names[names.index(name) - 1]
            assert info["backing-filename-format"] == "qcow2"
        qemu_compare_model(img, m, tmp_path)
        qemu_verify(img, m)


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
def test_ligero_compressed_writes(ligero, tmp_path, ctype):
    """`write -c` stores compressed clusters with the image's codec; QEMU reads them."""
    size, cluster = 4 * MiB, 65536
    img = tmp_path / "c.qcow2"
    ligero_create(ligero, img, size, f"compression_type={ctype}")
    cmds = [f"write -c {i * cluster} {cluster}" for i in range(0, 40, 3)]
    cmds += [f"write -P 0x44 {cluster // 2} 4096"]  # COW out of a compressed cluster
    ligero_write(ligero, img, cmds)
    model = Model(size, cluster_size=cluster)
    for c in cmds:
        model.apply(c)
    j = qemu_check_clean(img)
    assert j["compressed-clusters"] >= 10, j
    info = json.loads(run_cmd("qemu-img", "info", "--output=json", img, check=True).stdout)
    assert info["format-specific"]["data"]["compression-type"] == ctype
    qemu_compare_model(img, model, tmp_path)


def test_ligero_overlay_on_qemu_base_and_back(ligero, img_factory, tmp_path):
    """Mixed chain: qemu base <- ligero mid <- qemu top; both tools read the top the same."""
    size = 4 * MiB
    base_cmds = script(4096, size, 0x10)
    img_factory("base.qcow2", size=str(size), opts="cluster_size=4096", writes=base_cmds)
    m0 = Model(size, cluster_size=4096)
    for c in base_cmds:
        m0.apply(c)
    ligero_create(ligero, "mid.qcow2", None, "cluster_size=4096", "base.qcow2", cwd=tmp_path)
    mid_cmds = [shift(c, 4608) for c in script(4096, size - 8192, 0x80)]
    ligero_write(ligero, tmp_path / "mid.qcow2", mid_cmds)
    m1 = Model(size, backing=m0, cluster_size=4096)
    for c in mid_cmds:
        m1.apply(c)
    top_cmds = [shift(c, 9000) for c in script(4096, size - 16384, 0xb0)]
    top = img_factory("top.qcow2", size=None, backing="mid.qcow2", writes=top_cmds)
    m2 = Model(size, backing=m1, cluster_size=65536)
    for c in top_cmds:
        m2.apply(c)
    qemu_check_clean(tmp_path / "mid.qcow2")
    qemu_verify(top, m2)
    ligero_verify(ligero, top, m2)
    qemu_compare_model(top, m2, tmp_path)
