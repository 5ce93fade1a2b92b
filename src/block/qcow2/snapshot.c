/*
 * Internal snapshots, interoperable with qemu-img's: a snapshot is a copy of the L1 table plus
 * one more reference to every L2 table and data cluster it reaches. Writes then copy shared
 * clusters (their COPIED flag is clear) instead of overwriting them.
 *
 * Order on create: L1 copy written, refcounts raised, COPIED flags cleared and flushed, then the
 * new snapshot table, then the header switch. Apply and delete raise before they lower. A crash
 * anywhere leaves at most leaked clusters.
 */
#include "block/qcow2/qcow2.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int find_snapshot(struct qcow2 *s, const char *name)
{
	for (uint32_t i = 0; i < s->nb_snapshots; i++)
		if (!strcmp(s->snapshots[i].name, name))
			return (int)i;
	for (uint32_t i = 0; i < s->nb_snapshots; i++)
		if (!strcmp(s->snapshots[i].id, name))
			return (int)i;
	return -1;
}

/* One more (delta +1) or one less (-1, freeing what drops to zero) reference to everything
 * an L1 table reaches. */
static int l1_refs_update(struct qcow2 *s, const uint64_t *l1, uint32_t l1_size, int delta)
{
	int ret = 0;

	for (uint32_t i = 0; i < l1_size && ret == 0; i++) {
		uint64_t l2off = l1[i] & QCOW2_L1E_OFFSET_MASK;
		uint64_t *t;
		if (!l2off)
			continue;
		ret = qcow2_cache_get(s->l2_cache, l2off, (void **)&t);
		if (ret < 0)
			break;
		for (uint64_t j = 0; j < s->l2_size && ret == 0; j++) {
			uint64_t e = __builtin_bswap64(t[j]), off, len = s->cluster_size;
			if (e & QCOW2_OFLAG_COMPRESSED)
				qcow2_compressed_extent(s, e, &off, &len);
			else
				off = e & QCOW2_L2E_OFFSET_MASK;
			if (!off)
				continue;
			ret = delta < 0 ? qcow2_free_clusters(s, off, len)
					: qcow2_refcount_update(s, off, len, delta);
		}
		qcow2_cache_put(s->l2_cache, (void **)&t);
		if (ret == 0)
			ret = delta < 0 ? qcow2_free_clusters(s, l2off, s->cluster_size)
					: qcow2_refcount_update(s, l2off, s->cluster_size, delta);
	}
	return ret;
}

int qcow2_fix_copied(struct qcow2 *s)
{
	int ret = 0;

	for (uint32_t i = 0; i < s->l1_size && ret == 0; i++) {
		uint64_t l2off = s->l1[i] & QCOW2_L1E_OFFSET_MASK, rc;
		uint64_t *t;
		if (!l2off)
			continue;
		ret = qcow2_refcount_get(s, l2off >> s->cluster_bits, &rc);
		if (ret < 0)
			break;
		uint64_t want = l2off | (rc == 1 ? QCOW2_OFLAG_COPIED : 0);
		if (s->l1[i] != want) {
			s->l1[i] = want;
			ret = qcow2_l1_write(s, i, 1);
			if (ret < 0)
				break;
		}
		/* Shared tables get their flags fixed too: flags mean nothing to a snapshot, and a
		 * copy of the table made on the next write must not claim shared clusters. */
		ret = qcow2_cache_get(s->l2_cache, l2off, (void **)&t);
		if (ret < 0)
			break;
		for (uint64_t j = 0; j < s->l2_size && ret == 0; j++) {
			uint64_t e = __builtin_bswap64(t[j]), host = e & QCOW2_L2E_OFFSET_MASK;
			if ((e & QCOW2_OFLAG_COMPRESSED) || !host)
				continue;
			ret = qcow2_refcount_get(s, host >> s->cluster_bits, &rc);
			uint64_t ne =
			    rc == 1 ? (e | QCOW2_OFLAG_COPIED) : (e & ~QCOW2_OFLAG_COPIED);
			if (ret == 0 && ne != e) {
				t[j] = __builtin_bswap64(ne);
				qcow2_cache_mark_dirty(s->l2_cache, t);
			}
		}
		qcow2_cache_put(s->l2_cache, (void **)&t);
	}
	return ret;
}

