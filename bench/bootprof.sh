#!/bin/sh
# Where the test guest's boot goes under ligero, phase by phase and function by function, inside
# the emulated host (tests/vmhost/): the guest is sampled by ligero's LIGERO_PROFILE
# (docs/ligero-run.md), about once a millisecond, and the samples are named with the guest's
# own symbol table. One boot first writes the guest's /proc/kallsyms onto a raw disk; then RUNS
# boots (default 3) are sampled, `quiet nokaslr` (so that the kernel sits where its symbol
# table says), each console line stamped with L1's uptime. bench/bootprof.py prints, as
# medians over the boots: the phases (ligero's start, the bzImage's own decompressor, the
# kernel to its /init, the init to the marker), then the functions with the most samples up to
# the marker, and with --timeline the top three of each quarter second.
# Each sample is an exit to ligero, which slows the guest by a few per cent under emulation;
# compare phases with each other, not with bench/boot.sh's times.
# Usage: bench/bootprof.sh [RUNS] [--timeline]
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=3
timeline=
for a in "$@"; do
	case $a in
	--timeline) timeline=--timeline ;;
	*[!0-9]* | '') echo "usage: bench/bootprof.sh [RUNS] [--timeline]" >&2; exit 2 ;;
	*) runs=$a ;;
	esac
done
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "runs=$runs" >"$tmp"
cat "$repo/bench/ksyms.sh" >>"$tmp"
cat >>"$tmp" <<'INNER'
K=guest/vmlinuz
I=guest/initrd.img
up() { cut -d' ' -f1 /proc/uptime; }
ksyms $K $I
i=0
while [ $i -lt $runs ]; do
	i=$((i + 1))
	sleep 2
	rm -f /tmp/prof /tmp/stats
	echo "BOOT-BEGIN $i $(up)"
	LIGERO_PROFILE=/tmp/prof LIGERO_STATS=/tmp/stats timeout 300 ./ligero run --stop-timeout 0 --kernel $K \
		--initrd $I --memory 256M --cmdline 'quiet nokaslr' </dev/null 2>/dev/null |
		while IFS= read -r line; do echo "CON $(up) $line"; done
	sed -n 's/^ligero: at \([0-9.]*\) s (uptime): \(.*\)/MARK \1 \2/p' /tmp/stats
	echo PROF-BEGIN
	gzip </tmp/prof | base64
	echo PROF-END
	echo "BOOT-END $i"
done
INNER
out=$(sh "$repo/tests/vmhost/vmhost.sh" --timeout 1800 "$tmp" 2>/dev/null) || {
	echo "$out" | tail -20
	echo "bench: the emulated host failed" >&2
	exit 1
}
echo "$out" | python3 "$repo/bench/bootprof.py" $timeline
