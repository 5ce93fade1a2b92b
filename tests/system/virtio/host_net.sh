# L1 side of the net case: a private network namespace with a bridge and two VMs on it.
cd /work
for m in mods/*.ko; do insmod "$m" || echo "INSMOD-FAILED $m"; done
unshare -n -m sh -s <<'NS'
mount -t sysfs sysfs /sys
L=./ligero; K="--kernel guest/vmlinuz --initrd guest/initrd.img --memory 256M"
ip link set lo up
brctl addbr br0 && ip link set br0 up || { echo BRIDGE-FAILED; exit 1; }
# Each VM on its own emulated CPU (taskset), which makes the emulated host's own early-boot
# failures rarer; a pair in which a VM died before its init printed LIGERO-INIT (the kernel's
# early start, before any virtio driver) is started again, twice at most, and counted.
pin() { [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null && echo "taskset -c $1"; }
early() { ! grep -q LIGERO-INIT "$1" 2>/dev/null; }
retries=0
for try in 1 2 3; do
	LIGERO_STATS=1 $(pin 0) $L run $K --net bridge=br0 --disk net1.img,format=raw,readonly=on \
		--cmdline "ligero.run=\"sh /dev/vda\"" --console /tmp/n1.log >/tmp/n1.out 2>&1 &
	p1=$!
	LIGERO_STATS=1 $(pin 1) $L run $K --net bridge=br0 --disk net2.img,format=raw,readonly=on \
		--cmdline "ligero.run=\"sh /dev/vda\"" --console /tmp/n2.log >/tmp/n2.out 2>&1 &
	p2=$!
	i=0; while [ $i -lt 600 ] && [ "$(ls /sys/class/net/br0/brif | grep -c tap)" -lt 2 ]; do i=$((i+1)); sleep 0.2; done
	taps=$(ls /sys/class/net/br0/brif | grep -c tap)
	t0=$(cut -d" " -f1 /proc/uptime)
	i=0; while { kill -0 $p1 || kill -0 $p2; } 2>/dev/null && [ $i -lt 400 ]; do
		i=$((i + 1)); sleep 1
		# a VM that died early leaves its peer waiting for it: end the try now
		# and one still short of its init after 150 s is stalled there (a boot takes 5-30 s)
		for n in 1 2; do
			eval p=\$p$n
			{ kill -0 $p 2>/dev/null && [ $i -lt 150 ]; } || ! early /tmp/n$n.log ||
				[ $try -eq 3 ] || i=400
		done
	done
	for p in $p1 $p2; do kill -0 $p 2>/dev/null && { echo "NET-STOPPED $p"; kill -9 $p; }; done
	wait $p1; rc1=$?
	wait $p2; rc2=$?
	{ early /tmp/n1.log || early /tmp/n2.log; } && [ $try -lt 3 ] || break
	echo "EARLY-BOOT-CONSOLES: $(tail -c 300 /tmp/n1.log | tr -d '\r' | tr '\n' ' ') /// $(tail -c 300 /tmp/n2.log | tr -d '\r' | tr '\n' ' ')"
	retries=$((retries + 1))
	echo "EARLY-BOOT-FAILURE: $(cat /tmp/n1.out /tmp/n2.out | grep -v '^ligero: ' | tr '\n' ' ' | tail -c 200)"
	sleep 1 # the taps of the killed VMs leave the bridge
done
echo "EARLY-BOOT-RETRIES=$retries"
echo "TAPS-IN-BRIDGE=$taps"
echo "N1-RC=$rc1"
echo "N2-RC=$rc2"
echo "ELAPSED=$(cut -d" " -f1 /proc/uptime) since $t0"
echo "TAPS-LEFT=$(ls /sys/class/net | grep -c tap)"
tr -d "\r" </tmp/n1.log | grep -E "^[A-Z0-9-]+=|-OK$|LIGERO-RC" | sed "s/^/N1-/"
tr -d "\r" </tmp/n2.log | grep -E "^[A-Z0-9-]+=|-OK$|LIGERO-RC" | sed "s/^/N2-/"
echo "N1-STDERR: $(cat /tmp/n1.out | tr "\n" " ")"
echo "N2-STDERR: $(cat /tmp/n2.out | tr "\n" " ")"
for n in 1 2; do
	grep -q LIGERO-RC=0 /tmp/n$n.log || tr -d "\r" </tmp/n$n.log | tail -n 15 | sed "s/^/N$n-CONSOLE: /"
done
NS
