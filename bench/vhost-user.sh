#!/bin/sh
# vhost-user-blk serving, ligero img serve --vhost-user against qemu-storage-daemon's
# vhost-user-blk export, on the same qcow2 chain (generated once into bench/out/: a 1 GiB base
# with 384 MiB of data in 1 MiB runs, an overlay with 2048 scattered 64 KiB clusters over it),
# both read-only with their default cache modes (the images sit in the page cache: this
# measures the back-ends, not the disk). The front-end is the same QEMU for both: TCG (no KVM
# needed), one vCPU (-smp 1,maxcpus=2: see below), 256 MiB of guest RAM in a shared memfd,
# vhost-user-blk-pci with QEMU's defaults (one queue of 128), the busybox test guest
# (tests/guest/) with bench/vbench.c built static and added to its initrd. In the guest, with
# O_DIRECT:
#   seqread   1 MiB reads over the whole disk                         -> MB/s
#   rand-qd1  4 KiB random reads over the whole disk, 1 thread, 10 s  -> IOPS
#   rand-qd8  the same with 8 threads (8 requests in flight)          -> IOPS
# Under TCG the guest's own CPU is the first bottleneck, so the ratios show how much of the
# request's cost the back-end adds. Rounds alternate which back-end goes first, so load that
# drifts on a shared machine hits both alike. Prints per workload the median of each back-end,
# the ratio of the medians (ligero / qemu-storage-daemon: above 1 means ligero is faster), the
# round-by-round ratios and their median, the median CPU time (user + system) each back-end
# process used in a round (boot included), and the interrupts the guest took per request (its
# own count, /proc/interrupts: a back-end that completes each request sooner leaves the guest
# fewer completions to gather per interrupt, and under TCG each interrupt costs the guest's
# vCPU, the bottleneck).
# maxcpus=2: with at most one vCPU QEMU's TCG leaves out the guest's memory barriers (no other
# vCPU could see the difference), but a vhost-user back-end is another process on another CPU:
# the guest's store of used_event and its next load of used->idx can then pass each other, the
# back-end misses the interrupt the guest waits for, and the guest waits forever (both back-ends
# hung that way at queue depth 8 on 2026-12-06; docs/ligero-serve.md). A second possible vCPU
# makes TCG emit them; the guest still runs one.
# Kept apart from bench/remote.sh (NBD and RBD) so the two can change without conflicts.
# Usage: bench/vhost-user.sh [path/to/ligero]
#   env: ROUNDS (5); WORKLOADS (some of "seqread rand-qd1 rand-qd8", the default all three);
#        FRONT_SYSCALLS=1: QEMU (the front-end) under `perf stat`, and its write() calls per
#        request printed: under TCG each kick of the guest is one eventfd write of QEMU's
#        (meant with one workload: the count covers the whole boot);
#        LIGERO_ARGS: more options for ligero's `img serve` (e.g. "--coalesce-us 50");
#        AA=1: an A/A control, qemu-storage-daemon in both columns (the "ligero" boots too):
#        the ratios and the rounds' spread it prints are what this machine's noise alone gives;
#        BOOT_TIMEOUT (300 s): a boot that has not ended by then is stopped and its round left
#        out, with a line saying which back-end it was (a hang guard: a boot with all three
#        workloads takes well under a minute here);
#        PIN=1: the front-end QEMU on the first CPU and the back-end on the second (taskset),
#        both back-ends alike, so that neither's threads are woken onto the CPU the guest's
#        vCPU runs on (the host's scheduler may put a woken back-end thread there, and under
#        TCG the guest's vCPU is the bottleneck); needs two CPUs or more
#        FRONT=kvm: every round inside an emulated host of its own (tests/vmhost, 2 CPUs,
#        nested paging off as in bench/virtio.sh), where the front-end QEMU runs its guest with
#        KVM (-accel kvm -cpu host, -smp 1) instead of TCG: the guest's own instructions then
#        cost less against the back-end's, whose process runs in the emulated host too. The
#        images are copied into the emulated host's scratch disk (the overlay's backing name
#        made relative); the figures are again only ratios. Default FRONT=tcg, as above.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
LIGERO=${1:-${LIGERO:-$root/build/ligero}}
ROUNDS=${ROUNDS:-5}
WORKLOADS=${WORKLOADS:-seqread rand-qd1 rand-qd8}
FRONT_SYSCALLS=${FRONT_SYSCALLS:-}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
LIGERO_ARGS=${LIGERO_ARGS:-}
PIN=${PIN:-}
AA=${AA:-}
FRONT=${FRONT:-tcg}
case $FRONT in tcg | kvm) ;; *) echo "bench: FRONT: tcg or kvm, not '$FRONT'" >&2; exit 2 ;; esac
# VUB_L1 (set only by this script, for its own run inside an emulated host): one round, round
# number VUB_L1, on the images under /work/disks, each back-end's row printed as "VUB-ROW ..."
VUB_L1=${VUB_L1:-}
front_pin= back_pin=
if [ -n "$PIN" ]; then
	[ "$(nproc)" -ge 2 ] || { echo "bench: PIN=1 needs two CPUs ($(nproc) here)" >&2; exit 2; }
	front_pin="taskset -c 0" back_pin="taskset -c 1"
