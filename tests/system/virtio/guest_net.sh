# Net VM: ADDR and PEER come from the first line of this disk (sed'ed in by the host script).
ip addr add $ADDR/24 dev eth0 && ip link set eth0 up
echo "MAC=$(cat /sys/class/net/eth0/address)"
i=0; until ping -c 1 -W 1 $PEER >/dev/null 2>&1 || [ $i -ge 60 ]; do i=$((i+1)); done
ping -c 3 $PEER | grep -q ' 0% packet loss' && echo PING-OK
if [ "$ROLE" = server ]; then
	echo "RX-SHA=$(nc -l -p 5000 | sha256sum | cut -c1-64)"
else
	sleep 3
	n=0
	until yes ligero-net-payload | head -c 104857600 | nc $PEER 5000 || [ $n -ge 20 ]; do n=$((n+1)); sleep 1; done
	echo "TX-SHA=$(yes ligero-net-payload | head -c 104857600 | sha256sum | cut -c1-64)"
fi
exit 0
