/*
 * The XFS superblock, decoded and checked before anything is computed from it: sizes against
 * their logs and XFS's limits, allocation group geometry against the block count and the
 * region that holds the filesystem, features (refused by name when the reader does not know
 * them), and on v5 its CRC32c, which this file also provides for the rest of the reader.
 */
#include "fs/xfs_priv.h"
#include "util/endian.h"
#include "util/error.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define XFS_SB_MAGIC 0x58465342 /* "XFSB" */

/* ---- CRC32c ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & -(c & 1)); /* Castagnoli, reflected */
		crc_table[i] = c;
	}
}

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t xfs_crc32c(const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_update(~0u, buf, len);
}

uint32_t xfs_cksum(const uint8_t *buf, size_t len, size_t crcoff)
{
	static const uint8_t zero[4];
	uint32_t crc = ~0u;

	pthread_once(&crc_once, crc_init);
	crc = crc_update(crc, buf, crcoff);
	crc = crc_update(crc, zero, 4);
	crc = crc_update(crc, buf + crcoff + 4, len - crcoff - 4);
	return ~crc;
}

/* ---- superblock ---- */

/* The superblock field offsets (struct xfs_dsb). */
enum {
	SB_BLOCKSIZE = 4,
	SB_DBLOCKS = 8,
	SB_RBLOCKS = 16,
	SB_REXTENTS = 24,
	SB_UUID = 32,
	SB_ROOTINO = 56,
	SB_AGBLOCKS = 84,
	SB_AGCOUNT = 88,
	SB_VERSIONNUM = 100,
	SB_SECTSIZE = 102,
	SB_INODESIZE = 104,
	SB_INOPBLOCK = 106,
	SB_BLOCKLOG = 120,
	SB_SECTLOG = 121,
	SB_INODELOG = 122,
	SB_INOPBLOG = 123,
	SB_AGBLKLOG = 124,
	SB_INPROGRESS = 126,
	SB_DIRBLKLOG = 192,
	SB_FEATURES2 = 200,
	SB_BAD_FEATURES2 = 204,
	SB_FEAT_INCOMPAT = 216,
	SB_FEAT_LOG_INCOMPAT = 220,
	SB_CRC = 224,
	SB_META_UUID = 248,
};

/* versionnum bits (v4) and incompat bits (v5) the reader knows. */
#define V_SHAREDBIT    0x0200
#define V_EXTFLGBIT    0x1000
#define V_DIRV2BIT     0x2000
#define V_BORGBIT      0x4000
#define V_MOREBITSBIT  0x8000
#define F2_LAZYSBCOUNT 0x02
#define F2_ATTR2       0x08
#define F2_PROJID32    0x80
#define F2_FTYPE       0x200
#define IC_FTYPE       0x01
#define IC_SPINODES    0x02
#define IC_META_UUID   0x04
#define IC_BIGTIME     0x08
#define IC_NEEDSREPAIR 0x10
#define IC_NREXT64     0x20
#define IC_EXCHRANGE   0x40
#define IC_PARENT      0x80

static bool is_pow2_log(uint64_t v, unsigned log)
{
	return log < 64 && v == (1ULL << log);
}

static unsigned log2_ceil(uint64_t v)
{
	unsigned l = 0;

	while (l < 64 && (1ULL << l) < v)
		l++;
	return l;
}

static int sb_features(const uint8_t *b, const char *name, struct xfs_sb *sb)
{
	uint16_t vn = be16_get(b + SB_VERSIONNUM);

	if (vn & V_BORGBIT)
		return err_set(ENOTSUP,
			       "%s: xfs: unsupported feature: ascii-ci (case-insensitive "
			       "names)",
			       name);
	if (!sb->v5) {
		uint32_t f2 = be32_get(b + SB_FEATURES2) | be32_get(b + SB_BAD_FEATURES2);
		uint32_t known = F2_LAZYSBCOUNT | F2_ATTR2 | F2_PROJID32 | F2_FTYPE;
		if (!(vn & V_DIRV2BIT))
			return err_set(ENOTSUP,
				       "%s: xfs: unsupported feature: version 1 directories", name);
		if (!(vn & V_EXTFLGBIT))
			return err_set(ENOTSUP,
				       "%s: xfs: unsupported feature: extents without the "
				       "unwritten flag",
				       name);
		if (vn & V_SHAREDBIT)
			return err_set(ENOTSUP, "%s: xfs: unsupported feature: shared filesystem",
				       name);
		if (!(vn & V_MOREBITSBIT))
			f2 = 0;
		if (f2 & ~known)
			return err_set(ENOTSUP, "%s: xfs: unknown v4 feature 0x%x", name,
				       f2 & ~known);
		sb->ftype = f2 & F2_FTYPE;
		return 0;
	}
	/* v5: compat and ro_compat features do not change how files read; incompat ones do. */
	uint32_t ic = be32_get(b + SB_FEAT_INCOMPAT);
	uint32_t known = IC_FTYPE | IC_SPINODES | IC_META_UUID | IC_BIGTIME | IC_NREXT64 |
			 IC_EXCHRANGE | IC_PARENT;
	if (ic & IC_NEEDSREPAIR)
		return err_set(ENOTSUP, "%s: xfs: the filesystem is marked as needing xfs_repair",
			       name);
	if (ic & ~known)
		return err_set(ENOTSUP, "%s: xfs: unknown incompat feature 0x%x", name,
			       ic & ~known);
	sb->ftype = ic & IC_FTYPE;
	sb->bigtime = ic & IC_BIGTIME;
	sb->nrext64 = ic & IC_NREXT64;
	sb->log_incompat = be32_get(b + SB_FEAT_LOG_INCOMPAT);
	memcpy(sb->meta_uuid, b + ((ic & IC_META_UUID) ? SB_META_UUID : SB_UUID), 16);
	return 0;
}

