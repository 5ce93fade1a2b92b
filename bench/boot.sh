#!/bin/sh
# Boot benchmark: ligero against QEMU (-M microvm and -M q35) booting the same kernel and
# initramfs (the test guest, `quiet`, demo command, power-off), all inside one emulated-host
# boot, where KVM is real (tests/vmhost/). For each VMM, RUNS runs (default 5); medians of:
#   marker  seconds from process start to the guest's LIGERO-MARKER line (L1 /proc/uptime)
#   exit    seconds from process start to process exit
#   exits   VM exits up to the marker, all of them (handled in KVM or in the VMM), from L1's
#           /sys/kernel/debug/kvm/exits (which counts live VMs only, so it is read at the marker)
#   rss     the VMM's RSS at the marker, in KiB, without the guest-RAM mapping (what guest RAM
#           the guest touched is the guest's, not the VMM's)
# Emulation slows everything: the ratios are the figure. The headline ratio is of the medians;
# a second one takes, round by round (one boot of each VMM, back to back, so under about the same
# load from whatever else shares the machine), ligero's marker time over the fastest QEMU's of
# that round, and prints the median of those. Usage: bench/boot.sh [RUNS]
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
mem=256
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<INNER
runs=$runs
mem=$mem
INNER
cat >>"$tmp" <<'INNER'
K=guest/vmlinuz
I=guest/initrd.img
mount -t debugfs none /sys/kernel/debug 2>/dev/null
exits() { cat /sys/kernel/debug/kvm/exits 2>/dev/null || echo 0; }
up() { cut -d' ' -f1 /proc/uptime; }
# RSS of pid in KiB, leaving out mappings at least as large as guest RAM
rss() {
	awk -v min=$((mem * 1024)) '/^Size:/ {size=$2} /^Rss:/ {if (size < min) sum+=$2}
		END {print sum}' /proc/$1/smaps
}
one() { # name, command...
	name=$1
	shift
	rm -f /tmp/fifo /tmp/marker /tmp/rss /tmp/exits
	mkfifo /tmp/fifo
	t0=$(up)
	timeout 300 "$@" >/tmp/fifo 2>/tmp/err </dev/null &
	pid=$!
	while IFS= read -r line; do
		case "$line" in
		*LIGERO-MARKER*)
			up >/tmp/marker
			exits >/tmp/exits
			rss $pid >/tmp/rss 2>/dev/null
			;;
		*"ligero demo guest:"*) echo "# $name: $line" ;;
		esac
	done </tmp/fifo
	wait $pid
	rc=$?
	t2=$(up)
	[ -f /tmp/marker ] || { echo "# $name: no marker (rc $rc)"; cat /tmp/err; return; }
	echo "RUN $name $(awk -v a=$t0 -v b=$(cat /tmp/marker) 'BEGIN{printf "%.2f", b-a}') \
$(awk -v a=$t0 -v b=$t2 'BEGIN{printf "%.2f", b-a}') $(cat /tmp/exits) $(cat /tmp/rss) $rc"
}
append="console=ttyS0 quiet panic=-1"
i=0
while [ $i -lt $runs ]; do
	one ligero ./ligero run --kernel $K --initrd $I --memory ${mem}M --cmdline quiet
	one qemu-microvm qemu-system-x86_64 -M microvm -accel kvm -cpu host -m $mem -smp 1 \
		-nodefaults -no-user-config -display none -serial stdio -no-reboot \
		-kernel $K -initrd $I -append "$append"
	one qemu-q35 qemu-system-x86_64 -M q35 -accel kvm -cpu host -m $mem -smp 1 \
		-nodefaults -no-user-config -display none -serial stdio -no-reboot \
		-kernel $K -initrd $I -append "$append"
	i=$((i + 1))
done
INNER
out=$(sh "$repo/tests/vmhost/vmhost.sh" --mem 2G --bin /usr/bin/qemu-system-x86_64 \
	--tree /usr/share/qemu --tree /usr/share/seabios --timeout 3000 "$tmp" 2>/dev/null) || {
	echo "$out"
	echo "bench: the emulated host failed" >&2
	exit 1
}
echo "$out" | grep '^#' || true
echo "$out" | awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "RUN" { m[$2] = m[$2] " " $3; x[$2] = x[$2] " " $4; e[$2] = e[$2] " " $5; r[$2] = r[$2] " " $6
	if ($7 != 0) bad[$2]++; order[$2] = ++n
	if ($2 == "ligero") { round++; mine[round] = $3 } else if (!(round in peer) || $3 < peer[round]) peer[round] = $3 }
END {
	printf "%-14s %10s %10s %10s %10s   (medians of runs in the emulated host)\n", "vmm", "marker s", "exit s", "exits", "rss KiB"
	for (v in order) {
		mm[v] = median(m[v]); printf "%-14s %10.2f %10.2f %10d %10d%s\n", v, mm[v], median(x[v]), median(e[v]), median(r[v]), bad[v] ? "  (" bad[v] " runs failed)" : ""
	}
	best = ""
	for (v in mm) if (v != "ligero" && (best == "" || mm[v] < mm[best])) best = v
	if (best != "" && mm["ligero"] > 0)
		printf "boot-to-marker: ligero / %s (fastest QEMU) = %.2f (target <= 0.50)\n", best, mm["ligero"] / mm[best]
	pairs = ""
	for (i = 1; i <= round; i++) if (peer[i] > 0) pairs = pairs " " sprintf("%.3f", mine[i] / peer[i])
	if (pairs != "")
		printf "boot-to-marker, round by round: median of ligero / fastest QEMU of the round = %.2f (rounds:%s)\n", median(pairs), pairs
}'
