#!/bin/sh
# /init of the emulated host (L1): load KVM with nested SVM, mount the --disk image at
# /work/disks (vmhost.disks=1), run /work/script.sh with its output on the second serial port,
# unmount the image, report the script's exit status there, and power off.
export PATH=/bin:/usr/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /dev/shm /run
# /tmp is a tmpfs; what the run's archive put under /tmp (--bin files at their host path, from
# a checkout under /tmp) is carried over into it rather than hidden by it
mkdir -p /.tmp
mount -t tmpfs tmpfs /.tmp
cp -a /tmp/. /.tmp/
mount -o move /.tmp /tmp
# vmhost.npt=0 (VMHOST_NPT=0): shadow paging for the L2 guests instead of the emulated NPT
npt=1
disks=0
for a in $(cat /proc/cmdline); do
	case "$a" in
	vmhost.npt=0) npt=0 ;;
	vmhost.disks=1) disks=1 ;;
	esac
done
while read -r m; do
	case "$m" in
	*/kvm-amd.ko) insmod "/lib/modules/$m" nested=1 npt=$npt ;;
	*) insmod "/lib/modules/$m" ;;
	esac
done </etc/modules.order
stty -F /dev/ttyS1 raw -echo 2>/dev/null
if [ $disks = 1 ]; then
	mkdir -p /work/disks
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	if mount -t ext4 /dev/vda /work/disks; then
		chmod u+w /work/disks/* 2>/dev/null
	else
		echo "vmhost: cannot mount the --disk image (/dev/vda) at /work/disks" >/dev/ttyS1
	fi
fi
echo "VMHOST-UP $(cut -d' ' -f1 /proc/uptime)" >/dev/ttyS1
# A heartbeat on the console: vmhost.sh stops an emulated host that has gone silent (its
# kernel stalled without a report) instead of waiting for the whole timeout.
(while :; do echo "VMHOST-ALIVE $(cut -d' ' -f1 /proc/uptime)" >/dev/ttyS0; sleep 10; done) &
cd /work
sh /work/script.sh >/dev/ttyS1 2>&1 </dev/null
rc=$?
if [ $disks = 1 ]; then
	cd /
	sync
	umount /work/disks || { echo "vmhost: /work/disks still busy: remounted read-only" >/dev/ttyS1; mount -o remount,ro /work/disks; }
fi
echo "VMHOST-RC=$rc" >/dev/ttyS1
poweroff -f
