/*
 * virtio-balloon: the guest hands back pages (inflate), takes them again (deflate), reports free
 * pages (PAGE_REPORTING) and sends memory statistics. Inflated and reported pages are dropped
 * from the host with madvise(MADV_DONTNEED), so the VMM's RSS falls at once; a later guest
 * access faults in a zero page. Page numbers and buffers come from the guest: each is checked
 * against RAM (virtio_mem_range, or the queue code for buffers), and invalid ones are skipped,
 * never touched.
 *
 * Why MADV_DONTNEED and not MADV_FREE for reported pages: guest RAM is one private anonymous
 * mapping (vmm/memory.c), where DONTNEED frees the pages before it returns and the range reads
 * back as zeros. The spec lets the device change a reported page only before it acknowledges
 * the report (virtio 1.2, 5.5.6.7.2); DONTNEED finishes its change then. MADV_FREE would free
 * the pages only when the host runs short, later, while the guest may already be reusing them:
 * a page the guest reads before writing could turn to zeros under it, and the RSS would not fall
 * until the host is under pressure, which is the opposite of what reporting is for. The price of
 * DONTNEED is a fault and a zeroed page when the guest touches the memory again.
 *
 * PAGE_POISON: a guest that fills freed pages with a value (init_on_free, page_poison) disables
 * reporting unless the device takes that feature (Linux's virtballoon_validate). It is offered;
 * with poison_val 0 (init_on_free) a dropped page reads back as the zeros the guest expects;
 * with any other value reported pages are acknowledged and kept, as the spec requires.
 *
 * Queue numbers follow the negotiated features: inflateq 0, deflateq 1, then statsq only with
 * STATS_VQ and reporting_vq only with PAGE_REPORTING, each taking the next number (5.5.2), so a
 * driver that declines STATS_VQ puts its reporting queue at 2.
 */
#include "vmm/virtio/devices.h"
#include "vmm/virtio/worker.h"
#include "util/error.h"

#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BALLOON_QUEUE_SIZE 128
#define PAGE		   4096ull
#define NQUEUES		   4
#define STATS_EVERY_MS	   2000

enum balloon_role { ROLE_NONE, ROLE_INFLATE, ROLE_DEFLATE, ROLE_STATS, ROLE_REPORT };

struct balloon {
	struct virtio_dev dev;
	struct virtio_worker w;
	struct virtq_elem e;
	struct iovec iov[BALLOON_QUEUE_SIZE];
	pthread_mutex_t cfg_lock;
	struct virtio_balloon_config cfg;
	enum balloon_role role[NQUEUES]; /* by queue number, set when the driver is ready */
	int stats_q;			 /* the statsq's number, -1 = none */
	int stats_head;			 /* kept stats buffer, -1 = none */
	uint64_t stats[VIRTIO_BALLOON_S_NR];
	uint64_t released_pages;
	int notify_fd; /* written when the driver changes `actual`, or -1 */
};

/* Give host memory back: the pages read as zero afterwards. Guest RAM is private anonymous
 * memory, where MADV_DONTNEED always applies; MADV_REMOVE is for a shared mapping. */
static void release(struct balloon *b, void *host, uint64_t len)
{
	if (madvise(host, len, MADV_DONTNEED) < 0 && madvise(host, len, MADV_REMOVE) < 0)
		return; /* nothing dropped: the pages keep their content, which is allowed */
	b->released_pages += len / PAGE;
}

/* Inflate: out buffers hold 32-bit page frame numbers. Runs of adjacent pages go in one call. */
static int balloon_inflate(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written)
{
	struct balloon *b = d->priv;
	uint64_t n = e->out_len / 4, run_gpa = 0, run_len = 0;
	uint8_t *run_host = NULL;

	for (uint64_t i = 0; i < n; i++) {
		uint32_t pfn;
		uint64_t gpa;
		uint8_t *host;
		iov_to_buf(e->iov, e->nout, i * 4, &pfn, 4);
		gpa = (uint64_t)pfn * PAGE;
		host = virtio_mem_range(d->mem, gpa, PAGE);
		if (!host)
			continue;
		if (run_len && gpa == run_gpa + run_len && host == run_host + run_len) {
			run_len += PAGE;
			continue;
		}
		if (run_len)
			release(b, run_host, run_len);
		run_gpa = gpa;
		run_host = host;
		run_len = PAGE;
	}
	if (run_len)
		release(b, run_host, run_len);
	return 0;
}

static int balloon_deflate(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written)
{
	return 0; /* the pages come back on first touch */
}

