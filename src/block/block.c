/* The bdev API: format probing, backing chains, argument checks; drivers do the rest. */
#include "block/block.h"
#include "block/lock.h"
#include "block/nbd.h"
#include "block/rbd.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static const struct bdev_driver *const drivers[] = {
    &bdev_qcow2_driver,
    &bdev_raw_driver,
    &bdev_parallels_driver,
    &bdev_ploop_driver,
};

/* "qcow2, raw, ..." for messages about unknown formats. */
static const char *known_formats(char *list, size_t size)
{
	size_t n = 0;

	list[0] = '\0';
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]) && n < size; i++)
		n += (size_t)snprintf(list + n, size - n, "%s%s", i ? ", " : "", drivers[i]->name);
	return list;
}

/* The driver that claims an open directory, or NULL. */
static const struct bdev_driver *probe_dir(int dirfd)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (drivers[i]->probe_dir && drivers[i]->probe_dir(dirfd))
			return drivers[i];
	return NULL;
}

const struct bdev_driver *bdev_find_driver(const char *name)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (!strcmp(drivers[i]->name, name))
			return drivers[i];
	return NULL;
}

const struct bdev_driver *bdev_probe_buf(const uint8_t *buf, size_t len)
{
	const struct bdev_driver *best = &bdev_raw_driver;
	int best_score = 0;

	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
		int score = drivers[i]->probe ? drivers[i]->probe(buf, len) : 0;
		if (score > best_score) {
			best = drivers[i];
			best_score = score;
		}
	}
	return best;
}

bool bdev_is_remote_name(const char *name)
{
	return bdev_nbd_is_name(name) || bdev_rbd_is_name(name);
}

bool bdev_is_remote(const struct bdev *bs)
{
	return bs->drv == &bdev_nbd_driver || bs->drv == &bdev_rbd_driver;
}

bool bdev_remote_create_is_new(const char *name)
{
	return bdev_rbd_is_name(name);
}

