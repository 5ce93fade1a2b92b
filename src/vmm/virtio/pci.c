/* The virtio 1.x modern PCI transport; see pci.h. */
#include "vmm/virtio/pci.h"
#include "util/error.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CAP_MSIX       0x40
#define CAP_COMMON     0x4c
#define CAP_ISR	       0x5c
#define CAP_DEVICE     0x6c
#define CAP_NOTIFY     0x7c
#define CAP_PCICFG     0x90
#define CAP_NOTIFY_PIO 0xa4
#define MSIX_CTRL      (CAP_MSIX + 2)
#define MSIX_ENABLE    0x8000
#define MSIX_MASKALL   0x4000

#define TRANSPORT_FEATURES                                                                         \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |                        \
	 (1ull << VIRTIO_RING_F_INDIRECT_DESC))

static struct virtio_dev *to_vdev(struct pci_dev *p)
{
	return (struct virtio_dev *)p; /* pci is the first member */
}

static struct virtio_queue *selected(struct virtio_dev *d)
{
	return d->queue_select < d->nqueues ? &d->q[d->queue_select] : NULL;
}

bool virtio_dev_has(const struct virtio_dev *d, unsigned bit)
{
	return bit < 64 && (d->features >> bit) & 1;
}

bool virtio_dev_broken(struct virtio_dev *d)
{
	return __atomic_load_n(&d->broken, __ATOMIC_ACQUIRE);
}

/* ---- interrupts ---- */

static uint16_t msix_ctrl(struct virtio_dev *d)
{
	return (uint16_t)pci_cfg_get(&d->pci, MSIX_CTRL, 2);
}

/* Deliver vector v now, or leave it pending while masked. msix_lock held. */
static void msix_fire(struct virtio_dev *d, unsigned v)
{
	uint16_t ctrl = msix_ctrl(d);

	if (v >= d->nvectors || !(ctrl & MSIX_ENABLE))
		return; /* no INTx: a driver without MSI-X gets no interrupts */
	if ((ctrl & MSIX_MASKALL) || (d->msix_table[v][3] & 1)) {
		d->msix_pba |= 1u << v;
		return;
	}
	if (!d->msix_routed[v]) {
		uint64_t addr = d->msix_table[v][0] | (uint64_t)d->msix_table[v][1] << 32;
		if (kvm_irq_set_msi(d->irq, d->msix_gsi[v], addr, d->msix_table[v][2], true) < 0)
			return;
		d->msix_routed[v] = true;
	}
	eventfd_write(d->msix_fd[v], 1);
	d->irqs_sent++;
}

/* Can vector v reach the guest now (MSI-X on, neither the function nor the entry masked), with
 * its KVM route in place? msix_lock held. */
static bool msix_deliverable(struct virtio_dev *d, unsigned v)
{
	uint16_t ctrl = msix_ctrl(d);

	if (v >= d->nvectors || !(ctrl & MSIX_ENABLE) || (ctrl & MSIX_MASKALL) ||
	    (d->msix_table[v][3] & 1))
		return false;
	if (!d->msix_routed[v]) {
		uint64_t addr = d->msix_table[v][0] | (uint64_t)d->msix_table[v][1] << 32;
		if (kvm_irq_set_msi(d->irq, d->msix_gsi[v], addr, d->msix_table[v][2], true) < 0)
			return false;
		d->msix_routed[v] = true;
	}
	return true;
}

/* Interrupts an outside backend signalled on a queue's pending eventfd become pending bits. */
static void call_collect(struct virtio_dev *d, struct virtio_queue *q)
{
	uint64_t n;

	if (q->masked_fd >= 0 && read(q->masked_fd, &n, sizeof(n)) == sizeof(n) &&
	    q->msix_vector < d->nvectors)
		d->msix_pba |= 1u << q->msix_vector;
}

/* Point every attached queue's backend at the eventfd its vector needs now (see
 * virtio_dev_call_attach): the irqfd is switched to before the pending eventfd is read, so
 * nothing signalled in between is lost. msix_lock held. */
