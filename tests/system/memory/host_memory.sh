# L1 (emulated host) side of test_vm_memory.py: one 512 MiB VM with a balloon. KSM merges the
# 300 MiB of identical pages its guest wrote (ligero ksm enable / status / disable, compared
# with the raw counters), then the guest frees them and free page reporting must give them back.
cd /work
L=./ligero
k=/sys/kernel/mm/ksm
say() { echo "$*"; }
early() { ! grep -q LIGERO-INIT "$1" 2>/dev/null; }
wait_for() { # PATTERN FILE SECONDS PID: bounded; gives up when the VM exits
	i=0
	while ! grep -q "$1" "$2" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt $(($3 * 2)) ] && return 1
		kill -0 "$4" 2>/dev/null || return 1
		[ $i -ge 300 ] && early "$2" && return 1
		sleep 0.5
	done
}
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$pm/status; }
raw() { # PREFIX: the kernel's own counters, and the VM's
	for f in run pages_to_scan sleep_millisecs merge_across_nodes use_zero_pages \
		max_page_sharing pages_shared pages_sharing pages_unshared pages_volatile full_scans \
		ksm_zero_pages general_profit; do
		[ -f $k/$f ] && say "$1-$f=$(cat $k/$f)"
	done
	say "$1-merging=$(cat /proc/$pm/ksm_merging_pages 2>/dev/null)"
	say "$1-rss-kb=$(rss)"
	say "$1-memtotal-kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
	say "$1-memavailable-kb=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
}
say "L1-KERNEL=$(uname -r)"
truncate -s 1M ctl.raw
retries=0
for try in 1 2 3; do
	$L run --kernel guest/vmlinuz --initrd guest/initrd.img --memory 512M --balloon 0 \
		--disk ctl.raw,format=raw --disk guest_memory.sh.img,format=raw,readonly=on \
		--cmdline 'ligero.run="sh /dev/vdb"' --console /tmp/m.log >/tmp/m.out 2>&1 &
	pm=$!
	wait_for FILLED /tmp/m.log 900 $pm && break
	! early /tmp/m.log || [ $try -eq 3 ] && break
	kill -9 $pm 2>/dev/null; wait $pm
	retries=$((retries + 1)); say "EARLY-BOOT-FAILURE: $(tr '\n' ' ' </tmp/m.out | tail -c 200)"
done
say "EARLY-BOOT-RETRIES=$retries"
say "VM-PID=$pm"
if ! grep -q FILLED /tmp/m.log; then
	say "VM-NOT-READY"; tr -d '\r' </tmp/m.log | tail -n 25 | sed 's/^/CONSOLE: /'
	kill -9 $pm 2>/dev/null; exit 0
fi
# ---- KSM ----
$L ksm status >/tmp/ks0 2>&1; say "KSM-STATUS-OFF-RC=$?"; sed 's/^/KSM-OFF: /' /tmp/ks0
$L ksm enable --pages-to-scan 4000 --sleep-ms 10 >/tmp/ken 2>&1; say "KSM-ENABLE-RC=$?"
sed 's/^/KSM-ENABLE: /' /tmp/ken
i=0  # a hang guard: the emulated host merged 112k pages in 20 s (issue 22)
while [ $i -lt 900 ] && [ "$(cat $k/pages_sharing)" -lt 50000 ]; do sleep 1; i=$((i + 1)); done
say "KSM-WAITED-S=$i"
# while ksmd runs: its counters move between any two reads
raw RAW-BEFORE
$L ksm status --output=json >/tmp/ks.json 2>/tmp/ks.err; say "KSM-RC=$?"
raw RAW-AFTER
say "KSM-JSON=$(tr -d '\n' </tmp/ks.json)"
say "KSM-STATUS-ERR=$(tr '\n' ' ' </tmp/ks.err)"
# ksmd stopped (merged pages stay merged): the figures hold still, to be compared exactly
echo 0 >$k/run
raw FROZEN-BEFORE
$L ksm status --output=json >/tmp/ks.json 2>/tmp/ks.err; say "KSM-FROZEN-RC=$?"
raw FROZEN-AFTER
say "KSM-FROZEN-JSON=$(tr -d '\n' </tmp/ks.json)"
$L ksm status | sed 's/^/KSM-TEXT: /'
# ksmtuned's decision on this host, counting the VM (dry run: nothing written)
$L ksm auto --once --dry-run --output=json >/tmp/ka.json 2>&1; say "KSM-AUTO-RC=$?"
say "KSM-AUTO-JSON=$(tr -d '\n' </tmp/ka.json)"
raw AUTO-AFTER
$L ksm disable --unmerge >/tmp/kd 2>&1; say "KSM-DISABLE-RC=$?"; sed 's/^/KSM-DISABLE: /' /tmp/kd
say "KSM-RUN-AFTER-DISABLE=$(cat $k/run)"
i=0
while [ $i -lt 900 ] && [ "$(cat $k/pages_sharing)" -gt 0 ]; do sleep 1; i=$((i + 1)); done
say "KSM-UNMERGED-SHARING=$(cat $k/pages_sharing)"
# ---- free page reporting ----
r1=$(rss); say "RSS-FILLED-KB=$r1"
printf go | dd of=ctl.raw conv=notrunc 2>/dev/null
wait_for FREED /tmp/m.log 900 $pm; say "FREED-SEEN-RC=$?"
i=0; r2=$r1
while [ $i -lt 900 ]; do  # a hang guard; reporting runs every 2 s in the guest
	r2=$(rss); [ -n "$r2" ] && [ $((r1 - r2)) -ge 204800 ] && break
	sleep 1; i=$((i + 1))
done
say "RSS-AFTER-KB=$r2"
say "RSS-WAITED-S=$i"
tr -d '\r' </tmp/m.log | grep -E '^[A-Z0-9-]+=' | sed 's/^/GUEST-/'
kill -0 $pm 2>/dev/null && say "VM-ALIVE=1"
kill -9 $pm 2>/dev/null; wait $pm 2>/dev/null
say "VMM-STDERR: $(tr '\n' ' ' </tmp/m.out | tail -c 400)"
exit 0