static size_t entry_size(const struct qcow2_snapshot *sn)
{
	return (40 + 24 + strlen(sn->id) + strlen(sn->name) + 7) & ~(size_t)7;
}

/* Write a new snapshot table for sns[0..n), switch the header to it, free the old one. */
static int table_replace(struct qcow2 *s, struct qcow2_snapshot *sns, uint32_t n)
{
	size_t size = 0, off = 0;
	uint8_t *buf;
	int64_t toff = 0;
	int ret = 0;

	for (uint32_t i = 0; i < n; i++)
		size += entry_size(&sns[i]);
	buf = calloc(1, size ? size : 1);
	if (!buf)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	for (uint32_t i = 0; i < n; i++) {
		const struct qcow2_snapshot *sn = &sns[i];
		size_t il = strlen(sn->id), nl = strlen(sn->name);
		uint8_t *e = buf + off;
		be64_put(e, sn->l1_offset);
		be32_put(e + 8, sn->l1_size);
		be16_put(e + 12, (uint16_t)il);
		be16_put(e + 14, (uint16_t)nl);
		be32_put(e + 16, sn->date_sec);
		be32_put(e + 20, sn->date_nsec);
		be64_put(e + 24, sn->vm_clock_nsec);
		be32_put(e + 32, sn->vm_state_size > UINT32_MAX ? 0 : (uint32_t)sn->vm_state_size);
		be32_put(e + 36, 24);
		be64_put(e + 40, sn->vm_state_size);
		be64_put(e + 48, sn->disk_size);
		be64_put(e + 56, sn->icount);
		memcpy(e + 64, sn->id, il);
		memcpy(e + 64 + il, sn->name, nl);
		off += entry_size(sn);
	}
	if (size) {
		toff = qcow2_alloc_clusters(s, (size + s->cluster_size - 1) >> s->cluster_bits);
		if (toff < 0) {
			free(buf);
			return (int)toff;
		}
		ret = bdev_file_pwrite_meta(s->bs, buf, size, (uint64_t)toff, "the snapshot table");
	}
	free(buf);
	if (ret == 0)
		ret = qcow2_flush_caches(s);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret < 0)
		return ret;
	ret = qcow2_header_set_table(s, QCOW2_HDR_NB_SNAPSHOTS, (uint64_t)toff, n);
	if (ret < 0)
		return ret;
	uint64_t old = s->snapshots_offset, old_size = s->snapshots_size;
	s->snapshots_offset = (uint64_t)toff;
	s->snapshots_size = size;
	if (old && old_size)
		ret = qcow2_free_clusters(s, old, old_size);
	return ret;
}

int qcow2_snapshot_table_rewrite(struct qcow2 *s)
{
	return table_replace(s, s->snapshots, s->nb_snapshots);
}

int qcow2_snapshot_list(struct bdev *bs, struct bdev_snapshot **list, int *n)
{
	struct qcow2 *s = bs->opaque;
	struct bdev_snapshot *l;
	int ret = 0;

	qcow2_lock(s);
	l = calloc(s->nb_snapshots ? s->nb_snapshots : 1, sizeof(*l));
	if (!l) {
		ret = err_set(ENOMEM, "%s: out of memory", bs->filename);
		goto out;
	}
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		const struct qcow2_snapshot *sn = &s->snapshots[i];
		snprintf(l[i].id, sizeof(l[i].id), "%s", sn->id);
		snprintf(l[i].name, sizeof(l[i].name), "%s", sn->name);
		l[i].vm_state_size = sn->vm_state_size;
		l[i].date_sec = sn->date_sec;
		l[i].date_nsec = sn->date_nsec;
		l[i].vm_clock_nsec = sn->vm_clock_nsec;
		l[i].icount = sn->icount;
		l[i].disk_size = sn->disk_size;
	}
	*list = l;
	*n = (int)s->nb_snapshots;
