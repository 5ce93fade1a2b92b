/* Partition table parsing: MBR with logical partitions, GPT with its backup header, and the
 * rejection of tables that point outside the disk, overlap or loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "block/block.h"
#include "fs/part.h"
#include "util/error.h"

#define DISK	(64u << 20)
#define SECTORS (DISK / 512)

static char path[] = "/tmp/test_fs_part.XXXXXX";
static uint8_t *img;

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static void mbr_entry(uint8_t *sec, int i, uint8_t boot, uint8_t type, uint32_t lba, uint32_t n)
{
	uint8_t *e = sec + 446 + 16 * i;
	e[0] = boot;
	e[4] = type;
	put32(e + 8, lba);
	put32(e + 12, n);
	sec[510] = 0x55;
	sec[511] = 0xaa;
}

/* Write img to the file and parse it. */
static int parse(struct part_table *t)
{
	struct bdev *bs;
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, DISK, f), DISK);
	fclose(f);
	assert_int_equal(bdev_open(&bs, path, "raw", 0), 0);
	int ret = part_read(bs, t);
	bdev_close(bs);
	return ret;
}

static int setup(void **state)
{
	(void)state;
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	img = calloc(1, DISK);
	return img ? 0 : -1;
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
	memset(img, 0, DISK);
	return 0;
}

static void no_table(void **state)
{
	struct part_table t;
	(void)state;
	assert_int_equal(parse(&t), 0);
	assert_int_equal(t.scheme, PART_NONE);
	assert_int_equal(t.n, 0);
	/* A FAT boot sector ends in 55 aa too, but is a filesystem, not a table. */
	img[0] = 0xeb;
	memcpy(img + 82, "FAT32   ", 8);
	img[510] = 0x55;
	img[511] = 0xaa;
	assert_int_equal(parse(&t), 0);
	assert_int_equal(t.scheme, PART_NONE);
}

static void mbr_logical(void **state)
{
	struct part_table t;
	(void)state;
	mbr_entry(img, 0, 0x80, 0x83, 2048, 4096);
	mbr_entry(img, 1, 0, 0x05, 8192, 40960); /* extended: 8192 .. 49152 */
	uint8_t *ebr1 = img + 8192 * 512, *ebr2 = img + 20000 * 512;
	mbr_entry(ebr1, 0, 0, 0x83, 63, 1000);		 /* logical 5 at 8255 */
	mbr_entry(ebr1, 1, 0, 0x05, 20000 - 8192, 5000); /* next EBR, relative to extended */
	mbr_entry(ebr2, 0, 0, 0x82, 2048, 2000);	 /* logical 6 at 22048 */
	put32(img + 440, 0xdeadbeef);
	assert_int_equal(parse(&t), 0);
	assert_int_equal(t.scheme, PART_MBR);
	assert_string_equal(t.disk_id, "0xdeadbeef");
	assert_int_equal(t.n, 4);
	const struct part *p = part_find(&t, 1);
	assert_non_null(p);
	assert_int_equal(p->start, 2048 * 512ULL);
	assert_int_equal(p->size, 4096 * 512ULL);
	assert_true(part_find(&t, 2)->container);
	assert_int_equal(part_find(&t, 5)->start, 8255 * 512ULL);
	assert_int_equal(part_find(&t, 5)->size, 1000 * 512ULL);
	assert_int_equal(part_find(&t, 6)->start, 22048 * 512ULL);
	assert_int_equal(part_find(&t, 6)->mbr_type, 0x82);
	assert_null(part_find(&t, 3));
	part_table_free(&t);
}

static void mbr_bad(void **state)
{
	struct part_table t;
	(void)state;
	mbr_entry(img, 0, 0, 0x83, 2048, SECTORS); /* runs past the end */
	assert_int_equal(parse(&t), -EINVAL);
	assert_non_null(strstr(err_msg(), "bad partition table"));
	reset(NULL);
	mbr_entry(img, 0, 0, 0x83, 2048, 4096);
	mbr_entry(img, 1, 0, 0x83, 4096, 4096); /* overlaps partition 1 */
	assert_int_equal(parse(&t), -EINVAL);
	assert_non_null(strstr(err_msg(), "overlap"));
	reset(NULL);
	mbr_entry(img, 0, 0, 0x05, 2048, 8192);
	mbr_entry(img + 2048 * 512, 0, 0, 0x83, 63, 100);
	mbr_entry(img + 2048 * 512, 1, 0, 0x05, 0, 100); /* points back at itself */
	assert_int_equal(parse(&t), -EINVAL);
	assert_non_null(strstr(err_msg(), "logical"));
	reset(NULL);
	mbr_entry(img, 0, 0, 0x05, 2048, 8192); /* extended with no EBR signature */
	img[2048 * 512 + 510] = 0;
	assert_int_equal(parse(&t), -EINVAL);
}

