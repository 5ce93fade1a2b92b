/* Parallels image decoding: header, BAT and format extension, on bytes (no I/O). */
#include "block/parallels.h"
#include "util/endian.h"
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char magic_v1[16] = "WithoutFreeSpace";
static const char magic_v2[16] = "WithouFreSpacExt";

static int magic_version(const uint8_t *buf)
{
	if (!memcmp(buf, magic_v1, 16))
		return 1;
	if (!memcmp(buf, magic_v2, 16))
		return 2;
	return 0;
}

bool prl_magic(const uint8_t *buf, size_t len)
{
	return len >= PRL_HEADER_SIZE && magic_version(buf) && le32_get(buf + 16) == 2;
}

static void header_decode(const uint8_t *buf, struct prl_header *h)
{
	memset(h, 0, sizeof(*h));
	h->version = magic_version(buf);
	h->heads = le32_get(buf + 20);
	h->cylinders = le32_get(buf + 24);
	h->tracks = le32_get(buf + 28);
	h->bat_entries = le32_get(buf + 32);
	h->nb_sectors = le64_get(buf + 36);
	if (h->version == 1) /* v1 has a 32-bit size; the upper half is not defined */
		h->nb_sectors &= 0xffffffffu;
	h->inuse = le32_get(buf + 44);
	h->data_off = le32_get(buf + 48);
	h->flags = le32_get(buf + 52);
	h->ext_off = le64_get(buf + 56);
}

/* The cluster size, in sectors: a v2 BAT counts in clusters, which ploop makes a power of two;
 * v1 images of old Parallels products also have 63-sector and 252 KiB clusters. */
static int check_cluster(const struct prl_header *h, const char *name)
{
	if (h->tracks == 0)
		return err_set(EINVAL, "%s: parallels header gives a cluster size of 0 sectors",
			       name);
	if (h->tracks > PRL_MAX_CLUSTER / PRL_SECTOR)
		return err_set(EINVAL,
			       "%s: parallels header gives a cluster size of %u sectors (more "
			       "than 64 MiB)",
			       name, h->tracks);
	if (h->version == 2 && (h->tracks & (h->tracks - 1)))
		return err_set(EINVAL,
			       "%s: parallels header gives a cluster size of %u sectors, not a "
			       "power of two",
			       name, h->tracks);
	return 0;
}

static int check_layout(struct prl_header *h, uint64_t file_size, const char *name)
{
	if ((uint64_t)h->bat_entries * 4 > PRL_MAX_BAT_BYTES)
		return err_set(EINVAL,
			       "%s: parallels header gives %u BAT entries (a BAT larger than "
			       "256 MiB)",
			       name, h->bat_entries);
	h->bat_end = PRL_HEADER_SIZE + (uint64_t)h->bat_entries * 4;
	if (h->bat_end > file_size)
		return err_set(EINVAL,
			       "%s: the BAT (%u entries) runs past the end of the file (%llu "
			       "bytes)",
			       name, h->bat_entries, (unsigned long long)file_size);
	if (h->nb_sectors > (uint64_t)h->bat_entries * h->tracks)
		return err_set(EINVAL,
			       "%s: a disk of %llu sectors needs more than its %u BAT entries of "
			       "%u sectors",
			       name, (unsigned long long)h->nb_sectors, h->bat_entries, h->tracks);
	if (h->data_off == 0)
		h->data_start = (h->bat_end + PRL_SECTOR - 1) & ~(uint64_t)(PRL_SECTOR - 1);
	else
		h->data_start = (uint64_t)h->data_off * PRL_SECTOR;
	if (h->data_start < h->bat_end)
		return err_set(EINVAL,
			       "%s: the data area (sector %u) starts inside the BAT (which ends "
			       "at byte %llu)",
			       name, h->data_off, (unsigned long long)h->bat_end);
	return 0;
}

static int check_ext(const struct prl_header *h, uint64_t file_size, const char *name)
{
	if (!h->ext_off)
		return 0;
	if (h->ext_off > (UINT64_MAX >> 10) || h->ext_off * PRL_SECTOR < h->data_start)
		return err_set(EINVAL,
			       "%s: the format extension (sector %llu) lies inside the header or "
			       "BAT",
			       name, (unsigned long long)h->ext_off);
	if (h->ext_off * PRL_SECTOR > file_size || h->cluster > file_size - h->ext_off * PRL_SECTOR)
		return err_set(EINVAL,
			       "%s: the format extension (sector %llu) runs past the end of the "
			       "file (%llu bytes)",
			       name, (unsigned long long)h->ext_off, (unsigned long long)file_size);
	return 0;
}

int prl_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, const char *name,
		     struct prl_header *h)
{
	int ret;

	if (len < PRL_HEADER_SIZE || !magic_version(buf))
		return err_set(EINVAL,
			       "%s: not a parallels image (no WithoutFreeSpace or "
			       "WithouFreSpacExt magic)",
			       name);
	if (file_size < PRL_HEADER_SIZE)
		return err_set(EINVAL,
			       "%s: the file (%llu bytes) is shorter than a parallels header", name,
			       (unsigned long long)file_size);
	header_decode(buf, h);
	if (le32_get(buf + 16) != 2)
		return err_set(EINVAL, "%s: parallels header version %u (only 2 exists)", name,
			       le32_get(buf + 16));
	ret = check_cluster(h, name);
	if (ret < 0)
		return ret;
	h->cluster = h->tracks * PRL_SECTOR;
	ret = check_layout(h, file_size, name);
	if (ret == 0)
		ret = check_ext(h, file_size, name);
	if (ret == 0 && (h->flags & PRL_FLAG_FMT_CONVERT))
		ret = err_set(EINVAL,
			      "%s: a conversion between parallels format versions was "
			      "interrupted (flags 0x%x): the BAT is half rewritten",
			      name, h->flags);
	return ret;
}

