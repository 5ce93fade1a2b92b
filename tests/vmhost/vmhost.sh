#!/bin/sh
# Run a shell script inside an emulated host that has a real KVM: QEMU in software emulation
# (TCG) with an AMD CPU that has SVM and nested paging boots the guest kernel as L1, whose
# initramfs loads kvm.ko and kvm-amd.ko (nested=1, npt=1 or VMHOST_NPT). The script runs in /work with
#   /work/ligero           the ligero binary ($LIGERO, default $LIGERO_BUILD/ligero), plus the
#                          shared libraries it links, at their host paths
#   /work/guest/vmlinuz    the test guest (tests/guest/build.sh), also /work/guest/initrd.img
# and any --file SRC[:DEST] (DEST relative to /work) or --bin PATH (an executable with its
# libraries, at its host path). Its output comes back on stdout; its exit status is ours.
# 125 means the emulated host itself failed (console log on stderr).
# Those files live in L1's RAM. Big files (guest disks) come with --disk FILE[:NAME] instead:
# they are copied into a scratch ext4 image (mkfs.ext4 -d, at least --disk-space free, sparse)
# that L1 sees as a virtio disk mounted read-write at /work/disks (FILE as /work/disks/NAME,
# NAME defaulting to FILE's name). What the script writes there (overlays, results) stays in
# that image, which is deleted after the run unless --disks-out DIR, which first copies the
# files at the top of /work/disks back to DIR (with debugfs: nothing is mounted on the host;
# status 126 if that fails). The FILEs themselves are never written.
# --tap NAME gives L1 a virtio-net NIC (eth0, down, no address: the script sets it up) on the
# existing tap device NAME of the network namespace vmhost.sh runs in, so that L1 reaches
# services on the host side of that tap (the RBD boot test's Ceph cluster), and nothing else.
#
# usage: vmhost.sh [--file SRC[:DEST]]... [--bin PATH]... [--tree DIR]... [--timeout SECONDS]
#                  [--smp N] [--mem SIZE] [--disk FILE[:NAME]]... [--disk-space SIZE]
#                  [--disks-out DIR] [--tap NAME] SCRIPT
# env:   LIGERO, LIGERO_BUILD (default build), VMHOST_VERBOSE=1 shows the L1 console,
#        VMHOST_STALL=SECONDS (default 180; 0 = off): stop an emulated host whose console has
#        printed nothing, not even init's 10-second heartbeat, for that long (status 125)
#        VMHOST_NPT=0: L1's kvm-amd without nested paging (shadow paging for L2; docs/virtio.md)
#        VMHOST_LOCK=FILE: wait for an flock on FILE first, so that emulated hosts started from
#        several checkouts on one machine run one at a time instead of starving each other
set -eu
if [ -n "${VMHOST_LOCK:-}" ] && [ -z "${VMHOST_LOCKED:-}" ]; then
	export VMHOST_LOCKED=1
	exec flock "$VMHOST_LOCK" sh "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
build=${LIGERO_BUILD:-build}
ligero=${LIGERO:-$build/ligero}
timeout=900
smp=2
mem=2G
files=
bins=
trees=
disks=
disk_space=2G
disks_out=
tap=
while [ $# -gt 1 ]; do
	case "$1" in
	--file) files="$files
$2"; shift 2 ;;
	--bin) bins="$bins $2"; shift 2 ;;
	--tree) trees="$trees $2"; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--disk) disks="$disks
$2"; shift 2 ;;
	--disk-space) disk_space=$2; shift 2 ;;
	--disks-out) disks_out=$2; shift 2 ;;
	--tap) tap=$2; shift 2 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { sed -n '/^# usage/,/^# env/p' "$0" >&2; exit 2; }
