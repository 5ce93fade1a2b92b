/* Split virtqueue parsing: see queue.h for the rules every guest value is held to. */
#include "vmm/virtio/queue.h"
#include "util/error.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <string.h>

/* Ring layout (2.7.2): desc 16 bytes each; avail: flags, idx, ring[size], used_event;
 * used: flags, idx, ring[size] of {id, len}, avail_event. All little endian, as on x86. */
#define DESC_SIZE 16u

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static inline uint16_t ld16(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
}

static inline void st16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, v, __ATOMIC_RELAXED);
}

/* One load per field, so a value we validated is the value we use. */
static void desc_load(const uint8_t *p, struct desc *d)
{
	d->addr = __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
	d->len = __atomic_load_n((const uint32_t *)(p + 8), __ATOMIC_RELAXED);
	d->flags = __atomic_load_n((const uint16_t *)(p + 12), __ATOMIC_RELAXED);
	d->next = __atomic_load_n((const uint16_t *)(p + 14), __ATOMIC_RELAXED);
}

static uint8_t *area(const struct virtio_mem *mem, uint64_t gpa, uint64_t len, uint64_t align,
		     const char *what)
{
	uint8_t *p;

	if (gpa & (align - 1)) {
		err_set(EINVAL, "virtqueue %s at 0x%llx is not %llu-byte aligned", what,
			(unsigned long long)gpa, (unsigned long long)align);
		return NULL;
	}
	p = virtio_mem_range(mem, gpa, len);
	if (!p)
		err_set(EINVAL, "virtqueue %s [0x%llx, +%llu) is not inside guest RAM", what,
			(unsigned long long)gpa, (unsigned long long)len);
	return p;
}

int virtq_start(struct virtq *q, const struct virtio_mem *mem)
{
	uint64_t n = q->size;

	q->started = false;
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return err_set(EINVAL, "virtqueue size %llu is not a power of two <= %u",
			       (unsigned long long)n, VIRTQ_MAX_SIZE);
	q->desc = area(mem, q->desc_gpa, DESC_SIZE * n, 16, "descriptor table");
	if (!q->desc)
		return -EINVAL;
	q->avail = area(mem, q->avail_gpa, 6 + 2 * n, 2, "avail ring");
	if (!q->avail)
		return -EINVAL;
	q->used = area(mem, q->used_gpa, 6 + 8 * n, 4, "used ring");
	if (!q->used)
		return -EINVAL;
	q->mem = mem;
	q->last_avail = 0;
	q->used_idx = 0;
	q->used_pending = 0;
	q->signalled_used = 0;
	q->signalled_valid = false;
	q->inflight = 0;
	q->started = true;
	return 0;
}

void virtq_stop(struct virtq *q)
{
	q->started = false;
	q->desc = q->avail = q->used = NULL;
}

static uint16_t avail_idx(struct virtq *q)
{
	/* Acquire: ring entries the guest wrote before bumping idx are visible after this. */
	return __atomic_load_n((const uint16_t *)(q->avail + 2), __ATOMIC_ACQUIRE);
}

bool virtq_has_avail(struct virtq *q)
{
	return q->started && avail_idx(q) != q->last_avail;
}

/* Append one validated buffer to the element. Writable buffers must follow readable ones. */
static int elem_add(struct virtq *q, struct virtq_elem *e, const struct desc *d)
{
	void *p = virtio_mem_range(q->mem, d->addr, d->len);
	bool wr = d->flags & VRING_DESC_F_WRITE;
	struct iovec *v;

	if (!p)
		return err_set(EINVAL, "descriptor buffer [0x%llx, +%u) is not inside guest RAM",
			       (unsigned long long)d->addr, d->len);
	if (!wr && e->nin)
		return err_set(EINVAL, "device-readable descriptor after a writable one");
	if (d->len == 0)
		return 0;
	/* The iovec array holds q->size entries: a chain of more buffers is the guest's error. */
	if (e->nout + e->nin >= q->size)
		return err_set(EINVAL, "descriptor chain from %u has more than %u buffers", e->head,
			       q->size);
	v = &e->iov[e->nout + e->nin];
	v->iov_base = p;
	v->iov_len = d->len;
	if (wr) {
		e->nin++;
		e->in_len += d->len;
	} else {
		e->nout++;
		e->out_len += d->len;
	}
	return 0;
}

/* Enter an indirect table: returns its host pointer and entry count, or NULL. */
static uint8_t *indirect_table(struct virtq *q, const struct desc *d, bool nested, uint32_t *n)
{
	uint8_t *t;

	if (!q->indirect) {
		err_set(EINVAL, "indirect descriptor but INDIRECT_DESC was not negotiated");
		return NULL;
	}
	if (nested) {
		err_set(EINVAL, "indirect descriptor inside an indirect table");
		return NULL;
	}
	if (d->flags & VRING_DESC_F_NEXT) {
		err_set(EINVAL, "indirect descriptor with NEXT set");
		return NULL;
	}
	if (d->len == 0 || d->len % DESC_SIZE || d->len / DESC_SIZE > q->size) {
		err_set(EINVAL, "indirect table of %u bytes (queue size %u)", d->len, q->size);
		return NULL;
	}
	t = virtio_mem_range(q->mem, d->addr, d->len);
	if (!t)
		err_set(EINVAL, "indirect table [0x%llx, +%u) is not inside guest RAM",
			(unsigned long long)d->addr, d->len);
	*n = d->len / DESC_SIZE;
	return t;
}

