# L1 side of test_virtio_vhost.py's VM-to-host cases (vh_lib.sh says how the emulated host's own
# failures are told apart): a bridge in a private network namespace carrying the emulated host's
# address 10.0.1.1, one VM at a time (10.0.1.2, 2 vCPUs). CASES lists NAME=NETOPTS/STREAMS;
# per case the VM sends MB MiB to us (one stream, or two from its two CPUs), we send RMB MiB
# back, and the tap's counters are read around each transfer; the cases in ROBUST then run the
# robustness sequence (guest_vh.sh). Last, the fallbacks: /dev/vhost-net missing, unreadable,
# or no vhost device. Run by host_vh.sh, which loads the modules.
cd /work
unshare -n -m sh -s <<'NS'
mount -t sysfs sysfs /sys
ip link set lo up
{ brctl addbr br0 && ip addr add 10.0.1.1/24 dev br0 && ip link set br0 up; } ||
	{ echo BRIDGE-FAILED; exit 1; }
. ./vh_lib.sh

# follow NAME: watch VM NAME to its end, serving it (our transfer to it, its counters, its
# release); sets verdict and rc
follow() {
	eval "p=\$pid_$1"
	t=0 verdict= rxstat=0 hs= sent=0 held=0 log=/tmp/$1.log
	while kill -0 "$p" 2>/dev/null; do
		t=$((t + 1))
		sleep 1
		judge "$1" $t
		[ -n "$verdict" ] && break
		tap=$(ls /sys/class/net/br0/brif 2>/dev/null | head -n1)
		if [ $rxstat = 0 ] && grep -q '^TX-DONE' "$log"; then
			rxstat=1
			echo "$1: TAP-RX=$(tapstat "$tap" rx_bytes) $(tapstat "$tap" rx_packets)"
		fi
		if [ $sent = 0 ] && grep -q '^RX-LISTEN' "$log"; then
			sent=1 b0=$(tapstat "$tap" tx_bytes) p0=$(tapstat "$tap" tx_packets)
			hsend 10.0.1.2 5001 "$RMB" ligero-vh-rx &
			hs=$!
		fi
		if [ -n "$hs" ] && ! kill -0 "$hs" 2>/dev/null; then
			wait "$hs"
			echo "$1: HOST-TX-RC=$?"
			echo "$1: TAP-TX-DELTA=$(($(tapstat "$tap" tx_bytes) - b0)) $(($(tapstat "$tap" tx_packets) - p0))"
			hs=
		fi
		if [ $held = 0 ] && grep -q '^HOLD' "$log"; then
			held=1
			release 10.0.1.2
		fi
	done
	[ -z "$hs" ] || kill "$hs" 2>/dev/null
	[ -n "$verdict" ] || verdict=$(ended "$1")
	kill -9 "$p" 2>/dev/null
	wait "$p"
	rc=$?
}

# host_case NAME NETOPTS STREAMS ROBUST(0|1)
host_case() {
	tries=0
	while :; do
		tries=$((tries + 1))
		hold_open
		listen 5000
		[ "$3" = 2 ] && listen 5002
		if [ "$4" = 1 ]; then
			listen 5003
			for port in 5011 5012 5013; do listen $port sink; done
			for port in 5021 5022 5023 5024; do listen $port; done
		fi
		hold_start
		boot "$1" "$2" 2 "lt.role=host lt.addr=10.0.1.2 lt.peer=10.0.1.1 lt.mb=$MB lt.streams=$3 lt.rmb=$RMB lt.robust=$4"
		follow "$1"
		listeners_stop
		wait
		for f in /tmp/rx.*; do [ -f "$f" ] && echo "$1: HOST-RX-${f#/tmp/rx.}=$(cat "$f")"; done
		rm -f /tmp/rx.*
		echo "$1: TAPS-LEFT=$(ls /sys/class/net | grep -c tap)"
		case $verdict in
		early | froze)
			echo "$1: EMU-FAILURE=$verdict after $(tr -d '\r' <"/tmp/$1.log" | grep -a -E '^(PING-OK|TX-DONE|RX-LISTEN|RX-DONE|HOLD|R-|DM-)' | tail -n1)"
			[ $tries -lt 3 ] && continue
			echo "$1: EMU-GAVE-UP=1"
			;;
		hung)
			echo "$1: HUNG=1"
			tr -d '\r' <"/tmp/$1.log" | grep -a -v ^ALIVE | tail -n 40 | sed "s/^/$1: CONSOLE: /"
			sed "s/^/$1: STATS: /" "/tmp/$1.stats" 2>/dev/null | tail -n 5
			;;
		esac
		break
	done
	echo "$1: EMU-RETRIES=$((tries - 1))"
	echo "$1: RC=$rc"
	results "$1"
}

# fallback NAME NETOPTS: a VM that only pings us; what its notice says
fallback() {
	tries=0
	while :; do
		tries=$((tries + 1))
		boot "$1" "$2" 1 "lt.role=ping lt.addr=10.0.1.2 lt.peer=10.0.1.1"
		eval "p=\$pid_$1"
		t=0 verdict=
		while kill -0 "$p" 2>/dev/null; do
			t=$((t + 1))
			sleep 1
			judge "$1" $t
			[ -n "$verdict" ] && break
		done
		[ -n "$verdict" ] || verdict=$(ended "$1")
		kill -9 "$p" 2>/dev/null
		wait "$p"
		rc=$?
		case $verdict in
		early | froze)
			echo "$1: EMU-FAILURE=$verdict"
			[ $tries -lt 3 ] && continue
			echo "$1: EMU-GAVE-UP=1"
			;;
		hung) echo "$1: HUNG=1" ;;
		esac
		break
	done
	echo "$1: EMU-RETRIES=$((tries - 1))"
	echo "$1: RC=$rc"
	results "$1"
}

for one in $CASES; do
	name=${one%%=*} rest=${one#*=}
	robust=0
	case " $ROBUST " in *" $name "*) robust=1 ;; esac
	host_case "$name" "${rest%/*}" "${rest##*/}" $robust
done

# /dev/vhost-net missing: the userspace path, and a notice saying why; vhost=on refuses to run
mv /dev/vhost-net /dev/vhost-net.away
fallback fb_missing bridge=br0,mtu=9000
./ligero run $K --net bridge=br0,vhost=on --disk guest_vh.img,format=raw,readonly=on \
	--console /dev/null >/tmp/fb_on.out 2>&1
echo "fb_on: RC=$?"
sed 's/^/fb_on: STDERR: /' /tmp/fb_on.out
echo "fb_on: TAPS-LEFT=$(ls /sys/class/net | grep -c tap)"
mv /dev/vhost-net.away /dev/vhost-net
# unreadable: ligero without the capability that lets root read any file
chmod 000 /dev/vhost-net
WRAP=./dropdac fallback fb_unreadable bridge=br0
chmod 600 /dev/vhost-net
# a file there that is no vhost device
mount --bind /dev/null /dev/vhost-net && fallback fb_notvhost bridge=br0
umount /dev/vhost-net
echo "VHOST-DEV-AFTER=$(ls /dev/vhost-net 2>/dev/null)"
NS
