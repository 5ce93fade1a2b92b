"""ligero fs inspect on a guest laid out like Debian (separate /boot) and like a Fedora-family
system (kernels in the root filesystem), checked against the files the test put there."""
import json
import os
import shutil

from fs_fixtures import MiB, lg, mkfs, need, place, run, sfdisk_parts


def debian_root(root):
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')
    (root / "etc/network/interfaces.d").mkdir(parents=True)
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    (root / "etc/hostname").write_text("web-01\n")
    (root / "etc/fstab").write_text(
        "# /etc/fstab\nUUID=5e1f0c2a-6a39-4c57-9f0e-7f8a1b2c3d4e / ext4 errors=remount-ro 0 1\n"
        "LABEL=boot\t/boot\text2\tdefaults\t0\t2\n/dev/vdb1 none swap sw 0 0\n")
    (root / "etc/network/interfaces").write_text("auto eth0\niface eth0 inet dhcp\n")
    (root / "etc/network/interfaces.d/eth1").write_text("iface eth1 inet manual\n")
    (root / "etc/netplan").mkdir()
    (root / "etc/netplan/50-cloud-init.yaml").write_text("network: {version: 2}\n")
    (root / "etc/netplan/README").write_text("not a config\n")
    (root / "boot").mkdir()  # the mount point; the kernels live in partition 1


def test_inspect_debian_separate_boot(tmp_path):
    need("sfdisk")
    root, boot = tmp_path / "root", tmp_path / "boot"
    debian_root(root)
    boot.mkdir()
    for v in ["6.1.0-12-amd64", "6.1.0-13-amd64"]:
        (boot / f"vmlinuz-{v}").write_bytes(b"kernel " + v.encode())
        (boot / f"config-{v}").write_text("")
    (boot / "initrd.img-6.1.0-13-amd64").write_bytes(b"initrd")
    disk = tmp_path / "deb.img"
    run("truncate", "-s", "100M", disk)
    run("sfdisk", "-q", disk, input=b"label: dos\nsize=16MiB, type=83\nsize=64MiB, type=83\n")
    parts = sfdisk_parts(disk)
    place(disk, mkfs(tmp_path / "b.fs", boot, 16, label="boot", extra=["-t", "ext2"]),
          parts[1]["start"])
    place(disk, mkfs(tmp_path / "r.fs", root, 64), parts[2]["start"])

    j = json.loads(lg("inspect", "--output=json", disk).stdout)
    assert j["root-partition"] == 2 and j["boot-partition"] == 1
    assert j["os"] == {"id": "debian", "name": "Debian GNU/Linux", "version": "12",
                       "pretty-name": "Debian GNU/Linux 12 (bookworm)", "codename": "bookworm"}
    assert j["hostname"] == "web-01"
    assert j["kernels"] == [
        {"version": "6.1.0-12-amd64", "kernel": "/vmlinuz-6.1.0-12-amd64", "initrd": None},
        {"version": "6.1.0-13-amd64", "kernel": "/vmlinuz-6.1.0-13-amd64",
         "initrd": "/initrd.img-6.1.0-13-amd64"}]
    assert j["fstab"] == [
        {"spec": "UUID=5e1f0c2a-6a39-4c57-9f0e-7f8a1b2c3d4e", "mountpoint": "/",
         "type": "ext4", "options": "errors=remount-ro"},
        {"spec": "LABEL=boot", "mountpoint": "/boot", "type": "ext2", "options": "defaults"},
        {"spec": "/dev/vdb1", "mountpoint": "none", "type": "swap", "options": "sw"}]
    assert j["network-config"] == ["/etc/network/interfaces", "/etc/network/interfaces.d/eth1",
                                   "/etc/netplan/50-cloud-init.yaml"]
    text = lg("inspect", disk).stdout.decode()
    assert "hostname:   web-01" in text
    assert f"kernel:     {disk}:1:/vmlinuz-6.1.0-13-amd64 (initrd /initrd.img-6.1.0-13-amd64)" \
        in text
    # The kernel found is the one a direct boot would load.
    assert lg("cat", f"{disk}:1", "/vmlinuz-6.1.0-13-amd64").stdout == b"kernel 6.1.0-13-amd64"


def test_inspect_fedora_like_whole_disk(tmp_path):
    root = tmp_path / "root"
    (root / "etc/sysconfig/network-scripts").mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "etc/os-release").write_text('NAME="AlmaLinux"\nVERSION_ID="9.3"\nID="almalinux"\n')
    (root / "etc/sysconfig/network").write_text("NETWORKING=yes\nHOSTNAME=alma.example\n")
    (root / "etc/sysconfig/network-scripts/ifcfg-eth0").write_text("DEVICE=eth0\n")
    (root / "etc/sysconfig/network-scripts/route-eth0").write_text("")
    (root / "boot/vmlinuz-5.14.0-362.el9.x86_64").write_bytes(b"k")
    (root / "boot/initramfs-5.14.0-362.el9.x86_64.img").write_bytes(b"i")
    disk = mkfs(tmp_path / "alma.img", root, 32)
    j = json.loads(lg("inspect", "--output=json", disk).stdout)
    assert j["root-partition"] == 0 and j["hostname"] == "alma.example"
    assert j["os"]["id"] == "almalinux" and j["os"]["version"] == "9.3"
    assert j["os"]["codename"] is None
    assert j["kernels"] == [{"version": "5.14.0-362.el9.x86_64",
                             "kernel": "/boot/vmlinuz-5.14.0-362.el9.x86_64",
                             "initrd": "/boot/initramfs-5.14.0-362.el9.x86_64.img"}]
    assert j["fstab"] == []
    assert j["network-config"] == ["/etc/sysconfig/network-scripts/ifcfg-eth0"]