static void call_update(struct virtio_dev *d)
{
	for (unsigned i = 0; i < d->nqueues; i++) {
		struct virtio_queue *q = &d->q[i];
		uint16_t v = __atomic_load_n(&q->msix_vector, __ATOMIC_RELAXED);
		int target;

		if (!q->attached)
			continue;
		target = msix_deliverable(d, v) ? d->msix_fd[v] : q->masked_fd;
		if (target != q->call_target) {
			d->ops->set_call(d, i, target);
			q->call_target = target;
		}
		call_collect(d, q);
	}
}

/* Entries or masks changed: deliver what was pending and is now unmasked. msix_lock held. */
static void msix_update(struct virtio_dev *d)
{
	uint32_t pending;

	call_update(d);
	pending = d->msix_pba;
	d->msix_pba = 0;
	for (unsigned v = 0; v < d->nvectors; v++)
		if (pending & (1u << v))
			msix_fire(d, v);
}

void virtio_dev_call_attach(struct virtio_dev *d, unsigned qi)
{
	if (qi >= d->nqueues || !d->ops->set_call)
		return;
	pthread_mutex_lock(&d->msix_lock);
	d->q[qi].attached = true;
	d->q[qi].call_target = -2; /* forces the first set_call */
	msix_update(d);
	pthread_mutex_unlock(&d->msix_lock);
}

void virtio_dev_call_detach(struct virtio_dev *d, unsigned qi)
{
	if (qi >= d->nqueues)
		return;
	pthread_mutex_lock(&d->msix_lock);
	d->q[qi].attached = false;
	d->q[qi].call_target = -1;
	pthread_mutex_unlock(&d->msix_lock);
}

void virtio_dev_irq(struct virtio_dev *d, int qi)
{
	uint16_t vec;

	if (qi >= (int)d->nqueues)
		return;
	vec = qi < 0 ? __atomic_load_n(&d->config_vector, __ATOMIC_RELAXED)
		     : __atomic_load_n(&d->q[qi].msix_vector, __ATOMIC_RELAXED);
	__atomic_fetch_or(&d->isr, qi < 0 ? VIRTIO_PCI_ISR_CONFIG : 1, __ATOMIC_RELAXED);
	if (vec == VIRTIO_NO_VECTOR)
		return;
	pthread_mutex_lock(&d->msix_lock);
	msix_fire(d, vec);
	pthread_mutex_unlock(&d->msix_lock);
}

bool virtio_dev_queue_done(struct virtio_dev *d, int qi)
{
	if (!virtq_should_notify(&d->q[qi].vq))
		return false;
	virtio_dev_irq(d, qi);
	return true;
}

void virtio_dev_fail(struct virtio_dev *d, const char *why)
{
	bool was = __atomic_exchange_n(&d->broken, true, __ATOMIC_ACQ_REL);

	if (was)
		return;
	__atomic_fetch_or(&d->status, VIRTIO_CONFIG_S_NEEDS_RESET, __ATOMIC_RELAXED);
	fprintf(stderr, "ligero: virtio-%s 00:%02x.0: %s; device needs reset\n", d->ops->name,
		d->pci.slot, why);
	virtio_dev_irq(d, -1);
}

void virtio_dev_config_changed(struct virtio_dev *d)
{
	__atomic_fetch_add(&d->config_generation, 1, __ATOMIC_RELAXED);
	virtio_dev_irq(d, -1);
}

/* ---- status, reset, queues ---- */

static void queue_clear(struct virtio_queue *q)
{
	uint64_t junk;

	pthread_mutex_lock(&q->lock);
	virtq_stop(&q->vq);
	q->vq.size = q->max_size;
	q->vq.desc_gpa = q->vq.avail_gpa = q->vq.used_gpa = 0;
	q->msix_vector = VIRTIO_NO_VECTOR;
	q->enabled = false;
	pthread_mutex_unlock(&q->lock);
	while (read(q->kick_fd, &junk, sizeof(junk)) == sizeof(junk))
		;
	if (q->masked_fd >= 0)
		while (read(q->masked_fd, &junk, sizeof(junk)) == sizeof(junk))
			;
}