script=$1
fail() { echo "vmhost: $*" >&2; exit 125; }
usage() { echo "vmhost: $*" >&2; exit 2; }
disk_src() { echo "${1%%:*}"; }
disk_name() { case "$1" in *:*) echo "${1#*:}" ;; *) basename "$1" ;; esac; }
while IFS= read -r d; do # checked before anything is built
	[ -n "$d" ] || continue
	[ -f "$(disk_src "$d")" ] || usage "--disk $d: $(disk_src "$d") is not a file"
	case "$(disk_name "$d")" in
	'' | */* | . | .. | lost+found) usage "--disk $d: NAME must be a plain file name" ;;
	esac
done <<EOF
$disks
EOF
space=$(numfmt --from=iec "$disk_space" 2>/dev/null) || usage "--disk-space $disk_space: not a size"
# The emulator: VMHOST_QEMU (a qemu-system-x86_64 binary; its firmware is looked up next to it,
# in ../share/qemu, when that exists), else the one on PATH.
qemu_bin=${VMHOST_QEMU:-qemu-system-x86_64}
command -v "$qemu_bin" >/dev/null || fail "$qemu_bin not found (apt-get install qemu-system-x86)"
qemu_data=
qemu_share="$(dirname "$(command -v "$qemu_bin")")/../share/qemu"
[ -z "${VMHOST_QEMU:-}" ] || [ ! -d "$qemu_share" ] || qemu_data="-L $qemu_share"
[ -x "$ligero" ] || fail "$ligero: no ligero binary (build first, or set LIGERO)"
busybox=$(command -v busybox) || fail "need busybox-static"

guest=$(sh "$here/../guest/build.sh" "$build/guest") || fail "cannot build the test guest"
state="$build/vmhost"
mkdir -p "$state"
state=$(cd "$state" && pwd)

# The L1 base image: busybox, KVM modules, init. Cached; rebuilt when its inputs change.
base="$state/base.cpio.gz"
if [ ! -f "$base" ] || [ "$here/init.sh" -nt "$base" ] || [ "$guest/vmlinuz" -nt "$base" ] ||
	[ "$here/vmhost.sh" -nt "$base" ]; then
	root="$state/base.root"
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/lib/modules" "$root/work"
	cp "$busybox" "$root/bin/busybox"
	for app in $("$busybox" --list); do
		[ "$app" = busybox ] || ln -s busybox "$root/bin/$app"
	done
	cp "$here/init.sh" "$root/init"
	chmod 755 "$root/init"
	# virtio_blk for the --disk image (ext4 is built into the cloud kernel), virtio_net for --tap
	/usr/bin/python3 "$here/../guest/modules.py" "$guest/modules" kvm_amd virtio_pci virtio_blk virtio_net \
		>"$root/etc/modules.order"
	while read -r m; do
		mkdir -p "$root/lib/modules/$(dirname "$m")"
		cp "$guest/modules/$m" "$root/lib/modules/$m"
	done <"$root/etc/modules.order"
	(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$base.tmp"
	mv "$base.tmp" "$base"
	rm -rf "$root"
fi

# This run's files, appended as a second (uncompressed) cpio archive.
run=$(mktemp -d "$state/run.XXXXXX")
trap 'rm -rf "$run"' EXIT INT TERM
root="$run/root"
mkdir -p "$root/work/guest"
add_bin() { # an executable and the shared libraries it needs, at their host paths
	mkdir -p "$root$(dirname "$1")"
	cp -L "$1" "$root$1"
	for lib in $(ldd "$1" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'); do
		mkdir -p "$root$(dirname "$lib")"
		[ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
	done
}
add_bin "$(cd "$(dirname "$ligero")" && pwd)/$(basename "$ligero")"
cp "$ligero" "$root/work/ligero"
cp "$guest/vmlinuz" "$guest/initrd.img" "$root/work/guest/"
cp "$script" "$root/work/script.sh"
for b in $bins; do add_bin "$b"; done
for t in $trees; do mkdir -p "$root$(dirname "$t")"; cp -a "$t" "$root$t"; done
echo "$files" | while IFS= read -r f; do
	[ -n "$f" ] || continue
	src=${f%%:*}
	dst=${f#*:}
	[ "$dst" != "$f" ] || dst=$(basename "$src")
	mkdir -p "$root/work/$(dirname "$dst")"
	cp -a "$src" "$root/work/$dst"
done
(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null) >"$run/run.cpio"

# The --disk files, in a scratch ext4 image of their size plus --disk-space.
drive=
if [ -n "$disks" ]; then
	mkdir "$run/disks"
	echo "$disks" | while IFS= read -r d; do
		[ -n "$d" ] || continue
		# a hard link where the file system allows it: mkfs.ext4 -d copies it anyway
		ln -f "$(disk_src "$d")" "$run/disks/$(disk_name "$d")" 2>/dev/null ||
			cp --sparse=always "$(disk_src "$d")" "$run/disks/$(disk_name "$d")"
	done
	used=$(du -s -B1M --apparent-size "$run/disks" | cut -f1)
	mkfs.ext4 -q -F -L vmhost-disks -d "$run/disks" "$run/disks.img" \
		"$((used + 64 + space / 1048576))M" >/dev/null ||
		fail "mkfs.ext4 -d $run/disks: cannot make the disk image"
	rm -rf "$run/disks"
	drive="-drive file=$run/disks.img,if=virtio,format=raw,cache=unsafe"
fi
# The kernel takes an uncompressed archive after a compressed one only at a 4-byte aligned
# offset, and skips zeros in between.
pad=$(( (4 - $(wc -c <"$base") % 4) % 4 ))
{ cat "$base"; head -c "$pad" /dev/zero; cat "$run/run.cpio"; } >"$run/initrd"
rm -rf "$root"

: >"$run/console.log"
: >"$run/results.log"
# shellcheck disable=SC2086
timeout "$timeout" "$qemu_bin" $qemu_data -accel "${VMHOST_ACCEL:-tcg}" -M q35 -cpu EPYC,+svm,+npt -smp "$smp" -m "$mem" \
	-nodefaults -display none -no-reboot \
	-kernel "$guest/vmlinuz" -initrd "$run/initrd" $drive \
	${tap:+-netdev tap,id=n0,ifname=$tap,script=no,downscript=no -device virtio-net-pci,netdev=n0} \
	-append "console=ttyS0 quiet panic=-1 8250.nr_uarts=2 vmhost.npt=${VMHOST_NPT:-1}${drive:+ vmhost.disks=1}" \
	-serial "file:$run/console.log" -serial "file:$run/results.log" </dev/null &
qemu=$!
# L1's own kernel can lock up or oops under the emulator (docs/ligero-run.md): stop at once
# instead of waiting for the timeout; the script then did not finish (status 125). It can also
# stall without a word: once init's heartbeat has started, a console silent for $stall seconds
# means the same.
stall=${VMHOST_STALL:-180}
last_size=0
last_change=$(date +%s)
while kill -0 $qemu 2>/dev/null; do
	if grep -q -a -E 'soft lockup|Kernel panic|BUG: |Oops' "$run/console.log"; then
		sleep 2 # the rest of the report
		echo "vmhost: the emulated host's kernel failed (see above); stopped" >>"$run/console.log"
		kill $qemu 2>/dev/null
		break
	fi
	now=$(date +%s)
	size=$(wc -c <"$run/console.log")
	if [ "$size" != "$last_size" ]; then
		last_size=$size
		last_change=$now
	elif [ "$stall" -gt 0 ] && [ $((now - last_change)) -ge "$stall" ] &&
		grep -q -a '^VMHOST-ALIVE' "$run/console.log"; then
		echo "vmhost: the emulated host stopped responding (no heartbeat for ${stall}s); stopped" >>"$run/console.log"
		kill $qemu 2>/dev/null
		break
	fi
	sleep 2
done
wait $qemu || echo "vmhost: qemu exited with status $? (timeout ${timeout}s?)" >>"$run/console.log"

# NUL bytes (a guest console's line noise) would make grep call the whole output binary and
# print none of it: they are dropped, and grep reads text regardless (-a).
tr -d '\r\000' <"$run/results.log" | grep -a -v '^VMHOST-RC=\|^VMHOST-UP ' >"$run/output" || true
cat "$run/output"
rc=$(tr -d '\r\000' <"$run/results.log" | sed -n 's/^VMHOST-RC=\([0-9]*\)$/\1/p' | tail -n1)
# a script that printed nothing at all is shown with what came on the second port and the
# console (CI saw it once, from a script that prints a line first thing)
if [ ! -s "$run/output" ]; then
	echo "vmhost: the script printed nothing; the second serial port had $(wc -c <"$run/results.log") bytes:" >&2
	tr -d '\000' <"$run/results.log" | tail -c 2000 >&2
fi
if [ -z "$rc" ] || [ ! -s "$run/output" ] || [ "${VMHOST_VERBOSE:-0}" = 1 ]; then
	echo "---- emulated host console ----" >&2
	tr -d '\r\000' <"$run/console.log" | grep -a -v '^VMHOST-ALIVE ' | tail -n 60 >&2
fi
[ -n "$rc" ] || fail "the emulated host did not finish the script"
if [ -n "$drive" ] && [ -n "$disks_out" ]; then
	mkdir -p "$disks_out"
	# L1 unmounted the image; -p replays a journal it could not (it never should have to).
	e2fsck -p "$run/disks.img" >/dev/null 2>&1 || true
	debugfs -R "ls -p /" "$run/disks.img" 2>/dev/null | awk -F/ '$3 ~ /^100/ { print $6 }' >"$run/files"
	while IFS= read -r f; do
		debugfs -R "dump -p \"/$f\" \"$disks_out/$f\"" "$run/disks.img" >/dev/null 2>&1 ||
			{ echo "vmhost: cannot copy $f out of the disk image to $disks_out" >&2; exit 126; }
	done <"$run/files"
fi
exit "$rc"
