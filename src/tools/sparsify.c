#include "tools/sparsify.h"

#include "block/block.h"
#include "fs/detect.h"
#include "fs/ext.h"
#include "fs/ext_free.h"
#include "fs/part.h"
#include "tools/convert.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first 64 KiB of a swap area hold its header (the signature sits at the end of the first
 * page, and pages are at most 64 KiB); the rest is scratch space nobody reads after boot. */
#define SWAP_KEEP (64 * 1024)
/* GPT keeps a backup table in the last 33 sectors: never treat the disk's tail as free. */
#define GPT_TAIL (1024 * 1024)

static struct sparsify_area *area_new(struct sparsify_plan *p)
{
	struct sparsify_area *a = realloc(p->areas, (p->nareas + 1) * sizeof(*a));

	if (!a)
		return NULL;
	p->areas = a;
	memset(&a[p->nareas], 0, sizeof(*a));
	return &a[p->nareas++];
}

/* Free space of one filesystem window [start, start+size). */
static int plan_window(struct bdev *bs, const char *where, uint64_t start, uint64_t size,
		       struct sparsify_plan *p)
{
	struct fs_probe probe;
	struct sparsify_area *a = area_new(p);
	int ret;

	if (!a)
		return err_set(ENOMEM, "%s: out of memory", where);
	snprintf(a->where, sizeof(a->where), "%s", where);
	a->size = size;
	ret = fs_detect(bs, start, size, &probe);
	if (ret < 0)
		return ret;
	snprintf(a->type, sizeof(a->type), "%s", probe.type);
	size_t before = p->drop.n;
	uint64_t total_before = 0;
	for (size_t i = 0; i < before; i++)
		total_before += p->drop.r[i].len;
	if (fs_type_is_ext(probe.type)) {
		struct extfs *fs;
		ret = extfs_open(&fs, bs, start, size, where, false);
		if (ret == 0) {
			ret = extfs_free_ranges(fs, start, size, &p->drop);
			extfs_close(fs);
		}
		if (ret < 0) {
			/* Unreadable or untrusted: keep it whole and say why. */
			snprintf(a->note, sizeof(a->note), "kept whole: %s", err_msg());
			p->drop.n = before;
			err_clear();
			return 0;
		}
	} else if (!strcmp(probe.type, "swap")) {
		if (size > SWAP_KEEP &&
		    ranges_add(&p->drop, start + SWAP_KEEP, size - SWAP_KEEP) < 0)
			return err_set(ENOMEM, "%s: out of memory", where);
	} else {
		snprintf(a->note, sizeof(a->note), "%s not read by ligero: only zeroes are dropped",
			 probe.type[0] ? probe.type : "unknown content");
		return 0;
	}
	uint64_t after = 0;
	for (size_t i = 0; i < p->drop.n; i++)
		after += p->drop.r[i].len;
	a->dropped = after - total_before;
	return 0;
}

static int part_cmp(const void *x, const void *y)
{
	const struct part *a = x, *b = y;

	return a->start < b->start ? -1 : a->start > b->start;
}

/* Space between top-level partitions (and after the last one). The space before the first
 * partition holds boot loaders, and the inside of an extended partition holds the EBRs: both
 * are kept. */
static int plan_gaps(struct bdev *bs, const struct part_table *pt, struct sparsify_plan *p)
{
	struct part *top = calloc(pt->n ? pt->n : 1, sizeof(*top));
	size_t n = 0;

	if (!top)
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	for (size_t i = 0; i < pt->n; i++)
		if (pt->scheme == PART_GPT || pt->parts[i].num <= 4)
			top[n++] = pt->parts[i];
	qsort(top, n, sizeof(*top), part_cmp);
	uint64_t disk_end = bs->size;
	if (pt->scheme == PART_GPT)
		disk_end = disk_end > GPT_TAIL ? disk_end - GPT_TAIL : 0;
	uint64_t dropped = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t end = top[i].start + top[i].size;
		uint64_t next = i + 1 < n ? top[i + 1].start : disk_end;
		if (next > end) {
			if (ranges_add(&p->drop, end, next - end) < 0) {
				free(top);
				return err_set(ENOMEM, "%s: out of memory", bs->filename);
			}
			dropped += next - end;
		}
	}
	free(top);
	if (dropped) {
		struct sparsify_area *a = area_new(p);
		if (!a)
			return err_set(ENOMEM, "%s: out of memory", bs->filename);
		snprintf(a->where, sizeof(a->where), "unpartitioned");
		a->size = a->dropped = dropped;
	}
	return 0;
}

