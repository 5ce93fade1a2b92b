# L1 (emulated host) side of test_disk_boot.py: the real guests (tests/guest/debian.sh) booted
# with `ligero run --disk` and no --kernel, one VM after the other:
#   vm1    overlay 1 of base.qcow2 (the Debian disk): its grub.cfg entry, 2 vCPUs, 1 GiB, a
#          virtio NIC on a bridge with a DHCP server; a command from the kernel command line
#          reports what the guest sees, then the guest powers off (systemctl poweroff)
#   vm2    overlay 2, 1 vCPU, 768 MiB: a command writes a file and checks that logind watches
#          the power button, the guest stays up; once it has ended, commands typed at the
#          autologin shell on the serial console (tests/guest/console-session.sh); then SIGTERM
#          to ligero (the ACPI power button)
#   rhel   an overlay of rhel.qcow2: the BLS default entry, a command from a script disk
#   rescue another overlay of it, --boot-entry RHEL_OTHER (the other BLS entry), stopped (SIGTERM,
#          --stop-timeout 0) once the guest's kernel has printed its command line: which entry
#          booted is all this boot shows, and a whole boot would take minutes more
# Before the boots: the overlays made with `ligero img create -b` (which records them on the
# base), and writes to the base refused. Prints, per VM, "VMT NAME key=value..." lines and its
# console and stderr prefixed "NAME-con| " and "NAME-err| ".
# env (disk_boot.env): VM1_CMDLINE VM2_CMDLINE VM2_LINE1 VM2_LINE2 RHEL_OTHER GUARD STALL
cd /work || exit 1
. ./disk_boot.env
L=./ligero
up() { cut -d' ' -f1 /proc/uptime; }
echo "VMT run start=$(up)"