int bdev_probe_file(const char *path, const char **fmt)
{
	uint8_t buf[512] = {0};
	if (bdev_is_remote_name(path)) { /* remote images are opened as raw (see open_remote) */
		*fmt = "raw";
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_sys(errno, "%s: could not open", path);
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	int e = errno;
	close(fd);
	if (n < 0)
		return err_sys(e, "%s: could not read", path);
	*fmt = bdev_probe_buf(buf, (size_t)n)->name;
	return 0;
}

char *bdev_resolve_backing(const char *image_path, const char *backing_name)
{
	if (backing_name[0] == '/' || bdev_is_remote_name(backing_name) ||
	    !strncmp(backing_name, "json:", 5))
		return strdup(backing_name);
	char *copy = strdup(image_path);
	if (!copy)
		return NULL;
	char *dir = dirname(copy);
	char *out = NULL;
	if (!strcmp(dir, "."))
		out = strdup(backing_name);
	else if (asprintf(&out, "%s/%s", dir, backing_name) < 0)
		out = NULL;
	free(copy);
	return out;
}

static void bdev_free(struct bdev *bs)
{
	free(bs->filename);
	free(bs->backing_name);
	free(bs->backing_path);
	free(bs->backing_fmt);
	free(bs->warning);
	free(bs);
}

/*
 * A remote image (an NBD export, an RBD image) is raw bytes with no file and no backing file;
 * its server or cluster keeps writers apart (RBD: the driver takes the image's exclusive lock).
 * A format on top of it is not supported: an image whose first bytes look like another format
 * is refused unless the caller says raw, so a stored qcow2 file is never mistaken for a disk
 * whose first sector happens to hold a qcow2 header.
 */
static int open_remote(struct bdev **out, const char *name, const char *fmt, int flags)
{
	bool rbd = bdev_rbd_is_name(name);
	const char *what = rbd ? "an RBD image" : "an NBD export";
	struct bdev *bs;
	uint8_t buf[512] = {0};
	int ret;

	if (fmt && strcmp(fmt, "raw"))
		return err_set(ENOTSUP,
			       "%s: %s is opened as raw; format %s on it is not supported (%s)",
			       name, what, fmt,
			       rbd ? "convert the image to raw on the cluster"
				   : "serve the image with its format instead");
	bs = calloc(1, sizeof(*bs));
	if (!bs || !(bs->filename = strdup(name))) {
		free(bs);
		return err_set(ENOMEM, "%s: out of memory", name);
	}
	bs->flags = flags;
	bs->read_only = !(flags & BDEV_O_RDWR);
	bs->align = 512;
	bs->fd = bs->dfd = -1;
	bs->drv = rbd ? &bdev_rbd_driver : &bdev_nbd_driver;
	ret = bs->drv->open(bs);
	if (ret == 0 && !fmt) {
		ret = bs->drv->read(bs, 0, buf, bs->size < sizeof(buf) ? bs->size : sizeof(buf));
		if (ret == 0 && bdev_probe_buf(buf, sizeof(buf)) != &bdev_raw_driver)
			ret = err_set(ENOTSUP,
				      "%s: %s holds a %s image, which ligero does not open there "
				      "(%s, or pass -f raw)",
				      bs->filename, what, bdev_probe_buf(buf, sizeof(buf))->name,
				      rbd ? "convert it to raw" : "serve it with its format");
		bs->flags |= BDEV_O_PROBED;
	}
	if (ret < 0) {
		bdev_close(bs);
		return ret;
	}
	*out = bs;
	return 0;
}

/* Open one layer (not its backing). */
static int open_layer(struct bdev **out, const char *path, const char *fmt, int flags)
{
	const struct bdev_driver *drv = NULL;
	struct bdev *bs;
	int ret;

	if (bdev_is_remote_name(path))
		return open_remote(out, path, fmt, flags);
	if (!strncmp(path, "json:", 5))
		return err_set(ENOTSUP,
			       "%s: json: names are supported for NBD exports and RBD images only",
			       path);

	if (fmt) {
		char known[128];
		drv = bdev_find_driver(fmt);
		if (!drv)
			return err_set(EINVAL, "%s: unknown format '%s' (known: %s)", path, fmt,
				       known_formats(known, sizeof(known)));
	}
	bs = calloc(1, sizeof(*bs));
	if (!bs)
		return err_set(ENOMEM, "%s: out of memory", path);
	bs->filename = strdup(path);
	bs->flags = flags;
	bs->read_only = !(flags & BDEV_O_RDWR);
	bs->align = 512;
	int oflags = (bs->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	bs->dfd = -1;
	bs->fd = open(path, oflags);
	if (bs->fd < 0 && errno == EISDIR) /* a directory format's driver decides (below) */
		bs->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bs->fd < 0) {
		ret = err_sys(errno, "%s: could not open", path);
		goto fail;
	}
	struct stat st;
	if (fstat(bs->fd, &st) < 0) {
		ret = err_sys(errno, "%s: could not stat", path);
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		if (!drv && (drv = probe_dir(bs->fd)))
			bs->flags |= BDEV_O_PROBED;
		if (!drv || !drv->probe_dir) {
			ret = err_set(EISDIR, "%s: is a directory, not an image", path);
			goto fail;
		}
	} else if (flags & BDEV_O_DIRECT) {
		bs->dfd = open(path, oflags | O_DIRECT);
		if (bs->dfd < 0) {
			ret = err_sys(errno,
				      "%s: cache=none needs O_DIRECT, which this file "
				      "system refuses",
				      path);
			goto fail;
		}
	} else if ((flags & BDEV_O_BULK_DIRECT) && !bs->read_only) {
		bs->dfd = open(path, oflags | O_DIRECT); /* -1: no O_DIRECT here, all buffered */
	}
	if (!drv) {
		uint8_t buf[512] = {0};
		ssize_t n = pread(bs->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			ret = err_sys(errno, "%s: could not read", path);
			goto fail;
		}
		drv = bdev_probe_buf(buf, (size_t)n);
		bs->flags |= BDEV_O_PROBED;
	}
	bs->drv = drv;
	if (!(flags & BDEV_O_FORCE_SHARE)) {
		/* A reader wants a consistent image: nobody else may write while we look. A writer
		 * lets others read. Backing files are read by everyone and written by nobody. */
		int perm = LOCK_PERM_CONSISTENT_READ;
		int shared = LOCK_PERM_CONSISTENT_READ | LOCK_PERM_WRITE_UNCHANGED;
		if (!bs->read_only)
			perm |= LOCK_PERM_WRITE | LOCK_PERM_RESIZE;
		ret = bdev_lock(bs, perm, shared);
		if (ret < 0)
			goto fail;
	}
	ret = drv->open(bs);
	if (ret < 0)
		goto fail;
	*out = bs;
	return 0;
fail:
	if (bs->fd >= 0)
		close(bs->fd);
	if (bs->dfd >= 0)
		close(bs->dfd);
	bdev_free(bs);
	return ret;
}

/*
 * Base protection. Creating an overlay records it in a user xattr of its backing file; opening
 * that file for writing is refused while a recorded overlay still uses it, unless the caller
 * passes BDEV_O_BASE_WRITE (commit does). Overlays that were deleted or rebased elsewhere are
 * forgotten on the way. Best effort: file systems without user xattrs keep no record.
 */
#define BASE_XATTR "user.ligero.overlays"

static bool overlay_uses(const char *overlay, const struct stat *base)
{
	struct bdev *ov;
	struct stat st;
	bool uses = false;

	if (open_layer(&ov, overlay, NULL, BDEV_O_FORCE_SHARE) < 0)
		return false;
	if (ov->backing_path && stat(ov->backing_path, &st) == 0)
		uses = st.st_dev == base->st_dev && st.st_ino == base->st_ino;
	bdev_close(ov);
	return uses;
}

static int base_check_writable(struct bdev *bs)
{
	char list[8192], keep[8192] = "";
	struct stat st;
	size_t kept = 0, live = 0;
	char first[1024] = "";

	ssize_t n = fgetxattr(bs->fd, BASE_XATTR, list, sizeof(list) - 1);
	if (n <= 0 || fstat(bs->fd, &st) < 0)
		return 0;
	list[n] = '\0';
	for (char *save = NULL, *p = strtok_r(list, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save)) {
		if (!overlay_uses(p, &st))
			continue;
		if (!live++)
			snprintf(first, sizeof(first), "%s", p);
		size_t l = strlen(p);
		if (kept + l + 2 < sizeof(keep)) {
			memcpy(keep + kept, p, l);
			keep[kept + l] = '\n';
			kept += l + 1;
			keep[kept] = '\0';
		}
	}
	if (!live) {
		fremovexattr(bs->fd, BASE_XATTR);
		return 0;
	}
	if ((size_t)n != kept)
		fsetxattr(bs->fd, BASE_XATTR, keep, kept, 0);
	err_clear();
	return err_set(EPERM,
		       "%s: image is the backing file of %zu overlay%s (%s); writing to it "
		       "would corrupt them (commit into it, or pass the base-write option)",
		       bs->filename, live, live == 1 ? "" : "s", first);
}

int bdev_base_users(const char *path, char *first, size_t len)
{
	char list[8192];
	struct stat st;
	int live = 0;
	ssize_t n;

	if (first && len)
		first[0] = '\0';
	if (stat(path, &st) < 0)
		return -errno;
	n = getxattr(path, BASE_XATTR, list, sizeof(list) - 1);
	if (n <= 0)
		return 0;
	list[n] = '\0';
	for (char *save = NULL, *p = strtok_r(list, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save)) {
		if (!overlay_uses(p, &st))
			continue;
		if (!live++ && first && len)
			snprintf(first, len, "%s", p);
	}
	err_clear();
	return live;
}

int bdev_base_register(const char *base_path, const char *overlay_path)
{
	char list[8192], abs[4096];
	ssize_t n;

	if (!realpath(overlay_path, abs))
		return -errno;
	n = getxattr(base_path, BASE_XATTR, list, sizeof(list) - 1);
	if (n < 0)
		n = 0;
	list[n] = '\0';
	for (char *p = list; (p = strstr(p, abs)); p += strlen(abs))
		if ((p == list || p[-1] == '\n') && (p[strlen(abs)] == '\n' || !p[strlen(abs)]))
			return 0;
	size_t l = strlen(abs);
	if ((size_t)n + l + 2 > sizeof(list))
		return -ENOSPC; /* a record that large is only a hint; stop adding to it */
	memcpy(list + n, abs, l);
	list[n + l] = '\n';
	if (setxattr(base_path, BASE_XATTR, list, (size_t)n + l + 1, 0) < 0)
		return -errno;
	return 0;
}

/* A file probed as raw never gets a backing file of its own, and a chain never loops: each
 * layer's identity (device, inode) is compared with every layer above it. */
int bdev_open(struct bdev **out, const char *path, const char *fmt, int flags)
{
	struct bdev *top = NULL, *cur;
	dev_t devs[BDEV_MAX_CHAIN];
	ino_t inos[BDEV_MAX_CHAIN];
	int depth = 0, ret;
	struct stat st;

	err_clear();
	ret = open_layer(&top, path, fmt, flags);
	if (ret < 0)
		return ret;
	if ((flags & BDEV_O_RDWR) && !(flags & BDEV_O_BASE_WRITE)) {
		ret = base_check_writable(top);
		if (ret < 0)
			goto fail;
	}
	cur = top;
	while (!(flags & BDEV_O_NO_BACKING)) {
		st.st_dev = 0;
		st.st_ino = 0; /* a remote layer has no file to compare */
		if (cur->fd >= 0 && fstat(cur->fd, &st) < 0) {
			ret = err_sys(errno, "%s: could not stat", cur->filename);
			goto fail;
		}
		for (int i = 0; i < depth && st.st_ino; i++) {
			if (devs[i] == st.st_dev && inos[i] == st.st_ino) {
				ret = err_set(ELOOP, "%s: backing chain loops back to this file",
					      cur->filename);
				goto fail;
			}
		}
		devs[depth] = st.st_dev;
		inos[depth] = st.st_ino;
		if (!cur->backing_path)
			break;
		if (++depth >= BDEV_MAX_CHAIN) {
			ret = err_set(ELOOP, "%s: backing chain deeper than %d images", path,
				      BDEV_MAX_CHAIN);
			goto fail;
		}
		int bflags = (flags & (BDEV_O_FORCE_SHARE | BDEV_O_DIRECT)) | BDEV_O_BACKING;
		ret = open_layer(&cur->backing, cur->backing_path, cur->backing_fmt, bflags);
		if (ret < 0) {
			ret = err_prefix(ret, "%s: backing file: ", cur->filename);
			goto fail;
		}
		cur = cur->backing;
	}
	*out = top;
	return 0;
fail:
	bdev_close(top);
	return ret;
}

int bdev_parse_cache_mode(const char *mode, int *flags)
{
	static const struct {
		const char *name;
		int flags;
	} modes[] = {
	    {"none", BDEV_O_DIRECT},
	    {"off", BDEV_O_DIRECT}, /* QEMU's other name for none */
	    {"writeback", 0},
	    {"writethrough", BDEV_O_WRITETHROUGH},
	    {"directsync", BDEV_O_DIRECT | BDEV_O_WRITETHROUGH},
	    {"unsafe", BDEV_O_UNSAFE},
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (!strcmp(mode, modes[i].name)) {
			*flags = modes[i].flags;
			return 0;
		}
	}
	return err_set(EINVAL,
		       "cache mode '%s' is not none, writeback, writethrough, directsync or unsafe",
		       mode);
}

void bdev_close(struct bdev *bs)
{
	while (bs) {
		struct bdev *next = bs->backing;
		if (bs->drv && bs->drv->close)
			bs->drv->close(bs);
		if (bs->fd >= 0)
			close(bs->fd);
		if (bs->dfd >= 0)
			close(bs->dfd);
		bdev_free(bs);
		bs = next;
	}
}

static int check_range(struct bdev *bs, uint64_t off, uint64_t len, bool write)
{
	if (write && bs->read_only)
		return err_set(EROFS, "%s: image is opened read-only%s%s", bs->filename,
			       bs->ro_reason ? ": " : "", bs->ro_reason ? bs->ro_reason : "");
	if (off > bs->size || len > bs->size - off)
		return err_set(
		    EINVAL, "%s: request at offset %llu length %llu is past the end (%llu bytes)",
		    bs->filename, (unsigned long long)off, (unsigned long long)len,
		    (unsigned long long)bs->size);
	return 0;
}

int bdev_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	int ret = check_range(bs, off, len, false);
	if (ret < 0 || !len)
		return ret;
	return bs->drv->read(bs, off, buf, len);
}

