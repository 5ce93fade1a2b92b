/*
 * virtio-net's own data path: the fallback where vhost-net cannot be used, one thread per queue
 * pair, polling its tap queue and the pair's two kick eventfds.
 *
 * TX writes each chain's buffers to the tap as they lie in guest memory (writev). RX takes
 * chains from the ring ahead of time, until they hold the largest packet the tap may send (a
 * 64 KiB GSO frame with mergeable buffers; one chain without them), and reads each packet
 * straight into them (readv): no copy. Only when the guest has posted less room than that does
 * a spill buffer follow the chains in the readv; a packet that overflows into it waits there
 * for more buffers (mergeable), or is dropped (not: it had to fit one chain). Chains taken but
 * not used yet stay for the next packet. Used entries are published in batches (one used->idx
 * store per batch), and with EVENT_IDX the guest is interrupted and kicks only when it asked to.
 *
 * Interrupts: by default each batch of completions interrupts the guest at once (when it asks).
 * LIGERO_NET_COALESCE_US=N moderates them like a NIC's rx-usecs: at most one interrupt per queue
 * per N microseconds, the rest held back until then (the thread wakes for it). Packets are
 * never held back. docs/virtio.md has what it changes.
 */
#include "vmm/virtio/net.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/iov.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RX_BATCH 32 /* packets between used->idx publications */
#define TX_BATCH 64
#define Q_RX	 0
#define Q_TX	 1

/* Queue `which` of pair p has new used entries: interrupt the guest (if it asked) now, or once
 * coalesce_ns has passed since the last interrupt. The queue's lock held. */
static void irq_locked(struct net_pair *p, int which, bool fresh)
{
	struct net *n = p->n;
	uint64_t now;

	if (fresh)
		p->irq[which].pending = true;
	if (!p->irq[which].pending)
		return;
	now = n->coalesce_ns ? clock_mono_ns() : 0;
	if (n->coalesce_ns && now - p->irq[which].last_ns < n->coalesce_ns)
		return;
	p->irq[which].pending = false;
	if (virtio_dev_queue_done(&n->dev, (int)(2 * p->idx) + which))
		p->irq[which].last_ns = now;
}

static void irq(struct net_pair *p, int which, bool fresh)
{
	struct virtio_queue *q = &p->n->dev.q[2 * p->idx + which];

	pthread_mutex_lock(&q->lock);
	irq_locked(p, which, fresh);
	pthread_mutex_unlock(&q->lock);
}

/* After each event: fire what is due, wake up for what is not yet. */
static void irq_timer(struct net_pair *p)
{
	long us = -1;

	if (!p->n->coalesce_ns)
		return;
	for (int i = 0; i < 2; i++) {
		irq(p, i, false);
		if (p->irq[i].pending) {
			uint64_t now = clock_mono_ns(), due = p->irq[i].last_ns + p->n->coalesce_ns;
			long left = due > now ? (long)((due - now) / 1000) + 1 : 0;
			if (us < 0 || left < us)
				us = left;
		}
	}
	p->w.timeout_us = us;
}

/* ---- TX ---- */

static void tx(struct net_pair *p)
{
	struct virtio_queue *q = &p->n->dev.q[2 * p->idx + Q_TX];
	int fd = p->n->tap.fd[p->idx];
	bool pushed = false;
	unsigned count = 0;

	pthread_mutex_lock(&q->lock);
	while (!virtio_dev_broken(&p->n->dev)) {
		struct virtq_elem *e = &p->te;
		int r;
		virtq_notify_off(&q->vq);
		r = virtq_pop(&q->vq, e);
		if (r < 0) {
			virtio_dev_fail(&p->n->dev, err_msg());
			break;
		}
		if (r == 0) {
			virtq_flush(&q->vq); /* before the guest is asked to kick again */
			if (virtq_notify_on(&q->vq))
				continue;
			break;
		}
		/* The tap takes the vnet header and the frame in one write; a full tap drops it,
		 * and so do we a chain that is no packet. */
		if (e->out_len >= NET_HDR_LEN && e->out_len <= NET_PKT_MAX &&
		    writev(fd, e->iov, (int)e->nout) >= 0)
			p->tx_packets++;
		virtq_fill(&q->vq, e->head, 0);
		pushed = true;
		if (++count % TX_BATCH == 0)
			virtq_flush(&q->vq);
	}
	virtq_flush(&q->vq);
	irq_locked(p, Q_TX, pushed);
	pthread_mutex_unlock(&q->lock);
}

/* ---- RX ---- */

/* Take chains until the buffers hold `need` bytes (mergeable buffers) or one chain (without),
 * or the ring is empty or we hold all of it. False when the device broke. Queue lock held. */
