/*
 * The XFS reader's pure decoding: CRC32c, the directory name hash (against values xfs_db's `hash`
 * command printed), extent records (built by the bit layout xfs_format.h documents) and
 * superblock validation. Whole filesystems are tested by tests/system/test_fs_xfs*.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "fs/xfs_priv.h"
#include "util/endian.h"
#include "util/error.h"

static void crc32c_check_value(void **state)
{
	(void)state;
	assert_int_equal(xfs_crc32c("123456789", 9), 0xe3069283);
	assert_int_equal(xfs_crc32c("", 0), 0);
}

static void cksum_skips_its_field(void **state)
{
	uint8_t buf[64], copy[64];
	(void)state;
	for (int i = 0; i < 64; i++)
		buf[i] = (uint8_t)(i * 37 + 1);
	memcpy(copy, buf, sizeof(copy));
	memset(copy + 20, 0, 4);
	assert_int_equal(xfs_cksum(buf, 64, 20), xfs_crc32c(copy, 64));
	buf[20] ^= 0xff; /* the stored CRC's own bytes do not matter */
	assert_int_equal(xfs_cksum(buf, 64, 20), xfs_crc32c(copy, 64));
	buf[40] ^= 1;
	assert_int_not_equal(xfs_cksum(buf, 64, 20), xfs_crc32c(copy, 64));
}

static void hashname_matches_xfs_db(void **state)
{
	static const struct {
		const char *name;
		uint32_t hash; /* xfs_db -c 'hash NAME' (xfsprogs 6.1) */
	} v[] = {
	    {"a", 0x61},
	    {"ab", 0x30e2},
	    {"abc", 0x187163},
	    {"abcd", 0xc38b1e4},
	    {"abcde", 0x1c58f263},
	    {"lost+found", 0x21aa60c},
	    {"entry-00007-nnnnnnn", 0xc6f2e5fc},
	    {"vmlinuz-5.14.0-362.el9.x86_64", 0xf9b2f7ba},
	};
	char x255[256];
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_int_equal(xfs_da_hashname((const uint8_t *)v[i].name, strlen(v[i].name)),
				 v[i].hash);
	memset(x255, 'x', 255);
	assert_int_equal(xfs_da_hashname((const uint8_t *)x255, 255), 0xf0000000);
}

/* l0: flag(1) startoff(54) startblock high 9 bits; l1: startblock low 43 bits, count(21). */
static void encode(uint8_t rec[16], int flag, uint64_t off, uint64_t blk, uint64_t len)
{
	be64_put(rec, (uint64_t)flag << 63 | off << 9 | blk >> 43);
	be64_put(rec + 8, (blk & ((1ULL << 43) - 1)) << 21 | len);
}

static void extent_records(void **state)
{
	static const struct {
		int flag;
		uint64_t off, blk, len;
	} v[] = {
	    {0, 0, 24, 50},
	    {1, 12345, 0x123456789ULL, 7},
	    {0, (1ULL << 54) - 1, (1ULL << 52) - 1, (1ULL << 21) - 1},
	    {1, 1, 1ULL << 43, 1},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t rec[16];
		struct xfs_extent e;
		encode(rec, v[i].flag, v[i].off, v[i].blk, v[i].len);
		xfs_extent_decode(rec, &e);
		assert_int_equal(e.unwritten, v[i].flag);
		assert_int_equal(e.off, v[i].off);
		assert_int_equal(e.fsb, v[i].blk);
		assert_int_equal(e.len, v[i].len);
	}
}

/* A minimal valid v4 superblock: 4 KiB blocks, 2 groups of 500 blocks, 256-byte inodes. */
static void sb_v4(uint8_t *b)
{
	memset(b, 0, 512);
	be32_put(b, 0x58465342);
	be32_put(b + 4, 4096);
	be64_put(b + 8, 1000);
	be64_put(b + 56, 128);
	be32_put(b + 84, 500);
	be32_put(b + 88, 2);
	be16_put(b + 100, 0x3004); /* v4, DIRV2, EXTFLG */
	be16_put(b + 102, 512);
	be16_put(b + 104, 256);
	be16_put(b + 106, 16);
	b[120] = 12;
	b[121] = 9;
	b[122] = 8;
	b[123] = 4;
	b[124] = 9;
}

/* The same as v5: 512-byte inodes, CRC. */
static void sb_v5(uint8_t *b, uint32_t incompat)
{
	sb_v4(b);
	be16_put(b + 100, 0xb4a5);
	be16_put(b + 104, 512);
	be16_put(b + 106, 8);
	b[122] = 9;
	b[123] = 3;
	be32_put(b + 216, incompat);
	memset(b + 32, 0xaa, 16);  /* uuid */
	memset(b + 248, 0xbb, 16); /* meta_uuid */
	uint32_t crc = xfs_cksum(b, 512, 224);
	memcpy(b + 224, &crc, 4); /* stored little-endian */
}

static int decode(const uint8_t *b, uint64_t fslen, struct xfs_sb *sb)
{
	err_clear();
	return xfs_sb_decode(b, 512, fslen, "t.img", sb);
}