/* Device reset (status 0): the device stops and forgets the driver. MSI-X state is PCI
 * function state and survives. d->lock held. */
static void do_reset(struct virtio_dev *d)
{
	if (d->active && d->ops->reset)
		d->ops->reset(d);
	d->active = false;
	for (unsigned i = 0; i < d->nqueues; i++)
		queue_clear(&d->q[i]);
	d->features = d->driver_features = 0;
	d->dfselect = d->gfselect = 0;
	d->queue_select = 0;
	d->config_vector = VIRTIO_NO_VECTOR;
	__atomic_store_n(&d->isr, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&d->status, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&d->broken, false, __ATOMIC_RELEASE);
}

static bool frozen(struct virtio_dev *d, struct virtio_queue *q)
{
	return q->enabled || (d->status & VIRTIO_CONFIG_S_DRIVER_OK);
}

static void queue_enable(struct virtio_dev *d, struct virtio_queue *q)
{
	int ret;

	if (q->enabled)
		return;
	if (!(d->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		virtio_dev_fail(d, "queue enabled before FEATURES_OK");
		return;
	}
	pthread_mutex_lock(&q->lock);
	q->vq.event_idx = virtio_dev_has(d, VIRTIO_RING_F_EVENT_IDX);
	q->vq.indirect = virtio_dev_has(d, VIRTIO_RING_F_INDIRECT_DESC);
	ret = virtq_start(&q->vq, d->mem);
	pthread_mutex_unlock(&q->lock);
	if (ret < 0) {
		virtio_dev_fail(d, err_msg());
		return;
	}
	q->enabled = true;
}

static void status_write(struct virtio_dev *d, uint8_t v)
{
	uint8_t old = d->status, added;

	if (v == 0) {
		do_reset(d);
		return;
	}
	v &= (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	added = v & ~old;
	if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
		uint64_t offered = d->host_features;
		if ((d->driver_features & ~offered) ||
		    !(d->driver_features & (1ull << VIRTIO_F_VERSION_1)))
			v &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK; /* the driver reads back:
								       refused */
		else
			d->features = d->driver_features;
	}
	/* Bits are only added until reset; the one that was broken stays. */
	__atomic_store_n(&d->status, (uint8_t)(v | old), __ATOMIC_RELAXED);
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !d->active) {
		if (!(d->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			virtio_dev_fail(d, "DRIVER_OK without FEATURES_OK (legacy driver?)");
			return;
		}
		if (virtio_dev_broken(d))
			return;
		if (d->ops->activate && d->ops->activate(d) < 0) {
			virtio_dev_fail(d, err_msg());
			return;
		}
		d->active = true;
	}
}

/* ---- common configuration structure ---- */

static uint16_t valid_vector(const struct virtio_dev *d, uint32_t v)
{
	return v < d->nvectors ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static uint64_t common_read(struct virtio_dev *d, uint32_t off, unsigned len)
{
	struct virtio_queue *q = selected(d);
	uint64_t offered = d->host_features;
	uint8_t img[0x40] = {0};
	uint64_t v = 0;

#define PUT(o, n, x)                                                                               \
	do {                                                                                       \
		uint64_t _x = (x);                                                                 \
		memcpy(img + (o), &_x, (n));                                                       \
	} while (0)
	PUT(VIRTIO_PCI_COMMON_DFSELECT, 4, d->dfselect);
	PUT(VIRTIO_PCI_COMMON_DF, 4, d->dfselect < 2 ? offered >> (32 * d->dfselect) : 0);
	PUT(VIRTIO_PCI_COMMON_GFSELECT, 4, d->gfselect);
	PUT(VIRTIO_PCI_COMMON_GF, 4,
	    d->gfselect < 2 ? d->driver_features >> (32 * d->gfselect) : 0);
	PUT(VIRTIO_PCI_COMMON_MSIX, 2, d->config_vector);
	PUT(VIRTIO_PCI_COMMON_NUMQ, 2, d->nqueues);
	PUT(VIRTIO_PCI_COMMON_STATUS, 1, __atomic_load_n(&d->status, __ATOMIC_RELAXED));
	PUT(VIRTIO_PCI_COMMON_CFGGENERATION, 1, d->config_generation);
	PUT(VIRTIO_PCI_COMMON_Q_SELECT, 2, d->queue_select);
	if (q) {
		PUT(VIRTIO_PCI_COMMON_Q_SIZE, 2, q->vq.size);
		PUT(VIRTIO_PCI_COMMON_Q_MSIX, 2, q->msix_vector);
		PUT(VIRTIO_PCI_COMMON_Q_ENABLE, 2, q->enabled);
		PUT(VIRTIO_PCI_COMMON_Q_NOFF, 2, d->queue_select);
		PUT(VIRTIO_PCI_COMMON_Q_DESCLO, 8, q->vq.desc_gpa);
		PUT(VIRTIO_PCI_COMMON_Q_AVAILLO, 8, q->vq.avail_gpa);
		PUT(VIRTIO_PCI_COMMON_Q_USEDLO, 8, q->vq.used_gpa);
	}
#undef PUT
	if (off < sizeof(img) && len <= sizeof(img) - off)
		memcpy(&v, img + off, len);
	return v;
}

static void set_half(uint64_t *field, uint32_t off, uint32_t base, unsigned len, uint64_t v)
{
	if (len == 8 && off == base)
		*field = v;
	else if (len == 4 && off == base)
		*field = (*field & ~0xffffffffull) | (uint32_t)v;
	else if (len == 4 && off == base + 4)
		*field = (*field & 0xffffffffull) | (uint64_t)(uint32_t)v << 32;
}

static void queue_write(struct virtio_dev *d, struct virtio_queue *q, uint32_t off, unsigned len,
			uint64_t v)
{
	switch (off & ~7u) {
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		if (!frozen(d, q))
			set_half(&q->vq.desc_gpa, off, VIRTIO_PCI_COMMON_Q_DESCLO, len, v);
		return;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		if (!frozen(d, q))
			set_half(&q->vq.avail_gpa, off, VIRTIO_PCI_COMMON_Q_AVAILLO, len, v);
		return;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		if (!frozen(d, q))
			set_half(&q->vq.used_gpa, off, VIRTIO_PCI_COMMON_Q_USEDLO, len, v);
		return;
	}
	if (len != 2)
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* Frozen once live: a new size would let the rings outgrow what was validated. */
		if (!frozen(d, q) && v && v <= q->max_size && !(v & (v - 1)))
			q->vq.size = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		pthread_mutex_lock(&d->msix_lock);
		__atomic_store_n(&q->msix_vector, valid_vector(d, (uint32_t)v), __ATOMIC_RELAXED);
		if (q->attached)
			msix_update(d); /* its backend follows the vector */
		pthread_mutex_unlock(&d->msix_lock);
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (v == 1)
			queue_enable(d, q);
		break;
	}
}

static void common_write(struct virtio_dev *d, uint32_t off, unsigned len, uint64_t v)
{
	struct virtio_queue *q = selected(d);

	if (off >= VIRTIO_PCI_COMMON_Q_SIZE) {
		if (q)
			queue_write(d, q, off, len, v);
		return;
	}
	if (len == 4 && off == VIRTIO_PCI_COMMON_DFSELECT)
		d->dfselect = (uint32_t)v;
	else if (len == 4 && off == VIRTIO_PCI_COMMON_GFSELECT)
		d->gfselect = (uint32_t)v;
	else if (len == 4 && off == VIRTIO_PCI_COMMON_GF) {
		if (!(d->status & VIRTIO_CONFIG_S_FEATURES_OK) && d->gfselect < 2) {
			unsigned sh = 32 * d->gfselect;
			d->driver_features &= ~(0xffffffffull << sh);
			d->driver_features |= (v & 0xffffffffull) << sh;
		}
	} else if (len == 2 && off == VIRTIO_PCI_COMMON_MSIX)
		__atomic_store_n(&d->config_vector, valid_vector(d, (uint32_t)v), __ATOMIC_RELAXED);
	else if (len == 1 && off == VIRTIO_PCI_COMMON_STATUS)
		status_write(d, (uint8_t)v);
	else if (len == 2 && off == VIRTIO_PCI_COMMON_Q_SELECT)
		d->queue_select = (uint16_t)v;
}

/* ---- BAR 0 ---- */

static void msix_table_access(struct virtio_dev *d, uint64_t off, void *data, unsigned len,
			      bool is_write)
{
	unsigned v = (unsigned)(off / 16), w = (unsigned)(off % 16) / 4;
	uint32_t val = 0;

	if ((len != 4 && len != 8) || (off & 3) || v >= d->nvectors) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&d->msix_lock);
	for (unsigned i = 0; i < len / 4 && w + i < 4; i++) {
		if (!is_write) {
			memcpy((uint8_t *)data + 4 * i, &d->msix_table[v][w + i], 4);
			continue;
		}
		memcpy(&val, (uint8_t *)data + 4 * i, 4);
		if (w + i == 3)
			val &= 1;
		if (d->msix_table[v][w + i] != val && w + i < 3)
			d->msix_routed[v] = false; /* re-route on next delivery */
		d->msix_table[v][w + i] = val;
	}
	if (is_write)
		msix_update(d);
	pthread_mutex_unlock(&d->msix_lock);
}

