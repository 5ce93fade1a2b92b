/*
 * qcow2 driver internals, shared by the files of src/block/qcow2/ only.
 * Format: QEMU's docs/interop/qcow2.txt. All on-disk integers are big-endian; this struct holds
 * them in host order.
 */
#ifndef LIGERO_QCOW2_H
#define LIGERO_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "util/endian.h"

#define QCOW2_MAGIC 0x514649fbU
/* Allocating writes in flight at once (more wait for a slot). */
#define QCOW2_ALLOCS 16

/* Header byte offsets we rewrite in place (so unknown header extensions survive untouched). */
#define QCOW2_HDR_SIZE		   24
#define QCOW2_HDR_L1_SIZE	   36
#define QCOW2_HDR_L1_OFFSET	   40
#define QCOW2_HDR_RT_OFFSET	   48
#define QCOW2_HDR_RT_CLUSTERS	   56
#define QCOW2_HDR_NB_SNAPSHOTS	   60
#define QCOW2_HDR_SNAPSHOTS_OFFSET 64
#define QCOW2_HDR_INCOMPAT	   72
#define QCOW2_HDR_COMPAT	   80
#define QCOW2_HDR_AUTOCLEAR	   88

#define QCOW2_V2_HEADER_LEN	72
#define QCOW2_V3_HEADER_LEN	112 /* with compression_type and its padding, as QEMU writes */
#define QCOW2_V3_MIN_HEADER_LEN 104

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY	   (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT	   (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2	   (1ULL << 4)
#define QCOW2_INCOMPAT_SUPPORTED                                                                   \
	(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_COMPRESSION)
/* Compatible and autoclear bits. */
#define QCOW2_COMPAT_LAZY_REFCOUNTS   (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS	      (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)

/* Header extension types. */
#define QCOW2_EXT_END		0
#define QCOW2_EXT_BACKING_FMT	0xe2792acaU
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857U
#define QCOW2_EXT_BITMAPS	0x23852875U
#define QCOW2_EXT_CRYPTO	0x0537be77U
#define QCOW2_EXT_DATA_FILE	0x44415441U

/* L1/L2 entry bits. */
#define QCOW2_OFLAG_COPIED     (1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW2_OFLAG_ZERO       (1ULL << 0)
#define QCOW2_L1E_OFFSET_MASK  0x00fffffffffffe00ULL
#define QCOW2_L2E_OFFSET_MASK  0x00fffffffffffe00ULL
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ULL

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/*
 * Limits checked before any allocation sized by header values (documented in docs/ligero-img.md).
 * They match QEMU's so every image QEMU accepts opens here.
 */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES     (32U << 20) /* 32 MiB of L1 table */
#define QCOW2_MAX_RT_BYTES     (8U << 20)  /* 8 MiB of refcount table */
#define QCOW2_MAX_SNAPSHOTS    65536
#define QCOW2_MAX_EXT_BYTES    (1U << 20) /* all header extensions together */
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_VIRTUAL_SIZE (1ULL << 55) /* 32 PiB */

/* A table-sized metadata cache (L2 tables, refcount blocks). Write-back, LRU. */
struct qcow2_cache_entry {
	uint64_t offset; /* host offset of the table, 0 = empty slot */
	void *table;
	uint64_t lru;
	int ref; /* >0 while a caller holds the table */
	bool dirty;
};

struct qcow2_cache {
	struct qcow2 *s;
	int n;
	struct qcow2_cache_entry *e;
	uint8_t *mem; /* all tables, contiguous: a table's slot is (table - mem) / cluster size */
	uint64_t lru_clock;
	int last; /* index of the last hit: sequential access skips the scan */
	/* Dirty entries here may only reach the disk after `depends` has been flushed. */
	struct qcow2_cache *depends;
	bool depends_pending;
	const char *what; /* "L2 table", "refcount block": for messages */
};

struct qcow2_snapshot {
	uint64_t l1_offset;
	uint32_t l1_size;
	char *id;
	char *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t vm_state_size;
	uint64_t disk_size; /* 0 when the entry has no such extra data */
	uint64_t icount;    /* UINT64_MAX when absent */
};

struct qcow2 {
	struct bdev *bs;
	int fd;
	pthread_mutex_t lock;	/* metadata: one thread at a time (data moves without it) */
	const void *lock_owner; /* the thread holding it (lock.c), for qcow2_lock_held() */
	/* Data transfers outside the lock (rw.c, transfer()): how many run, how many threads
	 * wait for none to run (no new one starts meanwhile), and the guest ranges whose new
	 * clusters are being written before their L2 entries are set (end 0: a free slot). */
	pthread_cond_t io_cond; /* with lock: any of these changed */
	int io_inflight, io_quiesce;
	/* Write requests inside qcow2_writev, and exclusive callers waiting for them to end: a
	 * write may drop the lock while it still holds clusters it is about to free (a copy-on-
	 * write's old cluster), so exclusive calls (check, discard, snapshots...) wait for whole
	 * requests, and no new write starts while one waits. */
	int writes_active, excl_waiting;
	/* Compressed clusters written back to back (img convert -c) collect here and reach the
	 * file in large aligned writes (compress.c, cbuf_put): cbuf_len bytes for the file from
	 * cbuf_off (4 KiB-aligned); every other call first writes them out (qcow2_cbuf_settle),
	 * and so does a compressed write that overwrites a cluster: no host cluster with bytes
	 * in the buffer is ever freed and handed to a table. Only with cache=unsafe, whose
	 * writes promise no order on a crash anyway. */
	uint8_t *cbuf;
	uint64_t cbuf_off;
	size_t cbuf_len, cbuf_size;
	int cbuf_err; /* a failed write of the buffer, returned by the next flush */
	struct {
		uint64_t start, end;
	} allocs[QCOW2_ALLOCS];

	uint32_t version;
	uint32_t header_length;
	uint32_t cluster_bits;
	uint64_t cluster_size;
	uint32_t l2_bits; /* log2 of entries per L2 table */
	uint64_t l2_size; /* entries per L2 table */
	uint32_t crypt_method;

	uint64_t l1_offset;
	uint32_t l1_size;
	uint64_t *l1; /* host order, l1_size entries (allocated for at least 1) */

	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint64_t rt_size; /* entries in the refcount table */
	uint64_t *rt;	  /* host order */

	uint32_t refcount_order;
	uint32_t refcount_bits;
	uint32_t rb_bits; /* log2 of refcount entries per refcount block */
	uint64_t refcount_max;

	uint64_t incompat, compat, autoclear;
	uint8_t compression_type;

	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t snapshots_size; /* bytes of the snapshot table on disk */
	struct qcow2_snapshot *snapshots;

	struct qcow2_cache *l2_cache;
	struct qcow2_cache *rb_cache;

	uint64_t free_cluster_index; /* no free cluster below this one */
	uint64_t file_end;	     /* end of the last cluster in use by metadata or data */
	/* Cluster ranges being handed out right now: nested allocations (refcount blocks) skip
	 * them, since their refcounts are not written yet. A stack, nested at most a few deep. */
	uint64_t resv[8][2];
	int nresv;
	uint64_t free_byte_offset; /* where the next compressed cluster may start, 0 = none */

	bool lazy_refcounts; /* compat bit set: refcounts may lag until close */
	bool dirty_marked;   /* we set the dirty bit on disk in this session */
	bool has_features_table;
	bool corrupt; /* the corrupt bit is set: opened read-only */
	/* What each host cluster holds (enum qcow2_meta), built on the first write: every write
	 * is checked against it, so a hostile table entry can never aim data at metadata. */
	uint8_t *meta;
	uint64_t meta_n;
	bool meta_built;
	/* Header extensions we do not interpret, kept verbatim for header rewrites. */
	uint8_t *ext_keep;
	size_t ext_keep_len;
	/* Names from the feature-name table, for messages: [type][bit], type 0 incompat,
	 * 1 compat, 2 autoclear. */
	char feature_names[3][64][47];

	/* The last cluster decompressed (host offset of its compressed data) and its bytes. */
	uint64_t zcache_offset;
	uint8_t *zcache;
	uint8_t *zbuf; /* compressed input buffer (2 clusters) */
	void *zstd_dctx;
};

/* header.c */
/* Open and close take the lock for what they write (repairs on open, flushes on close). */
int qcow2_open(struct bdev *bs);
void qcow2_close(struct bdev *bs);
/* create.c */
int qcow2_create(const char *path, const struct bdev_create_opts *opts);

/* header_write.c */
/* Write an 8-byte big-endian header field at its byte offset. Caller holds s->lock. */
int qcow2_header_write_u64(struct qcow2 *s, unsigned off, uint64_t v);
/* Point the header at a new table in one write of its offset and size, then sync: field is
 * QCOW2_HDR_L1_SIZE, QCOW2_HDR_RT_OFFSET or QCOW2_HDR_NB_SNAPSHOTS, where the pair starts
 * (size first, but for the refcount table). Caller holds s->lock. */
int qcow2_header_set_table(struct qcow2 *s, unsigned field, uint64_t offset, uint32_t size);
/* Set or clear incompatible bits on disk (syncing around it). Caller holds s->lock. */
int qcow2_set_incompat(struct qcow2 *s, uint64_t bits, bool set);
/* Mark the image corrupt (bit 1) and return -EIO with a message; used when metadata is found
 * pointing somewhere impossible during a write. Caller holds s->lock. */
int qcow2_signal_corruption(struct qcow2 *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rewrite the whole header cluster from the state in s (version, tables, snapshots, backing
 * name and format in s->bs, kept extensions). Fails before writing if it would not fit.
 * Caller holds s->lock. */
int qcow2_header_rewrite(struct qcow2 *s);
/* The header as create writes it; shared by create and rewrite. */
struct qcow2_header_fields {
	int version;
	unsigned cluster_bits, refcount_order;
	uint64_t incompat, compat, autoclear;
	uint8_t compression_type;
	uint64_t size;
	uint32_t l1_size;
	uint64_t l1_offset, rt_offset;
	uint32_t rt_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	const char *backing_name, *backing_fmt;
	const uint8_t *ext_keep;
	size_t ext_keep_len;
};
int qcow2_header_build(const char *path, uint8_t *h, uint64_t cs,
		       const struct qcow2_header_fields *f);

/* overlap.c: the map of metadata clusters. */
enum qcow2_meta {
	QCOW2_META_NONE,
	QCOW2_META_HEADER,
	QCOW2_META_L1,
	QCOW2_META_RT,
	QCOW2_META_RB,
	QCOW2_META_L2,
	QCOW2_META_SNAP,     /* snapshot table, snapshot L1 tables */
	QCOW2_META_CONFLICT, /* claimed twice: no write may touch it */
};
/* Build the map from the header, L1, refcount structures and snapshots (once per open). Caller
 * holds s->lock. */
int qcow2_meta_build(struct qcow2 *s);
/* Record that [off, off+len) now holds metadata of type t (NONE when freed). Builds the map
 * first if it is not built yet, so that no change made before the first check is lost.
 * Caller holds s->lock. */
void qcow2_meta_mark(struct qcow2 *s, uint64_t off, uint64_t len, enum qcow2_meta t);
/* Refuse (marking the image corrupt) a write of type t (NONE = guest data) to [off, off+len)
 * when any cluster there holds something else. Caller holds s->lock. */
int qcow2_meta_check(struct qcow2 *s, uint64_t off, uint64_t len, enum qcow2_meta t);
void qcow2_meta_free(struct qcow2 *s);

/* snapshot.c: list takes the lock, create, apply and delete take it exclusively. */
int qcow2_snapshot_list(struct bdev *bs, struct bdev_snapshot **list, int *n);
int qcow2_snapshot_create(struct bdev *bs, const char *name);
int qcow2_snapshot_apply(struct bdev *bs, const char *name);
int qcow2_snapshot_delete(struct bdev *bs, const char *name);
/* Set or clear the COPIED flag of every active L1 and L2 entry to match refcount == 1. Caller
 * holds s->lock. */
int qcow2_fix_copied(struct qcow2 *s);
/* Write the snapshot table again from s->snapshots (every entry with its full extra data).
 * Caller holds s->lock. */
int qcow2_snapshot_table_rewrite(struct qcow2 *s);
/* amend.c: both take the lock exclusively. */
int qcow2_amend(struct bdev *bs, const struct bdev_amend_opts *o);
int qcow2_set_backing(struct bdev *bs, const char *name, const char *fmt);

/* cache.c: tables are cluster-sized; get returns a pinned table, put unpins it. Caller holds
 * s->lock for everything but new and free (open and close). */
struct qcow2_cache *qcow2_cache_new(struct qcow2 *s, int n, const char *what);
void qcow2_cache_free(struct qcow2_cache *c);
/* Load the table at host offset off (read from disk on a miss). Caller holds s->lock. */
int qcow2_cache_get(struct qcow2_cache *c, uint64_t off, void **table);
/* A table for a newly allocated cluster: zero-filled, not read from disk. Caller holds
 * s->lock. */
int qcow2_cache_get_empty(struct qcow2_cache *c, uint64_t off, void **table);
/* Unpin a table; mark it changed. Caller holds s->lock. */
void qcow2_cache_put(struct qcow2_cache *c, void **table);
void qcow2_cache_mark_dirty(struct qcow2_cache *c, void *table);
/* Write every dirty table; when `depends` has dirty tables, they are written and synced
 * first. No sync after. Caller holds s->lock. */
int qcow2_cache_flush(struct qcow2_cache *c);
/* Forget a table (its cluster is being freed); dirty content is dropped. Caller holds
 * s->lock. */
void qcow2_cache_discard(struct qcow2_cache *c, uint64_t off);
/* Dirty tables of c reach the disk only after those of depends (NULL: none). Caller holds
 * s->lock, or is opening the image. */
void qcow2_cache_set_dependency(struct qcow2_cache *c, struct qcow2_cache *depends);
/* fdatasync the image file unless opened unsafe. */
int qcow2_sync(struct qcow2 *s);

/* Write out the compressed-cluster buffer, then the dirty L2 tables and refcount blocks in the
 * order their dependency asks (refcount blocks first unless lazy refcounts), without the final
 * sync. Caller holds s->lock. */
int qcow2_flush_caches(struct qcow2 *s);
/* qcow2_flush_caches, then fdatasync unless unsafe. Caller holds s->lock. */
int qcow2_flush(struct bdev *bs);

/* refcount.c */
/* Load the refcount table (open). */
int qcow2_refcount_init(struct qcow2 *s);
/* Refcount of host cluster index `cluster`; clusters past the table read as 0. Caller holds
 * s->lock. */
int qcow2_refcount_get(struct qcow2 *s, uint64_t cluster, uint64_t *val);
/* Set the refcount of one cluster, allocating refcount blocks (and growing the table) as
 * needed. Goes through the refcount cache. Caller holds s->lock. */
int qcow2_refcount_set(struct qcow2 *s, uint64_t cluster, uint64_t val);
/* Add delta to the refcounts of every cluster touching [off, off+len). Fails with -ERANGE
 * (before changing anything) if a count would leave [0, refcount_max]. Caller holds
 * s->lock. */
int qcow2_refcount_update(struct qcow2 *s, uint64_t off, uint64_t len, int64_t delta);
/* Find `n` contiguous free clusters, set their refcount to 1, return their host offset.
 * Caller holds s->lock. */
int64_t qcow2_alloc_clusters(struct qcow2 *s, uint64_t n);
/* Allocate `len` bytes (< cluster) for compressed data, packing into a partly used cluster.
 * Caller holds s->lock. */
int64_t qcow2_alloc_bytes(struct qcow2 *s, uint64_t len);
/* Drop one reference to each cluster in [off, off+len); freed clusters may be reused. Caller
 * holds s->lock. */
int qcow2_free_clusters(struct qcow2 *s, uint64_t off, uint64_t len);
/* Free every refcount-cache table and table buffers (close). */
void qcow2_refcount_close(struct qcow2 *s);

/* lock.c: the driver lock, s->lock. Every change and lookup of an open image's metadata
 * happens with it held (qcow2_open and qcow2_close take it too); only data moves without it
 * (rw.c). Functions whose contract says "Caller holds s->lock" check it with
 * assert(qcow2_lock_held(s)) where that is cheap. */
void qcow2_lock(struct qcow2 *s);
/* End a request: the calling thread changes the image no more (qcow2_writing), and unlocks. */
void qcow2_unlock(struct qcow2 *s);
/* Unlock in the middle of a request, to move data; qcow2_lock takes it back. */
void qcow2_lock_drop(struct qcow2 *s);
/* Does the calling thread hold s->lock? */
bool qcow2_lock_held(const struct qcow2 *s);
/* Wait for io_cond, the lock dropped meanwhile. Caller holds s->lock. */
void qcow2_io_wait(struct qcow2 *s);
/* Wait until no data transfer runs outside the lock; none starts while the caller keeps the
 * lock afterwards. Caller holds s->lock. */
void qcow2_drain(struct qcow2 *s);
/* Take the lock once no write request is in progress and no data transfer runs outside it:
 * for calls that free or move clusters or tables (discard, zeroes, resize, snapshots, amend,
 * check, compressed writes); end with qcow2_unlock. Also writes out the compressed-cluster
 * buffer; qcow2_lock_excl_keep_cbuf does not (for the compressed writes it serves). */
void qcow2_lock_excl(struct qcow2 *s);
void qcow2_lock_excl_keep_cbuf(struct qcow2 *s);
/* The image the calling thread is changing (inside a metadata-changing request), or NULL: a
 * corruption found then marks the image corrupt (qcow2_signal_corruption); a reader changes
 * nothing. Per thread, since the requests of several threads interleave under the lock. */
extern __thread const struct qcow2 *qcow2_writing;

/* What an L2 entry makes of its guest cluster. */
enum qcow2_ctype {
	QCOW2_CL_UNALLOC,    /* this layer holds nothing: the backing file shows */
	QCOW2_CL_ZERO_PLAIN, /* reads as zero, no host cluster */
	QCOW2_CL_ZERO_ALLOC, /* reads as zero, a host cluster kept for it */
	QCOW2_CL_NORMAL,     /* data in a host cluster */
	QCOW2_CL_COMPRESSED, /* compressed data (qcow2_compressed_extent) */
};

static inline enum qcow2_ctype qcow2_cluster_type(uint64_t e)
{
	if (e & QCOW2_OFLAG_COMPRESSED)
		return QCOW2_CL_COMPRESSED;
	if (e & QCOW2_OFLAG_ZERO)
		return (e & QCOW2_L2E_OFFSET_MASK) ? QCOW2_CL_ZERO_ALLOC : QCOW2_CL_ZERO_PLAIN;
	return (e & QCOW2_L2E_OFFSET_MASK) ? QCOW2_CL_NORMAL : QCOW2_CL_UNALLOC;
}

/* Does an entry of this type hold host clusters (which replacing the entry frees)? */
static inline bool qcow2_cluster_allocated(enum qcow2_ctype t)
{
	return t == QCOW2_CL_NORMAL || t == QCOW2_CL_ZERO_ALLOC || t == QCOW2_CL_COMPRESSED;
}

static inline uint64_t qcow2_l1_index(const struct qcow2 *s, uint64_t off)
{
	return off >> (s->cluster_bits + s->l2_bits);
}

static inline uint64_t qcow2_l2_index(const struct qcow2 *s, uint64_t off)
{
	return (off >> s->cluster_bits) & (s->l2_size - 1);
}

/* table.c: L1 and L2 tables. Every function here: caller holds s->lock. */
/* Fail (marking the image corrupt when writing) if L2 entry e for guest_off points at an
 * unaligned host offset or into the header. */
int qcow2_check_host_offset(struct qcow2 *s, uint64_t e, uint64_t guest_off);
/* The L2 entry for guest offset off (0 where no L2 table is allocated). */
int qcow2_get_entry(struct qcow2 *s, uint64_t off, uint64_t *entry);
/* An L2 table for L1 index i that this image owns alone (COPIED), allocating it or copying a
 * shared one, returned pinned (qcow2_cache_put it). */
int qcow2_prepare_l2(struct qcow2 *s, uint64_t i, uint64_t **tbl);
/* Set the L2 entry for guest offset off (through qcow2_prepare_l2; dirty in the cache). */
int qcow2_set_entry(struct qcow2 *s, uint64_t off, uint64_t e);
/* Write the L1 table entries [first, first+count) to disk. */
int qcow2_l1_write(struct qcow2 *s, uint32_t first, uint32_t count);
/* Grow the L1 table to at least min_size entries (new table allocated, then switched). */
int qcow2_grow_l1(struct qcow2 *s, uint64_t min_size);
/* Start changing metadata: sets qcow2_writing, and with lazy refcounts the dirty bit on disk. */
int qcow2_mark_dirty(struct qcow2 *s);
/* Entries whose clusters a request dropped: freed only after the L2 tables that no longer
 * reference them are on disk. Zero-initialise; qcow2_free_pending frees them and the list. */
struct qcow2_free_list {
	uint64_t *e;
	size_t n, cap;
};
int qcow2_free_list_add(struct qcow2 *s, struct qcow2_free_list *fl, uint64_t entry);
int qcow2_free_pending(struct qcow2 *s, struct qcow2_free_list *fl);

/* rw.c: the guest-facing data path; each takes the lock (range checked by block.c). */
int qcow2_read(struct bdev *bs, uint64_t off, void *buf, size_t len);
int qcow2_write(struct bdev *bs, uint64_t off, const void *buf, size_t len);
int qcow2_readv(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len);
int qcow2_writev(struct bdev *bs, uint64_t off, const struct iovec *iov, int n, size_t len);
/* Write [off, off+len) cluster by cluster with the lock kept all along (the zero writes of
 * exclusive calls). Caller holds s->lock. */
int qcow2_write_locked(struct qcow2 *s, uint64_t off, const uint8_t *buf, size_t len);

/* discard.c: each takes the lock exclusively (qcow2_lock_excl; block_status: qcow2_lock). */
int qcow2_discard(struct bdev *bs, uint64_t off, uint64_t len);
int qcow2_write_zeroes(struct bdev *bs, uint64_t off, uint64_t len, unsigned flags);
int qcow2_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext);
int qcow2_truncate(struct bdev *bs, uint64_t size);
/* Make [off, off+len) unallocated in this layer (whole clusters), so the backing shows. */
int qcow2_unmap(struct bdev *bs, uint64_t off, uint64_t len);

/* compress.c */
/* Decompress the cluster whose L2 entry is `l2e` into s->zcache (cached by offset). Caller
 * holds s->lock. */
int qcow2_decompress_cluster(struct qcow2 *s, uint64_t l2e);
/* Compress one cluster with the image's compression type. Returns the compressed size, or
 * -ENOSPC when it would not be smaller than the cluster (store it uncompressed then). */
int64_t qcow2_compress(int type, void *dst, size_t dst_len, const void *src, size_t src_len);
/* Where a compressed L2 entry points: host offset and the number of bytes to read. */
void qcow2_compressed_extent(const struct qcow2 *s, uint64_t l2e, uint64_t *off, uint64_t *len);
/* Write an already-compressed cluster at guest cluster offset guest_off (used by convert -c);
 * takes the lock exclusively. */
int qcow2_write_compressed(struct qcow2 *s, uint64_t guest_off, const void *data, size_t len);
/* Write out the compressed-cluster buffer; returns the error of a failed buffer write, now or
 * earlier. Caller holds s->lock. */
int qcow2_cbuf_settle(struct qcow2 *s);

/* check.c: walk every reference (header, L1/L2, refcount structures, snapshots), compare with
 * the stored refcounts; with fix, repair leaks (BDEV_CHECK_FIX_LEAKS) and refcount errors
 * (BDEV_CHECK_FIX_ERRORS). Also used to rebuild refcounts of a dirty lazy-refcounts image.
 * Caller holds s->lock (taken exclusively). */
int qcow2_check(struct bdev *bs, int fix, struct bdev_check_result *res);

#endif
