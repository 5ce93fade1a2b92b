/* Virtqueue parser: rings built by hand in a fake guest memory, good and malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/virtio/queue.h"

#define RAM_GPA	 0x100000ull
#define RAM_SIZE 0x40000ull
#define QSIZE	 8
#define DESC	 (RAM_GPA + 0x0000)
#define AVAIL	 (RAM_GPA + 0x1000)
#define USED	 (RAM_GPA + 0x2000)
#define BUF	 (RAM_GPA + 0x10000)
#define ITABLE	 (RAM_GPA + 0x8000)

struct fix {
	uint8_t *ram;
	struct virtio_mem mem;
	struct virtq q;
	struct iovec iov[VIRTQ_MAX_SIZE];
	struct virtq_elem e;
};

static uint8_t *g(struct fix *f, uint64_t gpa)
{
	return f->ram + (gpa - RAM_GPA);
}

static void set_desc(struct fix *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *p = g(f, table) + 16 * i;
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

/* Publish head as the next avail entry. */
static void publish(struct fix *f, uint16_t head)
{
	uint16_t idx;
	memcpy(&idx, g(f, AVAIL + 2), 2);
	memcpy(g(f, AVAIL + 4 + 2 * (idx % f->q.size)), &head, 2);
	idx++;
	memcpy(g(f, AVAIL + 2), &idx, 2);
}

static uint16_t used_idx(struct fix *f)
{
	uint16_t v;
	memcpy(&v, g(f, USED + 2), 2);
	return v;
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	f->ram = calloc(1, RAM_SIZE);
	f->mem.nregions = 1;
	f->mem.r[0] = (struct virtio_mem_region){RAM_GPA, RAM_SIZE, f->ram};
	f->q.size = QSIZE;
	f->q.desc_gpa = DESC;
	f->q.avail_gpa = AVAIL;
	f->q.used_gpa = USED;
	f->q.indirect = true;
	f->e.iov = f->iov;
	assert_int_equal(virtq_start(&f->q, &f->mem), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	free(f->ram);
	free(f);
	return 0;
}

static void normal_chain(void **state)
{
	struct fix *f = *state;
	uint32_t id, len;

	set_desc(f, DESC, 0, BUF, 16, VRING_DESC_F_NEXT, 3);
	set_desc(f, DESC, 3, BUF + 100, 512, VRING_DESC_F_NEXT, 5);
	set_desc(f, DESC, 5, BUF + 1000, 1, VRING_DESC_F_WRITE, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	publish(f, 0);
	assert_true(virtq_has_avail(&f->q));
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 0);
	assert_int_equal(f->e.nout, 2);
	assert_int_equal(f->e.nin, 1);
	assert_int_equal(f->e.out_len, 528);
	assert_int_equal(f->e.in_len, 1);
	assert_ptr_equal(f->iov[0].iov_base, g(f, BUF));
	assert_ptr_equal(f->iov[1].iov_base, g(f, BUF + 100));
	assert_ptr_equal(f->iov[2].iov_base, g(f, BUF + 1000));
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_int_equal(virtq_push(&f->q, 0, 1), 0);
	assert_int_equal(used_idx(f), 1);
	memcpy(&id, g(f, USED + 4), 4);
	memcpy(&len, g(f, USED + 8), 4);
	assert_int_equal(id, 0);
	assert_int_equal(len, 1);
	/* pushing something never popped is refused */
	assert_int_equal(virtq_push(&f->q, 0, 1), -EINVAL);
}

static void buffer_at_end_of_ram(void **state)
{
	struct fix *f = *state;

	set_desc(f, DESC, 1, RAM_GPA + RAM_SIZE - 64, 64, 0, 0);
	publish(f, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.out_len, 64);
}

static void indirect_chain(void **state)
{
	struct fix *f = *state;

	set_desc(f, ITABLE, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, ITABLE, 1, BUF + 16, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(f, ITABLE, 2, BUF + 8192, 1, VRING_DESC_F_WRITE, 0);
	set_desc(f, DESC, 2, ITABLE, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	publish(f, 2);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 2);
	assert_int_equal(f->e.nout, 1);
	assert_int_equal(f->e.nin, 2);
	assert_int_equal(f->e.in_len, 4097);
	assert_ptr_equal(f->iov[2].iov_base, g(f, BUF + 8192));
}

/* Indices are free-running 16-bit counters: run them across 65535 -> 0. */
static void index_wraparound(void **state)
{
	struct fix *f = *state;
	uint16_t start = 65530;

	memcpy(g(f, AVAIL + 2), &start, 2);
	f->q.last_avail = start;
	f->q.used_idx = start;
	set_desc(f, DESC, 4, BUF, 8, 0, 0);
	for (int i = 0; i < 20; i++) {
		publish(f, 4);
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(f->e.head, 4);
		assert_int_equal(virtq_push(&f->q, 4, 0), 0);
	}
	assert_int_equal(f->q.last_avail, (uint16_t)(start + 20));
	assert_int_equal(used_idx(f), (uint16_t)(start + 20));
	/* a full ring across the wrap */
	for (int i = 0; i < QSIZE; i++)
		publish(f, 4);
	for (int i = 0; i < QSIZE; i++)
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	/* all QSIZE in flight: one more published entry is more than the ring holds */
	publish(f, 4);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EINVAL);
}

static void expect_bad(struct fix *f, uint16_t head)
{
	uint16_t last = f->q.last_avail;
	publish(f, head);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EINVAL);
	/* nothing consumed: a retry fails the same way, never reads further */
	assert_int_equal(f->q.last_avail, last);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EINVAL);
}

