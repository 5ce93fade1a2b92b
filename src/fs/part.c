/*
 * MBR and GPT parsing. Tables come from untrusted disks: every offset is checked against the
 * disk size, logical partition chains are bounded, and GPT headers and entry arrays must match
 * their CRC32 (the backup header at the end of the disk is used when the primary is damaged).
 */
#include "fs/part.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SECTOR		512u
#define MAX_LOGICAL	128
#define GPT_MAX_ENTRIES 1024

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

const char *part_scheme_name(enum part_scheme s)
{
	return s == PART_MBR ? "mbr" : s == PART_GPT ? "gpt" : "none";
}

void part_guid_str(const uint8_t g[16], char *buf)
{
	snprintf(buf, 37, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", le32(g), le16(g + 4),
		 le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

void part_table_free(struct part_table *t)
{
	free(t->parts);
	memset(t, 0, sizeof(*t));
}

const struct part *part_find(const struct part_table *t, int num)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->parts[i].num == num)
			return &t->parts[i];
	return NULL;
}

static int add_part(struct part_table *t, const struct part *p)
{
	struct part *np = realloc(t->parts, (t->n + 1) * sizeof(*np));

	if (!np)
		return err_set(ENOMEM, "out of memory");
	t->parts = np;
	t->parts[t->n++] = *p;
	return 0;
}

static bool mbr_is_extended(uint8_t type)
{
	return type == 0x05 || type == 0x0f || type == 0x85;
}

/* Check that [lba, lba+count) sectors lies within the disk (or the container). */
static int check_extent(struct bdev *bs, int num, uint64_t lba, uint64_t count, uint64_t lo,
			uint64_t hi)
{
	if (count == 0 || lba < lo || lba > hi || count > hi - lba)
		return err_set(EINVAL,
			       "%s: bad partition table: partition %d (sectors %llu..+%llu) lies "
			       "outside the disk or its extended partition",
			       bs->filename, num, (unsigned long long)lba,
			       (unsigned long long)count);
	return 0;
}

static int read_sector(struct bdev *bs, uint64_t lba, uint8_t *buf)
{
	if (lba >= bs->size / SECTOR)
		return err_set(EINVAL,
			       "%s: bad partition table: sector %llu is past the end of the disk",
			       bs->filename, (unsigned long long)lba);
	return bdev_read(bs, lba * SECTOR, buf, SECTOR);
}

/* Walk the chain of extended boot records; logical partitions are numbered from 5. */
static int mbr_logical(struct bdev *bs, struct part_table *t, uint64_t ext_lba, uint64_t ext_len)
{
	uint8_t sec[SECTOR];
	uint64_t ebr = ext_lba;
	int num = 5;

	for (int i = 0; i < MAX_LOGICAL; i++) {
		int ret = read_sector(bs, ebr, sec);
		if (ret < 0)
			return ret;
		if (sec[510] != 0x55 || sec[511] != 0xaa)
			return err_set(
			    EINVAL,
			    "%s: bad partition table: extended boot record at sector %llu "
			    "has no signature",
			    bs->filename, (unsigned long long)ebr);
		const uint8_t *e0 = sec + 446, *e1 = sec + 462;
		if (e0[4]) {
			struct part p = {.num = num, .mbr_type = e0[4]};
			uint64_t lba = ebr + le32(e0 + 8), cnt = le32(e0 + 12);
			ret = check_extent(bs, num, lba, cnt, ext_lba, ext_lba + ext_len);
			if (ret < 0)
				return ret;
			p.start = lba * SECTOR;
			p.size = cnt * SECTOR;
			snprintf(p.type, sizeof(p.type), "0x%02x", p.mbr_type);
			if ((ret = add_part(t, &p)) < 0)
				return ret;
			num++;
		}
		if (!e1[4] || !mbr_is_extended(e1[4]))
			return 0;
		uint64_t next = ext_lba + le32(e1 + 8);
		if (next <= ebr || next >= ext_lba + ext_len)
			return err_set(EINVAL,
				       "%s: bad partition table: logical partition chain points "
				       "backwards or outside the extended partition",
				       bs->filename);
		ebr = next;
	}
	return err_set(EINVAL, "%s: bad partition table: more than %d logical partitions",
		       bs->filename, MAX_LOGICAL);
}