int bdev_write(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	int ret = check_range(bs, off, len, true);
	if (ret < 0 || !len)
		return ret;
	ret = bs->drv->write(bs, off, buf, len);
	if (ret == 0 && (bs->flags & BDEV_O_WRITETHROUGH))
		ret = bdev_flush(bs);
	return ret;
}

bool bdev_vectored(const struct bdev *bs)
{
	return bs->drv->readv && bs->drv->writev;
}

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

static int iov_check(struct bdev *bs, int n, uint64_t off, size_t len, bool write)
{
	if (n < 0 || n > BDEV_IOV_MAX)
		return err_set(EINVAL, "%s: %d pieces in one request", bs->filename, n);
	return check_range(bs, off, len, write);
}

int bdev_readv(struct bdev *bs, uint64_t off, const struct iovec *iov, int n)
{
	size_t len = iov_total(iov, n);
	int ret = iov_check(bs, n, off, len, false);

	if (ret < 0 || !len)
		return ret;
	if (bs->drv->readv)
		return bs->drv->readv(bs, off, iov, n, len);
	for (int i = 0; i < n && ret == 0; off += iov[i++].iov_len)
		if (iov[i].iov_len)
			ret = bs->drv->read(bs, off, iov[i].iov_base, iov[i].iov_len);
	return ret;
}

