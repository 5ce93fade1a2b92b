"""ploop and parallels fixtures for tests, built from raw bytes.

Importable (`from ploop_fixtures import ...`):

    parallels_from_raw(raw, out, cluster_size=None)
        qemu-img convert -O parallels: a v2 image ("WithouFreSpacExt", BAT in clusters)
    v1_from_raw(data, out, tracks=2048, reverse=False, gap=0)
        a v1 image ("WithoutFreeSpace", BAT in sectors) written here, byte by byte; reverse lays
        the clusters out in the file backwards, gap adds sectors between them (v1 entries need
        not be cluster-aligned)
    delta(out, size, writes, cluster_size=None)
        an empty v2 image (qemu-img create) with qemu-io writes: a top delta whose unwritten
        clusters are unmapped
    delta_between(old_raw, new_raw, out, cluster_size=None)
        a v2 delta that maps exactly the clusters where new_raw differs from old_raw
    descriptor(directory, images, disk_sectors, ...)
        DiskDescriptor.xml laid out as ploop writes it (libxml2's xmlDocFormatDump: an XML
        declaration, two-space indentation)
    parse(path) -> (header dict, BAT list)
    expected_chain(paths, size) -> bytes a ploop chain (top first) reads as, decoded here
"""
import hashlib
import struct
import subprocess
import uuid
from pathlib import Path

SECTOR = 512
V1, V2 = b"WithoutFreeSpace", b"WithouFreSpacExt"
NONE_GUID = "{00000000-0000-0000-0000-000000000000}"
TOP_GUID = "{5fbaabe3-6958-40ff-92a7-860e329aab41}"
INUSE = 0x746F6E59
HEADER = struct.Struct("<16sIIIIIQIIIQ")  # magic .. ext_off: 64 bytes


def guid():
    return "{" + str(uuid.uuid4()) + "}"


def run(*args):
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def parallels_from_raw(raw, out, cluster_size=None):
    opts = ["-o", f"cluster_size={cluster_size}"] if cluster_size else []
    run("qemu-img", "convert", "-f", "raw", "-O", "parallels", *opts, raw, out)
    return Path(out)


def delta(out, size, writes, cluster_size=None):
    opts = ["-o", f"cluster_size={cluster_size}"] if cluster_size else []
    run("qemu-img", "create", "-q", "-f", "parallels", *opts, out, size)
    cmds = []
    for w in writes:
        cmds += ["-c", w]
    if cmds:
        run("qemu-io", "-f", "parallels", *cmds, out)
    return Path(out)


def delta_between(old_raw, new_raw, out, cluster_size=None):
    parallels_from_raw(new_raw, out, cluster_size)
    h, bat = parse(out)
    cluster = h["tracks"] * SECTOR
    old, new = Path(old_raw).read_bytes(), Path(new_raw).read_bytes()
    with open(out, "r+b") as f:
        for i in range(len(bat)):
            if old[i * cluster:(i + 1) * cluster] == new[i * cluster:(i + 1) * cluster]:
                f.seek(64 + 4 * i)
                f.write(bytes(4))
    return Path(out)


def header_bytes(magic, tracks, bat_entries, nb_sectors, data_off, inuse=0, flags=0, ext_off=0,
                 version=2, heads=16, cylinders=0):
    return HEADER.pack(magic, version, heads, cylinders, tracks, bat_entries, nb_sectors, inuse,
                       data_off, flags, ext_off)