static int mbr_parse(struct bdev *bs, const uint8_t *sec, struct part_table *t)
{
	uint64_t disk = bs->size / SECTOR;
	uint64_t ext_lba = 0, ext_len = 0;
	int ret;

	t->scheme = PART_MBR;
	snprintf(t->disk_id, sizeof(t->disk_id), "0x%08x", le32(sec + 440));
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = sec + 446 + 16 * i;
		if (!e[4])
			continue;
		struct part p = {.num = i + 1, .mbr_type = e[4]};
		uint64_t lba = le32(e + 8), cnt = le32(e + 12);
		if ((ret = check_extent(bs, p.num, lba, cnt, 1, disk)) < 0)
			return ret;
		p.start = lba * SECTOR;
		p.size = cnt * SECTOR;
		snprintf(p.type, sizeof(p.type), "0x%02x", p.mbr_type);
		if (mbr_is_extended(e[4])) {
			if (ext_len)
				return err_set(EINVAL,
					       "%s: bad partition table: more than one extended "
					       "partition",
					       bs->filename);
			p.container = true;
			ext_lba = lba;
			ext_len = cnt;
		}
		if ((ret = add_part(t, &p)) < 0)
			return ret;
	}
	for (size_t i = 0; i < t->n; i++)
		for (size_t j = i + 1; j < t->n; j++) {
			const struct part *a = &t->parts[i], *b = &t->parts[j];
			if (a->start < b->start + b->size && b->start < a->start + a->size)
				return err_set(EINVAL,
					       "%s: bad partition table: partitions %d and %d "
					       "overlap",
					       bs->filename, a->num, b->num);
		}
	if (ext_len)
		return mbr_logical(bs, t, ext_lba, ext_len);
	return 0;
}

