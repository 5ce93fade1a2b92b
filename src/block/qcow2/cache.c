/*
 * Write-back LRU cache of cluster-sized metadata tables (L2 tables, refcount blocks).
 *
 * Lookups are a linear scan with a last-hit shortcut: caches hold at most 1024 tables, and the
 * sequential access of convert, check and guest streams hits the shortcut almost always.
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct qcow2_cache *qcow2_cache_new(struct qcow2 *s, int n, const char *what)
{
	struct qcow2_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s = s;
	c->n = n;
	c->what = what;
	c->e = calloc((size_t)n, sizeof(*c->e));
	if (!c->e) {
		free(c);
		return NULL;
	}
	/* One mapping for all tables; pages are touched only as tables get used. */
	c->mem = aligned_alloc(4096, (size_t)n * s->cluster_size);
	if (!c->mem) {
		qcow2_cache_free(c);
		return NULL;
	}
	for (int i = 0; i < n; i++)
		c->e[i].table = c->mem + (size_t)i * s->cluster_size;
	return c;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
	if (!c)
		return;
	free(c->mem);
	free(c->e);
	free(c);
}

int qcow2_sync(struct qcow2 *s)
{
	if (s->bs->flags & BDEV_O_UNSAFE)
		return 0;
	if (fdatasync(s->fd) < 0)
		return err_sys(errno, "%s: flush failed", s->bs->filename);
	return 0;
}

static int entry_write(struct qcow2_cache *c, struct qcow2_cache_entry *e)
{
	struct qcow2 *s = c->s;
	int ret = qcow2_meta_check(s, e->offset, s->cluster_size,
				   c == s->l2_cache ? QCOW2_META_L2 : QCOW2_META_RB);
	if (ret < 0)
		return ret;
	ret = bdev_file_pwrite_meta(s->bs, e->table, s->cluster_size, e->offset, c->what);
	if (ret < 0)
		return ret;
	e->dirty = false;
	return 0;
}

static bool cache_has_dirty(const struct qcow2_cache *c)
{
	for (int i = 0; i < c->n; i++)
		if (c->e[i].dirty)
			return true;
	return false;
}

/* Everything this cache's dirty tables point at must be on disk before they are. */
static int flush_dependency(struct qcow2_cache *c)
{
	if (!c->depends || !cache_has_dirty(c->depends))
		return 0;
	int ret = qcow2_cache_flush(c->depends);
	if (ret < 0)
		return ret;
	return qcow2_sync(c->s);
}

int qcow2_cache_flush(struct qcow2_cache *c)
{
	int ret = 0;

	if (!cache_has_dirty(c))
		return 0;
	ret = flush_dependency(c);
	if (ret < 0)
		return ret;
	for (int i = 0; i < c->n; i++) {
		if (c->e[i].dirty) {
			ret = entry_write(c, &c->e[i]);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static struct qcow2_cache_entry *cache_lookup(struct qcow2_cache *c, uint64_t off)
{
	if (c->e[c->last].offset == off)
		return &c->e[c->last];
	for (int i = 0; i < c->n; i++) {
		if (c->e[i].offset == off) {
			c->last = i;
			return &c->e[i];
		}
	}
	return NULL;
}

static int cache_victim(struct qcow2_cache *c, struct qcow2_cache_entry **out)
{
	struct qcow2_cache_entry *best = NULL;

	for (int i = 0; i < c->n; i++) {
		struct qcow2_cache_entry *e = &c->e[i];
		if (e->ref)
			continue;
		if (!e->offset) {
			best = e;
			break;
		}
		if (!best || e->lru < best->lru)
			best = e;
	}
	if (!best)
		return err_set(EBUSY, "%s: %s cache exhausted", c->s->bs->filename, c->what);
	if (best->dirty) {
		int ret = flush_dependency(c);
		if (ret == 0)
			ret = entry_write(c, best);
		if (ret < 0)
			return ret;
	}
	best->offset = 0;
	*out = best;
	return 0;
}

static int cache_do_get(struct qcow2_cache *c, uint64_t off, void **table, bool read)
{
	struct qcow2 *s = c->s;
	struct qcow2_cache_entry *e;

	if (!off || (off & (s->cluster_size - 1)))
		return qcow2_signal_corruption(s, "%s offset %llu is not cluster aligned", c->what,
					       (unsigned long long)off);
	e = cache_lookup(c, off);
	if (!e) {
		int ret = cache_victim(c, &e);
		if (ret < 0)
			return ret;
		if (read) {
			ssize_t n = pread(s->fd, e->table, s->cluster_size, (off_t)off);
			if (n < 0)
				return err_sys(errno, "%s: could not read %s at offset %llu",
					       s->bs->filename, c->what, (unsigned long long)off);
			if ((uint64_t)n < s->cluster_size) {
				if (!(s->bs->flags & BDEV_O_CHECK))
					return err_set(EIO,
						       "%s: %s at offset %llu is past the end "
						       "of the file",
						       s->bs->filename, c->what,
						       (unsigned long long)off);
				memset((uint8_t *)e->table + n, 0, s->cluster_size - (uint64_t)n);
			}
		}
		e->offset = off;
		e->dirty = false;
	}
	if (!read)
		memset(e->table, 0, s->cluster_size);
	e->ref++;
	e->lru = ++c->lru_clock;
	*table = e->table;
	return 0;
}

int qcow2_cache_get(struct qcow2_cache *c, uint64_t off, void **table)
{
	return cache_do_get(c, off, table, true);
}

int qcow2_cache_get_empty(struct qcow2_cache *c, uint64_t off, void **table)
{
	return cache_do_get(c, off, table, false);
}

static struct qcow2_cache_entry *entry_of(struct qcow2_cache *c, const void *table)
{
	size_t i = (size_t)((const uint8_t *)table - c->mem) >> c->s->cluster_bits;

	return i < (size_t)c->n ? &c->e[i] : NULL;
}

void qcow2_cache_put(struct qcow2_cache *c, void **table)
{
	struct qcow2_cache_entry *e = entry_of(c, *table);

	if (e && e->ref > 0)
		e->ref--;
	*table = NULL;
}

void qcow2_cache_mark_dirty(struct qcow2_cache *c, void *table)
{
	struct qcow2_cache_entry *e = entry_of(c, table);

	if (e)
		e->dirty = true;
}

void qcow2_cache_discard(struct qcow2_cache *c, uint64_t off)
{
	struct qcow2_cache_entry *e = cache_lookup(c, off);

	if (e && !e->ref) {
		e->offset = 0;
		e->dirty = false;
	}
}

void qcow2_cache_set_dependency(struct qcow2_cache *c, struct qcow2_cache *depends)
{
	c->depends = depends;
}

/* The compressed-cluster buffer first (its clusters are referenced by dirty L2 tables), then the
 * L2 tables, each cache writing what it depends on before its own tables: without lazy
 * refcounts that is the refcount blocks, with a sync, before any L2 table; with them the L2
 * tables go first. Then the refcount blocks left. No final sync. */
int qcow2_flush_caches(struct qcow2 *s)
{
	int ret;

	assert(qcow2_lock_held(s));
	ret = qcow2_cbuf_settle(s);
	if (ret == 0)
		ret = qcow2_cache_flush(s->l2_cache);
	if (ret == 0)
		ret = qcow2_cache_flush(s->rb_cache);
	return ret;
}

int qcow2_flush(struct bdev *bs)
{
	struct qcow2 *s = bs->opaque;
	int ret = qcow2_flush_caches(s);

	return ret < 0 ? ret : qcow2_sync(s);
}
