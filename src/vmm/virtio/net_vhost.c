/*
 * virtio-net's kernel data path: vhost-net (linux/vhost.h). Each queue pair has its own
 * /dev/vhost-net, so its own kernel worker, attached to its own tap queue. The worker reads the
 * rings where the guest keeps them (their VMM addresses, as validated when the queues were
 * enabled) and the buffers through a memory table that holds guest RAM and nothing else; the
 * guest's kicks reach it through the queues' KVM ioeventfds, and it interrupts the guest
 * through the vectors' irqfds (the transport swaps in a pending eventfd while a vector is
 * masked). So no VMM thread is in the data path. When the kernel meets a malformed ring or
 * descriptor it stops that ring and signals err_fd: the device then needs a reset, as when
 * ligero's own threads meet one.
 *
 * Stopping a pair detaches its backend and reads back where each ring stopped
 * (VHOST_GET_VRING_BASE); starting it again resumes there. A device reset starts over at 0.
 */
#include "vmm/virtio/net.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define PAGE 4096ull
/* vhost's own limit (its max_mem_regions parameter) is 64; ligero's RAM has at most 4. */
#define MEM_MAX VIRTIO_MEM_MAX_REGIONS

uint64_t net_vhost_ring_features(void)
{
	return (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
	       (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_NET_F_MRG_RXBUF);
}

int net_vhost_open(struct net_vhost *v, const char *path, unsigned pairs)
{
	memset(v, 0, sizeof(*v));
	for (unsigned i = 0; i < VIRTIO_NET_MAX_PAIRS; i++)
		v->fd[i] = -1;
	if ((v->err_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return err_sys(errno, "eventfd");
	for (v->nfds = 0; v->nfds < pairs; v->nfds++) {
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return err_sys(errno, "%s", path);
		v->fd[v->nfds] = fd;
		/* the kernel worker starts here and works in this process's memory */
		if (ioctl(fd, VHOST_SET_OWNER) < 0)
			return err_sys(errno, "%s: VHOST_SET_OWNER", path);
		if (ioctl(fd, VHOST_GET_FEATURES, &v->features) < 0)
			return err_sys(errno, "%s: VHOST_GET_FEATURES", path);
	}
	if (!(v->features & (1ull << VIRTIO_F_VERSION_1)))
		return err_set(ENOTSUP, "%s: no virtio 1.0 rings (VIRTIO_F_VERSION_1)", path);
	return 0;
}

void net_vhost_close(struct net_vhost *v)
{
	for (unsigned i = 0; i < VIRTIO_NET_MAX_PAIRS; i++) {
		if (v->fd[i] >= 0)
			close(v->fd[i]);
		v->fd[i] = -1;
	}
	if (v->err_fd >= 0)
		close(v->err_fd);
	v->err_fd = -1;
	v->nfds = 0;
}

/* Region r of m, checked on its own and against the ones before it. */
static int region_check(const struct virtio_mem *m, unsigned r)
{
	const struct virtio_mem_region *a = &m->r[r];

	if (!a->size || !a->host)
		return err_set(EINVAL, "vhost: RAM region %u is empty", r);
	if ((a->gpa | a->size | (uintptr_t)a->host) & (PAGE - 1))
		return err_set(EINVAL, "vhost: RAM region %u is not page aligned", r);
	if (a->gpa + a->size < a->gpa || (uintptr_t)a->host + a->size < (uintptr_t)a->host)
		return err_set(EINVAL, "vhost: RAM region %u wraps around", r);
	for (unsigned i = 0; i < r; i++) {
		const struct virtio_mem_region *b = &m->r[i];
		if (a->gpa < b->gpa + b->size && b->gpa < a->gpa + a->size)
			return err_set(EINVAL, "vhost: RAM regions %u and %u overlap", i, r);
	}
	return 0;
}

int net_vhost_mem_table(const struct virtio_mem *m, struct vhost_memory *out, unsigned max)
{
	int ret;

	if (!m->nregions || m->nregions > max || m->nregions > VIRTIO_MEM_MAX_REGIONS)
		return err_set(EINVAL, "vhost: %u RAM regions (1 to %u)", m->nregions,
			       max < VIRTIO_MEM_MAX_REGIONS ? max : VIRTIO_MEM_MAX_REGIONS);
	out->nregions = m->nregions;
	out->padding = 0;
	for (unsigned i = 0; i < m->nregions; i++) {
		if ((ret = region_check(m, i)) < 0)
			return ret;
		out->regions[i] = (struct vhost_memory_region){
		    .guest_phys_addr = m->r[i].gpa,
		    .memory_size = m->r[i].size,
		    .userspace_addr = (uintptr_t)m->r[i].host,
		};
	}
	return 0;
}

static int set_mem(struct net *n, int fd)
{
	struct vhost_memory *t = calloc(1, sizeof(*t) + MEM_MAX * sizeof(t->regions[0]));
	int ret;

	if (!t)
		return err_set(ENOMEM, "out of memory");
	ret = net_vhost_mem_table(n->dev.mem, t, MEM_MAX);
	if (ret == 0 && ioctl(fd, VHOST_SET_MEM_TABLE, t) < 0)
		ret = err_sys(errno, "vhost: VHOST_SET_MEM_TABLE");
	free(t);
	return ret;
}

/* Ring i (0 RX, 1 TX) of pair p: size, where it resumes, where it lies, its kick. */
static int set_ring(struct net *n, unsigned p, unsigned i)
{
	struct virtio_queue *q = &n->dev.q[2 * p + i];
	int fd = n->vhost.fd[p];
	struct vhost_vring_state num = {.index = i, .num = q->vq.size};
	struct vhost_vring_state base = {.index = i, .num = n->vhost.base[p][i]};
	struct vhost_vring_file kick = {.index = i, .fd = q->kick_fd};
	struct vhost_vring_file err = {.index = i, .fd = n->vhost.err_fd};
	/* the three areas were checked to lie in guest RAM when the queue was enabled */
	struct vhost_vring_addr addr = {
	    .index = i,
	    .desc_user_addr = (uintptr_t)q->vq.desc,
	    .avail_user_addr = (uintptr_t)q->vq.avail,
	    .used_user_addr = (uintptr_t)q->vq.used,
	};

	if (!q->enabled || !q->vq.desc || !q->vq.avail || !q->vq.used)
		return err_set(EINVAL, "vhost: queue %u is not set up", 2 * p + i);
	if (ioctl(fd, VHOST_SET_VRING_NUM, &num) < 0)
		return err_sys(errno, "vhost: VHOST_SET_VRING_NUM %u", num.num);
	if (ioctl(fd, VHOST_SET_VRING_BASE, &base) < 0)
		return err_sys(errno, "vhost: VHOST_SET_VRING_BASE %u", base.num);
	if (ioctl(fd, VHOST_SET_VRING_ADDR, &addr) < 0)
		return err_sys(errno, "vhost: VHOST_SET_VRING_ADDR (queue %u)", 2 * p + i);
	if (ioctl(fd, VHOST_SET_VRING_KICK, &kick) < 0)
		return err_sys(errno, "vhost: VHOST_SET_VRING_KICK");
	if (ioctl(fd, VHOST_SET_VRING_ERR, &err) < 0)
		return err_sys(errno, "vhost: VHOST_SET_VRING_ERR");
	return 0;
}

int net_vhost_start(struct net *n, unsigned p)
{
	uint64_t features = n->dev.features & net_vhost_ring_features() & n->vhost.features;
	int fd = n->vhost.fd[p], ret;

	if (p >= n->vhost.nfds || n->vhost.running[p])
		return p >= n->vhost.nfds ? err_set(EINVAL, "vhost: no queue pair %u", p) : 0;
	/* features first: they set the header size the rings carry */
	if (ioctl(fd, VHOST_SET_FEATURES, &features) < 0)
		return err_sys(errno, "vhost: VHOST_SET_FEATURES 0x%llx",
			       (unsigned long long)features);
	if ((ret = set_mem(n, fd)) < 0)
		return ret;
	n->vhost.running[p] = true; /* from here a failure is undone by net_vhost_stop */
	for (unsigned i = 0; i < 2 && ret == 0; i++)
		ret = set_ring(n, p, i);
	for (unsigned i = 0; i < 2 && ret == 0; i++)
		virtio_dev_call_attach(&n->dev, 2 * p + i); /* VHOST_SET_VRING_CALL, and on */
	for (unsigned i = 0; i < 2 && ret == 0; i++) {
		struct vhost_vring_file be = {.index = i, .fd = n->tap.fd[p]};
		if (ioctl(fd, VHOST_NET_SET_BACKEND, &be) < 0)
			ret = err_sys(errno, "vhost: VHOST_NET_SET_BACKEND (%s queue %u)",
				      n->tap.ifname, p);
	}
	if (ret < 0)
		net_vhost_stop(n, p);
	return ret;
}

void net_vhost_stop(struct net *n, unsigned p)
{
	int fd = n->vhost.fd[p];

	if (p >= n->vhost.nfds || !n->vhost.running[p])
		return;
	/* the backend goes first: the kernel finishes what it was doing with the rings */
	for (unsigned i = 0; i < 2; i++) {
		struct vhost_vring_file be = {.index = i, .fd = -1};
		ioctl(fd, VHOST_NET_SET_BACKEND, &be);
	}
	for (unsigned i = 0; i < 2; i++) {
		struct vhost_vring_state base = {.index = i};
		struct vhost_vring_file none = {.index = i, .fd = -1};
		if (ioctl(fd, VHOST_GET_VRING_BASE, &base) == 0)
			n->vhost.base[p][i] = (uint16_t)base.num;
		virtio_dev_call_detach(&n->dev, 2 * p + i);
		ioctl(fd, VHOST_SET_VRING_CALL, &none);
		ioctl(fd, VHOST_SET_VRING_KICK, &none);
	}
	n->vhost.running[p] = false;
}

void net_vhost_forget(struct net_vhost *v)
{
	memset(v->base, 0, sizeof(v->base));
}

void net_vhost_set_call(struct net *n, unsigned qi, int fd)
{
	struct vhost_vring_file call = {.index = qi % 2, .fd = fd};

	if (qi / 2 < n->vhost.nfds)
		ioctl(n->vhost.fd[qi / 2], VHOST_SET_VRING_CALL, &call);
}
