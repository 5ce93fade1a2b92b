/*
 * virtio-net on a tap device with vnet headers (IFF_VNET_HDR, 12-byte virtio_net_hdr_v1), so
 * checksum offload and TSO/GSO pass between the guest and the host kernel untouched. TX writes a
 * chain's buffers straight to the tap (writev, no copy); RX reads a packet into one bounce buffer
 * and spreads it over as many guest buffers as it needs (MRG_RXBUF). With bridge=BR the tap is
 * created here and joins the bridge; it is not persistent, so it vanishes when the VMM exits,
 * however it exits.
 *
 * Interrupts: by default each batch of completions interrupts the guest at once (when it asks,
 * EVENT_IDX). LIGERO_NET_COALESCE_US=N in the environment moderates them like a NIC's
 * rx-usecs: at most one interrupt per queue per N microseconds, the rest held back until then
 * (the worker wakes for it). The data itself is never held back. docs/virtio.md has what it
 * changes.
 */
#include "vmm/virtio/devices.h"
#include "vmm/virtio/worker.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define NET_QUEUE_SIZE 256
#define Q_RX	       0
#define Q_TX	       1
#define HDR_LEN	       sizeof(struct virtio_net_hdr_v1)
#define PKT_MAX	       (HDR_LEN + 65536 + 14 + 4)

struct net {
	struct virtio_dev dev;
	struct virtio_worker w;
	int tap_fd, tap_idx;
	char ifname[IFNAMSIZ];
	struct virtio_net_config cfg;
	struct virtq_elem e;
	struct iovec iov[NET_QUEUE_SIZE];
	/* RX: a packet read from the tap, waiting for guest buffers */
	uint8_t pkt[PKT_MAX];
	size_t pkt_len, pkt_off;
	unsigned nheld;
	struct {
		uint16_t head;
		uint32_t len;
	} held[NET_QUEUE_SIZE];
	struct iovec first_hdr[2]; /* where the first buffer's header lives (num_buffers) */
	uint64_t rx_packets, tx_packets, rx_dropped;
	/* interrupt moderation: at most one interrupt per queue per coalesce_ns */
	uint64_t coalesce_ns;
	struct {
		bool pending;
		uint64_t last_ns;
	} irq[2];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Queue qi has new used entries: interrupt now, or once coalesce_ns has passed since the last
 * interrupt. q->lock not held. */
static void net_irq(struct net *n, int qi, bool fresh)
{
	struct virtio_queue *q = &n->dev.q[qi];
	uint64_t now;

	if (fresh)
		n->irq[qi].pending = true;
	if (!n->irq[qi].pending)
		return;
	now = mono_ns();
	if (n->coalesce_ns && now - n->irq[qi].last_ns < n->coalesce_ns)
		return;
	n->irq[qi].pending = false;
	pthread_mutex_lock(&q->lock);
	if (virtio_dev_queue_done(&n->dev, qi))
		n->irq[qi].last_ns = now;
	pthread_mutex_unlock(&q->lock);
}

/* After each event: fire what is due, and wake up for what is not yet. Without moderation
 * net_irq has fired everything already. */
static void net_irq_timer(struct net *n)
{
	long us = -1;

	if (!n->coalesce_ns)
		return;
	net_irq(n, Q_RX, false);
	net_irq(n, Q_TX, false);
	for (int qi = 0; qi < 2; qi++) {
		if (n->irq[qi].pending) {
			uint64_t now = mono_ns(), due = n->irq[qi].last_ns + n->coalesce_ns;
			long left = due > now ? (long)((due - now) / 1000) + 1 : 0;
			if (us < 0 || left < us)
				us = left;
		}
	}
	n->w.timeout_us = us;
}

void virtio_net_default_mac(const char *seed, unsigned index, uint8_t mac[6])
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a: stable across runs and hosts */

	for (const char *p = seed ? seed : ""; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	h = (h ^ index) * 1099511628211ull;
	mac[0] = 0x52; /* QEMU's locally administered prefix 52:54:00 */
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static int tap_open(struct net *n, const struct virtio_net_opts *o)
{
	struct ifreq ifr = {0};
	int hdr = HDR_LEN, s, ret;

	n->tap_fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (n->tap_fd < 0)
		return err_sys(errno, "/dev/net/tun");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->tap);
	if (ioctl(n->tap_fd, TUNSETIFF, &ifr) < 0)
		return err_sys(errno, "tap %s", o->tap[0] ? o->tap : "(new)");
	snprintf(n->ifname, sizeof(n->ifname), "%s", ifr.ifr_name);
	if (ioctl(n->tap_fd, TUNSETVNETHDRSZ, &hdr) < 0)
		return err_sys(errno, "%s: TUNSETVNETHDRSZ", n->ifname);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return err_sys(errno, "socket");
	ret = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			ret = err_sys(errno, "%s: bringing it up", n->ifname);
	}
	if (!ret && ioctl(s, SIOCGIFINDEX, &ifr) == 0)
		n->tap_idx = ifr.ifr_ifindex;
	if (!ret && o->bridge[0]) {
		struct ifreq br = {0};
		snprintf(br.ifr_name, sizeof(br.ifr_name), "%s", o->bridge);
		br.ifr_ifindex = n->tap_idx;
		if (ioctl(s, SIOCBRADDIF, &br) < 0)
			ret = err_sys(errno, "adding %s to bridge %s", n->ifname, o->bridge);
	}
	close(s);
	return ret;
}

