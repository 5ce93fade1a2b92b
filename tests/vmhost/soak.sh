#!/bin/sh
# Boot the test guest N times in one emulated host and count the boots that did not reach the
# guest's command (how often the emulated host itself kills a VM; docs/ligero-run.md). A failed
# boot prints its console tail, ligero's error and its LIGERO_STATS (vCPU state included).
#
# usage: soak.sh [N] [ligero run arguments...]   (default: 10 boots, --cpus 4 --memory 1G)
# env:   LOAD=K runs K busy loops on this machine beside the emulated host (0 by default)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
n=${1:-10}
[ $# -gt 0 ] && shift
args=${*:---cpus 4 --memory 1G}
tmp=$(mktemp)
pids=
trap 'rm -f "$tmp"; [ -z "$pids" ] || kill $pids 2>/dev/null' EXIT
cat >"$tmp" <<INNER
n=$n
args="$args"
INNER
cat >>"$tmp" <<'INNER'
ok=0; bad=0; i=0
while [ $i -lt $n ]; do
	i=$((i + 1))
	rm -f /tmp/stats
	t0=$(cut -d' ' -f1 /proc/uptime)
	LIGERO_STATS=/tmp/stats timeout 150 ./ligero run --stop-timeout 0 --kernel guest/vmlinuz \
		--initrd guest/initrd.img $args \
		--cmdline 'quiet ligero.run="echo SOAK-NPROC=$(nproc)"' >/tmp/out 2>/tmp/err
	rc=$?
	t1=$(cut -d' ' -f1 /proc/uptime)
	if [ $rc -eq 0 ] && grep -q SOAK-NPROC= /tmp/out; then
		ok=$((ok + 1))
		echo "boot $i ok ($t0 -> $t1 s)"
	else
		bad=$((bad + 1))
		echo "=== boot $i FAILED rc $rc ($t0 -> $t1 s)"
		tail -c 3000 /tmp/out
		cat /tmp/err /tmp/stats 2>/dev/null
	fi
done
echo "SOAK ok $ok failed $bad"
INNER
i=0
while [ $i -lt "${LOAD:-0}" ]; do
	sh -c 'while :; do :; done' &
	pids="$pids $!"
	i=$((i + 1))
done
sh "$here/vmhost.sh" --mem 4G --timeout $((n * 200 + 300)) "$tmp" 2>/dev/null