static void bar_access(struct virtio_dev *d, uint64_t off, void *data, unsigned len, bool is_write)
{
	uint64_t v = 0;

	if (!is_write)
		memset(data, 0, len);
	else
		memcpy(&v, data, len);
	if (off < VIRTIO_ISR_OFF) {
		pthread_mutex_lock(&d->lock);
		if (is_write)
			common_write(d, (uint32_t)off, len, v);
		else
			v = common_read(d, (uint32_t)off, len);
		pthread_mutex_unlock(&d->lock);
		if (!is_write)
			memcpy(data, &v, len);
	} else if (off == VIRTIO_ISR_OFF && len == 1 && !is_write) {
		*(uint8_t *)data = __atomic_exchange_n(&d->isr, 0, __ATOMIC_RELAXED);
	} else if (off >= VIRTIO_DEVCFG_OFF && off < VIRTIO_NOTIFY_OFF) {
		uint64_t o = off - VIRTIO_DEVCFG_OFF;
		if (o >= d->cfg_size || len > d->cfg_size - o)
			return;
		if (is_write && d->ops->cfg_write)
			d->ops->cfg_write(d, (uint32_t)o, data, len);
		else if (!is_write && d->ops->cfg_read)
			d->ops->cfg_read(d, (uint32_t)o, data, len);
	} else if (off >= VIRTIO_NOTIFY_OFF && off < VIRTIO_MSIX_OFF) {
		/* Only when the ioeventfd is not registered (no KVM, or it failed). */
		uint64_t qi = (off - VIRTIO_NOTIFY_OFF) / VIRTIO_NOTIFY_MULT;
		if (is_write && qi < d->nqueues)
			eventfd_write(d->q[qi].kick_fd, 1);
	} else if (off >= VIRTIO_MSIX_OFF && off < VIRTIO_PBA_OFF) {
		msix_table_access(d, off - VIRTIO_MSIX_OFF, data, len, is_write);
	} else if (off == VIRTIO_PBA_OFF && !is_write && (len == 4 || len == 8)) {
		pthread_mutex_lock(&d->msix_lock);
		for (unsigned i = 0; i < d->nqueues; i++)
			if (d->q[i].attached && d->q[i].call_target == d->q[i].masked_fd)
				call_collect(d, &d->q[i]);
		memcpy(data, &d->msix_pba, 4);
		pthread_mutex_unlock(&d->msix_lock);
	}
}

