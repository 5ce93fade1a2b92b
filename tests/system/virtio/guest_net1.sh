# Net VM against its host: ADDR and PEER come from the first line of this disk (the test writes
# them). The guest sends 16 MiB to the host (its TX queue), then receives 16 MiB (its RX queue).
# ALIVE every 2 s tells the host that the guest's own clock still runs (see host_net1.sh).
up() { cut -d' ' -f1 /proc/uptime; }
(while :; do echo "ALIVE $(up)"; sleep 2; done) &
ip addr add $ADDR/24 dev eth0 && ip link set eth0 up
echo "MAC=$(cat /sys/class/net/eth0/address)"
echo "VIRTIO-FEATURES=$(cat /sys/class/net/eth0/device/features 2>/dev/null)"
i=0; until ping -c 1 -W 1 $PEER >/dev/null 2>&1 || [ $i -ge 60 ]; do i=$((i+1)); done
ping -c 3 $PEER | grep -q ' 0% packet loss' && echo PING-OK
t0=$(up)
yes ligero-net-tx | head -c 16777216 | nc $PEER 5000 && echo "TX-DONE $t0 $(up)"
echo RX-LISTEN
t0=$(up)
echo "RX-SHA=$(nc -l -p 5001 | sha256sum | cut -c1-64)"
echo "RX-DONE $t0 $(up)"
exit 0
