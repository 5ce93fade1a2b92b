#!/bin/sh
# The seed's KSM experiment (issue 22), ligero and QEMU side by side in one emulated-host run
# (tests/vmhost/vmhost.sh: L1 given 3 GiB of RAM and ONE vCPU; two vCPUs crashed L1 with two
# Debian guests). VMS guests (default 10) of 900 MiB, each on a linked clone of one base, the
# real Debian disk (tests/guest/debian.sh). Each guest, once up, reads the same FILE_MIB (600)
# MiB file of random bytes from a second, shared disk it mounts read-only (the base's root has
# no room for it), so every guest's page cache holds the same pages, and prints KSM-READ-DONE;
# the command comes from a shared read-only script disk (the guest's ligero-test service,
# tests/guest/README.md) and the guest stays up afterwards.
#   ligero  `ligero fleet create bench --count VMS --base base.qcow2` (overlays, sysprep,
#           definitions), then `ligero vm start benchI`: the disk's own kernel from grub.cfg
#   qemu    VMS `qemu-img create -b base.qcow2` overlays, `qemu-system-x86_64 -accel kvm -m 900
#           -machine q35,mem-merge=on` with -kernel/-initrd (the disk's own, the same files)
# KSM runs throughout (`ligero ksm enable --pages-to-scan 4000 --sleep-ms 10`, the issue's
# measurement). The guests boot one after the other (one L1 vCPU); after each guest's read
# the next waits for KSM to converge, so L1 never holds more than one guest's unmerged copy.
# Converged: pages_sharing moved by at most 0.5% (or 256 pages) over at least 10 s and two
# of ksmd's full scans. Reported per VMM: L1's used memory (`free -m`'s "used" as procps 4
# counts it, MemTotal - MemAvailable, after `drop_caches`) before the first guest and after the
# last convergence, pages_shared/pages_sharing, the time from the last guest's read to
# convergence, each VMM process's RSS, and guests that did not come up (never hidden). Then the
# ratios against the issue's targets. Also, on this host (not under emulation): the time to
# create 20 members, `ligero fleet create --count 20` against 20 `qemu-img create -b`
# (medians of 3 rounds), and `virt-sysprep` on each of the 20 when it is installed and runs.
# usage: bench/ksm.sh            (as root: the Debian disk's build)
# env: VMS (10), FILE_MIB (600), MEM (MiB per guest, 900), L1MEM (3G), ONLY ("ligero qemu": which
#      VMMs, in that order; "qemu ligero" swaps it),
#      SYSPREP (1: time virt-sysprep when installed; 0: skip it), LIGERO_BUILD, LIGERO_CACHE
#      (tests/guest/debian.sh), VMHOST_LOCK (tests/vmhost/vmhost.sh)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
vms=${VMS:-10}
file_mib=${FILE_MIB:-600}
mem=${MEM:-900}
l1mem=${L1MEM:-3G}
only=${ONLY:-ligero qemu}
build=${LIGERO_BUILD:-$repo/build}
ligero=${LIGERO:-$build/ligero}
for v in "$vms" "$file_mib" "$mem"; do
	case $v in *[!0-9]* | '' | 0) echo "bench: VMS, FILE_MIB and MEM are positive integers" >&2; exit 2 ;; esac
