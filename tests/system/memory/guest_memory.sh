# The guest of test_vm_memory.py: vda = control disk (the host writes "go" at its start),
# vdb = this script. It fills a tmpfs with 300 MiB of identical pages (KSM's food), waits for
# the host, frees them all at once (free page reporting's food) and idles.
echo "REPORTING-ORDER=$(cat /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null)"
for d in /sys/bus/virtio/devices/*; do
	[ "$(cat "$d/device")" = 0x0005 ] && echo "BALLOON-FEATURES=$(cat "$d/features")"
done
mkdir -p /mnt && mount -t tmpfs -o size=400m tmpfs /mnt
# 16-byte lines: every 4 KiB page of the file holds the same bytes
yes ligero-ksm-page | head -c 314572800 >/mnt/fill
echo "GUEST-MEMFREE-FILLED-KB=$(sed -n 's/^MemFree: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
echo FILLED
while [ "$(dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 2)" != go ]; do
	echo 1 >/proc/sys/vm/drop_caches
	sleep 1
done
rm /mnt/fill
echo "GUEST-MEMFREE-FREED-KB=$(sed -n 's/^MemFree: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
echo FREED
sleep 100000
