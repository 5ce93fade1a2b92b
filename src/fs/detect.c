/*
 * Superblock signatures, as the filesystems' own on-disk format documents define them. Only the
 * magic, label and UUID are read; these are for listing, not for trusting.
 */
#include "fs/detect.h"
#include "block/block.h"
#include "fs/part.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int read_at(struct bdev *bs, uint64_t base, uint64_t len, uint64_t off, void *buf, size_t n)
{
	if (off > len || n > len - off)
		return 1; /* region too small to hold this superblock */
	return bdev_read(bs, base + off, buf, n);
}

static void uuid_str(const uint8_t *u, char *out)
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

/* Copy a fixed-size, possibly unterminated, label and drop trailing blanks. */
static void label_copy(char *dst, size_t dlen, const uint8_t *src, size_t slen)
{
	size_t n = 0;

	while (n < slen && n + 1 < dlen && src[n]) {
		dst[n] = (src[n] >= 0x20 && src[n] < 0x7f) ? (char)src[n] : '?';
		n++;
	}
	while (n && dst[n - 1] == ' ')
		n--;
	dst[n] = 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int detect_ext(const uint8_t *sb, struct fs_probe *out)
{
	if (sb[0x38] != 0x53 || sb[0x39] != 0xef)
		return 0;
	uint32_t compat = le32(sb + 0x5c), incompat = le32(sb + 0x60), ro = le32(sb + 0x64);
	/* ext4-only features: extents, 64bit, flex_bg, huge_file, gdt_csum, dir_nlink,
	 * extra_isize, metadata_csum. */
	if ((incompat & (0x40 | 0x80 | 0x200)) || (ro & (0x8 | 0x10 | 0x20 | 0x40 | 0x400)))
		strcpy(out->type, "ext4");
	else if (compat & 0x4)
		strcpy(out->type, "ext3");
	else
		strcpy(out->type, "ext2");
	label_copy(out->label, sizeof(out->label), sb + 0x78, 16);
	uuid_str(sb + 0x68, out->uuid);
	return 1;
}

static int detect_vfat(const uint8_t *bs, struct fs_probe *out)
{
	if (bs[510] != 0x55 || bs[511] != 0xaa || (bs[0] != 0xeb && bs[0] != 0xe9))
		return 0;
	const uint8_t *serial, *label;
	if (!memcmp(bs + 82, "FAT32", 5)) {
		serial = bs + 67;
		label = bs + 71;
	} else if (!memcmp(bs + 54, "FAT", 3)) {
		serial = bs + 39;
		label = bs + 43;
	} else {
		return 0;
	}
	strcpy(out->type, "vfat");
	label_copy(out->label, sizeof(out->label), label, 11);
	if (!strcmp(out->label, "NO NAME"))
		out->label[0] = 0;
	snprintf(out->uuid, sizeof(out->uuid), "%02X%02X-%02X%02X", serial[3], serial[2], serial[1],
		 serial[0]);
	return 1;
}

static void lvm_uuid(const uint8_t *u, char *out)
{
	/* LVM prints its 32-character ids in groups of 6-4-4-4-4-4-6. */
	static const int groups[] = {6, 4, 4, 4, 4, 4, 6};
	size_t k = 0;
	for (int g = 0, i = 0; g < 7; g++) {
		if (g)
			out[k++] = '-';
		for (int j = 0; j < groups[g]; j++, i++)
			out[k++] = (u[i] >= 0x20 && u[i] < 0x7f) ? (char)u[i] : '?';
	}
	out[k] = 0;
}

int fs_type_is_ext(const char *type)
{
	return !strcmp(type, "ext2") || !strcmp(type, "ext3") || !strcmp(type, "ext4");
}

int fs_detect(struct bdev *bs, uint64_t off, uint64_t len, struct fs_probe *out)
{
	uint8_t buf[4096];
	int ret;

	memset(out, 0, sizeof(*out));
	/* ext2/3/4: superblock at 1024, magic 0xEF53 at 0x38. */
	if ((ret = read_at(bs, off, len, 1024, buf, 1024)) < 0)
		return ret;
	if (ret == 0 && detect_ext(buf, out))
		return 0;
	if ((ret = read_at(bs, off, len, 0, buf, 4096)) < 0)
		return ret;
	if (ret == 0) {
		if (!memcmp(buf, "XFSB", 4)) {
			strcpy(out->type, "xfs");
			uuid_str(buf + 32, out->uuid);
			label_copy(out->label, sizeof(out->label), buf + 108, 12);
			return 0;
		}
		if (!memcmp(buf + 4086, "SWAPSPACE2", 10) ||
		    !memcmp(buf + 4086, "SWAP-SPACE", 10)) {
			strcpy(out->type, "swap");
			uuid_str(buf + 1024 + 12, out->uuid);
			label_copy(out->label, sizeof(out->label), buf + 1024 + 28, 16);
			return 0;
		}
		/* LVM2 label: "LABELONE" in one of the first four sectors, type "LVM2 001". */
		for (int s = 0; s < 4; s++) {
			const uint8_t *l = buf + 512 * s;
			if (!memcmp(l, "LABELONE", 8) && !memcmp(l + 24, "LVM2 001", 8)) {
				uint32_t hoff = le32(l + 20);
				strcpy(out->type, "LVM2_member");
				if (hoff >= 32 && hoff <= 512 - 32 &&
				    512 * s + hoff + 32 <= sizeof(buf))
					lvm_uuid(l + hoff, out->uuid);
				return 0;
			}
		}
		if (detect_vfat(buf, out))
			return 0;
	}
	/* btrfs: superblock at 64 KiB, magic "_BHRfS_M" at 0x40, fsid at 0x20, label at 0x12b. */
	if ((ret = read_at(bs, off, len, 65536, buf, 4096)) < 0)
		return ret;
	if (ret == 0 && !memcmp(buf + 0x40, "_BHRfS_M", 8)) {
		strcpy(out->type, "btrfs");
		uuid_str(buf + 0x20, out->uuid);
		label_copy(out->label, sizeof(out->label), buf + 0x12b, 256);
	}
	return 0;
}
