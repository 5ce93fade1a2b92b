/*
 * virtio-net (virtio 1.x, 5.1) on a tap device: the device's features, configuration space,
 * queue pairs and control queue. The packets move through the host kernel (net_vhost.c) where
 * /dev/vhost-net can be used, through ligero's own threads (net_user.c) otherwise; net_tap.c
 * owns the tap; net.h says how the queues are laid out.
 *
 * Offloads: the tap takes and gives 12-byte vnet headers, so checksum offload and TSO/GSO pass
 * between the guest and the host kernel as they are (CSUM, HOST_TSO4/6/ECN/UFO for what the
 * guest sends; GUEST_CSUM, GUEST_TSO4/6/ECN/UFO, as far as the tap takes them, for what it
 * receives: TUNSETOFFLOAD follows what the guest accepted). MRG_RXBUF lets a 64 KiB packet span
 * the guest's small receive buffers. Both data paths offer the same features.
 */
#include "vmm/virtio/devices.h"
#include "vmm/virtio/net.h"
#include "util/error.h"
#include "util/iov.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VHOST_NET_DEV "/dev/vhost-net"
#define F(bit)	      (1ull << (bit))

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

/* What the device offers: the offloads the tap takes, the MTU when one was set, and several
 * queue pairs with the control queue that chooses how many run. */
static uint64_t device_features(const struct net *n)
{
	uint64_t f = F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MRG_RXBUF) |
		     F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) |
		     F(VIRTIO_NET_F_HOST_ECN) | F(VIRTIO_NET_F_HOST_UFO);
	unsigned off = n->tap.offloads;

	if (off & TUN_F_CSUM)
		f |= F(VIRTIO_NET_F_GUEST_CSUM);
	if (off & TUN_F_TSO4)
		f |= F(VIRTIO_NET_F_GUEST_TSO4);
	if (off & TUN_F_TSO6)
		f |= F(VIRTIO_NET_F_GUEST_TSO6);
	if (off & TUN_F_TSO_ECN)
		f |= F(VIRTIO_NET_F_GUEST_ECN);
	if (off & TUN_F_UFO)
		f |= F(VIRTIO_NET_F_GUEST_UFO);
	if (n->opts.mtu)
		f |= F(VIRTIO_NET_F_MTU);
	if (n->max_pairs > 1)
		f |= F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_MQ);
	return f;
}

static int pair_start(struct net *n, unsigned p)
{
	return n->use_vhost ? net_vhost_start(n, p) : net_user_start(n, p);
}

static void pair_stop(struct net *n, unsigned p)
{
	if (n->use_vhost)
		net_vhost_stop(n, p);
	else
		net_user_stop(n, p);
}

/* Start the data path of pairs [0, n->usable), or stop them all (k = 0). Every pair the driver
 * set up runs from DRIVER_OK to the reset, used or not: a pair the guest stops using may still
 * hold transmit buffers, which must complete (TCP does not resend a packet the device has not
 * given back). */
static int run_pairs(struct net *n, bool on)
{
	int ret = 0;

	for (unsigned p = 0; p < n->usable && on && ret == 0; p++)
		if ((ret = pair_start(n, p)) < 0)
			on = false;
	if (!on)
		for (unsigned p = 0; p < n->usable; p++)
			pair_stop(n, p);
	return ret;
}

/* The tap steers packets to the first k queues only (queue 0 always: a single-queue driver's). */
static int set_active(struct net *n, unsigned k)
{
	int ret = 0;

	for (unsigned p = 1; p < n->max_pairs && ret == 0; p++)
		ret = net_tap_enable(&n->tap, p, p < k);
	if (ret == 0)
		n->active = k;
	return ret;
}

/* ---- control queue ---- */

static int ctrl_elem(struct virtio_dev *d, int qi, struct virtq_elem *e, uint32_t *written)
{
	struct net *n = d->priv;
	struct virtio_net_ctrl_hdr h;
	uint8_t ack = VIRTIO_NET_ERR;
	uint16_t pairs;

	if (e->out_len < sizeof(h) || e->in_len < 1)
		return err_set(EINVAL, "control command without its header or ack byte");
	iov_to_buf(e->iov, e->nout, 0, &h, sizeof(h));
	if (h.class == VIRTIO_NET_CTRL_MQ && h.cmd == VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET &&
	    e->out_len == sizeof(h) + sizeof(pairs) && virtio_dev_has(d, VIRTIO_NET_F_MQ)) {
		iov_to_buf(e->iov, e->nout, sizeof(h), &pairs, sizeof(pairs));
		if (pairs >= 1 && pairs <= n->usable) {
			if (set_active(n, pairs) == 0)
				ack = VIRTIO_NET_OK;
			else
				fprintf(stderr, "ligero: virtio-net %s: %s\n", n->tap.ifname,
					err_msg());
		}
	}
	iov_from_buf(e->iov + e->nout, e->nin, 0, &ack, sizeof(ack));
	*written = sizeof(ack);
	return 0;
}

