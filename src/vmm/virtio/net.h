/*
 * virtio-net's parts, shared by net.c (the device: features, queue pairs, control queue),
 * net_tap.c (the tap), net_vhost.c (the kernel's data path) and net_user.c (ligero's own).
 *
 * Queues: pair p is receiveq 2p and transmitq 2p + 1; with VIRTIO_NET_F_MQ the control queue
 * is 2 * max_pairs, without it 2 (virtio 1.x, 5.1.2). Each pair has its own tap queue
 * (IFF_MULTI_QUEUE) and either its own /dev/vhost-net (a kernel worker: kicks reach it through
 * the KVM ioeventfd, interrupts leave through the vector's irqfd) or its own device thread.
 * Every pair the driver set up runs; the tap steers packets only to the queues of the pairs the
 * guest asked for (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET).
 */
#ifndef LIGERO_VMM_VIRTIO_NET_H
#define LIGERO_VMM_VIRTIO_NET_H

#include "vmm/virtio/pci.h"
#include "vmm/virtio/vmdev.h"
#include "vmm/virtio/worker.h"

#include <linux/if.h>
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define NET_QUEUE_SIZE 256
#define NET_HDR_LEN    sizeof(struct virtio_net_hdr_v1) /* 12 bytes: VERSION_1 */
/* The largest packet a tap hands over: a 64 KiB GSO frame, its Ethernet and VLAN headers. */
#define NET_PKT_MAX (NET_HDR_LEN + 65536 + 14 + 4)
#define NET_POOL    (2 * NET_QUEUE_SIZE)

struct net;

/* ---- the tap (net_tap.c) ---- */
struct net_tap {
	int fd[VIRTIO_NET_MAX_PAIRS]; /* one per queue pair; -1 when not open */
	unsigned nfds;
	bool multi; /* IFF_MULTI_QUEUE */
	char ifname[IFNAMSIZ];
	int ifindex;
	unsigned offloads; /* TUN_F_* the tap accepts (probed at open) */
};

/* Open (or create) the tap of o with `pairs` queues (IFF_MULTI_QUEUE when more than one), vnet
 * headers of NET_HDR_LEN bytes, the MTU of o, up, in o's bridge. An existing single-queue tap
 * gives one queue when `exact` is false. Returns the queues opened, or -errno with a message. */
int net_tap_open(struct net_tap *t, const struct virtio_net_opts *o, unsigned pairs, bool exact);
void net_tap_close(struct net_tap *t);
/* TUN_F_* flags for the offloads the guest accepted (the GUEST_* bits of `features`): what
 * TUNSETOFFLOAD takes, never a combination it refuses. */
unsigned net_tap_offload_flags(uint64_t features);
int net_tap_set_offload(struct net_tap *t, unsigned flags);
/* Let queue i receive packets, or stop the tap steering any to it (TUNSETQUEUE). */
int net_tap_enable(struct net_tap *t, unsigned i, bool on);

/* ---- the kernel's data path (net_vhost.c) ---- */
struct net_vhost {
	int fd[VIRTIO_NET_MAX_PAIRS]; /* one /dev/vhost-net per queue pair; -1 when not open */
	unsigned nfds;
	uint64_t features;			/* what the kernel offers (VHOST_GET_FEATURES) */
	bool running[VIRTIO_NET_MAX_PAIRS];	/* backend attached */
	uint16_t base[VIRTIO_NET_MAX_PAIRS][2]; /* next avail index of RX and TX, kept across
						   a stop and start; 0 after a device reset */
	int err_fd; /* eventfd the kernel signals when it meets a malformed ring (every ring) */
};

struct vhost_memory;
/* Open `path` `pairs` times, take ownership, read the features. -errno with a message. */
int net_vhost_open(struct net_vhost *v, const char *path, unsigned pairs);
void net_vhost_close(struct net_vhost *v);
/* The memory table vhost gets: every RAM region of m, each checked (non-empty, page aligned,
 * no wrap-around, no overlap with another), at most `max`. out has room for `max` regions.
 * 0 or -EINVAL with a message. */
int net_vhost_mem_table(const struct virtio_mem *m, struct vhost_memory *out, unsigned max);
/* Feature bits vhost itself acts on (the rest is the tap's business or ours). */
uint64_t net_vhost_ring_features(void);
/* Hand pair p's rings to the kernel from its saved avail indexes and attach the tap queue. */
int net_vhost_start(struct net *n, unsigned p);
/* Detach the backend and save where each ring stopped (VHOST_GET_VRING_BASE). */
void net_vhost_stop(struct net *n, unsigned p);
/* A device reset: the next start begins the rings at 0. */
void net_vhost_forget(struct net_vhost *v);
/* The transport's set_call for data queue qi. */
void net_vhost_set_call(struct net *n, unsigned qi, int fd);

/* ---- ligero's own data path (net_user.c) ---- */
struct net_rxbuf {
	uint16_t head;
	uint16_t iov, niov; /* its writable iovecs in pool[] */
	uint32_t cap;	    /* their bytes */
	uint32_t len;	    /* bytes of the pending packet written into it */
};

struct net_pair {
	struct net *n;
	unsigned idx;
	struct virtio_worker w;
	bool running;
	/* TX: one chain at a time, written to the tap as it lies in guest memory */
	struct virtq_elem te;
	struct iovec tiov[NET_QUEUE_SIZE];
	/* RX: chains taken from the ring and not yet returned, in ring order. The tap reads
	 * straight into them (readv); the spill buffer only takes what overflows them. */
	struct virtq_elem re;
	struct iovec riov[NET_QUEUE_SIZE];
	struct iovec pool[NET_POOL + 1]; /* + the spill buffer's entry */
	unsigned npool;
	struct net_rxbuf buf[NET_QUEUE_SIZE];
	unsigned nbuf;
	uint64_t cap;	    /* bytes of buf[] */
	uint8_t *spill;	    /* NET_PKT_MAX bytes */
	size_t spill_len;   /* a packet's tail waiting there for more guest buffers */
	size_t spill_off;   /* of which this much has been placed */
	unsigned pend_bufs; /* buffers that hold the packet's head (0: none pending) */
	struct {
		bool pending;
		uint64_t last_ns;
	} irq[2]; /* interrupt moderation (LIGERO_NET_COALESCE_US) */
	uint64_t rx_packets, tx_packets, rx_dropped;
};

int net_user_start(struct net *n, unsigned p);
void net_user_stop(struct net *n, unsigned p);
/* A device reset: forget the buffers taken from the rings. */
void net_user_forget(struct net_pair *p);

/* ---- the device (net.c) ---- */
struct net {
	struct virtio_dev dev;
	struct virtio_net_opts opts;
	struct virtio_net_config cfg;
	struct net_tap tap;
	struct net_vhost vhost;
	bool use_vhost;	    /* this activation runs on vhost */
	bool paused;	    /* virtio_net_pause: no data path runs */
	char why[160];	    /* why vhost is not used (for the notice), "" if it is */
	unsigned max_pairs; /* queue pairs the device has */
	unsigned usable;    /* pairs the driver set up (this activation): their data paths run */
	unsigned active;    /* pairs the guest uses: the tap steers packets to their queues */
	int ctrl_qi;	    /* the control queue (this activation), -1: none */
	unsigned rx_need;   /* guest buffer bytes the largest packet the tap may send needs */
	uint64_t coalesce_ns;
	struct virtio_worker svc; /* the control queue and vhost's errors (not the packets) */
	struct virtq_elem ce;
	struct iovec ciov[NET_QUEUE_SIZE];
	struct net_pair pair[VIRTIO_NET_MAX_PAIRS];
};

#endif
