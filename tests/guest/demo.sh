#!/bin/sh
# The README's demo boot: `ligero run --disk DISK` boots the system installed on DISK (its own
# boot entry, kernel and initrd), waits for its login prompt (the test guests of debian.sh log
# root in on the serial console), types COMMAND at the shell there, then `poweroff`, and says
# what happened in plain words. Where this host's KVM cannot run a stock kernel (PVM, or no
# vmx/svm), the VM runs inside the emulated host (tests/vmhost/vmhost.sh): DISK and its backing
# file BASE go in, and DISK comes back with what the guest wrote (BASE is only read).
# usage: demo.sh DISK BASE COMMAND [ligero run options...]
#        DISK's backing file must be named by BASE's file name, relative to DISK's directory
#        (ligero img create -b NAME); BASE is '' for a disk without one.
# env: LIGERO (default $LIGERO_BUILD/ligero), LIGERO_BUILD (default build), DEMO_GUARD (hang
#      guard in seconds, default 1200)
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${LIGERO_BUILD:-$repo/build}
ligero=${LIGERO:-$build/ligero}
[ $# -ge 3 ] || { sed -n '/^# usage/,/^# env/p' "$0" >&2; exit 2; }
disk=$1 base=$2 cmd=$3
shift 3
guard=${DEMO_GUARD:-1200}
[ -x "$ligero" ] || { echo "demo: $ligero not built (meson setup build && ninja -C build)" >&2; exit 1; }
session="$repo/tests/guest/console-session.sh"
say() { printf '%s\n' "$*" | fold -s -w 100; }

# story LOG STATUS: what happened, from the console and ligero's exit status
story() {
	if grep -q 'login: root (automatic login)' "$1"; then
		say "-> The guest reached its login prompt, and root was logged in on the serial console."
	fi
	if [ "$2" = 0 ]; then
		say "-> The guest powered itself off (systemd stopped its services and unmounted its disk), and ligero exited with status 0."
	else
		say "-> ligero exited with status $2: something went wrong (its console is above)."
	fi
}

if [ -e /sys/module/kvm_pvm ] || ! grep -qw -e vmx -e svm /proc/cpuinfo || [ ! -e /dev/kvm ]; then
	say "This host's KVM cannot run a stock distribution kernel (PVM, or no vmx/svm), so the VM runs inside the emulated host: QEMU in software emulation, with a real, nested KVM inside it (tests/vmhost/vmhost.sh). Everything there is slower; this takes a few minutes, and the console is shown once it is done."
	work=$(mktemp -d "$build/demo-vmhost.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	name=$(basename "$disk")
	printf '%s\n' "$cmd" >"$work/command"
	{
		echo "sh ./console-session.sh --guard $guard --log /tmp/console --type \"\$(cat command)\" \\"
		echo "	--type poweroff -- ./ligero run --disk disks/$name $* 2>/tmp/err"
		echo 'rc=$?'
		echo "tr -d '\\r' </tmp/console | sed 's/^/  | /'"
		echo "sed 's/^/  ! /' /tmp/err"
		echo 'echo "DEMO-RC=$rc"'
		# only the disk comes back
		[ -z "$base" ] || echo "rm -f disks/$(basename "$base")"
	} >"$work/script.sh"
	set -- --file "$session:console-session.sh" --file "$work/command:command" \
		--disk "$disk:$name" --disks-out "$work/out"
	[ -z "$base" ] || set -- "$@" --disk "$(readlink -f "$base"):$(basename "$base")"
	out=$(LIGERO_BUILD=$build LIGERO=$ligero sh "$repo/tests/vmhost/vmhost.sh" \
		--timeout $((guard + 600)) "$@" "$work/script.sh" 2>"$work/vmhost.err") || true
	rc=$(printf '%s\n' "$out" | sed -n 's/^DEMO-RC=//p')
	if [ -z "$rc" ]; then
		printf '%s\n' "$out"
		tail -n 20 "$work/vmhost.err" >&2
		echo "demo: the emulated host failed (its console is above)" >&2
		exit 1
	fi
	printf '%s\n' "$out" | sed -n 's/^  | //p' >"$work/console"
	# without bash's bracketed-paste switches (ESC [?2004h and l) around each prompt
	esc=$(printf '\033')
	printf '%s\n' "$out" | grep '^  | ' | sed "s/$esc\[?2004[hl]//g" || true
	printf '%s\n' "$out" | sed -n 's/^  ! session: /-- /p; s/^  ! \(ligero: .*\)/-- \1/p'
	story "$work/console" "$rc"
	[ "$rc" = 0 ] || exit "$rc"
	cp "$work/out/$name" "$disk"
else
	log=$(mktemp)
	trap 'rm -f "$log"' EXIT
	rc=0
	sh "$session" --live --guard "$guard" --log "$log" --type "$cmd" --type poweroff -- \
		"$ligero" run --disk "$disk" "$@" || rc=$?
	story "$log" $rc
	exit $rc
fi
