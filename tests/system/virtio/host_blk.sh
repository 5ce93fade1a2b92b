# L1 (emulated host) side of the blk/rng/balloon case: VM A, then VM B.
cd /work
L=./ligero; K="--kernel guest/vmlinuz --initrd guest/initrd.img --memory 256M"
say() { echo "$*"; }
truncate -s 100M /tmp/cache.raw
sha256sum base.qcow2 | cut -c1-64 | sed 's/^/BASE-SHA-BEFORE=/'
sha256sum ro.raw | cut -c1-64 | sed 's/^/RO-SHA-BEFORE=/'
wait_for() { # PATTERN FILE SECONDS PID: gives up early when the VM has exited, or when it
	# has not reached its init after 150 s (see early below)
	i=0
	while ! grep -q "$1" "$2" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt $(($3 * 2)) ] && return 1
		kill -0 "$4" 2>/dev/null || return 1
		[ $i -ge 300 ] && early "$2" && return 1
		sleep 0.5
	done
}
# A VM that dies before its init prints LIGERO-INIT died in the kernel's early start, before any
# virtio driver: the emulated host's own failure (docs/ligero-run.md), tried again (twice at
# most) and counted in EARLY-BOOT-RETRIES. VM A runs to its end before VM B starts: two VMs at
# once make those failures far more frequent.
early() { ! grep -q LIGERO-INIT "$1" 2>/dev/null; }
retries=0
for try in 1 2 3; do
	LIGERO_STATS=1 $L run $K --rng --disk ov.qcow2,serial=LIGERO-A --disk ov2.qcow2,format=qcow2 \
		--disk ro.raw,format=raw,readonly=on --disk ext4.img,format=raw,readonly=on \
		--disk guest_a.sh.img,format=raw,readonly=on \
		--cmdline 'ligero.run="sh /dev/vde"' --console /tmp/a.log >/tmp/a.out 2>&1 &
	pa=$!
	# bounded wait: a hang shows its console instead of eating the whole timeout
	# (and one still short of its init after 150 s is stalled there: a boot takes 5-30 s)
	i=0; while kill -0 $pa 2>/dev/null && [ $i -lt 300 ]; do
		i=$((i + 1)); sleep 1
		[ $i -ge 150 ] && early /tmp/a.log && [ $try -lt 3 ] && break
	done
	if kill -0 $pa 2>/dev/null && ! early /tmp/a.log; then
		say "A-HUNG"; tr -d '\r' </tmp/a.log | tail -n 25 | sed 's/^/A-CONSOLE: /'
	fi
	kill -9 $pa 2>/dev/null
	wait $pa; rc_a=$?
	early /tmp/a.log && [ $try -lt 3 ] || break
	retries=$((retries + 1)); say "A-EARLY-BOOT-FAILURE: $(tr '\n' ' ' </tmp/a.out | tail -c 200)"
done
say "A-RC=$rc_a"
for try in 1 2 3; do
	$L run --kernel guest/vmlinuz --initrd guest/initrd.img --memory 128M --disk fsync.raw,format=raw,cache=writethrough --disk /tmp/cache.raw,format=raw,readonly=on \
		--disk guest_b.sh.img,format=raw,readonly=on --balloon 96,trigger=/tmp/inflate \
		--cmdline 'ligero.run="sh /dev/vdc"' --console /tmp/b.log >/tmp/b.out 2>&1 &
	pb=$!
	say "STARTED $(cut -d' ' -f1 /proc/uptime)"
	wait_for TOUCHED /tmp/b.log 600 $pb && break
	! early /tmp/b.log || [ $try -eq 3 ] && break
	kill -9 $pb 2>/dev/null; wait $pb
	retries=$((retries + 1)); say "B-EARLY-BOOT-FAILURE: $(tr '\n' ' ' </tmp/b.out | tail -c 200)"
done
say "EARLY-BOOT-RETRIES=$retries"
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$pb/status; }
if grep -q TOUCHED /tmp/b.log; then
	say "B-TOUCHED $(cut -d' ' -f1 /proc/uptime)"
	sleep 1
	r1=$(rss); say "RSS-BEFORE-KB=$r1"
	touch /tmp/inflate
	i=0; r2=$r1
	while [ $i -lt 120 ]; do
		sleep 1; i=$((i + 1)); r2=$(rss)
		[ $((r1 - r2)) -ge 49152 ] && break
	done
	say "RSS-AFTER-KB=$r2 (after ${i}s)"
else
	say "VM-B-NOT-READY"; tr -d '\r' </tmp/b.log | tail -n 25 | sed 's/^/B-CONSOLE: /'
fi
kill -9 $pb; wait $pb 2>/dev/null
say "FSYNC-SHA=$(head -c 1048576 fsync.raw | sha256sum | cut -c1-64)"
grep -q SYNCED /tmp/b.log && say "B-SYNCED=1"
tr -d '\r' </tmp/a.log | grep -E '^[A-Z0-9-]+=|-OK$|LIGERO-RC|virtio|Read-only'
say "A-STDERR: $(cat /tmp/a.out | tr '\n' ' ')"
say "B-STDERR: $(cat /tmp/b.out | tr '\n' ' ')"
sha256sum base.qcow2 | cut -c1-64 | sed 's/^/BASE-SHA-AFTER=/'
sha256sum ro.raw | cut -c1-64 | sed 's/^/RO-SHA-AFTER=/'
qemu-img check ov.qcow2 >/tmp/chk 2>&1; say "CHECK-OV-RC=$?"; sed 's/^/CHECK-OV: /' /tmp/chk
qemu-img check ov2.qcow2 >/tmp/chk 2>&1; say "CHECK-OV2-RC=$?"
qemu-img convert -O raw base.qcow2 /tmp/exp.raw
yes ligero-pattern | head -c 4194304 | dd of=/tmp/exp.raw bs=1M seek=16 conv=notrunc 2>/dev/null
qemu-img compare -f qcow2 -F raw ov.qcow2 /tmp/exp.raw >/tmp/cmp 2>&1; say "COMPARE-RC=$?"; sed 's/^/COMPARE: /' /tmp/cmp
qemu-img map --output=json ov.qcow2 | tr -d ' \n' | sed 's/^/MAP=/'; echo
qemu-img convert -O raw ov2.qcow2 /tmp/ext4.raw
e2fsck -fn /tmp/ext4.raw >/tmp/fsck 2>&1; say "FSCK-RC=$?"
say "EXT4-SEQ-SHA=$(debugfs -R 'cat /seq.txt' /tmp/ext4.raw 2>/dev/null | sha256sum | cut -c1-64)"
exit 0