fi
build=${LIGERO_BUILD:-$root/build}
out=$here/out
base=$out/vub-base.qcow2 top=$out/vub-top.qcow2
perf=
[ -z "$FRONT_SYSCALLS" ] || perf=perf
tools="qemu-system-x86_64 qemu-storage-daemon qemu-img qemu-io busybox gcc python3 $perf"
if [ -n "$VUB_L1" ]; then
	base=/work/disks/vub-base.qcow2 top=/work/disks/vub-top.qcow2
	tools="qemu-system-x86_64 qemu-storage-daemon"
fi
for t in $tools; do
	command -v $t >/dev/null || { echo "bench: needs $t" >&2; exit 1; }
done
[ -x "$LIGERO" ] || { echo "bench: build ligero first ($LIGERO)" >&2; exit 1; }

if [ -z "$VUB_L1" ] && [ ! -f "$top" ]; then
	mkdir -p "$out"
	echo "generating $base and $top (once)..." >&2
	rm -f "$base" "$top"
	qemu-img create -q -f qcow2 "$base" 1G
	cmds=$(python3 -c '
print(" ".join(f"-c \"write -P {i % 250 + 1} {(8 * i) // 3}M 1M\"" for i in range(384)))')
	eval qemu-io "$cmds" "$base" >/dev/null
	qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$top"
	cmds=$(python3 -c '
import random
r = random.Random(7)
print(" ".join(f"-c \"write -P {c % 200 + 7} {c * 65536} 64k\""
               for c in sorted(r.sample(range(16384), 2048))))')
	eval qemu-io "$cmds" "$top" >/dev/null
fi

tmp=$(mktemp -d)
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if [ -n "$VUB_L1" ]; then
	kernel=/work/guest/vmlinuz initrd=/work/initrd.img
else
	guest=$(LIGERO_BUILD=$build sh "$root/tests/guest/build.sh" "$build/guest")
	gcc -O2 -static -pthread -o "$tmp/vb" "$here/vbench.c"
	sh "$root/tests/guest/addbins.sh" "$tmp/extra.cpio" "$tmp/vb"
	# the kernel reads an archive that follows a compressed one only at a 4-byte boundary
	size=$(stat -c %s "$guest/initrd.img")
	{ cat "$guest/initrd.img"; head -c $(((4 - size % 4) % 4)) /dev/zero; cat "$tmp/extra.cpio"; } \
		>"$tmp/initrd.img"
	kernel=$guest/vmlinuz initrd=$tmp/initrd.img
fi

if [ -z "$VUB_L1" ]; then
	echo "cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)  rounds: $ROUNDS (median)  front-end: $FRONT${AA:+  A/A: qemu-storage-daemon in both columns}${PIN:+  pinned: front-end CPU 0, back-end CPU 1}"
	echo "ligero: $LIGERO $LIGERO_ARGS   $(qemu-storage-daemon --version | head -1)   $(qemu-system-x86_64 --version | head -1)"
fi

# wait_for FILE PID: until FILE exists (the back-end is listening), or it died
wait_for() {
	tries=0
	while [ ! -e "$1" ]; do
		kill -0 "$2" 2>/dev/null || { echo "back-end $2 died" >&2; exit 1; }
		tries=$((tries + 1))
		[ $tries -lt 6000 ] || { echo "no $1 after 120 s" >&2; exit 1; }
		sleep 0.02
	done
}

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK 2>/dev/null || echo 100) # busybox, in the emulated host, has no getconf
# the front-end's accelerator: TCG with two possible vCPUs (the header), or the emulated
# host's KVM
accel="-accel tcg -smp 1,maxcpus=2"
# (and no default NIC: the emulated host carries no option ROMs; the guest uses none)
[ "$FRONT" = tcg ] || accel="-accel kvm -cpu host -smp 1 -nic none"

# irq TAG: the guest's interrupt count of the disk's request queue so far, as TAG_IRQS=N
# (no double quote: the kernel's command line carries the commands)
irq='irq() { echo $1_IRQS=$(awk '\''/virtio0-req/ {print $2}'\'' /proc/interrupts); };'
run="$irq irq START;"
for w in $WORKLOADS; do
	case $w in
	seqread) run="$run vb seqread /dev/vda 1024; irq SEQ;" ;;
	rand-qd1) run="$run vb randread /dev/vda 1024 10 1 | sed s/^/QD1_/; irq QD1;" ;;
	rand-qd8) run="$run vb randread /dev/vda 1024 10 8 | sed s/^/QD8_/; irq QD8;" ;;
	*) echo "bench: WORKLOADS: no workload '$w' (seqread, rand-qd1, rand-qd8)" >&2; exit 2 ;;
	esac
