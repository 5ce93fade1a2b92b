#!/usr/bin/env bash
# The main job: install what is missing, build, then show a base image and a linked clone
# (the seed's `qemu-img create -b base.qcow2 ... estudiante1.qcow2`), and boot the demo guest,
# which prints its kernel version, CPU count and memory, and powers off.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

if ! command -v meson >/dev/null || ! pkg-config --exists ext2fs fuse3 json-c libzstd libdeflate 2>/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "demo: run as root once so the packages in .ci/packages can be installed" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2046
	apt-get install -y -qq --no-install-recommends $(grep -v '^#' .ci/packages) >/dev/null
fi
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
L="$root/build/ligero"

demo=$root/build/demo
rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
echo "== ligero img create -f qcow2 base.qcow2 10G"
"$L" img create -f qcow2 base.qcow2 10G
echo "== ligero img create -b base.qcow2 -F qcow2 -f qcow2 estudiante1.qcow2"
"$L" img create -b base.qcow2 -F qcow2 -f qcow2 estudiante1.qcow2
echo "== ligero img info base.qcow2"
"$L" img info base.qcow2
echo
echo "== ligero img info estudiante1.qcow2"
"$L" img info estudiante1.qcow2
cd "$root"

echo
echo "== the demo guest: ligero run (Debian's cloud kernel, a busybox initramfs)"
LIGERO="$L" LIGERO_BUILD="$root/build" sh tests/guest/demo.sh
