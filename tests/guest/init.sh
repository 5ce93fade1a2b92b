#!/bin/sh
# /init of the test and demo guest. It loads the modules listed in /etc/modules.order (the
# virtio drivers, pvpanic, and the ACPI button and evdev drivers, dependencies first), starts
# busybox's acpid for the power button, prints the marker, runs the command given on the kernel
# command line as ligero.run="..." (or the demo), prints its exit code, then ends the VM as
# ligero.exit=poweroff|reboot|panic|shell says (default poweroff).
# The power button does what an init system does for the power key: it prints
# LIGERO-POWER-BUTTON and the SCI's line of /proc/interrupts, syncs, unmounts everything and
# powers off; with ligero.button=ignore it prints the line and does nothing else.
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

# button.ko reports the ACPI power button as KEY_POWER on an input device (evdev.ko gives it
# /dev/input/event0), and acpid runs /etc/acpi/PWRF/00000080 for it. acpid writes its pid file
# once it has opened the event devices: a press before that would reach nobody.
if [ -e /dev/input/event0 ]; then
	mkdir -p /etc/acpi/PWRF /run
	{
		echo '#!/bin/sh'
		echo "button=$(arg button)"
		cat <<'EOF'
echo "LIGERO-POWER-BUTTON $(grep ' acpi$' /proc/interrupts | tr -s ' ')"
[ "$button" = ignore ] && exit 0
sync
umount -a -r 2>/dev/null
poweroff -f
EOF
	} >/etc/acpi/PWRF/00000080
	chmod 755 /etc/acpi/PWRF/00000080
	acpid -d -p /run/acpid.pid &
	i=0
	while [ ! -e /run/acpid.pid ] && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -e /run/acpid.pid ] || echo "init: acpid did not start"
else
	echo "init: no power button (/dev/input/event0)"
fi

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
