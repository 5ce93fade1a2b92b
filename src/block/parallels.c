/*
 * The parallels driver (qemu-img's name): one Parallels expandable image, an OpenVZ ploop
 * delta, read-only. Clusters the BAT does not map read as zeroes and are reported unallocated,
 * as QEMU reports them; a ploop disk (ploop.c) stacks these images.
 *
 * An image whose in-use flag is set may be open in a running container: it is opened only with
 * BDEV_O_FORCE_SHARE (-U), and then with a warning for the caller to show.
 */
#include "block/block.h"
#include "block/parallels.h"
#include "util/endian.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct prl {
	struct prl_header h;
	uint32_t *bat; /* host byte order */
	uint64_t file_size;
	struct prl_ext ext;
};

static int parallels_probe(const uint8_t *buf, size_t len)
{
	return prl_magic(buf, len) ? 100 : 0;
}

static int file_size(struct bdev *bs, uint64_t *size)
{
	struct stat st;

	if (fstat(bs->fd, &st) < 0)
		return err_sys(errno, "%s: could not stat", bs->filename);
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(bs->fd, 0, SEEK_END);
		if (end < 0)
			return err_sys(errno, "%s: could not find the device size", bs->filename);
		*size = (uint64_t)end;
	} else {
		*size = (uint64_t)st.st_size;
	}
	return 0;
}

/* In use: a writer (the ploop kernel driver, Parallels, QEMU) has it open, or did not close it. */
static int check_in_use(struct bdev *bs, const struct prl_header *h)
{
	if (h->inuse != PRL_INUSE_MAGIC || (bs->flags & BDEV_O_CHECK))
		return 0; /* check reports the flag itself */
	if (!(bs->flags & BDEV_O_FORCE_SHARE))
		return err_set(EBUSY,
			       "%s: image is marked in use (the container may be running); stop "
			       "it, or read it anyway with -U (--force-share)",
			       bs->filename);
	if (asprintf(&bs->warning,
		     "%s: image is marked in use (the container may be running); reading it "
		     "anyway",
		     bs->filename) < 0)
		bs->warning = NULL;
	return 0;
}

static int read_bat(struct bdev *bs, struct prl *s)
{
	size_t n = s->h.bat_entries;
	int ret;

	s->bat = malloc(n ? n * sizeof(*s->bat) : 1);
	if (!s->bat)
		return err_set(ENOMEM, "%s: out of memory for a BAT of %zu entries", bs->filename,
			       n);
	ret = bdev_file_pread(bs, s->bat, n * sizeof(*s->bat), PRL_HEADER_SIZE);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++)
		s->bat[i] = le32_get(&s->bat[i]);
	/* Opened for check, bad entries are counted there rather than refused here; reads
	 * through them stay inside the file or meet its end (zeroes). */
	if (bs->flags & BDEV_O_CHECK)
		return 0;
	return prl_bat_validate(&s->h, s->bat, s->file_size, bs->filename);
}

static int read_ext(struct bdev *bs, struct prl *s)
{
	uint8_t *buf;
	int ret;

	if (!s->h.ext_off)
		return 0;
	buf = malloc(s->h.cluster);
	if (!buf)
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	ret = bdev_file_pread(bs, buf, s->h.cluster, s->h.ext_off * PRL_SECTOR);
	if (ret == 0)
		prl_ext_parse(&s->h, buf, s->file_size, &s->ext);
	free(buf);
	return ret;
}

static void parallels_close(struct bdev *bs)
{
	struct prl *s = bs->opaque;

	if (s)
		free(s->bat);
	free(s);
	bs->opaque = NULL;
}

static int parallels_open(struct bdev *bs)
{
	uint8_t hdr[PRL_HEADER_SIZE];
	struct prl *s;
	int ret;

	if (!bs->read_only)
		return err_set(EROFS,
			       "%s: parallels images are read-only in ligero (convert to qcow2 "
			       "to change one)",
			       bs->filename);
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	bs->opaque = s;
	ret = file_size(bs, &s->file_size);
	if (ret == 0)
		ret = bdev_file_pread(bs, hdr, sizeof(hdr), 0);
	if (ret == 0)
		ret = prl_header_parse(hdr, sizeof(hdr), s->file_size, bs->filename, &s->h);
	if (ret == 0)
		ret = check_in_use(bs, &s->h);
	if (ret == 0)
		ret = read_bat(bs, s);
	if (ret == 0)
		ret = read_ext(bs, s);
	if (ret < 0) {
		parallels_close(bs);
		return ret;
	}
	bs->size = s->h.nb_sectors * PRL_SECTOR;
	bs->align = s->h.cluster;
	return 0;
}

static int parallels_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	struct prl *s = bs->opaque;
	uint8_t *p = buf;

	while (len) {
		uint64_t n, host = prl_lookup(&s->h, s->bat, off, len, &n);
		if (host) {
			int ret = bdev_file_pread(bs, p, n, host);
			if (ret < 0)
				return ret;
		} else {
			memset(p, 0, n);
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int parallels_write(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	return err_set(EROFS, "%s: parallels images are read-only in ligero", bs->filename);
}

static int parallels_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
	return parallels_write(bs, off, NULL, 0);
}

static int parallels_block_status(struct bdev *bs, uint64_t off, uint64_t len,
				  struct bdev_extent *ext)
{
	struct prl *s = bs->opaque;
	uint64_t n, host = prl_lookup(&s->h, s->bat, off, len, &n);

	ext->length = n;
	ext->flags = host ? BDEV_ST_ALLOCATED | BDEV_ST_DATA | BDEV_ST_OFFSET : 0;
	ext->host_offset = host;
	return 0;
}

static int parallels_check(struct bdev *bs, int fix, struct bdev_check_result *res)
{
	struct prl *s = bs->opaque;

	if (fix)
		return err_set(EROFS,
			       "%s: parallels images are read-only in ligero: nothing is "
			       "repaired",
			       bs->filename);
	return prl_check(&s->h, s->bat, &s->ext, s->file_size, res);
}

const struct bdev_driver bdev_parallels_driver = {
    .name = "parallels",
    .probe = parallels_probe,
    .open = parallels_open,
    .close = parallels_close,
    .read = parallels_read,
    .write = parallels_write,
    .write_zeroes = parallels_write_zeroes,
    .block_status = parallels_block_status,
    .check = parallels_check,
};