static void on_ctrl_kick(struct virtio_worker *w, int idx)
{
	struct net *n = w->opaque;

	virtio_eventfd_drain(w->fds[idx]);
	virtio_queue_drain(&n->dev, n->ctrl_qi, &n->ce, ctrl_elem);
}

static void on_vhost_err(struct virtio_worker *w, int idx)
{
	struct net *n = w->opaque;

	virtio_eventfd_drain(w->fds[idx]);
	virtio_dev_fail(&n->dev, "vhost-net stopped a queue: malformed ring or descriptor");
}

/* The thread that is no data path: the control queue and, with vhost, the kernel's errors. */
static int svc_start(struct net *n)
{
	virtio_worker_init(&n->svc, n);
	if (n->ctrl_qi >= 0 && n->dev.q[n->ctrl_qi].enabled)
		virtio_worker_add(&n->svc, n->dev.q[n->ctrl_qi].kick_fd, POLLIN, on_ctrl_kick);
	if (n->use_vhost)
		virtio_worker_add(&n->svc, n->vhost.err_fd, POLLIN, on_vhost_err);
	return n->svc.nfds ? virtio_worker_start(&n->svc, "virtio-net-ctl") : 0;
}

/* ---- device ops ---- */

/* Pairs whose two queues the driver enabled; without MQ only the first is the driver's. */
static unsigned usable_pairs(struct net *n)
{
	unsigned p = 0, max = virtio_dev_has(&n->dev, VIRTIO_NET_F_MQ) ? n->max_pairs : 1;

	while (p < max && n->dev.q[2 * p].enabled && n->dev.q[2 * p + 1].enabled)
		p++;
	return p;
}

static int net_activate(struct virtio_dev *d)
{
	struct net *n = d->priv;
	unsigned flags = net_tap_offload_flags(d->features);
	int ret;

	n->ctrl_qi = !virtio_dev_has(d, VIRTIO_NET_F_CTRL_VQ) ? -1
		     : virtio_dev_has(d, VIRTIO_NET_F_MQ)     ? (int)(2 * n->max_pairs)
							      : 2;
	if (!(n->usable = usable_pairs(n)))
		return err_set(EINVAL, "receive or transmit queue not enabled");
	if ((ret = net_tap_set_offload(&n->tap, flags)) < 0)
		return ret;
	/* what the largest packet the tap may now hand over needs in guest buffers */
	n->rx_need = (flags & (TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO))
			 ? NET_PKT_MAX
			 : NET_HDR_LEN + (n->opts.mtu ? n->opts.mtu : 1500) + 14 + 4;
	n->use_vhost = n->vhost.nfds > 0;
	if (n->paused) /* virtio_net_resume starts them */
		return set_active(n, 1);
	ret = run_pairs(n, true);
	if (ret < 0 && n->use_vhost) {
		fprintf(stderr, "ligero: virtio-net %s: %s; userspace data path from now on\n",
			n->tap.ifname, err_msg());
		snprintf(n->why, sizeof(n->why), "%s", err_msg());
		net_vhost_close(&n->vhost);
		n->use_vhost = false;
		ret = run_pairs(n, true);
	}
	/* the device starts with one pair; the driver asks for more on the control queue */
	if (ret == 0 && (ret = set_active(n, 1)) == 0 && (ret = svc_start(n)) == 0)
		return 0;
	run_pairs(n, false);
	return ret;
}

static void net_reset(struct virtio_dev *d)
{
	struct net *n = d->priv;

	virtio_worker_stop(&n->svc);
	run_pairs(n, false);
	set_active(n, 1);
	net_vhost_forget(&n->vhost);
	for (unsigned p = 0; p < n->max_pairs; p++)
		net_user_forget(&n->pair[p]);
	/* no driver, no offloads: the host stops sending GSO frames nobody can take */
	net_tap_set_offload(&n->tap, 0);
}

static void net_set_call(struct virtio_dev *d, unsigned qi, int fd)
{
	net_vhost_set_call(d->priv, qi, fd);
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
    .set_call = net_set_call,
};