done
for v in $only; do
	case $v in ligero | qemu) ;; *) echo "bench: ONLY=$only: the VMMs are ligero and qemu" >&2; exit 2 ;; esac
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (the Debian disk's build)" >&2; exit 1; }
for t in qemu-img qemu-system-x86_64; do
	command -v $t >/dev/null || { echo "bench: $t not found" >&2; exit 1; }
done
[ -x "$ligero" ] || { echo "bench: $ligero: no ligero binary (build first)" >&2; exit 1; }
now() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median3() { echo "$@" | tr ' ' '\n' | sort -g | sed -n 2p; }

dir=$(LIGERO_BUILD=$build sh "$repo/tests/guest/debian.sh" "$build/guest" | tail -n1)
. "$dir/debian.env"

# The file: FILE_MIB MiB of random bytes as /ksm-big in an ext4 image (data.img, label ksmdata),
# a second disk every guest gets read-only and mounts read-only (the Debian disk's root has
# not that much room). Cached per size. The base is the Debian disk itself.
work="$build/bench-ksm"
data="$work/data-$file_mib.img"
mkdir -p "$work"
if [ ! -f "$data" ]; then
	echo "bench: making $data ($file_mib MiB of random bytes in an ext4 image)" >&2
	rm -rf "$work"/data-* "$work/data.d"
	mkdir "$work/data.d"
	head -c "${file_mib}M" /dev/urandom >"$work/data.d/ksm-big"
	mkfs.ext4 -q -F -L ksmdata -d "$work/data.d" "$data.tmp" "$((file_mib + file_mib / 16 + 16))M" ||
		{ rm -rf "$data.tmp" "$work/data.d"; echo "bench: mkfs.ext4 -d $work/data.d failed" >&2; exit 1; }
	rm -rf "$work/data.d"
	mv "$data.tmp" "$data"
fi
script="$work/script.img"
printf 'LIGERO-SCRIPT\nmkdir -p /mnt/ksm && mount -o ro,noload /dev/disk/by-label/ksmdata /mnt/ksm || echo KSM-MOUNT-FAILED\nt0=$(cut -d" " -f1 /proc/uptime)\ncat /mnt/ksm/ksm-big >/dev/null\necho "KSM-READ-DONE uptime=$(cut -d" " -f1 /proc/uptime) read-from=$t0 $(grep -E "^(MemTotal|Cached):" /proc/meminfo | tr -s " " | tr "\\n" " ")"\nexec sleep infinity\n' >"$script"
truncate -s 1M "$script"

# ---- 20 members, on this host ----
t=$(mktemp -d "$work/create.XXXXXX")
trap 'rm -rf "$t"' EXIT
cp --sparse=always "$DISK" "$t/base.qcow2" # the fleet records its overlays on its base (xattr)
lig='' qim=''
for r in 1 2 3; do
	mkdir "$t/l$r" "$t/q$r"
	a=$(now)
	LIGERO_STATE_DIR="$t/state$r" "$ligero" fleet create m --count 20 --base "$t/base.qcow2" \
		--disk-dir "$t/l$r" --memory ${mem}M >/dev/null ||
		{ echo "bench: ligero fleet create --count 20 failed" >&2; exit 1; }
	b=$(now)
	i=1
	while [ $i -le 20 ]; do
		qemu-img create -q -f qcow2 -b "$t/base.qcow2" -F qcow2 "$t/q$r/m$i.qcow2"
		i=$((i + 1))
	done
	c=$(now)
	lig="$lig $(dt "$a" "$b")" qim="$qim $(dt "$b" "$c")"
	LIGERO_STATE_DIR="$t/state$r" "$ligero" fleet delete m --disks >/dev/null
done
echo "# 20 members on this host (3 rounds, seconds): ligero fleet create:$lig; 20 qemu-img create -b:$qim" |
	tee "$work/create20-$vms"
echo "CREATE20 ligero=$(median3 $lig) qemu-img=$(median3 $qim)" >>"$work/create20-$vms"
if [ "${SYSPREP:-1}" = 1 ] && command -v virt-sysprep >/dev/null; then
	a=$(now) ok=0
	for f in "$t"/q3/m*.qcow2; do
		LIBGUESTFS_BACKEND=direct virt-sysprep -q -a "$f" >"$t/sysprep.log" 2>&1 && ok=$((ok + 1))
	done
	echo "CREATE20 virt-sysprep=$(dt "$a" "$(now)") ok=$ok" >>"$work/create20-$vms"
	[ $ok = 20 ] || echo "# virt-sysprep failed on $((20 - ok)) of 20: $(head -n 1 "$t/sysprep.log")" |
		tee -a "$work/create20-$vms"
elif [ "${SYSPREP:-1}" = 1 ]; then
	echo "# virt-sysprep is not installed here (libguestfs-tools): the qemu-img figure has no sysprep" |
		tee -a "$work/create20-$vms"
fi
rm -rf "$t"
trap - EXIT

# ---- the emulated host ----
inner=$(mktemp)
trap 'rm -f "$inner"' EXIT
cat >"$inner" <<INNER
vms=$vms
mem=$mem
only="$only"
append="$CMDLINE console=ttyS0 panic=-1"
INNER
cat >>"$inner" <<'INNER'
cd /work || exit 1
L=./ligero
k=/sys/kernel/mm/ksm
export LIGERO_STATE_DIR=/tmp/lst
up() { cut -d' ' -f1 /proc/uptime; }
mi() { sed -n "s/^$1: *\([0-9]*\) kB/\1/p" /proc/meminfo; }
used() { echo $((($(mi MemTotal) - $(mi MemAvailable)) / 1024)); }
say() { echo "KSMB $*"; }
# converge TAG T0: wait (guard 1800 s) for pages_sharing to hold still (see the header);
# prints the seconds from T0 to the start of the stable window
converge() {
	ws_t=$(up) ws_ps=$(cat $k/pages_sharing) ws_fs=$(cat $k/full_scans) n=0
	while [ $n -lt 900 ]; do
		sleep 2
		n=$((n + 1))
		t=$(up) ps=$(cat $k/pages_sharing) fs=$(cat $k/full_scans)
		d=$((ps - ws_ps)); [ $d -ge 0 ] || d=$((-d))
		tol=$((ps / 200)); [ $tol -ge 256 ] || tol=256
		if [ $d -gt $tol ]; then
			ws_t=$t ws_ps=$ps ws_fs=$fs
		elif [ $((fs - ws_fs)) -ge 2 ] && awk -v a="$ws_t" -v b="$t" 'BEGIN { exit !(b - a >= 10) }'; then
			say "$1 converged-s=$(awk -v a="$2" -v b="$ws_t" 'BEGIN { printf "%.1f", (b > a ? b - a : 0) }') pages_sharing=$ps full_scans=$fs"
			return 0
		fi
	done
	say "$1 not-converged pages_sharing=$ps full_scans=$fs"
	return 1
}
baseline() {
	n=0 # what the last VMM's guests had merged is gone
	while [ "$(cat $k/pages_sharing)" -gt 0 ] && [ $n -lt 300 ]; do sleep 1; n=$((n + 1)); done
	sync; echo 3 >/proc/sys/vm/drop_caches
	meminfo "$1 before"
	say "$1 used-before-mib=$(used) total-free-cache-mib=$(free -m | awk '/^Mem:/ { print $3 }') memtotal-mib=$(($(mi MemTotal) / 1024)) pages_sharing=$(cat $k/pages_sharing)"
	free -m | sed "s/^/# $1 free before: /"
}
# meminfo TAG: where L1's memory is (KiB), to tell a drift of L1 itself from the VMs' cost
meminfo() {
	say "$1 meminfo$(for f in MemFree AnonPages Shmem Slab KernelStack PageTables Cached Buffers; do printf ' %s=%s' $f "$(mi $f)"; done)"
}
# wait_read NAME CONSOLE PID: until the guest printed KSM-READ-DONE (0), its VMM died (1), or
# the guard (1800 s: a Debian boot takes minutes here) ran out (2)
wait_read() {
	n=0
	until grep -q KSM-READ-DONE "$2" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || return 1
		[ $n -lt 1800 ] || return 2
		sleep 1
		n=$((n + 1))
	done
}
# after TAG PIDS...: figures once the last guest's read converged
after() {
	tag=$1
	shift
	sync; echo 3 >/proc/sys/vm/drop_caches
	say "$tag used-after-mib=$(used) total-free-cache-mib=$(free -m | awk '/^Mem:/ { print $3 }') pages_shared=$(cat $k/pages_shared) pages_sharing=$(cat $k/pages_sharing) pages_unshared=$(cat $k/pages_unshared) full_scans=$(cat $k/full_scans)"
	free -m | sed "s/^/# $tag free after: /"
	meminfo "$tag after"
	for p in "$@"; do
		say "$tag rss pid=$p rss-kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$p/status 2>/dev/null) anon-kb=$(sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$p/status 2>/dev/null) merging=$(cat /proc/$p/ksm_merging_pages 2>/dev/null)"
	done
}
# boot TAG NAME CONSOLE PID: wait for the guest's read, then for KSM; a lost guest is reported
booted() {
	wait_read "$2" "$3" "$4"
	rc=$?
	if [ $rc = 0 ]; then
		t=$(up)
		say "$1 read name=$2 at=$t boot-to-read-s=$(awk -v a="$st" -v b="$t" 'BEGIN { printf "%.1f", b - a }') $(grep -a KSM-READ-DONE "$3" | tr -d '\r' | head -n1)"
		converge "$1 step name=$2" "$t"
		return 0
	fi
	say "$1 lost name=$2 why=$([ $rc = 1 ] && echo vmm-exited || echo guard)"
	tr -d '\r' <"$3" | tail -n 15 | sed "s/^/# $2 console: /"
	return 1
}
# gone TAG: L1's used memory once the VMs have exited and KSM let go of their pages: how far
# L1 itself drifted during the run (compare with the baseline)
gone() {
	n=0
	while [ "$(cat $k/pages_sharing)" -gt 0 ] && [ $n -lt 300 ]; do sleep 1; n=$((n + 1)); done
	sync; echo 3 >/proc/sys/vm/drop_caches
	say "$1 used-after-exit-mib=$(used)"
	meminfo "$1 after-exit"
}
say "l1 kernel=$(uname -r) cpus=$(nproc) memtotal-mib=$(($(mi MemTotal) / 1024))"
$L ksm enable --pages-to-scan 4000 --sleep-ms 10 | sed 's/^/# /'

run_ligero() {
	baseline ligero
	a=$(up)
	$L fleet create bench --count $vms --base disks/base.qcow2 --disk-dir disks --memory ${mem}M \
		--disk disks/script.img,format=raw,readonly=on \
		--disk disks/data.img,format=raw,readonly=on >/tmp/fc.out 2>&1 || { cat /tmp/fc.out; exit 1; }
	say "ligero create-s=$(awk -v a="$a" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }') count=$vms"
	pids=
	i=1
	while [ $i -le $vms ]; do
		st=$(up)
		$L vm start bench$i >/tmp/vs.out 2>&1 || sed "s/^/# bench$i start: /" /tmp/vs.out
		p=$(cat $LIGERO_STATE_DIR/run/bench$i.pid 2>/dev/null)
		if [ -n "$p" ] && booted ligero bench$i $LIGERO_STATE_DIR/log/bench$i.console.log $p; then
			pids="$pids $p"
		elif [ -z "$p" ]; then
			say "ligero lost name=bench$i why=did-not-start"
		fi
		i=$((i + 1))
	done
	after ligero $pids
	$L ksm status | sed 's/^/# ligero ksm status: /'
	$L fleet list bench | sed 's/^/# ligero fleet list: /'
	$L fleet kill bench >/dev/null 2>&1
	for p in $pids; do while kill -0 $p 2>/dev/null; do sleep 1; done; done
	gone ligero
}

run_qemu() {
	baseline qemu
	a=$(up)
	i=1
	while [ $i -le $vms ]; do
		qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 disks/q$i.qcow2 || exit 1
		i=$((i + 1))
	done
	say "qemu create-s=$(awk -v a="$a" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }') count=$vms"
	pids=
	i=1
	while [ $i -le $vms ]; do
		st=$(up)
		qemu-system-x86_64 -accel kvm -machine q35,mem-merge=on -cpu host -m $mem -smp 1 \
			-nodefaults -no-user-config -display none -serial file:/tmp/q$i.con \
			-drive file=disks/q$i.qcow2,if=virtio,format=qcow2 \
			-drive file=disks/script.img,if=virtio,format=raw,readonly=on \
			-drive file=disks/data.img,if=virtio,format=raw,readonly=on \
			-kernel disks/debian.vmlinuz -initrd disks/debian.initrd.img -append "$append" \
			</dev/null >/tmp/q$i.out 2>&1 &
		p=$!
		booted qemu q$i /tmp/q$i.con $p && pids="$pids $p"
		i=$((i + 1))
	done
	after qemu $pids
	for p in $pids; do kill -TERM $p; done
	for p in $pids; do wait $p; done
	gone qemu
}

for v in $only; do run_$v; done
exit 0
INNER
t0=$(date +%s)
out=$(VMHOST_LOCK=${VMHOST_LOCK:-} LIGERO_BUILD=$build sh "$repo/tests/vmhost/vmhost.sh" \
	--mem "$l1mem" --smp 1 --timeout 14400 \
	--bin "$(command -v qemu-system-x86_64)" --bin "$(command -v qemu-img)" \
	--tree /usr/share/qemu --tree /usr/share/seabios \
	--disk "$DISK:base.qcow2" --disk "$script" --disk "$data:data.img" --disk "$KERNEL:debian.vmlinuz" \
	--disk "$INITRD:debian.initrd.img" --disk-space 2G "$inner" 2>"$work/vmhost.err") || {
	echo "$out" | tail -n 30
	tail -n 30 "$work/vmhost.err"
	echo "bench: the emulated host failed" >&2
	exit 1
}
echo "$out" >"$work/last-$vms.out"
echo "# emulated-host run: $(($(date +%s) - t0)) s (with the wait for VMHOST_LOCK); $vms guests of $mem MiB, L1 $l1mem, 1 vCPU; output in $work/last-$vms.out"
echo "$out" | grep '^#' || true
echo "$out" | grep '^KSMB ' | sed 's/^KSMB /# /'
{ echo "$out"; cat "$work/create20-$vms" 2>/dev/null; } | awk -v vms="$vms" -v only="$only" '
function kv(s, k,   i, n, a) { n = split(s, a, " "); for (i = 1; i <= n; i++) if (index(a[i], k "=") == 1) return substr(a[i], length(k) + 2); return "" }
$1 == "KSMB" && $3 ~ /^used-before-mib=/ { before[$2] = kv($0, "used-before-mib") }
$1 == "KSMB" && $3 ~ /^used-after-exit-mib=/ { gone[$2] = kv($0, "used-after-exit-mib") }
$1 == "KSMB" && $3 ~ /^used-after-mib=/ { after[$2] = kv($0, "used-after-mib"); sharing[$2] = kv($0, "pages_sharing"); shared[$2] = kv($0, "pages_shared") }
$1 == "KSMB" && $3 == "read" { up[$2]++ }
$1 == "KSMB" && $3 == "lost" { lost[$2] = lost[$2] " " kv($0, "name") "(" kv($0, "why") ")" }
$1 == "KSMB" && $3 == "step" && $5 ~ /^converged-s=/ { conv[$2] = kv($0, "converged-s"); convsum[$2] += conv[$2] }
$1 == "KSMB" && $3 == "read" { boot[$2] += kv($0, "boot-to-read-s") }
$1 == "KSMB" && $3 == "rss" { rss[$2] += kv($0, "rss-kb"); nrss[$2]++ }
$1 == "CREATE20" { c20 = c20 " " $0 }
END {
	n = split(only, v, " ")
	printf "%-7s %4s %12s %12s %10s %12s %11s %14s\n", "vmm", "up", "used before", "used after", "per VM", "pages_sharing", "converge s", "VMM RSS/VM MiB"
	for (i = 1; i <= n; i++) {
		m = v[i]
		if (!(m in after)) { printf "%-7s no figures\n", m; continue }
		per[m] = up[m] ? (after[m] - before[m]) / up[m] : 0
		printf "%-7s %4d %12d %12d %10.1f %12d %11s %14.1f\n", m, up[m], before[m], after[m], per[m], sharing[m], conv[m], nrss[m] ? rss[m] / nrss[m] / 1024 : 0
		printf "%s: KSM converged %s s after the last guest read its file (%.1f s summed over the %d guests); boot to read %.1f s per guest\n", m, conv[m], convsum[m], up[m], up[m] ? boot[m] / up[m] : 0
		if (m in gone) printf "%s: L1 used %d MiB once its VMs had exited (%+d MiB from its baseline)\n", m, gone[m], gone[m] - before[m]
		if (lost[m] != "") printf "%s: guests lost:%s\n", m, lost[m]
	}
	if (("ligero" in per) && ("qemu" in per) && per["qemu"] > 0)
		printf "ligero / qemu host memory per VM = %.2f (target <= 0.50)\n", per["ligero"] / per["qemu"]
	if ("ligero" in after)
		printf "ligero: %d of %d guests up, L1 used %d MiB after (target: 10 guests, under 2048 MiB)\n", up["ligero"], vms, after["ligero"]
	if (c20 != "") {
		l = kv(c20, "ligero"); q = kv(c20, "qemu-img"); s = kv(c20, "ok") == 20 ? kv(c20, "virt-sysprep") : ""
		printf "20 members: ligero fleet create %.3f s (target < 1 s); 20 qemu-img create -b %.3f s", l, q
		if (s != "") printf "; + virt-sysprep x20 %.1f s (ratio ligero / (qemu-img + virt-sysprep) = %.3f)", s, l / (q + s)
		printf "\n"
	}
}'