/* A GPT with two partitions; primary and backup headers with valid CRCs. */
static void make_gpt(void)
{
	static const uint8_t linux_fs[16] = {0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
					     0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4};
	uint8_t *ents = img + 2 * 512;
	mbr_entry(img, 0, 0, 0xee, 1, SECTORS - 1);
	memcpy(ents, linux_fs, 16);
	memset(ents + 16, 0x11, 16);
	put64(ents + 32, 2048);
	put64(ents + 40, 4095);
	const char *name = "root";
	for (int i = 0; name[i]; i++)
		ents[56 + 2 * i] = (uint8_t)name[i];
	memcpy(ents + 128 * 2, linux_fs, 16); /* slot 3: partition number 3 */
	memset(ents + 128 * 2 + 16, 0x22, 16);
	put64(ents + 128 * 2 + 32, 8192);
	put64(ents + 128 * 2 + 40, 16383);
	uint32_t ecrc = (uint32_t)crc32(0, ents, 128 * 128);
	memcpy(img + (uint64_t)(SECTORS - 33) * 512, ents, 128 * 128);
	for (int backup = 0; backup < 2; backup++) {
		uint64_t at = backup ? SECTORS - 1 : 1;
		uint8_t *h = img + at * 512;
		memcpy(h, "EFI PART", 8);
		put32(h + 8, 0x10000);
		put32(h + 12, 92);
		put64(h + 24, at);
		put64(h + 32, backup ? 1 : SECTORS - 1);
		put64(h + 40, 34);
		put64(h + 48, SECTORS - 34);
		memset(h + 56, 0x33, 16);
		put64(h + 72, backup ? SECTORS - 33 : 2);
		put32(h + 80, 128);
		put32(h + 84, 128);
		put32(h + 88, ecrc);
		put32(h + 16, (uint32_t)crc32(0, h, 92));
	}
}

static void gpt(void **state)
{
	struct part_table t;
	(void)state;
	make_gpt();
	assert_int_equal(parse(&t), 0);
	assert_int_equal(t.scheme, PART_GPT);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.disk_id, "33333333-3333-3333-3333-333333333333");
	const struct part *p = part_find(&t, 1);
	assert_int_equal(p->start, 2048 * 512ULL);
	assert_int_equal(p->size, 2048 * 512ULL);
	assert_string_equal(p->type, "0fc63daf-8483-4772-8e79-3d69d8477de4");
	assert_string_equal(p->name, "root");
	assert_int_equal(part_find(&t, 3)->start, 8192 * 512ULL);
	assert_null(part_find(&t, 2));
	part_table_free(&t);

	img[512 + 60] ^= 1; /* primary header damaged: the backup is used */
	assert_int_equal(parse(&t), 0);
	assert_int_equal(t.n, 2);
	part_table_free(&t);
	img[(SECTORS - 1) * 512ULL + 60] ^= 1; /* both damaged */
	assert_int_equal(parse(&t), -EINVAL);
	assert_non_null(strstr(err_msg(), "CRC32"));
	assert_non_null(strstr(err_msg(), "backup"));
}

static void gpt_bad_entries(void **state)
{
	struct part_table t;
	(void)state;
	make_gpt();
	img[2 * 512 + 33] ^= 1; /* entry array changed: its CRC no longer matches */
	img[(SECTORS - 33) * 512ULL + 33] ^= 1;
	assert_int_equal(parse(&t), -EINVAL);
	assert_non_null(strstr(err_msg(), "bad partition table"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(no_table, reset),
	    cmocka_unit_test_setup(mbr_logical, reset),
	    cmocka_unit_test_setup(mbr_bad, reset),
	    cmocka_unit_test_setup(gpt, reset),
	    cmocka_unit_test_setup(gpt_bad_entries, reset),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
