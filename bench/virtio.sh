#!/bin/sh
# bench/virtio.sh: ligero against QEMU (same kernel, same image files, same virtio-pci devices,
# q35 and KVM) inside the emulated host of tests/vmhost. Measures, in the guest, sequential
# read/write MB/s and 4 KiB random-read IOPS on a raw disk and on a qcow2 overlay (cache=writeback on
# both sides: the emulated host's files live on tmpfs, which has no O_DIRECT for cache=none; the
# guest itself uses O_DIRECT), and TCP throughput between two VMs on a bridge; prints the ratios ligero/QEMU.
# The guest has no fio: bench/vbench.c is built static here and carried in on a disk.
# Absolute figures are those of nested KVM under TCG emulation; only the ratios mean something.
#
# A guest that has not finished after 300 s is stopped, its run left out and named.
# ROUNDS rounds (default 3), each in an emulated-host boot of its own, ligero first in odd rounds and QEMU
# first in even ones; per figure it prints the medians, their ratio, and the median of the
# round-by-round ratios (the two runs of a round are back to back, under about the same load).
# The emulated host runs without nested paging (VMHOST_NPT=0 unless set): with the emulated NPT,
# interrupt-heavy L2 guests freeze or triple-fault, QEMU's too (docs/virtio.md).
#
# usage: bench/virtio.sh [blk|net]  (default both)
#        env: ROUNDS (3), LIGERO_BUILD (build), LIGERO_VMHOST (tests/vmhost/vmhost.sh), VMHOST_NPT,
#             DIAG=1 (net: each VMM thread's CPU ticks and the guests' virtio-net interrupts,
#             packets and their mean size, ping RTT), PIN=1 (net: each VM on an emulated CPU of
#             its own), COALESCE="US..." (net: also ligero with LIGERO_NET_COALESCE_US=US),
#             PROFILE=1 (net: ligero's two guests sampled with LIGERO_PROFILE and booted with
#             nokaslr; bench/netprof.py prints each one's busiest guest functions during the
#             transfer. The sampling slows the guests: its TCP figures are not for the ratios)
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
if [ "\$ROLE" = server ]; then /vb tcprecv 5001; else sleep 2
	[ -z "${DIAG:-}" ] || ping -q -c 10 -i 0.2 \$PEER | tail -1 | sed 's/^/IRQS PING /'
	[ -z "${PROFILE:-}" ] || echo XFER-BEGIN
	/vb tcpsend \$PEER 5001 400
	[ -z "${PROFILE:-}" ] || echo XFER-END
	[ -z "${DIAG:-}" ] || awk '\$1 == "Tcp:" && \$13 ~ /^[0-9]+\$/ {print "IRQS TCP out " \$12 " retransmitted " \$13}' /proc/net/snmp; fi
