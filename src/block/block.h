/*
 * The block layer: every disk byte in ligero goes through a struct bdev.
 *
 * A bdev is one open image: a format driver, its file and, for formats that have one, the backing
 * bdev below it (the chain). Offsets and lengths are guest bytes (uint64_t). Every call returns 0
 * or a negative errno and records a message with util/error.h that names the file.
 */
#ifndef LIGERO_BLOCK_H
#define LIGERO_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Open flags. */
enum {
	BDEV_O_RDWR = 1 << 0,	      /* open for writing (the backing chain stays read-only) */
	BDEV_O_NO_BACKING = 1 << 1,   /* do not open the backing chain (unallocated reads fail) */
	BDEV_O_FORCE_SHARE = 1 << 2,  /* take no image locks, like qemu-img -U (read-only only) */
	BDEV_O_DIRECT = 1 << 3,	      /* O_DIRECT on the image files (cache=none) */
	BDEV_O_UNSAFE = 1 << 4,	      /* flush is a no-op (cache=unsafe) */
	BDEV_O_WRITETHROUGH = 1 << 5, /* every write is followed by a flush */
	BDEV_O_BASE_WRITE = 1 << 6, /* allow writing an image that was named as another's backing */
	BDEV_O_NO_REPAIR = 1 << 7,  /* do not repair a dirty lazy-refcounts image when opening rw */
	BDEV_O_CHECK = 1 << 8,	    /* opened by check: tolerate (and report) broken metadata */
	BDEV_O_PROBED = 1 << 9,	    /* internal: the format came from probing, not the caller */
	BDEV_O_BACKING = 1 << 10,   /* internal: this bdev is some image's backing file */
	/* Bulk transfers (512-byte aligned buffer, offset and length) bypass the page cache with
	 * O_DIRECT where the file system allows it, the rest goes through it; unlike
	 * BDEV_O_DIRECT, a file system without O_DIRECT is not an error. For copies that write
	 * an image once (convert): no copy into the page cache, no write-back left behind. */
	BDEV_O_BULK_DIRECT = 1 << 11,
};

/* block_status flags of an extent. */
enum {
	BDEV_ST_DATA = 1 << 0,	     /* reads come from stored data (not known to be zero) */
	BDEV_ST_ZERO = 1 << 1,	     /* reads return zeroes */
	BDEV_ST_ALLOCATED = 1 << 2,  /* this layer decides the content (not passed to backing) */
	BDEV_ST_OFFSET = 1 << 3,     /* host_offset is valid: the bytes are at that file offset */
	BDEV_ST_COMPRESSED = 1 << 4, /* stored compressed (no host_offset) */
};

/* An extent's file is the image host_offset is in: a driver whose data lies in other images
 * (ploop's deltas) names that image. */
struct bdev_extent {
	uint64_t offset;	 /* guest offset of the extent */
	uint64_t length;	 /* bytes; at least 1 */
	unsigned flags;		 /* BDEV_ST_* */
	int depth;		 /* 0 = the image asked, 1 = its backing file, ... */
	uint64_t host_offset;	 /* with BDEV_ST_OFFSET */
	const struct bdev *file; /* the image that holds the extent (for map's "filename") */
};

/* Options for creating an image; zero-initialise, then set what you need. */
struct bdev_create_opts {
	uint64_t size;		  /* virtual size; 0 with a backing file = the backing's size */
	const char *backing_file; /* recorded as given (relative names stay relative) */
	const char *backing_fmt;  /* NULL: probed once now and recorded */
	uint32_t cluster_size;	  /* qcow2: 0 = 64 KiB */
	int compat;		  /* qcow2: 2 (0.10) or 3 (1.1); 0 = 3 */
	int refcount_bits;	  /* qcow2: 0 = 16 */
	int compression_type;	  /* qcow2: 0 = zlib, 1 = zstd */
	bool lazy_refcounts;
	int prealloc; /* enum bdev_prealloc */
	bool force;   /* overwrite an existing file */
};

enum bdev_prealloc {
	BDEV_PREALLOC_OFF,
	BDEV_PREALLOC_METADATA,
	BDEV_PREALLOC_FALLOC,
	BDEV_PREALLOC_FULL
};

/* What a consistency check found (and fixed), with qemu-img check's meaning. */
struct bdev_check_result {
	int64_t corruptions; /* problems that make data unreliable */
	int64_t leaks;	     /* clusters with a refcount but no reference */
	int64_t corruptions_fixed;
	int64_t leaks_fixed;
	int64_t check_errors;	   /* checks that could not run (I/O errors) */
	uint64_t image_end_offset; /* end of the last used cluster */
	uint64_t allocated_clusters, total_clusters, fragmented_clusters, compressed_clusters;
	char **messages; /* one line per finding */
	size_t nmessages;
};
enum { BDEV_CHECK_FIX_LEAKS = 1, BDEV_CHECK_FIX_ERRORS = 2 };
void bdev_check_result_free(struct bdev_check_result *res);

