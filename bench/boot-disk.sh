#!/bin/sh
# Boot benchmark on a real installed system: the Debian test disk (tests/guest/debian.sh:
# systemd, the cloud kernel, GPT, ext4, /boot/grub/grub.cfg) booted to its LIGERO-MULTIUSER
# marker (printed on the serial console by a unit once multi-user.target is reached) by
#   ligero       `ligero run --disk`: the grub.cfg default entry read from the disk, then
#                booted directly (no firmware, no boot loader)
#   qemu-grub    QEMU -M q35 with its SeaBIOS, booting GRUB from a copy of the disk on which
#                `grub-install --target=i386-pc` was run (the disk's own GRUB, in a chroot,
#                into the BIOS boot partition), as a libvirt VM installed from the
#                distribution's installer boots; GRUB's menu timeout as Debian ships it (5 s)
#   qemu-grub0   the same with the timeout 0 (GRUB_TIMEOUT=0)
#   qemu-kernel  QEMU -M q35 with -kernel/-initrd (the disk's own kernel and initrd) and the
#                command line ligero gives the guest
# all inside one emulated-host run (tests/vmhost/; QEMU is this host's qemu-system-x86_64 with
# its firmware, using L1's KVM), RUNS rounds (default 5) of one boot each, the order rotating
# from round to round (each VMM first, last and between), every boot from a fresh qcow2 overlay
# of its disk. Times are L1's clock from the VMM's start to the marker (and to the login
# prompt); the guest's uptime at the marker is printed too. The figures are the ratios:
# ligero's median over each QEMU's, and round by round. After the rounds, one more boot each of
# ligero and qemu-kernel prints the guest's own `systemd-analyze` (kernel, initrd and user space
# as the guest clocks them) and ligero's start-up steps (LIGERO_STATS), lines starting '# '.
# The GRUB copies are made on this host with a loop device (root; cached in
# build/bench-disk/): grub.cfg's `linux` lines get console=ttyS0 (so the marker and the kernel
# reach the serial console, as ligero adds it), /etc/default/grub says the same.
# usage: bench/boot-disk.sh [RUNS] | bench/boot-disk.sh --prepare (only make the GRUB copies)
# env: CPUS (1), MEM (MiB, 1024), ONLY (a list of the VMM names above), LIGERO_BUILD,
#      LIGERO_CACHE (as tests/guest/debian.sh), VMHOST_LOCK (tests/vmhost/vmhost.sh)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
prepare=0
[ "${1:-}" != --prepare ] || { prepare=1; shift; }
runs=${1:-5}
case $runs in *[!0-9]* | '' | 0) echo "usage: bench/boot-disk.sh [RUNS] | --prepare" >&2; exit 2 ;; esac
cpus=${CPUS:-1}
mem=${MEM:-1024}
only=${ONLY:-ligero qemu-grub qemu-grub0 qemu-kernel}
build=${LIGERO_BUILD:-$repo/build}
[ "$(id -u)" = 0 ] || { echo "bench: run as root (the Debian disk's build, grub-install on a loop device)" >&2; exit 1; }
for t in losetup partx unshare chroot qemu-img qemu-system-x86_64; do
	command -v $t >/dev/null || { echo "bench: $t not found" >&2; exit 1; }
done

dir=$(LIGERO_BUILD=$build sh "$repo/tests/guest/debian.sh" "$build/guest" | tail -n1)
. "$dir/debian.env"

