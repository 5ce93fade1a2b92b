#!/bin/sh
# bench/virtio.sh: ligero against QEMU (same kernel, same image files, same virtio-pci devices,
# q35 and KVM) inside the emulated host of tests/vmhost. Measures, in the guest, sequential
# read/write MB/s and 4 KiB random-read IOPS on a raw disk and on a qcow2 overlay (cache=writeback on
# both sides: the emulated host's files live on tmpfs, which has no O_DIRECT for cache=none; the
# guest itself uses O_DIRECT), and TCP throughput between two VMs on a bridge; prints the ratios ligero/QEMU.
# The guest has no fio: bench/vbench.c is built static here and carried in on a disk.
# Absolute figures are those of nested KVM under TCG emulation; only the ratios mean something.
#
# usage: bench/virtio.sh [blk|net]  (default both)
#        env: LIGERO_BUILD (build), LIGERO_VMHOST (tests/vmhost/vmhost.sh)
set -eu
what=${1:-all}
case $what in blk | net | all) ;; *) echo "usage: bench/virtio.sh [blk|net]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LIGERO_BUILD:-$root/build}
vmhost=${LIGERO_VMHOST:-$root/tests/vmhost/vmhost.sh}
[ -x "$build/ligero" ] || { echo "bench: build ligero first ($build/ligero)" >&2; exit 1; }
[ -f "$vmhost" ] || { echo "bench: needs $vmhost (issue 4's emulated host)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -O2 -static -pthread -o "$tmp/vbench" "$root/bench/vbench.c" 2>/dev/null
size=$(stat -c %s "$tmp/vbench")
cp "$tmp/vbench" "$tmp/vbench.img"
truncate -s $(((size + 4095) / 4096 * 4096)) "$tmp/vbench.img"
MB=128

# Guest scripts, run as `sh /dev/vdX` from a disk (zero padding after `exit`).
cat >"$tmp/g_blk.sh" <<G
dd if=/dev/vdc of=/vbench bs=4096 count=$(((size + 4095) / 4096)) 2>/dev/null
head -c $size /vbench >/vb && chmod +x /vb
for d in vda vdb; do
	echo "DISK \$d"
	/vb seqwrite /dev/\$d $MB; /vb seqread /dev/\$d $MB; /vb randread /dev/\$d $MB 10 4
done
exit 0
G
cat >"$tmp/g_net.sh" <<G
dd if=/dev/vdb of=/vbench bs=4096 count=$(((size + 4095) / 4096)) 2>/dev/null
head -c $size /vbench >/vb && chmod +x /vb
ip addr add \$ADDR/24 dev eth0 && ip link set eth0 up
if [ "\$ROLE" = server ]; then /vb tcprecv 5001; else sleep 2; /vb tcpsend \$PEER 5001 400; fi
exit 0
G
pad() { cat "$1" >"$2"; truncate -s 4096 "$2"; }
pad "$tmp/g_blk.sh" "$tmp/g_blk.img"
{ echo "ADDR=10.0.1.1 PEER=10.0.1.2 ROLE=server"; cat "$tmp/g_net.sh"; } >"$tmp/s.sh"
{ echo "ADDR=10.0.1.2 PEER=10.0.1.1 ROLE=client"; cat "$tmp/g_net.sh"; } >"$tmp/c.sh"
pad "$tmp/s.sh" "$tmp/g_srv.img"
pad "$tmp/c.sh" "$tmp/g_cli.img"

cat >"$tmp/l1.sh" <<'L1'
cd /work
for m in mods/*.ko; do insmod "$m"; done
export PATH=$PATH:/usr/bin
K=guest/vmlinuz; I=guest/initrd.img
fresh() {
	rm -f raw.img base.qcow2 ov.qcow2
	truncate -s 256M raw.img
	qemu-img create -q -f qcow2 base.qcow2 256M
	qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 ov.qcow2
}
ligero_blk() {
	./ligero run --kernel $K --initrd $I --memory 512M --disk raw.img,format=raw,cache=writeback \
		--disk ov.qcow2,format=qcow2,cache=writeback --disk vbench.img,format=raw,readonly=on \
		--disk g_blk.img,format=raw,readonly=on --cmdline 'ligero.run="sh /dev/vdd"' \
		--console /tmp/l.log >/dev/null 2>&1
	tr -d '\r' </tmp/l.log | grep -E '^(DISK|[A-Z_]+=)' | sed 's/^/ligero /'
}
qemu_blk() {
	qemu-system-x86_64 -M q35 -accel kvm -cpu host -m 512M -smp 1 -nodefaults -display none \
		-no-reboot -kernel $K -initrd $I -serial file:/tmp/q.log \
		-append 'console=ttyS0 quiet ligero.run="sh /dev/vdd"' \
		-drive file=raw.img,if=none,id=d0,format=raw,cache=writeback -device virtio-blk-pci,drive=d0 \
		-drive file=ov.qcow2,if=none,id=d1,format=qcow2,cache=writeback -device virtio-blk-pci,drive=d1 \
		-drive file=vbench.img,if=none,id=d2,format=raw,readonly=on -device virtio-blk-pci,drive=d2 \
		-drive file=g_blk.img,if=none,id=d3,format=raw,readonly=on -device virtio-blk-pci,drive=d3 \
		>/dev/null 2>&1
	tr -d '\r' </tmp/q.log | grep -E '^(DISK|[A-Z_]+=)' | sed 's/^/qemu /'
}
if [ "$WHAT" != net ]; then
	fresh; ligero_blk
	fresh; qemu_blk
	rm -f raw.img base.qcow2 ov.qcow2
fi
[ "$WHAT" != blk ] || exit 0
brctl addbr br0; ip link set br0 up
printf '#!/bin/sh\nip link set "$1" up\nbrctl addif br0 "$1"\n' >/tmp/ifup; chmod +x /tmp/ifup
ligero_net() {
	./ligero run --kernel $K --initrd $I --memory 256M --net bridge=br0 --disk g_$1.img,format=raw,readonly=on \
		--disk vbench.img,format=raw,readonly=on --cmdline 'ligero.run="sh /dev/vda"' --console /tmp/n$1.log >/dev/null 2>&1
}
qemu_net() {
	qemu-system-x86_64 -M q35 -accel kvm -cpu host -m 256M -smp 1 -nodefaults -display none -no-reboot \
		-kernel $K -initrd $I -serial file:/tmp/n$1.log -append 'console=ttyS0 quiet ligero.run="sh /dev/vda"' \
		-netdev tap,id=n0,script=/tmp/ifup,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:01:$2,romfile= \
		-drive file=g_$1.img,if=none,id=d0,format=raw,readonly=on -device virtio-blk-pci,drive=d0 \
		-drive file=vbench.img,if=none,id=d1,format=raw,readonly=on -device virtio-blk-pci,drive=d1 >/dev/null 2>&1
}
ligero_net srv & p=$!; ligero_net cli; wait $p
tr -d '\r' </tmp/nsrv.log | grep -E '^TCP_MBS=' | sed 's/^/ligero NET /'
qemu_net srv 01 & p=$!; qemu_net cli 02; wait $p
tr -d '\r' </tmp/nsrv.log | grep -E '^TCP_MBS=' | sed 's/^/qemu NET /'
L1
sed -i "1i WHAT=$what" "$tmp/l1.sh"

# The emulated host loads only KVM: carry tun and bridge (and what they need) in.
mods=$build/guest/modules
[ -d "$mods" ] || sh "$root/tests/guest/build.sh" "$build/guest" >/dev/null
modfiles=
i=10
for m in $(/usr/bin/python3 "$root/tests/guest/modules.py" "$mods" tun bridge); do
	modfiles="$modfiles --file $mods/$m:mods/$i-$(basename "$m")"
	i=$((i + 1))
done
# shellcheck disable=SC2086
out=$(sh "$vmhost" --timeout 1800 $modfiles --mem 3G --bin "$(command -v qemu-img)" \
	--bin "$(command -v qemu-system-x86_64)" --tree /usr/share/qemu --tree /usr/share/seabios \
	--file "$tmp/vbench.img:vbench.img" --file "$tmp/g_blk.img:g_blk.img" \
	--file "$tmp/g_srv.img:g_srv.img" --file "$tmp/g_cli.img:g_cli.img" "$tmp/l1.sh")
echo "$out" | awk '
	$2 == "DISK" { disk[$1] = ($3 == "vda") ? "raw" : "qcow2"; next }
	$2 == "NET" { split($3, kv, "="); v[$1, "tcp", "MB/s"] = kv[2]; next }
	{ split($2, kv, "="); v[$1, disk[$1], kv[1]] = kv[2] }
	END {
		printf "%-8s %-16s %12s %12s %8s\n", "disk", "figure", "ligero", "qemu", "ratio"
		n = split("raw qcow2", ds, " ")
		m = split("SEQREAD_MBS SEQWRITE_MBS RANDREAD_IOPS", fs, " ")
		for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
			a = v["ligero", ds[i], fs[j]]; b = v["qemu", ds[i], fs[j]]
			printf "%-8s %-16s %12s %12s %8s\n", ds[i], fs[j], a, b, (a && b) ? sprintf("%.2fx", a / b) : "-"
		}
		a = v["ligero", "tcp", "MB/s"]; b = v["qemu", "tcp", "MB/s"]
		printf "%-8s %-16s %12s %12s %8s\n", "net", "TCP_MBS", a, b, (a && b) ? sprintf("%.2fx", a / b) : "-"
	}'
