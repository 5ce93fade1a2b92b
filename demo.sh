#!/usr/bin/env bash
# The main job, as root on a fresh Debian 12: install what is missing, build ligero, build a
# real Debian system disk (tests/guest/debian.sh: debootstrap, systemd, the cloud kernel; cached),
# make a linked clone of it, boot the clone with `ligero run --disk` (its own GRUB entry, kernel
# and initrd) to its login prompt, run one command there, power it off, and read what the guest
# wrote straight from the clone; then the seed's classroom: a fleet of three linked clones of the
# same disk, started, listed with what KSM shares, a command typed in one, stopped and deleted
# (tests/guest/classroom.sh). Each step says what it does.
#
# The steps are functions, run in the order `steps` lists them (at the bottom): a longer demo
# adds its own functions and names them there. They share: $root (the checkout), $L (the ligero
# binary), $demo (the working directory, build/demo), $base (the Debian disk, $demo/debian.qcow2,
# a link to the shared read-only build) and $vm (the clone, $demo/vm.qcow2).
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
L="$root/build/ligero"
demo="$root/build/demo"
base="$demo/debian.qcow2"
vm="$demo/vm.qcow2"

say() { printf '\n== %s\n' "$*" | fold -s -w 100; }
run() { # show a command, then run it
	printf '$ %s\n' "$*" | sed "s|$root/||g"
	"$@"
}

step_setup() {
	say "Installing what is missing (.ci/packages) and building ligero"
	local need=0
	command -v meson >/dev/null || need=1
	pkg-config --exists ext2fs com_err fuse3 json-c libzstd libdeflate zlib gnutls libnbd libxml-2.0 cmocka 2>/dev/null || need=1
	for t in debootstrap sgdisk mkfs.xfs qemu-img qemu-system-x86_64 busybox cpio scdoc; do
		command -v $t >/dev/null || need=1
	done
	if [ $need = 1 ]; then
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
	echo "built $L"
}

step_disk() {
	say "A real Debian 12 system disk: debootstrap, systemd, Debian's cloud kernel, GPT, ext4, GRUB's grub.cfg (built once, then taken from the cache; the first build downloads about 90 MB)"
	if [ "$(id -u)" != 0 ]; then
		echo "demo: building the Debian disk needs root (debootstrap, chroot)" >&2
		exit 1
	fi
	local dir
	dir=$(LIGERO_BUILD="$root/build" sh tests/guest/debian.sh "$root/build/guest" | tail -n1)
	rm -rf "$demo"
	mkdir -p "$demo"
	# the disks in the cache are shared and read-only: the demo boots a clone
	ln -s "$dir/debian.qcow2" "$base"
	run "$L" img info "$base"
}

step_clone() {
	say "A linked clone of it (the seed's qemu-img create -b): the clone holds only what its VM writes"
	cd "$demo"
	run "$L" img create -f qcow2 -b debian.qcow2 -F qcow2 vm.qcow2
	run "$L" img info vm.qcow2
	say "What the clone's own boot loader configuration offers (read from the disk, nothing booted)"
	run "$L" run --disk vm.qcow2 --list-boot-entries
	cd "$root"
}

step_boot() {
	say "Booting the clone with its own kernel: ligero run --disk vm.qcow2 --cpus 2 --memory 1G; at the login prompt, one command, then poweroff"
	LIGERO="$L" LIGERO_BUILD="$root/build" sh tests/guest/demo.sh "$vm" "$base" \
		'echo "hello from $(hostname), $(nproc) CPUs, $(uname -r)" | tee /root/hello' \
		--cpus 2 --memory 1G
}

step_after() {
	say "What the guest wrote is in the clone, and the base disk is untouched: read it without booting"
	cd "$demo"
	run "$L" fs cat vm.qcow2 /root/hello
	run "$L" img check vm.qcow2
	cd "$root"
}

kvm_boots_stock_kernels() { # what tests/guest/demo.sh checks
	[ ! -e /sys/module/kvm_pvm ] && grep -qw -e vmx -e svm /proc/cpuinfo && [ -e /dev/kvm ]
}

step_class() {
	say "The classroom (the seed's teacher): three students' VMs as linked clones of the same base disk, made unique, started together, then removed"
	if kvm_boots_stock_kernels; then
		LIGERO_STATE_DIR="$demo/state" sh tests/guest/classroom.sh "$L" "$base"
		return
	fi
	say "Inside the emulated host again (one vCPU, 3 GiB, as the seed's 3 GB host): this takes several minutes, and its output is shown once it is done"
	local work rc=0
	work=$(mktemp -d "$root/build/demo-class.XXXXXX")
	echo 'sh ./classroom.sh ./ligero disks/base.qcow2 2>&1' >"$work/script.sh"
	LIGERO_BUILD="$root/build" LIGERO="$L" sh tests/vmhost/vmhost.sh --timeout 5400 --smp 1 \
		--mem 3G --file tests/guest/classroom.sh:classroom.sh \
		--disk "$(readlink -f "$base"):base.qcow2" "$work/script.sh" 2>"$work/vmhost.err" || rc=$?
	if [ $rc != 0 ]; then
		tail -n 20 "$work/vmhost.err" >&2
		echo "demo: the classroom failed in the emulated host (status $rc)" >&2
	fi
	rm -rf "$work"
	return $rc
}

steps="step_setup step_disk step_clone step_boot step_after step_class"
for s in $steps; do
	$s
done
say "Done. The clone is $vm; boot it again with: $L run --disk $vm"
