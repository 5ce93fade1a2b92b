#!/bin/sh
# A person at a VM's serial console: boot it with `ligero run` (its console on our side of a
# pipe), wait for the shell prompt the guest's autologin gives (debian.sh's disks log root in on
# ttyS0), type each --type line once the prompt is back, then wait for the VM to end (the last
# line is usually `poweroff`). POSIX sh: runs in the emulated host's busybox as well.
#
# usage: console-session.sh [--log FILE] [--prompt TEXT] [--after TEXT] [--guard SECONDS]
#                           [--pid-file FILE] [--live] [--type LINE]... -- LIGERO RUN-ARGUMENTS...
#   --log FILE      the console as it came (default: a temporary file, removed)
#   --prompt TEXT   what the shell prompt ends with (default 'root@debian:~# ')
#   --after TEXT    count only the prompts that come after the first line matching TEXT (a
#                   basic regular expression): the first line is typed at the first prompt
#                   after it. For a service that takes the console over (it stops the getty,
#                   writes TEXT when it is done, starts the getty again): a line typed before
#                   the new getty's shell is there is lost
#   --guard SECONDS hang guard for the whole session (default 1200): past it the VM is killed
#   --pid-file FILE ligero's process ID, written there once it runs (to signal it)
#   --live          copy the console to stdout as it comes
# Prints one line per step on stderr ("session: ..."). Exit status: ligero's; 124 when the
# prompt never came or the VM did not end within the guard (the VM was killed), or when the VM
# ended before every line was typed.
set -u
log='' prompt='root@debian:~# ' after='' guard=1200 pidfile='' live=0 lines=''
nl='
'
while [ $# -gt 0 ]; do
	case "$1" in
	--log) log=$2; shift 2 ;;
	--prompt) prompt=$2; shift 2 ;;
	--after) after=$2; shift 2 ;;
	--guard) guard=$2; shift 2 ;;
	--pid-file) pidfile=$2; shift 2 ;;
	--live) live=1; shift ;;
	--type) lines="$lines$2$nl"; shift 2 ;;
	--) shift; break ;;
	*) echo "console-session: unknown option $1" >&2; exit 2 ;;
	esac
done
[ $# -gt 0 ] || { sed -n '/^# usage/,/^# Prints/p' "$0" >&2; exit 2; }
tmp=$(mktemp -d)
[ -n "$log" ] || log=$tmp/console
fifo=$tmp/in
mkfifo "$fifo"
: >"$log"
say() { echo "session: $*" >&2; }
now() { date +%s; }
start=$(now)
elapsed() { echo $(($(now) - start)); }

"$@" <"$fifo" >"$log" &
pid=$!
[ -z "$pidfile" ] || echo "$pid" >"$pidfile"
exec 8>"$fifo" # opening it lets ligero's open of its stdin go on; kept open: no EOF
tailer=
if [ $live = 1 ]; then
	tail -n +1 -f "$log" &
	tailer=$!
fi
finish() {
	exec 8>&-
	[ -z "$tailer" ] || { sleep 1; kill "$tailer" 2>/dev/null; wait "$tailer" 2>/dev/null; }
	rm -rf "$tmp"
	exit "$1"
}
prompts() {
	if [ -n "$after" ]; then
		sed -n "/$after/,\$p" "$log" 2>/dev/null | grep -o "$prompt" | wc -l
	else
		grep -o "$prompt" "$log" 2>/dev/null | wc -l
	fi
}

# wait_prompt N: until the console has shown the prompt N times; 1 if the VM ended or the
# guard ran out first
wait_prompt() {
	while [ "$(prompts)" -lt "$1" ]; do
		kill -0 "$pid" 2>/dev/null || return 1
		[ "$(elapsed)" -lt "$guard" ] || return 1
		sleep 1
	done
}

n=0
while IFS= read -r line; do
	[ -n "$line" ] || continue
	n=$((n + 1))
	if ! wait_prompt "$n"; then
		if kill -0 "$pid" 2>/dev/null; then
			say "no shell prompt within ${guard} s: stopping the VM"
			kill -9 "$pid"
			wait "$pid"
		else
			wait "$pid"
			say "the VM ended (status $?) before its shell prompt came back"
		fi
		finish 124
	fi
	[ $n -gt 1 ] || say "the guest's shell prompt is there after $(elapsed) s"
	say "typing: $line"
	printf '%s\n' "$line" >&8
done <<EOF
$lines
EOF

while kill -0 "$pid" 2>/dev/null; do
	if [ "$(elapsed)" -ge "$guard" ]; then
		say "the VM did not end within ${guard} s: stopping it"
		kill -9 "$pid"
		wait "$pid"
		finish 124
	fi
	sleep 1
done
wait "$pid"
rc=$?
say "ligero exited with status $rc after $(elapsed) s"
finish $rc
