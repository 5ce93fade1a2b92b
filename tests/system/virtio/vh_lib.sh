# Shared by host_vh1.sh and host_vh2.sh (test_virtio_vhost.py), inside the emulated host, in a
# private network namespace with bridge br0. Each VM runs tests/system/virtio/guest_vh.sh from
# /dev/vda with ethtool on /dev/vdb; its console is /tmp/NAME.log, its stderr /tmp/NAME.out.
#
# The emulated host (QEMU TCG with nested SVM) fails by itself under network load
# (docs/virtio.md): a VM that dies before its init prints LIGERO-INIT, whose whole guest stops
# (no ALIVE line for 30 s, its own clock included) or that triple-faults is that host's
# failure, not ligero's: the case is run again, three times at most, each try counted
# (NAME: EMU-RETRIES=), and given up (NAME: EMU-GAVE-UP=1: skipped, never a pass) after that. A
# guest that keeps running while its transfer stalls (HANG-GUARD seconds), or that delivers
# wrong data, fails.
K="--kernel guest/vmlinuz --initrd guest/initrd.img --memory 256M"
HANG_GUARD=${HANG_GUARD:-1200}
mkdir -p /tmp/lpid

# boot NAME NETOPTS CPUS "lt.* args" [L1 CPU to pin to]: ligero in the background, pid_NAME
boot() {
	rm -f "/tmp/$1.log" "/tmp/$1.out" "/tmp/$1.stats"
	: >"/tmp/$1.log"
	eval "size_$1= quiet_$1=0"
	# shellcheck disable=SC2086
	LIGERO_STATS=/tmp/$1.stats ${5:+taskset -c $5} ${WRAP:-} ./ligero run --stop-timeout 0 $K --cpus "$3" \
		--net "$2" --disk guest_vh.img,format=raw,readonly=on \
		--disk tools.img,format=raw,readonly=on \
		--cmdline "iomem=relaxed memmap=1M\$0x7000000 ligero.run=\"sh /dev/vda\" $4" \
		--console "/tmp/$1.log" >"/tmp/$1.out" 2>&1 &
	eval "pid_$1=$!"
}

# judge NAME T: the verdict on VM NAME, T seconds into its run: empty while all is well, early
# or froze (the emulated host's failures) or hung (ours)
judge() {
	verdict=
	jlog=/tmp/$1.log
	if ! grep -q LIGERO-INIT "$jlog" && [ "$2" -ge 150 ]; then
		verdict=early
		return
	fi
	size=$(wc -c <"$jlog")
	eval "old=\${size_$1:-} quiet=\${quiet_$1:-0}"
	if [ "$size" = "$old" ]; then quiet=$((quiet + 1)); else quiet=0; fi
	eval "size_$1=$size quiet_$1=$quiet"
	if grep -q ALIVE "$jlog" && [ "$quiet" -ge 30 ]; then
		verdict=froze
	elif [ "$2" -ge "$HANG_GUARD" ]; then
		verdict=hung
	fi
}

# After VM NAME exited by itself: how it ended
ended() {
	if ! grep -q LIGERO-INIT "/tmp/$1.log"; then
		echo early
	elif grep -q 'triple-faulted' "/tmp/$1.out"; then
		echo froze
	else
		echo done
	fi
}

# listen PORT [sink]: a listener that hashes (or drops) what arrives, its nc pid kept
listen() {
	if [ "${2:-}" = sink ]; then
		sh -c "echo \$\$ >/tmp/lpid/$1; exec nc -l -p $1" </tmp/hold >/dev/null &
	else
		rm -f "/tmp/rx.$1"
		(sh -c "echo \$\$ >/tmp/lpid/$1; exec nc -l -p $1" </tmp/hold | sha256sum |
			cut -c1-64 >"/tmp/rx.$1") &
	fi
}
# The hold fifo keeps the listeners' stdin open (busybox nc half-closes at its stdin's EOF).
hold_open() { rm -f /tmp/hold; mkfifo /tmp/hold; }
hold_start() { exec 9>/tmp/hold; }
listeners_stop() {
	exec 9>&-
	for f in /tmp/lpid/*; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
}

# hsend HOST PORT MiB PATTERN: from the emulated host, retried while nobody listens yet
hsend() {
	n=0
	until yes "$4" | head -c $(($3 * 1048576)) | nc "$1" "$2"; do
		n=$((n + 1)); [ $n -ge 60 ] && return 1; sleep 1
	done
}
# release HOST: the guest waits (HOLD) on port 5009 until the emulated host has read its counters
release() {
	n=0
	until nc "$1" 5009 </dev/null >/dev/null 2>&1 || [ $n -ge 60 ]; do n=$((n + 1)); sleep 0.5; done
}

tapstat() { # TAP WHAT: a counter of the tap (WHAT rx_bytes, tx_packets...)
	cat "/sys/class/net/$1/statistics/$2" 2>/dev/null || echo 0
}

# Everything a VM printed that the test reads, and its stderr (the data path notice)
results() {
	tr -d '\r' <"/tmp/$1.log" |
		grep -a -E '^[A-Za-z0-9_-]+=|^ETHTOOL-|^IRQ: |-OK$|^(TX|RX)-DONE|^TOOLS-FAILED|^(sh|devmem|/dev/vda): ' |
		sed "s/^/$1: /"
	sed "s/^/$1: STDERR: /" "/tmp/$1.out"
}