/* Read and verify one GPT header at lba and its entry array; -EINVAL if it is not valid. */
static int gpt_try(struct bdev *bs, uint64_t lba, struct part_table *t)
{
	uint8_t hdr[SECTOR];
	uint64_t disk = bs->size / SECTOR;
	int ret = read_sector(bs, lba, hdr);

	if (ret < 0)
		return ret;
	if (memcmp(hdr, "EFI PART", 8))
		return err_set(EINVAL, "%s: bad partition table: no GPT header at sector %llu",
			       bs->filename, (unsigned long long)lba);
	uint32_t hsize = le32(hdr + 12), hcrc = le32(hdr + 16);
	if (hsize < 92 || hsize > SECTOR)
		return err_set(EINVAL, "%s: bad partition table: GPT header size %u", bs->filename,
			       hsize);
	uint8_t tmp[SECTOR];
	memcpy(tmp, hdr, hsize);
	memset(tmp + 16, 0, 4);
	if (crc32(0, tmp, hsize) != hcrc)
		return err_set(EINVAL,
			       "%s: bad partition table: GPT header at sector %llu fails "
			       "its CRC32",
			       bs->filename, (unsigned long long)lba);
	uint64_t first = le64(hdr + 40), last = le64(hdr + 48), elba = le64(hdr + 72);
	uint32_t nent = le32(hdr + 80), esize = le32(hdr + 84), ecrc = le32(hdr + 88);
	if (esize < 128 || esize > 4096 || esize % 8 || nent > GPT_MAX_ENTRIES || last >= disk ||
	    first > last || elba >= disk || (uint64_t)nent * esize > (disk - elba) * SECTOR)
		return err_set(EINVAL,
			       "%s: bad partition table: GPT header at sector %llu has "
			       "impossible values",
			       bs->filename, (unsigned long long)lba);
	size_t alen = (size_t)nent * esize;
	uint8_t *arr = malloc(alen ? alen : 1);
	if (!arr)
		return err_set(ENOMEM, "out of memory");
	ret = bdev_read(bs, elba * SECTOR, arr, alen);
	if (ret == 0 && crc32(0, arr, (uInt)alen) != ecrc)
		ret = err_set(EINVAL,
			      "%s: bad partition table: GPT partition entries fail their "
			      "CRC32",
			      bs->filename);
	static const uint8_t zero[16];
	for (uint32_t i = 0; ret == 0 && i < nent; i++) {
		const uint8_t *e = arr + (size_t)i * esize;
		if (!memcmp(e, zero, 16))
			continue;
		struct part p = {.num = (int)i + 1};
		uint64_t s = le64(e + 32), end = le64(e + 40);
		if (s < first || end > last || end < s) {
			ret = err_set(EINVAL,
				      "%s: bad partition table: GPT partition %u (sectors "
				      "%llu..%llu) lies outside the usable area",
				      bs->filename, i + 1, (unsigned long long)s,
				      (unsigned long long)end);
			break;
		}
		p.start = s * SECTOR;
		p.size = (end - s + 1) * SECTOR;
		part_guid_str(e, p.type);
		part_guid_str(e + 16, p.uuid);
		/* The name is UTF-16LE; names are nearly always ASCII, anything else becomes '?'.
		 */
		size_t k = 0;
		for (int c = 0; c < 36 && k + 1 < sizeof(p.name); c++) {
			uint16_t ch = le16(e + 56 + 2 * c);
			if (!ch)
				break;
			p.name[k++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
		}
		ret = add_part(t, &p);
	}
	free(arr);
	if (ret == 0) {
		t->scheme = PART_GPT;
		part_guid_str(hdr + 56, t->disk_id);
	}
	return ret;
}

static int gpt_parse(struct bdev *bs, struct part_table *t)
{
	int ret = gpt_try(bs, 1, t);

	if (ret != -EINVAL)
		return ret;
	/* The primary is damaged: the backup header lives in the last sector. */
	char primary[512];
	snprintf(primary, sizeof(primary), "%s", err_msg());
	part_table_free(t);
	if (bs->size / SECTOR < 2 || gpt_try(bs, bs->size / SECTOR - 1, t) < 0) {
		part_table_free(t);
		return err_set(EINVAL, "%s (and the backup GPT header is not usable either)",
			       primary);
	}
	return 0;
}

/* A FAT boot sector also ends in 55 aa; a whole-disk FAT filesystem is not a partition table. */
static bool looks_like_fat(const uint8_t *sec)
{
	return (sec[0] == 0xeb || sec[0] == 0xe9) &&
	       (!memcmp(sec + 54, "FAT", 3) || !memcmp(sec + 82, "FAT32", 5));
}

int part_read(struct bdev *bs, struct part_table *out)
{
	uint8_t sec[SECTOR];
	int ret;

	memset(out, 0, sizeof(*out));
	if (bs->size < SECTOR)
		return 0;
	if ((ret = bdev_read(bs, 0, sec, SECTOR)) < 0)
		return ret;
	if (sec[510] != 0x55 || sec[511] != 0xaa || looks_like_fat(sec))
		return 0;
	bool protective = false;
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = sec + 446 + 16 * i;
		if (e[0] != 0 && e[0] != 0x80)
			return err_set(EINVAL,
				       "%s: bad partition table: entry %d has an invalid "
				       "boot flag 0x%02x",
				       bs->filename, i + 1, e[0]);
		if (e[4] == 0xee)
			protective = true;
	}
	ret = protective ? gpt_parse(bs, out) : mbr_parse(bs, sec, out);
	if (ret < 0)
		part_table_free(out);
	return ret;
}