static void vp_bar_read(struct pci_dev *p, int bar, uint64_t off, void *data, unsigned len)
{
	if (bar == 0 && len <= 8)
		bar_access(to_vdev(p), off, data, len, false);
	else if (bar == VIRTIO_PIO_BAR)
		memset(data, 0, len);
}

static void vp_bar_write(struct pci_dev *p, int bar, uint64_t off, const void *data, unsigned len)
{
	struct virtio_dev *d = to_vdev(p);
	uint8_t tmp[8];

	if (bar == VIRTIO_PIO_BAR) {
		/* Only when the ioeventfd is not registered, or the write is not 16-bit. */
		uint64_t qi = off / VIRTIO_PIO_NOTIFY_MULT;
		if (qi < d->nqueues)
			eventfd_write(d->q[qi].kick_fd, 1);
		return;
	}
	if (bar != 0 || len > 8)
		return;
	memcpy(tmp, data, len);
	bar_access(d, off, tmp, len, true);
}

static int notify_ioeventfd(struct virtio_dev *d, bool pio, uint64_t addr, int fd, bool assign)
{
	return pio ? kvm_ioeventfd_pio(d->irq->vm_fd, (uint16_t)addr, fd, assign)
		   : kvm_ioeventfd(d->irq->vm_fd, addr, fd, assign);
}

