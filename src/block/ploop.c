/*
 * The ploop driver: an OpenVZ/Virtuozzo disk as its DiskDescriptor.xml describes it (the
 * directory holding it, or the file itself), read-only.
 *
 * The descriptor orders the disk's images from the top delta down to the base; each is a
 * parallels image (or, for a "Plain" base, a raw file) opened through the block layer as a
 * layer of its own (with its own lock and in-use check). A read of a range takes, piece by
 * piece, the first image from the top whose BAT maps it; ranges no image maps read as zeroes.
 * Block status names the image and offset that hold each extent, so map and convert see the
 * delta files themselves.
 */
#include "block/block.h"
#include "block/parallels.h"
#include "block/ploop_xml.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DESCRIPTOR "DiskDescriptor.xml"

struct ploop {
	struct ploop_desc d;
	struct bdev **layer; /* d.nchain of them, the top first */
	char *xml;	     /* the descriptor's path */
};

static bool contains(const uint8_t *buf, size_t len, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i + n <= len; i++)
		if (buf[i] == (uint8_t)s[0] && !memcmp(buf + i, s, n))
			return true;
	return false;
}

/* A descriptor starts with "<?xml" (or its root) and names its root within the first bytes. */
static int ploop_probe(const uint8_t *buf, size_t len)
{
	size_t i = 0;

	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
		i = 3; /* a UTF-8 byte order mark */
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	if (i >= len || buf[i] != '<')
		return 0;
	if (contains(buf, len, "<Parallels_disk_image") ||
	    contains(buf, len, "<Virtuozzo_disk_image"))
		return 100;
	return 0;
}

static bool ploop_probe_dir(int dirfd)
{
	struct stat st;

	return fstatat(dirfd, DESCRIPTOR, &st, 0) == 0 && S_ISREG(st.st_mode);
}