int bdev_writev(struct bdev *bs, uint64_t off, const struct iovec *iov, int n)
{
	size_t len = iov_total(iov, n);
	int ret = iov_check(bs, n, off, len, true);

	if (ret < 0 || !len)
		return ret;
	if (bs->drv->writev)
		ret = bs->drv->writev(bs, off, iov, n, len);
	else
		for (int i = 0; i < n && ret == 0; off += iov[i++].iov_len)
			if (iov[i].iov_len)
				ret = bs->drv->write(bs, off, iov[i].iov_base, iov[i].iov_len);
	if (ret == 0 && (bs->flags & BDEV_O_WRITETHROUGH))
		ret = bdev_flush(bs);
	return ret;
}

int bdev_flush(struct bdev *bs)
{
	if (bs->read_only || !bs->drv->flush)
		return 0;
	return bs->drv->flush(bs);
}

int bdev_discard(struct bdev *bs, uint64_t off, uint64_t len)
{
	int ret = check_range(bs, off, len, true);
	if (ret < 0 || !len)
		return ret;
	if (!bs->drv->discard)
		return 0; /* discard is advisory */
	return bs->drv->discard(bs, off, len);
}

int bdev_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
	int ret = check_range(bs, off, len, true);
	if (ret < 0 || !len)
		return ret;
	return bs->drv->write_zeroes(bs, off, len, flags);
}

