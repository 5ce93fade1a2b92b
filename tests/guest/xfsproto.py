#!/usr/bin/python3
"""Print a mkfs.xfs protofile (mkfs.xfs -p, see mkfs.xfs(8)) that fills a new XFS filesystem
with a copy of the directory tree DIR: regular files, directories, symlinks, character and
block devices and FIFOs, with their modes and numeric owners. Hard links become separate
files (the protofile format has no hard links). Names with white space or ':' cannot be
written in a protofile and are refused.

usage: xfsproto.py DIR > proto && mkfs.xfs -p proto IMAGE"""
import os
import stat
import sys

TYPES = {stat.S_IFREG: "-", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c",
         stat.S_IFBLK: "b", stat.S_IFIFO: "p"}


def mode(st):
    kind = TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    return "%s%s%s%03o" % (kind, "u" if st.st_mode & stat.S_ISUID else "-",
                           "g" if st.st_mode & stat.S_ISGID else "-", st.st_mode & 0o777)


def token(text, path):
    if not text or any(c.isspace() or c == ":" for c in text) or text == "$":
        sys.exit(f"xfsproto.py: {path}: a protofile cannot hold this name or target")
    return text


def emit(path, out, depth):
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        st = os.lstat(full)
        m = mode(st)
        if m is None:
            sys.exit(f"xfsproto.py: {full}: sockets cannot go in a protofile")
        line = "%s%s %s %d %d" % ("  " * depth, token(name, full), m, st.st_uid, st.st_gid)
        if m[0] == "-":
            line += " " + token(os.path.abspath(full), full)
        elif m[0] == "l":
            line += " " + token(os.readlink(full), full)
        elif m[0] in "bc":
            line += " %d %d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        out.append(line)
        if m[0] == "d":
            emit(full, out, depth + 1)
            out.append("  " * (depth + 1) + "$")


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit(__doc__.splitlines()[-1])
    root = sys.argv[1]
    st = os.stat(root)
    out = ["ligero-xfsproto", "0 0", "%s %d %d" % (mode(st), st.st_uid, st.st_gid)]
    emit(root, out, 1)
    out.append("$")
    print("\n".join(out))


main()