/* The descriptor's bytes (malloc'd, *len of them) from an open file. */
static int read_all(int fd, const char *name, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	size_t n = 0;

	if (fstat(fd, &st) < 0)
		return err_sys(errno, "%s: could not stat", name);
	if (!S_ISREG(st.st_mode) || st.st_size > PLOOP_XML_MAX)
		return err_set(EINVAL, "%s: not a disk descriptor (%s)", name,
			       S_ISREG(st.st_mode) ? "larger than 4 MiB" : "not a regular file");
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return err_set(ENOMEM, "%s: out of memory", name);
	while (n < (size_t)st.st_size) {
		ssize_t r = pread(fd, buf + n, (size_t)st.st_size - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(buf);
			return r < 0 ? err_sys(errno, "%s: could not read", name)
				     : err_set(EIO, "%s: shrank while being read", name);
		}
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

/*
 * Find and parse the descriptor: bs->fd is the directory holding it, or the file. A file that
 * probing took for a descriptor must also be named like one: a raw disk whose first sector a
 * guest filled with descriptor text must not make ligero read the host files it names.
 */
static int load_descriptor(struct bdev *bs, struct ploop *s)
{
	struct stat st;
	char *buf = NULL, *dir = NULL, *copy = strdup(bs->filename);
	size_t len = 0;
	int fd = bs->fd, ret;

	if (!copy || fstat(bs->fd, &st) < 0) {
		free(copy);
		return err_sys(copy ? errno : ENOMEM, "%s: could not stat", bs->filename);
	}
	if (S_ISDIR(st.st_mode)) {
		if (asprintf(&s->xml, "%s/%s", bs->filename, DESCRIPTOR) < 0)
			s->xml = NULL;
		dir = strdup(bs->filename);
		fd = openat(bs->fd, DESCRIPTOR, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ret = err_sys(errno, "%s/%s: could not open", bs->filename, DESCRIPTOR);
			goto out;
		}
	} else {
		s->xml = strdup(bs->filename);
		dir = strdup(dirname(copy));
		const char *base = strrchr(bs->filename, '/');
		if ((bs->flags & BDEV_O_PROBED) &&
		    strcmp(base ? base + 1 : bs->filename, DESCRIPTOR)) {
			ret = err_set(EPERM,
				      "%s: looks like a ploop %s but is not named so; open it "
				      "with -f ploop if it is one",
				      bs->filename, DESCRIPTOR);
			goto out;
		}
	}
	if (!s->xml || !dir) {
		ret = err_set(ENOMEM, "%s: out of memory", bs->filename);
		goto out;
	}
	ret = read_all(fd, s->xml, &buf, &len);
	if (ret == 0)
		ret = ploop_desc_parse(buf, len, s->xml, dir, &s->d);
out:
	if (fd != bs->fd && fd >= 0)
		close(fd);
	free(buf);
	free(dir);
	free(copy);
	return ret;
}

static int open_images(struct bdev *bs, struct ploop *s)
{
	int flags =
	    (bs->flags & (BDEV_O_FORCE_SHARE | BDEV_O_DIRECT | BDEV_O_CHECK)) | BDEV_O_NO_BACKING;
	struct stat st[BDEV_MAX_CHAIN];

	s->layer = calloc(s->d.nchain, sizeof(*s->layer));
	if (!s->layer)
		return err_set(ENOMEM, "%s: out of memory", s->xml);
	for (size_t i = 0; i < s->d.nchain; i++) {
		const struct ploop_image *img = &s->d.chain[i];
		/* ploop writes the disk's mode as every image's <Type>: over a Plain (raw) base,
		 * the deltas say Plain too, and are expandable images all the same. */
		const char *fmt = img->plain && i == s->d.nchain - 1 ? "raw" : "parallels";
		int ret = bdev_open(&s->layer[i], img->path, fmt, flags);
		if (ret < 0)
			return err_prefix(ret, "%s: image %s: ", s->xml, img->guid);
		if (fstat(s->layer[i]->fd, &st[i]) < 0)
			return err_sys(errno, "%s: could not stat", img->path);
		for (size_t j = 0; j < i; j++)
			if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino)
				return err_set(ELOOP, "%s: images %s and %s are the same file (%s)",
					       s->xml, s->d.chain[j].guid, img->guid, img->path);
		if (!bs->warning && s->layer[i]->warning &&
		    !(bs->warning = strdup(s->layer[i]->warning)))
			return err_set(ENOMEM, "%s: out of memory", s->xml);
	}
	return 0;
}

/* The top image makes the disk: its size is the descriptor's (rounded up to a cluster at
 * most); lower images may be smaller (grown since) and read as unmapped past their end. Every
 * expandable image has the descriptor's cluster size. */
static int check_sizes(struct ploop *s, uint64_t disk)
{
	const struct bdev *top = s->layer[0];
	uint64_t slack = top->align > 512 ? top->align : 512;

	if (top->size < disk || top->size - disk >= slack)
		return err_set(EINVAL,
			       "%s: %s is %llu bytes, but the descriptor's <Disk_size> says %llu "
			       "sectors (%llu bytes)",
			       s->xml, top->filename, (unsigned long long)top->size,
			       (unsigned long long)s->d.disk_sectors, (unsigned long long)disk);
	for (size_t i = 0; s->d.blocksize && i < s->d.nchain; i++) {
		const struct bdev *l = s->layer[i];
		if (l->drv == &bdev_parallels_driver && l->align != (uint64_t)s->d.blocksize * 512)
			return err_set(EINVAL,
				       "%s: %s has clusters of %u bytes, but the descriptor's "
				       "<Blocksize> is %u sectors",
				       s->xml, l->filename, l->align, s->d.blocksize);
	}
	return 0;
}

static void ploop_close(struct bdev *bs)
{
	struct ploop *s = bs->opaque;

	if (!s)
		return;
	for (size_t i = 0; s->layer && i < s->d.nchain; i++)
		bdev_close(s->layer[i]);
	free(s->layer);
	ploop_desc_free(&s->d);
	free(s->xml);
	free(s);
	bs->opaque = NULL;
}

static int ploop_open(struct bdev *bs)
{
	struct ploop *s;
	int ret;

	if (!bs->read_only)
		return err_set(EROFS,
			       "%s: ploop disks are read-only in ligero (convert to qcow2 to "
			       "change one)",
			       bs->filename);
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	bs->opaque = s;
	ret = load_descriptor(bs, s);
	if (ret == 0)
		ret = open_images(bs, s);
	if (ret == 0)
		ret = check_sizes(s, s->d.disk_sectors * 512);
	if (ret < 0) {
		ploop_close(bs);
		return ret;
	}
	bs->size = s->d.disk_sectors * 512;
	bs->align = s->layer[0]->align;
	return 0;
}

/*
 * The image that decides the range at off: the first from the top whose block status says
 * allocated (*src, with its extent in *e), or none (*src NULL: zeroes). *n shrinks to the bytes
 * from off for which the answer holds.
 */
static int find_layer(struct ploop *s, uint64_t off, uint64_t *n, struct bdev **src,
		      struct bdev_extent *e)
{
	*src = NULL;
	for (size_t i = 0; i < s->d.nchain; i++) {
		struct bdev *l = s->layer[i];
		if (off >= l->size)
			continue; /* past a smaller image's end: not mapped there */
		uint64_t m = l->size - off < *n ? l->size - off : *n;
		int ret = bdev_block_status(l, off, m, e);
		if (ret < 0)
			return ret;
		if (e->length < *n)
			*n = e->length;
		if (e->flags & BDEV_ST_ALLOCATED) {
			*src = l;
			return 0;
		}
	}
	return 0;
}

static int ploop_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	struct ploop *s = bs->opaque;
	uint8_t *p = buf;

	while (len) {
		struct bdev_extent e;
		struct bdev *src;
		uint64_t n = len;
		int ret = find_layer(s, off, &n, &src, &e);
		if (ret == 0 && src)
			ret = bdev_read(src, off, p, n);
		else if (ret == 0)
			memset(p, 0, n);
		if (ret < 0)
			return ret;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int ploop_write(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	return err_set(EROFS, "%s: ploop disks are read-only in ligero", bs->filename);
}

static int ploop_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
	return ploop_write(bs, off, NULL, 0);
}

static int ploop_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	struct ploop *s = bs->opaque;
	struct bdev *src;
	uint64_t n = len;
	int ret = find_layer(s, off, &n, &src, ext);

	if (ret < 0)
		return ret;
	if (!src) /* unmapped in every image: zeroes, which the block layer reports */
		memset(ext, 0, sizeof(*ext));
	ext->length = n;
	return 0;
}