[ -z "${DIAG:-}" ] || { grep -E 'virtio[0-9]-(input|output)' /proc/interrupts | sed "s/^/IRQS \$ROLE /"
	grep eth0: /proc/net/dev | awk -v r=\$ROLE '{sub(/.*:/, ""); printf "IRQS %s packets rx %d (%d B each) tx %d (%d B each)\\n", r, \$2, \$2 ? \$1 / \$2 : 0, \$10, \$10 ? \$9 / \$10 : 0}'; }
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
# Touch 2 GiB of L1's memory once: the first VM in a fresh emulated host otherwise pays for
# QEMU's first touch of the pages behind L1's RAM (ran at about half speed, whichever VMM it was).
dd if=/dev/zero of=/tmp/warm bs=1M count=2048 2>/dev/null; rm -f /tmp/warm
export PATH=$PATH:/usr/bin
K=guest/vmlinuz; I=guest/initrd.img
fresh() {
	rm -f raw.img base.qcow2 ov.qcow2
	truncate -s 256M raw.img
	qemu-img create -q -f qcow2 base.qcow2 256M
	qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 ov.qcow2
}
ligero_blk() {
	timeout 300 ./ligero run --stop-timeout 0 --kernel $K --initrd $I --memory 512M --disk raw.img,format=raw,cache=writeback \
		--disk ov.qcow2,format=qcow2,cache=writeback --disk vbench.img,format=raw,readonly=on \
		--disk g_blk.img,format=raw,readonly=on --cmdline 'ligero.run="sh /dev/vdd"' \
		--console /tmp/l.log >/dev/null 2>&1
	tr -d '\r' </tmp/l.log | grep -E '^(DISK|[A-Z_]+=)' | sed "s/^/ligero $r /"
}
qemu_blk() {
	timeout 300 qemu-system-x86_64 -M q35 -accel kvm -cpu host -m 512M -smp 1 -nodefaults -display none \
		-no-reboot -kernel $K -initrd $I -serial file:/tmp/q.log \
		-append 'console=ttyS0 quiet ligero.run="sh /dev/vdd"' \
		-drive file=raw.img,if=none,id=d0,format=raw,cache=writeback -device virtio-blk-pci,drive=d0 \
		-drive file=ov.qcow2,if=none,id=d1,format=qcow2,cache=writeback -device virtio-blk-pci,drive=d1 \
		-drive file=vbench.img,if=none,id=d2,format=raw,readonly=on -device virtio-blk-pci,drive=d2 \
		-drive file=g_blk.img,if=none,id=d3,format=raw,readonly=on -device virtio-blk-pci,drive=d3 \
		>/dev/null 2>&1
	tr -d '\r' </tmp/q.log | grep -E '^(DISK|[A-Z_]+=)' | sed "s/^/qemu $r /"
}
# order of round r: ligero first when r is odd
order() { if [ $((r % 2)) = 1 ]; then echo "ligero qemu"; else echo "qemu ligero"; fi; }
if [ "$WHAT" != net ]; then
	r=$ROUND
	while [ $r -le $ROUND ]; do
		for v in $(order); do
			fresh; ${v}_blk >/tmp/res
			cat /tmp/res
			grep -q RANDREAD_IOPS /tmp/res || echo "$v $r STUCK blk"
		done
		r=$((r + 1))
	done
	rm -f raw.img base.qcow2 ov.qcow2
