#!/bin/bash
# A throwaway single-node Ceph cluster for tests and benchmarks, from Debian's packages:
# one ceph-mon and one ceph-osd (memstore: objects live in the OSD's memory), 127.0.0.1 only
# (or CEPH_ADDR), cephx on, no systemd, no mgr (nothing ligero, qemu-img or `rbd
# create/clone/snap` does needs one). Everything lives in one directory; the daemons are
# stopped by pid.
#
#   tests/ceph/cluster.sh start DIR    start, print "CEPH_CONF=DIR/ceph.conf" when `rados put`
#                                     works and the pool `rbd` is initialised
#   tests/ceph/cluster.sh stop DIR     kill the daemons (by the pids in DIR) and remove DIR
#   tests/ceph/cluster.sh osd-kill DIR kill -9 the OSD;  osd-start DIR: start it again and wait
#
# Then: rbd -c DIR/ceph.conf ls; qemu-img info rbd:rbd/IMG:conf=DIR/ceph.conf;
#       ligero img info rbd:rbd/IMG:conf=DIR/ceph.conf (or CEPH_CONF=DIR/ceph.conf, which librados
#       reads as its default config file).
# Environment: CEPH_ADDR (the IPv4 address the daemons listen on, default 127.0.0.1; the RBD
# boot test gives the address of a tap device in a network namespace, so that the emulated host
# on the other side of it reaches the cluster), CEPH_OBJECTSTORE (memstore, the default; or
# bluestore on a sparse file in DIR, which survives a kill -9 of the OSD as a disk does:
# memstore keeps nothing across a crash), CEPH_MEMSTORE_BYTES (memstore's budget, default 6
# GiB), CEPH_WAIT (hang guard in seconds for each readiness wait, default 300).
set -euo pipefail

addr=${CEPH_ADDR:-127.0.0.1}
die() { echo "cluster.sh: $*" >&2; exit 1; }

free_port() {
	python3 -c 'import socket, sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$addr"
}

# Poll a command until it succeeds; the guard only catches a hang, it is not a pace.
wait_for() {
	local what=$1; shift
	local guard=$(( $(date +%s) + ${CEPH_WAIT:-300} ))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$guard" ] || die "$what: not ready after ${CEPH_WAIT:-300} s (logs in $D/log)"
		alive || die "$what: a daemon died (logs in $D/log)"
		sleep 0.2
	done
}

alive() {
	local f
	for f in "$D"/run/*.pid; do
		[ -e "$f" ] || continue
		kill -0 "$(cat "$f")" 2>/dev/null || return 1
	done
}

C() { ceph -c "$D/ceph.conf" --connect-timeout 30 "$@"; }

start_osd() {
	ceph-osd -c "$D/ceph.conf" -i 0 2>>"$D/log/osd.0.stderr"
	wait_for "osd.0 up" sh -c "ceph -c '$D/ceph.conf' --connect-timeout 30 osd dump | grep -q '^osd.0 up'"
}

ready() {
	echo ping >"$D/ping" &&
	rados -c "$D/ceph.conf" -p rbd put ligero-ready "$D/ping" &&
	rados -c "$D/ceph.conf" -p rbd ls | grep -qx ligero-ready &&
	rados -c "$D/ceph.conf" -p rbd rm ligero-ready
}

start() {
	mkdir -p "$D"/{mon,osd,run,log}
	[ ! -e "$D/ceph.conf" ] || die "$D already holds a cluster"
	local fsid port osd_uuid
	fsid=$(cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	port=$(free_port)
	store=${CEPH_OBJECTSTORE:-memstore}
	case $store in memstore | bluestore) ;; *) die "CEPH_OBJECTSTORE: memstore or bluestore" ;; esac
	cat >"$D/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v1:$addr:$port
public addr = $addr
ms bind ipv6 = false
ms bind msgr2 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $D/keyring
run dir = $D/run
pid file = $D/run/\$name.pid
mon data = $D/mon/\$name
osd data = $D/osd/\$name
osd objectstore = $store
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-6442450944}
bluestore block create = true
bluestore block size = 8589934592
bluestore fsck on mkfs = false
bluestore cache size = 134217728
osd memory target = 939524096
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# a throwaway cluster: no refusal to start because the host's disk is nearly full (the default
# refuses under 5% free: ENOSPC, and the mon exits without a word on stderr)
mon data avail crit = 0
mon max pg per osd = 1000
osd max object name len = 256
osd max object namespace len = 64
mon osd reporter subtree level = osd
# a client killed with -9 holds its watch (and an rbd image's exclusive lock) until this
# timeout; the next writer breaks the lock only then (default 30 s). The client pings its
# watches every 5 s (objecter tick), so 10 s still leaves a live client's watch alone.
osd client watch timeout = 10
[mon]
keyring = $D/mon/\$name/keyring
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
[osd]
keyring = $D/osd/\$name/keyring
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
[client]
admin socket =
log file = $D/log/client.log
CONF
	ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
		--cap mgr 'allow *' >/dev/null
	monmaptool --create --fsid "$fsid" --addv a "[v1:$addr:$port]" "$D/monmap" >/dev/null
	ceph-mon -c "$D/ceph.conf" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" \
		>"$D/log/mkfs-mon.log" 2>&1
	ceph-mon -c "$D/ceph.conf" -i a 2>>"$D/log/mon.a.stderr"
	wait_for "mon.a" C mon stat
	C osd new "$osd_uuid" 0 >/dev/null
	C auth get-or-create osd.0 mon 'allow profile osd' osd 'allow *' mgr 'allow profile osd' \
		-o "$D/osd/osd.0.keyring"
	mkdir -p "$D/osd/osd.0"
	ceph-osd -c "$D/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" \
		--keyring "$D/osd/osd.0.keyring" >"$D/log/mkfs-osd.log" 2>&1
	cp "$D/osd/osd.0.keyring" "$D/osd/osd.0/keyring"
	start_osd
	C osd pool create rbd 8 8 >/dev/null 2>&1
	rbd -c "$D/ceph.conf" pool init rbd
	wait_for "pool rbd" ready
	echo "CEPH_CONF=$D/ceph.conf"
}

stop() {
	local f pid
	for f in "$D"/run/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill -9 "$pid" 2>/dev/null || true
	done
	for f in "$D"/run/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	done
	rm -rf "$D"
}

osd_kill() {
	local pid
	pid=$(cat "$D/run/osd.0.pid")
	kill -9 "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -f "$D/run/osd.0.pid"
}

[ $# -eq 2 ] || die "usage: cluster.sh start|stop|osd-kill|osd-start DIR"
D=$(realpath -m "$2")
case $1 in
start) start ;;
stop) stop ;;
osd-kill) osd_kill ;;
osd-start) start_osd ;;
*) die "unknown command $1" ;;
esac
