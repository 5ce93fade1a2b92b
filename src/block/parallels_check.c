/*
 * Consistency check of a Parallels image, read-only.
 *
 * Counted as qemu-img check counts a parallels image, so the two agree on a sound image and on
 * the common faults: the in-use flag (a writer did not close it, or still has it open) and BAT
 * entries outside the file are corruptions, each allocated entry is an allocated cluster, one not
 * directly after the previous one in the file is fragmented, and bytes after the last cluster
 * are leaked (in clusters, rounded up). Beyond qemu-img 7.2 it finds BAT entries that share host
 * bytes with each other or with the format extension (two guest clusters that would change
 * together), entries pointing into the header or BAT, and a malformed extension; and an image
 * with no cluster allocated ends where its data area starts, not one cluster into the file.
 *
 * Cost: one sorted copy of the allocated BAT entries (4 bytes each, at most the BAT's size).
 */
#include "block/block.h"
#include "block/parallels.h"
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 100
#define NAMED_SHARED 16

static void msg(struct bdev_check_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void msg(struct bdev_check_result *res, const char *fmt, ...)
{
	char *line = NULL, **m;
	va_list ap;

	if (res->nmessages > MAX_MESSAGES)
		return;
	if (res->nmessages == MAX_MESSAGES) {
		line = strdup("(further messages suppressed)");
	} else {
		va_start(ap, fmt);
		if (vasprintf(&line, fmt, ap) < 0)
			line = NULL;
		va_end(ap);
	}
	if (!line)
		return;
	m = realloc(res->messages, (res->nmessages + 1) * sizeof(*m));
	if (!m) {
		free(line);
		return;
	}
	res->messages = m;
	res->messages[res->nmessages++] = line;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Host bytes [off, off + cluster) of entries that do not point into the file's data area
 * are not compared: those entries are reported on their own. */
static bool entry_sound(const struct prl_header *h, uint64_t off, uint64_t file_size)
{
	return off >= h->data_start && off < file_size;
}

/* The first entry other than skip whose cluster overlaps host bytes [off, off + len). */
static uint32_t entry_overlapping(const struct prl_header *h, const uint32_t *bat, uint64_t off,
				  uint64_t len, uint32_t skip)
{
	for (uint32_t i = 0; i < h->bat_entries; i++) {
		uint64_t o = prl_entry_offset(h, bat[i]);
		if (i != skip && o && o < off + len && off < o + h->cluster)
			return i;
	}
	return UINT32_MAX;
}

/* Whether an entry of the sorted v overlaps host bytes [off, off + cluster). */
static bool sorted_overlap(const struct prl_header *h, const uint32_t *v, uint32_t n, uint64_t off)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) { /* the first entry whose cluster ends after off */
		uint32_t mid = lo + (hi - lo) / 2;
		if (prl_entry_offset(h, v[mid]) + h->cluster <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && prl_entry_offset(h, v[lo]) < off + h->cluster;
}

/* Entries are offsets in units (sectors for v1, clusters for v2): sorted, two overlap when they
 * are closer than a cluster. */
static void check_shared(const struct prl_header *h, const uint32_t *bat, uint64_t file_size,
			 const struct prl_ext *ext, struct bdev_check_result *res)
{
	uint32_t span = h->version == 1 ? h->tracks : 1, n = 0;
	uint64_t shared = 0;
	uint32_t *v = malloc(((size_t)h->bat_entries + 1) * sizeof(*v));

	if (!v) {
		res->check_errors++;
		msg(res, "ERROR out of memory comparing %u BAT entries", h->bat_entries);
		return;
	}
	for (uint32_t i = 0; i < h->bat_entries; i++)
		if (bat[i] && entry_sound(h, prl_entry_offset(h, bat[i]), file_size))
			v[n++] = bat[i];
	qsort(v, n, sizeof(*v), cmp_u32);
	for (uint32_t i = 1; i < n; i++) {
		if (v[i] - v[i - 1] >= span)
			continue;
		res->corruptions++;
		/* Naming the entries takes a pass over the BAT: only for the first few. */
		if (++shared > NAMED_SHARED)
			continue;
		uint64_t off = prl_entry_offset(h, v[i]);
		uint32_t a = entry_overlapping(h, bat, off, 1, UINT32_MAX);
		uint32_t b = entry_overlapping(h, bat, off, 1, a);
		msg(res, "ERROR BAT entries %u and %u share the host cluster at offset %llu", a, b,
		    (unsigned long long)off);
	}
	if (shared > NAMED_SHARED)
		msg(res, "ERROR %llu more BAT entries share host clusters with others",
		    (unsigned long long)(shared - NAMED_SHARED));
	for (size_t i = 0; i < ext->n && !ext->bad[0]; i++) {
		uint64_t off = ext->clusters[i];
		if (!sorted_overlap(h, v, n, off))
			continue;
		res->corruptions++;
		if (++shared <= NAMED_SHARED)
			msg(res,
			    "ERROR BAT entry %u shares host bytes with the format extension "
			    "at offset %llu",
			    entry_overlapping(h, bat, off, h->cluster, UINT32_MAX),
			    (unsigned long long)off);
	}
	free(v);
}

/* Per entry: position checks and qemu-img's allocation, fragmentation and end counts. */
static uint64_t check_entries(const struct prl_header *h, const uint32_t *bat, uint64_t file_size,
			      struct bdev_check_result *res)
{
	uint64_t high = 0, prev = 0;

	for (uint32_t i = 0; i < h->bat_entries; i++) {
		uint64_t off = prl_entry_offset(h, bat[i]);
		if (!off) {
			prev = 0;
			continue;
		}
		if (off >= file_size) {
			res->corruptions++;
			msg(res, "ERROR BAT entry %u points at offset %llu, outside the image", i,
			    (unsigned long long)off);
		} else if (off < h->data_start) {
			res->corruptions++;
			msg(res,
			    "ERROR BAT entry %u points at offset %llu, inside the header or BAT", i,
			    (unsigned long long)off);
		}
		res->allocated_clusters++;
		if (off > high)
			high = off;
		if (prev && prev + h->cluster != off)
			res->fragmented_clusters++;
		prev = off;
	}
	return high;
}

int prl_check(const struct prl_header *h, const uint32_t *bat, const struct prl_ext *ext,
	      uint64_t file_size, struct bdev_check_result *res)
{
	uint64_t end;

	if (h->inuse == PRL_INUSE_MAGIC) {
		res->corruptions++;
		msg(res, "ERROR image is marked in use: it was not closed cleanly, or its "
			 "container is running");
	}
	res->total_clusters = h->bat_entries;
	uint64_t high = check_entries(h, bat, file_size, res);
	check_shared(h, bat, file_size, ext, res);
	if (ext->bad[0]) {
		res->corruptions++;
		msg(res, "ERROR format extension at offset %llu ignored: %s",
		    (unsigned long long)(h->ext_off * PRL_SECTOR), ext->bad);
	} else {
		for (size_t i = 0; i < ext->n; i++)
			if (ext->clusters[i] > high)
				high = ext->clusters[i];
	}
	end = high ? high + h->cluster : h->data_start;
	res->image_end_offset = end;
	if (file_size > end) {
		res->leaks += (int64_t)((file_size - end + h->cluster - 1) / h->cluster);
		msg(res, "ERROR %llu bytes leaked at the end of the image",
		    (unsigned long long)(file_size - end));
	}
	return 0;
}
