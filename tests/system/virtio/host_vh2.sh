# L1 side of test_virtio_vhost.py's two-VM cases (vh_lib.sh says how the emulated host's own
# failures are told apart): a bridge in a private network namespace, its own address 10.0.2.254
# only to let the guests go at the end; per case in CASES (NAME=NETOPTS/STREAMS) a server
# (10.0.2.1, on L1 CPU 0) and a client (10.0.2.2, on L1 CPU 1), 2 vCPUs each: MB MiB from the
# client to the server (one stream, or two from the client's two CPUs), and each tap's counters.
# Run by host_vh.sh, which loads the modules.
cd /work
unshare -n -m sh -s <<'NS'
mount -t sysfs sysfs /sys
ip link set lo up
{ brctl addbr br0 && ip addr add 10.0.2.254/24 dev br0 && ip link set br0 up; } ||
	{ echo BRIDGE-FAILED; exit 1; }
. ./vh_lib.sh
[ "$(nproc)" -ge 2 ] && PIN_S=0 PIN_C=1 || PIN_S= PIN_C=

tap_of() { sed -n 's/^ligero: virtio-net \(tap[0-9]*\) .*/\1/p' "/tmp/$1.out" | head -n1; }

# pair_case NAME NETOPTS STREAMS
pair_case() {
	tries=0
	while :; do
		tries=$((tries + 1))
		s=$1s c=$1c
		boot "$s" "$2" 2 "lt.role=server lt.addr=10.0.2.1 lt.peer=10.0.2.2 lt.streams=$3" $PIN_S
		boot "$c" "$2" 2 "lt.role=client lt.addr=10.0.2.2 lt.peer=10.0.2.1 lt.mb=$MB lt.streams=$3" $PIN_C
		eval "ps=\$pid_$s pc=\$pid_$c"
		t=0 verdict= held=0 who=
		while kill -0 "$ps" 2>/dev/null || kill -0 "$pc" 2>/dev/null; do
			t=$((t + 1))
			sleep 1
			for v in "$s" "$c"; do
				eval "pv=\$pid_$v"
				if kill -0 "$pv" 2>/dev/null; then
					judge "$v" $t
				else
					verdict=$(ended "$v")
					[ "$verdict" = done ] && verdict=
				fi
				[ -n "$verdict" ] && who=$v && break 2
			done
			if [ $held = 0 ] && grep -q '^HOLD' "/tmp/$s.log" && grep -q '^HOLD' "/tmp/$c.log"; then
				held=1
				ts=$(tap_of "$s") tc=$(tap_of "$c")
				# the server's tap sent it the client's stream; the client's tap got it
				echo "$1: TAP-SERVER-TX=$(tapstat "$ts" tx_bytes) $(tapstat "$ts" tx_packets)"
				echo "$1: TAP-CLIENT-RX=$(tapstat "$tc" rx_bytes) $(tapstat "$tc" rx_packets)"
				echo "$1: TAPS-IN-BRIDGE=$(ls /sys/class/net/br0/brif | grep -c tap)"
				release 10.0.2.1
				release 10.0.2.2
			fi
		done
		kill -9 "$ps" "$pc" 2>/dev/null
		wait "$ps"
		rcs=$?
		wait "$pc"
		rcc=$?
		echo "$1: TAPS-LEFT=$(ls /sys/class/net | grep -c tap)"
		case $verdict in
		early | froze)
			echo "$1: EMU-FAILURE=$verdict ($who) after $(tr -d '\r' <"/tmp/$who.log" | grep -a -E '^(PING-OK|TX-DONE|RX-SHA|HOLD)' | tail -n1)"
			[ $tries -lt 3 ] && continue
			echo "$1: EMU-GAVE-UP=1"
			;;
		hung)
			echo "$1: HUNG=1 ($who)"
			for v in "$s" "$c"; do
				tr -d '\r' <"/tmp/$v.log" | grep -a -v ^ALIVE | tail -n 30 | sed "s/^/$v: CONSOLE: /"
				sed "s/^/$v: STATS: /" "/tmp/$v.stats" 2>/dev/null | tail -n 5
			done
			;;
		esac
		break
	done
	echo "$1: EMU-RETRIES=$((tries - 1))"
	echo "$s: RC=$rcs"
	echo "$c: RC=$rcc"
	results "$s"
	results "$c"
}

for one in $CASES; do
	name=${one%%=*} rest=${one#*=}
	pair_case "$name" "${rest%/*}" "${rest##*/}"
done
NS