done

# one NAME ROUND: a back-end up, one boot, its figures into $tmp/NAME, the back-end down
one() {
	rm -f "$tmp/s.sock" "$tmp/s.pid"
	cat "$base" "$top" >/dev/null # into the page cache, for both alike
	if [ "$1" = ligero ] && [ -z "$AA" ]; then
		$back_pin "$LIGERO" img serve -r --vhost-user "$tmp/s.sock" --pid-file "$tmp/s.pid" $LIGERO_ARGS "$top" \
			2>"$tmp/serve.log" &
	else
		$back_pin qemu-storage-daemon --pidfile "$tmp/s.pid" \
			--blockdev "driver=qcow2,node-name=top,read-only=on,file.driver=file,file.filename=$top" \
			--export "type=vhost-user-blk,id=e,node-name=top,addr.type=unix,addr.path=$tmp/s.sock" \
			2>"$tmp/serve.log" &
	fi
	spid=$!
	wait_for "$tmp/s.pid" "$spid"
	wait_for "$tmp/s.sock" "$spid"
	rm -f "$tmp/perf"
	timeout "$BOOT_TIMEOUT" ${perf:+perf stat -x, -o "$tmp/perf" -e syscalls:sys_enter_write} $front_pin qemu-system-x86_64 -M pc $accel -m 256M -nographic -no-reboot \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 ligero.run=\"$run\"" \
		-object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
		-chardev socket,id=c,path="$tmp/s.sock" -device vhost-user-blk-pci,chardev=c \
		</dev/null >"$tmp/guest.out" 2>&1 || true
	c=$(cpu "$spid")
	kill "$spid"
	wait "$spid" || { echo "$1 exited non-zero:" >&2; cat "$tmp/serve.log" >&2; exit 1; }
	spid=
	tr -d '\r' <"$tmp/guest.out" >"$tmp/guest.txt"
	if ! grep -q 'LIGERO-RC=0' "$tmp/guest.txt"; then
		# a hung boot: the round is left out (both back-ends' rows of it); anything else
		# that failed stops the bench
		if grep -q '^LIGERO-MARKER' "$tmp/guest.txt" && ! grep -q '^LIGERO-RC=' "$tmp/guest.txt"
		then
			echo "round $2, $1: the guest had not finished after $BOOT_TIMEOUT s (its last" \
				"lines: $(tail -n 2 "$tmp/guest.txt" | tr '\n' ' ')); round left out" >&2
			echo lost >>"$tmp/$1"
			return
		fi
		echo "round $2, $1: the guest failed:" >&2; tail -20 "$tmp/guest.out" >&2; exit 1
	fi
	w=-
	[ -z "$perf" ] || w=$(awk -F, '/sys_enter_write/ {print $1}' "$tmp/perf")
	# one line per round: the three figures, CPU seconds, the interrupts during each workload
	# and QEMU's writes ("-" for what was not measured)
	awk -v c="$c" -v hz="$hz" -v w="$w" -F= '
		BEGIN {s = a = b = is = ia = ib = "-"}
		/^SEQREAD_MBS=/ {s = $2} /^QD1_RANDREAD_IOPS=/ {a = $2} /^QD8_RANDREAD_IOPS=/ {b = $2}
		/^START_IRQS=/ {p = $2} /^SEQ_IRQS=/ {is = $2 - p; p = $2}
		/^QD1_IRQS=/ {ia = $2 - p; p = $2} /^QD8_IRQS=/ {ib = $2 - p; p = $2}
		END {printf "%s %s %s %.2f %s %s %s %s\n", s, a, b, c / hz, is, ia, ib, w}' "$tmp/guest.txt" >>"$tmp/$1"
}

