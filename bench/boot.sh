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
# Each round boots every VMM once, starting with the next one in turn, with 2 s of rest before
# each boot. Emulation slows everything: the ratios are the figure. The headline ratio is of the
# medians; a second one takes, round by round (the boots of a round run back to back, so under
# about the same load from whatever else shares the machine), ligero's marker time over the
# fastest QEMU's of that round, and prints the median of those.
# With --exits, one round only, and the VM exits up to the marker by exit reason (AMD SVM codes:
# the emulated host's CPU is an EPYC), counted by L1's kvm:kvm_exit tracepoint with a histogram
# trigger, and the port I/O exits by port (kvm:kvm_pio; ports with fewer than 20 exits in all
# are lumped together); tracing slows each exit, so the times of such a run are not the
# benchmark's.
# With --initcalls, one boot of each with the kernel's initcall_debug: the guest's clock at
# `Run /init` and the 20 initcalls that took longest in all, in ms per VMM (the guest's own
# clock, so what the kernel spends on what each VMM shows it; before kvm-clock takes over, the
# clock ticks in jiffies, so short initcalls read as 0, 4 or 8 ms).
# Usage: bench/boot.sh [RUNS] | bench/boot.sh --exits | bench/boot.sh --initcalls
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
why=0
[ "${1:-}" != --exits ] || { why=1; shift; set -- 1; }
ic=0
[ "${1:-}" != --initcalls ] || { ic=1; shift; set -- 1; }
runs=${1:-5}
mem=256
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<INNER
runs=$runs
mem=$mem
why=$why
ic=$ic
INNER
cat >>"$tmp" <<'INNER'
K=guest/vmlinuz
I=guest/initrd.img
mount -t debugfs none /sys/kernel/debug 2>/dev/null
exits() { cat /sys/kernel/debug/kvm/exits 2>/dev/null || echo 0; }
T=/sys/kernel/tracing
[ $why = 0 ] || mount -t tracefs none $T 2>/dev/null || true
hist() { # on|off: count exits by reason and port I/O by port
	bang=
	[ $1 = on ] || bang='!'
	echo "${bang}hist:keys=exit_reason:size=256" >$T/events/kvm/kvm_exit/trigger
	echo "${bang}hist:keys=port,rw:size=256" >$T/events/kvm/kvm_pio/trigger
}
snapshot() { # name: print WHY name kind key count
	sed -n "s/^{ exit_reason: *\([0-9]*\) } hitcount: *\([0-9]*\)/WHY $1 exit \1 \2/p" \
		$T/events/kvm/kvm_exit/hist
	sed -n "s/^{ port: *\([0-9]*\), rw: *\([0-9]*\) } hitcount: *\([0-9]*\)/WHY $1 pio \1.\2 \3/p" \
		$T/events/kvm/kvm_pio/hist
}
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
	[ $why = 0 ] || hist on
	t0=$(up)
	timeout 300 "$@" >/tmp/fifo 2>/tmp/err </dev/null &
	pid=$!
	while IFS= read -r line; do
		case "$line" in
		*LIGERO-MARKER*)
			up >/tmp/marker
			exits >/tmp/exits
			[ $why = 0 ] || snapshot $name >/tmp/why
			rss $pid >/tmp/rss 2>/dev/null
			;;
		*"ligero demo guest:"*) echo "# $name: $line" ;;
		esac
	done </tmp/fifo
	wait $pid
	rc=$?
	t2=$(up)
	[ $why = 0 ] || { hist off; cat /tmp/why 2>/dev/null; }
	[ -f /tmp/marker ] || { echo "# $name: no marker (rc $rc)"; cat /tmp/err; return; }
	# a field that could not be read is 0, so that the others keep their places
	ex=$(cat /tmp/exits 2>/dev/null)
	rs=$(cat /tmp/rss 2>/dev/null)
	echo "RUN $name $(awk -v a=$t0 -v b=$(cat /tmp/marker) 'BEGIN{printf "%.2f", b-a}') \
$(awk -v a=$t0 -v b=$t2 'BEGIN{printf "%.2f", b-a}') ${ex:-0} ${rs:-0} $rc $((i + 1))"
}
append="console=ttyS0 quiet panic=-1"
i=0
boot() { # name
	sleep 2 # what the last VMM's exit left to the host kernel (freeing its RAM) is done by now
	case $1 in
	ligero) one ligero ./ligero run --kernel $K --initrd $I --memory ${mem}M --cmdline quiet ;;
	qemu-*) one $1 qemu-system-x86_64 -M ${1#qemu-} -accel kvm -cpu host -m $mem -smp 1 \
		-nodefaults -no-user-config -display none -serial stdio -no-reboot \
		-kernel $K -initrd $I -append "$append" ;;
	esac
}
if [ $ic = 1 ]; then # one boot each with initcall_debug; the guest prints its dmesg
	for v in ligero qemu-q35 qemu-microvm; do
		sleep 2
		case $v in
		ligero) timeout 300 ./ligero run --stop-timeout 0 --kernel $K --initrd $I --memory ${mem}M \
			--cmdline 'quiet initcall_debug ligero.run=dmesg' ;;
		*) timeout 300 qemu-system-x86_64 -M ${v#qemu-} -accel kvm -cpu host -m $mem -smp 1 \
			-nodefaults -no-user-config -display none -serial stdio -no-reboot \
			-kernel $K -initrd $I -append "$append initcall_debug ligero.run=dmesg" ;;
		esac </dev/null 2>/dev/null | tr -d '\r' | sed -n \
			-e "s/^\[ *[0-9.]*\] initcall \([^+ ]*\).* returned .* after \([0-9]*\) usecs/IC $v \2 \1/p" \
			-e "s/^\[ *\([0-9.]*\)\] Run \/init as init process/RUNINIT $v \1/p" >/tmp/ic
		grep -q RUNINIT /tmp/ic || echo "NOINIT $v"
		cat /tmp/ic
	done
	exit 0
fi
# Each round starts with the next VMM in turn, so that none always follows the same one.
while [ $i -lt $runs ]; do
	case $((i % 3)) in
	0) boot ligero; boot qemu-microvm; boot qemu-q35 ;;
	1) boot qemu-microvm; boot qemu-q35; boot ligero ;;
	2) boot qemu-q35; boot ligero; boot qemu-microvm ;;
	esac
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
[ $why = 0 ] || echo "$out" | awk '
BEGIN {
	split("0x60 INTR 0x64 VINTR 0x72 CPUID 0x78 HLT 0x7b IOIO 0x7c MSR 0x400 NPF 0x14 CR4-write 0x10 CR0-write 0x4 CR4-read 0x0 CR0-read 0x89 WBINVD 0x46 #UD 0x77 PAUSE 0x65 CR0-sel-write 0x79 INVLPG 0x8d XSETBV", s, " ")
	for (i = 1; i in s; i += 2) name[s[i]] = s[i + 1]
}
$1 == "WHY" { if (!($2 in seen)) { seen[$2] = 1; vmms[++nv] = $2 }
	if ($3 == "exit") { key = sprintf("0x%x", $4); total[$2] += $5 }
	else { split($4, pr, "."); key = sprintf("port 0x%x %s", pr[1], pr[2] ? "out" : "in") }
	c[$2, key] += $5; if (!(key in known)) { known[key] = 1; keys[++nk] = key } }
