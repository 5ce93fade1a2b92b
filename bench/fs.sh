#!/bin/sh
# ligero fs against libguestfs on the same qcow2 image, in one run.
#
#   bench/fs.sh            (LIGERO=path/to/ligero, RUNS=5, GUESTFS_RUNS=3, OUT=bench/out/fs)
#
# The image: a GPT disk (ESP + ext4 root) converted to qcow2, root built by mkfs.ext4 -d from a
# generated tree (os-release, 40 directories of 50 small files, a 64 MiB file). Each command is
# timed end to end (process start to exit), RUNS times for ligero and GUESTFS_RUNS times for
# libguestfs (each of its runs boots an appliance); the table shows medians and the ratio.
# libguestfs runs with LIBGUESTFS_BACKEND=direct and, because /dev/kvm cannot boot its appliance
# here, LIBGUESTFS_BACKEND_SETTINGS=force_tcg; its one-off appliance build is done before timing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
LIGERO=${LIGERO:-$repo/build/ligero}
RUNS=${RUNS:-5}
GUESTFS_RUNS=${GUESTFS_RUNS:-3}
OUT=${OUT:-$repo/bench/out/fs}
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

for t in mkfs.ext4 sgdisk mkfs.vfat qemu-img; do
	command -v $t >/dev/null || { echo "bench/fs.sh: $t is not installed" >&2; exit 1; }
done
[ -x "$LIGERO" ] || { echo "bench/fs.sh: $LIGERO is not built" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT/tree/etc" "$OUT/tree/data" "$OUT/tree/bin" "$OUT/tree/usr/bin"
tree=$OUT/tree
# Enough of a Linux root for libguestfs's inspection, which virt-copy-out insists on.
printf 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n' > "$tree/etc/os-release"
printf '/dev/sda2 / ext4 defaults 0 1\n' > "$tree/etc/fstab"
echo bench-host > "$tree/etc/hostname"
i=0
while [ $i -lt 40 ]; do
	mkdir -p "$tree/data/d$i"
	j=0
	while [ $j -lt 50 ]; do
		head -c $(( (i * 50 + j) * 37 % 9000 + 1 )) /dev/urandom > "$tree/data/d$i/f$j"
		j=$((j + 1))
	done
	i=$((i + 1))
done
head -c 64M /dev/urandom > "$tree/data/big.bin"

img=$OUT/disk.raw
truncate -s 512M "$img"
sgdisk -n 1:2048:+32M -t 1:ef00 -n 2:0:0 -t 2:8300 "$img" >/dev/null
p2_start=$(( $(sgdisk -i 2 "$img" | sed -n 's/^First sector: \([0-9]*\).*/\1/p') * 512 ))
p2_sectors=$(sgdisk -i 2 "$img" | sed -n 's/^Partition size: \([0-9]*\) sectors.*/\1/p')
truncate -s 32M "$OUT/esp" && mkfs.vfat "$OUT/esp" >/dev/null
mkfs.ext4 -q -b 4096 -d "$tree" "$OUT/root" "$((p2_sectors / 8))"
dd if="$OUT/esp" of="$img" bs=1M seek=1 conv=notrunc status=none
dd if="$OUT/root" of="$img" bs=512 seek=$((p2_start / 512)) conv=notrunc status=none
qemu-img convert -O qcow2 "$img" "$OUT/disk.qcow2"
rm -f "$img" "$OUT/esp" "$OUT/root"
disk=$OUT/disk.qcow2

now() { date +%s%N; }

# median of $2 timings (ms) of a shell command
timeit() {
	k=0
	: > "$OUT/times"
	while [ $k -lt "$2" ]; do
		rm -rf "$OUT/co" && mkdir -p "$OUT/co" "$OUT/mnt"
		t0=$(now)
		sh -c "$1" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; echo FAIL; return; }
		t1=$(now)
		echo $(( (t1 - t0) / 1000 )) >> "$OUT/times"
		k=$((k + 1))
	done
	sort -n "$OUT/times" | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.1f", m/1000}'
}

L="$LIGERO fs"
set -- \
	"cat" "$L cat $disk /etc/os-release" "virt-cat --format=qcow2 -a $disk -m /dev/sda2 /etc/os-release" \
	"ls -R" "$L ls -R $disk /" "virt-ls --format=qcow2 -a $disk -m /dev/sda2 -R /" \
	"copy-out" "$L copy-out $disk /data $OUT/co" "virt-copy-out --format=qcow2 -a $disk /data $OUT/co" \
	"mount+ls -R+umount" \
	"$L mount --ro $disk $OUT/mnt && ls -R $OUT/mnt && $L umount $OUT/mnt" \
	"guestmount --format=qcow2 --ro -a $disk -m /dev/sda2 $OUT/mnt && ls -R $OUT/mnt && guestunmount $OUT/mnt"

# Sanity: both tools see the same thing (when libguestfs runs at all).
guestfs_ok=no
if command -v virt-cat >/dev/null 2>&1; then
	echo "libguestfs: $(guestfish --version 2>/dev/null); building/checking the appliance..." >&2
	if virt-cat --format=qcow2 -a "$disk" -m /dev/sda2 /etc/hostname > "$OUT/g-host" 2> "$OUT/g-err" &&
	   [ "$($LIGERO fs cat "$disk" /etc/hostname)" = "$(cat "$OUT/g-host")" ]; then
		guestfs_ok=yes
	else
		echo "libguestfs cannot run here:" >&2
		tail -5 "$OUT/g-err" >&2
	fi
else
	echo "libguestfs is not installed (apt-get install libguestfs-tools)" >&2
fi

echo "ligero fs vs libguestfs, $(basename "$disk") ($(du -h "$disk" | cut -f1) on disk), median of $RUNS (ligero) and $GUESTFS_RUNS (libguestfs) runs"
printf '%-20s %12s %16s %8s\n' "command" "ligero ms" "libguestfs ms" "ratio"
while [ $# -ge 3 ]; do
	name=$1 lcmd=$2 gcmd=$3
	shift 3
	lt=$(timeit "$lcmd" "$RUNS")
	if [ $guestfs_ok = yes ]; then
		gt=$(timeit "$gcmd" "$GUESTFS_RUNS")
		ratio=$(awk -v g="$gt" -v l="$lt" 'BEGIN { if (l > 0 && g != "FAIL") printf "%.0fx", g / l; else print "-" }')
	else
		gt="n/a" ratio="-"
	fi
	printf '%-20s %12s %16s %8s\n' "$name" "$lt" "$gt" "$ratio"
done