out:
	qcow2_unlock(s);
	return ret;
}

static int do_create(struct qcow2 *s, const char *name)
{
	uint64_t bytes = (uint64_t)s->l1_size * 8, next_id = 1;
	int64_t l1off = 0;
	int ret;

	if (!*name || strlen(name) > 255)
		return err_set(EINVAL, "%s: snapshot name must be 1 to 255 bytes", s->bs->filename);
	if (find_snapshot(s, name) >= 0)
		return err_set(EEXIST, "%s: a snapshot named '%s' already exists", s->bs->filename,
			       name);
	if (s->nb_snapshots >= QCOW2_MAX_SNAPSHOTS)
		return err_set(EFBIG, "%s: too many snapshots", s->bs->filename);
	for (uint32_t i = 0; i < s->nb_snapshots; i++) {
		uint64_t id = strtoull(s->snapshots[i].id, NULL, 10);
		if (id >= next_id)
			next_id = id + 1;
	}
	ret = qcow2_flush_caches(s);
	if (ret < 0)
		return ret;
	if (bytes) {
		l1off = qcow2_alloc_clusters(s, (bytes + s->cluster_size - 1) >> s->cluster_bits);
		if (l1off < 0)
			return (int)l1off;
		uint64_t *copy = malloc(bytes);
		if (!copy)
			return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
		for (uint32_t i = 0; i < s->l1_size; i++)
			copy[i] = __builtin_bswap64(s->l1[i] & ~QCOW2_OFLAG_COPIED);
		ret = bdev_file_pwrite_meta(s->bs, copy, bytes, (uint64_t)l1off,
					    "the snapshot L1 table");
		free(copy);
		if (ret < 0)
			return ret;
	}
	ret = l1_refs_update(s, s->l1, s->l1_size, +1);
	if (ret == 0)
		ret = qcow2_fix_copied(s);
	if (ret == 0)
		ret = qcow2_flush_caches(s);
	if (ret < 0)
		return ret;

	struct qcow2_snapshot *sns = calloc(s->nb_snapshots + 1, sizeof(*sns));
	if (!sns)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	if (s->nb_snapshots)
		memcpy(sns, s->snapshots, s->nb_snapshots * sizeof(*sns));
	struct qcow2_snapshot *sn = &sns[s->nb_snapshots];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)next_id);
	sn->id = strdup(idbuf);
	sn->name = strdup(name);
	sn->l1_offset = (uint64_t)l1off;
	sn->l1_size = s->l1_size;
	sn->date_sec = (uint32_t)ts.tv_sec;
	sn->date_nsec = (uint32_t)ts.tv_nsec;
	sn->disk_size = s->bs->size;
	sn->icount = 0;
	if (!sn->id || !sn->name) {
		free(sn->id);
		free(sn->name);
		free(sns);
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	}
	ret = table_replace(s, sns, s->nb_snapshots + 1);
	if (ret < 0) {
		free(sn->id);
		free(sn->name);
		free(sns);
		return ret;
	}
	free(s->snapshots);
	s->snapshots = sns;
	s->nb_snapshots++;
	return 0;
}

static int load_l1(struct qcow2 *s, const struct qcow2_snapshot *sn, uint64_t **out)
{
	uint64_t *l1 = calloc(sn->l1_size ? sn->l1_size : 1, 8);

	if (!l1)
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	if (sn->l1_size && pread(s->fd, l1, (size_t)sn->l1_size * 8, (off_t)sn->l1_offset) !=
			       (ssize_t)sn->l1_size * 8) {
		free(l1);
		return err_set(EIO, "%s: could not read the L1 table of snapshot '%s'",
			       s->bs->filename, sn->name);
	}
	for (uint32_t i = 0; i < sn->l1_size; i++)
		l1[i] = __builtin_bswap64(l1[i]) & ~QCOW2_OFLAG_COPIED;
	*out = l1;
	return 0;
}

