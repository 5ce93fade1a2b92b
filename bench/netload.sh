#!/bin/sh
# bench/netload.sh: one VM against the emulated host over TCP, ligero and QEMU 7.2 (q35, KVM,
# virtio-net-pci on a tap) alternating, ROUNDS rounds in one emulated-host boot. Each run: the
# guest sends TX_MB MiB to L1, then L1 sends RX_MB MiB back, both checked by SHA-256. Prints
# one line per run (outcome, seconds for each direction) and, per VMM, how many runs finished
# and the medians of the finished ones. Outcomes: ok; reset (QEMU exits on the guest's reset,
# ligero reports a triple fault); froze (the guest's own 2-second heartbeat stopped for 30 s);
# stalled (the guest kept running but the transfer did not finish in 300 s); bad-data.
# Made to tell the emulated host's failures from a VMM's (docs/virtio.md); absolute figures
# are those of nested KVM under TCG emulation.
#
# usage: bench/netload.sh   env: ROUNDS (3), TX_MB (100), RX_MB (32), ONLY=ligero|qemu,
#        KVM_AMD="npt=0 ..." (extra kvm-amd parameters in L1), GUEST_CMDLINE (e.g. nokaslr)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LIGERO_BUILD:-$root/build}
vmhost=${LIGERO_VMHOST:-$root/tests/vmhost/vmhost.sh}
[ -x "$build/ligero" ] || { echo "bench: build ligero first ($build/ligero)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tx=$((${TX_MB:-100} * 1048576)); rx=$((${RX_MB:-32} * 1048576))
cat >"$tmp/g.sh" <<G
up() { cut -d' ' -f1 /proc/uptime; }
(while :; do echo "ALIVE \$(up)"; sleep 2; done) &
ip addr add 10.0.1.2/24 dev eth0 && ip link set eth0 up
i=0; until ping -c 1 -W 1 10.0.1.1 >/dev/null 2>&1 || [ \$i -ge 60 ]; do i=\$((i+1)); done
t0=\$(up); yes ligero-net-tx | head -c $tx | nc 10.0.1.1 5000 && echo "TX-DONE \$t0 \$(up)"
echo RX-LISTEN
t0=\$(up); echo "RX-SHA=\$(nc -l -p 5001 | sha256sum | cut -c1-64)"; echo "RX-DONE \$t0 \$(up)"
exit 0
G
cp "$tmp/g.sh" "$tmp/g.img"; truncate -s 4096 "$tmp/g.img"
txsha=$(yes ligero-net-tx | head -c $tx | sha256sum | cut -c1-64)
rxsha=$(yes ligero-net-rx | head -c $rx | sha256sum | cut -c1-64)
cat >"$tmp/l1.sh" <<L1
ROUNDS=${ROUNDS:-3}; ONLY='${ONLY:-}'; KVM_AMD='${KVM_AMD:-}'; CMD='${GUEST_CMDLINE:-}'
RX=$rx; TXSHA=$txsha; RXSHA=$rxsha
L1
cat >>"$tmp/l1.sh" <<'L1'
cd /work
for m in mods/*.ko; do insmod "$m"; done
if [ -n "$KVM_AMD" ]; then
	rmmod kvm_amd && insmod "/lib/modules/$(grep kvm-amd /etc/modules.order)" nested=1 npt=1 $KVM_AMD
fi
echo "L1 kvm_amd: $(cd /sys/module/kvm_amd/parameters && grep -H . npt nested avic | tr '\n' ' ')"
export PATH=$PATH:/usr/bin
K=guest/vmlinuz; I=guest/initrd.img
brctl addbr br0; ip addr add 10.0.1.1/24 dev br0; ip link set br0 up
printf '#!/bin/sh\nip link set "$1" up\nbrctl addif br0 "$1"\n' >/tmp/ifup; chmod +x /tmp/ifup
secs() { tr -d '\r' </tmp/c.log | awk -v k="$1" '$1 == k { printf "%.1f", $3 - $2 }'; }
one() {
	rm -f /tmp/hold /tmp/hostrx /tmp/c.log /tmp/sent; : >/tmp/c.log; mkfifo /tmp/hold
	(nc -l -p 5000 </tmp/hold | sha256sum | cut -c1-64 >/tmp/hostrx) &
	srv=$!
	exec 9>/tmp/hold
	if [ "$1" = ligero ]; then
		./ligero run --kernel $K --initrd $I --memory 256M --net bridge=br0 \
			--disk g.img,format=raw,readonly=on --cmdline "$CMD ligero.run=\"sh /dev/vda\"" \
			--console /tmp/c.log >/tmp/c.out 2>&1 &
	else
		qemu-system-x86_64 -M q35 -accel kvm -cpu host -m 256M -smp 1 -nodefaults -display none \
			-no-reboot -kernel $K -initrd $I -serial file:/tmp/c.log \
			-append "console=ttyS0 quiet $CMD ligero.run=\"sh /dev/vda\"" \
			-netdev tap,id=n0,script=/tmp/ifup,downscript=no \
			-device virtio-net-pci,netdev=n0,mac=52:54:00:00:01:02,romfile= \
			-drive file=g.img,if=none,id=d0,format=raw,readonly=on -device virtio-blk-pci,drive=d0 \
			>/tmp/c.out 2>&1 &
	fi
	pc=$!; i=0; last=0; quiet=0; out=
	while kill -0 $pc 2>/dev/null; do
		i=$((i + 1)); sleep 1
		size=$(wc -c </tmp/c.log); [ "$size" = "$last" ] && quiet=$((quiet + 1)) || quiet=0; last=$size
		if grep -q ALIVE /tmp/c.log && [ $quiet -ge 30 ]; then out=froze; break; fi
		[ $i -lt 300 ] || { out=stalled; break; }
		if grep -q RX-LISTEN /tmp/c.log && [ ! -f /tmp/sent ]; then
			touch /tmp/sent
			(n=0; until yes ligero-net-rx | head -c $RX | nc 10.0.1.2 5001 || [ $n -ge 30 ]; do n=$((n+1)); sleep 1; done) &
		fi
	done
	kill -9 $pc 2>/dev/null; wait $pc || true
	exec 9>&-; kill $srv 2>/dev/null; wait $srv 2>/dev/null || true
	if [ -z "$out" ]; then
		if grep -q LIGERO-RC=0 /tmp/c.log; then
			[ "$(cat /tmp/hostrx)" = $TXSHA ] && grep -q "RX-SHA=$RXSHA" /tmp/c.log && out=ok || out=bad-data
		else
			out=reset
		fi
	fi
	echo "RUN $1 $out tx_s=$(secs TX-DONE) rx_s=$(secs RX-DONE)"
}
r=0
while [ $r -lt $ROUNDS ]; do
	[ "$ONLY" = qemu ] || one ligero
	[ "$ONLY" = ligero ] || one qemu
	r=$((r + 1))
done
L1
mods=$build/guest/modules
[ -d "$mods" ] || sh "$root/tests/guest/build.sh" "$build/guest" >/dev/null
modfiles=; i=10
for m in $(/usr/bin/python3 "$root/tests/guest/modules.py" "$mods" tun bridge); do
	modfiles="$modfiles --file $mods/$m:mods/$i-$(basename "$m")"; i=$((i + 1))
done
# shellcheck disable=SC2086
out=$(sh "$vmhost" --timeout 3600 $modfiles --mem 3G --bin "$(command -v qemu-system-x86_64)" \
	--tree /usr/share/qemu --tree /usr/share/seabios --file "$tmp/g.img:g.img" "$tmp/l1.sh") || true
echo "$out"
echo "$out" | awk '
	$1 == "RUN" { n[$2]++; if ($3 == "ok") { ok[$2]++; split($4, a, "="); split($5, b, "=");
		t[$2, ok[$2]] = a[2]; u[$2, ok[$2]] = b[2] } else bad[$2] = bad[$2] " " $3 }
	function med(arr, vm, k,   i, j, v, x) { for (i = 1; i <= k; i++) v[i] = arr[vm, i]
		for (i = 2; i <= k; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
		return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
	END { for (vm in n) printf "%-7s finished %d of %d%s; medians of finished runs: tx %s s, rx %s s\n", vm,
		ok[vm], n[vm], bad[vm] ? " (others:" bad[vm] ")" : "", ok[vm] ? med(t, vm, ok[vm]) : "-",
		ok[vm] ? med(u, vm, ok[vm]) : "-" }'