END {
	# exit reasons before ports, each most frequent (all VMMs together) first
	for (k = 1; k <= nk; k++) for (v = 1; v <= nv; v++) sum[keys[k]] += c[vmms[v], keys[k]]
	for (i = 1; i <= nk; i++) for (j = i + 1; j <= nk; j++) {
		pi = keys[i] ~ /^port/; pj = keys[j] ~ /^port/
		if (pj < pi || (pj == pi && sum[keys[j]] > sum[keys[i]])) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
	}
	printf "%-22s", "exits to the marker"
	for (v = 1; v <= nv; v++) printf " %13s", vmms[v]
	printf "\n"
	for (k = 1; k <= nk; k++) {
		if (keys[k] ~ /^port/ && sum[keys[k]] < 20) {
			for (v = 1; v <= nv; v++) other[vmms[v]] += c[vmms[v], keys[k]]
			continue
		}
		printf "%-22s", keys[k] (keys[k] in name ? " " name[keys[k]] : "")
		for (v = 1; v <= nv; v++) printf " %13d", c[vmms[v], keys[k]]
		printf "\n"
	}
	printf "%-22s", "other ports"
	for (v = 1; v <= nv; v++) printf " %13d", other[vmms[v]]
	printf "\n"
	printf "%-22s", "all exits"
	for (v = 1; v <= nv; v++) printf " %13d", total[vmms[v]]
	printf "\n"
}'
[ $why = 0 ] || exit 0
[ $ic = 0 ] || { echo "$out" | awk '
$1 == "RUNINIT" { init[$2] = $3; if (!($2 in seen)) { seen[$2] = 1; vmms[++nv] = $2 } }
$1 == "NOINIT" { print "# " $2 ": no \"Run /init\" in its output (status " $3 ")" }
$1 == "IC" { t[$2, $4] += $3; sum[$2] += $3; top[$4] += $3 }
END {
	printf "%-34s", "initcall_debug boot"; for (v = 1; v <= nv; v++) printf " %13s", vmms[v]; printf "\n"
	printf "%-34s", "guest clock at Run /init (s)"; for (v = 1; v <= nv; v++) printf " %13s", init[vmms[v]]; printf "\n"
	printf "%-34s", "all initcalls (ms)"; for (v = 1; v <= nv; v++) printf " %13.1f", sum[vmms[v]] / 1000; printf "\n"
	n = 0; for (f in top) names[++n] = f
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (top[names[j]] > top[names[i]]) { x = names[i]; names[i] = names[j]; names[j] = x }
	for (i = 1; i <= n && i <= 20; i++) {
		printf "%-34s", substr(names[i], 1, 34); for (v = 1; v <= nv; v++) printf " %13.1f", t[vmms[v], names[i]] / 1000; printf "\n"
	}
}'; exit 0; }
echo "$out" | awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "RUN" { m[$2] = m[$2] " " $3; x[$2] = x[$2] " " $4; e[$2] = e[$2] " " $5; r[$2] = r[$2] " " $6
	if ($7 != 0) bad[$2]++; order[$2] = ++n
	rd = $8; if (rd > round) round = rd
	if ($2 == "ligero") mine[rd] = $3; else if (!(rd in peer) || $3 < peer[rd]) peer[rd] = $3
	line[rd] = line[rd] sprintf(" %s %.2f", $2, $3) }
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
	for (i = 1; i <= round; i++) printf "round %d, seconds to the marker:%s\n", i, line[i]
	for (i = 1; i <= round; i++) if (peer[i] > 0 && mine[i] > 0) pairs = pairs " " sprintf("%.3f", mine[i] / peer[i])
	if (pairs != "")
		printf "boot-to-marker, round by round: median of ligero / fastest QEMU of the round = %.2f (rounds:%s)\n", median(pairs), pairs
}'
