"""`ligero fleet` with its base on a Ceph cluster (issue 24): `--base rbd:POOL/IMAGE@SNAP` makes
each member an RBD clone of that snapshot, on the throwaway cluster of tests/ceph/cluster.sh
(tests/system/ceph_cluster.py). Nothing boots.

The oracles are not ligero's: the `rbd` CLI (a clone's parent, the snapshot's protection, the
snapshot's children, which images the pool holds), qemu-img with its rbd driver on the same
rbd: names (info, compare; qemu-block-extra), and debugfs on each member's root partition as
qemu-img exports it to a file (sysprep's hostname and machine-id), with `ligero fs cat` as a
second reader. The base's bytes are compared with the local disk it was converted from, before
and after every verb.
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from ceph_cluster import HANG  # (the fixture ceph: conftest.py)
from conftest import run_cmd
from fs_fixtures import debugfs, extract
from test_rbd import qemu_has_rbd
from test_sysprep import debian_tree, make_disk
from test_vm import FAKE_VMM, env, one_line_error  # noqa: F401 (env: test_vm's fixture)

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img") or not qemu_has_rbd(),
                                reason="needs qemu-img with its rbd driver (qemu-block-extra)")

_seq = [0]


def fresh(stem):
    """A name no other test of this session's cluster uses, ending in a letter (a prefix)."""
    _seq[0] += 1
    return f"{stem}{os.getpid() % 100000}x{_seq[0]}n"


def tool(*args, check=True):
    return run_cmd(*args, check=check, timeout=HANG)


def rbd_json(ceph, *args):
    return json.loads(ceph.rbd(*args, "--format", "json").stdout)


def images(ceph, pool="rbd"):
    return set(rbd_json(ceph, "ls", pool))


class Base:
    """The small Debian-like GPT disk of test_sysprep.py converted onto the cluster by
    `ligero img convert`, with a snapshot `gold`."""

    def __init__(self, ceph, tmp_path, ligero):
        self.local, self.part = make_disk(tmp_path, debian_tree)
        self.image = fresh("base")
        self.head = ceph.name(self.image)
        self.name = ceph.name(self.image, "gold")
        tool(ligero, "img", "convert", "-O", "raw", self.local, self.head)
        tool(ligero, "img", "snapshot", "-c", "gold", self.head)

    def assert_unchanged(self):
        tool("qemu-img", "compare", "-F", "raw", self.local, self.name)
        tool("qemu-img", "compare", "-F", "raw", self.local, self.head)


@pytest.fixture
def base(ceph, tmp_path, ligero):
    return Base(ceph, tmp_path, ligero)


def create(env, prefix, count, base_name, *extra, check=True):
    return env("fleet", "create", prefix, "--count", str(count), "--base", base_name,
               "--kernel", FAKE_VMM, "--memory", "256M", "--net", "bridge=br0", *extra,
               check=check, timeout=HANG)


def member_root(tmp_path, disk, part, tag):
    """A member's root partition as qemu-img reads the clone (through its parent), in a file."""
    raw = tmp_path / f"{tag}.raw"
    tool("qemu-img", "convert", "-O", "raw", disk, raw)
    fs = extract(raw, part["start"], part["size"], tmp_path / f"{tag}.root")
    os.unlink(raw)
    return fs