int bdev_truncate(struct bdev *bs, uint64_t size)
{
	if (bs->read_only)
		return err_set(EROFS, "%s: image is opened read-only", bs->filename);
	if (!bs->drv->truncate)
		return err_set(ENOTSUP, "%s: format %s cannot be resized", bs->filename,
			       bs->drv->name);
	return bs->drv->truncate(bs, size);
}

int bdev_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	int ret = check_range(bs, off, len, false);
	if (ret < 0)
		return ret;
	if (!len)
		return err_set(EINVAL, "%s: block status of an empty range", bs->filename);
	memset(ext, 0, sizeof(*ext));
	ret = bs->drv->block_status(bs, off, len, ext);
	if (ret < 0)
		return ret;
	ext->offset = off;
	if (!ext->file)
		ext->file = bs;
	if (!ext->length || ext->length > len)
		ext->length = len;
	return 0;
}

int bdev_block_status_chain(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	int depth = 0;
	int ret = bdev_block_status(bs, off, len, ext);

	while (ret == 0 && !(ext->flags & BDEV_ST_ALLOCATED)) {
		len = ext->length;
		bs = bs->backing;
		depth++;
		if (!bs)
			break;
		if (off >= bs->size) {
			/* Past the end of a shorter backing file: zeroes, owned by nobody. */
			ext->flags = BDEV_ST_ZERO;
			ext->depth = depth;
			ext->file = NULL;
			return 0;
		}
		if (len > bs->size - off)
			len = bs->size - off;
		ret = bdev_block_status(bs, off, len, ext);
	}
	if (ret == 0) {
		ext->depth = depth;
		if (!(ext->flags & BDEV_ST_ALLOCATED)) {
			/* Unallocated all the way down reads as zero. */
			ext->flags |= BDEV_ST_ZERO;
			ext->file = NULL;
		}
	}
	return ret;
}

