"""Argument order: every `ligero img` verb takes options before and after its operands exactly
where qemu-img (and `img io` where qemu-io) takes them, "--" ends options, and the command lines
qemu-img refuses are refused. Each command line runs through qemu-img and through ligero, each in
its own copy of the same images (relative names, so the lines are identical); the oracle is
qemu-img itself: the same acceptance or refusal, and afterwards the same images (virtual size,
format, backing file, qcow2 options, snapshot names, and the guest-visible content by
`qemu-img compare`). Refusals are one line on stderr, and change nothing.

Command lines that exercise capabilities ligero does not have (or refuses on purpose, such as
overwriting an existing convert destination) are not here: this file is about parsing.

Then: every verb of every group reports a bad option as one line naming the verb; a few fs,
sparsify and run command lines (run: only errors that come before KVM is touched).
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_cmd, sha256

MiB = 1 << 20


def qimg(*args, cwd=None):
    return run_cmd("qemu-img", *args, cwd=cwd, check=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory, ligero):
    """The images every case starts from, made by qemu-img and qemu-io."""
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (the oracle of these tests)")
    d = tmp_path_factory.mktemp("template")

    def io(img, *cmds, fmt="qcow2"):
        args = ["qemu-io", "-f", fmt]
        for c in cmds:
            args += ["-c", c]
        run_cmd(*args, img, cwd=d, check=True)

    qimg("create", "-q", "-f", "qcow2", "base.qcow2", "4M", cwd=d)
    io("base.qcow2", "write -P 0x11 0 64k", "write -P 0x22 1M 64k")
    qimg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "ov.qcow2", cwd=d)
    io("ov.qcow2", "write -P 0x33 64k 64k")
    run_cmd("cp", "--sparse=always", d / "base.qcow2", d / "copy.qcow2", check=True)
    qimg("create", "-q", "-f", "qcow2", "base2.qcow2", "4M", cwd=d)
    io("base2.qcow2", "write -P 0x44 2M 64k")
    qimg("create", "-q", "-f", "raw", "raw.raw", "4M", cwd=d)
    io("raw.raw", "write -P 0x55 0 64k", fmt="raw")
    qimg("create", "-q", "-f", "qcow2", "snap.qcow2", "4M", cwd=d)
    io("snap.qcow2", "write -P 0x66 0 64k")
    qimg("snapshot", "-c", "s0", "snap.qcow2", cwd=d)
    io("snap.qcow2", "write -P 0x77 0 64k")
    return d


_INFO = {}  # (name, sha256 of the bytes) -> what state() records of that file


def state(d):
    """What the oracle sees in directory d: per file, qemu-img info's facts and a digest.
    qemu-img info reads only the file itself (not its backing file), so a file with the same
    name and bytes as one already asked about gets the same answer: it is asked once."""
    out = {}
    for f in sorted(os.listdir(d)):
        key = (f, sha256(Path(d) / f))
        if key not in _INFO:
            _INFO[key] = info_facts(d, f, key[1])
        out[f] = _INFO[key]
    return out


def info_facts(d, f, digest):
    p = run_cmd("qemu-img", "info", "-U", "--output=json", f, cwd=d)
    if p.returncode != 0:
        return ("not an image", digest)
    i = json.loads(p.stdout)
    spec = i.get("format-specific", {}).get("data", {})
    return (i["format"], i["virtual-size"], i.get("backing-filename"),
            i.get("backing-filename-format"), spec.get("compat"), spec.get("lazy-refcounts"),
            [s["name"] for s in i.get("snapshots", [])])


def same_content(a, b, files):
    """qemu-img compare of each file in a with its namesake in b; not needed when the two
    directories hold the same files byte for byte (a refusal left everything as it was)."""
    digests = [{f: sha256(Path(x) / f) for f in sorted(os.listdir(x))} for x in (a, b)]
    if digests[0] == digests[1]:
        return
    for f in files:
        p = run_cmd("qemu-img", "compare", "-U", a / f, b / f)
        assert p.returncode == 0, f"{f}: {p.stdout}{p.stderr}"


def copy_dir(src, dst):
    """A copy that keeps holes (raw.raw's unallocated tail is what lets it shrink)."""
    run_cmd("cp", "-a", "--sparse=always", src, dst, check=True)
    return dst


def both(template, tmp_path, tool, args, ligero_cmd):
    """Run args through tool (qemu-img or qemu-io) and ligero in two copies of the template."""
    qd, ld = copy_dir(template, tmp_path / "qemu"), copy_dir(template, tmp_path / "ligero")
    q = subprocess.run([tool, *args], cwd=qd, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    lg = subprocess.run([*ligero_cmd, *args], cwd=ld, capture_output=True, text=True,
                        timeout=120, stdin=subprocess.DEVNULL)
    return q, lg, qd, ld


def check_case(template, tmp_path, tool, args, ligero_cmd, ok):
    q, lg, qd, ld = both(template, tmp_path, tool, args, ligero_cmd)
    shown = " ".join(repr(a) for a in args)
    assert (q.returncode == 0) == ok, f"{tool} {shown}: expected {'ok' if ok else 'refusal'}, " \
        f"got {q.returncode}: {q.stdout}{q.stderr}"
    assert (lg.returncode == 0) == ok, f"ligero {shown}: {lg.returncode}: {lg.stdout}{lg.stderr}"
    if not ok:
        # Compared with the images before, not with qemu-img's: a refusing qemu-img may have
        # created a file already (convert -t bogus leaves an empty destination behind).
        lines = [l for l in lg.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("ligero: "), lg.stderr
        qd = template
    sq, sl = state(qd), state(ld)
    assert sq == sl, f"{shown}:\n{qd.name}: {sq}\nligero: {sl}"
    same_content(qd, ld, [f for f, v in sq.items() if v[0] != "not an image"])
    return q, lg


def img_cases(verb, ok, refused):
    return [pytest.param(verb, a, True, id=f"{verb}-ok-{i}") for i, a in enumerate(ok)] + \
        [pytest.param(verb, a, False, id=f"{verb}-refused-{i}") for i, a in enumerate(refused)]


CASES = []
CASES += img_cases("create", [
    ["-f", "qcow2", "n.qcow2", "1M"],
    ["n.qcow2", "1M", "-f", "qcow2"],
    ["n.qcow2", "-f", "qcow2", "1M", "-q"],
    ["-f", "qcow2", "n.qcow2", "--", "1M"],
    ["--", "n.raw", "1M"],
    ["n.qcow2", "-b", "base.qcow2", "-F", "qcow2", "-f", "qcow2"],
    ["n.qcow2", "-o", "cluster_size=4k", "-f", "qcow2", "1M"],
], [
    ["-f", "qcow2", "n.qcow2", "--", "-1M"],
    ["n.raw", "1M", "extra"],
    ["-f", "qcow2", "n.qcow2", "1M", "--", "-q"],
    ["-x", "n.raw", "1M"],
    ["n.raw", "1M", "-o"],
    ["n.raw", "1M", "-f"],
    ["--bogus", "n.raw", "1M"],
    [],
])
CASES += img_cases("info", [
    ["base.qcow2", "--output=json"],
    ["--output", "json", "base.qcow2"],
    ["base.qcow2", "-f", "qcow2"],
    ["--backing-chain", "ov.qcow2", "-U"],
    ["ov.qcow2", "--out=json"],
    ["--", "base.qcow2"],
], [
    ["base.qcow2", "ov.qcow2"],
    [],
    ["-x", "base.qcow2"],
    ["base.qcow2", "--output"],
    ["-B", "base.qcow2"],
    ["--", "-f"],
    ["base.qcow2", "--output=xml"],
    ["--help=x", "base.qcow2"],
    ["-t", "none", "base.qcow2"],
])
CASES += img_cases("check", [
    ["base.qcow2", "-f", "qcow2"],
    ["base.qcow2", "--output=json"],
    ["-q", "base.qcow2", "-T", "none"],
    ["base.qcow2", "-T", "off"],
    ["base.qcow2", "-r", "leaks"],
    ["--", "ov.qcow2"],
], [
    ["base.qcow2", "-r"],
    ["base.qcow2", "-r", "bogus"],
    ["-T", "bogus", "base.qcow2"],
    ["base.qcow2", "ov.qcow2"],
    ["-t", "none", "base.qcow2"],
    [],
])
CASES += img_cases("convert", [
    ["base.qcow2", "o.raw", "-O", "raw"],
    ["base.qcow2", "-O", "qcow2", "o.qcow2", "-c"],
    ["--", "ov.qcow2", "o.raw"],
    ["-f", "qcow2", "ov.qcow2", "o.raw", "-q"],
    ["base.qcow2", "raw.raw", "o.raw"],
    ["base.qcow2", "o.raw", "-m", "16", "-W"],
    ["base.qcow2", "o.raw", "-S", "0"],
    ["-t", "writethrough", "base.qcow2", "o.raw", "-T", "off"],
    ["-r", "1M", "base.qcow2", "o.raw"],
    ["base.qcow2", "o.qcow2", "-O", "qcow2", "-o", "cluster_size=4k"],
    ["base.qcow2", "-n", "raw.raw"],
    ["-n", "--target-is-zero", "copy.qcow2", "raw.raw"],
], [
    ["base.qcow2"],
    ["base.qcow2", "o.raw", "-m", "0"],
    ["base.qcow2", "o.raw", "-S", "1000"],
    ["base.qcow2", "o.raw", "-S", "17M"],
    ["-t", "bogus", "base.qcow2", "o.raw"],
    ["-T", "bogus", "base.qcow2", "o.raw"],
    ["-r", "abc", "base.qcow2", "o.raw"],
    ["base.qcow2", "o.raw", "-O"],
    ["-x", "base.qcow2", "o.raw"],
    ["base.qcow2", "o.raw", "-n"],
    ["base.qcow2", "o.raw", "--target-is-zero"],
])
CASES += img_cases("map", [
    ["base.qcow2", "--output=json"],
    ["--output", "json", "base.qcow2", "-s", "0", "-l", "64k"],
    ["base.qcow2", "--start-offset=64k", "-f", "qcow2", "--output=json"],
    ["-U", "--output=json", "--", "ov.qcow2"],
    ["ov.qcow2", "--max-length", "1M", "--output=json"],
], [
    [],
    ["base.qcow2", "ov.qcow2"],
    ["-t", "none", "base.qcow2"],
    ["base.qcow2", "--output=xml"],
    ["base.qcow2", "-s"],
    ["base.qcow2", "-l", "bogus"],
])
CASES += img_cases("compare", [
    ["base.qcow2", "copy.qcow2"],
    ["base.qcow2", "copy.qcow2", "-f", "qcow2", "-F", "qcow2", "-s"],
    ["-T", "writeback", "base.qcow2", "copy.qcow2", "-q"],
    ["--", "base.qcow2", "copy.qcow2"],
    ["base.qcow2", "-U", "copy.qcow2"],
], [
    ["base.qcow2"],
    ["-x", "base.qcow2", "copy.qcow2"],
    ["-T", "bogus", "base.qcow2", "copy.qcow2"],
    ["base.qcow2", "copy.qcow2", "-f"],
    ["base.qcow2", "copy.qcow2", "ov.qcow2"],
    ["-t", "none", "base.qcow2", "copy.qcow2"],
])
CASES += img_cases("commit", [
    ["ov.qcow2", "-d"],
    ["-t", "writeback", "ov.qcow2", "-q"],
    ["ov.qcow2", "-t", "off"],
    ["ov.qcow2", "-b", "base.qcow2"],
    ["--", "ov.qcow2"],
    ["-r", "1M", "ov.qcow2"],
], [
    ["-t", "bogus", "ov.qcow2"],
    ["ov.qcow2", "-r", "abc"],
    [],
    ["ov.qcow2", "base.qcow2"],
    ["-x", "ov.qcow2"],
    ["ov.qcow2", "-b"],
])
CASES += img_cases("rebase", [
    ["ov.qcow2", "-u", "-b", "base2.qcow2", "-F", "qcow2"],
    ["-b", "", "ov.qcow2"],
    ["ov.qcow2", "-u"],
    ["-t", "writeback", "-T", "unsafe", "-b", "base2.qcow2", "-F", "qcow2", "ov.qcow2"],
    ["-u", "-b", "base2.qcow2", "-F", "qcow2", "--", "ov.qcow2"],
    ["ov.qcow2", "-b", "base2.qcow2", "-F", "qcow2", "-q", "-U"],
], [
    ["ov.qcow2"],
    ["-t", "bogus", "-u", "-b", "base2.qcow2", "-F", "qcow2", "ov.qcow2"],
    ["-T", "bogus", "-b", "base2.qcow2", "-F", "qcow2", "ov.qcow2"],
    ["-u", "-b", "base2.qcow2", "-F", "qcow2", "--", "ov.qcow2", "-q"],
    ["-x", "-u", "ov.qcow2"],
    ["ov.qcow2", "-b"],
])
CASES += img_cases("resize", [
    ["base.qcow2", "+1M"],
    ["base.qcow2", "-f", "qcow2", "+1M"],
    ["-f", "qcow2", "base.qcow2", "--", "+1M"],
    ["--shrink", "raw.raw", "--", "-1M"],
    ["raw.raw", "--shrink", "-1M"],
    ["--shrink", "raw.raw", "-1M"],
    ["-q", "base.qcow2", "8M"],
    ["--", "base.qcow2", "8M"],
    ["base.qcow2", "--", "8M"],
], [
    ["base.qcow2", "+1M", "-f", "qcow2"],
    ["base.qcow2", "-1M", "--shrink"],
    ["base.qcow2", "+1M", "-q"],
    ["base.qcow2"],
    ["base.qcow2", "1M", "2M"],
    ["-x", "base.qcow2", "+1M"],
    ["-t", "none", "base.qcow2", "+1M"],
    ["base.qcow2", "2M"],
])
CASES += img_cases("snapshot", [
    ["base.qcow2", "-c", "s1"],
    ["-c", "s1", "--", "base.qcow2"],
    ["snap.qcow2"],
    ["snap.qcow2", "-l", "-U"],
    ["-q", "snap.qcow2", "-l"],
    ["snap.qcow2", "-d", "s0"],
    ["-a", "s0", "snap.qcow2"],
], [
    ["-l", "base.qcow2", "-c", "x"],
    ["-l", "-l", "base.qcow2"],
    ["base.qcow2", "-c"],
    [],
    ["base.qcow2", "ov.qcow2", "-l"],
    ["-x", "base.qcow2"],
    ["-U", "-c", "x", "base.qcow2"],
    ["-d", "nosuch", "snap.qcow2"],
])
CASES += img_cases("amend", [
    ["-o", "lazy_refcounts=on", "base.qcow2"],
    ["base.qcow2", "-o", "lazy_refcounts=on", "-f", "qcow2"],
    ["-o", "compat=0.10", "base.qcow2", "-p", "-q", "-t", "writeback"],
    ["-o", "lazy_refcounts=on", "--", "base.qcow2"],
], [
    ["base.qcow2"],
    ["-t", "bogus", "-o", "lazy_refcounts=on", "base.qcow2"],
    ["-o", "lazy_refcounts=on"],
    ["-o", "lazy_refcounts=on", "base.qcow2", "copy.qcow2"],
    ["base.qcow2", "-o"],
    ["-x", "-o", "lazy_refcounts=on", "base.qcow2"],
    ["-U", "-o", "lazy_refcounts=on", "base.qcow2"],
])


# The fast tier (conftest.py) keeps one command line of each verb.
FAST_TIER_PER = {"test_img_verb": "verb"}


@pytest.mark.parametrize("verb,args,ok", CASES)
def test_img_verb(template, tmp_path, ligero, verb, args, ok):
    q, lg = check_case(template, tmp_path, "qemu-img", [verb, *args], [ligero, "img"], ok)
    if ok and verb == "map":  # what map prints is its effect: qemu-img's JSON, byte for byte
        assert lg.stdout == q.stdout


IO_CASES = [pytest.param(a, True, id=f"io-ok-{i}") for i, a in enumerate([
    ["-f", "qcow2", "base.qcow2", "-c", "write -P 1 0 4k"],
    ["base.qcow2", "-c", "write 0 4k -P 2", "-f", "qcow2"],
    ["-c", "write -P 3 -- 64k 4k", "base.qcow2"],
    ["base.qcow2", "-c", "read -P 0x22 1M 4k"],
    ["base.qcow2", "-c", "read 1M 4k -P 0x22 -q"],
    ["-f", "raw", "-c", "truncate -- 8M", "raw.raw"],
    ["-c", "discard 0 64k -q", "base.qcow2"],
    ["-c", "write -z 0 64k", "base.qcow2", "-t", "writethrough"],
    ["-t", "none", "-c", "read 0 4k", "base.qcow2"],
    ["-r", "-c", "read 0 4k", "base.qcow2"],
    ["base.qcow2", "-r", "-U", "-c", "read 0 4k"],
    ["--", "base.qcow2"],
    ["-c", "alloc 0 64k", "--", "ov.qcow2"],
])] + [pytest.param(a, False, id=f"io-refused-{i}") for i, a in enumerate([
    ["-c", "read -x 0 4k", "base.qcow2"],
    ["-c", "read 0 4k extra", "base.qcow2"],
    ["-c", "read 0 -1", "base.qcow2"],
    ["-c", "write -P", "base.qcow2"],
    ["-x", "base.qcow2"],
    ["base.qcow2", "raw.raw", "-c", "read 0 1"],
    ["-t", "bogus", "-c", "read 0 1", "base.qcow2"],
    ["-c", "alloc 0 -- 4k", "base.qcow2"],
    ["-c", "sleep -- 1", "base.qcow2"],
    ["-c", "length -x", "base.qcow2"],
    ["-c", "flush x", "base.qcow2"],
    ["-c", "read 0 1"],
    ["-c", "read 0 1", "base.qcow2", "-f"],
])]


@pytest.mark.parametrize("args,ok", IO_CASES)
def test_img_io(template, tmp_path, ligero, args, ok):
    check_case(template, tmp_path, "qemu-io", args, [ligero, "img", "io"], ok)


# ---- one line naming the verb, for every verb of every group ---------------------------------

IMG_VERBS = ["create", "info", "check", "io", "convert", "map", "compare", "commit", "rebase",
             "resize", "snapshot", "amend"]
FS_VERBS = ["list", "ls", "cat", "stat", "copy-out", "copy-in", "write", "mkdir", "rm", "chmod",
            "chown", "ln", "edit", "inspect", "mount", "umount"]


def all_verbs():
    """Every verb of every group, as `ligero --help` and `ligero GROUP --help` list them (so a
    group added later is covered without editing this file); the lists above when the binary
    is not built yet (the tests then skip)."""
    binary = os.environ.get("LIGERO") or str(Path(__file__).resolve().parents[2] / "build" /
                                             "ligero")
    fallback = ([["img", v] for v in IMG_VERBS] + [["fs", v] for v in FS_VERBS] +
                [["sparsify"], ["run"]])
    if not os.access(binary, os.X_OK):
        return fallback
    text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    groups = re.findall(r"^  ([a-z]+) ", text.split("groups:")[1], re.M)
    out = []
    for g in groups:
        if g in ("help", "version"):
            continue
        gh = subprocess.run([binary, g, "--help"], capture_output=True, text=True).stdout
        if "verbs:" in gh:
            out += [[g, v] for v in re.findall(r"^  ([a-z][a-z-]*)\b", gh.split("verbs:")[1],
                                               re.M)]
        else:
            out.append([g])
    return out


VERBS = all_verbs()


def one_line(p):
    assert p.returncode != 0
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1, p.stderr
    return p.stderr.rstrip("\n")


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_errors_name_the_verb(ligero, tmp_path, verb):
    """getopt's own messages never show: every error is one line, 'ligero: VERB: ...'."""
    name = " ".join(verb)
    see = f" (see 'ligero {name} --help')"
    # img resize takes the size off the end before it parses options
    tail = ["f", "1M"] if verb == ["img", "resize"] else ["f"]
    r = run_cmd(ligero, *verb, "-Z", *tail, cwd=tmp_path)
    assert one_line(r) == f"ligero: {name}: invalid option '-Z'{see}"
    r = run_cmd(ligero, *verb, *tail, "--no-such-option", cwd=tmp_path)
    if verb != ["img", "resize"]:
        assert one_line(r) == f"ligero: {name}: invalid option '--no-such-option'{see}"
    r = run_cmd(ligero, *verb, "--help=x", *tail, cwd=tmp_path)
    assert one_line(r) == f"ligero: {name}: option '--help' takes no value{see}"
    # an option that takes a value, given none (for the groups whose verbs share one)
    valued = {"img": "-f", "fs": "--disk", "sparsify": "-O", "run": "--memory"}.get(verb[0])
    if valued is None:
        valued = next(iter(re.findall(r"\[(--?[a-z][\w-]*)[ =][A-Z_a-z|]", run_cmd(
            ligero, *verb, "--help").stdout)), None)
        if valued is None:
            return
    args = [*verb, "x", "1M", valued] if verb == ["img", "resize"] else [*verb, valued]
    r = run_cmd(ligero, *args, cwd=tmp_path)
    if verb == ["img", "resize"]:  # "1M" is the size, "-f" and "x": -f takes x
        assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    else:
        assert one_line(r) == f"ligero: {name}: option '{valued}' needs a value{see}"
    # --help still works after operands
    r = run_cmd(ligero, *verb, *(["x"] if verb != ["img", "resize"] else []), "--help",
                cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("usage: ligero"), r.stderr


def test_operand_errors_name_the_verb(ligero, tmp_path):
    for verb in IMG_VERBS:
        if verb in ("io",):
            continue
        r = run_cmd(ligero, "img", verb, cwd=tmp_path)
        assert one_line(r).startswith(f"ligero: img {verb}: "), r.stderr
    r = run_cmd(ligero, "img", "io", "-c", "read 0 1", cwd=tmp_path)
    assert one_line(r).startswith("ligero: img io: expected one image file name")
    r = run_cmd(ligero, "img", "info", "a", "b", cwd=tmp_path)
    assert one_line(r).startswith("ligero: img info: expected one image file name")


def test_cache_modes_one_parser(ligero, template, tmp_path):
    """-t/-T of every verb that has them, and img io's: the same modes (QEMU's, 'off' too), the
    same message for a bad one."""
    d = copy_dir(template, tmp_path / "d")
    for mode in ["none", "off", "writeback", "writethrough", "directsync", "unsafe"]:
        for args in (["io", "-t", mode, "-c", "read 0 4k", "base.qcow2"],
                     ["check", "-T", mode, "base.qcow2"],
                     ["compare", "-T", mode, "base.qcow2", "copy.qcow2"],
                     ["amend", "-t", mode, "-o", "lazy_refcounts=off", "base.qcow2"],
                     ["convert", "-t", mode, "-T", mode, "base.qcow2", f"o-{mode}.raw"]):
            r = run_cmd(ligero, "img", *args, cwd=d)
            assert r.returncode == 0, (args, r.stderr)
    msg = "cache mode 'bogus' is not none, writeback, writethrough, directsync or unsafe"
    for verb, args in (("io", ["-t", "bogus", "base.qcow2"]),
                       ("convert", ["-t", "bogus", "base.qcow2", "x.raw"]),
                       ("commit", ["-t", "bogus", "ov.qcow2"]),
                       ("rebase", ["-t", "bogus", "-u", "ov.qcow2"]),
                       ("amend", ["-t", "bogus", "-o", "compat=1.1", "base.qcow2"]),
                       ("check", ["-T", "bogus", "base.qcow2"])):
        r = run_cmd(ligero, "img", verb, *args, cwd=d)
        assert msg in one_line(r) and one_line(r).startswith(f"ligero: img {verb}: ")
    r = run_cmd(ligero, "run", "--disk", "base.qcow2,cache=bogus", "--kernel", "k", cwd=d)
    assert msg in one_line(r) and one_line(r).startswith("ligero: run: --disk base.qcow2: ")


# ---- sparsify, fs, run ------------------------------------------------------------------------

@pytest.mark.parametrize("order", [
    ["--compress", "-O", "qcow2", "raw.raw", "out.qcow2"],
    ["raw.raw", "out.qcow2", "--compress", "-O", "qcow2"],
    ["raw.raw", "--compress", "out.qcow2", "-O", "qcow2"],
    ["--compress", "-O", "qcow2", "--", "raw.raw", "out.qcow2"],
])
def test_sparsify_order(ligero, template, tmp_path, order):
    d = copy_dir(template, tmp_path / "d")
    run_cmd(ligero, "sparsify", *order, cwd=d, check=True)
    p = run_cmd("qemu-img", "compare", "-f", "raw", "-F", "qcow2", d / "raw.raw",
                d / "out.qcow2")
    assert p.returncode == 0, p.stdout + p.stderr
    info = json.loads(qimg("info", "--output=json", d / "out.qcow2").stdout)
    assert info["format-specific"]["data"]["compression-type"] == "zstd"


def test_sparsify_refusals(ligero, template, tmp_path):
    d = copy_dir(template, tmp_path / "d")
    before = state(d)
    for args in (["raw.raw"], ["raw.raw", "out.qcow2", "--in-place"], ["raw.raw", "-O"],
                 ["raw.raw", "out.qcow2", "extra"]):
        r = run_cmd(ligero, "sparsify", *args, cwd=d)
        assert one_line(r).startswith("ligero: sparsify: "), (args, r.stderr)
    # after "--", "--in-place" is the source's name
    r = run_cmd(ligero, "sparsify", "--", "--in-place", "raw.raw", cwd=d)
    assert "--in-place: " in one_line(r)
    assert state(d) == before
    run_cmd(ligero, "sparsify", "raw.raw", "--in-place", cwd=d, check=True)
    p = run_cmd("qemu-img", "compare", "-f", "raw", "-F", "raw", d / "raw.raw",
                template / "raw.raw")
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.fixture(scope="module")
def ext_disk(tmp_path_factory):
    """A raw disk holding an ext4 filesystem, made by mkfs.ext4 -d."""
    if shutil.which("mkfs.ext4") is None or shutil.which("debugfs") is None:
        pytest.skip("mkfs.ext4 and debugfs (e2fsprogs) are needed")
    d = tmp_path_factory.mktemp("ext")
    (d / "tree/etc").mkdir(parents=True)
    (d / "tree/etc/hostname").write_text("guest\n")
    (d / "tree/-dash").write_text("dash\n")
    run_cmd("mkfs.ext4", "-q", "-F", "-d", d / "tree", d / "disk.raw", "16M", check=True)
    return d / "disk.raw"


def debugfs(disk, cmd):
    return run_cmd("debugfs", "-R", cmd, disk, check=True).stdout


def test_fs_order(ligero, ext_disk, tmp_path):
    disk = tmp_path / "disk.raw"
    shutil.copy(ext_disk, disk)
    outs = {tuple(a): run_cmd(ligero, "fs", *a, check=True).stdout for a in (
        ["ls", "-l", "-R", disk, "/"], ["ls", disk, "/", "-lR"], ["ls", disk, "-R", "/", "-l"],
        ["ls", "-lR", "--", disk, "/"])}
    assert len(set(outs.values())) == 1, outs
    assert "hostname" in next(iter(outs.values()))
    assert run_cmd(ligero, "fs", "cat", disk, "/etc/hostname", check=True).stdout == "guest\n"
    # "--" ends options: a guest path that starts with '-'
    assert run_cmd(ligero, "fs", "cat", "--", disk, "/-dash", check=True).stdout == "dash\n"
    assert run_cmd(ligero, "fs", "cat", disk, "--", "-dash").returncode != 0  # relative path
    run_cmd(ligero, "fs", "mkdir", disk, "/a/b", "-p", "-m", "0700", check=True)
    assert re.search(r"Mode:\s+0700", debugfs(disk, "stat /a/b"))
    st = json.loads(run_cmd(ligero, "fs", "stat", disk, "/a/b", "--output=json",
                            check=True).stdout)
    assert st["mode"] == 0o700 and st["type"] == "directory"
    run_cmd(ligero, "fs", "rm", disk, "/a", "-r", check=True)
    assert "File not found" in run_cmd("debugfs", "-R", "stat /a", disk).stderr


def test_fs_refusals(ligero, ext_disk, tmp_path):
    disk = tmp_path / "disk.raw"
    shutil.copy(ext_disk, disk)
    digest = sha256(disk)
    for args in (["ls", disk], ["ls", disk, "/", "/etc"], ["inspect", disk, "extra"],
                 ["list", disk, "extra"], ["cat", disk, "/etc/hostname", "-Z"],
                 ["mkdir", disk, "/x", "-m"], ["write", disk, "/x", "/y"],
                 ["ln", "-s", disk, "/a", "/b", "/c"], ["umount"], ["umount", "a", "b"],
                 ["mount", disk], ["ls", "--part", "1", disk, "/"]):
        r = run_cmd(ligero, "fs", *args)
        line = one_line(r)
        assert line.startswith(f"ligero: fs {args[0]}: "), (args, line)
    assert sha256(disk) == digest


@pytest.mark.parametrize("args,msg", [
    (["--bogus"], "ligero: run: invalid option '--bogus'"),
    (["--kernel", "k", "extra"], "ligero: run: unexpected argument 'extra'"),
    (["--kernel", "k", "--", "--memory", "1G"], "ligero: run: unexpected argument '--memory'"),
    (["--memory"], "ligero: run: option '--memory' needs a value"),
    (["--disk"], "ligero: run: option '--disk' needs a value"),
    (["--kernel", "k", "--disk", "d,format=vmdk"], "ligero: run: --disk d: bad option"),
    (["--kernel", "k", "--disk", "d,serial=123456789012345678901"], "--disk d: bad option"),
    (["--kernel", "k", "--net", "tap=t0,mac=01:00:00:00:00:00"], "multicast"),
    (["--kernel", "k", "--net", "mac=52:54:00:00:00:01"], "--net needs tap=NAME or bridge"),
    (["--kernel", "k", "--balloon", "64M"], "--balloon '64M' is not a size in MiB"),
    (["--kernel", "k", "--cpus", "0"], "--cpus '0' is not a CPU count"),
])
def test_run_argument_errors(ligero, tmp_path, args, msg):
    """Refused before KVM is touched (no /dev/kvm needed): one line, naming the verb."""
    r = run_cmd(ligero, "run", *args, cwd=tmp_path)
    line = one_line(r)
    assert msg in line and line.startswith("ligero: "), line
