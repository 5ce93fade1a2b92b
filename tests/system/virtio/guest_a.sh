# VM A (blk + rng): vda = qcow2 overlay of base (pattern, discard), vdb = qcow2 overlay (ext4),
# vdc = read-only raw, vdd = ext4 image to copy, vde = this script.
yes ligero-pattern | head -c 4194304 | dd of=/dev/vda bs=1M seek=16 conv=fsync 2>/dev/null
echo "GUEST-PATTERN-SHA=$(dd if=/dev/vda bs=1M skip=16 count=4 2>/dev/null | sha256sum | cut -c1-64)"
yes discard-me | head -c 4194304 | dd of=/dev/vda bs=1M seek=32 conv=fsync 2>/dev/null
blkdiscard -o 33554432 -l 4194304 /dev/vda && echo DISCARD-OK
echo "DISCARD-SUPPORTED=$(cat /sys/block/vda/queue/discard_max_bytes)"
dd if=/dev/vdd of=/dev/vdb bs=1M conv=fsync 2>/dev/null
mkdir -p /mnt && mount -t ext4 /dev/vdb /mnt && seq 1 100000 > /mnt/seq.txt && sync && umount /mnt && echo EXT4-OK
echo "RO-SYSFS=$(cat /sys/block/vdc/ro)"
echo overwrite | dd of=/dev/vdc conv=fsync 2>&1 | head -n 1 | sed 's/^/RO-WRITE=/'
echo "SERIAL=$(cat /sys/block/vda/serial)"
echo "RNG=$(head -c 32 /dev/hwrng | od -An -tx1 | tr -d ' \n')"
echo "RNG-CURRENT=$(cat /sys/class/misc/hw_random/rng_current)"
# the port I/O notification windows the virtio driver claimed (BAR 2 of each device)
echo "PIO-NOTIFY=$(awk '/virtio-pci-modern/ {print $1}' /proc/ioports | tr '\n' ' ')"
echo "VIRTIO-DEVICES=$(ls /sys/bus/virtio/devices | wc -l)"
grep -c virtio /proc/interrupts | sed 's/^/MSIX-LINES=/'
exit 0
