"""ligero fs read verbs against images built by mkfs.ext4 -d / sfdisk / sgdisk / qemu-img: what
ls, cat, stat and copy-out report must match the generated source tree."""
import json
import os
import shutil
import stat

import pytest

from fs_fixtures import (FS_UUID, MiB, assert_same_tree, lg, manifest, sfdisk_parts, sha256,
                         fs_images, fs_src)  # noqa: F401 (fixtures)

LAYOUTS = ["whole", "mbr", "gpt", "qcow2"]


def test_list_mbr_matches_sfdisk(fs_images):
    img = fs_images["mbr"]
    j = json.loads(lg("list", "--output=json", img).stdout)
    parts = {p["number"]: p for p in j["partitions"]}
    want = sfdisk_parts(img)
    assert j["table"] == "mbr"
    assert sorted(parts) == sorted(want) == [1, 2, 5, 6]
    for n, w in want.items():
        assert (parts[n]["start"], parts[n]["size"]) == (w["start"], w["size"]), n
    assert parts[2]["extended"] is True and "filesystem" not in parts[2]
    assert parts[1]["filesystem"]["type"] == "ext2" and parts[1]["filesystem"]["label"] == "boot"
    assert parts[5]["filesystem"] == {"type": "ext4", "label": "root", "uuid": FS_UUID}
    assert parts[6]["filesystem"]["type"] == "swap" and parts[6]["filesystem"]["label"] == "swp"


def test_list_gpt_matches_sgdisk(fs_images):
    img = fs_images["gpt"]
    j = json.loads(lg("list", "--output=json", img).stdout)
    parts = {p["number"]: p for p in j["partitions"]}
    want = sfdisk_parts(img)
    assert j["table"] == "gpt" and sorted(parts) == [1, 2]
    for n, w in want.items():
        assert (parts[n]["start"], parts[n]["size"]) == (w["start"], w["size"])
        assert parts[n]["part-type"].upper() == w["type"].upper()
    assert parts[1]["part-name"] == "EFI system" and parts[2]["part-name"] == "root"
    assert parts[2]["filesystem"]["uuid"] == FS_UUID
    text = lg("list", img).stdout.decode()
    assert f"{img}:2" in text and FS_UUID in text
    if not shutil.which("mkfs.vfat"):
        pytest.skip("mkfs.vfat is not installed (dosfstools): the ESP has no filesystem")
    assert parts[1]["filesystem"] == {"type": "vfat", "label": "ESP", "uuid": "1234-ABCD"}
    assert "vfat" in text


@pytest.mark.parametrize("layout", LAYOUTS)
def test_copy_out_matches_source(layout, fs_images, fs_src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lg("copy-out", fs_images[layout], "/", out)
    assert_same_tree(manifest(out), manifest(fs_src))
    # Holes stay holes on the host.
    st = os.stat(out / "sparse")
    assert st.st_size == 12 * MiB and st.st_blocks * 512 < 1 * MiB


@pytest.mark.parametrize("layout", ["mbr", "qcow2"])
def test_ls_cat_stat_match_source(layout, fs_images, fs_src):
    img = fs_images[layout]
    want, _ = manifest(fs_src)
    listed = lg("ls", "-R", img, "/").stdout.decode().splitlines()
    assert sorted(p for p in listed if not p.startswith("/lost+found")) == sorted(want)
    assert lg("ls", img, "/a").stdout.decode().split("\n")[:-1] == sorted(os.listdir(fs_src / "a"))
    for rel in ["/big.bin", "/one", "/empty", "/sparse", "/files/f05", "/odd/ñandú-ü",
                "/a/rel-link"]:
        data = lg("cat", img, rel).stdout
        assert data == (fs_src / rel[1:]).read_bytes(), rel
    for rel in ["/files/f01", "/files/f04", "/abs-link", "/a/b", "/one"]:
        j = json.loads(lg("stat", "--output=json", img, rel).stdout)
        st = os.lstat(fs_src / rel[1:])
        assert j["mode"] == stat.S_IMODE(st.st_mode), rel
        assert (j["uid"], j["gid"]) == (st.st_uid, st.st_gid), rel
        assert j["mtime"] == int(st.st_mtime), rel
        assert j["links"] == st.st_nlink or stat.S_ISDIR(st.st_mode), rel
        if stat.S_ISLNK(st.st_mode):
            assert j["target"] == os.readlink(fs_src / rel[1:])
        elif stat.S_ISREG(st.st_mode):
            assert j["size"] == st.st_size


def test_ls_long_shows_link_and_mode(fs_images):
    out = lg("ls", "-l", fs_images["gpt"], "/").stdout.decode()
    line = next(l for l in out.splitlines() if l.endswith("abs-link -> /etc/os-release"))
    assert line.startswith("lrwxrwxrwx") and " 7 " in line and " 8 " in line


def test_partition_address_and_default(fs_images):
    mbr = fs_images["mbr"]
    # Several filesystems: the default is the one with /etc/os-release (partition 5).
    assert lg("cat", mbr, "/etc/os-release").stdout == lg("cat", f"{mbr}:5",
                                                           "/etc/os-release").stdout
    # Partition 1 is the small boot filesystem: no such file there.
    p = lg("cat", f"{mbr}:1", "/etc/os-release", check=False)
    assert p.returncode != 0 and b"no such file" in p.stderr


def test_backing_untouched_by_reads(fs_images):
    before = sha256(fs_images["base"]), sha256(fs_images["qcow2"])
    lg("ls", "-lR", fs_images["qcow2"], "/")
    assert (sha256(fs_images["base"]), sha256(fs_images["qcow2"])) == before