/* The guest fills freed pages with a value it expects to find again (5.5.6.4). */
static bool keeps_poison(struct balloon *b)
{
	uint32_t poison;

	if (!virtio_dev_has(&b->dev, VIRTIO_BALLOON_F_PAGE_POISON))
		return false;
	pthread_mutex_lock(&b->cfg_lock);
	poison = b->cfg.poison_val;
	pthread_mutex_unlock(&b->cfg_lock);
	return poison != 0;
}

/* Reported free pages: device-writable buffers, each a run of free guest pages. The queue code
 * has checked that every buffer lies inside guest RAM; only the whole pages inside each buffer
 * are dropped, so a misaligned buffer never costs the guest a byte outside it. Device-readable
 * buffers carry nothing here and are ignored. */
static int balloon_report(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written)
{
	struct balloon *b = d->priv;

	if (keeps_poison(b))
		return 0;
	for (unsigned i = e->nout; i < e->nout + e->nin; i++) {
		uintptr_t s = (uintptr_t)e->iov[i].iov_base, end = s + e->iov[i].iov_len;
		s = (s + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
		end &= ~(uintptr_t)(PAGE - 1);
		if (end > s)
			release(b, (void *)s, end - s);
	}
	return 0;
}

/* Statistics: {u16 tag, u64 value} records. Keep the buffer: returning it asks for new ones. */
static int balloon_stats(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written)
{
	struct balloon *b = d->priv;
	struct virtio_balloon_stat st;

	if (b->stats_head >= 0)
		return 0; /* a second buffer while we hold one: give it straight back */
	for (uint64_t off = 0; off + sizeof(st) <= e->out_len; off += sizeof(st)) {
		iov_to_buf(e->iov, e->nout, off, &st, sizeof(st));
		if (st.tag < VIRTIO_BALLOON_S_NR)
			__atomic_store_n(&b->stats[st.tag], st.val, __ATOMIC_RELAXED);
	}
	b->stats_head = e->head;
	return 1;
}

/* A queue that the negotiated features do not create: whatever arrives is returned unused. */
static int balloon_none(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written)
{
	return 0;
}

static void balloon_kick(struct virtio_worker *w, int idx)
{
	static virtio_elem_fn *const fns[] = {
	    [ROLE_NONE] = balloon_none,	      [ROLE_INFLATE] = balloon_inflate,
	    [ROLE_DEFLATE] = balloon_deflate, [ROLE_STATS] = balloon_stats,
	    [ROLE_REPORT] = balloon_report,
	};
	struct balloon *b = w->opaque;

	virtio_eventfd_drain(w->fds[idx]);
	virtio_queue_drain(&b->dev, idx, &b->e, fns[b->role[idx]]);
}

static void balloon_tick(struct virtio_worker *w, int idx)
{
	struct balloon *b = w->opaque;
	int head = b->stats_head;

	if (head < 0 || b->stats_q < 0)
		return;
	b->stats_head = -1;
	virtio_queue_complete(&b->dev, b->stats_q, (uint16_t)head, 0);
}

/* Number the queues the negotiated features create (5.5.2). */
static void assign_roles(struct balloon *b)
{
	unsigned n = 0;

	memset(b->role, 0, sizeof(b->role));
	b->role[n++] = ROLE_INFLATE;
	b->role[n++] = ROLE_DEFLATE;
	b->stats_q = -1;
	if (virtio_dev_has(&b->dev, VIRTIO_BALLOON_F_STATS_VQ)) {
		b->stats_q = (int)n;
		b->role[n++] = ROLE_STATS;
	}
	if (virtio_dev_has(&b->dev, VIRTIO_BALLOON_F_REPORTING))
		b->role[n++] = ROLE_REPORT;
}

static int balloon_activate(struct virtio_dev *d)
{
	struct balloon *b = d->priv;

	b->stats_head = -1;
	assign_roles(b);
	virtio_worker_init(&b->w, b);
	for (int i = 0; i < NQUEUES; i++)
		virtio_worker_add(&b->w, d->q[i].kick_fd, POLLIN, balloon_kick);
	b->w.timeout_us = STATS_EVERY_MS * 1000L;
	b->w.on_timeout = balloon_tick;
	if (virtio_worker_start(&b->w, "virtio-balloon") < 0)
		return -EIO;
	return 0;
}

static void balloon_reset(struct virtio_dev *d)
{
	struct balloon *b = d->priv;
	virtio_worker_stop(&b->w);
	b->stats_head = -1;
	pthread_mutex_lock(&b->cfg_lock);
	b->cfg.actual = 0;
	pthread_mutex_unlock(&b->cfg_lock);
}

static void balloon_cfg_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	struct balloon *b = d->priv;
	pthread_mutex_lock(&b->cfg_lock);
	memcpy(data, (uint8_t *)&b->cfg + off, len);
	pthread_mutex_unlock(&b->cfg_lock);
}