int bdev_create(const char *path, const char *fmt, const struct bdev_create_opts *opts)
{
	const struct bdev_driver *drv = bdev_find_driver(fmt);
	char known[128];

	err_clear();
	if (!drv)
		return err_set(EINVAL, "%s: unknown format '%s' (known: %s)", path, fmt,
			       known_formats(known, sizeof(known)));
	if (bdev_is_remote_name(path)) {
		if (drv != &bdev_raw_driver)
			return err_set(
			    ENOTSUP, "%s: %s holds raw data; format %s there is not supported",
			    path, bdev_rbd_is_name(path) ? "an RBD image" : "an NBD export", fmt);
		if (bdev_rbd_is_name(path))
			return bdev_rbd_create(path, opts);
		return bdev_nbd_create(path, opts);
	}
	if (!drv->create)
		return err_set(ENOTSUP, "%s: format %s cannot be created", path, fmt);
	return drv->create(path, opts);
}

int bdev_check(struct bdev *bs, int fix, struct bdev_check_result *res)
{
	memset(res, 0, sizeof(*res));
	if (!bs->drv->check)
		return err_set(ENOTSUP, "%s: format '%s' does not support checks", bs->filename,
			       bs->drv->name);
	return bs->drv->check(bs, fix, res);
}

void bdev_check_result_free(struct bdev_check_result *res)
{
	for (size_t i = 0; i < res->nmessages; i++)
		free(res->messages[i]);
	free(res->messages);
	res->messages = NULL;
	res->nmessages = 0;
}

const char *bdev_warning(const struct bdev *bs)
{
	for (; bs; bs = bs->backing)
		if (bs->warning)
			return bs->warning;
	return NULL;
}

int64_t bdev_actual_size(const struct bdev *bs)
{
	struct stat st;

	if (bs->fd < 0)
		return -ENOTSUP; /* remote: unknown, as qemu-img says "unavailable" */

	if (bs->drv && bs->drv->actual_size)
		return bs->drv->actual_size(bs);
	if (fstat(bs->fd, &st) < 0)
		return err_sys(errno, "%s: could not stat", bs->filename);
	return (int64_t)st.st_blocks * 512;
}

uint32_t bdev_cluster_size(struct bdev *bs)
{
	return bs->drv->cluster_size ? bs->drv->cluster_size(bs) : 0;
}

int64_t bdev_compress(struct bdev *bs, void *dst, size_t dst_len, const void *src, size_t len)
{
	if (!bs->drv->compress)
		return err_set(ENOTSUP, "%s: format %s does not store compressed data",
			       bs->filename, bs->drv->name);
	return bs->drv->compress(bs, dst, dst_len, src, len);
}