/* Each image checked on its own; findings name the image. */
static int ploop_check(struct bdev *bs, int fix, struct bdev_check_result *res)
{
	struct ploop *s = bs->opaque;

	for (size_t i = 0; i < s->d.nchain; i++) {
		struct bdev *l = s->layer[i];
		struct bdev_check_result r;
		int ret = bdev_check(l, fix, &r);
		if (ret == -ENOTSUP) { /* a raw base has nothing to check */
			err_clear();
			continue;
		}
		if (ret < 0) {
			bdev_check_result_free(&r);
			return ret;
		}
		res->corruptions += r.corruptions;
		res->leaks += r.leaks;
		res->check_errors += r.check_errors;
		res->allocated_clusters += r.allocated_clusters;
		res->total_clusters += r.total_clusters;
		res->fragmented_clusters += r.fragmented_clusters;
		if (s->d.nchain == 1)
			res->image_end_offset = r.image_end_offset;
		char **m = realloc(res->messages, (res->nmessages + r.nmessages + 1) * sizeof(*m));
		if (m)
			res->messages = m;
		for (size_t j = 0; m && j < r.nmessages; j++)
			if (asprintf(&m[res->nmessages], "%s: %s", l->filename, r.messages[j]) >= 0)
				res->nmessages++;
		bdev_check_result_free(&r);
	}
	return 0;
}

static struct json_object *ploop_info_specific(struct bdev *bs)
{
	struct ploop *s = bs->opaque;
	struct json_object *o = json_object_new_object(), *d = json_object_new_object();
	struct json_object *list = json_object_new_array();

	for (size_t i = 0; i < s->d.nchain; i++) {
		struct json_object *img = json_object_new_object();
		json_object_object_add(img, "guid", json_object_new_string(s->d.chain[i].guid));
		json_object_object_add(img, "filename",
				       json_object_new_string(s->layer[i]->filename));
		json_object_object_add(img, "format",
				       json_object_new_string(s->layer[i]->drv->name));
		json_object_array_add(list, img);
	}
	json_object_object_add(d, "descriptor", json_object_new_string(s->xml));
	json_object_object_add(d, "top-guid", json_object_new_string(s->d.top_guid));
	json_object_object_add(d, "images", list);
	json_object_object_add(o, "type", json_object_new_string("ploop"));
	json_object_object_add(o, "data", d);
	return o;
}

static int64_t ploop_actual_size(const struct bdev *bs)
{
	const struct ploop *s = bs->opaque;
	int64_t sum = 0;

	for (size_t i = 0; i < s->d.nchain; i++) {
		int64_t n = bdev_actual_size(s->layer[i]);
		if (n < 0)
			return n;
		sum += n;
	}
	return sum;
}

const struct bdev_driver bdev_ploop_driver = {
    .name = "ploop",
    .probe = ploop_probe,
    .probe_dir = ploop_probe_dir,
    .open = ploop_open,
    .close = ploop_close,
    .read = ploop_read,
    .write = ploop_write,
    .write_zeroes = ploop_write_zeroes,
    .block_status = ploop_block_status,
    .check = ploop_check,
    .info_specific = ploop_info_specific,
    .actual_size = ploop_actual_size,
};