/* ---- TX ---- */

static int net_tx(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written)
{
	struct net *n = d->priv;

	if (e->out_len < HDR_LEN || e->out_len > PKT_MAX)
		return 0; /* drop: not a packet we can send */
	/* The tap takes the vnet header and the frame in one write; a full tap drops it. */
	if (writev(n->tap_fd, e->iov, (int)e->nout) >= 0)
		n->tx_packets++;
	return 0;
}

/* ---- RX ---- */

/* Place the pending packet into guest buffers. Returns true when it was delivered (or
 * dropped), false when the guest has no buffers left (wait for an RX kick). q->lock held. */
static bool rx_place(struct net *n)
{
	struct virtio_queue *q = &n->dev.q[Q_RX];
	bool mrg = virtio_dev_has(&n->dev, VIRTIO_NET_F_MRG_RXBUF);

	while (n->pkt_off < n->pkt_len) {
		size_t len;
		int r = virtq_pop(&q->vq, &n->e);
		if (r < 0) {
			virtio_dev_fail(&n->dev, err_msg());
			return true;
		}
		if (r == 0)
			return false;
		len = n->pkt_len - n->pkt_off;
		if (n->e.in_len < len)
			len = (size_t)n->e.in_len;
		if (n->nheld == 0) {
			if (n->e.in_len < HDR_LEN) {
				virtio_dev_fail(&n->dev, "rx buffer smaller than the net header");
				return true;
			}
			memcpy(n->first_hdr, &n->e.iov[n->e.nout],
			       sizeof(struct iovec) * (n->e.nin < 2 ? n->e.nin : 2));
			if (n->e.nin < 2)
				n->first_hdr[1].iov_len = 0;
		}
		iov_from_buf(n->e.iov + n->e.nout, n->e.nin, 0, n->pkt + n->pkt_off, len);
		n->held[n->nheld].head = n->e.head;
		n->held[n->nheld].len = (uint32_t)len;
		n->nheld++;
		n->pkt_off += len;
		if (!mrg && n->pkt_off < n->pkt_len) { /* one buffer must hold it all */
			n->rx_dropped++;
			n->pkt_off = n->pkt_len;
		}
		if (n->nheld == q->vq.size && n->pkt_off < n->pkt_len) {
			n->rx_dropped++;
			n->pkt_off = n->pkt_len;
		}
	}
	{
		uint16_t nb = (uint16_t)n->nheld;
		/* num_buffers sits right after the 10-byte legacy header */
		iov_from_buf(n->first_hdr, 2, offsetof(struct virtio_net_hdr_v1, num_buffers), &nb,
			     2);
	}
	for (unsigned i = 0; i < n->nheld; i++)
		virtq_push(&q->vq, n->held[i].head, n->held[i].len);
	n->nheld = 0;
	n->pkt_len = n->pkt_off = 0;
	n->rx_packets++;
	return true;
}

/* Move packets from the tap to the guest until either runs dry. */
static void net_rx(struct net *n)
{
	struct virtio_queue *q = &n->dev.q[Q_RX];
	bool delivered = false, stalled = false;

	pthread_mutex_lock(&q->lock);
	while (!virtio_dev_broken(&n->dev)) {
		if (n->pkt_len == 0) {
			ssize_t r = read(n->tap_fd, n->pkt, sizeof(n->pkt));
			if (r <= 0)
				break;
			if ((size_t)r < HDR_LEN)
				continue;
			n->pkt_len = (size_t)r;
			n->pkt_off = 0;
			n->nheld = 0;
		}
		if (!rx_place(n)) {
			if (virtq_notify_on(&q->vq))
				continue;
			stalled = true;
			break;
		}
		delivered = true;
	}
	/* Without guest buffers, stop polling the tap until the guest posts some. */
	n->w.events[0] = stalled ? 0 : POLLIN;
	pthread_mutex_unlock(&q->lock);
	net_irq(n, Q_RX, delivered);
}

static void net_tap_ready(struct virtio_worker *w, int idx)
{
	net_rx(w->opaque);
	net_irq_timer(w->opaque);
}