static bool rx_take(struct net_pair *p, struct virtq *vq, bool mrg, uint64_t need)
{
	while ((mrg ? p->cap < need : p->nbuf == 0) && p->nbuf < vq->size &&
	       p->npool + vq->size <= NET_POOL) {
		struct virtq_elem *e = &p->re;
		struct net_rxbuf *b;
		uint64_t left;
		int r = virtq_pop(vq, e);
		if (r == 0)
			return true;
		if (r < 0 || e->in_len < NET_HDR_LEN) {
			/* mergeable or not, every buffer holds at least the header (5.1.6.3.1) */
			virtio_dev_fail(&p->n->dev,
					r < 0 ? err_msg()
					      : "receive buffer smaller than the net header");
			return false;
		}
		b = &p->buf[p->nbuf++];
		b->head = e->head;
		b->iov = (uint16_t)p->npool;
		b->len = 0;
		/* Room past the largest packet is never used; counting it would only make it
		 * possible to count past 4 GiB with buffers that overlap. */
		left = e->in_len < NET_PKT_MAX ? e->in_len : NET_PKT_MAX;
		b->cap = (uint32_t)left;
		for (unsigned i = 0; i < e->nin && left; i++) {
			struct iovec v = e->iov[e->nout + i];
			if (v.iov_len > left)
				v.iov_len = (size_t)left;
			left -= v.iov_len;
			p->pool[p->npool++] = v;
		}
		b->niov = (uint16_t)(p->npool - b->iov);
		p->cap += b->cap;
	}
	return true;
}

/* Forget the first k buffers (returned to the guest). */
static void rx_consume(struct net_pair *p, unsigned k)
{
	unsigned off = k < p->nbuf ? p->buf[k].iov : p->npool;

	for (unsigned i = 0; i < k; i++)
		p->cap -= p->buf[i].cap;
	p->nbuf -= k;
	memmove(p->buf, p->buf + k, sizeof(p->buf[0]) * p->nbuf);
	p->npool -= off;
	memmove(p->pool, p->pool + off, sizeof(p->pool[0]) * p->npool);
	for (unsigned i = 0; i < p->nbuf; i++)
		p->buf[i].iov = (uint16_t)(p->buf[i].iov - off);
}

/* A packet fills buf[0..k), each buf[i].len bytes: tell the guest how many buffers it spans
 * (num_buffers, in the first one's header) and hand them back (published at the next flush). */
static void rx_complete(struct net_pair *p, struct virtq *vq, unsigned k)
{
	uint16_t nb = (uint16_t)k;

	iov_from_buf(p->pool + p->buf[0].iov, p->buf[0].niov,
		     offsetof(struct virtio_net_hdr_v1, num_buffers), &nb, sizeof(nb));
	for (unsigned i = 0; i < k; i++)
		virtq_fill(vq, p->buf[i].head, p->buf[i].len);
	rx_consume(p, k);
	p->rx_packets++;
}

/* Give every buffer back untouched (the ring index goes back: the guest never saw them go). */
static void rx_drop_all(struct net_pair *p, struct virtq *vq)
{
	virtq_unpop(vq, p->nbuf);
	p->nbuf = p->npool = 0;
	p->cap = 0;
	p->pend_bufs = 0;
	p->spill_len = p->spill_off = 0;
	p->rx_dropped++;
}

/* Place the spilled tail of the pending packet into buffers taken since. 1 when the packet is
 * delivered (or dropped: we hold the whole ring and it still does not fit), 0 when it waits
 * for buffers, -1 when the device broke. */
static int rx_spill(struct net_pair *p, struct virtq *vq)
{
	while (p->spill_off < p->spill_len) {
		struct net_rxbuf *b;
		size_t c;
		if (p->pend_bufs == p->nbuf) {
			if (!rx_take(p, vq, true, p->cap + (p->spill_len - p->spill_off)))
				return -1;
			if (p->pend_bufs == p->nbuf) {
				if (p->nbuf < vq->size && p->npool + vq->size <= NET_POOL)
					return 0;
				rx_drop_all(p, vq);
				return 1;
			}
		}
		b = &p->buf[p->pend_bufs++];
		c = p->spill_len - p->spill_off < b->cap ? p->spill_len - p->spill_off : b->cap;
		iov_from_buf(p->pool + b->iov, b->niov, 0, p->spill + p->spill_off, c);
		b->len = (uint32_t)c;
		p->spill_off += c;
	}
	rx_complete(p, vq, p->pend_bufs);
	p->pend_bufs = 0;
	p->spill_len = p->spill_off = 0;
	return 1;
}

/* Read the next packet into the buffers held, the spill buffer after them if they could be too
 * small. Returns its length; 0 when the tap has none (or is gone: then it is no longer polled). */
static size_t rx_read(struct net_pair *p, bool mrg, uint64_t need, uint64_t *cap)
{
	unsigned cnt = mrg ? p->npool : p->buf[0].niov;
	ssize_t r;

	*cap = mrg ? p->cap : p->buf[0].cap;
	if (*cap < need) /* pool[cnt] is free: npool <= NET_POOL, one chain without mrg */
		p->pool[cnt++] = (struct iovec){p->spill, NET_PKT_MAX};
	r = readv(p->n->tap.fd[p->idx], p->pool, (int)cnt);
	if (r < 0 && errno != EAGAIN && errno != EINTR) {
		fprintf(stderr, "ligero: virtio-net %s queue %u: %s; no longer received from\n",
			p->n->tap.ifname, p->idx, strerror(errno));
		p->w.fds[0] = -1;
	}
	return r > 0 ? (size_t)r : 0;
}