/* An internal snapshot, as qemu-img snapshot -l lists it. */
struct bdev_snapshot {
	char id[64];
	char name[256];
	uint64_t vm_state_size;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t icount; /* UINT64_MAX when not recorded */
	uint64_t disk_size;
};

/* What `img amend -o` may change; -1 / NULL means leave as is. */
struct bdev_amend_opts {
	int compat;	    /* 2 or 3 */
	int lazy_refcounts; /* 0 or 1 */
};

struct bdev;
struct json_object;

/* A format driver. Data calls are only made with ranges inside the virtual size. */
struct bdev_driver {
	const char *name;
	/* Score how much the first bytes of a file look like this format (0 = not at all). */
	int (*probe)(const uint8_t *buf, size_t len);
	int (*open)(struct bdev *bs);
	void (*close)(struct bdev *bs);
	/* Read this layer; ranges the layer does not hold are read from bs->backing (or zero). */
	int (*read)(struct bdev *bs, uint64_t off, void *buf, size_t len);
	int (*write)(struct bdev *bs, uint64_t off, const void *buf, size_t len);
	/* Optional: the same with the bytes scattered over n iovecs (len in all); drivers whose
	 * layout maps a guest range to one file range (raw) do it in one system call. */
	int (*readv)(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len);
	int (*writev)(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len);
	int (*flush)(struct bdev *bs);
	int (*discard)(struct bdev *bs, uint64_t off, uint64_t len);
	/* flags: BDEV_ZERO_MAY_UNMAP lets the driver deallocate when reads still return zero. */
	int (*write_zeroes)(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags);
	/* Describe the extent starting at off (at most len long) in this layer only. */
	int (*block_status)(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext);
	int (*truncate)(struct bdev *bs, uint64_t size);
	int (*create)(const char *path, const struct bdev_create_opts *opts);
	/* Consistency check (and repair with fix = BDEV_CHECK_FIX_*); NULL: nothing to check. */
	int (*check)(struct bdev *bs, int fix, struct bdev_check_result *res);
	/* qemu-img info's "format-specific" object (json-c), or NULL. */
	struct json_object *(*info_specific)(struct bdev *bs);
	/* Compressed clusters (NULL: the format stores none). compress is thread-safe. */
	int64_t (*compress)(struct bdev *bs, void *dst, size_t dst_len, const void *src,
			    size_t len);
	int (*write_compressed)(struct bdev *bs, uint64_t off, const void *cdata, size_t clen);
	/* Rewrite the recorded backing file name and format (NULL name: no backing file). */
	int (*set_backing)(struct bdev *bs, const char *name, const char *fmt);
	/* Internal snapshots. */
	int (*snapshot_list)(struct bdev *bs, struct bdev_snapshot **list, int *n);
	int (*snapshot_create)(struct bdev *bs, const char *name);
	int (*snapshot_apply)(struct bdev *bs, const char *name);
	int (*snapshot_delete)(struct bdev *bs, const char *name);
	/* Change creation options in place (qemu-img amend). */
	int (*amend)(struct bdev *bs, const struct bdev_amend_opts *opts);
	/* Make whole clusters unallocated in this layer so the backing file shows through. */
	int (*unmap)(struct bdev *bs, uint64_t off, uint64_t len);
	/* Cluster size of the format, or 0 when it has none. */
	uint32_t (*cluster_size)(struct bdev *bs);
	/* Optional: whether the open directory dirfd holds an image of this format (a ploop
	 * disk's DiskDescriptor.xml); such a driver's open gets the directory as bs->fd. */
	bool (*probe_dir)(int dirfd);
	/* Optional: bytes on the host, for formats whose data is in other files. */
	int64_t (*actual_size)(const struct bdev *bs);
};

enum { BDEV_ZERO_MAY_UNMAP = 1 };
/* write_zeroes flag: fail with -ENOTSUP rather than write zeroes the slow way (raw: when the
 * file system cannot zero a range without writing it). Formats that zero through metadata may
 * ignore it. */
enum { BDEV_ZERO_NO_FALLBACK = 2 };