/* Sizes and their logs must agree and stay in XFS's limits before anything is computed from
 * them. */
static int sb_geometry(const uint8_t *b, const char *name, struct xfs_sb *sb)
{
	const char *bad = NULL;

	sb->blocksize = be32_get(b + SB_BLOCKSIZE);
	sb->blocklog = b[SB_BLOCKLOG];
	sb->sectsize = be16_get(b + SB_SECTSIZE);
	sb->inodesize = be16_get(b + SB_INODESIZE);
	sb->inodelog = b[SB_INODELOG];
	sb->inopblog = b[SB_INOPBLOG];
	sb->agblklog = b[SB_AGBLKLOG];
	sb->dirblklog = b[SB_DIRBLKLOG];
	sb->agblocks = be32_get(b + SB_AGBLOCKS);
	sb->agcount = be32_get(b + SB_AGCOUNT);
	sb->dblocks = be64_get(b + SB_DBLOCKS);
	sb->rootino = be64_get(b + SB_ROOTINO);
	if (sb->blocklog < (sb->v5 ? 10 : 9) || sb->blocklog > 16 ||
	    !is_pow2_log(sb->blocksize, sb->blocklog))
		bad = "block size";
	else if (b[SB_SECTLOG] < 9 || b[SB_SECTLOG] > sb->blocklog ||
		 !is_pow2_log(sb->sectsize, b[SB_SECTLOG]))
		bad = "sector size";
	else if (sb->inodelog < (sb->v5 ? 9 : 8) || sb->inodelog > 11 ||
		 sb->inodelog > sb->blocklog || !is_pow2_log(sb->inodesize, sb->inodelog))
		bad = "inode size";
	else if (sb->inopblog != sb->blocklog - sb->inodelog ||
		 be16_get(b + SB_INOPBLOCK) != 1u << sb->inopblog)
		bad = "inodes per block";
	else if (sb->agblocks < 1 || sb->agblklog != log2_ceil(sb->agblocks) ||
		 sb->agblklog + sb->inopblog > 32)
		bad = "allocation group size";
	else if (sb->agcount < 1)
		bad = "allocation group count";
	else if (sb->dblocks > (uint64_t)sb->agcount * sb->agblocks ||
		 sb->dblocks <= (uint64_t)(sb->agcount - 1) * sb->agblocks)
		bad = "block count";
	else if (sb->blocklog + sb->dirblklog > 16)
		bad = "directory block size";
	if (bad)
		return err_set(EINVAL, "%s: xfs: bad superblock: impossible %s", name, bad);
	return 0;
}

int xfs_sb_decode(const uint8_t *b, size_t buflen, uint64_t fslen, const char *name,
		  struct xfs_sb *sb)
{
	int ret;

	memset(sb, 0, sizeof(*sb));
	if (buflen < 512 || be32_get(b) != XFS_SB_MAGIC)
		return err_set(EINVAL, "%s: xfs: bad superblock magic", name);
	unsigned version = be16_get(b + SB_VERSIONNUM) & 0xf;
	if (version != 4 && version != 5)
		return err_set(ENOTSUP, "%s: xfs: unsupported superblock version %u", name,
			       version);
	sb->v5 = version == 5;
	if ((ret = sb_geometry(b, name, sb)) < 0)
		return ret;
	if (sb->sectsize > buflen)
		return err_set(EINVAL, "%s: xfs: bad superblock: impossible sector size", name);
	if (sb->v5 && xfs_cksum(b, sb->sectsize, SB_CRC) != le32_get(b + SB_CRC))
		return err_set(EIO, "%s: xfs: bad superblock CRC (damaged superblock)", name);
	if ((ret = sb_features(b, name, sb)) < 0)
		return ret;
	if (be64_get(b + SB_RBLOCKS) || be64_get(b + SB_REXTENTS))
		return err_set(ENOTSUP, "%s: xfs: unsupported feature: realtime subvolume", name);
	if (b[SB_INPROGRESS])
		return err_set(EINVAL, "%s: xfs: mkfs did not finish making this filesystem", name);
	if (sb->dblocks > fslen >> sb->blocklog)
		return err_set(EINVAL,
			       "%s: xfs: the filesystem is %llu bytes, larger than the %llu "
			       "bytes that hold it (truncated image?)",
			       name, (unsigned long long)(sb->dblocks << sb->blocklog),
			       (unsigned long long)fslen);
	return 0;
}