fi
[ "$WHAT" != blk ] || exit 0
brctl addbr br0; ip link set br0 up
printf '#!/bin/sh\nip link set "$1" up\nbrctl addif br0 "$1"\n' >/tmp/ifup; chmod +x /tmp/ifup
# PIN=1: each VM (all its threads) on an emulated CPU of its own, server on 0, client on 1
pin() { # srv|cli
	[ -z "$PIN" ] || { [ $1 = srv ] && echo "taskset -c 0" || echo "taskset -c 1"; }
}
ligero_net() {
	LIGERO_NET_COALESCE_US=$CO LIGERO_PROFILE=${PROFILE:+/tmp/prof_$1} timeout 300 $(pin $1) ./ligero run --stop-timeout 0 --kernel $K --initrd $I --memory 256M --net bridge=br0 --disk g_$1.img,format=raw,readonly=on \
		--disk vbench.img,format=raw,readonly=on --cmdline "${PROFILE:+nokaslr }ligero.run=\"sh /dev/vda\"" --console /tmp/n$1.log >/dev/null 2>&1
}
# PROFILE: the guest's kernel symbols (a boot that writes its /proc/kallsyms onto a raw disk),
# and L1's uptime when the sender's console shows XFER-BEGIN and XFER-END (both VMs' window)
[ -z "$PROFILE" ] || ksyms $K $I
xfer_watch() {
	t0=-; t1=-
	while [ "$t1" = - ]; do
		if [ "$t0" = - ] && grep -q XFER-BEGIN /tmp/ncli.log 2>/dev/null; then t0=$(cut -d' ' -f1 /proc/uptime); fi
		if grep -q XFER-END /tmp/ncli.log 2>/dev/null; then t1=$(cut -d' ' -f1 /proc/uptime); fi
		sleep 0.2
	done
	echo "$t0 $t1" >/tmp/xfer
}
qemu_net() {
	timeout 300 $(pin $1) qemu-system-x86_64 -M q35 -accel kvm -cpu host -m 256M -smp 1 -nodefaults -display none -no-reboot \
		-kernel $K -initrd $I -serial file:/tmp/n$1.log -append 'console=ttyS0 quiet ligero.run="sh /dev/vda"' \
		-netdev tap,id=n0,script=/tmp/ifup,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:00:01:$2,romfile= \
		-drive file=g_$1.img,if=none,id=d0,format=raw,readonly=on -device virtio-blk-pci,drive=d0 \
		-drive file=vbench.img,if=none,id=d1,format=raw,readonly=on -device virtio-blk-pci,drive=d1 >/dev/null 2>&1
}
# DIAG: each VMM thread's CPU ticks (utime + stime, last sample before it exits), sampled twice
# a second, and each guest's virtio-net interrupt counts, so where a run's time went shows.
cpu_sampler() {
	while sleep 0.5; do
		for t in /proc/[0-9]*/task/[0-9]*; do
			case "$(cat $t/comm 2>/dev/null)" in
			ligero* | qemu* | virtio*) echo "$t $(cat $t/comm) $(cut -d' ' -f14,15 $t/stat | tr ' ' +)" ;;
			esac
		done 2>/dev/null | awk '{split($3, a, "+"); print $1, $2, a[1] + a[2]}' >>/tmp/samp.all
	done
}
# COALESCE="500 2000": ligero is also run with LIGERO_NET_COALESCE_US=500 and =2000
# (docs/virtio.md), named ligero500 and ligero2000, after ligero in odd rounds, before it in even
norder() {
	vs=$(order)
	for c in $COALESCE; do
		if [ $((r % 2)) = 1 ]; then vs="$vs ligero$c"; else vs="ligero$c $vs"; fi
	done
	echo $vs
}
r=$ROUND
while [ $r -le $ROUND ]; do
	for v in $(norder); do
		CO=${v#ligero}
		[ "$CO" != "$v" ] && [ -n "$CO" ] || CO=0
		rm -f /tmp/nsrv.log /tmp/ncli.log /tmp/prof_srv /tmp/prof_cli /tmp/xfer
		[ -z "$DIAG" ] || { cpu_sampler & sp=$!; }
		if [ "${v#ligero}" != "$v" ]; then
			[ -z "$PROFILE" ] || { xfer_watch & xp=$!; }
			ligero_net srv & p=$!; ligero_net cli; wait $p
			if [ -n "$PROFILE" ]; then
				i=0; while kill -0 $xp 2>/dev/null && [ $i -lt 5 ]; do sleep 0.2; i=$((i + 1)); done
				kill $xp 2>/dev/null
				for n in srv cli; do
					echo "PROFWIN $v $r $n $(cat /tmp/xfer 2>/dev/null || echo - -)"
					echo PROF-BEGIN; gzip </tmp/prof_$n | base64; echo PROF-END
				done
			fi
		else
			qemu_net srv 01 & p=$!; qemu_net cli 02; wait $p
		fi
		if [ -n "$DIAG" ]; then
			kill $sp
			awk '{t[$1] = $2; c[$1] = $3} END {for (k in t) print t[k], c[k]}' /tmp/samp.all |
				sort -k2 -n | tail -6 | sed "s/^/$v $r DIAG cpu-ticks /"
			rm -f /tmp/samp.all
			for n in srv cli; do tr -d '\r' </tmp/n$n.log | grep '^IRQS' | sed "s/^/$v $r DIAG /"; done
		fi
		tr -d '\r' </tmp/nsrv.log | grep -E '^TCP_MBS=' | sed "s/^/$v $r NET /" >/tmp/res
		cat /tmp/res
		[ -s /tmp/res ] || echo "$v $r STUCK net"
	done
	r=$((r + 1))
done
L1
sed -i "1i WHAT=$what DIAG=${DIAG:-} PIN=${PIN:-} COALESCE='${COALESCE:-}' PROFILE=${PROFILE:-}" "$tmp/l1.sh"
cat "$root/bench/ksyms.sh" "$tmp/l1.sh" >"$tmp/l1f.sh" && mv "$tmp/l1f.sh" "$tmp/l1.sh"
export VMHOST_NPT=${VMHOST_NPT:-0}

# The emulated host loads only KVM: carry tun and bridge (and what they need) in.
mods=$build/guest/modules
[ -d "$mods" ] || sh "$root/tests/guest/build.sh" "$build/guest" >/dev/null
modfiles=
i=10
for m in $(/usr/bin/python3 "$root/tests/guest/modules.py" "$mods" tun bridge); do
	modfiles="$modfiles --file $mods/$m:mods/$i-$(basename "$m")"
	i=$((i + 1))
done
# Each round in an emulated host of its own: one that ran many VMs in a row has frozen (twice,
# on the fifth VM); a round whose emulated host fails is named and left out.
out=
r=1
while [ $r -le "${ROUNDS:-3}" ]; do
	{ echo "ROUND=$r"; cat "$tmp/l1.sh"; } >"$tmp/l1r.sh"
	# shellcheck disable=SC2086
	if o=$(sh "$vmhost" --timeout 1500 $modfiles --mem 3G --bin "$(command -v qemu-img)" \
		--bin "$(command -v qemu-system-x86_64)" --tree /usr/share/qemu --tree /usr/share/seabios \
		--file "$tmp/vbench.img:vbench.img" --file "$tmp/g_blk.img:g_blk.img" \
		--file "$tmp/g_srv.img:g_srv.img" --file "$tmp/g_cli.img:g_cli.img" "$tmp/l1r.sh"); then
		:
	else
		echo "bench: round $r: the emulated host failed (status $?); round left out" >&2
	fi
	out="$out
$o"
	r=$((r + 1))
done
echo "$out" | grep -E '^(ligero[0-9]*|qemu) [0-9]+ DIAG ' || true
[ -z "${PROFILE:-}" ] || echo "$out" | (cd "$root/bench" && python3 netprof.py) || true
# the COALESCE variants: each round's TCP figure and its ratio to QEMU's of that round
[ -z "${COALESCE:-}" ] || echo "$out" | awk '
	$3 == "NET" { split($4, kv, "="); v[$1, $2] = kv[2]; if (!($1 in seen)) { seen[$1] = 1; names[++nn] = $1 } }
	END { for (i = 1; i <= nn; i++) { if (names[i] == "qemu") continue
		printf "net TCP_MBS %-11s", names[i]
		for (r = 1; r <= 99; r++) if ((names[i], r) in v)
			printf "  r%d %s (%.2fx)", r, v[names[i], r], ((("qemu", r) in v) && v["qemu", r] > 0) ? v[names[i], r] / v["qemu", r] : 0
		printf "\n" } }'
echo "$out" | grep -E '^(ligero|qemu) [0-9]+ ' | grep -v ' DIAG ' | awk '
	function median(key, n,   a, i, j, t, m) { # of vals[key, 1..n] that are set
		m = 0
		for (i = 1; i <= n; i++) if ((key, i) in vals) a[++m] = vals[key, i]
		for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		if (m == 0) return ""
		return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	$3 == "STUCK" { stuck = stuck sprintf(" %s (round %d, %s)", $1, $2, $4); next }
	$3 == "DISK" { disk[$1, $2] = ($4 == "vda") ? "raw" : "qcow2"; next }
	$3 == "NET" { split($4, kv, "="); vals[$1 SUBSEP "net" SUBSEP "TCP_MBS", $2] = kv[2]; if ($2 > n) n = $2; next }
	{ split($3, kv, "="); vals[$1 SUBSEP disk[$1, $2] SUBSEP kv[1], $2] = kv[2]; if ($2 > n) n = $2 }
	END {
		printf "%-6s %-14s %9s %9s %7s  %s\n", "disk", "figure", "ligero", "qemu", "ratio", "round by round (median)"
		split("raw qcow2 raw qcow2 raw qcow2 net", ds, " ")
		split("SEQREAD_MBS SEQREAD_MBS SEQWRITE_MBS SEQWRITE_MBS RANDREAD_IOPS RANDREAD_IOPS TCP_MBS", fs, " ")
		for (i = 1; i <= 7; i++) {
			a = median("ligero" SUBSEP ds[i] SUBSEP fs[i], n); b = median("qemu" SUBSEP ds[i] SUBSEP fs[i], n)
			if (a == "" && b == "") continue
			rr = ""; delete vals["rr", 0]
			for (k = 1; k <= n; k++) {
				x = vals["ligero" SUBSEP ds[i] SUBSEP fs[i], k]; y = vals["qemu" SUBSEP ds[i] SUBSEP fs[i], k]
				if (x != "" && y > 0) { vals["rr", k] = x / y; rr = rr sprintf(" %.2f", x / y) }
				else delete vals["rr", k]
			}
			m = median("rr", n)
			printf "%-6s %-14s %9s %9s %7s  %s\n", ds[i], fs[i], a, b, (a && b) ? sprintf("%.2fx", a / b) : "-", \
				rr == "" ? "-" : sprintf("%.2fx (%s )", m, rr)
		}
		if (stuck != "") printf "runs whose guest did not finish in 300 s (left out):%s\n", stuck
	}'