static void net_rx_kick(struct virtio_worker *w, int idx)
{
	virtio_eventfd_drain(w->fds[idx]);
	net_rx(w->opaque);
	net_irq_timer(w->opaque);
}

static void net_tx_kick(struct virtio_worker *w, int idx)
{
	struct net *n = w->opaque;

	virtio_eventfd_drain(w->fds[idx]);
	net_irq(n, Q_TX, virtio_queue_drain_quiet(&n->dev, Q_TX, &n->e, net_tx));
	net_irq_timer(n);
}

static void net_timeout(struct virtio_worker *w, int idx)
{
	net_irq_timer(w->opaque);
}

static int net_activate(struct virtio_dev *d)
{
	struct net *n = d->priv;
	unsigned off = 0;

	if (virtio_dev_has(d, VIRTIO_NET_F_GUEST_CSUM))
		off |= TUN_F_CSUM;
	if (virtio_dev_has(d, VIRTIO_NET_F_GUEST_TSO4))
		off |= TUN_F_TSO4;
	if (virtio_dev_has(d, VIRTIO_NET_F_GUEST_TSO6))
		off |= TUN_F_TSO6;
	if (virtio_dev_has(d, VIRTIO_NET_F_GUEST_ECN))
		off |= TUN_F_TSO_ECN;
	if (!(off & TUN_F_CSUM))
		off = 0; /* TSO without checksum offload is not a thing */
	if (ioctl(n->tap_fd, TUNSETOFFLOAD, off) < 0)
		return err_sys(errno, "%s: TUNSETOFFLOAD", n->ifname);
	n->pkt_len = n->pkt_off = 0;
	n->nheld = 0;
	virtio_worker_init(&n->w, n);
	virtio_worker_add(&n->w, n->tap_fd, POLLIN, net_tap_ready); /* index 0: see net_rx */
	virtio_worker_add(&n->w, d->q[Q_RX].kick_fd, POLLIN, net_rx_kick);
	virtio_worker_add(&n->w, d->q[Q_TX].kick_fd, POLLIN, net_tx_kick);
	n->w.on_timeout = net_timeout;
	memset(n->irq, 0, sizeof(n->irq));
	return virtio_worker_start(&n->w, "virtio-net");
}

static void net_reset(struct virtio_dev *d)
{
	struct net *n = d->priv;
	virtio_worker_stop(&n->w);
}

static void net_cfg_read(struct virtio_dev *d, uint32_t off, void *data, unsigned len)
{
	struct net *n = d->priv;
	memcpy(data, (uint8_t *)&n->cfg + off, len);
}

static const struct virtio_dev_ops net_ops = {
    .name = "net",
    .type = VIRTIO_ID_NET,
    .class_code = 0x020000,
    .cfg_read = net_cfg_read,
    .activate = net_activate,
    .reset = net_reset,
};

int virtio_net_create(struct virtio_dev **out, const struct virtio_net_opts *o,
		      const struct virtio_mem *mem, struct kvm_irq *irq)
{
	struct net *n = calloc(1, sizeof(*n));
	uint64_t features = (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) |
			    (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_GUEST_TSO4) |
			    (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_GUEST_ECN) |
			    (1ull << VIRTIO_NET_F_HOST_TSO4) | (1ull << VIRTIO_NET_F_HOST_TSO6) |
			    (1ull << VIRTIO_NET_F_HOST_ECN) | (1ull << VIRTIO_NET_F_MRG_RXBUF) |
			    (1ull << VIRTIO_NET_F_STATUS);
	int ret;

	if (!n)
		return -ENOMEM;
	n->tap_fd = -1;
	n->e.iov = n->iov;
	{
		const char *c = getenv("LIGERO_NET_COALESCE_US");
		n->coalesce_ns = c ? strtoull(c, NULL, 10) * 1000 : 0;
	}
	memcpy(n->cfg.mac, o->mac, 6);
	n->cfg.status = VIRTIO_NET_S_LINK_UP;
	n->cfg.max_virtqueue_pairs = 1;
	n->cfg.mtu = 1500;
	ret = tap_open(n, o);
	if (ret == 0)
		ret = virtio_dev_init(&n->dev, &net_ops, n, mem, irq, 2, NET_QUEUE_SIZE, features,
				      sizeof(n->cfg));
	if (ret < 0) {
		virtio_net_destroy(&n->dev);
		return ret;
	}
	*out = &n->dev;
	return 0;
}

void virtio_net_destroy(struct virtio_dev *d)
{
	struct net *n = (struct net *)d;

	virtio_dev_destroy(d);
	if (n->tap_fd >= 0)
		close(n->tap_fd); /* a tap we created disappears with its last fd */
	free(n);
}