static void bad_addr_len_overflow(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 0, UINT64_MAX - 15, 64, 0, 0);
	expect_bad(f, 0);
}

static void bad_addr_wraps_into_ram(void **state)
{
	struct fix *f = *state;
	/* addr + len wraps to a RAM address: a start-only or sum check would pass this */
	set_desc(f, DESC, 0, UINT64_MAX - 0xff, 0x100 + (uint32_t)RAM_GPA + 16, 0, 0);
	expect_bad(f, 0);
}

static void bad_out_of_ram(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 0, RAM_GPA + RAM_SIZE, 1, 0, 0);
	expect_bad(f, 0);
}

static void bad_straddles_end(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 0, RAM_GPA + RAM_SIZE - 64, 65, 0, 0);
	expect_bad(f, 0);
}

static void bad_below_ram(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 0, RAM_GPA - 1, 2, 0, 0);
	expect_bad(f, 0);
}

static void bad_loop(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	expect_bad(f, 0);
}

static void bad_self_loop(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 6, BUF, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 6);
	expect_bad(f, 6);
}

static void bad_chain_longer_than_queue(void **state)
{
	struct fix *f = *state;
	/* QSIZE direct descriptors plus an indirect table: QSIZE + 2 in all */
	for (unsigned i = 0; i < QSIZE - 1; i++)
		set_desc(f, DESC, i, BUF, 8, VRING_DESC_F_NEXT, i + 1);
	set_desc(f, DESC, QSIZE - 1, ITABLE, 32, VRING_DESC_F_INDIRECT, 0);
	set_desc(f, ITABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	set_desc(f, ITABLE, 1, BUF, 8, 0, 0);
	expect_bad(f, 0);
}

static void full_length_chain_ok(void **state)
{
	struct fix *f = *state;
	for (unsigned i = 0; i < QSIZE - 1; i++)
		set_desc(f, DESC, i, BUF, 8, VRING_DESC_F_NEXT, i + 1);
	set_desc(f, DESC, QSIZE - 1, BUF, 8, 0, 0);
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.nout, QSIZE);
}

/* Linux's virtio_blk fills one indirect table with seg_max + 2 = queue size entries (header,
 * segments, status): one ring descriptor plus a full table is a legal chain of `size` buffers.
 * Counting the indirect descriptor as well once marked such a request a loop and the device
 * broken, and the guest hung on the request forever. */
