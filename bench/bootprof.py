"""Reads bench/bootprof.sh's emulated-host output on stdin and prints where the boots went.

Samples come from LIGERO_PROFILE ("seconds vcpu rip"), named with the guest's kallsyms; the
phases come from LIGERO_STATS' marks and the console lines stamped with L1's uptime. A sample
whose rip is in the kernel's half of the address space is named by the kernel symbol below it;
a low rip before the first kernel sample is the bzImage's decompressor (it runs identity-mapped),
after it user space."""
import base64
import bisect
import gzip
import statistics
import sys
from collections import Counter, defaultdict

KERNEL_HALF = 0xffff800000000000


def blob(lines, begin, end):
    i = lines.index(begin)
    j = lines.index(end, i)
    data = "".join(lines[i + 1:j])
    return gzip.decompress(base64.b64decode(data)).decode() if data else ""


def kernel_namer(lines, who):
    """The guest's kallsyms (the first KSYMS-BEGIN/-END blob) as a function naming a kernel rip."""
    syms = []
    if "KSYMS-BEGIN" in lines:
        for line in blob(lines, "KSYMS-BEGIN", "KSYMS-END").splitlines():
            parts = line.split()
            if len(parts) >= 3:
                syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    addrs = [a for a, _ in syms]
    if not syms:
        sys.exit(f"{who}: no kernel symbols came back from the emulated host")

    def kernel_name(rip):
        k = bisect.bisect_right(addrs, rip) - 1
        return syms[k][1] if k >= 0 else "(kernel, unnamed)"
    return kernel_name


def main():
    timeline = "--timeline" in sys.argv[1:]
    lines = sys.stdin.read().splitlines()
    for line in lines:
        if line.startswith("NOTE "):
            print("#", line[5:])
    kernel_name = kernel_namer(lines, "bootprof")

    def name(rip, in_kernel_yet):
        if rip >= KERNEL_HALF:
            return kernel_name(rip)
        return "(user space)" if in_kernel_yet else "(bzImage decompressor)"

    boots = []
    cur = None
    for k, line in enumerate(lines):
        if line.startswith("BOOT-BEGIN "):
            cur = {"start": float(line.split()[2]), "con": [], "marks": {}, "prof": []}
        elif cur is None:
            continue
        elif line.startswith("CON "):
            t, text = line[4:].split(" ", 1) if " " in line[4:] else (line[4:], "")
            cur["con"].append((float(t), text))
        elif line.startswith("MARK "):
            _, t, what = line.split(" ", 2)
            cur["marks"][what] = float(t)
        elif line == "PROF-BEGIN":
            for pl in blob(lines[k:], "PROF-BEGIN", "PROF-END").splitlines():
                if pl and not pl.startswith("#"):
                    t, cpu, rip = pl.split()
                    cur["prof"].append((float(t), int(cpu), int(rip, 16)))
        elif line.startswith("BOOT-END"):
            boots.append(cur)
            cur = None

    def con_time(b, word):
        return next((t for t, text in b["con"] if word in text), None)

    phases = defaultdict(list)
    funcs = Counter()
    windows = defaultdict(Counter)
    used = 0
    span = 0.0  # seconds from guest entry to the marker, all boots
    for n, b in enumerate(boots, 1):
        entry = b["marks"].get("boot vCPU enters the guest")
        proc = b["marks"].get("process started")
        init, marker = con_time(b, "LIGERO-INIT"), con_time(b, "LIGERO-MARKER")
        kernel = next((t for t, _, rip in b["prof"] if rip >= KERNEL_HALF), None)
        if None in (entry, proc, init, marker, kernel) or not b["prof"]:
            print(f"# boot {n}: incomplete (no marker, marks or samples), left out")
            continue
        used += 1
        phases["ligero: process start -> guest entry"].append(entry - proc)
        phases["guest entry -> kernel proper (decompressor)"].append(kernel - entry)
        phases["kernel proper -> LIGERO-INIT (its /init)"].append(init - kernel)
        phases["LIGERO-INIT -> LIGERO-MARKER (modules)"].append(marker - init)
        phases["process start -> LIGERO-MARKER"].append(marker - proc)
        span += marker - entry
        for t, _, rip in b["prof"]:
            if t > marker:
                break
            s = name(rip, t >= kernel)
            funcs[s] += 1
            windows[int((t - entry) / 0.25)][s] += 1
    if not used:
        sys.exit("bootprof: no complete boot")
    print(f"phases, ms (median of {used} boots)")
    for k, v in phases.items():
        print(f"  {k:<46} {statistics.median(v) * 1000:8.0f}")
    total = sum(funcs.values())
    ms_per_sample = span * 1000 / total
    print(f"functions with the most samples from guest entry to the marker ({total} samples, "
          f"one per {ms_per_sample:.2f} ms; ms per boot)")
    for s, c in funcs.most_common(30):
        print(f"  {100 * c / total:5.1f}%  {c * ms_per_sample / used:7.1f} ms  {s}")
    if timeline:
        print("each quarter second after guest entry (all boots): samples, top three")
        for w in sorted(windows):
            c = windows[w]
            top = ", ".join(f"{s} {k}" for s, k in c.most_common(3))
            print(f"  {w * 0.25:5.2f} s {sum(c.values()):5d}  {top}")


if __name__ == "__main__":
    main()
