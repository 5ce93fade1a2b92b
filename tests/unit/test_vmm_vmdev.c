/* The devices of a VM at its end: vm_devices_stop flushes and closes every disk and reports a
 * flush that failed, naming the disk, after closing the others all the same. /dev/full stands
 * for a disk whose flush fails (fdatasync on a character device: EINVAL). No KVM. */
#include "vmm/bus.h"
#include "vmm/memory.h"
#include "vmm/virtio/vmdev.h"
#include "util/error.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static struct vm_devices *attach(const char *const *disks, unsigned n)
{
	static struct bus io, mmio;
	static struct guest_mem mem;
	struct vm_devices *v = vm_devices_new();

	io = (struct bus){0};
	mmio = (struct bus){0};
	assert_non_null(v);
	for (unsigned i = 0; i < n; i++) {
		struct virtio_blk_opts o = {.path = (char *)disks[i], .format = "raw"};
		assert_int_equal(vm_devices_add_disk(v, &o), 0);
	}
	assert_int_equal(vm_devices_attach(v, -1, &mem, &io, &mmio), 0);
	return v;
}

static void test_stop_reports_failed_flush(void **state)
{
	char path[] = "/tmp/ligero-vmdev-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	const char *disks[] = {path, "/dev/full", path};
	struct vm_devices *v = attach(disks, 1); /* the file alone first: no error */
	assert_int_equal(vm_devices_stop(v), 0);
	vm_devices_free(v);

	/* the same file again (its lock was released) between it and a failing disk */
	disks[0] = "/dev/full";
	disks[1] = path;
	v = attach(disks, 2);
	assert_int_equal(vm_devices_stop(v), -EINVAL);
	assert_string_equal(err_msg(),
			    "closing the disks: /dev/full: flush failed: Invalid argument");
	assert_int_equal(vm_devices_stop(v), 0); /* a second call does nothing */
	vm_devices_free(v);
	/* every disk was closed: the file opens read-write again (image locks) */
	v = attach(disks + 1, 1);
	assert_int_equal(vm_devices_stop(v), 0);
	vm_devices_free(v);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stop_reports_failed_flush),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
