/*
 * Filling one slot of the copy engine (the ring and its threads are in convert.c): block
 * status + read + zero detection for one batch, on a reader thread of its own.
 *
 * No copy where none is needed: a whole unit that block status places at a file offset (raw
 * data, a plain qcow2 cluster) is read where it lies, through a read-only mapping of that file,
 * and a whole unit that block status calls zero points at one shared zero unit; only the rest
 * is read (or cleared) into the slot's buffer. The writer drops a slot's mapped pages once the
 * slot is written, so the process does not keep the source's page cache mapped.
 *
 * Several readers run this at once, each on its own slot and with its own block-status cache
 * (struct reader); what they share is read-only (the options, the sources' bdevs, whose
 * drivers are safe to call from several threads) but for the table of mapped files, which
 * file_map changes under the engine lock.
 */
#include "tools/convert_priv.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

static bool is_zero(const uint8_t *p, size_t len)
{
	size_t i = 0;

	/* Data clusters almost always fail on the first word; zero ones run at memory speed. */
	for (; i + 32 <= len; i += 32) {
		uint64_t a, b, c, d;
		memcpy(&a, p + i, 8);
		memcpy(&b, p + i + 8, 8);
		memcpy(&c, p + i + 16, 8);
		memcpy(&d, p + i + 24, 8);
		if (a | b | c | d)
			return false;
	}
	for (; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* --salvage: read [off, off+n) of b sector by sector after a failed read; sectors that fail
 * again read as zeroes. Each run of failed sectors gets one warning, like qemu-img's (which
 * warns per sector). */
static int read_salvage(const struct convert_opts *o, struct bdev *b, uint64_t off, uint8_t *p,
			uint64_t n)
{
	uint64_t bad_start = 0, bad_len = 0;
	char why[160] = "";

	for (uint64_t done = 0; done < n;) {
		uint64_t step = 512 - (off + done) % 512;
		if (step > n - done)
			step = n - done;
		int ret = bdev_read(b, off + done, p + done, step);
		if (ret < 0) {
			if (!bad_len) {
				bad_start = off + done;
				snprintf(why, sizeof(why), "%s", err_msg());
			}
			bad_len += step;
			memset(p + done, 0, step);
		}
		done += step;
		if (bad_len && (ret == 0 || done == n)) {
			if (!o->quiet)
				fprintf(stderr,
					"ligero: warning: %s; %llu bytes from offset %llu taken as "
					"zeroes\n",
					why, (unsigned long long)bad_len,
					(unsigned long long)bad_start);
			bad_len = 0;
		}
	}
	err_clear();
	return 0;
}

/* The whole of file mapped read-only, or NULL (not mappable: read it instead). The table is
 * shared by the readers: looked up and extended under the engine lock (the mmap of a file is
 * done once, so holding the lock across it costs nothing worth a second lock). */
static const uint8_t *file_map(struct engine *e, const struct bdev *file, uint64_t *len)
{
	const uint8_t *p = NULL;
	struct stat st;

	*len = 0;
	pthread_mutex_lock(&e->lock);
	for (int i = 0; i < e->nmaps; i++)
		if (e->maps[i].file == file) {
			*len = e->maps[i].len;
			p = e->maps[i].p;
			goto out;
		}
	if (e->nmaps == MAX_MAPS)
		goto out;
	struct fmap *m = &e->maps[e->nmaps++];
	m->file = file;
	m->p = NULL;
	m->len = 0;
	if (file->fd >= 0 && fstat(file->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size <= SIZE_MAX) {
		void *q = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, file->fd, 0);
		if (q != MAP_FAILED) {
			madvise(q, (size_t)st.st_size, MADV_SEQUENTIAL);
			m->p = q;
			m->len = (uint64_t)st.st_size;
		}
	}
	*len = m->len;
	p = m->p;
out:
	pthread_mutex_unlock(&e->lock);
	return p;
}

/* Point the whole units inside [pos, pos+n) (data of extent r->ext) at the mapped file; returns
 * the number of leading bytes of the piece before the first such unit, or n if none could be
 * mapped. Units after the last mapped one are left for the caller to read (tail). */
static uint64_t map_units(struct reader *r, struct slot *s, uint64_t pos, uint64_t n, uint64_t soff,
			  uint64_t *tail)
{
	struct engine *e = r->e;
	const struct bdev_extent *x = &r->ext;
	uint64_t flen, rel = pos - s->off;
	uint64_t first = (rel + e->unit - 1) / e->unit, last = (rel + n) / e->unit;

	*tail = 0;
	if (e->o->salvage || !(x->flags & BDEV_ST_OFFSET) || (x->flags & BDEV_ST_COMPRESSED) ||
	    !x->file || first >= last)
		return n;
	const uint8_t *base = file_map(e, x->file, &flen);
	uint64_t host = x->host_offset + (soff - x->offset); /* where pos lies in the file */
	if (!base || host > flen || n > flen - host)
		return n;
	for (uint64_t j = first; j < last; j++)
		s->u[j].src = base + host + (j * e->unit - rel);
	s->mapped[s->nmapped].iov_base = (void *)(base + host + (first * e->unit - rel));
	s->mapped[s->nmapped].iov_len = (last - first) * e->unit;
	s->nmapped++;
	*tail = rel + n - last * e->unit;
	return first * e->unit - rel;
}

/* Read [off, off+len) of the concatenated sources into the slot: whole units of data that lie
 * at a file offset are mapped rather than read, and units that block status reports as zero
 * are marked so that they need neither a read nor a scan. */
static int read_sources(struct reader *r, struct slot *s)
{
	struct engine *e = r->e;
	uint64_t pos = s->off, end = s->off + s->len, base = 0;
	int i = 0;

	while (pos < end) {
		while (i < e->nsrc && pos >= base + e->src[i]->size)
			base += e->src[i++]->size;
		if (i >= e->nsrc)
			return err_set(EINVAL, "internal: read past the sources");
		struct bdev *b = e->src[i];
		uint64_t soff = pos - base, slen = b->size - soff;
		if (slen > end - pos)
			slen = end - pos;
		if (r->ext_src != i || soff < r->ext.offset ||
		    soff >= r->ext.offset + r->ext.length) {
			int ret = bdev_block_status_chain(b, soff, b->size - soff, &r->ext);
			if (ret < 0)
				return ret;
			r->ext_src = i;
		}
		uint64_t n = r->ext.offset + r->ext.length - soff;
		if (n > slen)
			n = slen;
		uint8_t *p = s->in + (pos - s->off);
		if (r->ext.flags & BDEV_ST_ZERO) {
			uint64_t rel = pos - s->off;
			uint64_t first = (rel + e->unit - 1) / e->unit;
			uint64_t last = (rel + n) / e->unit;
			/* whole units point at the shared zero unit; partial ones are cleared */
			if (first >= last) {
				memset(p, 0, n);
			} else {
				memset(p, 0, first * e->unit - rel);
				memset(s->in + last * e->unit, 0, rel + n - last * e->unit);
			}
			for (uint64_t j = first; j < last; j++)
				s->u[j].src = e->zero_unit;
			if (pos + n == s->off + s->len)
				last = s->nunits;
			for (uint64_t j = first; j < last; j++)
				s->u[j].zero_known = true;
		} else {
			uint64_t tail, head = map_units(r, s, pos, n, soff, &tail);
			int ret = bdev_read(b, soff, p, head);
			if (ret < 0 && e->o->salvage)
				ret = read_salvage(e->o, b, soff, p, head);
			if (ret == 0 && head < n && tail)
				ret = bdev_read(b, soff + n - tail, p + n - tail, tail);
			if (ret < 0)
				return ret;
		}
		pos += n;
	}
	return 0;
}

/* Units in a zero run shorter than -S are written as data after all. */
static void apply_min_sparse(struct engine *e, struct slot *s)
{
	size_t j = 0;

	while (j < s->nunits) {
		if (s->u[j].kind != U_ZERO && !(s->u[j].kind == U_SKIP && s->u[j].zero_known)) {
			j++;
			continue;
		}
		size_t k = j;
		uint64_t bytes = 0;
		while (k < s->nunits &&
		       (s->u[k].kind == U_ZERO || (s->u[k].kind == U_SKIP && s->u[k].zero_known))) {
			bytes += e->unit;
			k++;
		}
		if (!e->o->min_sparse || bytes < e->o->min_sparse)
			for (size_t m = j; m < k; m++)
				s->u[m].kind = U_DATA;
		j = k;
	}
}

int convert_fill_slot(struct reader *r, struct slot *s, uint64_t off)
{
	struct engine *e = r->e;
	const struct convert_opts *o = e->o;
	int ret;

	s->off = off;
	s->len = e->total - off < e->batch ? e->total - off : e->batch;
	s->nunits = (s->len + e->unit - 1) / e->unit;
	s->ncomp = s->next_claim = s->pending = 0;
	s->nmapped = 0;
	memset(s->u, 0, s->nunits * sizeof(*s->u));
	ret = read_sources(r, s);
	if (ret == 0 && o->diff_target)
		ret = bdev_read(e->dst, s->off, s->cur, s->len);
	if (ret < 0)
		return ret;
	for (size_t j = 0; j < s->nunits; j++) {
		uint64_t at = j * e->unit;
		size_t ulen = s->len - at < e->unit ? s->len - at : e->unit;
		struct unit *u = &s->u[j];
		bool zero = u->zero_known || is_zero(convert_unit_data(e, s, j), ulen);
		u->zero_known = zero;
		if (o->diff_target && !memcmp(convert_unit_data(e, s, j), s->cur + at, ulen))
			u->kind = U_SKIP;
		else if (zero)
			u->kind = o->target_is_zero && !o->diff_target ? U_SKIP : U_ZERO;
		else
			u->kind = o->compress ? U_COMP : U_DATA;
		/* A compressed cluster replaces the whole cluster: a short last one is padded with
		 * zeroes, which is only right where the target reads zero beyond the sources. */
		if (u->kind == U_COMP && ulen < e->unit && s->off + s->len < e->dst->size &&
		    (!o->target_is_zero || o->diff_target))
			u->kind = U_DATA;
		if (o->diff_target && u->kind == U_SKIP)
			u->zero_known =
			    false; /* equal to the target: not a zero run to reconsider */
	}
	if (!o->compress)
		apply_min_sparse(e, s);
	else if (s->len % e->unit)
		memset(s->in + s->len, 0,
		       e->unit - s->len % e->unit); /* see worker_main (convert.c) */
	for (size_t j = 0; j < s->nunits; j++)
		if (s->u[j].kind == U_COMP)
			s->comp[s->ncomp++] = j;
	return 0;
}
