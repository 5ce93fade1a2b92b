#!/bin/sh
# img convert, ligero against qemu-img, side by side in one run on the same input:
# a 4 GiB raw image holding ~1.5 GiB of text, binaries and random data between zero gaps
# (generated once into bench/out/ by bench/mkmixed.py).
#   raw -> qcow2;  qcow2 -> qcow2 -c (zlib);  qcow2 -> qcow2 -c -o compression_type=zstd
# qemu-img runs with its defaults and with -m 16 -W (its fastest); ligero with its defaults
# (-m = online CPUs). Runs are interleaved round by round (qemu-img, qemu-img -m16 -W, ligero,
# each round starting with the next one in turn), so load that drifts on a shared machine hits
# every tool alike; hyperfine runs one command's repetitions back to back, which is why it is
# not used here. Prints median wall times, the speedup against qemu-img's best setting, CPU
# time (user+sys) ratio and output size ratio, then the median of the round-by-round speedups
# (the fastest qemu-img of each round over ligero of that round).
# Usage: bench/convert.sh [path/to/ligero]   (RUNS=3 by default)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
LIGERO=${1:-${LIGERO:-$here/../build/ligero}}
RUNS=${RUNS:-3}
# EXTRA_M=8 adds a "ligero -m 8" row: on a loaded machine CPU share follows thread counts, and
# qemu-img -m 16 -W runs a dozen threads, so this shows what that share is worth.
EXTRA_M=${EXTRA_M:-}
out=$here/out
mkdir -p "$out"
src=$out/mixed.raw
if [ ! -f "$src" ]; then
	echo "generating $src (once)..." >&2
	python3 "$here/mkmixed.py" "$src" $((4 << 30)) $((1536 << 20)) >&2
fi
[ -f "$out/src.qcow2" ] || qemu-img convert -O qcow2 "$src" "$out/src.qcow2"

echo "cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)  runs: $RUNS (median)"
echo "ligero: $LIGERO   $(qemu-img --version | head -1)"

# timed LOG CMD...: append "wall cpu" of one run to LOG.
timed() {
	log=$1
	shift
	/usr/bin/time -f "%e %U %S" -o "$log.t" "$@" >/dev/null
	awk '{printf "%s %.2f\n", $1, $2 + $3}' "$log.t" >>"$log"
}

# bench NAME INPUT OPTS...
bench() {
	name=$1 in=$2
	shift 2
	q=$out/q-$name.qcow2 qw=$out/qw-$name.qcow2 l=$out/l-$name.qcow2
	rm -f "$out/$name".*.log
	i=0
	while [ $i -lt "$RUNS" ]; do
		rm -f "$q" "$qw" "$l"
		# each round starts with the next tool in turn, so none always runs after the same one
		for t in $(echo "q qw l q qw" | cut -d' ' -f$((i % 3 + 1))-$((i % 3 + 3))); do
			case $t in
			q) timed "$out/$name.q.log" qemu-img convert -O qcow2 "$@" "$in" "$q" ;;
			qw) timed "$out/$name.qw.log" qemu-img convert -O qcow2 -m 16 -W "$@" "$in" "$qw" ;;
			l) timed "$out/$name.l.log" "$LIGERO" img convert -O qcow2 "$@" "$in" "$l" ;;
			esac
		done
		if [ -n "$EXTRA_M" ]; then
			rm -f "$l"
			timed "$out/$name.lm.log" "$LIGERO" img convert -O qcow2 -m "$EXTRA_M" "$@" "$in" "$l"
		fi
		i=$((i + 1))
	done
	qemu-img compare -q "$in" "$l" || { echo "$name: ligero output differs!" >&2; exit 1; }
	qemu-img check -q "$l" || { echo "$name: ligero output not clean!" >&2; exit 1; }
	python3 - "$out/$name" "$q" "$qw" "$l" <<'PY'
import os, sys
base = sys.argv[1]
def med(tag, col):
    v = sorted(float(l.split()[col]) for l in open(f"{base}.{tag}.log"))
    return v[len(v) // 2]
wall = {t: med(t, 0) for t in ("q", "qw", "l")}
cpu = {t: med(t, 1) for t in ("q", "qw", "l")}
size = dict(zip(("q", "qw", "l"), map(os.path.getsize, sys.argv[2:])))
best = min(("q", "qw"), key=lambda t: wall[t])
label = {"q": "qemu-img", "qw": "qemu-img -m16 -W"}[best]
print(f"{os.path.basename(base):<10} qemu-img {wall['q']:6.2f}s  -m16 -W {wall['qw']:6.2f}s"
      f"  ligero {wall['l']:6.2f}s | speedup vs {label}: {wall[best] / wall['l']:4.2f}x"
      f" | cpu {cpu['l']:6.2f}s vs {cpu[best]:6.2f}s ({cpu[best] / cpu['l']:4.2f}x less)"
      f" | size {size['l'] / size[best]:5.3f} ({size['l'] >> 20} vs {size[best] >> 20} MiB)")
# round by round (the runs of a round are back to back, so under about the same load from
# whatever else shares the machine): qemu-img's best setting of the round over ligero's
rounds = {t: [float(l.split()[0]) for l in open(f"{base}.{t}.log")] for t in ("q", "qw", "l")}
per = sorted(min(q, qw) / l for q, qw, l in zip(rounds["q"], rounds["qw"], rounds["l"]))
print(f"{'':<10} round by round, qemu-img's best / ligero: median {per[len(per) // 2]:4.2f}x"
      f" (rounds: {' '.join(f'{r:.2f}' for r in per)})")
if os.path.exists(f"{base}.lm.log"):
    w, c = med("lm", 0), med("lm", 1)
    print(f"{'':<10} ligero -m {os.environ['EXTRA_M']}: {w:6.2f}s | speedup vs {label}: "
          f"{wall[best] / w:4.2f}x | cpu {c:6.2f}s")
PY
	rm -f "$q" "$qw" "$l" "$out/$name".*.log "$out/$name".*.log.t
}

bench raw-qcow2 "$src"
bench zlib "$out/src.qcow2" -c
bench zstd "$out/src.qcow2" -c -o compression_type=zstd
