#!/bin/sh
# NBD serving, ligero img serve against qemu-nbd, side by side in one run on the same qcow2 chain
# (generated once into bench/out/): a 2 GiB base with 768 MiB of data in 1 MiB runs, and an
# overlay with 4096 scattered 64 KiB clusters (256 MiB) over it. Both servers run read-only with
# 8 clients allowed (so both offer multi-conn), on Unix sockets, with their default cache modes
# (the images sit in the page cache: this measures the servers, not the disk).
# Workloads, each timed as wall time of the client:
#   nbdcopy     nbdcopy EXPORT null:               sequential, 4 connections, 64 requests each
#   convert     qemu-img convert EXPORT -> null-co  sequential, 1 connection, qemu-img's defaults
#   rand4k      fio randread 4 KiB, iodepth 32, 1 connection, 65536 reads over the whole disk
#   rand4k-x4   the same on 4 connections at once (numjobs=4), 16384 reads each
#   rand64k     fio randread 64 KiB, iodepth 16, 1 connection, 8192 reads
# Rounds alternate which server goes first, so load that drifts on a shared machine hits both
# alike. Prints per workload the median wall time of each server, the ratio of the medians
# (qemu-nbd / ligero: above 1 means ligero is faster), the round-by-round ratios and their
# median, and the median CPU time (user + system) each server used for the workload: wall
# times on a shared machine follow its load, CPU time much less. Needs qemu-utils,
# libnbd-bin (nbdcopy) and fio (its nbd engine).
# Usage: bench/nbd.sh [path/to/ligero]   (RUNS=5 by default)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
LIGERO=${1:-${LIGERO:-$here/../build/ligero}}
RUNS=${RUNS:-5}
out=$here/out
mkdir -p "$out"
base=$out/nbd-base.qcow2 top=$out/nbd-top.qcow2

if [ ! -f "$top" ]; then
	echo "generating $base and $top (once)..." >&2
	rm -f "$base" "$top"
	qemu-img create -q -f qcow2 "$base" 2G
	cmds=$(python3 -c '
print(" ".join(f"-c \"write -P {i % 250 + 1} {2 * i}M 1M\"" for i in range(768)))')
	eval qemu-io "$cmds" "$base" >/dev/null
	qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$top"
	cmds=$(python3 -c '
import random
r = random.Random(7)
print(" ".join(f"-c \"write -P {c % 200 + 7} {c * 65536} 64k\""
               for c in sorted(r.sample(range(32768), 4096))))')
	eval qemu-io "$cmds" "$top" >/dev/null
fi
cat "$base" "$top" >/dev/null # into the page cache for both servers

echo "cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)  runs: $RUNS (median)"
echo "ligero: $LIGERO   $(qemu-nbd --version | head -1)   $(nbdcopy --version | head -1)"

tmp=$(mktemp -d)
lpid= qpid=
cleanup() {
	[ -n "$lpid" ] && kill "$lpid" 2>/dev/null
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# wait_for FILE PID: until FILE exists (the server is listening), or the server died
wait_for() {
	i=0
	while [ ! -e "$1" ]; do
		kill -0 "$2" 2>/dev/null || { echo "server $2 died" >&2; exit 1; }
		i=$((i + 1))
		[ $i -lt 6000 ] || { echo "no $1 after 120 s" >&2; exit 1; }
		sleep 0.02
	done
}

"$LIGERO" img serve -r --shared 8 --persistent --socket "$tmp/l.sock" \
	--pid-file "$tmp/l.pid" "$top" &
lpid=$!
qemu-nbd -r -t -e 8 -f qcow2 -k "$tmp/q.sock" --pid-file "$tmp/q.pid" "$top" &
qpid=$!
wait_for "$tmp/l.pid" "$lpid"
wait_for "$tmp/q.pid" "$qpid"
wait_for "$tmp/q.sock" "$qpid"

uri() { echo "nbd+unix:///?socket=$tmp/$1.sock"; }
size=$(qemu-img info --output=json "$(uri l)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')

# The two exports must hold the same bytes before anything is timed.
qemu-img compare -q "$(uri l)" "$(uri q)" || { echo "the exports differ!" >&2; exit 1; }

fio_run() { # URI BS DEPTH IOS JOBS
	fio --name=r --ioengine=nbd --uri="$1" --rw=randread --bs="$2" --iodepth="$3" \
		--number_ios="$4" --numjobs="$5" --size="$size" --randrepeat=1 --norandommap \
		--group_reporting >/dev/null 2>&1
}

# work NAME URI: run one workload once against one export
work() {
	case $1 in
	nbdcopy) nbdcopy "$2" null: ;;
	convert) qemu-img convert -f raw -n "$2" --target-image-opts "driver=null-co,size=$size" ;;
	rand4k) fio_run "$2" 4k 32 65536 1 ;;
	rand4k-x4) fio_run "$2" 4k 8 16384 4 ;;
	rand64k) fio_run "$2" 64k 16 8192 1 ;;
	esac
}

# CPU time (user + system, in clock ticks) a process has used so far
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

timed() { # LOG NAME URI SERVER-PID: append "wall-seconds server-cpu-seconds"
	c0=$(cpu "$4")
	s=$(date +%s.%N)
	work "$2" "$3"
	e=$(date +%s.%N)
	c1=$(cpu "$4")
	echo "$s $e $c0 $c1 $(getconf CLK_TCK)" |
		awk '{printf "%.4f %.3f\n", $2 - $1, ($4 - $3) / $5}' >>"$1"
}

for w in nbdcopy convert rand4k rand4k-x4 rand64k; do
	i=0
	while [ $i -lt "$RUNS" ]; do
		if [ $((i % 2)) -eq 0 ]; then order="l q"; else order="q l"; fi
		for t in $order; do
			if [ $t = l ]; then pid=$lpid; else pid=$qpid; fi
			timed "$tmp/$w.$t" "$w" "$(uri $t)" "$pid"
		done
		i=$((i + 1))
	done
	python3 - "$tmp/$w" "$w" <<'PY'
import sys
base, name = sys.argv[1], sys.argv[2]
rows = {t: [tuple(map(float, x.split())) for x in open(f"{base}.{t}")] for t in "lq"}
l, q = ([r[0] for r in rows[t]] for t in "lq")
lc, qc = ([r[1] for r in rows[t]] for t in "lq")
med = lambda v: sorted(v)[len(v) // 2]
per = sorted(b / a for a, b in zip(l, q))
print(f"{name:<10} qemu-nbd {med(q):6.3f}s  ligero {med(l):6.3f}s | qemu-nbd/ligero "
      f"{med(q) / med(l):4.2f}x | rounds: median {med(per):4.2f}x "
      f"({' '.join(f'{r:.2f}' for r in per)}) | server cpu {med(qc):5.2f}s vs "
      f"{med(lc):5.2f}s ({med(qc) / max(med(lc), 0.001):4.2f}x less)")
PY
done
kill "$lpid" "$qpid"
wait "$lpid" || { echo "ligero exited non-zero" >&2; exit 1; }
lpid= qpid=
