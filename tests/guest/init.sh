#!/bin/sh
# /init of the test and demo guest. It loads the modules listed in /etc/modules.order (the
# virtio drivers and pvpanic, dependencies first), prints the marker, runs the command given on
# the kernel command line as ligero.run="..." (or the demo), prints its exit code, then ends
# the VM as ligero.exit=poweroff|reboot|panic|shell says (default poweroff).
export PATH=/bin
# Before any module (so before any virtio driver): a boot that fails without printing this died
# in the kernel's own early start (docs/ligero-run.md: the emulated host's own failures).
echo "LIGERO-INIT"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
while read -r m; do
	insmod "/lib/modules/$m" 2>/dev/null || echo "init: cannot load $m"
done </etc/modules.order

cmdline=$(cat /proc/cmdline)
arg() {
	# ligero.NAME="text with spaces" or ligero.NAME=word
	case " $cmdline" in
	*" ligero.$1=\""*) v=${cmdline#*ligero.$1=\"}; echo "${v%%\"*}" ;;
	*" ligero.$1="*) v=${cmdline#*ligero.$1=}; echo "${v%% *}" ;;
	esac
}
run=$(arg run)
how=$(arg exit)

echo "LIGERO-MARKER"
if [ -n "$run" ]; then
	sh -c "$run"
	rc=$?
else
	echo "ligero demo guest: kernel $(uname -r), $(nproc) CPUs," \
		"$(sed -n 's/MemTotal: *//p' /proc/meminfo) memory"
	rc=0
fi
echo "LIGERO-RC=$rc"

case "$how" in
reboot) reboot -f ;;
panic) echo c >/proc/sysrq-trigger ;;
shell) setsid cttyhack sh; poweroff -f ;;
*) poweroff -f ;;
esac
sleep 1000000