static void indirect_full_table_ok(void **state)
{
	struct fix *f = *state;

	set_desc(f, ITABLE, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	for (unsigned i = 1; i < QSIZE - 1; i++)
		set_desc(f, ITABLE, i, BUF + 4096 * i, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
			 i + 1);
	set_desc(f, ITABLE, QSIZE - 1, BUF + 100, 1, VRING_DESC_F_WRITE, 0);
	set_desc(f, DESC, 5, ITABLE, 16 * QSIZE, VRING_DESC_F_INDIRECT, 0);
	publish(f, 5);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 5);
	assert_int_equal(f->e.nout, 1);
	assert_int_equal(f->e.nin, QSIZE - 1);
	assert_int_equal(f->e.in_len, 4096 * (QSIZE - 2) + 1);
	assert_int_equal(virtq_push(&f->q, 5, 1), 0);
}

/* A direct descriptor in front of a full indirect table: more buffers than the queue size (and
 * than the iovec array holds). */
static void bad_direct_plus_full_indirect(void **state)
{
	struct fix *f = *state;

	for (unsigned i = 0; i < QSIZE; i++)
		set_desc(f, ITABLE, i, BUF, 8, i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, i + 1);
	set_desc(f, DESC, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, ITABLE, 16 * QSIZE, VRING_DESC_F_INDIRECT, 0);
	expect_bad(f, 0);
}

/* Zero-length descriptors carry no buffer but still count towards the loop bound. */
static void bad_zero_length_loop(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 0, BUF, 0, VRING_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, BUF, 0, VRING_DESC_F_NEXT, 0);
	expect_bad(f, 0);
	set_desc(f, ITABLE, 0, BUF, 0, VRING_DESC_F_NEXT, 0);
	set_desc(f, DESC, 0, ITABLE, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad(f, 0);
}

