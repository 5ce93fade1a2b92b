/* `ligero run`'s device options, parsed by the command line (src/cli/run_devices.c, compiled
 * in) into the structs the VMM takes, and the VMM's checks of what it is handed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "block/block.h"
#include "cli/run_devices.h"
#include "util/error.h"
#include "vmm/virtio/vmdev.h"

static int disk(const char *arg, struct virtio_blk_opts *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s", arg);
	return run_parse_disk(buf, o);
}

static void disk_options(void **state)
{
	struct virtio_blk_opts o;
	char buf[128];
	(void)state;

	assert_int_equal(
	    disk("a.qcow2,format=qcow2,cache=none,readonly=on,serial=S1", &o, buf, sizeof(buf)), 0);
	assert_string_equal(o.path, "a.qcow2");
	assert_string_equal(o.format, "qcow2");
	assert_true(o.readonly);
	assert_string_equal(o.serial, "S1");
	assert_int_equal(o.bdev_flags, BDEV_O_DIRECT);
	assert_int_equal(disk("b.raw", &o, buf, sizeof(buf)), 0);
	assert_string_equal(o.path, "b.raw");
	assert_null(o.format);
	assert_false(o.readonly);
	assert_int_equal(o.bdev_flags, 0);
	assert_string_equal(o.serial, "");
}

/* Every cache mode is the block layer's (the same table img io and img convert use). */
static void disk_cache_modes(void **state)
{
	static const char *const modes[] = {"none",	    "off",	  "writeback",
					    "writethrough", "directsync", "unsafe"};
	struct virtio_blk_opts o;
	char buf[128], arg[64];
	(void)state;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int want;
		snprintf(arg, sizeof(arg), "d,cache=%s", modes[i]);
		assert_int_equal(bdev_parse_cache_mode(modes[i], &want), 0);
		assert_int_equal(disk(arg, &o, buf, sizeof(buf)), 0);
		assert_int_equal(o.bdev_flags, want);
		assert_int_equal(o.bdev_flags & ~BDEV_O_CACHE_MASK, 0);
	}
	assert_int_equal(disk("d,cache=bogus", &o, buf, sizeof(buf)), -EINVAL);
	assert_non_null(strstr(err_msg(), "bogus"));
	assert_non_null(strstr(err_msg(), "--disk d"));
}

/* A remote image's name is everything up to the first comma, '=' and all. */
static void disk_remote_names(void **state)
{
	struct virtio_blk_opts o;
	char buf[256];

	(void)state;
	assert_int_equal(
	    disk("rbd:rbd/vm1:conf=/c/ceph.conf:id=lab,cache=none", &o, buf, sizeof(buf)), 0);
	assert_string_equal(o.path, "rbd:rbd/vm1:conf=/c/ceph.conf:id=lab");
	assert_int_equal(o.bdev_flags, BDEV_O_DIRECT);
	assert_int_equal(disk("nbd://h:10809/e,readonly=on", &o, buf, sizeof(buf)), 0);
	assert_string_equal(o.path, "nbd://h:10809/e");
	assert_true(o.readonly);
	assert_int_equal(disk("a=b,format=raw", &o, buf, sizeof(buf)), -EINVAL);
}

static void disk_refusals(void **state)
{
	static const char *const bad[] = {
	    "format=raw",
	    "",
	    ",format=raw",
	    "d,format=vmdk",
	    "d,readonly=yes",
	    "d,readonly",
	    "d,serial=123456789012345678901",
	    "d,bogus=1",
	    "d,cache=",
	};
	struct virtio_blk_opts o;
	char buf[128];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(disk(bad[i], &o, buf, sizeof(buf)), -EINVAL);
		assert_non_null(strstr(err_msg(), "--disk"));
	}
	/* 20 characters is the most virtio-blk's serial holds. */
	assert_int_equal(disk("d,serial=12345678901234567890", &o, buf, sizeof(buf)), 0);
	assert_string_equal(o.serial, "12345678901234567890");
}