def test_create_clones_list_start_delete(env, ceph, base, tmp_path, ligero):
    prefix = fresh("lab")
    members = [f"{prefix}{i}" for i in (1, 2, 3)]
    p = create(env, prefix, 3, base.name)
    assert p.stderr == ""
    assert f"3 members, RBD clones of {base.name}, sysprepped" in p.stdout
    base.assert_unchanged()
    size = json.loads(tool("qemu-img", "info", "--output=json", base.name).stdout)["virtual-size"]

    # The cluster's view: three clones of base@gold, the snapshot protected.
    assert set(members) <= images(ceph)
    for m in members:
        parent = rbd_json(ceph, "info", m)["parent"]
        assert (parent["pool"], parent["image"], parent["snapshot"]) == \
            ("rbd", base.image, "gold")
    snaps = {s["name"]: s for s in rbd_json(ceph, "snap", "ls", base.image)}
    assert snaps["gold"]["protected"] == "true"
    children = ceph.rbd("children", f"{base.image}@gold").stdout.split()
    assert sorted(children) == sorted(f"rbd/{m}" for m in members)

    for m in members:
        # The definition names the clone with the base's conf, so any host with it opens it.
        d = env.definition(m)
        assert d["disks"][0] == {**d["disks"][0], "path": ceph.name(m), "format": "raw"}
        info = json.loads(tool("qemu-img", "info", "--output=json", ceph.name(m)).stdout)
        assert info["format"] == "raw" and info["virtual-size"] == size
        # sysprep: debugfs on the root partition as qemu-img reads the clone, and ligero's
        # own reader on the rbd: name (no partition given: it finds the root).
        fs = member_root(tmp_path, ceph.name(m), base.part, m)
        assert debugfs(fs, "cat /etc/hostname") == f"{m}\n"
        assert f"\t{m}" in debugfs(fs, "cat /etc/hosts")
        assert debugfs(fs, "cat /etc/machine-id") == ""
        assert "ssh_host_" not in debugfs(fs, "ls /etc/ssh")
        os.unlink(fs)
        assert tool(ligero, "fs", "cat", ceph.name(m), "/etc/hostname").stdout == f"{m}\n"
        assert tool(ligero, "fs", "cat", f"{ceph.name(m)}:2",
                    "/etc/machine-id").stdout == ""
    # The base still says what it said.
    assert tool(ligero, "fs", "cat", base.name, "/etc/hostname").stdout == "template\n"
    assert len({env.definition(m)["net"][0]["mac"] for m in members}) == 3

    rows = json.loads(env("fleet", "list", prefix, "--output=json", check=True).stdout)
    assert [(r["name"], r["disk"], r["disk-size"]) for r in rows] == \
        [(m, ceph.name(m), None) for m in members]
    human = env("fleet", "list", prefix, check=True).stdout
    for m in members:
        assert ceph.name(m) in human

    # vm start hands the VMM the rbd: name as its --disk (the stand-in VMM records its argv).
    env("vm", "start", members[0], check=True)
    argv = Path(f"/proc/{env.pid(members[0])}/cmdline").read_bytes().split(b"\0")
    assert f"{ceph.name(members[0])},format=raw".encode() in argv
    p = env("fleet", "delete", prefix, "--disks")
    one_line_error(p, members[0], "running")
    env("fleet", "kill", prefix, check=True)

    p = env("fleet", "delete", prefix, "--disks", check=True, timeout=HANG)
    assert p.stderr == ""
    assert not set(members) & images(ceph)
    assert base.image in images(ceph)
    snaps = {s["name"]: s for s in rbd_json(ceph, "snap", "ls", base.image)}
    assert snaps["gold"]["protected"] == "true"
    assert ceph.rbd("children", f"{base.image}@gold").stdout.split() == []
    assert not list((env.state / "vms").iterdir())
    base.assert_unchanged()


