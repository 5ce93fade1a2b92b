#!/bin/sh
# Seeds for fuzz_xfs: small filesystems made by mkfs.xfs -p, cut down to their metadata and data.
# Each holds every directory form (short form, block, leaf, node), a multi-block file, a
# symlink and a device node, as v5 (4 KiB and 1 KiB blocks, 64-bit extent counters) and v4
# (512-byte blocks). The log goes to a separate device (the reader never reads it) and trailing
# zeros are cut off: the fuzz target reads past the end of its input as zeros, up to the size
# the superblock claims.
#
#   fuzz/make_xfs_corpus.sh fuzz/corpus/xfs
set -eu
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A tree: 5, 40, 300 (leaf form) and 600 (node form) entries, a nested file, random data.
mkdir -p "$tmp/t/d5" "$tmp/t/d40" "$tmp/t/d300" "$tmp/t/d600" "$tmp/t/sub/deeper"
i=0
while [ $i -lt 600 ]; do
	[ $i -lt 5 ] && echo $i >"$tmp/t/d5/f$i"
	[ $i -lt 40 ] && echo $i >"$tmp/t/d40/file-number-$i"
	[ $i -lt 300 ] && : >"$tmp/t/d300/entry-with-a-long-name-$i"
	: >"$tmp/t/d600/n$i"
	i=$((i + 1))
done
echo hi >"$tmp/t/sub/deeper/x"
head -c 20000 /dev/urandom >"$tmp/t/data.bin"
printf 'NAME="AlmaLinux"\nID="almalinux"\n' >"$tmp/t/os-release"

proto() { # protofile for directory $1, depth-first
	for p in "$1"/*; do
		n=${p##*/}
		if [ -d "$p" ]; then
			echo "$n d--755 0 0"
			proto "$p"
			echo '$'
		else
			echo "$n ---644 1000 1000 $p"
		fi
	done
}
{
	echo seed
	echo 0 0
	echo 'd--755 0 0'
	proto "$tmp/t"
	echo 'link l--777 0 0 sub/deeper/x'
	echo 'tty c--620 0 5 4 1'
	echo '$'
	echo '$'
} >"$tmp/proto"

# mkfs.xfs makes filesystems under 300 MB only with its fstests switch.
export TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1
for cfg in "v5-4k:-d agcount=1" \
	"v5-1k-nrext64:-b size=1024 -i nrext64=1 -d agcount=1" \
	"v4-512:-m crc=0 -b size=512 -d agcount=1"; do
	name=${cfg%%:*}
	img="$tmp/$name.img"
	truncate -s 20M "$img"
	rm -f "$tmp/log"
	truncate -s 10M "$tmp/log"
	# shellcheck disable=SC2086
	mkfs.xfs -q -f ${cfg#*:} -l logdev="$tmp/log" -p "$tmp/proto" "$img" 2>/dev/null
	# Cut the trailing zeros (keeping whole 512-byte sectors).
	end=$(python3 -c 'import sys
d = open(sys.argv[1], "rb").read().rstrip(b"\0")
print((len(d) + 511) // 512 * 512)' "$img")
	truncate -s "$end" "$img"
	cp "$img" "$out/$name"
done
ls -l "$out"
