# L1 (emulated host) side of test_fleet_boot.py: the classroom of issue 22, three members of a
# fleet made from the real Debian disk (tests/guest/debian.sh), booted together:
#   br0 with 10.0.2.1/24 and dnsmasq (Debian's) serving DHCP on it
#   ligero fleet create lab --count 3 --base disks/base.qcow2 --memory 600M --net bridge=br0
#       with the disk's kernel and initrd (/work/vmlinuz, /work/initrd.img) and a command line
#       carrying the guests' command (FLEET_CMDLINE: ligero.run64=, ligero.exit=none, so each
#       member stays up after its command and its peers can still ping it)
#   ligero fleet start lab; wait until every member's console shows LIGERO-TEST-RC=
#   ligero fleet stop lab (the ACPI power button), ligero fleet list lab
#   lab1's overlay copied (with the file its guest wrote), ligero fleet reset lab, copied again
#   ligero fleet delete lab --disks
# A member the emulated host loses (a triple fault, or the hang guards: STALL s without
# progress, GUARD s in all) makes the whole
# class run once more from the overlays as create made them, with a fresh lease file; such a
# retry is reported ("VMT fleet retry ..."), never hidden.
# Prints "VMT NAME key=value..." lines, and each command's output prefixed "NAME| ".
# env (fleet_boot.env): FLEET_CMDLINE GUARD STALL
cd /work || exit 1
. ./fleet_boot.env
L=./ligero
export LIGERO_STATE_DIR=/tmp/ligero-state XDG_RUNTIME_DIR=/tmp/ligero-run
mkdir -p $XDG_RUNTIME_DIR
S=$LIGERO_STATE_DIR
up() { cut -d' ' -f1 /proc/uptime; }
echo "VMT run start=$(up)"

# The network: a bridge with L1's address, and dnsmasq serving DHCP on it (no DNS, no
# resolv.conf, no user to switch to: L1 has no /etc/passwd; its lease file and pid file in /tmp).
for m in mods/*.ko; do insmod "$m" || echo "INSMOD-FAILED $m"; done
{ brctl addbr br0 && ip addr add 10.0.2.1/24 dev br0 && ip link set br0 up; } || echo NET-SETUP-FAILED
dhcp_start() {
	: >/tmp/dnsmasq.leases
	/usr/sbin/dnsmasq --keep-in-foreground --user= --port=0 --no-resolv --no-hosts \
		--interface=br0 --bind-interfaces --dhcp-range=10.0.2.100,10.0.2.120,255.255.255.0,1h \
		--dhcp-leasefile=/tmp/dnsmasq.leases --pid-file=/tmp/dnsmasq.pid --log-dhcp \
		--log-facility=- >>/tmp/dnsmasq.log 2>&1 &
	dhcpd=$!
}
dhcp_start

run() { # NAME COMMAND...: run it, its output prefixed "NAME| ", then "VMT NAME rc=N"
	n=$1
	shift
	"$@" >/tmp/cmd.out 2>&1
	rc=$?
	sed "s/^/$n| /" /tmp/cmd.out
	echo "VMT $n rc=$rc"
	return $rc
}

run create $L fleet create lab --count 3 --base disks/base.qcow2 --memory 600M --net bridge=br0 \
	--kernel /work/vmlinuz --initrd /work/initrd.img --cmdline "$FLEET_CMDLINE"
for i in 1 2 3; do
	sed "s/^/def-lab$i| /" $S/vms/lab$i.json
	cp disks/lab$i.qcow2 /tmp/lab$i.created # for a retry
done

# wait_fleet DEADLINE: 0 once every member's console shows its command's status; 1 when a
# member stopped running first; 2 once the date passes DEADLINE, or once a member that has not
# shown its status has shown nothing new but the kernel's own lines for STALL s
# (tests/guest/stall-guard.sh: a guest the emulated host froze), "VMT labN stalled=S" said;
# each member's longest silence before its status is printed ("VMT labN silence=S")
wait_fleet() {
	for i in 1 2 3; do eval "seen$i=-1 since$i=$(date +%s) longest$i=0"; done
	while :; do
		wait_fleet_once "$1"
		w=$?
		[ $w = 255 ] || break
		sleep 5
	done
	for i in 1 2 3; do eval "echo VMT lab$i silence=\$longest$i"; done
	return $w
}
wait_fleet_once() {
	n=0
	now=$(date +%s)
	for i in 1 2 3; do
		if grep -q 'LIGERO-TEST-RC=' $S/log/lab$i.console.log 2>/dev/null; then
			n=$((n + 1))
			continue
		fi
		c=$(sh ./stall-guard.sh --count $S/log/lab$i.console.log.1 $S/log/lab$i.console.log)
		eval "seen=\$seen$i since=\$since$i longest=\$longest$i"
		if [ "$c" != "$seen" ]; then
			eval "seen$i=$c since$i=$now"
			continue
		fi
		[ $((now - since)) -le $longest ] || eval "longest$i=$((now - since))"
		if [ $((now - since)) -ge "$STALL" ]; then
			echo "VMT lab$i stalled=$((now - since))"
			return 2
		fi
	done
	[ $n = 3 ] && return 0
	[ "$($L fleet list lab --output=json | grep -c '"state": *"running"')" = 3 ] || return 1
	[ "$(date +%s)" -lt "$1" ] || return 2
	return 255
}

members_out() { # PREFIX-SUFFIX: each member's console and VMM log
	for i in 1 2 3; do
		cat $S/log/lab$i.console.log.1 $S/log/lab$i.console.log 2>/dev/null | tr -d '\r' |
			sed "s/^/lab$i-$1con| /"
		sed "s/^/lab$i-$1log| /" $S/log/lab$i.log 2>/dev/null
	done
}

for try in 1 2; do
	t0=$(up)
	run start $L fleet start lab
	wait_fleet $(($(date +%s) + GUARD))
	w=$?
	echo "VMT fleet try=$try wait=$w start=$t0 end=$(up)"
	[ $w = 0 ] && break
	run list-failed $L fleet list lab
	# a member lost to the emulated host (a triple fault, or a hang) is retried once; a member
	# that ligero stopped for any other reason is a failure, reported as it is
	lost=0
	[ $w = 2 ] && lost=1
	grep -qs triple-fault $S/log/lab?.log && lost=1
	[ $try = 1 ] && [ $lost = 1 ] || break
	echo "VMT fleet retry wait=$w"
	members_out failed-
	$L fleet kill lab >/dev/null 2>&1
	for i in 1 2 3; do
		cp /tmp/lab$i.created disks/lab$i.qcow2
		rm -f $S/log/lab$i.console.log $S/log/lab$i.console.log.1 $S/log/lab$i.log
	done
	kill $dhcpd
	wait $dhcpd
	dhcp_start
done

run stop $L fleet stop lab --timeout 600
run list $L fleet list lab
run list-json $L fleet list lab --output=json
members_out
sed 's/^/leases| /' /tmp/dnsmasq.leases

# the class starts over: what lab1 wrote is in its overlay before reset, gone after
cp disks/lab1.qcow2 disks/lab1-before-reset.qcow2
run reset $L fleet reset lab
cp disks/lab1.qcow2 disks/lab1-after-reset.qcow2
run delete $L fleet delete lab --disks
ls disks | sed 's/^/disks| /'
ls $S/vms | sed 's/^/vms| /'
run vm-list $L vm list

kill $dhcpd
wait $dhcpd
sed 's/^/dhcp| /' /tmp/dnsmasq.log
echo "VMT run end=$(up)"
