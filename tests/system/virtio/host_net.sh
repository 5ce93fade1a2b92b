# L1 side of the net case: a private network namespace with a bridge and two VMs on it.
cd /work
for m in mods/*.ko; do insmod "$m" || echo "INSMOD-FAILED $m"; done
unshare -n -m sh -c '
mount -t sysfs sysfs /sys
L=./ligero; K="--kernel guest/vmlinuz --initrd guest/initrd.img --memory 256M"
ip link set lo up
brctl addbr br0 && ip link set br0 up || { echo BRIDGE-FAILED; exit 1; }
LIGERO_STATS=1 $L run $K --net bridge=br0 --disk net1.img,format=raw,readonly=on \
	--cmdline "ligero.run=\"sh /dev/vda\"" --console /tmp/n1.log >/tmp/n1.out 2>&1 &
p1=$!
LIGERO_STATS=1 $L run $K --net bridge=br0 --disk net2.img,format=raw,readonly=on \
	--cmdline "ligero.run=\"sh /dev/vda\"" --console /tmp/n2.log >/tmp/n2.out 2>&1 &
p2=$!
i=0; while [ $i -lt 600 ] && [ "$(ls /sys/class/net/br0/brif | grep -c tap)" -lt 2 ]; do i=$((i+1)); sleep 0.2; done
echo "TAPS-IN-BRIDGE=$(ls /sys/class/net/br0/brif | grep -c tap)"
t0=$(cut -d" " -f1 /proc/uptime)
i=0; while { kill -0 $p1 || kill -0 $p2; } 2>/dev/null && [ $i -lt 400 ]; do i=$((i + 1)); sleep 1; done
for p in $p1 $p2; do kill -0 $p 2>/dev/null && { echo "NET-HUNG $p"; kill -9 $p; }; done
wait $p1; echo "N1-RC=$?"
wait $p2; echo "N2-RC=$?"
echo "ELAPSED=$(cut -d" " -f1 /proc/uptime) since $t0"
echo "TAPS-LEFT=$(ls /sys/class/net | grep -c tap)"
tr -d "\r" </tmp/n1.log | grep -E "^[A-Z0-9-]+=|-OK$|LIGERO-RC" | sed "s/^/N1-/"
tr -d "\r" </tmp/n2.log | grep -E "^[A-Z0-9-]+=|-OK$|LIGERO-RC" | sed "s/^/N2-/"
echo "N1-STDERR: $(cat /tmp/n1.out | tr "\n" " ")"
echo "N2-STDERR: $(cat /tmp/n2.out | tr "\n" " ")"
for n in 1 2; do
	grep -q LIGERO-RC=0 /tmp/n$n.log || tr -d "\r" </tmp/n$n.log | tail -n 15 | sed "s/^/N$n-CONSOLE: /"
done
'