static void expect_refused(const uint8_t *b, uint64_t fslen, const char *words)
{
	struct xfs_sb sb;
	assert_true(decode(b, fslen, &sb) < 0);
	if (!strstr(err_msg(), words))
		fail_msg("'%s' does not say '%s'", err_msg(), words);
	assert_non_null(strstr(err_msg(), "t.img: xfs: "));
}

static void superblock_v4(void **state)
{
	uint8_t b[512];
	struct xfs_sb sb;
	(void)state;
	sb_v4(b);
	assert_int_equal(decode(b, 1000 * 4096, &sb), 0);
	assert_false(sb.v5);
	assert_int_equal(sb.agblocks, 500);
	assert_int_equal(sb.rootino, 128);
	expect_refused(b, 999 * 4096, "larger than the 4091904 bytes");
	b[0] = 'Y';
	expect_refused(b, 1 << 30, "bad superblock magic");

	static const struct {
		size_t off;
		int width;
		uint64_t val;
		const char *words;
	} bad[] = {
	    {4, 4, 4000, "impossible block size"},
	    {120, 1, 17, "impossible block size"},
	    {121, 1, 13, "impossible sector size"},
	    {104, 2, 128, "impossible inode size"},
	    {106, 2, 8, "impossible inodes per block"},
	    {124, 1, 10, "impossible allocation group size"},
	    {84, 4, 0, "impossible allocation group size"},
	    {88, 4, 0, "impossible allocation group count"},
	    {8, 8, 1001, "impossible block count"},
	    {8, 8, 500, "impossible block count"},
	    {192, 1, 5, "impossible directory block size"},
	    {100, 2, 0x3006, "unsupported superblock version 6"},
	    {100, 2, 0x1004, "version 1 directories"},
	    {100, 2, 0x2004, "unwritten flag"},
	    {100, 2, 0x3204, "shared"},
	    {100, 2, 0x7004, "ascii-ci"},
	    {16, 8, 1, "realtime subvolume"},
	    {126, 1, 1, "mkfs did not finish"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sb_v4(b);
		if (bad[i].width == 1)
			b[bad[i].off] = (uint8_t)bad[i].val;
		else if (bad[i].width == 2)
			be16_put(b + bad[i].off, (uint16_t)bad[i].val);
		else if (bad[i].width == 4)
			be32_put(b + bad[i].off, (uint32_t)bad[i].val);
		else
			be64_put(b + bad[i].off, bad[i].val);
		expect_refused(b, 1 << 30, bad[i].words);
	}
	/* features2: known bits (ftype) read, unknown ones refused; bad_features2 counts too. */
	sb_v4(b);
	be16_put(b + 100, 0xb004);
	be32_put(b + 200, 0x200);
	assert_int_equal(decode(b, 1 << 30, &sb), 0);
	assert_true(sb.ftype);
	be32_put(b + 204, 0x4000);
	expect_refused(b, 1 << 30, "unknown v4 feature 0x4000");
}

static void superblock_v5(void **state)
{
	uint8_t b[512];
	struct xfs_sb sb;
	(void)state;
	sb_v5(b, 0x1 | 0x8 | 0x20);
	assert_int_equal(decode(b, 1 << 30, &sb), 0);
	assert_true(sb.v5 && sb.ftype && sb.bigtime && sb.nrext64);
	assert_int_equal(sb.meta_uuid[0], 0xaa); /* no META_UUID: the user-visible one */
	sb_v5(b, 0x1 | 0x4);
	assert_int_equal(decode(b, 1 << 30, &sb), 0);
	assert_int_equal(sb.meta_uuid[0], 0xbb);
	sb_v5(b, 0x1);
	b[300] ^= 1; /* inside the sector, past the fields: only the CRC notices */
	expect_refused(b, 1 << 30, "bad superblock CRC");
	sb_v5(b, 0x1 | 0x400);
	expect_refused(b, 1 << 30, "unknown incompat feature 0x400");
	sb_v5(b, 0x1 | 0x10);
	expect_refused(b, 1 << 30, "needing xfs_repair");
	sb_v5(b, 0x1);
	be16_put(b + 104, 256); /* v5 inodes are at least 512 bytes */
	be16_put(b + 106, 16);
	b[122] = 8;
	b[123] = 4;
	uint32_t crc = xfs_cksum(b, 512, 224);
	memcpy(b + 224, &crc, 4);
	expect_refused(b, 1 << 30, "impossible inode size");
	/* Pending log items: readable, with a warning later. */
	sb_v5(b, 0x1);
	be32_put(b + 220, 1);
	crc = xfs_cksum(b, 512, 224);
	memcpy(b + 224, &crc, 4);
	assert_int_equal(decode(b, 1 << 30, &sb), 0);
	assert_int_equal(sb.log_incompat, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(crc32c_check_value),      cmocka_unit_test(cksum_skips_its_field),
	    cmocka_unit_test(hashname_matches_xfs_db), cmocka_unit_test(extent_records),
	    cmocka_unit_test(superblock_v4),	       cmocka_unit_test(superblock_v5),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