: >"$tmp/ligero"
: >"$tmp/qsd"
# a_round R: round R's two boots, the order alternating with R's parity, one row each (or
# "lost" for both) appended to $tmp/ligero and $tmp/qsd
a_round() {
	if [ $(($1 % 2)) -eq 0 ]; then order="ligero qsd"; else order="qsd ligero"; fi
	before=$(wc -l <"$tmp/ligero")
	for b in $order; do
		one $b $1
		# the other back-end's boot of a lost round would only be thrown away
		if [ "$(tail -n 1 "$tmp/$b")" = lost ]; then
			for o in $order; do [ "$(wc -l <"$tmp/$o")" -gt "$before" ] || echo lost >>"$tmp/$o"; done
			break
		fi
	done
}
if [ -n "$VUB_L1" ]; then
	a_round "$VUB_L1"
	for b in ligero qsd; do sed "s/^/VUB-ROW $b /" "$tmp/$b"; done
	exit 0
fi

# l1_round R: round R inside an emulated host of its own (FRONT=kvm)
l1_round() {
	cat >"$tmp/l1.sh" <<EOF
cd /work
VUB_L1=$1 WORKLOADS="$WORKLOADS" BOOT_TIMEOUT=$BOOT_TIMEOUT LIGERO_ARGS="$LIGERO_ARGS" PIN=$PIN AA=$AA \\
	FRONT=kvm sh /work/vhost-user.sh /work/ligero
EOF
	rc=0
	o=$(VMHOST_NPT=${VMHOST_NPT:-0} LIGERO=$LIGERO sh "$root/tests/vmhost/vmhost.sh" \
		--timeout $((2 * BOOT_TIMEOUT + 900)) --mem 3G \
		--bin "$(command -v qemu-system-x86_64)" --bin "$(command -v qemu-storage-daemon)" \
		--tree /usr/share/qemu --tree /usr/share/seabios \
		--file "$here/vhost-user.sh:vhost-user.sh" --file "$initrd:initrd.img" \
		--disk "$base:vub-base.qcow2" --disk "$tmp/l1-top.qcow2:vub-top.qcow2" "$tmp/l1.sh") ||
		rc=$?
	echo "$o" | grep -v '^VUB-ROW ' >&2 || true
	for b in ligero qsd; do
		echo "$o" | sed -n "s/^VUB-ROW $b //p" >"$tmp/row"
		if [ "$rc" -ne 0 ] || [ "$(wc -l <"$tmp/row")" -ne 1 ]; then
			echo lost >>"$tmp/$b"
		else
			cat "$tmp/row" >>"$tmp/$b"
		fi
	done
	[ "$rc" -eq 0 ] || echo "round $1: the emulated host failed (status $rc); round left out" >&2
}
if [ "$FRONT" = kvm ]; then
	# the overlay as the emulated host sees it: its base beside it, under a relative name
	cp "$top" "$tmp/l1-top.qcow2"
	qemu-img rebase -u -f qcow2 -b vub-base.qcow2 -F qcow2 "$tmp/l1-top.qcow2"