/* A packet of len bytes was read into buffers of cap bytes (and the spill buffer after them).
 * Returns whether it was delivered or waits in the spill buffer (not: dropped). */
static bool rx_place(struct net_pair *p, struct virtq *vq, bool mrg, size_t len, uint64_t cap)
{
	if (len <= cap) {
		unsigned k = 0;
		for (size_t left = len; left; k++) {
			struct net_rxbuf *b = &p->buf[k];
			b->len = left < b->cap ? (uint32_t)left : b->cap;
			left -= b->len;
		}
		rx_complete(p, vq, k);
		return true;
	}
	if (!mrg) { /* a packet must fit one chain: the chain stays for the next one */
		p->rx_dropped++;
		return false;
	}
	for (unsigned i = 0; i < p->nbuf; i++)
		p->buf[i].len = p->buf[i].cap;
	p->pend_bufs = p->nbuf;
	p->spill_len = len - cap;
	p->spill_off = 0;
	return true;
}

/* Move packets from the tap to the guest until either runs dry. */
static void rx(struct net_pair *p)
{
	struct virtio_queue *q = &p->n->dev.q[2 * p->idx + Q_RX];
	bool mrg = virtio_dev_has(&p->n->dev, VIRTIO_NET_F_MRG_RXBUF), stalled = false;
	uint64_t need = p->n->rx_need, cap;
	unsigned count = 0;
	size_t len;

	pthread_mutex_lock(&q->lock);
	while (!virtio_dev_broken(&p->n->dev)) {
		int r = 1;
		if (p->pend_bufs) { /* a spilled packet first: it needs more buffers */
			r = rx_spill(p, &q->vq);
		} else if (!rx_take(p, &q->vq, mrg, need)) {
			r = -1;
		} else if (p->nbuf == 0) {
			r = 0;
		} else {
			if (!(len = rx_read(p, mrg, need, &cap)))
				break; /* the tap is empty */
			if (len < NET_HDR_LEN || !rx_place(p, &q->vq, mrg, len, cap))
				continue;
		}
		if (r < 0)
			break;
		if (r == 0) { /* no guest buffers: sleep until the guest posts some */
			if (virtq_notify_on(&q->vq))
				continue;
			stalled = true;
			break;
		}
		if (++count % RX_BATCH == 0) {
			virtq_flush(&q->vq);
			irq_locked(p, Q_RX, true);
		}
	}
	virtq_flush(&q->vq);
	/* Without guest buffers, stop polling the tap until the guest posts some (a broken
	 * device until a reset starts this thread again). */
	if (p->w.fds[0] >= 0)
		p->w.events[0] = stalled || virtio_dev_broken(&p->n->dev) ? 0 : POLLIN;
	irq_locked(p, Q_RX, count % RX_BATCH != 0);
	pthread_mutex_unlock(&q->lock);
}

static void on_tap(struct virtio_worker *w, int idx)
{
	rx(w->opaque);
	irq_timer(w->opaque);
}

static void on_rx_kick(struct virtio_worker *w, int idx)
{
	virtio_eventfd_drain(w->fds[idx]);
	rx(w->opaque);
	irq_timer(w->opaque);
}

static void on_tx_kick(struct virtio_worker *w, int idx)
{
	virtio_eventfd_drain(w->fds[idx]);
	tx(w->opaque);
	irq_timer(w->opaque);
}

static void on_timeout(struct virtio_worker *w, int idx)
{
	irq_timer(w->opaque);
}

int net_user_start(struct net *n, unsigned pi)
{
	struct net_pair *p = &n->pair[pi];
	char name[16];

	if (p->running)
		return 0;
	if (!p->spill && !(p->spill = malloc(NET_PKT_MAX)))
		return err_set(ENOMEM, "out of memory");
	p->n = n;
	p->idx = pi;
	p->te.iov = p->tiov;
	p->re.iov = p->riov;
	virtio_worker_init(&p->w, p);
	virtio_worker_add(&p->w, n->tap.fd[pi], POLLIN, on_tap); /* index 0: see rx */
	virtio_worker_add(&p->w, n->dev.q[2 * pi + Q_RX].kick_fd, POLLIN, on_rx_kick);
	virtio_worker_add(&p->w, n->dev.q[2 * pi + Q_TX].kick_fd, POLLIN, on_tx_kick);
	p->w.on_timeout = on_timeout;
	snprintf(name, sizeof(name), "virtio-net-%u", pi);
	if (virtio_worker_start(&p->w, name) < 0)
		return -EAGAIN;
	p->running = true;
	return 0;
}

void net_user_stop(struct net *n, unsigned pi)
{
	struct net_pair *p = &n->pair[pi];

	if (!p->running)
		return;
	virtio_worker_stop(&p->w);
	p->running = false;
}

void net_user_forget(struct net_pair *p)
{
	p->nbuf = p->npool = p->pend_bufs = 0;
	p->cap = 0;
	p->spill_len = p->spill_off = 0;
	memset(p->irq, 0, sizeof(p->irq));
}
