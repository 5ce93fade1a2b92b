#!/bin/sh
# Add host programs to the test guest: writes OUT, an uncompressed cpio archive holding each
# BIN as /bin/NAME (NAME defaults to BIN's file name) and the shared libraries ldd says it
# loads, at their own paths. The kernel unpacks archives one after the other, so
# initrd.img, zero-padded to a multiple of 4 bytes, then OUT, is the guest's initrd with the
# programs in it (busybox has no fio, no util-linux blkdiscard -z): the kernel reads an archive
# that follows a compressed one only at a 4-byte boundary, and ignores it otherwise. Static
# programs bring no libraries.
#   usage: tests/guest/addbins.sh OUT BIN[:NAME]...
set -eu
[ $# -ge 2 ] || { echo "usage: $0 OUT BIN[:NAME]..." >&2; exit 2; }
out=$1
shift
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin"
for arg in "$@"; do
	bin=${arg%%:*}
	name=${arg#*:}
	[ "$name" != "$arg" ] || name=$(basename "$bin")
	[ -x "$bin" ] || { echo "addbins: $bin is not an executable" >&2; exit 1; }
	cp "$bin" "$root/bin/$name"
	# "lib => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)"; nothing for static ones
	for lib in $(ldd "$bin" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done
busybox=$(command -v busybox)
(cd "$root" && find . -mindepth 1 | "$busybox" cpio -o -H newc 2>/dev/null) >"$out"
