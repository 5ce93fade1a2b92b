#!/usr/bin/python3
"""Print the .ko files (relative to the module tree) needed to load the named modules, each
after its dependencies: the order modules.dep gives, computed from each module's own
'depends=' field, since the package ships no modules.dep (depmod writes it on install)."""
import os
import re
import sys


def index(root):
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".ko"):
                name = f[:-3].replace("-", "_")
                mods[name] = os.path.relpath(os.path.join(dirpath, f), root)
    return mods


def depends(path):
    with open(path, "rb") as f:
        m = re.search(rb"depends=([A-Za-z0-9_,-]*)\0", f.read())
    if not m or not m.group(1):
        return []
    return [d.replace("-", "_") for d in m.group(1).decode().split(",")]


def main():
    root, names = sys.argv[1], sys.argv[2:]
    mods, order, seen = index(root), [], set()

    def visit(name, chain):
        name = name.replace("-", "_")
        if name in seen:
            return
        if name not in mods:
            sys.exit(f"modules.py: module {name} not found under {root}")
        if name in chain:
            sys.exit(f"modules.py: dependency loop through {name}")
        for d in depends(os.path.join(root, mods[name])):
            visit(d, chain | {name})
        seen.add(name)
        order.append(mods[name])

    for n in names:
        visit(n, set())
    print("\n".join(order))


main()
