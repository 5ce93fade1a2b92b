#!/bin/sh
# Build the real test guests: a Debian 12 system installed with debootstrap (minbase, systemd,
# udev, systemd-networkd, iproute2, ping, the cloud kernel and its initramfs, GRUB's files),
# as two disks made from the same tree:
#   debian.qcow2  GPT, 2 GiB: 1 BIOS boot partition (1 MiB, for a later grub-install),
#                 2 ext4 root (ends 1 MiB before the disk's end), /boot inside it,
#                 /boot/grub/grub.cfg written by the guest's own grub-mkconfig
#   rhel.qcow2    RHEL 8 layout (tests/guest/rhel-layout.sh): MBR, 3 GiB: 1 XFS /boot with
#                 BLS entries and grub2/grubenv, 2 ext4 root
# plus debian.vmlinuz and debian.initrd.img (the disk's kernel and initrd, for --kernel boots),
# and debian.json/debian.env, rhel.json/rhel.env (UUIDs, kernel version, entries). Root's
# password is "ligero"; the serial console logs root in. tests/guest/README.md says how a test
# runs a command in the guest (ligero.run=, a script disk) and which markers it prints.
#
# usage: debian.sh [OUTDIR]     (as root; prints the directory holding the files)
# Everything is cached in $LIGERO_CACHE (default OUTDIR/cache, OUTDIR defaulting to
# $LIGERO_BUILD/guest): the kernel packages, the debootstrap tarball (so a rebuild needs no
# network) and the finished disks in $LIGERO_CACHE/debian12-<hash of the inputs>/, rebuilt only
# when an input (these scripts, tests/guest/debian/, the package set, the kernel) changes.
# OUTDIR/debian is a symlink to that directory. The disks there are shared: never write to
# them; boot an overlay (qemu-img create -b DISK -F qcow2) or a copy.
# env: LIGERO_BUILD, LIGERO_CACHE, DEBIAN_MIRROR (default: the one apt uses for bookworm),
#      KEEP_TREE=1 keeps the installed tree in OUTDIR/debian.work/tree
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${LIGERO_BUILD:-build}
out=${1:-$build/guest}
cache=${LIGERO_CACHE:-$out/cache}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
cache=$(cd "$cache" && pwd)
suite=bookworm
packages=systemd,systemd-sysv,udev,dbus,iproute2,iputils-ping,procps,kmod,linux-base,initramfs-tools,zstd,grub-pc-bin,grub2-common

say() { echo "debian: $*" >&2; }
phase() { echo "=== $(($(date +%s) - t0)) s: $*" >>"$log"; }
fail() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (debootstrap, chroot)"
for t in debootstrap unshare chroot flock sgdisk sfdisk mkfs.ext4 mkfs.xfs qemu-img python3; do
	command -v "$t" >/dev/null || fail "$t not found (.ci/packages lists what to install)"
done

# The mirror apt uses for the suite (deb822 .sources or one-line sources.list).
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$suite" '
		/^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) print u }
		/^$/ { u = "" }' | head -n1)
