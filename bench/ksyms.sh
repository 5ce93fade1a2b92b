# Sourced into emulated-host scripts (bench/bootprof.sh, bench/virtio.sh PROFILE=1): ksyms KERNEL
# INITRD boots the guest once with `nokaslr`, has it write its /proc/kallsyms onto a raw disk, and
# prints the text symbols between KSYMS-BEGIN and KSYMS-END (gzip, base64) for
# bench/bootprof.py's kernel_namer. Profiled guests must boot with nokaslr too.
ksyms() {
	truncate -s 32M /tmp/ksyms.img
	./ligero run --kernel "$1" --initrd "$2" --memory 256M --disk /tmp/ksyms.img,format=raw \
		--cmdline 'quiet nokaslr ligero.run="gzip </proc/kallsyms >/dev/vda; sync"' \
		</dev/null >/dev/null 2>&1 || echo "NOTE kallsyms boot failed"
	echo KSYMS-BEGIN
	gzip -dc </tmp/ksyms.img 2>/dev/null | grep ' [tTwW] ' | gzip | base64
	echo KSYMS-END
	rm -f /tmp/ksyms.img
}
