#!/bin/sh
# /init of the emulated host (L1): load KVM with nested SVM, run /work/script.sh with its output
# on the second serial port, report its exit status there, and power off.
export PATH=/bin:/usr/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /dev/shm /run
mount -t tmpfs tmpfs /tmp
# vmhost.npt=0 (VMHOST_NPT=0): shadow paging for the L2 guests instead of the emulated NPT
npt=1
for a in $(cat /proc/cmdline); do case "$a" in vmhost.npt=0) npt=0 ;; esac; done
while read -r m; do
	case "$m" in
	*/kvm-amd.ko) insmod "/lib/modules/$m" nested=1 npt=$npt ;;
	*) insmod "/lib/modules/$m" ;;
	esac
done </etc/modules.order
stty -F /dev/ttyS1 raw -echo 2>/dev/null
echo "VMHOST-UP $(cut -d' ' -f1 /proc/uptime)" >/dev/ttyS1
# A heartbeat on the console: vmhost.sh stops an emulated host that has gone silent (its
# kernel stalled without a report) instead of waiting for the whole timeout.
(while :; do echo "VMHOST-ALIVE $(cut -d' ' -f1 /proc/uptime)" >/dev/ttyS0; sleep 10; done) &
cd /work
sh /work/script.sh >/dev/ttyS1 2>&1 </dev/null
echo "VMHOST-RC=$?" >/dev/ttyS1
poweroff -f
