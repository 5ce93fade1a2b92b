#!/bin/sh
# Seeds for fuzz_parallels: small parallels images (v2 from qemu-img with 4 KiB clusters and an
# empty one, v1 written by tests/system/ploop_fixtures.py with 15-sector clusters laid out
# backwards and apart, one with a format extension holding a dirty bitmap) and two DiskDescriptor.xml (a
# ploop chain, a Parallels Desktop disk with an <Encryption> block).
#
#   fuzz/make_parallels_corpus.sh fuzz/corpus/parallels
set -eu
out=${1:?usage: $0 OUTDIR}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 128 KiB of guest data with holes: a few patterned runs.
python3 - "$tmp/raw" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(128 * 1024)
    for off, n, b in ((0, 5000, 1), (40000, 300, 2), (100000, 8000, 3)):
        f.seek(off)
        f.write(bytes((i + b) & 0xFF for i in range(n)))
PY
qemu-img convert -f raw -O parallels -o cluster_size=4k "$tmp/raw" "$out/v2-4k.hds"
qemu-img create -q -f parallels -o cluster_size=4k "$out/v2-empty.hds" 64k

PYTHONPATH="$here/tests/system" python3 - "$tmp/raw" "$out" <<'PY'
import os, struct, sys
import ploop_fixtures as pf
raw, out = sys.argv[1], sys.argv[2]
data = open(raw, "rb").read()
pf.v1_from_raw(data, os.path.join(out, "v1-15.hdd"), tracks=15, reverse=True, gap=1)
# v2 with a format extension: a dirty bitmap whose one table entry is a cluster of its own
img = os.path.join(out, "v2-ext.hds")
h, bat = pf.parse(os.path.join(out, "v2-4k.hds"))
blob = bytearray(open(os.path.join(out, "v2-4k.hds"), "rb").read())
cluster = h["tracks"] * 512
end = len(blob)
feature = struct.pack("<Q16sII", h["nb_sectors"], b"\x22" * 16, 8, 1)
feature += struct.pack("<Q", (end + cluster) // 512)
blob += pf.ext_cluster(cluster, [(0x20385FAE252CB34A, 0, feature)]) + b"\x0f" * cluster
struct.pack_into("<Q", blob, 56, end // 512)
open(img, "wb").write(blob)
d = os.path.join(out, "tmp")
os.mkdir(d)
g = pf.guid()
pf.descriptor(d, [(g, "root.hdd", "Compressed"),
                  (pf.TOP_GUID, "root.hdd." + pf.guid(), "Compressed")], 512,
              root="Virtuozzo_disk_image")
os.rename(os.path.join(d, "DiskDescriptor.xml"), os.path.join(out, "chain.xml"))
pf.descriptor(d, [(g, "disk.hds", "Plain")], 512, top=False,
              encryption="<Engine>" + pf.NONE_GUID + "</Engine><Data></Data>")
os.rename(os.path.join(d, "DiskDescriptor.xml"), os.path.join(out, "desktop.xml"))
os.rmdir(d)
PY