/* A notify area moved to `base` (0: gone): the queues' ioeventfds follow it, so their kicks
 * signal the eventfds in the kernel. *cur is where they are registered now (0: nowhere). */
static void notify_moved(struct virtio_dev *d, bool pio, uint64_t *cur, uint64_t base)
{
	unsigned mult = pio ? VIRTIO_PIO_NOTIFY_MULT : VIRTIO_NOTIFY_MULT;

	for (unsigned i = 0; i < d->nqueues && *cur; i++)
		notify_ioeventfd(d, pio, *cur + mult * i, d->q[i].kick_fd, false);
	*cur = 0;
	if (!base)
		return;
	for (unsigned i = 0; i < d->nqueues; i++)
		if (notify_ioeventfd(d, pio, base + mult * i, d->q[i].kick_fd, true) < 0)
			fprintf(stderr, "ligero: virtio-%s: %s (notifications will exit)\n",
				d->ops->name, err_msg());
	*cur = base;
}

static void vp_bar_moved(struct pci_dev *p, int bar, uint64_t old_gpa, uint64_t new_gpa)
{
	struct virtio_dev *d = to_vdev(p);

	if (!d->irq)
		return;
	if (bar == VIRTIO_PIO_BAR)
		notify_moved(d, true, &d->notify_port, new_gpa);
	else if (bar == 0)
		notify_moved(d, false, &d->notify_gpa, new_gpa ? new_gpa + VIRTIO_NOTIFY_OFF : 0);
}

/* The PCI configuration access capability (VIRTIO_PCI_CAP_PCI_CFG): a window into BAR 0. */
static bool pcicfg_window(struct virtio_dev *d, uint32_t *off, unsigned *len)
{
	uint8_t bar = d->pci.cfg[CAP_PCICFG + 4];

	*off = pci_cfg_get(&d->pci, CAP_PCICFG + 8, 4);
	*len = pci_cfg_get(&d->pci, CAP_PCICFG + 12, 4);
	return bar == 0 && (*len == 1 || *len == 2 || *len == 4) && *off < VIRTIO_BAR_SIZE &&
	       *len <= VIRTIO_BAR_SIZE - *off && !(*off & (*len - 1));
}

static void vp_cfg_reading(struct pci_dev *p, unsigned off, unsigned len)
{
	struct virtio_dev *d = to_vdev(p);
	uint32_t o;
	unsigned l;

	if (off + len <= CAP_PCICFG + 16 || off >= CAP_PCICFG + 20 || !pcicfg_window(d, &o, &l))
		return;
	bar_access(d, o, p->cfg + CAP_PCICFG + 16, l, false);
}

