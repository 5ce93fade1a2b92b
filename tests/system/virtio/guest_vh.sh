# Guest side of test_virtio_vhost.py. The kernel command line says what to do:
#   lt.role=host|server|client|ping  lt.addr=A lt.peer=P  lt.mb=MiB lt.streams=1|2 lt.rmb=MiB
#   lt.robust=1 (the robustness sequence, after the transfers; role host only)
# /dev/vdb is a tar of ethtool and its libraries. ALIVE every 2 s tells the emulated host that
# this guest's own clock still runs (see vh_lib.sh). Every result is a KEY=value line.
up() { cut -d' ' -f1 /proc/uptime; }
(while :; do echo "ALIVE $(up)"; sleep 2; done) &
cmd=" $(cat /proc/cmdline) "
arg() { v=${cmd#* lt.$1=}; [ "$v" = "$cmd" ] && echo "$2" || echo "${v%% *}"; }
ROLE=$(arg role host) ADDR=$(arg addr) PEER=$(arg peer) MB=$(arg mb 200)
STREAMS=$(arg streams 1) RMB=$(arg rmb 32)
tar -xf /dev/vdb -C / 2>/dev/null || echo "TOOLS-FAILED"

# eth0 up with ADDR, and the first ping through (the tap may join the bridge late)
netup() {
	ip link set eth0 up && ip addr add "$ADDR/24" dev eth0 2>/dev/null
	i=0; until ping -c 1 -W 1 "$PEER" >/dev/null 2>&1 || [ $i -ge 60 ]; do i=$((i + 1)); done
}
# Send $2 MiB of pattern $3 to PEER:$1 (vhsend, from the tools disk: 1 MiB writes, so that TCP
# always has enough queued to build TSO packets; it retries while nobody listens yet); a script
# of its own, so that taskset can run it on one CPU.
cat >/tmp/send <<'S'
exec vhsend "$1" "$2" "$3" "$4"
S
send() { sh /tmp/send "$PEER" "$@"; }
# The streams: one of MB MiB, or two of MB/2 MiB from CPUs 0 and 1 (so through both queues).
streams() {
	if [ "$STREAMS" = 2 ]; then
		taskset -c 0 sh /tmp/send "$PEER" "$1" $((MB / 2)) ligero-vh-0 &
		a=$!
		taskset -c 1 sh /tmp/send "$PEER" $(($1 + 2)) $((MB / 2)) ligero-vh-1 &
		b=$!
		wait $a && wait $b
	else
		send "$1" "$MB" ligero-vh-0
	fi
}
report() {
	echo "MAC=$(cat /sys/class/net/eth0/address)"
	echo "FEATURES=$(cat /sys/class/net/eth0/device/features)"
	echo "MTU=$(cat /sys/class/net/eth0/mtu)"
	echo "CPUS=$(nproc)"
	ethtool -k eth0 | sed 's/^/ETHTOOL-K: /'
	ethtool -l eth0 | sed 's/^/ETHTOOL-L: /'
	ethtool -i eth0 | grep '^driver' | sed 's/^/ETHTOOL-I: /'
}
stats() {
	ethtool -S eth0 | sed -n 's/^ *\([rt]x_queue_[0-9]*_packets\): */\1=/p'
	grep -E 'virtio[0-9]+-(input|output)' /proc/interrupts | sed 's/^/IRQ: /'
}
# eth0's transmitted bytes reach $1 (a transfer is under way); a hang guard, no clock
tx_past() {
	i=0
	while [ "$(cat /sys/class/net/eth0/statistics/tx_bytes 2>/dev/null || echo 0)" -lt "$1" ] &&
		[ $i -lt 6000 ]; do i=$((i + 1)); sleep 0.1; done
}
# The NIC's PCI function, and that of its driver
pcidev() { basename "$(readlink -f /sys/class/net/eth0/device/..)"; }
nic_back() { # the driver is back: eth0 again, up, pinging
	i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done
	netup
}

# ---- a userspace driver through /dev/mem (no kernel module): what a guest can do to the rings
# BAR 0 registers (virtio 1.x common configuration); rings in RAM the kernel was told to leave
# alone (memmap=1M$0x7000000 on the command line).
RING=0x7000000
dm() { devmem $((BAR + $1)) "$2" ${3+"$3"}; } # a read without a third argument
status() { dm 0x14 8; }
cfg_byte() { printf "\\$(printf %03o "$2")" | dd of="/sys/bus/pci/devices/$PCI/config" bs=1 seek="$1" conv=notrunc 2>/dev/null; }
features_ok() { # reset, then VERSION_1 only: a renegotiation with other features than Linux's
	dm 0x14 8 0; dm 0x14 8 3
	dm 0x08 32 1; dm 0x0c 32 1; dm 0x08 32 0; dm 0x0c 32 0
	dm 0x14 8 11
}
qsetup() { # queue $1: size 16, rings at RING + $1 * 0x4000 (or desc at $2), no interrupt
	dm 0x16 16 "$1"; dm 0x18 16 16; dm 0x1a 16 0xffff
	d=${2:-$((RING + $1 * 0x4000))}
	dm 0x20 32 $((d & 0xffffffff)); dm 0x24 32 $((d >> 32))
	dm 0x28 32 $((RING + $1 * 0x4000 + 0x1000)); dm 0x2c 32 0
	dm 0x30 32 $((RING + $1 * 0x4000 + 0x2000)); dm 0x34 32 0
	dm 0x1c 16 1
}
needs_reset() { # status shows DEVICE_NEEDS_RESET (0x40), waiting for it a while
	i=0; while [ $(($(status) & 0x40)) = 0 ] && [ $i -lt 300 ]; do i=$((i + 1)); sleep 0.1; done
	[ $(($(status) & 0x40)) != 0 ] && echo 1 || echo 0
}
userspace_driver() {
	PCI=$(pcidev)
	echo "$PCI" >/sys/bus/pci/drivers/virtio-pci/unbind
	BAR=$(($(head -n1 "/sys/bus/pci/devices/$PCI/resource" | cut -d' ' -f1)))
	cfg_byte 4 7 # memory, I/O, bus master
	features_ok
	echo "DM-FEATURES-OK=$(($(status) & 8 ? 1 : 0))"
	# a ring of size 0 is not taken; the size stays what the device offers
	dm 0x16 16 0; dm 0x18 16 0
	echo "DM-SIZE-AFTER-0=$(($(dm 0x18 16)))"
	# a ring outside RAM: refused at enable, the device needs a reset
	qsetup 0 0xfff0000000
	echo "DM-BOGUS-RING-NEEDS-RESET=$(needs_reset)"
	echo "DM-BOGUS-RING-ENABLED=$(($(dm 0x1c 16)))"
	# reset, then valid rings and a transmit descriptor pointing outside RAM, kicked
	features_ok
	qsetup 0; qsetup 1
	dm 0x14 8 15 # DRIVER_OK: the data path starts (vhost or not)
	echo "DM-DRIVER-OK=$(($(status) & 4 ? 1 : 0))"
	t=$((RING + 0x4000))
	devmem $t 32 0; devmem $((t + 4)) 32 0xfff0; devmem $((t + 8)) 32 1500; devmem $((t + 12)) 32 0
	devmem $((t + 0x1004)) 16 0; devmem $((t + 0x1002)) 16 1
	dm $((0x3000 + 4)) 16 1 # notify queue 1 (the MMIO window; ports work too)
	echo "DM-BOGUS-DESC-NEEDS-RESET=$(needs_reset)"
	dm 0x14 8 0
	echo "DM-RESET-STATUS=$(($(status)))"
	echo "$PCI" >/sys/bus/pci/drivers/virtio-pci/bind
	nic_back
}

# ---- robustness: the driver goes and comes back under traffic; traffic resumes each time ----
robust() {
	base=$(cat /sys/class/net/eth0/statistics/tx_bytes)
	# queue pairs switched (ethtool -L) during a transfer that must arrive whole
	send 5003 "$RMB" ligero-vh-l &
	s=$!
	tx_past $((base + RMB * 1048576 / 4))
	echo "L1-RC=$(ethtool -L eth0 combined 1 >/dev/null 2>&1; echo $?)"
	echo "L1-CURRENT=$(ethtool -l eth0 | sed -n 's/^Combined: *//p' | tail -n1)"
	tx_past $((base + RMB * 1048576 / 2))
	echo "L2-RC=$(ethtool -L eth0 combined 2 >/dev/null 2>&1; echo $?)"
	wait $s && echo "L-SEND-OK"
	# ring sizes cannot be changed (no VIRTIO_F_RING_RESET): refused, nothing breaks
	echo "G0-RC=$(ethtool -G eth0 rx 0 >/dev/null 2>&1; echo $?)"
	echo "G64-RC=$(ethtool -G eth0 rx 64 tx 64 >/dev/null 2>&1; echo $?)"
	n=0
	for how in rmmod unbind remove; do
		n=$((n + 1))
		base=$(cat /sys/class/net/eth0/statistics/tx_bytes)
		rm -f /tmp/sink; mkfifo /tmp/sink
		yes ligero-vh-sink >/tmp/sink &
		y=$!
		nc "$PEER" $((5010 + n)) </tmp/sink &
		s=$!
		tx_past $((base + 2097152))
		PCI=$(pcidev)
		case $how in
		rmmod) rmmod virtio_net && insmod "/lib/modules/$(grep virtio_net.ko /etc/modules.order)" ;;
		unbind) echo "$PCI" >/sys/bus/pci/drivers/virtio-pci/unbind &&
			echo "$PCI" >/sys/bus/pci/drivers/virtio-pci/bind ;;
		remove) echo 1 >"/sys/bus/pci/devices/$PCI/remove" && echo 1 >/sys/bus/pci/rescan ;;
		esac
		echo "R-$how-RC=$?"
		kill $s $y 2>/dev/null
		nic_back
		send $((5020 + n)) 4 "ligero-vh-r$n" && echo "R-$how-SEND-OK"
	done
	userspace_driver
	send 5024 4 ligero-vh-r4 && echo "R-devmem-SEND-OK"
	echo "FEATURES-AFTER=$(cat /sys/class/net/eth0/device/features)"
}