def test_reset_gives_fresh_clones(env, ceph, base, tmp_path, ligero):
    prefix = fresh("aula")
    m = f"{prefix}2"
    create(env, prefix, 3, base.name)
    mac = env.definition(m)["net"][0]["mac"]
    hw = tmp_path / "homework.txt"
    hw.write_text("done\n")
    tool(ligero, "fs", "copy-in", hw, ceph.name(m), "/root")
    assert tool(ligero, "fs", "cat", ceph.name(m), "/root/homework.txt").stdout == "done\n"
    fs = member_root(tmp_path, ceph.name(m), base.part, "before")
    assert "homework.txt" in debugfs(fs, "ls /root")

    p = env("fleet", "reset", prefix, check=True, timeout=HANG)
    assert p.stderr == ""
    fs = member_root(tmp_path, ceph.name(m), base.part, "after")
    assert "homework.txt" not in debugfs(fs, "ls /root")
    assert debugfs(fs, "cat /etc/hostname") == f"{m}\n"
    assert debugfs(fs, "cat /etc/machine-id") == ""
    parent = rbd_json(ceph, "info", m)["parent"]
    assert (parent["image"], parent["snapshot"]) == (base.image, "gold")
    assert env.definition(m)["net"][0]["mac"] == mac
    assert env.definition(m)["disks"][0]["path"] == ceph.name(m)
    assert not {i for i in images(ceph) if i.endswith(".reset")}
    base.assert_unchanged()

    # A reset stopped after the old clone went and before the fresh one took its name leaves
    # IMAGE.reset alone: the next reset finishes from it.
    ceph.rbd("rename", m, f"{m}.reset")
    env("fleet", "reset", prefix, check=True, timeout=HANG)
    assert m in images(ceph) and f"{m}.reset" not in images(ceph)
    assert tool(ligero, "fs", "cat", ceph.name(m), "/etc/hostname").stdout == f"{m}\n"

    # A member with a snapshot of its own cannot be removed by the cluster: reset says so,
    # names the member, and leaves its clone and no IMAGE.reset.
    ceph.rbd("snap", "create", f"{m}@mine")
    p = env("fleet", "reset", prefix, timeout=HANG)
    one_line_error(p, m, "snapshots")
    assert m in images(ceph) and f"{m}.reset" not in images(ceph)
    # delete --disks: the cluster keeps that clone (said on a line of its own), the others go.
    p = env("fleet", "delete", prefix, "--disks", check=True, timeout=HANG)
    assert p.stderr.splitlines() == [line for line in p.stderr.splitlines()
                                     if line.startswith(f"ligero: fleet delete: {m}: disk kept")
                                     and "snapshots" in line] != []
    assert {i for i in images(ceph) if i.startswith(prefix)} == {m}
    assert not list((env.state / "vms").iterdir())
    ceph.rbd("snap", "rm", f"{m}@mine")
    ceph.rbd("rm", m)
    base.assert_unchanged()


def test_all_or_nothing(env, ceph, base, tmp_path, ligero):
    prefix = fresh("clase")
    # A clash: PREFIX2 already exists in the pool. Create fails naming it and leaves no
    # PREFIX1 (made, then removed), no PREFIX3, no definition; the intruder stays.
    tool(ligero, "img", "create", "-f", "raw", ceph.name(f"{prefix}2"), "1M")
    before = images(ceph)
    p = create(env, prefix, 3, base.name, check=False)
    one_line_error(p, f"{prefix}2", ceph.name(f"{prefix}2"), "already exists")
    assert images(ceph) == before
    assert not (env.state / "vms").exists() or not list((env.state / "vms").iterdir())
    assert ceph.rbd("children", f"{base.image}@gold").stdout.split() == []
    ceph.rbd("rm", f"{prefix}2")

    # A base with no Linux root: the first clone is made, its sysprep fails, it is removed.
    blank = fresh("blank")
    tool(ligero, "img", "create", "-f", "raw", ceph.name(blank), "64M")
    tool(ligero, "img", "snapshot", "-c", "s1", ceph.name(blank))
    before = images(ceph)
    p = create(env, prefix, 2, ceph.name(blank, "s1"), check=False)
    one_line_error(p, f"{prefix}1", "no Linux root", "--no-sysprep")
    assert images(ceph) == before
    assert not (env.state / "vms").exists() or not list((env.state / "vms").iterdir())
    # ... which --no-sysprep makes fine.
    create(env, prefix, 2, ceph.name(blank, "s1"), "--no-sysprep")
    assert {f"{prefix}1", f"{prefix}2"} <= images(ceph)
    env("fleet", "delete", prefix, "--disks", check=True, timeout=HANG)
    assert images(ceph) == before
    base.assert_unchanged()


def test_bad_input_one_line(env, ceph, base, tmp_path):
    prefix = fresh("mal")
    before = images(ceph)
    nosnap = base.head
    opts = f":conf={ceph.conf}"

    def refused(base_name, *extra, words=()):
        p = create(env, prefix, 3, base_name, *extra, check=False)
        one_line_error(p, *words)
        assert images(ceph) == before
        assert not (env.state / "vms").exists() or not list((env.state / "vms").iterdir())

    refused(nosnap, words=[nosnap, "a clone needs a snapshot of its parent",
                           f"rbd:rbd/{base.image}@SNAP{opts}"])
    refused(ceph.name(base.image, "nope"), words=["@nope", "no such image or snapshot"])
    refused(ceph.name(fresh("none"), "gold"), words=["no such image or snapshot"])
    refused(base.name, "--disk-dir", tmp_path, words=["--disk-dir", "RBD clones"])
    refused(base.name, "--disk-pool", "a/b", words=["--disk-pool", "a/b"])
    refused(base.name, "--disk-pool", "nosuchpool", words=["nosuchpool", f"{prefix}1"])
    refused(base.local, "--disk-pool", "rbd", words=["--disk-pool", "RBD base"])
    refused("nbd://127.0.0.1:1/x", words=["nbd://", "local image file or an RBD snapshot"])
    refused('json:{"driver":"rbd","pool":"rbd","image":"x","snapshot":"gold"}',
            words=["rbd:POOL/IMAGE@SNAP"])
    refused(f"rbd:rbd{opts}", words=["rbd:POOL/IMAGE"])
    base.assert_unchanged()


