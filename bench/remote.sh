#!/bin/bash
# Remote images: RBD on a throwaway single-node Ceph cluster (tests/ceph/cluster.sh: memstore,
# 127.0.0.1), ligero against qemu-img (with qemu-block-extra's rbd driver) and the rbd tool,
# then the NBD figures (bench/nbd.sh, ligero img serve against qemu-nbd) unless REMOTE_NBD=0.
# Workloads, each timed as the wall time of the command:
#   qcow2->rbd   img convert -O raw SRC rbd:rbd/IMG      a 1 GiB qcow2 with 512 MiB of data
#   rbd->qcow2   img convert -O qcow2 rbd:rbd/IMG OUT    that image back to a local file
#   clone x20    20 linked clones of one protected snapshot: one `ligero img create -b
#                rbd:rbd/base@gold rbd:rbd/cN` per clone, against `rbd clone` in a loop
# RBD_DELAY=SECONDS makes the cluster as far away as one across a network: librados delays each
# message from the OSD by a random time up to SECONDS (Ceph's ms_inject_delay_* options, given
# to both tools on the names they convert; 0.01: 5 ms on average).
# Rounds alternate which tool goes first, so load that drifts on a shared machine hits both
# alike. Prints per workload the median wall time of each tool and the ratio of the medians
# (peer / ligero: above 1 means ligero is faster).
# Usage: bench/remote.sh [path/to/ligero]   (RUNS=5 by default)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
LIGERO=${1:-${LIGERO:-$here/../build/ligero}}
RUNS=${RUNS:-5}
out=$here/out
mkdir -p "$out"
. "$here/remote-src.sh"

tmp=$(mktemp -d)
cluster=$tmp/cluster
cleanup() {
	"$here/../tests/ceph/cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
"$here/../tests/ceph/cluster.sh" start "$cluster" >/dev/null
export CEPH_CONF=$cluster/ceph.conf

delay=
if [ -n "${RBD_DELAY:-}" ]; then
	delay=":ms_inject_delay_type=osd:ms_inject_delay_max=$RBD_DELAY"
	delay="$delay:ms_inject_delay_probability=1"
	echo "OSD replies delayed by up to $RBD_DELAY s"
fi
echo "cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)  runs: $RUNS (median)"
echo "ligero: $LIGERO   $(qemu-img --version | head -1)   $(rbd --version | cut -d' ' -f1-3)"

# secs CMD...: wall seconds of one run (fails the bench if the command fails)
secs() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

run_pair() { # NAME LIGERO-FUNC PEER-FUNC
	local name=$1 lf=$2 pf=$3 i
	: >"$tmp/l" && : >"$tmp/p"
	for i in $(seq "$RUNS"); do
		if [ $((i % 2)) = 1 ]; then
			$lf "$i" >>"$tmp/l"
			$pf "$i" >>"$tmp/p"
		else
			$pf "$i" >>"$tmp/p"
			$lf "$i" >>"$tmp/l"
		fi
	done
	local l p
	l=$(median <"$tmp/l") p=$(median <"$tmp/p")
	printf "%-12s ligero %7.3f s   peer %7.3f s   ratio %5.2fx\n" "$name" "$l" "$p" \
		"$(echo "$p / $l" | bc -l)"
}

# qcow2 -> rbd
l_to() { secs "$LIGERO" img convert -O raw "$src" "rbd:rbd/l$1$delay"; rbd rm --no-progress "rbd/l$1"; }
q_to() { secs qemu-img convert -O raw "$src" "rbd:rbd/q$1$delay"; rbd rm --no-progress "rbd/q$1"; }
# rbd -> qcow2 (one image on the cluster, made once)
"$LIGERO" img convert -O raw "$src" rbd:rbd/from
l_from() { rm -f "$tmp/o.qcow2"; secs "$LIGERO" img convert -O qcow2 "rbd:rbd/from$delay" "$tmp/o.qcow2"; }
q_from() { rm -f "$tmp/o.qcow2"; secs qemu-img convert -O qcow2 "rbd:rbd/from$delay" "$tmp/o.qcow2"; }
# 20 clones of one protected snapshot
rbd create --size 1G rbd/base && rbd snap create --no-progress rbd/base@gold
rbd snap protect rbd/base@gold
clones() { # TOOL ROUND
	local i
	for i in $(seq 20); do
		if [ "$1" = ligero ]; then
			"$LIGERO" img create -q -b rbd:rbd/base@gold "rbd:rbd/c$1$2x$i"
		else
			rbd clone rbd/base@gold "rbd/c$1$2x$i"
		fi
	done
}
drop_clones() { local i; for i in $(seq 20); do rbd rm --no-progress "rbd/c$1$2x$i"; done; }
l_clone() { secs clones ligero "$1"; drop_clones ligero "$1" >/dev/null; }
r_clone() { secs clones rbd "$1"; drop_clones rbd "$1" >/dev/null; }

run_pair "qcow2->rbd" l_to q_to
run_pair "rbd->qcow2" l_from q_from
run_pair "clone x20" l_clone r_clone

if [ "${REMOTE_NBD:-1}" != 0 ]; then
	echo "--- NBD (bench/nbd.sh) ---"
	RUNS=$RUNS "$here/nbd.sh" "$LIGERO"
fi
