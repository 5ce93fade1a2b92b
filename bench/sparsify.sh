#!/usr/bin/env bash
# ligero sparsify side by side with virt-sparsify (libguestfs) on the same image, in one run:
# a 4 GiB qcow2 disk holding an ext4 filesystem with 1.5 GiB of live files (text, binaries,
# random) and 1 GiB of deleted files. Prints wall time, output size and peak temporary space,
# and the ratios. The image is built once under bench/out/ (gitignored).
#
# virt-sparsify boots an appliance VM; where /dev/kvm cannot run it (PVM hosts) it runs under
# TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg), which is what users of such hosts get.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
L=${LIGERO:-$root/build/ligero}
out=$root/bench/out/sparsify
mkdir -p "$out"
img=$out/vm.qcow2

build_image() {
	local tree=$out/tree fs=$out/fs.img
	# The generators below are cut short by head: their SIGPIPE is expected.
	set +o pipefail
	rm -rf "$tree" "$fs"
	mkdir -p "$tree/usr/share" "$tree/usr/lib" "$tree/data"
	# ~0.5 GiB of text, ~0.5 GiB of binaries, ~0.5 GiB of random bytes.
	find /usr/share -type f -size +4k 2>/dev/null | head -n 40000 | while read -r f; do
		cat "$f"
	done | head -c 512M > "$tree/usr/share/text.bin"
	find /usr/lib /usr/bin -type f -size +16k 2>/dev/null | while read -r f; do
		cat "$f"
	done | head -c 512M > "$tree/usr/lib/binaries.bin"
	head -c 512M /dev/urandom > "$tree/data/random.bin"
	mkfs.ext4 -q -F -d "$tree" "$fs" 4G
	# 1 GiB of deleted data: written, then removed (the blocks keep their bytes).
	head -c 1G /dev/urandom > "$out/junk.bin"
	debugfs -w -R "write $out/junk.bin junk" "$fs" >/dev/null
	debugfs -w -R "rm junk" "$fs" >/dev/null
	rm -f "$out/junk.bin"
	qemu-img convert -O qcow2 "$fs" "$img"
	rm -rf "$tree" "$fs"
	set -o pipefail
}
[ -f "$img" ] || build_image

# Peak bytes used under a directory while a command runs (sampled every 0.2 s).
peak_du() { # dir pidfile-> prints peak
	local dir=$1 pid=$2 peak=0 cur
	while kill -0 "$pid" 2>/dev/null; do
		# bytes of the files under dir (the directory entries themselves do not count)
		cur=$(find "$dir" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}')
		[ "${cur:-0}" -gt "$peak" ] && peak=$cur
		sleep 0.2
	done
	echo "$peak"
}

# run NAME TMPDIR cmd... -> prints "seconds peak_tmp_bytes"
run() {
	local tmp=$1
	shift
	rm -rf "$tmp"
	mkdir -p "$tmp"
	local t0 t1 peak
	t0=$(date +%s.%N)
	TMPDIR=$tmp "$@" >"$out/last.log" 2>&1 &
	local pid=$!
	peak=$(peak_du "$tmp" "$pid")
	wait "$pid" || { echo "failed: $*" >&2; cat "$out/last.log" >&2; return 1; }
	t1=$(date +%s.%N)
	echo "$(echo "$t1 - $t0" | bc) $peak"
}

export LIBGUESTFS_BACKEND=direct
if [ ! -r /dev/kvm ] || [ -e /sys/module/kvm_pvm ] || ! grep -qw -e vmx -e svm /proc/cpuinfo; then
	export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
fi

have_virt=1
command -v virt-sparsify >/dev/null || { have_virt=0; echo "virt-sparsify not installed (apt-get install guestfs-tools): ligero only"; }

printf '%-28s %10s %12s %14s\n' "run" "seconds" "output MiB" "peak tmp MiB"
line() { printf '%-28s %10.2f %12.1f %14.1f\n' "$1" "$2" "$(echo "$3/1048576" | bc -l)" "$(echo "$4/1048576" | bc -l)"; }

# ligero's --compress writes zstd; zlib (what virt-sparsify's qemu-img writes) is run as well.
rm -f "$out/l-copy.qcow2" "$out/v-copy.qcow2"
read -r lt lp < <(run "$out/tmp-l" "$L" sparsify --compress "$img" "$out/l-copy.qcow2")
ls_=$(stat -c %s "$out/l-copy.qcow2")
line "ligero copy --compress" "$lt" "$ls_" "$lp"
rm -f "$out/l-zlib.qcow2"
read -r zt zp < <(run "$out/tmp-l" "$L" sparsify --compress -o compression_type=zlib "$img" "$out/l-zlib.qcow2")
zs=$(stat -c %s "$out/l-zlib.qcow2")
line "ligero copy --compress zlib" "$zt" "$zs" "$zp"
if [ $have_virt = 1 ]; then
	read -r vt vp < <(run "$out/tmp-v" virt-sparsify --compress "$img" "$out/v-copy.qcow2")
	vs=$(stat -c %s "$out/v-copy.qcow2")
	line "virt-sparsify copy --compress" "$vt" "$vs" "$vp"
fi

cp "$img" "$out/l-inplace.qcow2"
read -r lit lip < <(run "$out/tmp-l" "$L" sparsify --in-place "$out/l-inplace.qcow2")
lis=$(( $(stat -c %b "$out/l-inplace.qcow2") * 512 ))
line "ligero --in-place" "$lit" "$lis" "$lip"
if [ $have_virt = 1 ]; then
	cp "$img" "$out/v-inplace.qcow2"
	read -r vit vip < <(run "$out/tmp-v" virt-sparsify --in-place "$out/v-inplace.qcow2")
	vis=$(( $(stat -c %b "$out/v-inplace.qcow2") * 512 ))
	line "virt-sparsify --in-place" "$vit" "$vis" "$vip"
	echo
	printf 'copy --compress: ligero %.1fx faster, output %.2fx of virt-sparsify'\''s, temp space %s vs %s bytes\n' \
		"$(echo "$vt / $lt" | bc -l)" "$(echo "$ls_ / $vs" | bc -l)" "$lp" "$vp"
	printf 'copy, zlib both: ligero %.1fx faster, output %.2fx of virt-sparsify'\''s\n' \
		"$(echo "$vt / $zt" | bc -l)" "$(echo "$zs / $vs" | bc -l)"
	printf 'in place:        ligero %.1fx faster, file %.2fx of virt-sparsify'\''s (on-disk bytes)\n' \
		"$(echo "$vit / $lit" | bc -l)" "$(echo "$lis / $vis" | bc -l)"
fi
rm -rf "$out/tmp-l" "$out/tmp-v"