struct bdev {
	const struct bdev_driver *drv;
	char *filename; /* as the user or the overlay named it */
	int fd;		/* buffered: metadata, and data the direct fd cannot take */
	int dfd;	/* O_DIRECT twin of fd for aligned data I/O (cache=none), or -1 */
	int flags;	/* BDEV_O_* it was opened with */
	bool read_only;
	const char *ro_reason; /* why a writable open became read-only (static text), or NULL */
	uint64_t size;	       /* virtual size in bytes */
	uint32_t align;	       /* smallest useful I/O unit for this layer (cluster size or 512) */
	struct bdev *backing;  /* NULL at the bottom of the chain */
	char *backing_name;    /* the backing file name recorded in the image, or NULL */
	char *backing_path;    /* backing_name resolved against this image's directory */
	char *backing_fmt;     /* recorded backing format, or NULL */
	char *warning;	       /* what the user should hear about this open image, or NULL */
	int lock_perm;	       /* image lock state (lock.c) */
	int lock_shared;
	void *opaque; /* the driver's state */
};

/* I/O on one layer's file (for drivers; file.c): through the O_DIRECT descriptor when the layer
 * has one and buffer, offset and length are 512-byte aligned, else buffered (Linux keeps the
 * two coherent). Calls are repeated after EINTR and a short transfer; short reads past EOF
 * return zeroes, a write that makes no progress fails with -EIO ("short write"). */
int bdev_file_pread(struct bdev *bs, void *buf, size_t len, uint64_t off);
int bdev_file_pwrite(struct bdev *bs, const void *buf, size_t len, uint64_t off);
/* The same for a driver's metadata: `what` ("the L1 table") names the bytes in the message,
 * "<file>: could not write <what> at offset <n>: <reason>". */
int bdev_file_pwrite_meta(struct bdev *bs, const void *buf, size_t len, uint64_t off,
			  const char *what);
/* The same on a plain descriptor of the named file (buffered): for files being created. */
int bdev_fd_pwrite(int fd, const char *file, const void *buf, size_t len, uint64_t off,
		   const char *what);
/* The same with n iovecs holding len bytes in all (preadv/pwritev; direct when every piece is
 * aligned). n is at most BDEV_IOV_MAX. */
int bdev_file_preadv(struct bdev *bs, const struct iovec *iov, int n, size_t len, uint64_t off);
int bdev_file_pwritev(struct bdev *bs, const struct iovec *iov, int n, size_t len, uint64_t off);

/* The open flags a cache mode sets. */
#define BDEV_O_CACHE_MASK (BDEV_O_DIRECT | BDEV_O_UNSAFE | BDEV_O_WRITETHROUGH)
/* QEMU's cache modes (-t, cache=) as open flags: *flags gets the BDEV_O_CACHE_MASK bits.
 * none (or off) = O_DIRECT; writeback = page cache, flushed when asked; writethrough = every
 * write flushed; directsync = both; unsafe = flushes do nothing. Returns 0, or -EINVAL with a
 * message naming the mode. */
int bdev_parse_cache_mode(const char *mode, int *flags);

/* Open a file. fmt NULL probes the format. Opens the backing chain read-only. A directory is
 * opened by a format whose images live in one (ploop: the directory of a DiskDescriptor.xml). */
int bdev_open(struct bdev **out, const char *path, const char *fmt, int flags);
void bdev_close(struct bdev *bs);

int bdev_read(struct bdev *bs, uint64_t off, void *buf, size_t len);
int bdev_write(struct bdev *bs, uint64_t off, const void *buf, size_t len);
int bdev_flush(struct bdev *bs);
/* Scatter-gather I/O: the n iovecs (n <= BDEV_IOV_MAX) hold the bytes of [off, off + their
 * total length). One call into the driver when it takes vectors, else one per iovec;
 * bdev_vectored() tells which, so a caller with many small pieces can gather them itself. */
#define BDEV_IOV_MAX 1024
int bdev_readv(struct bdev *bs, uint64_t off, const struct iovec *iov, int n);
int bdev_writev(struct bdev *bs, uint64_t off, const struct iovec *iov, int n);
bool bdev_vectored(const struct bdev *bs);
int bdev_discard(struct bdev *bs, uint64_t off, uint64_t len);
int bdev_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags);
/* Set the virtual size, whatever it drops: past a smaller size the data is gone. Tools that
 * resize on a user's behalf use bdev_resize. */
int bdev_truncate(struct bdev *bs, uint64_t size);
/* Resize, never losing data: growing is free; shrinking must be asked for with
 * BDEV_RESIZE_SHRINK (else -EPERM) and is refused with -ENOTEMPTY when this layer holds data
 * past the new end (nothing is changed then). The new size is flushed to the file. */
enum { BDEV_RESIZE_SHRINK = 1 };
int bdev_resize(struct bdev *bs, uint64_t size, unsigned flags);

/* The extent at off in this layer (depth 0). */
int bdev_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext);
/* The extent at off as the guest sees it: unallocated ranges are looked up down the chain
 * (depth counts the layers crossed); ranges past a shorter backing file read as zero. */