def v1_from_raw(data, out, tracks=2048, reverse=False, gap=0):
    """Clusters that hold only zeroes are left unmapped; the rest are stored in the data area
    in order (or reversed), gap sectors apart. data_off is the end of the BAT in sectors."""
    cluster = tracks * SECTOR
    sectors = (len(data) + SECTOR - 1) // SECTOR
    n = (sectors + tracks - 1) // tracks
    data_off = (64 + 4 * n + SECTOR - 1) // SECTOR
    used = [i for i in range(n) if any(data[i * cluster:(i + 1) * cluster])]
    order = list(reversed(used)) if reverse else used
    bat = [0] * n
    body = bytearray()
    for i in order:
        bat[i] = data_off + len(body) // SECTOR
        chunk = data[i * cluster:(i + 1) * cluster]
        body += chunk + bytes(cluster - len(chunk)) + bytes(gap * SECTOR)
    head = header_bytes(V1, tracks, n, sectors, data_off, cylinders=sectors // (16 * 63))
    head += struct.pack(f"<{n}I", *bat)
    head += bytes(data_off * SECTOR - len(head))
    Path(out).write_bytes(bytes(head) + bytes(body))
    return Path(out)


def parse(path):
    blob = Path(path).read_bytes()
    f = HEADER.unpack_from(blob, 0)
    h = dict(zip(("magic", "version", "heads", "cylinders", "tracks", "bat_entries",
                  "nb_sectors", "inuse", "data_off", "flags", "ext_off"), f))
    if h["magic"] == V1:
        h["nb_sectors"] &= 0xFFFFFFFF
    bat = list(struct.unpack_from(f"<{h['bat_entries']}I", blob, 64))
    return h, bat


def host_offset(h, entry):
    return entry * (1 if h["magic"] == V1 else h["tracks"]) * SECTOR


def expected_chain(paths, size):
    """What a chain of parallels images (top first) reads as: piece by piece, the first image
    whose BAT maps it, zeroes where none does; past an image's own size it maps nothing."""
    imgs = []
    for p in paths:
        h, bat = parse(p)
        imgs.append((h, bat, Path(p).read_bytes()))
    out = bytearray(size)
    pos = 0
    while pos < size:
        step = size - pos
        for h, bat, blob in imgs:
            cluster, end = h["tracks"] * SECTOR, h["nb_sectors"] * SECTOR
            if pos >= end:
                continue
            idx, within = divmod(pos, cluster)
            step = min(step, cluster - within, end - pos)
            if idx < len(bat) and bat[idx]:
                off = host_offset(h, bat[idx]) + within
                out[pos:pos + step] = blob[off:off + step].ljust(step, b"\0")
                break
        pos += step
    return bytes(out)


def descriptor(directory, images, disk_sectors, shots=None, top=None, root="Parallels_disk_image",
               blocksize=2048, encryption=None, extra_params="", name="DiskDescriptor.xml"):
    """images: [(guid, file, type)] listed base first, as ploop lists them; shots: [(guid,
    parent)] (default: each image's parent is the one listed before it); top: the <TopGUID>
    (default the last image's GUID; False for none); encryption: XML put inside <Encryption>."""
    if shots is None:
        shots = [(g, images[i - 1][0] if i else NONE_GUID) for i, (g, _, _) in enumerate(images)]
    if top is None:
        top = images[-1][0]
    heads, cyl = 16, max(1, disk_sectors // (16 * 63))
    lines = ['<?xml version="1.0"?>', f"<{root}>", "  <Disk_Parameters>",
             f"    <Disk_size>{disk_sectors}</Disk_size>", f"    <Cylinders>{cyl}</Cylinders>",
             f"    <Heads>{heads}</Heads>",
             f"    <Sectors>{disk_sectors // (cyl * heads)}</Sectors>", "    <Padding>0</Padding>"]
    if encryption is not None:
        lines += ["    <Encryption>", f"      {encryption}", "    </Encryption>"]
    if extra_params:
        lines.append(extra_params)
    lines += ["  </Disk_Parameters>", "  <StorageData>", "    <Storage>", "      <Start>0</Start>",
              f"      <End>{disk_sectors}</End>", f"      <Blocksize>{blocksize}</Blocksize>"]
    for g, f, t in images:
        lines += ["      <Image>", f"        <GUID>{g}</GUID>", f"        <Type>{t}</Type>",
                  f"        <File>{f}</File>", "      </Image>"]
    lines += ["    </Storage>", "  </StorageData>", "  <Snapshots>"]
    if top:
        lines.append(f"    <TopGUID>{top}</TopGUID>")
    for g, p in shots:
        lines += ["    <Shot>", f"      <GUID>{g}</GUID>", f"      <ParentGUID>{p}</ParentGUID>",
                  "    </Shot>"]
    lines += ["  </Snapshots>", f"</{root}>", ""]
    path = Path(directory) / name
    path.write_text("\n".join(lines))
    return path


def ext_cluster(cluster, features):
    """A format extension cluster: magic, MD5 of the rest, features [(magic, flags, data)],
    the end marker. QEMU checks the MD5, so the images it reads are well formed."""
    body = bytearray()
    for magic, flags, data in features:
        body += struct.pack("<QQII", magic, flags, len(data), 0) + data
        body += bytes(-len(body) % 8)
    body += bytes(24)  # end of features
    rest = bytes(body) + bytes(cluster - 24 - len(body))
    return struct.pack("<Q", 0xAB234CEF23DCEA87) + hashlib.md5(rest).digest() + rest
