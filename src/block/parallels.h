/*
 * The Parallels expandable image (an OpenVZ ploop delta, qemu-img's "parallels"): decoding of
 * its header, block allocation table (BAT) and format extension, with no I/O, so that the
 * driver (ploop.c), the unit tests and the fuzzer run the same code on bytes.
 *
 * Layout (QEMU docs/interop/parallels.rst; ploop's include/ploop1_image.h), little-endian:
 *   0  magic[16]     "WithoutFreeSpace" (v1: BAT entries in sectors)
 *                    or "WithouFreSpacExt" (v2: BAT entries in clusters)
 *   16 version       2 for both (ploop calls it m_Type, PRL_IMAGE_COMPRESSED)
 *   20 heads, 24 cylinders (geometry, unused)
 *   28 tracks        cluster size in 512-byte sectors
 *   32 bat_entries   clusters of the disk = BAT entries
 *   36 nb_sectors    disk size in sectors (v1: the low 32 bits only)
 *   44 inuse         0x746F6E59 while a writer has the image open
 *   48 data_off      sector where the data area starts (0: right after the BAT)
 *   52 flags         bit 0 empty, bit 1 version conversion in progress
 *   56 ext_off       sector of the format extension cluster (0: none)
 *   64 BAT           bat_entries 32-bit entries; 0 = not allocated
 */
#ifndef LIGERO_BLOCK_PARALLELS_H
#define LIGERO_BLOCK_PARALLELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bdev_check_result;

#define PRL_HEADER_SIZE 64
#define PRL_SECTOR	512
#define PRL_INUSE_MAGIC 0x746F6E59u
/* flags: the conversion from v1 to v2 rewrites the BAT in place; interrupted, it is mixed. */
#define PRL_FLAG_EMPTY	     1u
#define PRL_FLAG_FMT_CONVERT 2u
/* Limits. ploop makes clusters of 32 KiB to 64 MiB; QEMU any multiple of 512 bytes. The BAT
 * is read whole: 256 MiB of it maps 64 TiB with 1 MiB clusters. */
#define PRL_MAX_CLUSTER	  (64u << 20)
#define PRL_MAX_BAT_BYTES (256u << 20)
/* The format extension: magic, then an MD5 of the rest of the cluster, then features. */
#define PRL_EXT_MAGIC	     0xAB234CEF23DCEA87ULL
#define PRL_EXT_DIRTY_BITMAP 0x20385FAE252CB34AULL
#define PRL_EXT_MAX_CLUSTERS 4096

struct prl_header {
	int version; /* 1 (BAT in sectors) or 2 (BAT in clusters) */
	uint32_t heads, cylinders;
	uint32_t tracks; /* cluster size in sectors */
	uint32_t bat_entries;
	uint64_t nb_sectors;
	uint32_t inuse;
	uint32_t data_off; /* as recorded; 0 = computed */
	uint32_t flags;
	uint64_t ext_off; /* sectors; 0 = no extension */
	/* derived */
	uint32_t cluster;    /* bytes */
	uint64_t bat_end;    /* byte after the last BAT entry */
	uint64_t data_start; /* byte where the data area starts */
};

/* True when the first bytes carry a Parallels magic and version 2. */
bool prl_magic(const uint8_t *buf, size_t len);

/* Decode and check the 64-byte header against the file's size. On a field that no valid image
 * has (cluster size, counts, a BAT or extension outside the file, data inside the BAT), returns
 * -EINVAL with one message naming name. */
int prl_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, const char *name,
		     struct prl_header *h);

/* The host byte offset a BAT entry points at (0 for an unallocated one). */
static inline uint64_t prl_entry_offset(const struct prl_header *h, uint32_t e)
{
	return (uint64_t)e * (h->version == 1 ? 1 : h->tracks) * PRL_SECTOR;
}

/* Check every entry of bat (host byte order) against the file: an entry pointing into the
 * header or BAT, or at or past the end of the file, gives -EINVAL and one message naming the
 * entry. */
int prl_bat_validate(const struct prl_header *h, const uint32_t *bat, uint64_t file_size,
		     const char *name);

/*
 * Where the extent at guest byte off (inside the disk) lies: returns the host byte offset of
 * off, or 0 when its cluster is not allocated, and sets *len (at most max) to the bytes from
 * off that continue the same way (unallocated, or allocated and contiguous in the file).
 */
uint64_t prl_lookup(const struct prl_header *h, const uint32_t *bat, uint64_t off, uint64_t max,
		    uint64_t *len);

/* What the format extension holds that occupies the file: its own cluster and the clusters of
 * dirty bitmaps (byte offsets). bad says why it could not be read (then it is ignored). */
struct prl_ext {
	uint64_t clusters[PRL_EXT_MAX_CLUSTERS];
	size_t n;
	int bitmaps;
	char bad[160];
};

/* Walk the extension cluster (h->cluster bytes read from ext_off). Never fails: a malformed
 * extension is described in ext->bad. The MD5 is not verified: nothing read depends on it. */
void prl_ext_parse(const struct prl_header *h, const uint8_t *buf, uint64_t file_size,
		   struct prl_ext *ext);

/*
 * The consistency check of a read-only image, counted the way qemu-img check counts a
 * parallels image: the in-use flag and BAT entries outside the file are corruptions, BAT
 * entries (and extension clusters) sharing host bytes are corruptions, space after the last
 * cluster is leaked. res must be zeroed; messages are appended to it.
 */
int prl_check(const struct prl_header *h, const uint32_t *bat, const struct prl_ext *ext,
	      uint64_t file_size, struct bdev_check_result *res);

#endif