static void net_options(void **state)
{
	struct virtio_net_opts n;
	char buf[128];
	(void)state;

	snprintf(buf, sizeof(buf), "bridge=br0,mac=52:54:00:12:34:56");
	assert_int_equal(run_parse_net(buf, &n), 0);
	assert_string_equal(n.bridge, "br0");
	assert_true(n.mac_set);
	assert_int_equal(n.mac[0], 0x52);
	assert_int_equal(n.mac[5], 0x56);
	assert_int_equal(n.vhost, VIRTIO_NET_VHOST_AUTO); /* defaults */
	assert_int_equal(n.queues, 0);
	assert_int_equal(n.mtu, 0);
	snprintf(buf, sizeof(buf), "tap=t0,vhost=off,queues=8,mtu=9000");
	assert_int_equal(run_parse_net(buf, &n), 0);
	assert_int_equal(n.vhost, VIRTIO_NET_VHOST_OFF);
	assert_int_equal(n.queues, 8);
	assert_int_equal(n.mtu, 9000);
	snprintf(buf, sizeof(buf), "vhost=on,bridge=b,queues=1,mtu=68");
	assert_int_equal(run_parse_net(buf, &n), 0);
	assert_int_equal(n.vhost, VIRTIO_NET_VHOST_ON);
	assert_int_equal(n.queues, 1);
	assert_int_equal(n.mtu, 68);
	snprintf(buf, sizeof(buf), "tap=t0,queues=9");
	assert_int_equal(run_parse_net(buf, &n), -EINVAL);
	assert_non_null(strstr(err_msg(), "queues=9"));
	static const char *const bad[] = {"mac=52:54:00:12:34:56",
					  "tap=t0,vhost=yes",
					  "tap=t0,vhost=",
					  "tap=t0,queues=0",
					  "tap=t0,queues=-1",
					  "tap=t0,queues=2x",
					  "tap=t0,queues=99999999999999999999",
					  "tap=t0,mtu=67",
					  "tap=t0,mtu=65536",
					  "tap=t0,mtu=",
					  "tap=t0,mac=01:00:00:00:00:00",
					  "tap=t0,mac=52:54:00:12:34",
					  "tap=t0,mac=52:54:00:12:34:567",
					  "tap=0123456789abcdef",
					  "bridge=",
					  "tap",
					  ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "%s", bad[i]);
		assert_int_equal(run_parse_net(buf, &n), -EINVAL);
	}
}

static void balloon_options(void **state)
{
	struct vm_balloon_opts b;
	char buf[128];
	(void)state;

	snprintf(buf, sizeof(buf), "64,after=3,trigger=/tmp/x");
	assert_int_equal(run_parse_balloon(buf, &b), 0);
	assert_int_equal(b.mib, 64);
	assert_int_equal(b.after, 3);
	assert_string_equal(b.trigger, "/tmp/x");
	static const char *const bad[] = {
	    "", "x", "64M", "64,after=x", "64,trigger=", "64,y=1", "after=3", "4294967297"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "%s", bad[i]);
		assert_int_equal(run_parse_balloon(buf, &b), -EINVAL);
	}
}

/* The VMM copies what it is handed and still checks what a caller without the command line
 * could get wrong. */
static void vmm_takes_structs(void **state)
{
	struct vm_devices *v = vm_devices_new();
	char path[] = "disk.img", fmt[] = "raw";
	struct virtio_blk_opts d = {.path = path, .format = fmt, .serial = "S"};
	struct virtio_net_opts n = {.tap = "t0", .mac = {1, 2, 3, 4, 5, 6}, .mac_set = true};
	struct vm_balloon_opts b = {.mib = (1ull << 32) + 1};
	(void)state;

	assert_non_null(v);
	assert_int_equal(vm_devices_add_disk(v, &d), 0);
	path[0] = 'X'; /* copied: the caller's buffer may go */
	d.path = NULL;
	assert_int_equal(vm_devices_add_disk(v, &d), -EINVAL);
	assert_int_equal(vm_devices_add_net(v, &n), -EINVAL); /* multicast */
	n.mac[0] = 0x52;
	n.queues = VIRTIO_NET_MAX_PAIRS + 1;
	assert_int_equal(vm_devices_add_net(v, &n), -EINVAL);
	n.queues = 2;
	n.mtu = 60;
	assert_int_equal(vm_devices_add_net(v, &n), -EINVAL);
	n.mtu = 0;
	assert_int_equal(vm_devices_add_net(v, &n), 0);
	memset(n.tap, 0, sizeof(n.tap));
	assert_int_equal(vm_devices_add_net(v, &n), -EINVAL); /* neither tap nor bridge */
	assert_int_equal(vm_devices_set_balloon(v, &b), -EINVAL);
	b.mib = 16;
	assert_int_equal(vm_devices_set_balloon(v, &b), 0);
	vm_devices_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(disk_options),	 cmocka_unit_test(disk_cache_modes),
	    cmocka_unit_test(disk_remote_names), cmocka_unit_test(disk_refusals),
	    cmocka_unit_test(net_options),	 cmocka_unit_test(balloon_options),
	    cmocka_unit_test(vmm_takes_structs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
