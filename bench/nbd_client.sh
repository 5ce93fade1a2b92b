#!/bin/bash
# The NBD client: `img convert` from an NBD export a network's distance away, ligero against
# qemu-img, side by side in one run. qemu-nbd serves a 1 GiB qcow2 with 512 MiB of data (the
# same source as bench/remote.sh) read-only on a Unix socket; the tools reach it through a
# small proxy (bench/delay_proxy.py) that hands on every chunk of bytes NBD_DELAY_MS/2 after it
# arrived, in each direction, so each round trip takes NBD_DELAY_MS more (5 by default) and
# requests sent together still travel together. (tc netem would do this on a veth pair, but
# this machine's kernel has no sch_netem.) Workload: `img convert -O qcow2 EXPORT OUT` with
# each tool's defaults (ligero: 4 readers; qemu-img: 8 requests of 2 MiB in flight), from
#   sparse   that qcow2: 1 MiB of data every 2 MiB (1024 extents for block status)
#   dense    a 256 MiB qcow2 written end to end (one extent: the reads alone)
# Rounds alternate which tool goes first. Prints each round, the median wall time of each tool
# and the ratio of the medians (qemu-img / ligero: above 1 means ligero is faster), then the
# median CPU time (user + system) of each tool and of qemu-nbd and the proxy during its runs
# (they share the machine's CPUs: a request pattern that costs them more costs the copy too). Needs
# qemu-utils. qemu-nbd and the proxy are stopped by pid on exit.
# Usage: bench/nbd_client.sh [path/to/ligero]   (RUNS=5, NBD_DELAY_MS=5 by default;
# SOURCES="sparse dense" by default, SOURCES=dense for the dense one alone; LIGERO_ARGS and
# QEMU_ARGS add options to one tool's convert, e.g. QEMU_ARGS="-t none" to give qemu-img
# ligero's way of writing the destination, around the page cache)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
LIGERO=${1:-${LIGERO:-$here/../build/ligero}}
RUNS=${RUNS:-5}
DELAY=${NBD_DELAY_MS:-5}
SOURCES=${SOURCES:-sparse dense}
LIGERO_ARGS=${LIGERO_ARGS:-}
QEMU_ARGS=${QEMU_ARGS:-}
out=$here/out
mkdir -p "$out"
. "$here/remote-src.sh"
dense=$out/nbd-dense.qcow2
if [ ! -f "$dense" ]; then
	qemu-img create -q -f qcow2 "$dense.tmp" 256M
	qemu-io -c "write -P 0x5c 0 256M" "$dense.tmp" >/dev/null
	mv "$dense.tmp" "$dense"
fi

tmp=$(mktemp -d)
cleanup() {
	for p in "$tmp"/*.pid; do
		[ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
# export NAME FILE: qemu-nbd on $tmp/NAME.sock, the proxy on $tmp/NAME-proxy.sock
export_start() {
	qemu-nbd -r -t -f qcow2 -k "$tmp/$1.sock" --pid-file "$tmp/$1.pid" "$2" \
		>"$tmp/$1.log" 2>&1 &
	python3 "$here/delay_proxy.py" "$tmp/$1-proxy.sock" "$tmp/$1.sock" "$DELAY" &
	echo $! >"$tmp/$1-proxy.pid"
	for _ in $(seq 1 600); do
		[ -s "$tmp/$1.pid" ] && [ -S "$tmp/$1-proxy.sock" ] && return 0
		sleep 0.1
	done
	echo "qemu-nbd or the delay proxy did not start" >&2
	cat "$tmp/$1.log" >&2
	exit 1
}
for s in $SOURCES; do
	case $s in
	sparse) export_start sparse "$src" ;;
	dense) export_start dense "$dense" ;;
	*) echo "SOURCES: unknown source $s (sparse, dense)" >&2 && exit 1 ;;
	esac
done

echo "cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)  runs: $RUNS (median)"
echo "added round trip: ${DELAY} ms (bench/delay_proxy.py)"
echo "ligero: $LIGERO $LIGERO_ARGS   $(qemu-img --version | head -1) $QEMU_ARGS"

hz=$(getconf CLK_TCK)
# peer_cpu NAME: the CPU seconds (user + system) the export's qemu-nbd and proxy used so far
peer_cpu() {
	cat "/proc/$(cat "$tmp/$1.pid")/stat" "/proc/$(cat "$tmp/$1-proxy.pid")/stat" |
		awk -v hz="$hz" '{t += $14 + $15} END {printf "%.3f\n", t / hz}'
}
# secs WHO NAME CMD...: CMD's wall time on stdout; its own CPU time (user + system) and the CPU
# the export's qemu-nbd and proxy used meanwhile appended to $tmp/cpu-WHO
secs() {
	local who=$1 name=$2 t0 t1 p0 p1 c
	shift 2
	p0=$(peer_cpu "$name")
	t0=$(date +%s.%N)
	c=$({
		TIMEFORMAT='%U %S'
		time "$@" >/dev/null 2>"$tmp/err"
	} 2>&1) || { cat "$tmp/err" >&2; exit 1; }
	t1=$(date +%s.%N)
	p1=$(peer_cpu "$name")
	echo "$c $p0 $p1" | awk '{printf "%.3f %.3f\n", $1 + $2, $4 - $3}' >>"$tmp/cpu-$who"
	echo "$t1 - $t0" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run NAME SOURCE: the rounds on one export
run() {
	local uri="nbd+unix:///?socket=$tmp/$1-proxy.sock"
	: >"$tmp/l" && : >"$tmp/q" && : >"$tmp/cpu-l" && : >"$tmp/cpu-q"
	for r in $(seq 1 "$RUNS"); do
		for who in $( ((r % 2)) && echo "l q" || echo "q l"); do
			rm -f "$tmp/out.qcow2"
			if [ "$who" = l ]; then
				# shellcheck disable=SC2086 # the extra options are words
				secs l "$1" "$LIGERO" img convert $LIGERO_ARGS -O qcow2 "$uri" "$tmp/out.qcow2" >>"$tmp/l"
			else
				# shellcheck disable=SC2086
				secs q "$1" qemu-img convert $QEMU_ARGS -O qcow2 "$uri" "$tmp/out.qcow2" >>"$tmp/q"
			fi
			qemu-img compare -q "$tmp/out.qcow2" "$2"
		done
		printf '%s round %s: ligero %.3f s, qemu-img %.3f s\n' "$1" "$r" \
			"$(tail -1 "$tmp/l")" "$(tail -1 "$tmp/q")"
	done
	l=$(median <"$tmp/l")
	q=$(median <"$tmp/q")
	printf '%-8s nbd -> qcow2   ligero %7.3f s   qemu-img %7.3f s   ratio %.2fx\n' "$1" \
		"$l" "$q" "$(echo "$q / $l" | bc -l)" >>"$tmp/summary"
	printf '%-8s   CPU (median) ligero %.3f s, qemu-img %.3f s; qemu-nbd + proxy during ligero %.3f s, during qemu-img %.3f s\n' \
		"" "$(cut -d' ' -f1 "$tmp/cpu-l" | median)" "$(cut -d' ' -f1 "$tmp/cpu-q" | median)" \
		"$(cut -d' ' -f2 "$tmp/cpu-l" | median)" "$(cut -d' ' -f2 "$tmp/cpu-q" | median)" >>"$tmp/summary"
}
for s in $SOURCES; do
	case $s in
	sparse) run sparse "$src" ;;
	dense) run dense "$dense" ;;
	esac
done
cat "$tmp/summary"