static int do_apply(struct qcow2 *s, const char *name)
{
	int idx = find_snapshot(s, name);
	uint64_t *snl1 = NULL, *old = NULL;
	int ret;

	if (idx < 0)
		return err_set(ENOENT, "%s: no snapshot named '%s'", s->bs->filename, name);
	struct qcow2_snapshot *sn = &s->snapshots[idx];
	ret = qcow2_flush_caches(s);
	if (ret == 0 && sn->l1_size > s->l1_size)
		ret = qcow2_grow_l1(s, sn->l1_size);
	if (ret == 0)
		ret = load_l1(s, sn, &snl1);
	if (ret == 0)
		ret = l1_refs_update(s, snl1, sn->l1_size, +1);
	if (ret == 0)
		ret = qcow2_flush_caches(s);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0 && !(old = malloc((size_t)s->l1_size * 8 + 8)))
		ret = err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	if (ret < 0)
		goto out;
	memcpy(old, s->l1, (size_t)s->l1_size * 8);
	uint32_t old_size = s->l1_size;
	for (uint32_t i = 0; i < s->l1_size; i++)
		s->l1[i] = i < sn->l1_size ? snl1[i] : 0;
	ret = qcow2_l1_write(s, 0, s->l1_size);
	if (ret == 0)
		ret = qcow2_sync(s);
	if (ret == 0)
		ret = l1_refs_update(s, old, old_size, -1);
	if (ret == 0)
		ret = qcow2_fix_copied(s);
	if (ret == 0 && sn->disk_size && sn->disk_size != s->bs->size) {
		ret = qcow2_header_write_u64(s, QCOW2_HDR_SIZE, sn->disk_size);
		if (ret == 0)
			s->bs->size = sn->disk_size;
	}
	if (ret == 0)
		ret = qcow2_flush_caches(s);
	if (ret == 0)
		ret = qcow2_sync(s);
out:
	free(snl1);
	free(old);
	return ret;
}

static int do_delete(struct qcow2 *s, const char *name)
{
	int idx = find_snapshot(s, name);
	uint64_t *snl1 = NULL;
	int ret;

	if (idx < 0)
		return err_set(ENOENT, "%s: no snapshot named '%s'", s->bs->filename, name);
	struct qcow2_snapshot victim = s->snapshots[idx];
	ret = load_l1(s, &victim, &snl1);
	if (ret < 0)
		return ret;
	struct qcow2_snapshot *sns = calloc(s->nb_snapshots, sizeof(*sns));
	if (!sns) {
		free(snl1);
		return err_set(ENOMEM, "%s: out of memory", s->bs->filename);
	}
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->nb_snapshots; i++)
		if ((int)i != idx)
			sns[n++] = s->snapshots[i];
	ret = table_replace(s, sns, n);
	if (ret < 0) {
		free(sns);
		free(snl1);
		return ret;
	}
	free(s->snapshots);
	s->snapshots = sns;
	s->nb_snapshots = n;
	ret = l1_refs_update(s, snl1, victim.l1_size, -1);
	if (ret == 0 && victim.l1_size)
		ret = qcow2_free_clusters(s, victim.l1_offset, (uint64_t)victim.l1_size * 8);
	if (ret == 0)
		ret = qcow2_fix_copied(s);
	if (ret == 0)
		ret = qcow2_flush_caches(s);
	if (ret == 0)
		ret = qcow2_sync(s);
	free(victim.id);
	free(victim.name);
	free(snl1);
	return ret;
}

#define LOCKED_NAME_OP(fn, impl)                                                                   \
	int fn(struct bdev *bs, const char *name)                                                  \
	{                                                                                          \
		struct qcow2 *s = bs->opaque;                                                      \
		qcow2_lock_excl(s);                                                                \
		int ret = impl(s, name);                                                           \
		s->meta_built = false; /* tables moved: map them again on the next write */        \
		qcow2_unlock(s);                                                                   \
		return ret;                                                                        \
	}
LOCKED_NAME_OP(qcow2_snapshot_create, do_create)
LOCKED_NAME_OP(qcow2_snapshot_apply, do_apply)
LOCKED_NAME_OP(qcow2_snapshot_delete, do_delete)
