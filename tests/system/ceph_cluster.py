"""A throwaway single-node Ceph cluster for the RBD tests (tests/ceph/cluster.sh does the work:
one ceph-mon and one ceph-osd on 127.0.0.1, cephx on, no mgr, no systemd, its own config,
keyring and data in a temporary directory; ready when `rados put` and `ls` work on the pool
`rbd`). Daemons are stopped by pid at the end of the session.

fixtures
    ceph          session cluster on memstore (fast; data lives in the OSD's memory), one for
                  the whole run: conftest.py defines it for every module, and the pytest-xdist
                  workers share it (the first to need it starts it, the last to finish stops
                  it: a count of users in the run's base temporary directory, under a lock).
                  Tests name their images so that none collides (their pid and a sequence).
    ceph_durable  module cluster on bluestore over a sparse file, for tests that kill -9 the OSD
                  (memstore keeps nothing across a crash, a disk does)

A cluster object has .conf (its ceph.conf), .env (CEPH_CONF set, for librados's default
search), .name(image) -> "rbd:rbd/IMAGE:conf=...", .rbd(*args) runs the rbd tool,
.osd_kill() and .osd_start().
"""
import fcntl
import json
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


class _Shared:
    """The run's memstore cluster, shared by the test processes under one lock file."""

    def __init__(self, tmp_path_factory):
        base = tmp_path_factory.getbasetemp()
        share = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
        self.state = share / "ceph-memstore.json"
        self.lock = share / "ceph-memstore.lock"

    def _locked(self, change):
        with open(self.lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            state = json.loads(self.state.read_text()) if self.state.exists() else None
            state = change(state)
            if state is None:
                self.state.unlink(missing_ok=True)
            else:
                self.state.write_text(json.dumps(state))
            return state

    def get(self):
        def join(state):
            if state is None:
                _, tmp = _cluster("memstore")
                return {"tmp": tmp, "users": 1}
            return dict(state, users=state["users"] + 1)
        state = self._locked(join)
        return Cluster(Path(state["tmp"]) / "cluster", "memstore"), state["tmp"]

    def put(self):
        def leave(state):
            if state["users"] > 1:
                return dict(state, users=state["users"] - 1)
            Cluster(Path(state["tmp"]) / "cluster", "memstore").stop()
            shutil.rmtree(state["tmp"], ignore_errors=True)
            return None
        self._locked(leave)


@pytest.fixture(scope="session")
def ceph(tmp_path_factory):
    shared = _Shared(tmp_path_factory)
    c, _ = shared.get()
    yield c
    shared.put()


@pytest.fixture(scope="module")
def ceph_durable():
    c, tmp = _cluster("bluestore")
    yield c
    c.stop()
    shutil.rmtree(tmp, ignore_errors=True)
