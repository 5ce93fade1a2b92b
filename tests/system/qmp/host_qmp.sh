# L1 (emulated host) side of test_qmp.py: one VM driven through its QMP socket and console
# socket the way a VM host drives it, then a few short-lived VMs for the files and sockets
# `ligero vm` relies on. Prints KEY=value lines and, prefixed with their name, what the
# clients received; test_qmp.py judges them.
#   main    2 vCPUs, a qcow2 disk over a backing file, a balloon, --console none: QMP queries,
#           a console client attached late (it sees the boot) that types a command, a second
#           client, stop/cont with a ticking guest, balloon, 200 garbage messages,
#           system_powerdown to the end; a second `run` on the same sockets is refused
#   stale   killed with SIGKILL: its socket stays; `reset` starts on it all the same
#   reset   system_reset through QMP before the guest even booted
#   quit    quit through QMP
# unixcat (tests/tools) is the raw socket client; the emulated host has no python.
cd /work
L=./ligero; UC=${UC:-unixcat}
K="--kernel guest/vmlinuz --initrd guest/initrd.img"
CAPS='{"execute": "qmp_capabilities"}'

# a console client that ended (its VMM died) leaves the fifo without a reader: the write fails,
# the script goes on to report what happened
trap '' PIPE

# threads PID: where each thread of PID is, as "stuck: " lines (name, state, kernel wait
# channel, and the system call it is in: 16 is ioctl, KVM_RUN for a vCPU thread; 202 futex)
threads() {
	for t in /proc/"$1"/task/*; do
		echo "stuck: $(cat $t/comm 2>/dev/null) $(cut -d' ' -f3 $t/stat 2>/dev/null)" \
			"$(cat $t/wchan 2>/dev/null) $(cut -d' ' -f1 $t/syscall 2>/dev/null)"
	done
}

# wait_for PATTERN FILES PID: until one of FILES (a space-separated list) shows PATTERN;
# fails when PID is gone (its stderr's tail is printed: a sanitizer's report lands there), or
# after 300 s (a hang guard: boots here take 5-30 s; then where PID's threads are is printed)
wait_for() {
	i=0
	while ! grep -sqaE "$1" $2; do
		kill -0 "$3" 2>/dev/null || {
			echo "VMM-GONE $(tail -c 1500 /tmp/err 2>/dev/null | tr '\n' '|')"; return 1; }
		i=$((i + 1))
		if [ $i -gt 600 ]; then
			echo "TIMEOUT $1"
			threads "$3"
			return 1
		fi
		sleep 0.5
	done
}

# wait_exit PID: its exit status, or 255 after 300 s (then where its threads are is printed
# and it is killed: a hang)
wait_exit() {
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.5; done
	if kill -0 "$1" 2>/dev/null; then
		echo "HUNG=$1"; threads "$1"; kill -9 "$1"; wait "$1"; return 255
	fi
	wait "$1"
}

# qmp NAME REQUEST...: one connection: capabilities, the requests, the answers in
# /tmp/NAME.qmp (also printed, prefixed NAME:)
qmp() {
	n=$1; shift
	{ echo "$CAPS"; for r in "$@"; do echo "$r"; done; } | $UC -t 120 /tmp/q.sock >/tmp/$n.qmp
	echo "$n-RC=$?"
	tr -d '\r' </tmp/$n.qmp | sed "s/^/$n: /"
}

# the guest's ticks: a counter and its uptime, every second
TICK='i=0; while :; do i=$((i+1)); read up rest </proc/uptime; echo TICK $i $up; sleep 1; done'
RUN="echo CLOCKSOURCE \$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource); ($TICK) & echo READY"

qemu-img create -q -f qcow2 /tmp/base.qcow2 64M
qemu-img create -q -f qcow2 -b /tmp/base.qcow2 -F qcow2 /tmp/disk.qcow2

# -- main --
retries=0
for try in 1 2 3; do
	rm -f /tmp/c.log /tmp/c.log.1 /tmp/vm.pid /tmp/exit.json
	$L run $K --memory 384M --cpus 2 --disk /tmp/disk.qcow2 --balloon 0 --name qmptest \
		--qmp /tmp/q.sock --console-socket /tmp/c.sock --console-log /tmp/c.log \
		--console-log-size 4096 --console none --pidfile /tmp/vm.pid \
		--exit-status-file /tmp/exit.json \
		--cmdline "quiet ligero.exit=shell ligero.run=\"$RUN\"" </dev/null >/tmp/out 2>/tmp/err &
	pid=$!
	# the pidfile comes once both sockets listen
	i=0; while [ ! -s /tmp/vm.pid ] && kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do
		i=$((i + 1)); sleep 0.1; done
	echo "PIDFILE=$(cat /tmp/vm.pid 2>/dev/null) PID=$pid"
	echo "SOCKETS=$(stat -c '%a %F' /tmp/q.sock /tmp/c.sock | tr '\n' ',')"
	# an event listener for the whole life of the VM
	echo "$CAPS" | $UC -k -t 900 /tmp/q.sock >/tmp/events.qmp &
	evpid=$!
	wait_for "^READY" "/tmp/c.log.1 /tmp/c.log" $pid && break
	cat /tmp/c.log.1 /tmp/c.log 2>/dev/null | grep -q LIGERO-INIT && [ $try -lt 3 ] || break
	kill -9 $pid; wait $pid; wait $evpid
	retries=$((retries + 1)); echo "EARLY-BOOT-FAILURE $(tail -c 200 /tmp/err)"
done
echo "EARLY-BOOT-RETRIES=$retries"
echo "COMM=$(cat /proc/$pid/comm)"

# a second VMM on the same QMP socket is refused, before it touches KVM
$L run $K --qmp /tmp/q.sock --console none --exit-status-file /tmp/exit2.json \
	</dev/null >/tmp/out2 2>/tmp/err2
echo "SECOND-RC=$? SECOND-ERR=$(cat /tmp/err2)"
echo "SECOND-EXIT=$(cat /tmp/exit2.json)"

qmp queries '{"execute": "query-status"}' '{"execute": "query-name"}' \
	'{"execute": "query-cpus-fast"}' '{"execute": "query-block"}' \
	'{"execute": "query-memory-size-summary"}' '{"execute": "query-version"}' \
	'{"execute": "query-balloon"}' '{"execute": "ligero-query-stats"}' \
	'{"execute": "ligero-query-exit"}' '{"execute": "query-commands"}'
echo "VCPU-THREADS=$(for t in /proc/$pid/task/*; do echo "$(basename $t):$(tr ' ' _ <$t/comm)"; done | grep CPU | tr '\n' ' ')"

# a console client attaches late: it gets the boot first; it types a command
mkfifo /tmp/cin
$UC -k -t 900 /tmp/c.sock </tmp/cin >/tmp/cA.out &
capid=$!
exec 3>/tmp/cin
wait_for "^READY" /tmp/cA.out $pid
echo 'echo CMD-$((6*7))' >&3
wait_for "^CMD-42" /tmp/cA.out $pid; echo "CMD-RC=$?"
# a second client, later still, sees it too; it types nothing and leaves
$UC -t 60 /tmp/c.sock </dev/null >/tmp/cB.out &
bpid=$!
wait_for "^CMD-42" /tmp/cB.out $pid; echo "CLIENT-B-RC=$?"
kill $bpid 2>/dev/null; wait $bpid

# pause: no tick while paused; the counter goes on after cont, and the guest's clock too
wait_for "^TICK 5 " /tmp/cA.out $pid
t0=$(cut -d" " -f1 /proc/uptime)
qmp stop '{"execute": "stop"}' '{"execute": "query-status"}'
n1=$(grep -ac 'TICK' /tmp/cA.out)
at_stop=$(grep -ao 'TICK [0-9]*' /tmp/cA.out | tail -n1 | cut -d' ' -f2)
sleep 8 # an observation window: a paused guest prints nothing, however long it is
n2=$(grep -ac 'TICK' /tmp/cA.out)
qmp cont '{"execute": "cont"}' '{"execute": "query-status"}'
t1=$(cut -d" " -f1 /proc/uptime)
echo "PAUSE-TICKS=$n1 $n2 PAUSE-HOST=$t0 $t1 TICK-AT-STOP=$at_stop"
wait_for "TICK $((at_stop + 3)) " /tmp/cA.out $pid; echo "AFTER-CONT-RC=$?"

# enough output to rotate the 4 KiB log twice over
echo 'seq 1 2000' >&3
wait_for "^2000" /tmp/cA.out $pid; echo "SEQ-RC=$?"

# balloon: the guest keeps 256 MiB of its 384; its free memory shrinks by the rest
echo 'grep -E "MemTotal|MemFree" /proc/meminfo | sed s/^/MEM1-/' >&3
wait_for "^MEM1-MemFree" /tmp/cA.out $pid
qmp balloon '{"execute": "balloon", "arguments": {"value": 268435456}}'
i=0
while [ $i -lt 300 ] && kill -0 $pid 2>/dev/null; do
	qmp qb '{"execute": "query-balloon"}' >/dev/null
	grep -q '"actual": 268435456' /tmp/qb.qmp && break
	i=$((i + 1)); sleep 1
done
qmp qb '{"execute": "query-balloon"}'
echo 'grep -E "MemTotal|MemFree" /proc/meminfo | sed s/^/MEM2-/' >&3
wait_for "^MEM2-MemFree" /tmp/cA.out $pid

# 200 garbage messages (and one over the size limit): errors, then a command still answered
$UC -t 300 /tmp/q.sock </work/garbage.txt >/tmp/garbage.qmp
echo "GARBAGE-RC=$? GARBAGE-LINES=$(grep -c . /tmp/garbage.qmp) GARBAGE-ERRORS=$(grep -c '"error"' /tmp/garbage.qmp)"
echo "GARBAGE-LAST=$(tr -d '\r' </tmp/garbage.qmp | tail -n1)"
kill -0 $pid && echo "ALIVE-AFTER-GARBAGE=1"
qmp after '{"execute": "query-status"}'

# the power button through QMP: the guest's acpid powers off; SHUTDOWN, then the end
{ echo "$CAPS"; echo '{"execute": "system_powerdown"}'; } | $UC -k -t 600 /tmp/q.sock >/tmp/pd.qmp &
pdpid=$!
wait_exit $pid; echo "MAIN-RC=$?"
wait $pdpid; echo "PD-CLIENT-RC=$?"
tr -d '\r' </tmp/pd.qmp | sed 's/^/pd: /'
wait $evpid; echo "EVENTS-CLIENT-RC=$?"
tr -d '\r' </tmp/events.qmp | sed 's/^/events: /'
exec 3>&-
wait $capid; echo "CONSOLE-CLIENT-RC=$?"
tr -d '\r' </tmp/cA.out | grep -aE '^(CMD-|MEM[12]-|READY|CLOCKSOURCE|LIGERO-INIT)|reboot: Power down|LIGERO-POWER-BUTTON' | sed 's/^/console: /'
grep -ao 'TICK [0-9]* [0-9.]*' /tmp/cA.out | sed 's/^/tick: /'
# the log (rotated at 4 KiB) is the tail of what the first client received, byte for byte
echo "LOG-SIZES=$(stat -c %s /tmp/c.log.1 /tmp/c.log | tr '\n' ' ')"
cat /tmp/c.log.1 /tmp/c.log >/tmp/c.both
tail -c "$(stat -c %s /tmp/c.both)" /tmp/cA.out | cmp - /tmp/c.both && echo "LOG-TAIL-MATCH=1"
echo "CLIENT-BYTES=$(stat -c %s /tmp/cA.out)"
echo "FIRST-CONSOLE-LINE=$(tr -d '\r' </tmp/cA.out | grep -av '^$' | head -n1)"
echo "EXIT-FILE=$(cat /tmp/exit.json)"
echo "AFTER-EXIT=$(ls /tmp/vm.pid /tmp/q.sock /tmp/c.sock 2>&1 | tr '\n' ' ')"
echo "STDERR=$(tr '\n' '|' </tmp/err)"
qemu-img check /tmp/disk.qcow2 >/dev/null 2>&1; echo "DISK-CHECK-RC=$?"

# -- stale: a VMM killed with SIGKILL leaves its socket; the next one replaces it --
start_quick() { # NAME: a VM whose QMP socket is /tmp/q.sock; returns once it listens
	rm -f /tmp/$1.pid /tmp/$1.exit
	$L run $K --console none --qmp /tmp/q.sock --pidfile /tmp/$1.pid \
		--exit-status-file /tmp/$1.exit --cmdline "quiet ligero.run=\"sleep 100000\"" \
		</dev/null >/tmp/$1.out 2>/tmp/$1.err &
	pid=$!
	i=0; while [ ! -s /tmp/$1.pid ] && kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do
		i=$((i + 1)); sleep 0.1; done
}
start_quick stale
kill -9 $pid; wait $pid
echo "STALE-LEFT=$(ls /tmp/q.sock /tmp/stale.pid 2>&1 | tr '\n' ' ') STALE-EXIT=$(cat /tmp/stale.exit 2>&1)"

start_quick reset
qmp reset '{"execute": "system_reset"}'
wait_exit $pid; echo "RESET-RC=$?"
echo "RESET-EXIT=$(cat /tmp/reset.exit)"

start_quick quit
qmp quit '{"execute": "quit", "id": "bye"}'
wait_exit $pid; echo "QUIT-RC=$?"
echo "QUIT-EXIT=$(cat /tmp/quit.exit)"
echo "QUIT-AFTER=$(ls /tmp/q.sock /tmp/quit.pid 2>&1 | tr '\n' ' ')"
exit 0
