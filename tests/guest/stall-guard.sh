#!/bin/sh
# A hang guard that watches for progress instead of waiting out a fixed time: it stops a VM
# whose console has shown nothing new for a while. A guest the emulated host has frozen can
# still print: its kernel's stall reports ("rcu: INFO: rcu_preempt detected stalls", "kthread
# starved", "soft lockup", "hung_task", each with register dumps and backtraces) come every
# minute or so while nothing else runs. So the kernel's own lines (those that start with its
# timestamp, "[  123.456789] ") are not progress, nor the stall reports' first lines where the
# kernel prints no timestamp, nor systemd's animated "A start job is running for ..." (a guest
# whose disk stopped answering waits there for ever, redrawing it): what counts is what user
# space writes otherwise (systemd's status lines, the getty, a command's output). A guest's kernel boots in well under a minute here; user
# space then writes. POSIX sh: runs in the emulated host's busybox.
#
# usage: stall-guard.sh [--stall SECONDS] [--limit SECONDS] PID FILE...
#        stall-guard.sh --count FILE...
#   PID              the process to stop (SIGKILL to it and to every process below it)
#   FILE...          where its console goes (a file that does not exist yet counts as empty)
#   --stall SECONDS  stop it once the FILEs have gained nothing but kernel lines and stall
#                    reports for that long (default 420)
#   --limit SECONDS  stop it after that long whatever it prints (default 1200)
#   --count          only print the progress FILE... shows now (a number that changes when a line
#                    other than a kernel line or stall report comes), for scripts that keep
#                    their own watch
# Ends when PID has ended, whoever ended it. Prints one line on stderr: "stall-guard: PID
# stopped: ..." when it stopped PID, else "stall-guard: PID ended; longest silence N s" (the
# figure that tells how much room --stall leaves). Exit status 0 when PID ended on its own, 3
# when the guard stopped it.
set -u
stall=420 limit=1200 count=0
while [ $# -gt 0 ]; do
	case "$1" in
	--stall) stall=$2; shift 2 ;;
	--limit) limit=$2; shift 2 ;;
	--count) count=1; shift ;;
	*) break ;;
	esac
done
# a kernel line: its timestamp first (after any terminal control sequence), or a stall report's
noise='^(.\[[0-9;?]*[a-zA-Z])*\[ *[0-9]+\.[0-9]+\] |rcu: INFO|rcu_[a-z]* kthread|rcu: .*(stall|starv)|soft lockup|hung_task|blocked for more than|A (start|stop) job is running for'
progress() { # bytes in the lines of every FILE that are not kernel lines
	cat "$@" 2>/dev/null | tr -d '\000' | grep -a -v -E "$noise" | wc -c
}
if [ $count = 1 ]; then
	progress "$@"
	exit 0
fi
[ $# -ge 2 ] || { sed -n '/^# usage/,/^# Ends/p' "$0" >&2; exit 2; }
pid=$1
shift
tree() { # PID and every process below it, children first
	for s in /proc/[0-9]*/status; do
		p=${s#/proc/}
		p=${p%/status}
		[ "$(sed -n 's/^PPid:[[:space:]]*//p' "$s" 2>/dev/null)" = "$1" ] && tree "$p"
	done
	echo "$1"
}
stop() {
	echo "stall-guard: $pid stopped: $*" >&2
	# Every process of the tree is stopped before any is killed: a parent whose child died
	# first would otherwise run on, if only to exit with a status of its own (a shell
	# exits 137 when its foreground child is killed), and PID must end by SIGKILL. PID is
	# stopped first, so it forks nothing after the tree is listed.
	kill -s STOP "$pid" 2>/dev/null
	procs=$(tree "$pid")
	for p in $procs; do kill -s STOP "$p" 2>/dev/null; done
	for p in $procs; do kill -s KILL "$p" 2>/dev/null; done
	exit 3
}

running() { # PID is there and not a zombie (its parent reaps it when it will)
	st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
	[ -n "$st" ] && [ "$st" != Z ]
}

start=$(date +%s)
last=$start seen=-1 longest=0
while running; do
	now=$(date +%s)
	n=$(progress "$@")
	if [ "$n" != "$seen" ]; then
		seen=$n last=$now
	fi
	[ $((now - last)) -le "$longest" ] || longest=$((now - last))
	[ $((now - last)) -lt "$stall" ] || stop "its console showed nothing new for $stall s"
	[ $((now - start)) -lt "$limit" ] || stop "still running after $limit s"
	sleep 2
done
echo "stall-guard: $pid ended; longest silence $longest s" >&2
exit 0