/*
 * Walk the chain starting at head. Loops are bounded per table: at most tsize descriptors are
 * read from the table being walked (the ring's, then an indirect one, which ends the chain).
 * The indirect descriptor itself is no buffer and counts only in the ring's table: Linux's
 * virtio_blk puts seg_max + 2 = queue size entries in one indirect table, which is legal.
 * Buffers are bounded separately, by elem_add.
 */
static int walk_chain(struct virtq *q, uint16_t head, struct virtq_elem *e)
{
	const uint8_t *table = q->desc;
	uint32_t tsize = q->size, count = 0, i = head;
	bool in_indirect = false;
	struct desc d;
	int ret;

	for (;;) {
		if (++count > tsize)
			return err_set(EINVAL,
				       "descriptor chain from %u has more than %u descriptors in "
				       "one table (loop?)",
				       head, tsize);
		desc_load(table + (size_t)i * DESC_SIZE, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			table = indirect_table(q, &d, in_indirect, &tsize);
			if (!table)
				return -EINVAL;
			in_indirect = true;
			count = 0;
			i = 0;
			continue;
		}
		ret = elem_add(q, e, &d);
		if (ret < 0)
			return ret;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= tsize)
			return err_set(EINVAL, "descriptor next index %u out of range (%u entries)",
				       d.next, tsize);
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_elem *e)
{
	uint16_t idx, pending, head;

	if (!q->started)
		return 0;
	idx = avail_idx(q);
	pending = (uint16_t)(idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size)
		return err_set(EINVAL, "avail index %u is %u entries past ours (queue size %u)",
			       idx, pending, q->size);
	if (q->inflight >= q->size)
		return err_set(EINVAL, "more than %u chains in flight", q->size);
	head = ld16(q->avail + 4 + 2 * (size_t)(q->last_avail & (q->size - 1)));
	if (head >= q->size)
		return err_set(EINVAL, "avail ring head %u out of range (queue size %u)", head,
			       q->size);
	e->head = head;
	e->nout = e->nin = 0;
	e->out_len = e->in_len = 0;
	if (walk_chain(q, head, e) < 0)
		return -EINVAL;
	q->last_avail++;
	q->inflight++;
	return 1;
}

int virtq_fill(struct virtq *q, uint16_t head, uint32_t len)
{
	uint8_t *slot;

	if (!q->started)
		return -EINVAL;
	if (head >= q->size || q->inflight == 0)
		return err_set(EINVAL, "pushing chain %u that was not popped", head);
	slot =
	    q->used + 4 + 8 * (size_t)((uint16_t)(q->used_idx + q->used_pending) & (q->size - 1));
	__atomic_store_n((uint32_t *)slot, (uint32_t)head, __ATOMIC_RELAXED);
	__atomic_store_n((uint32_t *)(slot + 4), len, __ATOMIC_RELAXED);
	q->used_pending++;
	q->inflight--;
	return 0;
}

void virtq_flush(struct virtq *q)
{
	if (!q->started || !q->used_pending)
		return;
	q->used_idx = (uint16_t)(q->used_idx + q->used_pending);
	q->used_pending = 0;
	/* Release: the elements (and the data in the buffers) are visible before the index. */
	__atomic_store_n((uint16_t *)(q->used + 2), q->used_idx, __ATOMIC_RELEASE);
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	int ret = virtq_fill(q, head, len);

	if (ret == 0)
		virtq_flush(q);
	return ret;
}

void virtq_unpop(struct virtq *q, unsigned n)
{
	if (n > q->inflight)
		n = q->inflight;
	q->last_avail = (uint16_t)(q->last_avail - n);
	q->inflight -= n;
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t old, event;

	if (!q->started)
		return false;
	/* Full barrier: our used->idx store is ordered before reading the guest's event fields. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(ld16(q->avail) & VRING_AVAIL_F_NO_INTERRUPT);
	old = q->signalled_used;
	q->signalled_used = q->used_idx;
	if (!q->signalled_valid) {
		q->signalled_valid = true;
		return true;
	}
	event = ld16(q->avail + 4 + 2 * (size_t)q->size);
	return (uint16_t)(q->used_idx - event - 1) < (uint16_t)(q->used_idx - old);
}

void virtq_notify_off(struct virtq *q)
{
	if (!q->started || q->event_idx)
		return; /* EVENT_IDX: a stale avail_event already keeps the guest quiet */
	st16(q->used, VRING_USED_F_NO_NOTIFY);
}

bool virtq_notify_on(struct virtq *q)
{
	if (!q->started)
		return false;
	if (q->event_idx)
		st16(q->used + 4 + 8 * (size_t)q->size, q->last_avail);
	else
		st16(q->used, 0);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return avail_idx(q) != q->last_avail;
}

void virtq_resume(struct virtq *q, uint16_t last_avail)
{
	if (!q->started)
		return;
	q->last_avail = last_avail;
	q->used_idx = ld16(q->used + 2);
	q->signalled_valid = false;
	q->inflight = 0;
}