# The network: a bridge with L1's address and a DHCP server on it, for vm1's NIC.
for m in mods/*.ko; do insmod "$m" || echo "INSMOD-FAILED $m"; done
{ brctl addbr br0 && ip addr add 10.0.2.1/24 dev br0 && ip link set br0 up; } || echo NET-SETUP-FAILED
cat >/tmp/udhcpd.conf <<EOF
start 10.0.2.100
end 10.0.2.120
interface br0
lease_file /tmp/udhcpd.leases
pidfile /tmp/udhcpd.pid
option subnet 255.255.255.0
option lease 3600
max_leases 21
EOF
: >/tmp/udhcpd.leases
udhcpd -f /tmp/udhcpd.conf >/tmp/udhcpd.log 2>&1 &
dhcpd=$!

# The overlays, recorded on their bases by ligero img create; then the base guard.
for v in vm1 vm2; do
	$L img create -q -f qcow2 -b base.qcow2 -F qcow2 disks/$v.qcow2 || echo "CREATE-FAILED $v"
done
for v in rhel-over rescue; do
	$L img create -q -f qcow2 -b rhel.qcow2 -F qcow2 disks/$v.qcow2 || echo "CREATE-FAILED $v"
done
$L img io -c 'write -P 0xab 0 512' disks/base.qcow2 >/tmp/guard.out 2>&1
echo "VMT guard-io rc=$?"
sed 's/^/guard-io| /' /tmp/guard.out
echo written-into-the-base | $L fs write disks/base.qcow2 /root/base-file >/tmp/guard.out 2>&1
echo "VMT guard-fs rc=$?"
sed 's/^/guard-fs| /' /tmp/guard.out

# wait_console FILE PATTERN PID DEADLINE: until FILE shows PATTERN (0); 1 if PID ended
# first, 2 once the date passes DEADLINE
wait_console() {
	until grep -q "$2" "$1" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || return 1
		[ "$(date +%s)" -lt "$4" ] || return 2
		sleep 1
	done
}

# sigterm NAME PATTERN ARGS...: boot in the background; once the console shows PATTERN,
# SIGTERM to ligero; its exit status (137: the guard killed it)
sigterm() {
	n=$1 pattern=$2
	shift 2
	deadline=$(($(date +%s) + GUARD))
	$L run "$@" --console /tmp/$n.con </dev/null >/dev/null 2>/tmp/$n.err &
	pid=$!
	guard $n $pid
	wait_console /tmp/$n.con "$pattern" $pid $deadline
	case $? in
	0) echo "VMT $n sigterm=$(up)"; kill -TERM $pid ;;
	2) kill -9 $pid ;;
	esac
	while kill -0 $pid 2>/dev/null; do
		[ "$(date +%s)" -lt $deadline ] || kill -9 $pid
		sleep 1
	done
	wait $pid
}

# console NAME ARGS...: a console session (console-session.sh) that types VM2_LINE1 and
# VM2_LINE2 once the guest's command has ended; once the second one's output (TYPED N) is on
# the console, SIGTERM to ligero; the session's exit status (ligero's; 124 or 137: a guard)
console() {
	n=$1
	shift
	rm -f /tmp/$n.pid
	sh ./console-session.sh --guard $GUARD --log /tmp/$n.con --after '^LIGERO-TEST-RC=' \
		--pid-file /tmp/$n.pid --type "$VM2_LINE1" --type "$VM2_LINE2" -- $L run "$@" \
		2>/tmp/$n.err &
	spid=$!
	guard $n $spid
	# not at the line's start: bash's bracketed-paste switch (ESC [?2004l) comes before it
	if wait_console /tmp/$n.con 'TYPED [0-9]' $spid $(($(date +%s) + GUARD)); then
		echo "VMT $n sigterm=$(up)"
		kill -TERM "$(cat /tmp/$n.pid)"
	fi
	wait $spid
}

# guard NAME PID: the progress guard (tests/guest/stall-guard.sh) on PID, a VM whose console is
# /tmp/NAME.con: it stops a VM whose console has shown nothing new for STALL s, or that still
# runs after GUARD s; what it says goes to /tmp/NAME.guard
guard() {
	sh ./stall-guard.sh --stall $STALL --limit $GUARD $2 /tmp/$1.con 2>/tmp/$1.guard &
	guard_pid=$!
}

# vm NAME MODE DISK ARGS...: one VM (MODE plain, early or console), booted once more from
# DISK as it was when the emulated host killed the first boot with a triple fault or a double
# fault (the guest kernel's "PANIC: double fault", seen at its syscall entry), or when the hang
# guard stopped it (`guard`: no progress for STALL s, or GUARD s in all); such a retry is
# reported ("VMT NAME retry ...").
vm() {
	n=$1 mode=$2 disk=$3
	shift 3
	cp "$disk" /tmp/$n.disk
	for try in 1 2; do
		rm -f /tmp/$n.con /tmp/$n.err
		t0=$(up)
		case $mode in
		plain)
			$L run "$@" </dev/null >/tmp/$n.con 2>/tmp/$n.err &
			pid=$!
			guard $n $pid
			wait $pid ;;
		early) sigterm $n 'Command line: ' "$@" ;;
		console) console $n "$@" ;;
		esac
		rc=$?
		t1=$(up)
		wait $guard_pid # it ends with the VM
		echo "VMT $n try=$try rc=$rc start=$t0 end=$t1"
		sed "s/^/$n-guard| /" /tmp/$n.guard
		if [ $try = 1 ] && { [ $rc = 124 ] || [ $rc = 137 ] || grep -q triple-faulted /tmp/$n.err ||
			grep -q 'PANIC: double fault' /tmp/$n.con; }; then
			echo "VMT $n retry rc=$rc"
			tr -d '\r' </tmp/$n.con | tail -n 30 | sed "s/^/$n-failed-con| /"
			[ -z "$(tail -c 1 /tmp/$n.con)" ] || echo
			sed "s/^/$n-failed-err| /" /tmp/$n.err
			cp /tmp/$n.disk "$disk"
			continue
		fi
		break
	done
	rm -f /tmp/$n.disk
	tr -d '\r' </tmp/$n.con | sed "s/^/$n-con| /"
	# a VM stopped mid-line (rescue) leaves its console without a last newline
	[ -z "$(tail -c 1 /tmp/$n.con)" ] || echo
	sed "s/^/$n-err| /" /tmp/$n.err
	echo "VMT $n done rc=$rc"
}

vm vm1 plain disks/vm1.qcow2 --disk disks/vm1.qcow2 --net bridge=br0,mac=52:54:00:4c:47:01 \
	--cpus 2 --memory 1G --stop-timeout 300 --cmdline "$VM1_CMDLINE"
vm vm2 console disks/vm2.qcow2 --disk disks/vm2.qcow2 --cpus 1 --memory 768M --stop-timeout 300 \
	--cmdline "$VM2_CMDLINE"
vm rhel plain disks/rhel-over.qcow2 --disk disks/rhel-over.qcow2 --disk disks/script.img,format=raw \
	--cpus 2 --memory 1G --stop-timeout 300
vm rescue early disks/rescue.qcow2 --disk disks/rescue.qcow2 --boot-entry "$RHEL_OTHER" \
	--cpus 2 --memory 1G --stop-timeout 0

kill $dhcpd 2>/dev/null
sed 's/^/dhcp| /' /tmp/udhcpd.log
# the base goes back to be hashed, with the overlays; not what is only read
rm -f disks/rhel.qcow2 disks/script.img disks/rescue.qcow2
echo "VMT run end=$(up)"
