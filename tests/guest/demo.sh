#!/bin/sh
# The README's demo: build the demo guest (tests/guest/build.sh) and boot it with `ligero run`;
# it prints its kernel version, CPU count and memory, and powers off. Where this host's KVM
# cannot run a stock kernel (PVM, or no vmx/svm), the boot happens inside the emulated host
# (tests/vmhost/vmhost.sh), and the demo says so.
# env: LIGERO (default $LIGERO_BUILD/ligero), LIGERO_BUILD (default build)
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${LIGERO_BUILD:-$repo/build}
ligero=${LIGERO:-$build/ligero}
[ -x "$ligero" ] || { echo "demo: $ligero not built (meson setup build && ninja -C build)" >&2; exit 1; }
guest=$(LIGERO_BUILD=$build sh "$repo/tests/guest/build.sh" "$build/guest")
args="--kernel guest/vmlinuz --initrd guest/initrd.img --cpus 2 --memory 512M --cmdline quiet"

if [ -e /sys/module/kvm_pvm ] || ! grep -qw -e vmx -e svm /proc/cpuinfo || [ ! -e /dev/kvm ]; then
	echo "demo: this host's KVM cannot run a stock kernel, so the demo guest boots inside the emulated host (QEMU/TCG with nested KVM; about a minute)"
	script=$(mktemp)
	trap 'rm -f "$script"' EXIT
	echo "./ligero run $args" >"$script"
	LIGERO_BUILD=$build LIGERO=$ligero sh "$repo/tests/vmhost/vmhost.sh" "$script" 2>/dev/null
else
	cd "$guest/.."
	# shellcheck disable=SC2086
	exec "$ligero" run $args
fi
