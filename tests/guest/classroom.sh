#!/bin/sh
# The README demo's classroom (issue 22), where KVM can boot a stock kernel (inside the emulated
# host on a PVM machine: demo.sh's step_class says how): three students' VMs from one installed
# Debian disk, as the seed's teacher does it, narrated in the seed's terms:
#   ligero fleet create estudiante --count 3 --base BASE --memory 600M
#   ligero fleet start estudiante; each boots to its login prompt; ligero ksm enable
#   ligero fleet list estudiante; ligero ksm status      (memory promised vs used, KSM's share)
#   a command typed at estudiante1's console (ligero vm console, as a person would)
#   ligero fleet stop estudiante; ligero fleet delete estudiante --disks; the base is unchanged
# usage: classroom.sh LIGERO BASE    (POSIX sh: runs in the emulated host's busybox)
# env: LIGERO_STATE_DIR (default: a temporary directory, removed), CLASS_GUARD (hang guard per
#      wait, seconds, default 1800)
set -u
L=$1 base=$2
guard=${CLASS_GUARD:-1800}
tmp=$(mktemp -d)
export LIGERO_STATE_DIR=${LIGERO_STATE_DIR:-$tmp/state}
S=$LIGERO_STATE_DIR
say() { printf '\n== %s\n' "$*" | fold -s -w 100; }
run() { # show a command, then run it
	printf '$ %s\n' "$*" | sed "s|^\$ $L |\$ ligero |"
	"$@"
}
fail() {
	echo "classroom: $*" >&2
	"$L" fleet kill estudiante >/dev/null 2>&1
	"$L" fleet delete estudiante --disks >/dev/null 2>&1
	rm -rf "$tmp"
	exit 1
}
# wait_for FILE TEXT: until FILE shows TEXT, or the guard runs out
wait_for() {
	t=$(($(date +%s) + guard))
	until grep -q "$2" "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt $t ] || return 1
		sleep 2
	done
}
# wait_prompt NAME: until member NAME's console shows its root prompt; a member that stopped
# running, or the guard running out, ends the class with its console's last lines
wait_prompt() {
	t=$(($(date +%s) + guard))
	until grep -q "root@$1:~#" "$S/log/$1.console.log" 2>/dev/null; do
		st=$("$L" vm list | awk -v n="$1" '$1 == n {print $2}')
		if [ "$st" != running ] || [ "$(date +%s)" -ge $t ]; then
			tr '\r' '\n' <"$S/log/$1.console.log" 2>/dev/null | grep -v '^$' | tail -n 40 |
				sed 's/^/  | /'
			fail "$1 did not reach its login prompt (state: $st, after $(($(date +%s) - t + guard)) s)"
		fi
		sleep 2
	done
}

sum0=$(sha256sum "$base" | cut -d' ' -f1)
say "The base disk (the seed's disco base): one installed Debian 12, shut down, never written again"
run "$L" img info "$base"

say "The class: three students' VMs in one command. Each gets its own overlay (disco de cambios) holding only what it writes, made unique before its first boot (hostname = its name, a new machine-id, fresh SSH host keys, its own MAC)"
run "$L" fleet create estudiante --count 3 --base "$base" --memory 600M || fail "fleet create failed"
dir=$(dirname "$base")
run "$L" img info "$dir/estudiante1.qcow2"

say "The class starts: each member boots its own kernel from its overlay (the base's GRUB entry), all three at once"
run "$L" fleet start estudiante || fail "fleet start failed"
t0=$(date +%s)
for i in 1 2 3; do
	wait_prompt estudiante$i
	echo "estudiante$i: at its login prompt after $(($(date +%s) - t0)) s (root logged in on its serial console)"
done

say "KSM on (the host merges identical guest pages: three copies of one system are mostly the same bytes); a minute later, what it found"
run "$L" ksm enable --pages-to-scan 1000 --sleep-ms 20 || echo "(KSM could not be enabled: figures below show it off)"
sleep 60

say "The class, listed: each VM's memory promised (600M) against what its process really takes (RSS), and the overlays' size on the host"
run "$L" fleet list estudiante
say "What KSM shares between them, and the host's memory as free -m counts it"
run "$L" ksm status

say "A command typed at estudiante1's console (ligero vm console; the students would use their own)"
cmd='echo "I am $(hostname), machine-id $(cat /etc/machine-id)"; echo class-notes >/root/notes; ls /root; echo DEMO-$((6*7))'
printf '$ ligero vm console estudiante1\nroot@estudiante1:~# %s\n' "$cmd"
log=$S/log/estudiante1.console.log
before=$(wc -c <"$log")
{
	printf '%s\n' "$cmd"
	wait_for "$log" '^DEMO-42' || echo "(no answer within $guard s)" >&2
} | "$L" vm console estudiante1 >/dev/null
esc=$(printf '\033') # bash's bracketed-paste switches around each prompt
tail -c +$((before + 1)) "$log" | tr -d '\r' | sed "s/$esc\[[0-9;?]*[A-Za-z]//g" |
	sed -n '/^I am /,/^DEMO-42/p' | grep -v '^DEMO-42'

say "End of the class: the ACPI power button of each VM, then the definitions and overlays go; the base stays"
run "$L" fleet stop estudiante --timeout 600 || fail "fleet stop failed"
run "$L" fleet list estudiante
run "$L" fleet delete estudiante --disks || fail "fleet delete failed"
run ls "$dir"
sum1=$(sha256sum "$base" | cut -d' ' -f1)
if [ "$sum0" = "$sum1" ]; then
	echo "the base's sha256 is what it was before the class: $sum1"
else
	fail "the base changed: sha256 $sum0 before, $sum1 after"
fi
rm -rf "$tmp"