int bdev_write_compressed(struct bdev *bs, uint64_t off, const void *cdata, size_t clen)
{
	int ret = check_range(bs, off, 1, true);

	if (ret < 0)
		return ret;
	if (!bs->drv->write_compressed)
		return err_set(ENOTSUP, "%s: format %s does not store compressed data",
			       bs->filename, bs->drv->name);
	return bs->drv->write_compressed(bs, off, cdata, clen);
}

int bdev_reopen_rw(struct bdev *bs, int flags)
{
	int fd, ret;

	if (!bs->read_only)
		return 0;
	if (bs->dfd >= 0) {
		fd = open(bs->filename, O_RDWR | O_CLOEXEC | O_DIRECT);
		if (fd < 0 || dup3(fd, bs->dfd, O_CLOEXEC) < 0)
			return err_sys(errno, "%s: could not open for writing", bs->filename);
		close(fd);
	}
	fd = open(bs->filename, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_sys(errno, "%s: could not open for writing", bs->filename);
	/* Keep the fd number the driver holds; the old description's locks go with it. */
	if (dup3(fd, bs->fd, O_CLOEXEC) < 0) {
		ret = err_sys(errno, "%s: could not reopen", bs->filename);
		close(fd);
		return ret;
	}
	close(fd);
	bs->read_only = false;
	bs->flags |= BDEV_O_RDWR;
	if (!(bs->flags & BDEV_O_FORCE_SHARE)) {
		ret = bdev_lock(bs, LOCK_PERM_CONSISTENT_READ | LOCK_PERM_WRITE | LOCK_PERM_RESIZE,
				LOCK_PERM_CONSISTENT_READ | LOCK_PERM_WRITE_UNCHANGED);
		if (ret < 0)
			goto back;
	}
	if (!(flags & BDEV_O_BASE_WRITE)) {
		ret = base_check_writable(bs);
		if (ret < 0)
			goto back;
	}
	return 0;
back:
	bs->read_only = true;
	bs->flags &= ~BDEV_O_RDWR;
	return ret;
}

int bdev_set_backing(struct bdev *bs, const char *name, const char *fmt)
{
	if (bs->read_only)
		return err_set(EROFS, "%s: image is opened read-only", bs->filename);
	if (!bs->drv->set_backing)
		return err_set(ENOTSUP, "%s: format %s has no backing file", bs->filename,
			       bs->drv->name);
	return bs->drv->set_backing(bs, name, fmt);
}

#define SNAP_OP(fn, op)                                                                            \
	int fn(struct bdev *bs, const char *name)                                                  \
	{                                                                                          \
		if (!bs->drv->op)                                                                  \
			return err_set(ENOTSUP, "%s: format %s has no internal snapshots",         \
				       bs->filename, bs->drv->name);                               \
		if (bs->read_only)                                                                 \
			return err_set(EROFS, "%s: image is opened read-only", bs->filename);      \
		return bs->drv->op(bs, name);                                                      \
	}
SNAP_OP(bdev_snapshot_create, snapshot_create)
SNAP_OP(bdev_snapshot_apply, snapshot_apply)
SNAP_OP(bdev_snapshot_delete, snapshot_delete)

int bdev_snapshot_list(struct bdev *bs, struct bdev_snapshot **list, int *n)
{
	*list = NULL;
	*n = 0;
	if (!bs->drv->snapshot_list)
		return 0;
	return bs->drv->snapshot_list(bs, list, n);
}

int bdev_amend(struct bdev *bs, const struct bdev_amend_opts *opts)
{
	if (!bs->drv->amend)
		return err_set(ENOTSUP, "%s: format %s has no options to amend", bs->filename,
			       bs->drv->name);
	if (bs->read_only)
		return err_set(EROFS, "%s: image is opened read-only", bs->filename);
	return bs->drv->amend(bs, opts);
}

int bdev_unmap(struct bdev *bs, uint64_t off, uint64_t len)
{
	int ret = check_range(bs, off, len, true);

	if (ret < 0 || !len)
		return ret;
	if (!bs->drv->unmap)
		return err_set(ENOTSUP, "%s: format %s has no unallocated clusters", bs->filename,
			       bs->drv->name);
	return bs->drv->unmap(bs, off, len);
}
