"""Reads `PROFILE=1 sh bench/virtio.sh net`'s emulated-host output on stdin and prints, for each
ligero VM of each round (the TCP receiver, srv, and the sender, cli), the guest functions with
the most LIGERO_PROFILE samples while the transfer ran.

The l1 script prints the guest's kallsyms once per emulated host (KSYMS-BEGIN/-END), then per VM
"PROFWIN VMM ROUND ROLE T0 T1" (L1 uptime when the guest's console showed XFER-BEGIN and
XFER-END, polled every 0.2 s) and its samples (PROF-BEGIN/-END, "seconds vcpu rip" on L1's
CLOCK_BOOTTIME, the clock /proc/uptime reads)."""
import sys
from collections import Counter

from bootprof import KERNEL_HALF, blob, kernel_namer


def main():
    lines = sys.stdin.read().splitlines()
    kernel_name = kernel_namer(lines, "netprof")

    def name(rip):
        return kernel_name(rip) if rip >= KERNEL_HALF else "(user space)"

    win = None
    shown = 0
    for k, line in enumerate(lines):
        if line.startswith("PROFWIN "):
            _, vmm, rnd, role, t0, t1 = line.split()
            win = (vmm, rnd, role, float(t0), float(t1)) if t0 != "-" and t1 != "-" else None
            if win is None:
                print(f"# {vmm} round {rnd} {role}: the transfer's start or end was not seen")
        elif line == "PROF-BEGIN" and win:
            vmm, rnd, role, t0, t1 = win
            funcs = Counter()
            for pl in blob(lines[k:], "PROF-BEGIN", "PROF-END").splitlines():
                if pl and not pl.startswith("#"):
                    t, _, rip = pl.split()
                    if t0 <= float(t) <= t1:
                        funcs[name(int(rip, 16))] += 1
            total = sum(funcs.values())
            what = "receiver" if role == "srv" else "sender"
            print(f"{vmm} round {rnd} {role} ({what}): {total} samples in the "
                  f"{t1 - t0:.1f} s transfer")
            for s, c in funcs.most_common(12):
                print(f"  {100 * c / total:5.1f}%  {s}")
            shown += 1
            win = None
    if not shown:
        sys.exit("netprof: no profiled transfer came back")


if __name__ == "__main__":
    main()
