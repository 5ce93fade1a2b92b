#!/bin/sh
# VM lifecycle benchmark: `ligero vm start` / `ligero vm stop` against QEMU started the way a
# supervisor without libvirt starts it (`-daemonize -qmp unix:...`, stopped with QMP
# system_powerdown), in one emulated-host boot, where KVM is real (tests/vmhost/). libvirt
# cannot be installed usefully in the emulated host (busybox, no systemd, no D-Bus), so QEMU
# with its QMP socket is the peer. Both run the test guest (tests/guest/: a Debian cloud kernel
# and a busybox initramfs whose acpid powers off on the power button), 256 MiB, one vCPU.
# For each VMM, RUNS runs (default 5); medians of:
#   start  seconds from the start command to QMP saying the guest runs (ligero: `vm start`
#          returns then; QEMU: `-daemonize` returns, then the first query-status answer)
#   stop   seconds from the stop command to the VMM process gone (ligero: `vm stop`, which
#          presses the power button and waits for the process; QEMU: QMP system_powerdown,
#          then its pid polled every 10 ms until it is gone)
#   gone   seconds from the stop command to the VMM's process gone, polled every 10 ms for both
#          (for QEMU the same as stop; for ligero, stop less gone is `vm stop`'s own time after
#          the VMM exited)
#   rss    the VMM's RSS in KiB once the guest is at its shell, without the guest-RAM mapping
#          (mappings at least as large as guest RAM are left out, as in bench/boot.sh)
# Each stop waits until the guest's init has printed LIGERO-RC (acpid is up by then: a press
# before that would be lost, as on a PC). Rounds alternate which VMM goes first.
# Emulation slows everything: the ratios (ligero / QEMU) are the figure.
# Usage: bench/lifecycle.sh [RUNS]     env: LIGERO_BUILD (default build), LIGERO (the binary),
#        LIGERO_VMM (another ligero whose `run` is the VMM, e.g. a branch's build; default the
#        same binary), VMHOST_LOCK (see tests/vmhost/vmhost.sh)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${LIGERO_BUILD:-$repo/build}
runs=${1:-5}
qmpcmd="$(cd "$build" && pwd)/tests/tools/qmpcmd"
[ -x "$qmpcmd" ] || { echo "bench: no $qmpcmd (build first)" >&2; exit 1; }
vmm=${LIGERO_VMM:-}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<INNER
runs=$runs
Q=$qmpcmd
VMM=$vmm
INNER
cat >>"$tmp" <<'INNER'
mem=256
L=/work/ligero
K=/work/guest/vmlinuz
I=/work/guest/initrd.img
export LIGERO_STATE_DIR=/tmp/st LIGERO_RUNTIME_DIR=/tmp/rt
[ -z "$VMM" ] || export LIGERO_VM_EXEC=$VMM
CL=$LIGERO_STATE_DIR/log/b.console.log
up() { cut -d' ' -f1 /proc/uptime; }
sub() { awk -v a=$1 -v b=$2 'BEGIN {printf "%.3f", b - a}'; }
# RSS of pid in KiB, leaving out mappings at least as large as guest RAM
rss() {
	awk -v min=$((mem * 1024)) '/^Size:/ {size=$2} /^Rss:/ {if (size < min) sum+=$2}
		END {print sum}' /proc/$1/smaps
}
# (grep -c prints 0 and fails when nothing matches: "|| echo 0" would make that "0 0")
rcs() { c=$(grep -c LIGERO-RC= "$1" 2>/dev/null); echo "${c:-0}"; }
# wait (hang guard: 180 s of L1's clock) until file $1 has more than $2 LIGERO-RC lines
ready() {
	end=$(awk -v a="$(up)" 'BEGIN { print a + 180 }')
	while [ "$(rcs "$1")" -le "$2" ]; do
		awk -v a="$(up)" -v b="$end" 'BEGIN { exit !(a < b) }' || return 1
		sleep 0.05
	done
}
alive() { [ -e /proc/$1 ] && ! grep -q '^State:.*Z' /proc/$1/status 2>/dev/null; }
# gone PID SECONDS: poll (every 10 ms) until PID has exited; 1 if it is still there after
# SECONDS of L1's clock (a hang guard: a poll costs more than 10 ms under emulation, so it is
# not counted in polls)
gone() {
	end=$(awk -v a="$(up)" -v b="$2" 'BEGIN { print a + b }')
	while alive $1; do
		awk -v a="$(up)" -v b="$end" 'BEGIN { exit !(a < b) }' || return 1
		sleep 0.01
	done
}
$L vm create b --kernel $K --initrd $I --memory ${mem}M --cpus 1 \
	--cmdline 'console=ttyS0 quiet ligero.exit=shell' >/dev/null