static void bad_indirect_loop(void **state)
{
	struct fix *f = *state;
	set_desc(f, ITABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	set_desc(f, ITABLE, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	set_desc(f, DESC, 0, ITABLE, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad(f, 0);
}

static void bad_indirect_in_indirect(void **state)
{
	struct fix *f = *state;
	set_desc(f, ITABLE, 0, ITABLE + 256, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc(f, ITABLE + 256, 0, BUF, 8, 0, 0);
	set_desc(f, DESC, 0, ITABLE, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad(f, 0);
}

static void bad_indirect_shapes(void **state)
{
	struct fix *f = *state;
	set_desc(f, ITABLE, 0, BUF, 8, 0, 0);
	set_desc(f, DESC, 0, ITABLE, 17, VRING_DESC_F_INDIRECT, 0); /* not a multiple of 16 */
	expect_bad(f, 0);
	set_desc(f, DESC, 0, ITABLE, 0, VRING_DESC_F_INDIRECT, 0); /* empty */
	expect_bad(f, 0);
	set_desc(f, DESC, 0, ITABLE, 16 * (QSIZE + 1), VRING_DESC_F_INDIRECT, 0); /* too big */
	expect_bad(f, 0);
	set_desc(f, DESC, 0, RAM_GPA + RAM_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0); /* off RAM */
	expect_bad(f, 0);
	set_desc(f, DESC, 0, ITABLE, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	expect_bad(f, 0);
	set_desc(f, ITABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1); /* next past the table's end */
	set_desc(f, DESC, 0, ITABLE, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad(f, 0);
}

static void bad_indirect_not_negotiated(void **state)
{
	struct fix *f = *state;
	f->q.indirect = false;
	set_desc(f, ITABLE, 0, BUF, 8, 0, 0);
	set_desc(f, DESC, 0, ITABLE, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad(f, 0);
}

static void bad_head_index(void **state)
{
	struct fix *f = *state;
	expect_bad(f, QSIZE);
	f->q.last_avail++; /* skip the bad entry to test another */
	expect_bad(f, 0xffff);
}

static void bad_next_index(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 0, BUF, 8, VRING_DESC_F_NEXT, QSIZE);
	expect_bad(f, 0);
}

static void bad_avail_idx_jump(void **state)
{
	struct fix *f = *state;
	uint16_t idx = QSIZE + 1;
	set_desc(f, DESC, 0, BUF, 8, 0, 0);
	memcpy(g(f, AVAIL + 2), &idx, 2);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EINVAL);
	idx = 0xffff; /* "behind" us: also more than a ring's worth */
	memcpy(g(f, AVAIL + 2), &idx, 2);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EINVAL);
}

static void bad_readable_after_writable(void **state)
{
	struct fix *f = *state;
	set_desc(f, DESC, 0, BUF, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(f, DESC, 1, BUF, 8, 0, 0);
	expect_bad(f, 0);
}

static void bad_layout(void **state)
{
	struct fix *f = *state;
	struct virtq q = f->q;

	q.size = 6; /* not a power of two */
	assert_int_equal(virtq_start(&q, &f->mem), -EINVAL);
	q.size = 0;
	assert_int_equal(virtq_start(&q, &f->mem), -EINVAL);
	q.size = VIRTQ_MAX_SIZE * 2;
	assert_int_equal(virtq_start(&q, &f->mem), -EINVAL);
	q = f->q;
	q.desc_gpa = DESC + 8; /* misaligned */
	assert_int_equal(virtq_start(&q, &f->mem), -EINVAL);
	q = f->q;
	q.used_gpa = RAM_GPA + RAM_SIZE - 8; /* ring runs off RAM */
	assert_int_equal(virtq_start(&q, &f->mem), -EINVAL);
	q = f->q;
	q.avail_gpa = UINT64_MAX - 1;
	assert_int_equal(virtq_start(&q, &f->mem), -EINVAL);
	q = f->q;
	q.size = 1024; /* 16 KiB of descriptors fit, but the used ring at +0x2000 overlaps: fine */
	q.used_gpa = RAM_GPA + RAM_SIZE - 6 - 8 * 512; /* too small for 1024 entries */
	assert_int_equal(virtq_start(&q, &f->mem), -EINVAL);
	/* a stopped queue does nothing */
	virtq_stop(&f->q);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_int_equal(virtq_push(&f->q, 0, 0), -EINVAL);
}

static void event_idx(void **state)
{
	struct fix *f = *state;
	uint16_t ev, avail_event;

	f->q.event_idx = true;
	set_desc(f, DESC, 0, BUF, 8, 0, 0);
	for (int i = 0; i < 3; i++) {
		publish(f, 0);
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(virtq_push(&f->q, 0, 0), 0);
	}
	assert_true(virtq_should_notify(&f->q)); /* first one always */
	/* guest asks to be told after used index 5 (i.e. when it passes 5) */
	ev = 5;
	memcpy(g(f, AVAIL + 4 + 2 * QSIZE), &ev, 2);
	for (int i = 0; i < 2; i++) {
		publish(f, 0);
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(virtq_push(&f->q, 0, 0), 0);
	}
	assert_false(virtq_should_notify(&f->q)); /* used idx 5: not past 5 yet */
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_push(&f->q, 0, 0), 0);
	assert_true(virtq_should_notify(&f->q)); /* 6 passes 5 */
	/* device side: re-enabling tells the guest where we are */
	assert_false(virtq_notify_on(&f->q));
	memcpy(&avail_event, g(f, USED + 4 + 8 * QSIZE), 2);
	assert_int_equal(avail_event, 6);
	publish(f, 0);
	assert_true(virtq_notify_on(&f->q));
}

static void no_interrupt_flag(void **state)
{
	struct fix *f = *state;
	uint16_t flags = VRING_AVAIL_F_NO_INTERRUPT, uflags;

	set_desc(f, DESC, 0, BUF, 8, 0, 0);
	publish(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(virtq_push(&f->q, 0, 0), 0);
	assert_true(virtq_should_notify(&f->q));
	memcpy(g(f, AVAIL), &flags, 2);
	assert_false(virtq_should_notify(&f->q));
	virtq_notify_off(&f->q);
	memcpy(&uflags, g(f, USED), 2);
	assert_int_equal(uflags, VRING_USED_F_NO_NOTIFY);
	assert_false(virtq_notify_on(&f->q));
	memcpy(&uflags, g(f, USED), 2);
	assert_int_equal(uflags, 0);
}

static void iov_copy(void **state)
{
	uint8_t a[3], b[5], out[8];
	struct iovec iov[2] = {{a, 3}, {b, 5}};
	(void)state;
	assert_int_equal(iov_from_buf(iov, 2, 2, "abcdefgh", 8), 6);
	assert_memory_equal(a + 2, "a", 1);
	assert_memory_equal(b, "bcdef", 5);
	assert_int_equal(iov_to_buf(iov, 2, 2, out, 8), 6);
	assert_memory_equal(out, "abcdef", 6);
	assert_int_equal(iov_to_buf(iov, 2, 9, out, 8), 0);
}

/* Batched returns: filled entries stay invisible until one flush publishes them all; a chain
 * given back with virtq_unpop is taken again, the same one. */
static void fill_flush_unpop(void **state)
{
	struct fix *f = *state;
	uint32_t id;

	for (unsigned i = 0; i < 3; i++) {
		set_desc(f, DESC, i, BUF + 64 * i, 64, VRING_DESC_F_WRITE, 0);
		publish(f, (uint16_t)i);
	}
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(f->e.head, i);
	}
	/* the last two go back: taken again, in order */
	virtq_unpop(&f->q, 2);
	assert_int_equal(f->q.inflight, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 2);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	/* more than are out is capped */
	virtq_unpop(&f->q, 99);
	assert_int_equal(f->q.inflight, 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);

	assert_int_equal(virtq_fill(&f->q, 2, 10), 0);
	assert_int_equal(virtq_fill(&f->q, 0, 20), 0);
	assert_int_equal(used_idx(f), 0); /* nothing visible yet */
	memcpy(&id, g(f, USED + 4 + 8), 4);
	assert_int_equal(id, 0);
	virtq_flush(&f->q);
	assert_int_equal(used_idx(f), 2);
	memcpy(&id, g(f, USED + 4), 4);
	assert_int_equal(id, 2);
	memcpy(&id, g(f, USED + 4 + 8), 4);
	assert_int_equal(id, 0);
	virtq_flush(&f->q); /* nothing pending: no change */
	assert_int_equal(used_idx(f), 2);
	assert_int_equal(virtq_push(&f->q, 1, 30), 0);
	assert_int_equal(used_idx(f), 3);
	/* filling more than were taken is refused */
	assert_int_equal(virtq_fill(&f->q, 1, 0), -EINVAL);
}

/* A ring taken over where someone else left it: chains before last_avail are not taken again,
 * pushes continue from the used index the ring holds, a jump past the ring is still caught. */
static void resume_where_left(void **state)
{
	struct fix *f = *state;
	uint16_t v = 5;

	for (unsigned i = 0; i < 7; i++) {
		set_desc(f, DESC, i, BUF + 64 * i, 64, 0, 0);
		publish(f, (uint16_t)i);
	}
	memcpy(g(f, USED + 2), &v, 2); /* the previous back-end completed 5 */
	assert_int_equal(virtq_start(&f->q, &f->mem), 0);
	virtq_resume(&f->q, 5);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 5);
	assert_int_equal(virtq_push(&f->q, 5, 0), 0);
	assert_int_equal(used_idx(f), 6);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 6);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	/* based far behind the avail index: more pending than the ring holds */
	assert_int_equal(virtq_start(&f->q, &f->mem), 0);
	virtq_resume(&f->q, (uint16_t)(7 - QSIZE - 1));
	assert_int_equal(virtq_pop(&f->q, &f->e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
	    T(normal_chain),
	    T(buffer_at_end_of_ram),
	    T(indirect_chain),
	    T(index_wraparound),
	    T(bad_addr_len_overflow),
	    T(bad_addr_wraps_into_ram),
	    T(bad_out_of_ram),
	    T(bad_straddles_end),
	    T(bad_below_ram),
	    T(bad_loop),
	    T(bad_self_loop),
	    T(bad_chain_longer_than_queue),
	    T(full_length_chain_ok),
	    T(indirect_full_table_ok),
	    T(bad_direct_plus_full_indirect),
	    T(bad_zero_length_loop),
	    T(bad_indirect_loop),
	    T(bad_indirect_in_indirect),
	    T(bad_indirect_shapes),
	    T(bad_indirect_not_negotiated),
	    T(bad_head_index),
	    T(bad_next_index),
	    T(bad_avail_idx_jump),
	    T(bad_readable_after_writable),
	    T(bad_layout),
	    T(event_idx),
	    T(no_interrupt_flag),
	    T(fill_flush_unpop),
	    T(resume_where_left),
	    cmocka_unit_test(iov_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
