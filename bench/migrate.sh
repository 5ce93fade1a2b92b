#!/usr/bin/env bash
# ligero migrate side by side with the manual method of the OpenVZ-to-KVM recipe (rsync with
# the recipe's excludes and flags into the VM's disk) on the same 2 GiB container and the same
# base, then a re-sync after 1% of the files change. Prints wall time and bytes written for
# each, and the ratios.
#
# The container is the Debian 12 tree of the migrate tests (tests/system/migrate_fixtures.py,
# debootstrap) filled up to 2 GiB with files of mixed sizes (random bytes); the base is the
# tests' Debian 12 base on a GPT qcow2. ligero writes a new qcow2 overlay of the base; the
# manual method writes into a raw copy of the base attached with a loop device (qemu-nbd's
# nbd module is not available everywhere; the loop device is the recipe's "mounted disk"),
# timed from the mount to the unmount with everything written back (sync). The copy of the
# base is set-up, reported apart. Both read the container from a warm page cache.
#
# Bytes written: ligero's, what the process wrote (/proc/PID/io write_bytes: to the overlay
# file); rsync's, what reached the loop device (its sectors written, /sys/block/loopN/stat).
#
# Needs root (debootstrap, mount). Work files in bench/out/migrate (gitignored), built once.
# env: LIGERO (default build/ligero), LIGERO_CACHE (the fixtures' cache), SIZE_GIB (2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
L=${LIGERO:-$root/build/ligero}
out=$root/bench/out/migrate
size_gib=${SIZE_GIB:-2}
export LIGERO_CACHE=${LIGERO_CACHE:-$root/build/guest-cache}
mkdir -p "$out"
[ "$(id -u)" = 0 ] || { echo "bench/migrate.sh: needs root (debootstrap, mount)" >&2; exit 1; }

# The fixtures: the container (with the data that makes it SIZE_GIB) and the base image.
if [ ! -f "$out/ready-$size_gib" ]; then
	rm -rf "${out:?}"/*
	python3 - "$out" "$size_gib" <<'EOF'
import os, random, subprocess, sys
from pathlib import Path
sys.path.insert(0, "tests/system")
import migrate_fixtures as mf
out, gib = Path(sys.argv[1]), int(sys.argv[2])
ct = mf.container(out / "ct")
base = mf.debootstrap_tree("base", out / "base-tree")
mf.base_image(base, out / "base.qcow2", size_mb=gib * 1024 + 3072)
used = int(subprocess.run(["du", "-sb", ct], capture_output=True, text=True).stdout.split()[0])
rnd = random.Random(2024)
left, n = gib * (1 << 30) - used, 0
while left > 0:
    d = ct / "srv/bulk" / f"d{n // 500:03d}"
    d.mkdir(parents=True, exist_ok=True)
    # Mostly small files (a long tail of larger ones), one in 300 of 1-16 MiB.
    size = min(left, int(rnd.paretovariate(1.1) * 6000) if rnd.random() < 0.997
               else rnd.randrange(1 << 20, 16 << 20))
    with open(d / f"f{n:06d}", "wb") as f:
        f.write(os.urandom(size))
    left -= size
    n += 1
print(f"container: {gib} GiB, {n} data files")
EOF
	qemu-img convert -O raw "$out/base.qcow2" "$out/base.raw"
	touch "$out/ready-$size_gib"
fi
ct=$out/ct
nfiles=$(find "$ct" -xdev | wc -l)

warm() { tar -C "$ct" -cf - . | cat >/dev/null; }
now() { date +%s.%N; }

# ligero migrate ARGS...: prints "seconds bytes_written"
ligero_run() {
	warm
	local t0 t1 pid wb
	t0=$(now)
	"$L" migrate "$@" >"$out/ligero.log" &
	pid=$!
	wb=0
	while kill -0 "$pid" 2>/dev/null; do
		wb=$(awk '/^write_bytes/ {print $2}' "/proc/$pid/io" 2>/dev/null || echo "$wb")
		sleep 0.05
	done
	wait "$pid"
	t1=$(now)
	echo "$(echo "$t1 - $t0" | bc) $wb"
}

# The recipe's rsync into the raw copy through a loop device: prints "seconds bytes_written"
manual_run() {
	warm
	local dev mnt t0 t1 before after start size
	# The root partition by offset (partition device nodes need udev).
	read -r start size < <(sfdisk --json "$out/manual.raw" | python3 -c '
import json, sys
p = json.load(sys.stdin)["partitiontable"]["partitions"][1]
print(p["start"] * 512, p["size"] * 512)')
	dev=$(losetup -f --show -o "$start" --sizelimit "$size" "$out/manual.raw")
	mnt=$(mktemp -d)
	before=$(awk '{print $7}' "/sys/block/${dev#/dev/}/stat")
	t0=$(now)
	mount "$dev" "$mnt"
	rsync --exclude=/etc/fstab --exclude=/boot --exclude=/proc --exclude=/lib/modules/ \
		--exclude=/etc/udev --exclude=/lib/udev --exclude=/sys --delete --numeric-ids \
		-apogtStlHAX "$ct/" "$mnt/"
	umount "$mnt"
	sync
	t1=$(now)
	after=$(awk '{print $7}' "/sys/block/${dev#/dev/}/stat")
	losetup -d "$dev"
	rmdir "$mnt"
	echo "$(echo "$t1 - $t0" | bc) $(((after - before) * 512))"
}

rm -f "$out/vm.qcow2"
t0=$(now)
cp --sparse=always "$out/base.raw" "$out/manual.raw"
copy_s=$(echo "$(now) - $t0" | bc)

read -r l1_s l1_b < <(ligero_run "$ct" --base "$out/base.qcow2" -o "$out/vm.qcow2")
read -r m1_s m1_b < <(manual_run)

# 1% of the files change (new content, same size).
python3 - "$ct" <<'EOF'
import os, random, sys
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs
               if os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f)))
rnd = random.Random(7)
for p in rnd.sample(files, len(files) // 100):
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.write(os.urandom(min(size, 4096)))
EOF
read -r l2_s l2_b < <(ligero_run --resync "$ct" "$out/vm.qcow2")
read -r m2_s m2_b < <(manual_run)
changed=$(grep -o '[0-9]* updated' "$out/ligero.log" | head -1)

printf 'container: %s GiB, %s entries; base: %s\n' "$size_gib" "$nfiles" "$(basename "$out/base.qcow2")"
printf '%-34s %10s %14s\n' "" "seconds" "bytes written"
printf '%-34s %10.2f %14s\n' "first run: ligero migrate" "$l1_s" "$l1_b"
printf '%-34s %10.2f %14s\n' "first run: rsync into a loop mount" "$m1_s" "$m1_b"
printf '%-34s %10.2f %14s\n' "  (set-up: copy of the raw base)" "$copy_s" "-"
printf '%-34s %10.2f %14s   (%s)\n' "re-sync (1%): ligero --resync" "$l2_s" "$l2_b" "$changed"
printf '%-34s %10.2f %14s\n' "re-sync (1%): rsync again" "$m2_s" "$m2_b"
printf 'ratios ligero/rsync: first run time %.2f, bytes %.2f; re-sync time %.2f\n' \
	"$(echo "$l1_s / $m1_s" | bc -l)" "$(echo "$l1_b / $m1_b" | bc -l)" \
	"$(echo "$l2_s / $m2_s" | bc -l)"