netup
case $ROLE in
ping)
	echo "FEATURES=$(cat /sys/class/net/eth0/device/features)"
	echo "MTU=$(cat /sys/class/net/eth0/mtu)"
	ping -c 3 "$PEER" | grep -q ' 0% packet loss' && echo PING-OK
	;;
host)
	report
	ping -c 3 "$PEER" | grep -q ' 0% packet loss' && echo PING-OK
	t0=$(up)
	streams 5000 && echo "TX-DONE $t0 $(up)"
	echo RX-LISTEN
	t0=$(up)
	echo "RX-SHA=$(nc -l -p 5001 | sha256sum | cut -c1-64)"
	echo "RX-DONE $t0 $(up)"
	stats
	[ "$(arg robust 0)" = 1 ] && robust
	echo HOLD # the emulated host reads the tap's counters, then lets go
	timeout 600 nc -l -p 5009 >/dev/null
	;;
server)
	report
	ping -c 3 "$PEER" | grep -q ' 0% packet loss' && echo PING-OK
	if [ "$STREAMS" = 2 ]; then
		(echo "RX-SHA-1=$(nc -l -p 5002 | sha256sum | cut -c1-64)") &
		b=$!
	fi
	echo "RX-SHA-0=$(nc -l -p 5000 | sha256sum | cut -c1-64)"
	[ "$STREAMS" = 2 ] && wait $b
	stats
	echo HOLD
	timeout 600 nc -l -p 5009 >/dev/null
	;;
client)
	report
	ping -c 3 "$PEER" | grep -q ' 0% packet loss' && echo PING-OK
	t0=$(up)
	streams 5000 && echo "TX-DONE $t0 $(up)"
	stats
	echo HOLD
	timeout 600 nc -l -p 5009 >/dev/null
	;;
esac
exit 0
