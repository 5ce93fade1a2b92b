# Sourced by bench/remote.sh and bench/nbd_client.sh: $src, the source image both convert, made
# once in $out (a 1 GiB qcow2 with 512 MiB of data in 1 MiB runs, every other MiB a hole).
src=$out/remote-src.qcow2
if [ ! -f "$src" ]; then
	echo "generating $src (once)..." >&2
	qemu-img create -q -f qcow2 "$src.tmp" 1G
	cmds=$(python3 -c '
print(" ".join(f"-c \"write -P {i % 250 + 1} {2 * i}M 1M\"" for i in range(512)))')
	eval qemu-io "$cmds" "$src.tmp" >/dev/null
	mv "$src.tmp" "$src"
fi