int sparsify_plan_make(struct bdev *bs, const char *name, struct sparsify_plan *p)
{
	struct part_table pt;
	char where[64];
	int ret;

	memset(p, 0, sizeof(*p));
	ret = part_read(bs, &pt);
	if (ret < 0)
		return err_prefix(ret, "%s: ", name);
	if (pt.scheme == PART_NONE) {
		ret = plan_window(bs, name, 0, bs->size, p);
	} else {
		for (size_t i = 0; i < pt.n && ret == 0; i++) {
			const struct part *pa = &pt.parts[i];
			if (pa->container)
				continue;
			snprintf(where, sizeof(where), "%s:%d", name, pa->num);
			ret = plan_window(bs, where, pa->start, pa->size, p);
		}
		if (ret == 0)
			ret = plan_gaps(bs, &pt, p);
	}
	part_table_free(&pt);
	if (ret == 0)
		ranges_normalize(&p->drop);
	else
		sparsify_plan_free(p);
	return ret;
}

void sparsify_plan_free(struct sparsify_plan *p)
{
	ranges_free(&p->drop);
	free(p->areas);
	p->areas = NULL;
	p->nareas = 0;
}

/* Allocated ranges that read as zero, cluster by cluster (--zero-check). */
static int zero_scan(struct bdev *bs, struct range_list *out, volatile sig_atomic_t *stop)
{
	uint32_t cs = bdev_cluster_size(bs);
	size_t unit = cs ? cs : 65536;
	uint8_t *buf = malloc(unit);
	int ret = 0;

	if (!buf)
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	for (uint64_t off = 0; off < bs->size && ret == 0;) {
		struct bdev_extent ext;
		ret = bdev_block_status(bs, off, bs->size - off, &ext);
		if (ret < 0)
			break;
		if ((ext.flags & BDEV_ST_DATA) && !(ext.flags & BDEV_ST_COMPRESSED)) {
			for (uint64_t o = off; o < off + ext.length && ret == 0; o += unit) {
				size_t n = off + ext.length - o < unit
					       ? (size_t)(off + ext.length - o)
					       : unit;
				ret = bdev_read(bs, o, buf, n);
				if (ret == 0 && buf[0] == 0 && !memcmp(buf, buf + 1, n - 1))
					ret = ranges_add(out, o, n) < 0 ? -ENOMEM : 0;
				if (stop && *stop)
					ret = err_set(EINTR, "%s: interrupted", bs->filename);
			}
		}
		off += ext.length;
	}
	free(buf);
	return ret;
}

int sparsify_in_place(struct bdev *bs, const struct sparsify_plan *p, const struct sparsify_opts *o,
		      uint64_t *done)
{
	struct range_list all = {0};
	int ret = 0;

	*done = 0;
	for (size_t i = 0; i < p->drop.n && ret == 0; i++)
		ret = ranges_add(&all, p->drop.r[i].off, p->drop.r[i].len) < 0 ? -ENOMEM : 0;
	if (ret == 0 && o->zero_check)
		ret = zero_scan(bs, &all, o->stop);
	if (ret < 0) {
		ranges_free(&all);
		return ret == -ENOMEM ? err_set(ENOMEM, "%s: out of memory", bs->filename) : ret;
	}
	ranges_normalize(&all);
	uint64_t total = ranges_total(&all);
	for (size_t i = 0; i < all.n && ret == 0; i++) {
		uint64_t off = all.r[i].off, len = all.r[i].len;
		if (off >= bs->size)
			continue;
		if (len > bs->size - off)
			len = bs->size - off;
		ret = bdev_discard(bs, off, len);
		*done += len;
		if (o->progress)
			o->progress(o->opaque, *done, total);
		if (ret == 0 && o->stop && *o->stop)
			ret = err_set(EINTR,
				      "%s: interrupted (what was discarded stays discarded; the "
				      "image is consistent)",
				      bs->filename);
	}
	if (ret == 0)
		ret = bdev_flush(bs);
	ranges_free(&all);
	return ret;
}