one_ligero() {
	n0=$(rcs $CL)
	t0=$(up)
	$L vm start b >/dev/null || { echo "# ligero: start failed"; return; }
	t1=$(up)
	if ! ready $CL $n0; then # the emulated host's early-boot loss: this run is left out
		echo "# ligero: the guest did not reach its shell; run left out"
		$L vm kill b >/dev/null
		return
	fi
	pid=$(cat /tmp/rt/b.pid)
	r=$(rss $pid)
	t2=$(up)
	$L vm stop b --timeout 120 >/tmp/stop.out &
	sp=$!
	# the VMM's process gone, polled as QEMU's is below; then `vm stop` returning
	gone $pid 180 || echo "# ligero: the VMM still runs 180 s after the stop"
	tg=$(up)
	wait $sp || echo "# ligero: stop failed"
	t3=$(up)
	grep -q poweroff /tmp/stop.out || echo "# ligero: $(cat /tmp/stop.out)"
	echo "RUN ligero $(sub $t0 $t1) $(sub $t2 $t3) $r $(sub $t2 $tg)"
}
one_qemu() {
	rm -f /tmp/q.sock /tmp/q.pid
	: >>/tmp/qcon
	n0=$(rcs /tmp/qcon)
	t0=$(up)
	qemu-system-x86_64 -M q35 -accel kvm -cpu host -m $mem -smp 1 -nodefaults \
		-no-user-config -display none -serial file:/tmp/qcon.new -no-reboot \
		-kernel $K -initrd $I -append "console=ttyS0 quiet panic=-1 ligero.exit=shell" \
		-qmp unix:/tmp/q.sock,server=on,wait=off -pidfile /tmp/q.pid -daemonize ||
		{ echo "# qemu: start failed"; return; }
	n=0
	until $Q -t 10 /tmp/q.sock query-status 2>/dev/null | grep -q '"running"'; do
		n=$((n + 1)); [ $n -lt 3000 ] || { echo "# qemu: not running"; return; }
		sleep 0.01
	done
	t1=$(up)
	pid=$(cat /tmp/q.pid)
	if ! ready /tmp/qcon.new 0; then
		echo "# qemu: the guest did not reach its shell; run left out"
		$Q /tmp/q.sock quit >/dev/null
		gone $pid 60 || kill -9 $pid
		rm -f /tmp/qcon.new
		return
	fi
	r=$(rss $pid)
	t2=$(up)
	$Q /tmp/q.sock system_powerdown >/dev/null
	gone $pid 180 || { echo "# qemu: still running 180 s after system_powerdown"; kill -9 $pid; }
	t3=$(up)
	cat /tmp/qcon.new >>/tmp/qcon
	rm -f /tmp/qcon.new
	echo "RUN qemu $(sub $t0 $t1) $(sub $t2 $t3) $r $(sub $t2 $t3)"
}
i=0
while [ $i -lt $runs ]; do
	sleep 2 # what the last VMM's exit left to the host kernel (freeing its RAM) is done
	if [ $((i % 2)) = 0 ]; then one_ligero; sleep 2; one_qemu; else one_qemu; sleep 2; one_ligero; fi
	i=$((i + 1))
done
INNER
bins="--bin $qmpcmd --bin /usr/bin/qemu-system-x86_64"
[ -z "$vmm" ] || bins="$bins --bin $vmm"
# shellcheck disable=SC2086
out=$(LIGERO_BUILD=$build sh "$repo/tests/vmhost/vmhost.sh" --mem 2G $bins \
	--tree /usr/share/qemu --tree /usr/share/seabios --timeout 3000 "$tmp" 2>/dev/null) || {
	echo "$out"
	echo "bench: the emulated host failed" >&2
	exit 1
}
echo "$out" | grep '^#' || true
echo "$out" | sed -n 's/^RUN /# RUN /p' # VMM start stop rss gone, each run
echo "$out" | awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "RUN" { s[$2] = s[$2] " " $3; p[$2] = p[$2] " " $4; r[$2] = r[$2] " " $5; g[$2] = g[$2] " " $6; n[$2]++ }
END {
	if (!n["ligero"] || !n["qemu"]) { print "bench: runs missing"; exit 1 }
	ms = median(s["ligero"]); qs = median(s["qemu"])
	mp = median(p["ligero"]); qp = median(p["qemu"])
	mr = median(r["ligero"]); qr = median(r["qemu"])
	printf "%-32s %10s %10s %8s\n", "medians (" n["ligero"] " runs each)", "ligero", "qemu", "ratio"
	printf "%-32s %10.3f %10.3f %8.2f\n", "start to running (s)", ms, qs, ms / qs
	printf "%-32s %10.3f %10.3f %8.2f\n", "stop to stopped (s)", mp, qp, mp / qp
	mg = median(g["ligero"]); qg = median(g["qemu"])
	printf "%-32s %10.3f %10.3f %8.2f\n", "stop to VMM process gone (s)", mg, qg, mg / qg
	printf "%-32s %10d %10d %8.2f\n", "VMM RSS without guest RAM (KiB)", mr, qr, mr / qr
}'
