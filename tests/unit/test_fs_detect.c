/* Superblock detection, on hand-built superblocks laid out as each format documents them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "fs/detect.h"

#define REGION (1u << 20)
#define OFF    (4u << 20) /* the filesystem starts 4 MiB into the disk, as a partition would */

static char path[] = "/tmp/test_fs_detect.XXXXXX";
static uint8_t *img;

static void probe(struct fs_probe *p)
{
	struct bdev *bs;
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, OFF + REGION, f), OFF + REGION);
	fclose(f);
	assert_int_equal(bdev_open(&bs, path, "raw", 0), 0);
	assert_int_equal(fs_detect(bs, OFF, REGION, p), 0);
	bdev_close(bs);
}

static uint8_t *fs(void)
{
	return img + OFF;
}

static int setup(void **state)
{
	(void)state;
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return (img = calloc(1, OFF + REGION)) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	free(img);
	return 0;
}

static int reset(void **state)
{
	(void)state;
	memset(img, 0, OFF + REGION);
	return 0;
}

static const uint8_t uuid[16] = {0x5e, 0x1f, 0x0c, 0x2a, 0x6a, 0x39, 0x4c, 0x57,
				 0x9f, 0x0e, 0x7f, 0x8a, 0x1b, 0x2c, 0x3d, 0x4e};
static const char uuid_txt[] = "5e1f0c2a-6a39-4c57-9f0e-7f8a1b2c3d4e";

static void nothing(void **state)
{
	struct fs_probe p;
	(void)state;
	probe(&p);
	assert_string_equal(p.type, "");
	memcpy(fs() + 100, "XFSB", 4); /* a magic at the wrong place is not a superblock */
	probe(&p);
	assert_string_equal(p.type, "");
}

static void ext(void **state)
{
	struct fs_probe p;
	uint8_t *sb = fs() + 1024;
	(void)state;
	sb[0x38] = 0x53;
	sb[0x39] = 0xef;
	memcpy(sb + 0x68, uuid, 16);
	memcpy(sb + 0x78, "rootfs", 6);
	probe(&p);
	assert_string_equal(p.type, "ext2");
	assert_string_equal(p.label, "rootfs");
	assert_string_equal(p.uuid, uuid_txt);
	sb[0x5c] = 0x04; /* has_journal */
	probe(&p);
	assert_string_equal(p.type, "ext3");
	sb[0x60] = 0x40; /* extents */
	probe(&p);
	assert_string_equal(p.type, "ext4");
	assert_true(fs_type_is_ext(p.type));
}

static void xfs(void **state)
{
	struct fs_probe p;
	(void)state;
	memcpy(fs(), "XFSB", 4);
	memcpy(fs() + 32, uuid, 16);
	memcpy(fs() + 108, "data", 4);
	probe(&p);
	assert_string_equal(p.type, "xfs");
	assert_string_equal(p.label, "data");
	assert_string_equal(p.uuid, uuid_txt);
	assert_false(fs_type_is_ext(p.type));
}

static void btrfs(void **state)
{
	struct fs_probe p;
	uint8_t *sb = fs() + 65536;
	(void)state;
	memcpy(sb + 0x40, "_BHRfS_M", 8);
	memcpy(sb + 0x20, uuid, 16);
	memcpy(sb + 0x12b, "pool", 4);
	probe(&p);
	assert_string_equal(p.type, "btrfs");
	assert_string_equal(p.label, "pool");
	assert_string_equal(p.uuid, uuid_txt);
}

static void vfat(void **state)
{
	struct fs_probe p;
	(void)state;
	fs()[0] = 0xeb;
	fs()[510] = 0x55;
	fs()[511] = 0xaa;
	memcpy(fs() + 82, "FAT32   ", 8);
	memcpy(fs() + 67, "\xcd\xab\x34\x12", 4);
	memcpy(fs() + 71, "ESP        ", 11);
	probe(&p);
	assert_string_equal(p.type, "vfat");
	assert_string_equal(p.label, "ESP");
	assert_string_equal(p.uuid, "1234-ABCD");
	reset(NULL);
	fs()[0] = 0xeb;
	fs()[510] = 0x55;
	fs()[511] = 0xaa;
	memcpy(fs() + 54, "FAT16   ", 8);
	memcpy(fs() + 39, "\x01\x02\x03\x04", 4);
	memcpy(fs() + 43, "NO NAME    ", 11);
	probe(&p);
	assert_string_equal(p.type, "vfat");
	assert_string_equal(p.label, "");
	assert_string_equal(p.uuid, "0403-0201");
}

static void swap(void **state)
{
	struct fs_probe p;
	(void)state;
	memcpy(fs() + 4086, "SWAPSPACE2", 10);
	memcpy(fs() + 1024 + 12, uuid, 16);
	memcpy(fs() + 1024 + 28, "swp", 3);
	probe(&p);
	assert_string_equal(p.type, "swap");
	assert_string_equal(p.label, "swp");
	assert_string_equal(p.uuid, uuid_txt);
}

static void lvm(void **state)
{
	struct fs_probe p;
	uint8_t *l = fs() + 512;
	(void)state;
	memcpy(l, "LABELONE", 8);
	l[20] = 32; /* offset of the PV header */
	memcpy(l + 24, "LVM2 001", 8);
	memcpy(l + 32, "abcdefghijklmnopqrstuvwxyzABCDEF", 32);
	probe(&p);
	assert_string_equal(p.type, "LVM2_member");
	assert_string_equal(p.uuid, "abcdef-ghij-klmn-opqr-stuv-wxyz-ABCDEF");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(nothing, reset), cmocka_unit_test_setup(ext, reset),
	    cmocka_unit_test_setup(xfs, reset),	    cmocka_unit_test_setup(btrfs, reset),
	    cmocka_unit_test_setup(vfat, reset),    cmocka_unit_test_setup(swap, reset),
	    cmocka_unit_test_setup(lvm, reset),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