/* The kernel's data path if it can be had (and is wanted): otherwise why not, for the notice. */
static int vhost_open(struct net *n)
{
	int ret;

	if (n->opts.vhost == VIRTIO_NET_VHOST_OFF) {
		snprintf(n->why, sizeof(n->why), "vhost=off");
		return 0;
	}
	ret = net_vhost_open(&n->vhost, VHOST_NET_DEV, n->max_pairs);
	if (ret < 0) {
		snprintf(n->why, sizeof(n->why), "%s", err_msg());
		net_vhost_close(&n->vhost);
		if (n->opts.vhost == VIRTIO_NET_VHOST_ON)
			return err_set(-ret, "vhost=on: %s", n->why);
	}
	return 0;
}

int virtio_net_create(struct virtio_dev **out, const struct virtio_net_opts *o, unsigned cpus,
		      const struct virtio_mem *mem, struct kvm_irq *irq)
{
	struct net *n = calloc(1, sizeof(*n));
	unsigned want = o->queues		      ? o->queues
			: cpus < VIRTIO_NET_MAX_PAIRS ? cpus
						      : VIRTIO_NET_MAX_PAIRS;
	const char *c = getenv("LIGERO_NET_COALESCE_US");
	int ret;

	if (!n)
		return -ENOMEM;
	n->opts = *o;
	n->coalesce_ns = c ? strtoull(c, NULL, 10) * 1000 : 0;
	for (unsigned i = 0; i < VIRTIO_NET_MAX_PAIRS; i++)
		n->tap.fd[i] = n->vhost.fd[i] = -1;
	n->vhost.err_fd = -1;
	n->ce.iov = n->ciov;
	ret = net_tap_open(&n->tap, o, want ? want : 1, o->queues != 0);
	if (ret > 0) {
		n->max_pairs = (unsigned)ret;
		/* only the pairs the driver asks for get packets (net_activate) */
		for (unsigned p = 1; p < n->max_pairs && ret > 0; p++)
			ret = net_tap_enable(&n->tap, p, false) ?: ret;
	}
	if (ret > 0)
		ret = vhost_open(n);
	memcpy(n->cfg.mac, o->mac, 6);
	n->cfg.status = VIRTIO_NET_S_LINK_UP;
	n->cfg.max_virtqueue_pairs = (uint16_t)n->max_pairs;
	n->cfg.mtu = (uint16_t)(o->mtu ? o->mtu : 1500);
	if (ret >= 0)
		ret = virtio_dev_init(&n->dev, &net_ops, n, mem, irq,
				      n->max_pairs > 1 ? 2 * n->max_pairs + 1 : 2, NET_QUEUE_SIZE,
				      device_features(n), sizeof(n->cfg));
	if (ret < 0) {
		virtio_net_destroy(&n->dev);
		return ret;
	}
	/* ring features the kernel's worker lacks are not offered */
	if (n->vhost.nfds)
		n->dev.host_features &= ~(net_vhost_ring_features() & ~n->vhost.features);
	*out = &n->dev;
	return 0;
}

void virtio_net_pause(struct virtio_dev *d)
{
	struct net *n = (struct net *)d;

	pthread_mutex_lock(&d->lock);
	if (!n->paused && d->active) {
		virtio_worker_stop(&n->svc);
		run_pairs(n, false); /* the kernel's rings: where they stopped is saved */
	}
	n->paused = true;
	pthread_mutex_unlock(&d->lock);
}

int virtio_net_resume(struct virtio_dev *d)
{
	struct net *n = (struct net *)d;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (n->paused && d->active && (ret = run_pairs(n, true) ?: svc_start(n)) < 0) {
		run_pairs(n, false);
		virtio_dev_fail(d, err_msg());
	}
	n->paused = false;
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void virtio_net_describe(const struct virtio_dev *d, char *buf, size_t len)
{
	const struct net *n = (const struct net *)d;

	snprintf(buf, len, "virtio-net %s%s%s: %s, %u queue pair%s%s%s%s", n->tap.ifname,
		 n->opts.bridge[0] ? " in bridge " : "", n->opts.bridge,
		 n->vhost.nfds ? "vhost-net (the host kernel moves the packets)"
			       : "userspace data path",
		 n->max_pairs, n->max_pairs > 1 ? "s" : "", n->why[0] ? " (" : "", n->why,
		 n->why[0] ? ")" : "");
}

void virtio_net_destroy(struct virtio_dev *d)
{
	struct net *n = (struct net *)d;

	virtio_dev_destroy(d); /* stops the pairs */
	net_vhost_close(&n->vhost);
	net_tap_close(&n->tap);
	for (unsigned p = 0; p < VIRTIO_NET_MAX_PAIRS; p++)
		free(n->pair[p].spill);
	free(n);
}