int prl_bat_validate(const struct prl_header *h, const uint32_t *bat, uint64_t file_size,
		     const char *name)
{
	for (uint32_t i = 0; i < h->bat_entries; i++) {
		uint64_t off = prl_entry_offset(h, bat[i]);
		if (!off)
			continue;
		if (off < h->data_start)
			return err_set(EINVAL,
				       "%s: BAT entry %u points at byte %llu, inside the header "
				       "or BAT",
				       name, i, (unsigned long long)off);
		if (off >= file_size)
			return err_set(EINVAL,
				       "%s: BAT entry %u points at byte %llu, past the end of "
				       "the file (%llu bytes)",
				       name, i, (unsigned long long)off,
				       (unsigned long long)file_size);
	}
	return 0;
}

uint64_t prl_lookup(const struct prl_header *h, const uint32_t *bat, uint64_t off, uint64_t max,
		    uint64_t *len)
{
	uint64_t cl = off / h->cluster, in = off % h->cluster;
	uint64_t base = cl < h->bat_entries ? prl_entry_offset(h, bat[cl]) : 0;
	uint64_t n = h->cluster - in;

	/* Following clusters continue the extent while they are unallocated too, or allocated
	 * right after it in the file (one read then covers them). */
	while (n < max) {
		if (++cl >= h->bat_entries) {
			if (!base)
				n = max; /* nothing past the BAT is mapped */
			break;
		}
		uint64_t next = prl_entry_offset(h, bat[cl]);
		if (base ? next != base + (n + in) : next != 0)
			break;
		n += h->cluster;
	}
	*len = n < max ? n : max;
	return base ? base + in : 0;
}

/* ext_parse's failure: a message for check; the extension is then ignored. */
static void ext_bad(struct prl_ext *ext, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ext_bad(struct prl_ext *ext, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ext->bad, sizeof(ext->bad), fmt, ap);
	va_end(ap);
}

static bool ext_add(struct prl_ext *ext, uint64_t off)
{
	if (ext->n == PRL_EXT_MAX_CLUSTERS) {
		ext_bad(ext, "more than %d clusters in dirty bitmaps", PRL_EXT_MAX_CLUSTERS);
		return false;
	}
	ext->clusters[ext->n++] = off;
	return true;
}

/* A dirty bitmap: size, id[16], granularity, l1_size, then l1_size 64-bit sector offsets (0 and
 * 1 stand for all-clear and all-set clusters and occupy nothing). */
static bool ext_bitmap(const struct prl_header *h, const uint8_t *p, uint32_t size,
		       uint64_t file_size, struct prl_ext *ext)
{
	if (size < 32) {
		ext_bad(ext, "a dirty bitmap feature of %u bytes is too short", size);
		return false;
	}
	uint32_t l1_size = le32_get(p + 28);
	if ((uint64_t)l1_size * 8 > size - 32) {
		ext_bad(ext, "a dirty bitmap table of %u entries overruns its feature", l1_size);
		return false;
	}
	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t v = le64_get(p + 32 + 8 * (size_t)i);
		if (v <= 1)
			continue;
		if (v > (UINT64_MAX >> 10) || v * PRL_SECTOR < h->data_start ||
		    v * PRL_SECTOR >= file_size) {
			ext_bad(ext,
				"a dirty bitmap cluster at sector %llu lies outside the data "
				"area",
				(unsigned long long)v);
			return false;
		}
		if (!ext_add(ext, v * PRL_SECTOR))
			return false;
	}
	ext->bitmaps++;
	return true;
}

void prl_ext_parse(const struct prl_header *h, const uint8_t *buf, uint64_t file_size,
		   struct prl_ext *ext)
{
	size_t pos = 24, end = h->cluster;

	memset(ext, 0, sizeof(*ext));
	ext->clusters[ext->n++] = h->ext_off * PRL_SECTOR;
	if (le64_get(buf) != PRL_EXT_MAGIC) {
		ext_bad(ext, "wrong magic 0x%llx", (unsigned long long)le64_get(buf));
		return;
	}
	/* Features: magic, flags, data size, padding, data; each starts 8-byte aligned. */
	for (;;) {
		if (end - pos < 24) {
			ext_bad(ext, "features run past the extension cluster (at byte %zu)", pos);
			return;
		}
		uint64_t magic = le64_get(buf + pos);
		uint32_t size = le32_get(buf + pos + 16);
		pos += 24;
		if (size > end - pos) {
			ext_bad(ext, "a feature of %u bytes runs past the extension cluster", size);
			return;
		}
		if (magic == 0)
			return; /* end of features */
		if (magic == PRL_EXT_DIRTY_BITMAP &&
		    !ext_bitmap(h, buf + pos, size, file_size, ext))
			return;
		/* Unknown features describe nothing a reader needs. */
		pos += ((size_t)size + 7) & ~(size_t)7;
		if (pos > end) {
			ext_bad(ext, "features run past the extension cluster (at byte %zu)", pos);
			return;
		}
	}
}
