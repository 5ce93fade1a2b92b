# L1 (emulated host) side of test_power.py: one VM after the other, each with a qcow2 disk it
# writes, each ended another way. Prints KEY=value lines, KEY starting with the case's name.
#   poweroff  SIGTERM: the guest's acpid powers off (ext4 on the disk, mounted and written)
#   sigint    SIGINT with stdin not a terminal: the same
#   ignore    the guest sees the button and does nothing: --stop-timeout 5 stops it
#   twice     the guest ignores the button: a second SIGTERM stops it at once
#   panic     the guest panics (no signal)
#   reboot    the guest reboots (no signal)
# The other disks get 4 MiB of a pattern with O_DIRECT and no flush: what ligero holds of them
# (qcow2 metadata in its caches) is written out only by its own exit path.
cd /work
L=./ligero; K="--kernel guest/vmlinuz --initrd guest/initrd.img --memory 256M"
PATTERN="yes ligero-power | head -c 4194304 | dd of=/dev/vda bs=1M iflag=fullblock oflag=direct"
SCI="grep ' acpi\$' /proc/interrupts | tr -s ' '"
now() { cut -d' ' -f1 /proc/uptime; }
# A VM that dies before its init prints LIGERO-INIT died in the emulated host's model of nested
# SVM, not in ligero (docs/ligero-run.md): booted again, at most twice, and counted.
early() { ! grep -q LIGERO-INIT "$1" 2>/dev/null; }
retries=0

# wait_for PATTERN FILE PID: until the console shows PATTERN; fails when the VM is gone, or
# after 300 s (a hang guard: boots here take 5-30 s)
wait_for() {
	i=0
	while ! grep -qE "$1" "$2" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || return 1
		i=$((i + 1)); [ $i -gt 600 ] && return 1
		sleep 0.5
	done
}

# wait_exit PID: its exit status, or 255 after 300 s (it is killed then: a hang)
wait_exit() {
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.5; done
	if kill -0 "$1" 2>/dev/null; then
		echo "$c-HUNG=1"; kill -9 "$1"; wait "$1"; return 255
	fi
	wait "$1"
}

# start CASE GUEST-ARGS RUN [ligero options...]: boot a VM on /tmp/CASE.qcow2 in the
# background (stdin /dev/null: not a terminal), console in /tmp/CASE.log, $pid its ligero;
# returns once the guest printed READY (or ended). Retried as said above.
start() {
	c=$1 args=$2 run=$3; shift 3
	for try in 1 2 3; do
		$L run $K --disk /tmp/$c.qcow2 "$@" --cmdline "quiet $args ligero.run=\"$run\"" \
			--console /tmp/$c.log </dev/null >/tmp/$c.out 2>/tmp/$c.err &
		pid=$!
		wait_for "^READY|LIGERO-RC" /tmp/$c.log $pid && return 0
		early /tmp/$c.log && [ $try -lt 3 ] || return 1
		kill -9 $pid 2>/dev/null; wait $pid
		retries=$((retries + 1)); echo "EARLY-BOOT-FAILURE $c: $(tail -c 200 /tmp/$c.err)"
	done
}

report() { # CASE RC: what ligero said, what the guest printed, the disk's check
	echo "$1-RC=$2"
	echo "$1-STDERR=$(tr '\n' '|' </tmp/$1.err)"
	tr -d '\r' </tmp/$1.log | grep -E '^READY|LIGERO-POWER-BUTTON|LIGERO-RC|^acpid|^init:' |
		sed "s/^/$1-CONSOLE=/"
	qemu-img check /tmp/$1.qcow2 >/tmp/chk 2>&1; echo "$1-CHECK-RC=$?"
	sed "s/^/$1-CHECK: /" /tmp/chk
	[ "$2" = 0 ] || tr -d '\r' </tmp/$1.log | tail -n 30 | sed "s/^/$1-TAIL: /"
}

pattern_sha() { # CASE: the first 4 MiB of its disk, as qemu-img reads them
	qemu-img convert -O raw /tmp/$1.qcow2 /tmp/$1.raw &&
		echo "$1-SHA=$(head -c 4194304 /tmp/$1.raw | sha256sum | cut -c1-64)"
	rm -f /tmp/$1.raw
}

fs_report() { # CASE: e2fsck and the file the guest wrote
	qemu-img convert -O raw /tmp/$1.qcow2 /tmp/$1.raw
	e2fsck -fn /tmp/$1.raw >/tmp/fsck 2>&1; echo "$1-FSCK-RC=$?"
	sed "s/^/$1-FSCK: /" /tmp/fsck
	echo "$1-SEQ-SHA=$(debugfs -R 'cat /seq.txt' /tmp/$1.raw 2>/dev/null | sha256sum | cut -c1-64)"
	rm -f /tmp/$1.raw
}

# -- poweroff, sigint: ext4 mounted and a file written, then the signal --
for c in poweroff sigint; do
	cp fs.qcow2 /tmp/$c.qcow2
	sig=TERM; [ $c = sigint ] && sig=INT
	rc=254
	if start $c "" "mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && seq 1 100000 >/mnt/seq.txt && echo READY \$($SCI); sleep 100000"; then
		kill -$sig $pid
		wait_exit $pid; rc=$?
	else
		kill -9 $pid 2>/dev/null; wait $pid
	fi
	report $c $rc
	fs_report $c
done

# -- ignore: the guest sees the button and does nothing; --stop-timeout 5 --
c=ignore
qemu-img create -q -f qcow2 /tmp/$c.qcow2 64M
rc=254
if start $c ligero.button=ignore "$PATTERN && echo READY \$($SCI); sleep 100000" --stop-timeout 5; then
	t0=$(now)
	kill -TERM $pid
	wait_exit $pid; rc=$?
	echo "$c-ELAPSED=$t0 $(now)"
else
	kill -9 $pid 2>/dev/null; wait $pid
fi
report $c $rc
pattern_sha $c

# -- twice: the guest ignores the button; the second SIGTERM stops it at once --
c=twice
qemu-img create -q -f qcow2 /tmp/$c.qcow2 64M
rc=254
if start $c ligero.button=ignore "$PATTERN && echo READY \$($SCI); sleep 100000" --stop-timeout 600; then
	kill -TERM $pid
	# the guest has seen the first press before the second signal comes
	if wait_for LIGERO-POWER-BUTTON /tmp/$c.log $pid; then kill -TERM $pid; fi
	wait_exit $pid; rc=$?
else
	kill -9 $pid 2>/dev/null; wait $pid
fi
report $c $rc
pattern_sha $c

# -- panic, reboot: the guest ends the VM itself after writing --
for c in panic reboot; do
	qemu-img create -q -f qcow2 /tmp/$c.qcow2 64M
	rc=254
	if start $c ligero.exit=$c "$PATTERN"; then
		wait_exit $pid; rc=$?
	else
		kill -9 $pid 2>/dev/null; wait $pid
	fi
	report $c $rc
	pattern_sha $c
done
echo "EARLY-BOOT-RETRIES=$retries"
exit 0