/*
 * The copy reads the source through a filter bdev that reports the planned ranges as zeroes.
 * The copy engine already leaves zero runs out of a new image, so the free space is dropped
 * without the engine knowing about filesystems.
 */
struct drop_filter {
	struct bdev *src;
	const struct range_list *drop;
	size_t hint; /* index of the last range looked at: the engine reads in order */
};

/* The first planned range that ends after off (or NULL), starting from the hint. */
static const struct range *drop_next(struct drop_filter *f, uint64_t off)
{
	const struct range_list *l = f->drop;

	if (f->hint >= l->n || (f->hint && l->r[f->hint - 1].off + l->r[f->hint - 1].len > off))
		f->hint = 0;
	while (f->hint < l->n && l->r[f->hint].off + l->r[f->hint].len <= off)
		f->hint++;
	return f->hint < l->n ? &l->r[f->hint] : NULL;
}

static int filter_read(struct bdev *bs, uint64_t off, void *buf, size_t len)
{
	struct drop_filter *f = bs->opaque;
	uint8_t *p = buf;

	while (len) {
		const struct range *r = drop_next(f, off);
		size_t n = len;
		if (r && r->off <= off) {
			n = r->off + r->len - off < len ? (size_t)(r->off + r->len - off) : len;
			memset(p, 0, n);
		} else {
			if (r && r->off - off < len)
				n = (size_t)(r->off - off);
			int ret = bdev_read(f->src, off, p, n);
			if (ret < 0)
				return ret;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int filter_block_status(struct bdev *bs, uint64_t off, uint64_t len, struct bdev_extent *ext)
{
	struct drop_filter *f = bs->opaque;
	const struct range *r = drop_next(f, off);

	if (r && r->off <= off) {
		ext->flags = BDEV_ST_ALLOCATED | BDEV_ST_ZERO;
		ext->length = r->off + r->len - off < len ? r->off + r->len - off : len;
		return 0;
	}
	if (r && r->off - off < len)
		len = r->off - off;
	int ret = bdev_block_status_chain(f->src, off, len, ext);
	ext->flags |= BDEV_ST_ALLOCATED;
	ext->flags &= ~(unsigned)(BDEV_ST_OFFSET | BDEV_ST_COMPRESSED);
	ext->depth = 0;
	return ret;
}

static const struct bdev_driver drop_filter_driver = {
    .name = "sparsify-filter",
    .read = filter_read,
    .block_status = filter_block_status,
};

int sparsify_copy(struct bdev *src, const struct sparsify_plan *p, const char *dst_path,
		  const char *fmt, const struct bdev_create_opts *opts, bool compress,
		  const struct sparsify_opts *o)
{
	struct bdev_create_opts co = *opts;
	struct bdev *dst;
	int ret;

	co.size = src->size;
	co.backing_file = NULL;
	co.backing_fmt = NULL;
	if (co.compression_type == SPARSIFY_CODEC_DEFAULT)
		co.compression_type = compress && co.compat != 2 && !strcmp(fmt, "qcow2") ? 1 : 0;
	ret = bdev_create(dst_path, fmt, &co);
	if (ret < 0)
		return ret;
	ret = bdev_open(&dst, dst_path, fmt, BDEV_O_RDWR | BDEV_O_NO_BACKING);
	if (ret < 0) {
		unlink(dst_path);
		return ret;
	}
	/* A new image without backing reads as zero: free ranges and zero runs are simply not
	 * written, so they take no space at all. */
	struct drop_filter f = {.src = src, .drop = &p->drop};
	struct bdev filter = {.drv = &drop_filter_driver,
			      .filename = src->filename,
			      .fd = -1,
			      .dfd = -1,
			      .read_only = true,
			      .size = src->size,
			      .align = src->align,
			      .opaque = &f};
	struct bdev *in = &filter;
	struct convert_opts cv = {
	    .min_sparse = 4096,
	    .compress = compress,
	    .target_is_zero = true,
	    .progress = o->progress,
	    .opaque = o->opaque,
	    .stop = o->stop,
	};
	ret = convert_run(&in, 1, dst, &cv);
	int r2 = bdev_flush(dst);
	bdev_close(dst);
	if (ret == 0)
		ret = r2;
	if (ret < 0)
		unlink(dst_path);
	return ret;
}
