"""A throwaway single-node Ceph cluster for the RBD tests (tests/ceph/cluster.sh does the work:
one ceph-mon and one ceph-osd on 127.0.0.1, cephx on, no mgr, no systemd, its own config,
keyring and data in a temporary directory; ready when `rados put` and `ls` work on the pool
`rbd`). Daemons are stopped by pid at the end of the session.

fixtures
    ceph          session cluster on memstore (fast; data lives in the OSD's memory)
    ceph_durable  module cluster on bluestore over a sparse file, for tests that kill -9 the OSD
                  (memstore keeps nothing across a crash, a disk does)

A cluster object has .conf (its ceph.conf), .env (CEPH_CONF set, for librados's default
search), .name(image) -> "rbd:rbd/IMAGE:conf=...", .rbd(*args) runs the rbd tool,
.osd_kill() and .osd_start().
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

HANG = 600  # a hang guard, never a pace: the cluster polls for readiness itself
SCRIPT = Path(__file__).resolve().parent.parent / "ceph" / "cluster.sh"
TOOLS = ("ceph-mon", "ceph-osd", "ceph", "rados", "rbd", "monmaptool", "ceph-authtool")


class Cluster:
    """netns/addr: the daemons run in that network namespace (`ip netns exec`), listening on
    addr (CEPH_ADDR); the rbd tool runs there too."""

    def __init__(self, path, store, netns=None, addr=None):
        self.dir = Path(path)
        self.store = store
        self.conf = self.dir / "ceph.conf"
        self.env = dict(os.environ, CEPH_CONF=str(self.conf), CEPH_OBJECTSTORE=store)
        if addr:
            self.env["CEPH_ADDR"] = addr
        self.prefix = ["ip", "netns", "exec", netns] if netns else []

    def _script(self, verb):
        p = subprocess.run(self.prefix + ["bash", str(SCRIPT), verb, str(self.dir)],
                           capture_output=True, text=True, timeout=HANG, env=self.env)
        if p.returncode != 0:
            raise AssertionError(f"cluster.sh {verb} failed: {p.stderr}")
        return p.stdout

    def start(self):
        self._script("start")

    def stop(self):
        self._script("stop")

    def osd_kill(self):
        self._script("osd-kill")

    def osd_start(self):
        self._script("osd-start")

    def name(self, image, snap=None):
        """The image's rbd: name with this cluster's conf file, as qemu-img takes it."""
        s = f"@{snap}" if snap else ""
        return f"rbd:rbd/{image}{s}:conf={self.conf}"

    def rbd(self, *args, check=True):
        p = subprocess.run(self.prefix + ["rbd", "-c", str(self.conf), *map(str, args)],
                           capture_output=True, text=True, timeout=HANG)
        if check and p.returncode != 0:
            raise AssertionError(f"rbd {' '.join(map(str, args))}: {p.stderr}")
        return p


def _cluster(store, netns=None, addr=None):
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs Ceph ({', '.join(missing)}: ceph-mon, ceph-osd, ceph-common)")
    tmp = tempfile.mkdtemp(prefix="ligero-ceph-")
    c = Cluster(Path(tmp) / "cluster", store, netns, addr)
    try:
        c.start()
    except BaseException:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return c, tmp


@pytest.fixture(scope="session")
def ceph():
    c, tmp = _cluster("memstore")
    yield c
    c.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ceph_durable():
    c, tmp = _cluster("bluestore")
    yield c
    c.stop()
    shutil.rmtree(tmp, ignore_errors=True)
