#!/bin/sh
# Runs inside the debootstrapped tree (chroot, with /proc, /sys and /dev mounted) to make it
# the test system: the cloud kernel and its initramfs, root's password, the serial getty,
# systemd-networkd, ligero's units, and /boot/grub/grub.cfg written by grub-mkconfig.
# debian.sh copies tests/guest/debian/rootfs/ into the tree first, and the kernel packages
# into /tmp/kernel/. env: ROOT_UUID (the root filesystem's UUID), ROOT_DEV (the root
# partition as the guest's kernel names it, e.g. /dev/vda2; only grub-probe's answers use it).
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin

# The cloud kernel's virtio drivers are modules; MODULES=most takes them, this says they
# are needed whatever the initramfs policy (ext4 is built in).
printf '%s\n' virtio_pci virtio_blk virtio_scsi virtio_net >>/etc/initramfs-tools/modules
dpkg -i /tmp/kernel/*.deb >/dev/null
rm -rf /tmp/kernel

cat >/etc/fstab <<FSTAB
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=$ROOT_UUID /               ext4    errors=remount-ro 0       1
FSTAB

echo root:ligero | chpasswd
systemctl -q enable serial-getty@ttyS0.service systemd-networkd.service \
	ligero-test.service ligero-multiuser.service
# Timers that would reach the network or rewrite the disk on their own during a test.
systemctl -q disable apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer \
	dpkg-db-backup.timer

# grub.cfg by Debian's own grub-mkconfig. grub-probe would look for the device holding /,
# which here is the build host's disk: a stand-in answers what it would answer in the guest.
# Its 10_linux writes root=UUID= only if /dev/disk/by-uuid/UUID exists (this /dev is a
# tmpfs that ends with the build).
cp /usr/share/grub/default/grub /etc/default/grub
mknod "$ROOT_DEV" b 254 2
mkdir -p /dev/disk/by-uuid
ln -s "../../${ROOT_DEV#/dev/}" "/dev/disk/by-uuid/$ROOT_UUID"
mv /usr/sbin/grub-probe /usr/sbin/grub-probe.real
cat >/usr/sbin/grub-probe <<PROBE
#!/bin/sh
target=
while [ \$# -gt 0 ]; do
	case "\$1" in
	--target=*) target=\${1#--target=} ;;
	-t|--target) shift; target=\$1 ;;
	esac
	shift
done
case "\$target" in
device) echo $ROOT_DEV ;;
fs) echo ext2 ;;
fs_uuid) echo $ROOT_UUID ;;
partmap) echo gpt ;;
abstraction|cryptodisk_uuid|partuuid|fs_label) ;;
drive) echo '(hd0,gpt2)' ;;
compatibility_hint) echo hd0,gpt2 ;;
hints_string) echo '--hint-bios=hd0,gpt2 --hint-efi=hd0,gpt2 --hint-baremetal=ahci0,gpt2 ' ;;
*) echo "grub-probe stand-in: unknown target \$target" >&2; exit 1 ;;
esac
PROBE
chmod 755 /usr/sbin/grub-probe
mkdir -p /boot/grub
grub-mkconfig -o /boot/grub/grub.cfg
mv /usr/sbin/grub-probe.real /usr/sbin/grub-probe

apt-get clean
rm -f /etc/dpkg/dpkg.cfg.d/ligero-build
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/tmp/*