static void vp_cfg_written(struct pci_dev *p, unsigned off, unsigned len)
{
	struct virtio_dev *d = to_vdev(p);
	uint32_t o;
	unsigned l;

	if (off <= MSIX_CTRL + 1 && off + len > MSIX_CTRL) {
		pthread_mutex_lock(&d->msix_lock);
		msix_update(d);
		pthread_mutex_unlock(&d->msix_lock);
	}
	if (off + len > CAP_PCICFG + 16 && off < CAP_PCICFG + 20 && pcicfg_window(d, &o, &l))
		bar_access(d, o, p->cfg + CAP_PCICFG + 16, l, true);
}

static const struct pci_dev_ops virtio_pci_ops = {
    .cfg_reading = vp_cfg_reading,
    .cfg_written = vp_cfg_written,
    .bar_moved = vp_bar_moved,
    .bar_read = vp_bar_read,
    .bar_write = vp_bar_write,
};

/* ---- setup ---- */

static void put_cap(struct pci_dev *p, unsigned at, unsigned next, unsigned len, uint8_t type,
		    uint8_t bar, uint32_t off, uint32_t size)
{
	p->cfg[at] = 0x09; /* vendor specific */
	p->cfg[at + 1] = (uint8_t)next;
	p->cfg[at + 2] = (uint8_t)len;
	p->cfg[at + 3] = type;
	p->cfg[at + 4] = bar;
	pci_cfg_put(p, at + 8, 4, off);
	pci_cfg_put(p, at + 12, 4, size);
}

static void build_config_space(struct virtio_dev *d)
{
	struct pci_dev *p = &d->pci;
	unsigned pio_size = 8; /* a power of two: 2 ports per queue, at least 8 */

	while (pio_size < VIRTIO_PIO_NOTIFY_MULT * d->nqueues)
		pio_size *= 2;
	pci_dev_init(p, &virtio_pci_ops, 0x1af4, (uint16_t)(0x1040 + d->ops->type),
		     d->ops->class_code, 0x1af4, 0x40);
	pci_dev_set_bar(p, 0, VIRTIO_BAR_SIZE);
	pci_dev_set_io_bar(p, VIRTIO_PIO_BAR, pio_size);
	pci_cfg_put(p, 0x06, 2, 0x10); /* status: capabilities list */
	p->cfg[0x34] = CAP_MSIX;
	p->cfg[CAP_MSIX] = 0x11;
	p->cfg[CAP_MSIX + 1] = CAP_COMMON;
	pci_cfg_put(p, MSIX_CTRL, 2, d->nvectors - 1);
	p->wmask[MSIX_CTRL + 1] = 0xc0; /* enable, function mask */
	pci_cfg_put(p, CAP_MSIX + 4, 4, VIRTIO_MSIX_OFF);
	pci_cfg_put(p, CAP_MSIX + 8, 4, VIRTIO_PBA_OFF);
	put_cap(p, CAP_COMMON, CAP_ISR, 16, VIRTIO_PCI_CAP_COMMON_CFG, 0, VIRTIO_COMMON_OFF, 0x40);
	put_cap(p, CAP_ISR, CAP_DEVICE, 16, VIRTIO_PCI_CAP_ISR_CFG, 0, VIRTIO_ISR_OFF, 1);
	/* the port I/O notifications first (pci.h), then the same through BAR 0 */
	put_cap(p, CAP_DEVICE, CAP_NOTIFY_PIO, 16, VIRTIO_PCI_CAP_DEVICE_CFG, 0, VIRTIO_DEVCFG_OFF,
		d->cfg_size ? d->cfg_size : 1);
	put_cap(p, CAP_NOTIFY_PIO, CAP_NOTIFY, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PIO_BAR, 0,
		VIRTIO_PIO_NOTIFY_MULT * d->nqueues);
	pci_cfg_put(p, CAP_NOTIFY_PIO + 16, 4, VIRTIO_PIO_NOTIFY_MULT);
	put_cap(p, CAP_NOTIFY, CAP_PCICFG, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, 0, VIRTIO_NOTIFY_OFF,
		VIRTIO_NOTIFY_MULT * d->nqueues);
	pci_cfg_put(p, CAP_NOTIFY + 16, 4, VIRTIO_NOTIFY_MULT);
	put_cap(p, CAP_PCICFG, 0, 20, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0);
	p->wmask[CAP_PCICFG + 4] = 0xff;
	memset(p->wmask + CAP_PCICFG + 8, 0xff, 12);
}

int virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops, void *priv,
		    const struct virtio_mem *mem, struct kvm_irq *irq, unsigned nqueues,
		    uint16_t queue_max, uint64_t features, uint32_t cfg_size)
{
	if (nqueues > VIRTIO_MAX_QUEUES || cfg_size > VIRTIO_NOTIFY_OFF - VIRTIO_DEVCFG_OFF ||
	    queue_max > VIRTQ_MAX_SIZE)
		return err_set(EINVAL, "virtio-%s: bad device description", ops->name);
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->mem = mem;
	d->irq = irq;
	d->nqueues = nqueues;
	d->nvectors = nqueues + 1;
	d->cfg_size = cfg_size;
	d->host_features = features | TRANSPORT_FEATURES;
	for (unsigned v = 0; v < VIRTIO_MSIX_VECTORS; v++)
		d->msix_fd[v] = d->msix_gsi[v] = -1;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		d->q[i].kick_fd = d->q[i].masked_fd = d->q[i].call_target = -1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->msix_lock, NULL);
	build_config_space(d);
	for (unsigned v = 0; v < d->nvectors; v++) {
		d->msix_table[v][3] = 1; /* masked at power-on */
		d->msix_fd[v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		d->msix_gsi[v] = kvm_irq_alloc(irq);
		if (d->msix_fd[v] < 0 || d->msix_gsi[v] < 0)
			return err_sys(d->msix_fd[v] < 0 ? errno : ENOSPC, "virtio-%s: interrupts",
				       ops->name);
		if (kvm_irq_irqfd(irq, d->msix_fd[v], d->msix_gsi[v], true) < 0)
			return -EIO;
	}
	for (unsigned i = 0; i < nqueues; i++) {
		struct virtio_queue *q = &d->q[i];
		q->max_size = queue_max;
		q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->kick_fd < 0)
			return err_sys(errno, "virtio-%s: eventfd", ops->name);
		if (ops->set_call && (q->masked_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
			return err_sys(errno, "virtio-%s: eventfd", ops->name);
		pthread_mutex_init(&q->lock, NULL);
		queue_clear(q);
	}
	d->config_vector = VIRTIO_NO_VECTOR;
	return 0;
}

void virtio_dev_destroy(struct virtio_dev *d)
{
	if (!d->ops)
		return;
	pthread_mutex_lock(&d->lock);
	do_reset(d);
	pthread_mutex_unlock(&d->lock);
	vp_bar_moved(&d->pci, 0, d->notify_gpa, 0);
	vp_bar_moved(&d->pci, VIRTIO_PIO_BAR, d->notify_port, 0);
	for (unsigned v = 0; v < d->nvectors; v++) {
		if (d->msix_fd[v] >= 0 && d->msix_gsi[v] >= 0)
			kvm_irq_irqfd(d->irq, d->msix_fd[v], d->msix_gsi[v], false);
		if (d->msix_fd[v] >= 0)
			close(d->msix_fd[v]);
		d->msix_fd[v] = -1;
	}
	for (unsigned i = 0; i < d->nqueues; i++) {
		if (d->q[i].kick_fd >= 0)
			close(d->q[i].kick_fd);
		if (d->q[i].masked_fd >= 0)
			close(d->q[i].masked_fd);
		d->q[i].kick_fd = d->q[i].masked_fd = -1;
	}
}