# grub_disk OUT TIMEOUT: a qcow2 copy of the Debian disk with GRUB installed for BIOS
grub_disk() {
	out=$1 tmo=$2
	work=$(mktemp -d "$build/bench-disk/work.XXXXXX")
	qemu-img convert -f qcow2 -O raw "$DISK" "$work/disk.raw"
	dev=$(losetup -f --show "$work/disk.raw")
	partx -a "$dev"
	mkdir "$work/root"
	# a mount namespace of its own: nothing stays mounted whatever fails
	unshare -m --propagation private sh -eu -c '
		dev=$1 root=$2 tmo=$3
		i=0
		while [ ! -b ${dev}p2 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
		mount ${dev}p2 "$root"
		mount --bind /dev "$root/dev"
		mount -t proc proc "$root/proc"
		mount -t sysfs sysfs "$root/sys"
		chroot "$root" grub-install --target=i386-pc "$dev"
		sed -i "s/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX=\"console=ttyS0\"/; s/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=$tmo/" \
			"$root/etc/default/grub"
		sed -i "/^[[:space:]]*linux[[:space:]]/ s/\$/ console=ttyS0/" "$root/boot/grub/grub.cfg"
		# a headless install (virt-install --graphics none): GRUB on the serial port, as
		# grub-mkconfig writes it with GRUB_TERMINAL=serial. With gfxterm and no video device
		# GRUB shows nothing and never boots (checked under TCG: no output in 60 s).
		sed -i "1i serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial" \
			"$root/boot/grub/grub.cfg"
		sed -i "s/^\([[:space:]]*\)terminal_output gfxterm\$/\1terminal_output serial/" \
			"$root/boot/grub/grub.cfg"
		echo "GRUB_TERMINAL=serial" >>"$root/etc/default/grub"
		[ "$tmo" = 5 ] || sed -i "s/^\([[:space:]]*set timeout=\)5\$/\1$tmo/" "$root/boot/grub/grub.cfg"
		grep -E "^[[:space:]]*(set timeout=|linux[[:space:]])" "$root/boot/grub/grub.cfg" >&2
		umount "$root/sys" "$root/proc" "$root/dev" "$root"
	' - "$dev" "$work/root" "$tmo" >&2 || { partx -d "$dev"; losetup -d "$dev"; rm -rf "$work"; return 1; }
	partx -d "$dev"
	losetup -d "$dev"
	qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$out"
	rm -rf "$work"
}
# keyed by the disk's build (its UUIDs) and by how the copy is made
key=$(basename "$dir")-$({ cat "$dir/debian.json"; sed -n '/^grub_disk()/,/^}/p' "$0"; } |
	sha256sum | cut -c1-12)
grubs="$build/bench-disk/$key"
mkdir -p "$build/bench-disk"
if [ ! -f "$grubs/grub5.qcow2" ] || [ ! -f "$grubs/grub0.qcow2" ]; then
	echo "bench: installing GRUB on two copies of $DISK (cached in $grubs)" >&2
	rm -rf "$build"/bench-disk/debian12-* # older copies: 700 MiB a pair
	mkdir -p "$grubs.tmp"
	grub_disk "$grubs.tmp/grub5.qcow2" 5 && grub_disk "$grubs.tmp/grub0.qcow2" 0 ||
		{ rm -rf "$grubs.tmp"; echo "bench: grub-install on a copy of $DISK failed" >&2; exit 1; }
	mv "$grubs.tmp" "$grubs"
fi
[ $prepare = 0 ] || { echo "$grubs"; exit 0; }

# After the rounds, one more boot of ligero and of qemu-kernel runs this in the guest (after the
# marker): the guest's own account of its boot, the part no VMM takes part in.
analyze=$(printf '%s\n' 'systemd-analyze' 'systemd-analyze blame --no-pager | head -n 12' | base64 -w0)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<INNER
analyze=$analyze
runs=$runs
cpus=$cpus
mem=$mem
only="$only"
append="panic=-1 reboot=k 8250.nr_uarts=1 $CMDLINE console=ttyS0"
INNER
cat >>"$tmp" <<'INNER'
up() { cut -d' ' -f1 /proc/uptime; }
# one NAME BASE COMMAND...: boot from a fresh overlay of disks/BASE (the command names
# disks/o.qcow2) until the marker, then stop the VM; prints
# RUN NAME ROUND to-marker to-login guest-uptime-at-marker
one() {
	name=$1 base=$2
	shift 2
	./ligero img create -q -f qcow2 -b "$base" -F qcow2 disks/o.qcow2
	rm -f /tmp/fifo /tmp/marker /tmp/login
	mkfifo /tmp/fifo
	sleep 2 # what the last VM's exit left to L1's kernel (freeing its memory) is done by now
	t0=$(up)
	timeout -s KILL 900 "$@" >/tmp/fifo 2>/tmp/err </dev/null &
	pid=$!
	while IFS= read -r line; do
		case "$line" in
		*"login:"*) [ -f /tmp/login ] || up >/tmp/login ;;
		*LIGERO-MULTIUSER*)
			up >/tmp/marker
			echo "$line" | tr -d '\r' | sed 's/.*LIGERO-MULTIUSER \([0-9.]*\).*/\1/' >/tmp/guest
			kill -TERM $pid # ligero: --stop-timeout 0, QEMU: quits
			;;
		esac
	done </tmp/fifo
	wait $pid
	rm -f disks/o.qcow2
	[ -f /tmp/marker ] || { echo "# $name: no marker (round $((i + 1)))"; tail -n 5 /tmp/err; return; }
	tm=$(cat /tmp/marker)
	tl=$(cat /tmp/login 2>/dev/null || echo 0)
	echo "RUN $name $((i + 1)) $(awk -v a="$t0" -v b="$tm" 'BEGIN{printf "%.2f", b-a}')" \
		"$(awk -v a="$t0" -v b="$tl" 'BEGIN{printf "%.2f", (b > 0 ? b - a : 0)}') $(cat /tmp/guest)"
}
# the QEMU machine of both QEMU cases (a headless libvirt VM: `virt-install --graphics none`)
Q="qemu-system-x86_64 -M q35 -accel kvm -cpu host -m $mem -smp $cpus -nodefaults -no-user-config
	-display none -serial stdio -no-reboot -drive file=disks/o.qcow2,if=virtio,format=qcow2"