int bdev_block_status_chain(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext);

/* Create an image with the named driver ("raw", "qcow2"). */
int bdev_create(const char *path, const char *fmt, const struct bdev_create_opts *opts);

/* Does name address a remote image (an NBD export: nbd://..., nbd+unix://..., nbd:H:P,
 * json:{"driver":"nbd",...}; an RBD image: rbd:pool/image..., json:{"driver":"rbd",...})
 * rather than a file? */
bool bdev_is_remote_name(const char *name);
/* Does bdev_create on a remote name make a new, zeroed image (RBD) rather than check an
 * existing one (an NBD export)? */
bool bdev_remote_create_is_new(const char *name);
/* Is bs a remote image (no file of its own: no locks, no host offsets, no actual size)? */
bool bdev_is_remote(const struct bdev *bs);

/* Probe a file's format by content; fills name (e.g. "qcow2", "raw"). */
int bdev_probe_file(const char *path, const char **fmt);

const struct bdev_driver *bdev_find_driver(const char *name);
/* The driver whose format the first bytes of a file show (raw when none claims them). */
const struct bdev_driver *bdev_probe_buf(const uint8_t *buf, size_t len);

/* Resolve a backing name against the directory of the image that records it. Caller frees. */
char *bdev_resolve_backing(const char *image_path, const char *backing_name);

/* Check (and with fix, repair) an image's metadata. -ENOTSUP for formats without a check. */
int bdev_check(struct bdev *bs, int fix, struct bdev_check_result *res);

/* Cluster size of the image's format (qcow2), 0 for formats without clusters (raw). */
uint32_t bdev_cluster_size(struct bdev *bs);
/* Compress one cluster of data with the image's codec (zlib or zstd). Thread-safe and without
 * I/O, so many threads can compress while one writes. Returns the compressed length, -ENOSPC
 * when the result would not be smaller (write the data plainly then), -ENOTSUP for formats
 * that store no compressed clusters. */
int64_t bdev_compress(struct bdev *bs, void *dst, size_t dst_len, const void *src, size_t len);
/* Store a cluster that bdev_compress produced at cluster-aligned guest offset off (the last
 * cluster of an image may be short: pass what it compressed). */
int bdev_write_compressed(struct bdev *bs, uint64_t off, const void *cdata, size_t clen);
/* Re-open one layer of an open chain for writing (same fd number, new write lock). Refused for a
 * protected base unless flags has BDEV_O_BASE_WRITE. Used by commit and rebase. */
int bdev_reopen_rw(struct bdev *bs, int flags);
/* Record a new backing file name (as given; relative to the image's directory) and format, or
 * remove the backing file with name NULL. Only the header changes (qemu-img rebase -u). */
int bdev_set_backing(struct bdev *bs, const char *name, const char *fmt);
/* Make [off, off+len) unallocated in this layer (whole clusters only; partial ones are left),
 * so reads come from the backing file again. commit empties an overlay with it. */
int bdev_unmap(struct bdev *bs, uint64_t off, uint64_t len);
int bdev_snapshot_list(struct bdev *bs, struct bdev_snapshot **list, int *n); /* free(*list) */
int bdev_snapshot_create(struct bdev *bs, const char *name);
int bdev_snapshot_apply(struct bdev *bs, const char *name);
int bdev_snapshot_delete(struct bdev *bs, const char *name);
int bdev_amend(struct bdev *bs, const struct bdev_amend_opts *opts);

/* Record overlay_path as an overlay of base_path (an xattr on the base), so opening the base
 * for writing is refused while the overlay uses it. Best effort: returns -errno, never fatal. */
int bdev_base_register(const char *base_path, const char *overlay_path);

/* The first warning a driver left on the chain's images ("<file>: image is marked in use ...";
 * reading goes on), or NULL. Tools show it: the library prints nothing. */
const char *bdev_warning(const struct bdev *bs);

/* How many overlays recorded on the image at path (bdev_base_register) still use it as their
 * backing file; first (when not NULL) gets the path of one. 0 when none, or when the filesystem
 * keeps no records; -errno when path cannot be stat'ed. Changes nothing. */
int bdev_base_users(const char *path, char *first, size_t len);

/* Bytes the file occupies on the host (st_blocks * 512). */
int64_t bdev_actual_size(const struct bdev *bs);

extern const struct bdev_driver bdev_raw_driver;
extern const struct bdev_driver bdev_qcow2_driver;
extern const struct bdev_driver bdev_parallels_driver; /* read-only */
extern const struct bdev_driver bdev_ploop_driver;     /* read-only: a DiskDescriptor.xml */

/* Limits on backing chains: deeper chains (or loops) are refused. */
#define BDEV_MAX_CHAIN 64

#endif