static void balloon_cfg_write(struct virtio_dev *d, uint32_t off, const void *data, unsigned len)
{
	struct balloon *b = d->priv;

	/* Only `actual` (and poison_val) belong to the driver. */
	if (off == offsetof(struct virtio_balloon_config, actual) && len == 4) {
		uint64_t one = 1;
		bool changed;
		pthread_mutex_lock(&b->cfg_lock);
		changed = memcmp(&b->cfg.actual, data, 4) != 0;
		memcpy(&b->cfg.actual, data, 4);
		if (changed && b->notify_fd >= 0 && write(b->notify_fd, &one, sizeof(one)) < 0) {
			/* at its maximum count the eventfd is readable anyway */
		}
		pthread_mutex_unlock(&b->cfg_lock);
	} else if (off == offsetof(struct virtio_balloon_config, poison_val) && len == 4) {
		pthread_mutex_lock(&b->cfg_lock);
		memcpy(&b->cfg.poison_val, data, 4);
		pthread_mutex_unlock(&b->cfg_lock);
	}
}

static const struct virtio_dev_ops balloon_ops = {
    .name = "balloon",
    .type = VIRTIO_ID_BALLOON,
    .class_code = 0x00ff00,
    .cfg_read = balloon_cfg_read,
    .cfg_write = balloon_cfg_write,
    .activate = balloon_activate,
    .reset = balloon_reset,
};

void virtio_balloon_set_target(struct virtio_dev *d, uint64_t target_mib)
{
	struct balloon *b = d->priv;
	uint64_t pages = target_mib * (1ull << 20) / PAGE;

	pthread_mutex_lock(&b->cfg_lock);
	b->cfg.num_pages = pages > UINT32_MAX ? UINT32_MAX : (uint32_t)pages;
	pthread_mutex_unlock(&b->cfg_lock);
	virtio_dev_config_changed(d);
}

void virtio_balloon_set_pages(struct virtio_dev *d, uint64_t pages)
{
	struct balloon *b = d->priv;

	pthread_mutex_lock(&b->cfg_lock);
	b->cfg.num_pages = pages > UINT32_MAX ? UINT32_MAX : (uint32_t)pages;
	pthread_mutex_unlock(&b->cfg_lock);
	virtio_dev_config_changed(d);
}

uint64_t virtio_balloon_actual_pages(struct virtio_dev *d)
{
	struct balloon *b = d->priv;
	uint64_t a;

	pthread_mutex_lock(&b->cfg_lock);
	a = b->cfg.actual;
	pthread_mutex_unlock(&b->cfg_lock);
	return a;
}

void virtio_balloon_set_notify(struct virtio_dev *d, int fd)
{
	struct balloon *b = d->priv;

	pthread_mutex_lock(&b->cfg_lock);
	b->notify_fd = fd;
	pthread_mutex_unlock(&b->cfg_lock);
}

uint64_t virtio_balloon_actual_mib(struct virtio_dev *d)
{
	struct balloon *b = d->priv;
	uint64_t a;

	pthread_mutex_lock(&b->cfg_lock);
	a = b->cfg.actual;
	pthread_mutex_unlock(&b->cfg_lock);
	return a * PAGE >> 20;
}

int virtio_balloon_create(struct virtio_dev **out, uint64_t target_mib,
			  const struct virtio_mem *mem, struct kvm_irq *irq)
{
	struct balloon *b = calloc(1, sizeof(*b));
	uint64_t features =
	    (1ull << VIRTIO_BALLOON_F_STATS_VQ) | (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) |
	    (1ull << VIRTIO_BALLOON_F_PAGE_POISON) | (1ull << VIRTIO_BALLOON_F_REPORTING);
	uint64_t pages = target_mib * (1ull << 20) / PAGE;
	int ret;

	if (!b)
		return -ENOMEM;
	b->e.iov = b->iov;
	b->stats_head = -1;
	b->notify_fd = -1;
	pthread_mutex_init(&b->cfg_lock, NULL);
	b->cfg.num_pages = pages > UINT32_MAX ? UINT32_MAX : (uint32_t)pages;
	b->stats_q = -1;
	ret = virtio_dev_init(&b->dev, &balloon_ops, b, mem, irq, NQUEUES, BALLOON_QUEUE_SIZE,
			      features, sizeof(b->cfg));
	if (ret < 0) {
		virtio_balloon_destroy(&b->dev);
		return ret;
	}
	*out = &b->dev;
	return 0;
}

void virtio_balloon_destroy(struct virtio_dev *d)
{
	virtio_dev_destroy(d);
	free(d);
}