boot() {
	case $1 in
	ligero) one ligero debian.qcow2 ./ligero run --disk disks/o.qcow2 --cpus $cpus \
		--memory ${mem}M --stop-timeout 0 ;;
	qemu-grub) one qemu-grub grub5.qcow2 $Q ;;
	qemu-grub0) one qemu-grub0 grub0.qcow2 $Q ;;
	qemu-kernel) one qemu-kernel debian.qcow2 $Q -kernel disks/debian.vmlinuz \
		-initrd disks/debian.initrd.img -append "$append" ;;
	esac
}
n=$(echo $only | wc -w)
i=0
while [ $i -lt $runs ]; do
	# round i starts with VMM number i (mod n), so that none always comes first or last
	set -- $only
	k=0
	while [ $k -lt $((i % n)) ]; do set -- "$@" "$1"; shift; k=$((k + 1)); done
	for v in "$@"; do boot $v; done
	i=$((i + 1))
done
# analyze NAME COMMAND...: the guest's systemd-analyze (ANALYZE lines); ligero's own start-up
# steps (LIGERO_STATS) too
analyze() {
	name=$1
	shift
	./ligero img create -q -f qcow2 -b debian.qcow2 -F qcow2 disks/o.qcow2
	sleep 2
	LIGERO_STATS=/tmp/stats timeout -s KILL 900 "$@" </dev/null 2>/dev/null | tr -d '\r' |
		sed -n '/^LIGERO-TEST-BEGIN/,/^LIGERO-TEST-RC/p' | sed "s/^/ANALYZE $name /"
	sed -n "s/^ligero: at \([0-9.]*\) s (uptime): \(.*\)/ANALYZE $name \1 \2/p" /tmp/stats 2>/dev/null
	rm -f disks/o.qcow2 /tmp/stats
}
case " $only " in *" ligero "*) analyze ligero ./ligero run --disk disks/o.qcow2 --cpus $cpus \
	--memory ${mem}M --stop-timeout 0 --cmdline "ligero.run64=$analyze" ;; esac
case " $only " in *" qemu-kernel "*) analyze qemu-kernel $Q -kernel disks/debian.vmlinuz \
	-initrd disks/debian.initrd.img -append "$append ligero.run64=$analyze" ;; esac
INNER
t0=$(date +%s)
out=$(VMHOST_LOCK=${VMHOST_LOCK:-} sh "$repo/tests/vmhost/vmhost.sh" --mem 2G --timeout 10800 \
	--bin "$(command -v qemu-system-x86_64)" --tree /usr/share/qemu --tree /usr/share/seabios \
	--disk "$DISK" --disk "$grubs/grub5.qcow2" --disk "$grubs/grub0.qcow2" \
	--disk "$KERNEL" --disk "$INITRD" "$tmp" 2>/dev/null) || {
	echo "$out" | tail -n 20
	echo "bench: the emulated host failed" >&2
	exit 1
}
echo "# emulated-host run: $(($(date +%s) - t0)) s; $cpus vCPU, $mem MiB; GRUB from $grubs"
echo "$out" | grep '^#' || true
echo "$out" | sed -n 's/^ANALYZE /# /p'
echo "$out" | sed -n 's/^RUN /# RUN /p' # the raw figures: NAME ROUND to-marker to-login guest-uptime
echo "$out" | awk -v only="$only" '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "RUN" { m[$2] = m[$2] " " $4; l[$2] = l[$2] " " $5; g[$2] = g[$2] " " $6; cnt[$2]++
	t[$2, $3] = $4; if ($3 > rounds) rounds = $3 }
END {
	nv = split(only, vmm, " ")
	printf "%-12s %5s %12s %12s %14s   (medians, seconds)\n", "vmm", "boots", "to marker", "to login", "guest uptime"
	for (v = 1; v <= nv; v++) if (cnt[vmm[v]])
		printf "%-12s %5d %12.2f %12.2f %14.2f\n", vmm[v], cnt[vmm[v]], median(m[vmm[v]]), median(l[vmm[v]]), median(g[vmm[v]])
	for (r = 1; r <= rounds; r++) {
		line = ""
		for (v = 1; v <= nv; v++) if ((vmm[v], r) in t) line = line sprintf(" %s %.2f", vmm[v], t[vmm[v], r])
		printf "round %d, to the marker:%s\n", r, line
	}
	if (!cnt["ligero"]) exit
	for (v = 1; v <= nv; v++) {
		q = vmm[v]
		if (q == "ligero" || !cnt[q]) continue
		pairs = ""
		for (r = 1; r <= rounds; r++) if (("ligero", r) in t && (q, r) in t) pairs = pairs sprintf(" %.3f", t["ligero", r] / t[q, r])
		printf "ligero / %-11s = %.2f (medians); round by round: median %.2f (%s )\n", q, median(m["ligero"]) / median(m[q]), median(pairs), pairs
	}
}'
