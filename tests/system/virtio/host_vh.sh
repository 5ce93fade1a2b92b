# L1 side of test_virtio_vhost.py, the whole of it in one emulated-host boot: load tun, bridge
# and vhost_net (and what they need), then the one-VM cases and fallbacks (host_vh1.sh, with
# MB, RMB, ROBUST and CASES1) and the two-VM cases (host_vh2.sh, with MB and CASES2; their
# names start with p, so the two parts' lines never mix).
cd /work
for m in mods/*.ko; do insmod "$m" || echo "INSMOD-FAILED $m"; done
echo "VHOST-DEV=$(ls /dev/vhost-net 2>/dev/null)"
CASES=$CASES1 sh ./host_vh1.sh
CASES=$CASES2 sh ./host_vh2.sh
