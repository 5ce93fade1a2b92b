# VM B (fsync, balloon): vda = raw cache=writethrough (L1 files are on tmpfs: no O_DIRECT), vdb = 100 MiB cache disk, vdc = this script.
yes fsync-pattern | head -c 1048576 | dd of=/dev/vda bs=64k conv=fsync 2>/dev/null
echo SYNCED
# Fill guest RAM with clean page cache: the host faults those pages in (RSS up); the balloon's
# inflation later makes the guest drop them and hand them over.
dd if=/dev/vdb of=/dev/null bs=1M 2>/dev/null
echo TOUCHED
sleep 100000
