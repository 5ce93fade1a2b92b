#!/bin/sh
# Build the test and demo guest into OUTDIR (default: $LIGERO_BUILD/guest, LIGERO_BUILD
# defaulting to build): OUTDIR/vmlinuz, the kernel of Debian's linux-image-cloud-amd64 package,
# and OUTDIR/initrd.img, a busybox-static initramfs running tests/guest/init.sh. The kernel
# package is fetched with `apt-get download` into $LIGERO_CACHE (default OUTDIR/cache) and
# unpacked there with dpkg-deb; nothing outside OUTDIR and the cache is touched. Cached: a second
# run only rebuilds what is older than its inputs.
#   OUTDIR/modules/  the unpacked module tree (the emulated host takes kvm.ko from it)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${LIGERO_BUILD:-build}
out=${1:-$build/guest}
cache=${LIGERO_CACHE:-$out/cache}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
cache=$(cd "$cache" && pwd)
# One build at a time per output directory (test processes call this side by side): the
# second waits for the first and then finds its result up to date.
exec 9>"$out/.build.lock"
flock 9

say() { echo "guest: $*" >&2; }

busybox=$(command -v busybox || true)
[ -n "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 ||
	{ say "need a static busybox (apt-get install busybox-static)"; exit 1; }

# The kernel: newest linux-image-*-cloud-amd64 the archive offers, or the cached one offline.
deb=
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	sed -n 's/.*Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
if [ -n "$pkg" ]; then
	deb=$(ls "$cache"/"$pkg"_*.deb 2>/dev/null | head -n1 || true)
	if [ -z "$deb" ]; then
		say "downloading $pkg"
		(cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) ||
			say "apt-get download $pkg failed"
		deb=$(ls "$cache"/"$pkg"_*.deb 2>/dev/null | head -n1 || true)
	fi
fi
[ -n "$deb" ] || deb=$(ls -t "$cache"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | head -n1 || true)
[ -n "$deb" ] || { say "no cloud kernel package: run 'apt-get update' and retry"; exit 1; }

stamp="$out/.kernel"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(basename "$deb")" ] || [ ! -f "$out/vmlinuz" ]; then
	say "unpacking $(basename "$deb")"
	rm -rf "$out/pkg" "$out/modules"
	dpkg-deb -x "$deb" "$out/pkg"
	cp "$out"/pkg/boot/vmlinuz-* "$out/vmlinuz"
	mv "$out"/pkg/lib/modules/* "$out/modules"
	rm -rf "$out/pkg"
	basename "$deb" >"$stamp"
	rm -f "$out/initrd.img"
fi

# The initramfs.
if [ ! -f "$out/initrd.img" ] || [ "$here/init.sh" -nt "$out/initrd.img" ] ||
	[ "$here/build.sh" -nt "$out/initrd.img" ]; then
	say "building initrd.img"
	root="$out/initrd.root"
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/lib/modules" "$root/tmp"
	cp "$busybox" "$root/bin/busybox"
	for app in $("$busybox" --list); do
		[ "$app" = busybox ] || ln -s busybox "$root/bin/$app"
	done
	cp "$here/init.sh" "$root/init"
	chmod 755 "$root/init"
	/usr/bin/python3 "$here/modules.py" "$out/modules" virtio virtio_ring virtio_pci \
		virtio_blk virtio_net failover net_failover virtio_balloon virtio_rng \
		pvpanic pvpanic_mmio evdev button >"$root/etc/modules.order"
	while read -r m; do
		mkdir -p "$root/lib/modules/$(dirname "$m")"
		cp "$out/modules/$m" "$root/lib/modules/$m"
	done <"$root/etc/modules.order"
	(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$out/initrd.img.tmp"
	mv "$out/initrd.img.tmp" "$out/initrd.img"
	rm -rf "$root"
fi
echo "$out"