fi
[ -n "$mirror" ] || mirror=$(sed -n "s/^deb \(\[[^]]*\] \)\?\([^ ]*\) $suite .*/\2/p" \
	/etc/apt/sources.list 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

# The kernel: the package linux-image-cloud-amd64 depends on (apt's candidate, security
# updates included), and the metapackage itself, so `dpkg -l` in the guest shows both.
kernel_debs() {
	meta=$(apt-cache policy linux-image-cloud-amd64 2>/dev/null | sed -n 's/ *Candidate: //p')
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/.*Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
	kdeb='' mdeb=''
	if [ -n "$pkg" ] && [ -n "$meta" ] && [ "$meta" != "(none)" ]; then
		kdeb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
		mdeb=$(ls "$cache/linux-image-cloud-amd64_$(echo "$meta" | sed 's/:/%3a/')_amd64.deb" 2>/dev/null || true)
		if [ -z "$kdeb" ] || [ -z "$mdeb" ]; then
			say "downloading $pkg and linux-image-cloud-amd64"
			(cd "$cache" && apt-get download "$pkg" "linux-image-cloud-amd64=$meta" >/dev/null 2>&1) ||
				say "apt-get download failed"
			kdeb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
			mdeb=$(ls "$cache"/linux-image-cloud-amd64_*.deb 2>/dev/null | head -n1 || true)
		fi
	fi
	# Offline: the newest cached pair.
	[ -n "$kdeb" ] || kdeb=$(ls -t "$cache"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | head -n1 || true)
	[ -n "$mdeb" ] || mdeb=$(ls -t "$cache"/linux-image-cloud-amd64_*.deb 2>/dev/null | head -n1 || true)
	[ -n "$kdeb" ] && [ -n "$mdeb" ] ||
		fail "no cloud kernel package in $cache and none downloadable: run 'apt-get update' and retry"
}
kernel_debs

hash() { sha256sum | cut -c1-16; }
tarball="$cache/debootstrap-$suite-$(echo "$suite $mirror minbase $packages" | hash).tgz"
key=$({
	for f in "$here/debian.sh" "$here/rhel-layout.sh" "$here/xfsproto.py" "$here/debian/setup.sh"; do
		echo "${f#"$here"/}"; cat "$f"
	done
	(cd "$here/debian/rootfs" && find . -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done)
	basename "$tarball"; basename "$kdeb"; basename "$mdeb"
} | hash)
dir="$cache/debian12-$key"

publish() {
	touch "$dir" # in use: the pruning below keeps the most recently used builds
	ln -sfn "$dir" "$out/debian"
	echo "$dir"
}
[ -f "$dir/debian.json" ] && [ -f "$dir/rhel.json" ] && { publish; exit 0; }

# One build at a time per cache (several checkouts share it); the loser of the race finds
# the winner's result.
exec 9>"$cache/debian.lock"
flock 9
[ -f "$dir/debian.json" ] && [ -f "$dir/rhel.json" ] && { publish; exit 0; }
rm -rf "$cache"/debian12-*.tmp.* # what a failed build left
t0=$(date +%s)
work="$out/debian.work"
rm -rf "$work"
mkdir -p "$work"
log="$work/build.log"
say "building the Debian disks (log: $log)"

if [ ! -f "$tarball" ]; then
	say "downloading the packages (debootstrap --make-tarball)"
	phase "downloading the packages"
	debootstrap --variant=minbase --include="$packages" --make-tarball="$tarball.tmp" \
		"$suite" "$work/scratch" "$mirror" >>"$log" 2>&1 ||
		{ tail -n 5 "$log" >&2; fail "debootstrap --make-tarball from $mirror failed (log: $log)"; }
	mv "$tarball.tmp" "$tarball"
	rm -rf "$work/scratch"
fi

# The install runs with no network and in its own mount namespace: nothing it mounts can
# outlive it, and nothing is fetched that the cache does not hold. Between the two stages,
# dpkg is told not to fsync every file it unpacks (the tree is scratch until mkfs copies it;
# on a busy disk this halves the build); the setting is removed afterwards.
tree="$work/tree"
phase "unpacking the packages"
unshare -m -n --propagation private debootstrap --foreign --variant=minbase --include="$packages" \
	--unpack-tarball="$tarball" "$suite" "$tree" "$mirror" >>"$log" 2>&1 ||
	{ tail -n 5 "$log" >&2; fail "debootstrap --unpack-tarball=$tarball failed (log: $log)"; }
echo force-unsafe-io >"$tree/etc/dpkg/dpkg.cfg.d/ligero-build"
phase "installing the packages (debootstrap --second-stage)"
unshare -m -n --propagation private chroot "$tree" /debootstrap/debootstrap --second-stage \
	>>"$log" 2>&1 || { tail -n 5 "$log" >&2; fail "debootstrap --second-stage in $tree failed (log: $log)"; }
rm -f "$tree"/var/cache/apt/archives/*.deb

uuid() { cat /proc/sys/kernel/random/uuid; }
root_uuid=$(uuid)
(cd "$here/debian/rootfs" && tar --owner=0 --group=0 --mode=go-w -cf - .) | tar -xf - -C "$tree"
mkdir -p "$tree/tmp/kernel"
cp "$kdeb" "$mdeb" "$tree/tmp/kernel/"
cp "$here/debian/setup.sh" "$tree/tmp/setup.sh"
phase "configuring the tree (setup.sh)"
unshare -m -n --propagation private sh -c '
	set -e
	mount -t proc proc "$1/proc"
	mount -t sysfs sysfs "$1/sys"
	mount -t tmpfs -o mode=755 tmpfs "$1/dev"
	cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty "$1/dev/"
	mkdir "$1/dev/pts" "$1/dev/shm"
	ln -s /proc/self/fd "$1/dev/fd"
	mount -t tmpfs tmpfs "$1/run"
	chroot "$1" env ROOT_UUID="$2" ROOT_DEV=/dev/vda2 sh /tmp/setup.sh' - "$tree" "$root_uuid" >>"$log" 2>&1 ||
	{ tail -n 5 "$log" >&2; fail "configuring the tree failed (log: $log)"; }
kver=$(cd "$tree/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | head -n1)
[ -n "$kver" ] && [ -f "$tree/boot/initrd.img-$kver" ] || fail "no kernel or initrd in $tree/boot"
machine_id=$(cat "$tree/etc/machine-id")

# The Debian disk: GPT on a sparse raw file, the root filesystem written straight into its
# partition by mkfs.ext4 -d (nothing mounted), then converted to qcow2.
phase "making debian.qcow2"
new="$dir.tmp.$$"
rm -rf "$new"
mkdir -p "$new"
size=$((2 << 30))
sectors=$((size / 512))
first=4096
last=$((sectors - 2048 - 1)) # 1 MiB short of the end: the backup GPT lives there
raw="$work/debian.raw"
truncate -s "$size" "$raw"
# mkfs.ext4 clears the file's first sectors (old boot sectors) even with an offset: the
# partition table comes after it.
mkfs.ext4 -q -F -U "$root_uuid" -d "$tree" -E "offset=$((first * 512))" "$raw" \
	"$(((last - first + 1) / 8))" >>"$log" 2>&1 || fail "mkfs.ext4 -d $tree failed (log: $log)"
sgdisk -n 1:2048:4095 -t 1:EF02 -n "2:$first:$last" -t 2:8300 "$raw" >>"$log" 2>&1 ||
	fail "sgdisk on $raw failed"
qemu-img convert -f raw -O qcow2 "$raw" "$new/debian.qcow2"
rm -f "$raw"
cp "$tree/boot/vmlinuz-$kver" "$new/debian.vmlinuz"
cp "$tree/boot/initrd.img-$kver" "$new/debian.initrd.img"
cmdline="root=UUID=$root_uuid ro quiet"
cat >"$new/debian.env" <<ENV
DISK=$dir/debian.qcow2
KERNEL=$dir/debian.vmlinuz
INITRD=$dir/debian.initrd.img
KERNEL_VERSION=$kver
ROOT_UUID=$root_uuid
ROOT_PARTITION=2
PARTITION_TABLE=gpt
CMDLINE='$cmdline'
MACHINE_ID=$machine_id
ROOT_PASSWORD=ligero
VIRTUAL_SIZE=$size
ENV
python3 - "$new/debian.env" >"$new/debian.json" <<'PY'
import json, shlex, sys
d = dict(shlex.split(l)[0].split("=", 1) for l in open(sys.argv[1]) if l.strip())
for k in ("ROOT_PARTITION", "VIRTUAL_SIZE"):
    d[k] = int(d[k])
print(json.dumps({k.lower(): v for k, v in d.items()}, indent=1))
PY

phase "making rhel.qcow2"
# The RHEL layout from the same tree (it moves /boot out of the tree: the Debian disk is done).
DIR="$dir" KVER="$kver" MACHINE_ID="$machine_id" sh "$here/rhel-layout.sh" "$tree" "$work" "$new" \
	>>"$log" 2>&1 || { tail -n 5 "$log" >&2; fail "rhel-layout.sh failed (log: $log)"; }
phase "done"
cp "$log" "$new/build.log"
chmod 444 "$new"/*.qcow2
mv "$new" "$dir"
[ "${KEEP_TREE:-0}" = 1 ] || rm -rf "$work"

# Older builds: keep the 3 most recently used (other checkouts may still use them).
ls -dt "$cache"/debian12-* | sed '/\.tmp\./d' | tail -n +4 | while read -r old; do rm -rf "$old"; done
ls -t "$cache"/debootstrap-*.tgz 2>/dev/null | tail -n +3 | while read -r old; do rm -f "$old"; done
say "built in $(($(date +%s) - t0)) s: $(du -m "$dir/debian.qcow2" | cut -f1) MiB debian.qcow2," \
	"$(du -m "$dir/rhel.qcow2" | cut -f1) MiB rhel.qcow2"
publish
