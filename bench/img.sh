#!/bin/sh
# ligero img vs qemu-img, side by side with hyperfine, on the same files in one run.
#
#   bench/img.sh [path/to/ligero]      (default: build/ligero)
#
# Operations: create one overlay, create 20 overlays, info, check, the last three on a 4 GiB
# qcow2 image holding 1.5 GiB of mixed data (random and patterned 1 MiB chunks spread over the
# disk), made once under bench/out/ (gitignored) and reused. Prints hyperfine's report for each
# operation, then a table: mean times, ligero/qemu-img, and qemu-img/ligero ("x faster").
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ligero=$(realpath "${1:-$repo/build/ligero}")
out=$here/out
img=$out/data-4g.qcow2
runs=${RUNS:-30}

for tool in hyperfine qemu-img jq; do
	command -v $tool >/dev/null || { echo "img.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$ligero" ] || { echo "img.sh: no ligero binary at $ligero" >&2; exit 1; }
mkdir -p "$out"

if [ ! -f "$img" ]; then
	echo "making $img (once): 4 GiB virtual, 1.5 GiB of data" >&2
	raw=$out/data-4g.raw
	rm -f "$raw"
	truncate -s 4G "$raw"
	# 1536 chunks of 1 MiB, one every 2.5 MiB or so: every third random (incompressible),
	# the others a byte pattern with a random 4 KiB block in the middle.
	i=0
	while [ $i -lt 1536 ]; do
		off=$((i * 8 / 3))
		if [ $((i % 3)) -eq 0 ]; then
			dd if=/dev/urandom of="$raw" bs=1M seek=$off count=1 conv=notrunc status=none
		else
			head -c 1048576 /dev/zero | tr '\0' "\\$(printf %03o $((i % 200 + 32)))" |
				dd of="$raw" bs=1M seek=$off count=1 iflag=fullblock conv=notrunc status=none
			dd if=/dev/urandom of="$raw" bs=4k seek=$((off * 256 + 128)) count=1 \
				conv=notrunc status=none
		fi
		i=$((i + 1))
	done
	qemu-img convert -f raw -O qcow2 "$raw" "$img.tmp"
	rm -f "$raw"
	mv "$img.tmp" "$img"
fi

ov=$out/overlays
rm -rf "$ov"
mkdir -p "$ov"
# Overlays name the base relative to their own directory, like a real chain.
base=../$(basename "$img")

bench() { # name, qemu-img command, ligero command, [prepare command], [shell]
	# Without a shell (-N) unless the command needs one: the times are a few ms, and
	# hyperfine cannot subtract a shell's startup that precisely.
	name=$1
	json=$out/img-$name.json
	shell=-N
	[ "${5:-}" = shell ] && shell=
	set -- $shell --warmup 3 --runs "$runs" --export-json "$json" ${4:+--prepare "$4"} \
		-n qemu-img "$2" -n ligero "$3"
	hyperfine "$@"
	q=$(jq '.results[] | select(.command == "qemu-img") | .mean * 1000' "$json")
	l=$(jq '.results[] | select(.command == "ligero") | .mean * 1000' "$json")
	printf '%s\t%s\t%s\n' "$name" "$q" "$l" >>"$out/img-table.tsv"
}

rm -f "$out/img-table.tsv"
many() { # tool prefix: 20 overlays in one shell
	echo "for i in \$(seq 20); do $1 create -q -f qcow2 -b $base -F qcow2 $ov/o\$i.qcow2 >/dev/null; done"
}
bench create-overlay \
	"qemu-img create -q -f qcow2 -b $base -F qcow2 $ov/one.qcow2" \
	"$ligero img create -q -f qcow2 -b $base -F qcow2 $ov/one.qcow2" \
	"rm -f $ov/one.qcow2"
bench create-20-overlays "$(many qemu-img)" "$(many "$ligero img")" "rm -f $ov/o*.qcow2" shell
bench info "qemu-img info $img" "$ligero img info $img"
bench check "qemu-img check $img" "$ligero img check $img"
rm -rf "$ov"

echo
echo "ligero img vs qemu-img $(qemu-img --version | head -1 | awk '{print $3}'), mean of $runs runs"
awk -F'\t' 'BEGIN {
	printf "%-20s %12s %12s %14s %12s\n", "operation", "qemu-img ms", "ligero ms", "ligero/qemu", "x faster"
}
{
	printf "%-20s %12.2f %12.2f %14.2f %12.2f\n", $1, $2, $3, $3 / $2, $2 / $3
}' "$out/img-table.tsv"