fi
round=0
while [ $round -lt "$ROUNDS" ]; do
	if [ "$FRONT" = kvm ]; then l1_round $round; else a_round $round; fi
	round=$((round + 1))
done

python3 - "$tmp" <<'PY'
import sys
d = sys.argv[1]
raw = {b: [x.split() for x in open(f"{d}/{b}")] for b in ("ligero", "qsd")}
# the rounds where neither boot was lost
keep = [k for k, (a, b) in enumerate(zip(raw["ligero"], raw["qsd"])) if a != ["lost"] != b]
if len(keep) < len(raw["ligero"]):
    print(f"rounds lost (a boot hung): {len(raw['ligero']) - len(keep)}; "
          f"figures from {len(keep)} rounds")
if not keep:
    sys.exit("bench: every round was lost")
rows = {b: [[None if v == "-" else float(v) for v in raw[b][k]] for k in keep]
        for b in ("ligero", "qsd")}
med = lambda v: sorted(v)[len(v) // 2]
names = ("seqread", "rand-qd1", "rand-qd8")
done = [k for k in range(3) if rows["ligero"][0][k] is not None]
for k, (name, unit) in enumerate(zip(names, ("MB/s", "IOPS", "IOPS"))):
    if k not in done:
        continue
    l = [r[k] for r in rows["ligero"]]
    q = [r[k] for r in rows["qsd"]]
    per = sorted(a / b for a, b in zip(l, q))
    print(f"{name:<9} qsd {med(q):8.1f} {unit}  ligero {med(l):8.1f} {unit} | ligero/qsd "
          f"{med(l) / med(q):4.2f}x | rounds: median {med(per):4.2f}x "
          f"({' '.join(f'{r:.2f}' for r in per)})")
lc = [r[3] for r in rows["ligero"]]
qc = [r[3] for r in rows["qsd"]]
print(f"back-end cpu per round (boot and the workloads): qsd {med(qc):5.2f}s  "
      f"ligero {med(lc):5.2f}s")
# requests per round: seqread 1 MiB each over 1 GiB; the random ones IOPS x 10 s
reqs = [lambda r: 1024, lambda r: r[1] * 10, lambda r: r[2] * 10]
per_req = lambda b, k, f: med([f(r) / reqs[k](r) for r in rows[b]])
print("guest interrupts per request (median): " + "  ".join(
    f"{names[k]} qsd {per_req('qsd', k, lambda r: r[4 + k]):.2f} "
    f"ligero {per_req('ligero', k, lambda r: r[4 + k]):.2f}" for k in done))
if rows["ligero"][0][7] is not None:
    total = lambda r: sum(reqs[k](r) for k in done)
    print("QEMU write() calls per request, whole boot (median): " + "  ".join(
        f"{b} {med([r[7] / total(r) for r in rows[b]]):.2f}" for b in ("qsd", "ligero")))
PY