def test_disk_pool_and_user(env, ceph, base):
    """--disk-pool puts the clones in another pool; the base's options (id=, conf=) are kept
    in every member's name."""
    pool = fresh("pool")
    tool("ceph", "-c", ceph.conf, "osd", "pool", "create", pool, "8")
    ceph.rbd("pool", "init", pool)
    prefix = fresh("pc")
    based = f"rbd:rbd/{base.image}@gold:id=admin:conf={ceph.conf}"
    create(env, prefix, 2, based, "--disk-pool", pool)
    assert images(ceph, pool) == {f"{prefix}1", f"{prefix}2"}
    for i in (1, 2):
        m = f"{prefix}{i}"
        disk = f"rbd:{pool}/{m}:id=admin:conf={ceph.conf}"
        assert env.definition(m)["disks"][0]["path"] == disk
        parent = rbd_json(ceph, "info", f"{pool}/{m}")["parent"]
        assert (parent["pool"], parent["image"], parent["snapshot"]) == \
            ("rbd", base.image, "gold")
        assert tool(env.ligero, "fs", "cat", disk,
                    "/etc/hostname").stdout == f"{m}\n"
    env("fleet", "reset", prefix, check=True, timeout=HANG)
    assert images(ceph, pool) == {f"{prefix}1", f"{prefix}2"}
    env("fleet", "delete", prefix, "--disks", check=True, timeout=HANG)
    assert images(ceph, pool) == set()
    base.assert_unchanged()


def test_real_debian_base(env, ceph, tmp_path, ligero):
    """The real Debian test disk (tests/guest/debian.sh) as the base of a 2-member class."""
    from guest_disks import build_guests, debugfs_cat, debugfs_exists, partitions
    from guest_disks import extract as gextract
    g = build_guests()
    image = fresh("debian")
    head, snap = ceph.name(image), ceph.name(image, "gold")
    tool(ligero, "img", "convert", "-O", "raw", g["disk"], head)
    tool(ligero, "img", "snapshot", "-c", "gold", head)
    tool("qemu-img", "compare", "-F", "raw", g["disk"], snap)
    prefix = fresh("deb")
    p = env("fleet", "create", prefix, "--count", "2", "--base", snap, "--memory", "600M",
            "--net", "bridge=br0", check=True, timeout=HANG)
    assert p.stderr == ""
    for i in (1, 2):
        m = f"{prefix}{i}"
        raw = tmp_path / f"{m}.raw"
        tool("qemu-img", "convert", "-O", "raw", ceph.name(m), raw)
        root = [q for q in partitions(raw)["partitions"] if q["size"] > 100000][-1]
        fs = gextract(raw, root, tmp_path / f"{m}.root")
        os.unlink(raw)
        assert debugfs_cat(fs, "/etc/hostname") == f"{m}\n"
        assert debugfs_cat(fs, "/etc/machine-id") == ""
        assert not debugfs_exists(fs, "/etc/ssh/ssh_host_ed25519_key")
        os.unlink(fs)
        assert tool(ligero, "fs", "cat", ceph.name(m), "/etc/hostname").stdout == f"{m}\n"
    tool("qemu-img", "compare", "-F", "raw", g["disk"], snap)
    env("fleet", "delete", prefix, "--disks", check=True, timeout=HANG)
    assert not {i for i in images(ceph) if i.startswith(prefix)}
    ceph.rbd("snap", "unprotect", f"{image}@gold")
    ceph.rbd("snap", "purge", image)
    ceph.rbd("rm", image)
