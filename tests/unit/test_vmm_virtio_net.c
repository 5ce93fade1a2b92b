/*
 * virtio-net without KVM and without a host network: the device driven like a guest driver
 * would (registers through BAR 0, rings in a fake guest memory), on a fake tap and a fake
 * /dev/vhost-net. The link wraps open, close and ioctl: /dev/net/tun opens one end of a
 * SOCK_SEQPACKET pair (the test holds the other, so packets keep their boundaries, as a tap's
 * do), and /dev/vhost-net an eventfd whose ioctls follow the kernel's vhost-net rules (what
 * drivers/vhost/net.c and vhost.c accept and refuse: owner first, no ring changes under a
 * running backend, rings in the process's memory, a tap socket as backend).
 *
 * Covered: the features offered and what TUNSETOFFLOAD follows; the vhost set-up sequence, the
 * interrupt eventfd following MSI-X masking, stop and restart with the rings' indexes saved
 * (queue pairs switched on the control queue) and reset to 0 (device reset); falling back to
 * the userspace path when /dev/vhost-net is missing or refuses us; the memory table's checks;
 * the userspace path's receive straight into the guest's buffers, mergeable or not, with a
 * packet larger than the buffers posted; transmit; multiqueue on both paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"
#include "vmm/pci_bus.h"
#include "vmm/virtio/devices.h"
#include "vmm/virtio/net.h"
#include "pci_mmio.h"

#define RAM_SIZE 0x200000ull
#define ECAM	 0xe0000000ull
#define MMIO	 0xc0000000ull
#define QSZ	 16
#define QBASE(q) (0x10000ull + 0x4000ull * (q)) /* desc; avail +0x1000, used +0x2000 */
#define BUFS	 0x100000ull
#define F(b)	 (1ull << (b))

/* ---- the fakes ---- */

enum kind { NONE, TAP, VHOST };
struct fake_vq {
	unsigned num, base;
	uint64_t desc, avail, used;
	int kick, call, backend, err;
	unsigned calls_set;
};
struct fake_fd {
	enum kind kind;
	int peer; /* tap: the test's end */
	bool multi, detached;
	bool owner;
	uint64_t features;
	bool features_set;
	unsigned nmem;
	struct vhost_memory_region mem[8];
	struct fake_vq vq[2];
};
static struct fake_fd fk[1024];
static struct {
	int vhost_open_errno, vhost_owner_errno;
	uint64_t vhost_features;
	unsigned tap_accepts; /* TUN_F_* */
	unsigned tap_offload; /* the last TUNSETOFFLOAD */
	int hdr_size;
	unsigned mtu;
	int tap[VIRTIO_NET_MAX_PAIRS], vhost[VIRTIO_NET_MAX_PAIRS]; /* in open order */
	unsigned ntap, nvhost;
	const uint8_t *ram; /* the process memory rings may lie in */
} fake;

int __real_open64(const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...);
int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __real_close(int fd);
int __wrap_close(int fd);
int __real_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...);

static int fake_open(const char *path)
{
	int sv[2], fd;

	if (!strcmp(path, "/dev/net/tun")) {
		assert_int_equal(
		    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
		fk[sv[0]] = (struct fake_fd){.kind = TAP, .peer = sv[1]};
		fake.tap[fake.ntap++] = sv[1];
		return sv[0];
	}
	if (fake.vhost_open_errno) {
		errno = fake.vhost_open_errno;
		return -1;
	}
	fd = eventfd(0, EFD_CLOEXEC);
	fk[fd] = (struct fake_fd){.kind = VHOST};
	for (int i = 0; i < 2; i++)
		fk[fd].vq[i] = (struct fake_vq){.kick = -1, .call = -1, .backend = -1, .err = -1};
	fake.vhost[fake.nvhost++] = fd;
	return fd;
}

int __wrap_open64(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	if (!strcmp(path, "/dev/net/tun") || !strcmp(path, "/dev/vhost-net"))
		return fake_open(path);
	va_start(ap, flags);
	mode = va_arg(ap, int);
	va_end(ap);
	return __real_open64(path, flags, mode);
}

int __wrap_open(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	if (!strcmp(path, "/dev/net/tun") || !strcmp(path, "/dev/vhost-net"))
		return fake_open(path);
	va_start(ap, flags);
	mode = va_arg(ap, int);
	va_end(ap);
	return __real_open(path, flags, mode);
}

int __wrap_close(int fd)
{
	if (fd >= 0 && fd < 1024)
		fk[fd].kind = NONE;
	return __real_close(fd);
}

static int refuse(int e)
{
	errno = e;
	return -1;
}

/* TUNSETOFFLOAD as drivers/net/tun.c's set_offload: leftover bits are refused. */
static int tun_offload(unsigned long arg)
{
	if (arg & ~(unsigned long)fake.tap_accepts)
		return refuse(EINVAL);
	if (arg & TUN_F_CSUM) {
		arg &= ~(unsigned long)TUN_F_CSUM;
		if (arg & (TUN_F_TSO4 | TUN_F_TSO6))
			arg &= ~(unsigned long)(TUN_F_TSO_ECN | TUN_F_TSO4 | TUN_F_TSO6);
		arg &= ~(unsigned long)TUN_F_UFO;
	}
	return arg ? refuse(EINVAL) : 0;
}

static int tap_ioctl(struct fake_fd *t, unsigned long req, unsigned long a)
{
	struct ifreq *ifr = (struct ifreq *)a;

	switch (req) {
	case TUNSETIFF:
		if (!(ifr->ifr_flags & IFF_TAP) || !(ifr->ifr_flags & IFF_VNET_HDR))
			return refuse(EINVAL);
		t->multi = ifr->ifr_flags & IFF_MULTI_QUEUE;
		if (!ifr->ifr_name[0])
			snprintf(ifr->ifr_name, IFNAMSIZ, "ltap0");
		return 0;
	case TUNSETVNETHDRSZ:
		fake.hdr_size = *(int *)a;
		return 0;
	case TUNSETOFFLOAD:
		if (tun_offload(a) < 0)
			return -1;
		fake.tap_offload = (unsigned)a;
		return 0;
	case TUNSETQUEUE:
		if (!t->multi || (ifr->ifr_flags & IFF_ATTACH_QUEUE) == !t->detached)
			return refuse(EINVAL);
		t->detached = ifr->ifr_flags & IFF_DETACH_QUEUE;
		return 0;
	}
	return refuse(ENOTTY);
}

static bool in_ram(uint64_t uaddr, uint64_t len)
{
	return uaddr >= (uintptr_t)fake.ram && uaddr + len <= (uintptr_t)fake.ram + RAM_SIZE;
}

static int vring_ioctl(struct fake_fd *v, unsigned long req, unsigned long a)
{
	struct vhost_vring_state *st = (void *)a;
	struct vhost_vring_addr *ad = (void *)a;
	struct vhost_vring_file *fi = (void *)a;
	struct fake_vq *q;

	if (st->index >= 2)
		return refuse(ENOBUFS);
	q = &v->vq[st->index];
	switch (req) {
	case VHOST_SET_VRING_NUM:
		if (q->backend >= 0)
			return refuse(EBUSY); /* "Resizing ring with an active backend?" */
		if (!st->num || st->num > 32768 || (st->num & (st->num - 1)))
			return refuse(EINVAL);
		q->num = st->num;
		return 0;
	case VHOST_SET_VRING_BASE:
		if (q->backend >= 0)
			return refuse(EBUSY);
		if (st->num > 0xffff)
			return refuse(EINVAL);
		q->base = st->num;
		return 0;
	case VHOST_GET_VRING_BASE:
		st->num = q->base;
		return 0;
	case VHOST_SET_VRING_ADDR:
		if (ad->flags || (ad->desc_user_addr & 15) || (ad->avail_user_addr & 1) ||
		    (ad->used_user_addr & 3))
			return refuse(EINVAL);
		if (q->backend >= 0)
			return refuse(EBUSY);
		q->desc = ad->desc_user_addr;
		q->avail = ad->avail_user_addr;
		q->used = ad->used_user_addr;
		return 0;
	case VHOST_SET_VRING_KICK:
		q->kick = fi->fd;
		return 0;
	case VHOST_SET_VRING_CALL:
		q->call = fi->fd;
		q->calls_set++;
		return 0;
	case VHOST_SET_VRING_ERR:
		q->err = fi->fd;
		return 0;
	case VHOST_NET_SET_BACKEND:
		if (fi->fd == -1) {
			q->backend = -1;
			return 0;
		}
		/* vhost_vq_access_ok: the rings must be readable where we said they are */
		if (!q->num || !in_ram(q->desc, 16 * q->num) || !in_ram(q->avail, 6 + 2 * q->num) ||
		    !in_ram(q->used, 6 + 8 * q->num))
			return refuse(EFAULT);
		if (fi->fd < 0 || fi->fd >= 1024 || fk[fi->fd].kind != TAP)
			return refuse(ENOTSOCK);
		q->backend = fi->fd;
		return 0;
	}
	return refuse(ENOTTY);
}

static int vhost_ioctl(int fd, struct fake_fd *v, unsigned long req, unsigned long a)
{
	if (req == VHOST_SET_OWNER) {
		if (fake.vhost_owner_errno)
			return refuse(fake.vhost_owner_errno);
		if (v->owner)
			return refuse(EBUSY);
		v->owner = true;
		return 0;
	}
	if (!v->owner)
		return refuse(EPERM);
	switch (req) {
	case VHOST_GET_FEATURES:
		*(uint64_t *)a = fake.vhost_features;
		return 0;
	case VHOST_SET_FEATURES:
		if (*(uint64_t *)a & ~fake.vhost_features)
			return refuse(EOPNOTSUPP);
		v->features = *(uint64_t *)a;
		v->features_set = true;
		return 0;
	case VHOST_SET_MEM_TABLE: {
		struct vhost_memory *m = (void *)a;
		if (m->padding)
			return refuse(EOPNOTSUPP);
		if (m->nregions > 8)
			return refuse(E2BIG);
		v->nmem = m->nregions;
		memcpy(v->mem, m->regions, sizeof(m->regions[0]) * m->nregions);
		return 0;
	}
	}
	(void)fd;
	return vring_ioctl(v, req, a);
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	unsigned long a;

	va_start(ap, req);
	a = va_arg(ap, unsigned long);
	va_end(ap);
	switch (req) { /* the tap's interface, through an AF_INET socket */
	case SIOCGIFFLAGS:
		((struct ifreq *)a)->ifr_flags = 0;
		return 0;
	case SIOCSIFFLAGS:
	case SIOCBRADDIF:
		return 0;
	case SIOCGIFINDEX:
		((struct ifreq *)a)->ifr_ifindex = 42;
		return 0;
	case SIOCSIFMTU:
		fake.mtu = (unsigned)((struct ifreq *)a)->ifr_mtu;
		return 0;
	}
	if (fd >= 0 && fd < 1024 && fk[fd].kind == TAP)
		return tap_ioctl(&fk[fd], req, a);
	if (fd >= 0 && fd < 1024 && fk[fd].kind == VHOST)
		return vhost_ioctl(fd, &fk[fd], req, a);
	return __real_ioctl(fd, req, a);
}

/* ---- a guest driver ---- */

struct fix {
	uint8_t *ram;
	struct virtio_mem mem;
	struct kvm_irq irq;
	struct pci_bus bus;
	struct virtio_dev *d;
	struct net *n;
	uint64_t bar;
	unsigned slot;
	uint16_t avail[VIRTIO_MAX_QUEUES];
	uint16_t used_seen[VIRTIO_MAX_QUEUES];
};

static const uint64_t NET_FEATURES =
    F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_MAC) |
    F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN) |
    F(VIRTIO_NET_F_GUEST_UFO) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) |
    F(VIRTIO_NET_F_HOST_ECN) | F(VIRTIO_NET_F_HOST_UFO) | F(VIRTIO_NET_F_MRG_RXBUF) |
    F(VIRTIO_NET_F_STATUS) | F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) |
    F(VIRTIO_RING_F_INDIRECT_DESC);
/* what Linux's vhost-net offers (VHOST_NET_FEATURES) */
static const uint64_t VHOST_KERNEL =
    F(VIRTIO_F_NOTIFY_ON_EMPTY) | F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_RING_F_EVENT_IDX) |
    F(VHOST_F_LOG_ALL) | F(VIRTIO_F_ANY_LAYOUT) | F(VIRTIO_F_VERSION_1) |
    F(VHOST_NET_F_VIRTIO_NET_HDR) | F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_F_ACCESS_PLATFORM);

PCI_MMIO_ACCESSORS(struct fix, ECAM)

static void reset_fakes(void)
{
	memset(&fake, 0, sizeof(fake));
	fake.vhost_features = VHOST_KERNEL;
	fake.tap_accepts = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO;
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	f->ram = aligned_alloc(4096, RAM_SIZE);
	memset(f->ram, 0, RAM_SIZE);
	f->mem.nregions = 1;
	f->mem.r[0] = (struct virtio_mem_region){0, RAM_SIZE, f->ram};
	kvm_irq_init(&f->irq, -1);
	pci_bus_init(&f->bus, ECAM, MMIO, 0x10000000);
	reset_fakes();
	fake.ram = f->ram;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (f->d)
		virtio_net_destroy(f->d);
	for (unsigned i = 0; i < fake.ntap; i++)
		close(fake.tap[i]);
	pci_bus_destroy(&f->bus);
	free(f->ram);
	free(f);
	return 0;
}

/* A NIC with these options; ret is virtio_net_create's. */
static int make(struct fix *f, enum virtio_net_vhost vhost, unsigned queues, unsigned mtu)
{
	struct virtio_net_opts o = {.bridge = "br0",
				    .vhost = vhost,
				    .queues = queues,
				    .mtu = mtu,
				    .mac = {0x52, 0x54, 0, 1, 2, 3}};
	int slot, ret = virtio_net_create(&f->d, &o, 4, &f->mem, &f->irq);

	if (ret < 0) {
		f->d = NULL;
		return ret;
	}
	f->n = (struct net *)f->d;
	slot = pci_bus_add(&f->bus, &f->d->pci);
	assert_true(slot > 0);
	f->slot = (unsigned)slot;
	f->bar = cfg_rd(f, 0x10, 4) & ~0xfu;
	return 0;
}

/* The NIC gone (its slot with it: a new bus). */
static void unmake(struct fix *f)
{
	virtio_net_destroy(f->d);
	f->d = NULL;
	pci_bus_destroy(&f->bus);
	pci_bus_init(&f->bus, ECAM, MMIO, 0x10000000);
}

static uint64_t offered(struct fix *f)
{
	wr(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t lo = rd(f, VIRTIO_PCI_COMMON_DF, 4);
	wr(f, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	return lo | rd(f, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static uint8_t negotiate(struct fix *f, uint64_t features)
{
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
	wr(f, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	wr(f, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	memset(f->avail, 0, sizeof(f->avail));
	memset(f->used_seen, 0, sizeof(f->used_seen));
	memset(f->ram, 0, BUFS);
	return (uint8_t)rd(f, VIRTIO_PCI_COMMON_STATUS, 1);
}

/* Queue qi at QBASE(qi), size QSZ, interrupts on vector `vec` (unmasked, MSI-X on). */
static void queue(struct fix *f, unsigned qi, unsigned vec)
{
	wr(f, 0x4000 + 16 * vec + 0, 4, 0xfee00000);
	wr(f, 0x4000 + 16 * vec + 8, 4, 0x4040 + vec);
	wr(f, 0x4000 + 16 * vec + 12, 4, 0);
	cfg_wr(f, 0x42, 2, 0x8000 | (uint16_t)cfg_rd(f, 0x42, 2));
	wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, qi);
	wr(f, VIRTIO_PCI_COMMON_Q_SIZE, 2, QSZ);
	wr(f, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)QBASE(qi));
	wr(f, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)QBASE(qi) + 0x1000);
	wr(f, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)QBASE(qi) + 0x2000);
	wr(f, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, vec);
	wr(f, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static void driver_ok(struct fix *f)
{
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
	       VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Negotiate, set up queues [0, nq) (vector = queue index), DRIVER_OK. */
static void bring_up(struct fix *f, uint64_t features, unsigned nq)
{
	assert_true(negotiate(f, features) & VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < nq; q++)
		queue(f, q, q);
	driver_ok(f);
	assert_false(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void desc(struct fix *f, unsigned qi, unsigned i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	uint8_t *p = f->ram + QBASE(qi) + 16 * i;
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

/* Make head the next avail entry of queue qi and kick it. */
static void post(struct fix *f, unsigned qi, uint16_t head)
{
	uint8_t *avail = f->ram + QBASE(qi) + 0x1000;
	memcpy(avail + 4 + 2 * (f->avail[qi] % QSZ), &head, 2);
	f->avail[qi]++;
	__atomic_store_n((uint16_t *)(avail + 2), f->avail[qi], __ATOMIC_RELEASE);
	wr(f, VIRTIO_NOTIFY_OFF + VIRTIO_NOTIFY_MULT * qi, 2, qi);
}

static uint16_t used_idx(struct fix *f, unsigned qi)
{
	return __atomic_load_n((uint16_t *)(f->ram + QBASE(qi) + 0x2002), __ATOMIC_ACQUIRE);
}

/* Wait (a hang guard, not a timing) until queue qi has returned `n` more chains; return the
 * first of them (id and len). */
static void wait_used(struct fix *f, unsigned qi, unsigned n, uint32_t *id, uint32_t *len)
{
	uint8_t *e = f->ram + QBASE(qi) + 0x2004 + 8 * (f->used_seen[qi] % QSZ);
	for (int i = 0; i < 10000 && (uint16_t)(used_idx(f, qi) - f->used_seen[qi]) < n; i++)
		usleep(1000);
	assert_int_equal((uint16_t)(used_idx(f, qi) - f->used_seen[qi]), n);
	if (id)
		memcpy(id, e, 4);
	if (len)
		memcpy(len, e + 4, 4);
	f->used_seen[qi] = (uint16_t)(f->used_seen[qi] + n);
}

static uint32_t used_len(struct fix *f, unsigned qi, uint16_t at)
{
	uint32_t len;
	memcpy(&len, f->ram + QBASE(qi) + 0x2004 + 8 * (at % QSZ) + 4, 4);
	return len;
}

static bool readable(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, 0) == 1;
}

static void drain(int fd)
{
	uint64_t v;
	while (read(fd, &v, 8) == 8)
		;
}

/* A packet: a 12-byte vnet header (gso_type `gso`), then len - 12 bytes of `seed` pattern. */
static size_t packet(uint8_t *buf, size_t len, uint8_t gso, unsigned seed)
{
	memset(buf, 0, NET_HDR_LEN);
	buf[1] = gso;
	for (size_t i = NET_HDR_LEN; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + seed);
	return len;
}

/* ---- features and offloads ---- */

static void features_offered(void **state)
{
	struct fix *f = *state;
	struct virtio_net_config cfg;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	assert_int_equal(offered(f), NET_FEATURES);
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	assert_int_equal(fake.hdr_size, 12);
	assert_int_equal(fake.tap_offload, 0); /* probed, then off until a driver says */
	for (unsigned i = 0; i < sizeof(cfg); i++)
		((uint8_t *)&cfg)[i] = (uint8_t)rd(f, VIRTIO_DEVCFG_OFF + i, 1);
	assert_memory_equal(cfg.mac, ((uint8_t[]){0x52, 0x54, 0, 1, 2, 3}), 6);
	assert_int_equal(cfg.status, VIRTIO_NET_S_LINK_UP);
	assert_int_equal(fake.mtu, 0);
}

static void features_follow_tap_and_options(void **state)
{
	struct fix *f = *state;
	struct virtio_net_config cfg;

	/* a tap without UFO: neither GUEST_UFO; two pairs and an MTU */
	fake.tap_accepts &= ~(unsigned)TUN_F_UFO;
	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 2, 9000), 0);
	assert_int_equal(offered(f), (NET_FEATURES & ~F(VIRTIO_NET_F_GUEST_UFO)) |
					 F(VIRTIO_NET_F_MTU) | F(VIRTIO_NET_F_MQ) |
					 F(VIRTIO_NET_F_CTRL_VQ));
	assert_int_equal(rd(f, VIRTIO_PCI_COMMON_NUMQ, 2), 5);
	for (unsigned i = 0; i < sizeof(cfg); i++)
		((uint8_t *)&cfg)[i] = (uint8_t)rd(f, VIRTIO_DEVCFG_OFF + i, 1);
	assert_int_equal(cfg.max_virtqueue_pairs, 2);
	assert_int_equal(cfg.mtu, 9000);
	assert_int_equal(fake.mtu, 9000);
	assert_int_equal(fake.ntap, 2);
	/* one vector per queue and one for configuration */
	assert_int_equal((cfg_rd(f, 0x42, 2) & 0x7ff) + 1, 6);
	unmake(f);

	/* a kernel whose vhost-net lacks EVENT_IDX: not offered */
	fake.vhost_features &= ~F(VIRTIO_RING_F_EVENT_IDX);
	assert_int_equal(make(f, VIRTIO_NET_VHOST_AUTO, 1, 0), 0);
	assert_int_equal(offered(f) & F(VIRTIO_RING_F_EVENT_IDX), 0);
	assert_true(offered(f) & F(VIRTIO_RING_F_INDIRECT_DESC));
}

static void offloads_follow_the_guest(void **state)
{
	struct fix *f = *state;
	static const struct {
		uint64_t features;
		unsigned tun;
	} cases[] = {
	    {NET_FEATURES, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO},
	    {F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4),
	     TUN_F_CSUM | TUN_F_TSO4},
	    /* ECN alone is no segmentation offload: TUNSETOFFLOAD would refuse it */
	    {F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_ECN),
	     TUN_F_CSUM},
	    /* no checksum offload, no segmentation offload */
	    {F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6), 0},
	};

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake.tap_offload = 0xdead;
		bring_up(f, cases[i].features, 2);
		assert_int_equal(fake.tap_offload, cases[i].tun);
		wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0); /* reset: no driver, no offloads */
		assert_int_equal(fake.tap_offload, 0);
	}
}

/* ---- the kernel's data path ---- */

static void vhost_sequence(void **state)
{
	struct fix *f = *state;
	struct fake_fd *v;
	char line[256];

	assert_int_equal(make(f, VIRTIO_NET_VHOST_AUTO, 1, 0), 0);
	virtio_net_describe(f->d, line, sizeof(line));
	assert_non_null(strstr(line, "vhost-net"));
	assert_non_null(strstr(line, "ltap0 in bridge br0"));
	assert_int_equal(fake.nvhost, 1);
	v = &fk[fake.vhost[0]];
	assert_true(v->owner);
	assert_false(v->features_set);
	bring_up(f, NET_FEATURES, 2);
	/* the ring features vhost acts on, nothing else (the offloads are the tap's) */
	assert_true(v->features_set);
	assert_int_equal(v->features, F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) |
					  F(VIRTIO_RING_F_INDIRECT_DESC) |
					  F(VIRTIO_NET_F_MRG_RXBUF));
	/* guest RAM and nothing else */
	assert_int_equal(v->nmem, 1);
	assert_int_equal(v->mem[0].guest_phys_addr, 0);
	assert_int_equal(v->mem[0].memory_size, RAM_SIZE);
	assert_int_equal(v->mem[0].userspace_addr, (uintptr_t)f->ram);
	for (unsigned i = 0; i < 2; i++) {
		struct fake_vq *q = &v->vq[i];
		assert_int_equal(q->num, QSZ);
		assert_int_equal(q->base, 0);
		assert_int_equal(q->desc, (uintptr_t)f->ram + QBASE(i));
		assert_int_equal(q->avail, (uintptr_t)f->ram + QBASE(i) + 0x1000);
		assert_int_equal(q->used, (uintptr_t)f->ram + QBASE(i) + 0x2000);
		/* kicks straight from the ioeventfd, interrupts straight into the irqfd */
		assert_int_equal(q->kick, f->d->q[i].kick_fd);
		assert_int_equal(q->call, f->d->msix_fd[i]);
		assert_int_equal(q->backend, f->n->tap.fd[0]);
	}
	/* no VMM thread reads the kicks: the kernel's worker has them */
	assert_false(f->n->pair[0].running);
	wr(f, VIRTIO_NOTIFY_OFF, 2, 0);
	assert_true(readable(f->d->q[0].kick_fd));
}

/* A masked vector: vhost signals a pending eventfd instead of the irqfd; the PBA shows it and
 * the unmask delivers it, through the irqfd, which vhost has again. */
static void vhost_follows_masking(void **state)
{
	struct fix *f = *state;
	struct fake_vq *q;
	unsigned before;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_AUTO, 1, 0), 0);
	bring_up(f, NET_FEATURES, 2);
	q = &fk[fake.vhost[0]].vq[1];
	drain(f->d->msix_fd[1]);
	before = q->calls_set;
	wr(f, 0x4000 + 16 * 1 + 12, 4, 1); /* mask vector 1 */
	assert_int_equal(q->call, f->d->q[1].masked_fd);
	assert_int_equal(q->calls_set, before + 1);
	eventfd_write(q->call, 1); /* what the kernel does on a completion */
	assert_int_equal(rd(f, VIRTIO_PBA_OFF, 4) & 2, 2);
	assert_false(readable(f->d->msix_fd[1]));
	wr(f, 0x4000 + 16 * 1 + 12, 4, 0); /* unmask */
	assert_int_equal(q->call, f->d->msix_fd[1]);
	assert_true(readable(f->d->msix_fd[1]));
	assert_int_equal(rd(f, VIRTIO_PBA_OFF, 4) & 2, 0);
	/* the same without the guest reading the PBA: the unmask still delivers it */
	drain(f->d->msix_fd[1]);
	wr(f, 0x4000 + 16 * 1 + 12, 4, 1);
	eventfd_write(q->call, 1);
	wr(f, 0x4000 + 16 * 1 + 12, 4, 0);
	assert_true(readable(f->d->msix_fd[1]));
	/* the function mask too, and MSI-X off */
	cfg_wr(f, 0x42, 2, 0xc000 | (cfg_rd(f, 0x42, 2) & 0x7ff));
	assert_int_equal(q->call, f->d->q[1].masked_fd);
	cfg_wr(f, 0x42, 2, 0x8000 | (cfg_rd(f, 0x42, 2) & 0x7ff));
	assert_int_equal(q->call, f->d->msix_fd[1]);
	/* the driver moves the queue to another vector: vhost follows */
	wr(f, 0x4000 + 16 * 2 + 0, 4, 0xfee00000);
	wr(f, 0x4000 + 16 * 2 + 12, 4, 0);
	wr(f, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
	assert_int_equal(q->call, f->d->msix_fd[2]);
	wr(f, VIRTIO_PCI_COMMON_Q_MSIX, 2, VIRTIO_NO_VECTOR);
	assert_int_equal(q->call, f->d->q[1].masked_fd);
}

/* Reset, reload with other features, VM exit: the backend stops, the rings are read back, and a
 * new driver starts from index 0 with its own features. */
static void vhost_reset_and_renegotiate(void **state)
{
	struct fix *f = *state;
	struct fake_fd *v;
	uint64_t fewer = NET_FEATURES & ~F(VIRTIO_NET_F_MRG_RXBUF) & ~F(VIRTIO_RING_F_EVENT_IDX);

	assert_int_equal(make(f, VIRTIO_NET_VHOST_AUTO, 1, 0), 0);
	v = &fk[fake.vhost[0]];
	bring_up(f, NET_FEATURES, 2);
	v->vq[0].base = 37; /* the kernel's worker took 37 RX buffers */
	v->vq[1].base = 5;
	wr(f, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(v->vq[i].backend, -1);
		assert_int_equal(v->vq[i].kick, -1);
		assert_int_equal(v->vq[i].call, -1);
	}
	assert_int_equal(f->n->vhost.base[0][0], 0); /* forgotten: the rings are new */
	bring_up(f, fewer, 2);
	assert_int_equal(v->features, F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_INDIRECT_DESC));
	assert_int_equal(v->vq[0].base, 0);
	assert_int_equal(v->vq[1].base, 0);
	assert_int_equal(v->vq[0].backend, f->n->tap.fd[0]);
	assert_int_equal(fake.tap_offload,
			 TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO);
	/* the kernel meets a malformed descriptor: the device needs a reset, a reset cures it */
	assert_true(v->vq[1].err >= 0);
	eventfd_write(v->vq[1].err, 1);
	for (int i = 0;
	     i < 10000 && !(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	bring_up(f, NET_FEATURES, 2);
	assert_int_equal(v->vq[1].backend, f->n->tap.fd[0]);
	/* VM exit: stopped before the memory goes */
	unmake(f);
}

static void ctrl_pairs(struct fix *f, unsigned ctrl_qi, uint16_t pairs, uint8_t want)
{
	static uint16_t head;
	uint8_t *cmd = f->ram + BUFS + 0x70000, ack = 0xff;
	uint32_t id;

	cmd[0] = VIRTIO_NET_CTRL_MQ;
	cmd[1] = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET;
	memcpy(cmd + 2, &pairs, 2);
	cmd[4] = 0xff;
	head = (uint16_t)((head + 3) % (QSZ - 3));
	desc(f, ctrl_qi, head, BUFS + 0x70000, 2, VRING_DESC_F_NEXT, (uint16_t)(head + 1));
	desc(f, ctrl_qi, head + 1u, BUFS + 0x70002, 2, VRING_DESC_F_NEXT, (uint16_t)(head + 2));
	desc(f, ctrl_qi, head + 2u, BUFS + 0x70004, 1, VRING_DESC_F_WRITE, 0);
	post(f, ctrl_qi, head);
	wait_used(f, ctrl_qi, 1, &id, NULL);
	assert_int_equal(id, head);
	ack = cmd[4];
	assert_int_equal(ack, want);
}

/* Two pairs, each with its kernel worker from DRIVER_OK; the tap steers packets to the first
 * only, until the guest's `ethtool -L combined 2`; `1` stops the steering again, but the pair's
 * worker stays (its transmit buffers in flight must complete). */
static void vhost_multiqueue(void **state)
{
	struct fix *f = *state;
	uint64_t mq = NET_FEATURES | F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_VQ);
	struct fake_fd *v0, *v1;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_AUTO, 2, 0), 0);
	assert_int_equal(fake.nvhost, 2); /* one kernel worker per pair */
	v0 = &fk[fake.vhost[0]];
	v1 = &fk[fake.vhost[1]];
	bring_up(f, mq, 5);
	assert_int_equal(v0->vq[0].backend, f->n->tap.fd[0]);
	assert_int_equal(v1->vq[0].backend, f->n->tap.fd[1]);
	assert_int_equal(v1->vq[1].backend, f->n->tap.fd[1]);
	assert_int_equal(v1->vq[0].kick, f->d->q[2].kick_fd);
	assert_int_equal(v1->vq[1].kick, f->d->q[3].kick_fd);
	assert_int_equal(v1->vq[0].call, f->d->msix_fd[2]);
	assert_int_equal(v1->vq[1].call, f->d->msix_fd[3]);
	assert_false(fk[f->n->tap.fd[0]].detached);
	assert_true(fk[f->n->tap.fd[1]].detached);
	ctrl_pairs(f, 4, 2, VIRTIO_NET_OK);
	assert_false(fk[f->n->tap.fd[1]].detached);
	ctrl_pairs(f, 4, 1, VIRTIO_NET_OK);
	assert_true(fk[f->n->tap.fd[1]].detached);
	assert_int_equal(v1->vq[1].backend, f->n->tap.fd[1]);
	ctrl_pairs(f, 4, 2, VIRTIO_NET_OK);
	assert_false(fk[f->n->tap.fd[1]].detached);
	/* more pairs than the device has, or none: refused, nothing changes */
	ctrl_pairs(f, 4, 3, VIRTIO_NET_ERR);
	ctrl_pairs(f, 4, 0, VIRTIO_NET_ERR);
	assert_false(fk[f->n->tap.fd[1]].detached);
	/* a driver without MQ: one pair, the control queue is queue 2 */
	bring_up(f, NET_FEATURES | F(VIRTIO_NET_F_CTRL_VQ), 3);
	assert_int_equal(v1->vq[0].backend, -1);
	assert_true(fk[f->n->tap.fd[1]].detached);
	assert_int_equal(v0->vq[0].backend, f->n->tap.fd[0]);
	ctrl_pairs(f, 2, 2, VIRTIO_NET_ERR);
}

/* Paused (the VM is): the kernel's workers let go of the rings, saying where each stopped; on
 * resume they go on from there, the same rings, the same driver. */
static void vhost_pause_resume(void **state)
{
	struct fix *f = *state;
	struct fake_fd *v;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_AUTO, 1, 0), 0);
	v = &fk[fake.vhost[0]];
	bring_up(f, NET_FEATURES, 2);
	v->vq[0].base = 37; /* the kernel's worker has taken 37 RX buffers, 5 TX ones */
	v->vq[1].base = 5;
	virtio_net_pause(f->d);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(v->vq[i].backend, -1);
		assert_int_equal(v->vq[i].kick, -1);
	}
	assert_int_equal(f->n->vhost.base[0][0], 37);
	assert_int_equal(f->n->vhost.base[0][1], 5);
	v->vq[0].base = v->vq[1].base = 0; /* whatever it holds meanwhile */
	assert_int_equal(virtio_net_resume(f->d), 0);
	assert_int_equal(v->vq[0].base, 37);
	assert_int_equal(v->vq[1].base, 5);
	assert_int_equal(v->vq[0].backend, f->n->tap.fd[0]);
	assert_int_equal(v->vq[1].call, f->d->msix_fd[1]);
	assert_int_equal(v->vq[1].kick, f->d->q[1].kick_fd);
	assert_false(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* a resume that cannot restart the kernel's worker leaves the device needing a reset */
	virtio_net_pause(f->d);
	close(fake.vhost[0]); /* the fake forgets it: every ioctl now fails */
	assert_true(virtio_net_resume(f->d) < 0);
	assert_true(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	f->n->vhost.fd[0] = -1;
}

static void vhost_unusable_falls_back(void **state)
{
	struct fix *f = *state;
	char line[256];

	fake.vhost_open_errno = ENOENT;
	assert_int_equal(make(f, VIRTIO_NET_VHOST_AUTO, 1, 0), 0);
	virtio_net_describe(f->d, line, sizeof(line));
	assert_non_null(strstr(line, "userspace"));
	assert_non_null(strstr(line, "/dev/vhost-net: No such file or directory"));
	bring_up(f, NET_FEATURES, 2);
	assert_true(f->n->pair[0].running);
	unmake(f);

	/* a file there that is no vhost device (ENOTTY) */
	fake.vhost_open_errno = 0;
	fake.vhost_owner_errno = ENOTTY;
	assert_int_equal(make(f, VIRTIO_NET_VHOST_AUTO, 1, 0), 0);
	virtio_net_describe(f->d, line, sizeof(line));
	assert_non_null(strstr(line, "VHOST_SET_OWNER"));
	unmake(f);

	/* vhost=on: no VM without it */
	fake.vhost_open_errno = EACCES;
	assert_int_equal(make(f, VIRTIO_NET_VHOST_ON, 1, 0), -EACCES);
	assert_non_null(strstr(err_msg(), "vhost=on"));
	assert_non_null(strstr(err_msg(), "Permission denied"));
	/* vhost=off: not even tried */
	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	virtio_net_describe(f->d, line, sizeof(line));
	assert_non_null(strstr(line, "(vhost=off)"));
}

static void vhost_mem_table_checks(void **state)
{
	struct vhost_memory *t = calloc(1, sizeof(*t) + 4 * sizeof(t->regions[0]));
	uint8_t *a = (uint8_t *)(uintptr_t)0x7f0000000000ull;
	struct virtio_mem m = {
	    .nregions = 2,
	    .r = {{0, 0x80000000, a}, {0x100000000ull, 0x40000000, a + (4ull << 30)}}};
	(void)state;

	assert_int_equal(net_vhost_mem_table(&m, t, 4), 0);
	assert_int_equal(t->nregions, 2);
	assert_int_equal(t->regions[1].guest_phys_addr, 0x100000000ull);
	assert_int_equal(t->regions[1].memory_size, 0x40000000);
	assert_int_equal(t->regions[1].userspace_addr, (uintptr_t)a + (4ull << 30));
	struct virtio_mem bad = m;
	bad.r[1].gpa = 0x7ffff000; /* overlaps the first */
	assert_int_equal(net_vhost_mem_table(&bad, t, 4), -EINVAL);
	assert_non_null(strstr(err_msg(), "overlap"));
	bad = m;
	bad.r[1].size = 0;
	assert_int_equal(net_vhost_mem_table(&bad, t, 4), -EINVAL);
	bad = m;
	bad.r[0].host = a + 8;
	assert_int_equal(net_vhost_mem_table(&bad, t, 4), -EINVAL);
	assert_non_null(strstr(err_msg(), "aligned"));
	bad = m;
	bad.r[1].gpa = 0xfffffffffffff000ull;
	assert_int_equal(net_vhost_mem_table(&bad, t, 4), -EINVAL);
	assert_non_null(strstr(err_msg(), "wraps"));
	bad = m;
	bad.nregions = 0;
	assert_int_equal(net_vhost_mem_table(&bad, t, 4), -EINVAL);
	assert_int_equal(net_vhost_mem_table(&m, t, 1), -EINVAL); /* more than vhost takes */
	free(t);
}

/* ---- ligero's own data path ---- */

/* n mergeable RX buffers of `size` bytes at BUFS + i * 0x1000, heads first..first+n-1. */
static void rx_buffers(struct fix *f, unsigned qi, unsigned first, unsigned n, uint32_t size)
{
	for (unsigned i = first; i < first + n; i++) {
		desc(f, qi, i, BUFS + 0x1000 * i, size, VRING_DESC_F_WRITE, 0);
		post(f, qi, (uint16_t)i);
	}
}

static void user_rx_straight_into_buffers(void **state)
{
	struct fix *f = *state;
	uint8_t pkt[4000], *b;
	uint16_t nb;
	uint32_t id, len;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	bring_up(f, NET_FEATURES, 2);
	rx_buffers(f, 0, 0, 8, 1000);
	/* 2500 bytes: three buffers, num_buffers 3 in the first one's header */
	assert_int_equal(send(fake.tap[0], pkt, packet(pkt, 2500, 0, 1), 0), 2500);
	wait_used(f, 0, 3, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 1000);
	assert_int_equal(used_len(f, 0, 1), 1000);
	assert_int_equal(used_len(f, 0, 2), 500);
	b = f->ram + BUFS;
	memcpy(&nb, b + 10, 2);
	assert_int_equal(nb, 3);
	assert_memory_equal(b + NET_HDR_LEN, pkt + NET_HDR_LEN, 1000 - NET_HDR_LEN);
	assert_memory_equal(f->ram + BUFS + 0x1000, pkt + 1000, 1000);
	assert_memory_equal(f->ram + BUFS + 0x2000, pkt + 2000, 500);
	/* a small one takes the next buffer alone */
	assert_int_equal(send(fake.tap[0], pkt, packet(pkt, 60, 0, 2), 0), 60);
	wait_used(f, 0, 1, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 60);
	memcpy(&nb, f->ram + BUFS + 0x3000 + 10, 2);
	assert_int_equal(nb, 1);
	assert_memory_equal(f->ram + BUFS + 0x3000 + NET_HDR_LEN, pkt + NET_HDR_LEN, 48);
	/* and the irqfd of the RX queue's vector fired */
	assert_true(readable(f->d->msix_fd[0]));
}

/* A packet larger than all the buffers posted: the rest waits for more buffers, then arrives
 * whole; the next packet is not held up behind it for longer. */
static void user_rx_waits_for_buffers(void **state)
{
	struct fix *f = *state;
	static uint8_t pkt[20000];
	uint8_t got[20000];
	uint16_t nb;
	size_t off = 0;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	bring_up(f, NET_FEATURES, 2);
	rx_buffers(f, 0, 0, 4, 4096);
	assert_int_equal(
	    send(fake.tap[0], pkt, packet(pkt, sizeof(pkt), VIRTIO_NET_HDR_GSO_TCPV4, 3), 0),
	    (ssize_t)sizeof(pkt));
	/* nothing is returned while the packet does not fit */
	for (int i = 0; i < 50 && used_idx(f, 0) == 0; i++)
		usleep(1000);
	assert_int_equal(used_idx(f, 0), 0);
	rx_buffers(f, 0, 4, 2, 4096);
	wait_used(f, 0, 5, NULL, NULL);
	memcpy(&nb, f->ram + BUFS + 10, 2);
	assert_int_equal(nb, 5);
	for (unsigned i = 0; i < 5; i++) {
		uint32_t l = used_len(f, 0, (uint16_t)i);
		assert_int_equal(l, i < 4 ? 4096 : sizeof(pkt) - 4 * 4096);
		memcpy(got + off, f->ram + BUFS + 0x1000 * i, l);
		off += l;
	}
	assert_int_equal(off, sizeof(pkt));
	assert_memory_equal(got + NET_HDR_LEN, pkt + NET_HDR_LEN, sizeof(pkt) - NET_HDR_LEN);
	assert_int_equal(got[1], VIRTIO_NET_HDR_GSO_TCPV4);
}

/* The buffers run out exactly with a spilled packet: the packets behind it wait in the tap
 * (not in the spill buffer, where the next one would overwrite them) until more come. */
static void user_rx_spill_then_empty_ring(void **state)
{
	struct fix *f = *state;
	static uint8_t big[10000];
	uint8_t small[300];
	uint32_t id, len;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	bring_up(f, NET_FEATURES, 2);
	rx_buffers(f, 0, 0, 2, 4096);
	assert_int_equal(send(fake.tap[0], big, packet(big, sizeof(big), 0, 10), 0),
			 (ssize_t)sizeof(big));
	assert_int_equal(send(fake.tap[0], small, packet(small, sizeof(small), 0, 11), 0),
			 (ssize_t)sizeof(small));
	/* the first is in: its head in the two buffers, its tail spilled (a hang guard) */
	for (int i = 0; i < 10000 && !__atomic_load_n(&f->n->pair[0].pend_bufs, __ATOMIC_ACQUIRE);
	     i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&f->n->pair[0].pend_bufs, __ATOMIC_ACQUIRE), 2);
	rx_buffers(f, 0, 2, 1, 4096); /* exactly what the first one still needs */
	wait_used(f, 0, 3, NULL, NULL);
	assert_int_equal(used_len(f, 0, 2), sizeof(big) - 2 * 4096);
	assert_memory_equal(f->ram + BUFS + 0x2000, big + 2 * 4096, sizeof(big) - 2 * 4096);
	rx_buffers(f, 0, 3, 1, 4096);
	wait_used(f, 0, 1, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, sizeof(small));
	assert_memory_equal(f->ram + BUFS + 0x3000 + NET_HDR_LEN, small + NET_HDR_LEN,
			    sizeof(small) - NET_HDR_LEN);
	assert_int_equal(f->n->pair[0].rx_dropped, 0);
}

/* Without MRG_RXBUF a packet must fit one chain: a chain too small drops the packet and stays
 * for the next one, which fits. */
static void user_rx_without_mergeable(void **state)
{
	struct fix *f = *state;
	uint8_t pkt[3000];
	uint32_t id, len;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	bring_up(f, NET_FEATURES & ~F(VIRTIO_NET_F_MRG_RXBUF), 2);
	/* a chain of two descriptors: header, then 1500 bytes */
	desc(f, 0, 0, BUFS, NET_HDR_LEN, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	desc(f, 0, 1, BUFS + 0x100, 1500, VRING_DESC_F_WRITE, 0);
	post(f, 0, 0);
	assert_int_equal(send(fake.tap[0], pkt, packet(pkt, 3000, 0, 4), 0), 3000);
	assert_int_equal(send(fake.tap[0], pkt, packet(pkt, 1000, 0, 5), 0), 1000);
	wait_used(f, 0, 1, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 1000);
	assert_memory_equal(f->ram + BUFS + 0x100, pkt + NET_HDR_LEN, 1000 - NET_HDR_LEN);
	assert_int_equal(f->n->pair[0].rx_dropped, 1);
}

static void user_tx(void **state)
{
	struct fix *f = *state;
	uint8_t pkt[2000], got[4000];
	uint32_t id;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	bring_up(f, NET_FEATURES, 2);
	packet(pkt, sizeof(pkt), VIRTIO_NET_HDR_GSO_NONE, 6);
	memcpy(f->ram + BUFS, pkt, NET_HDR_LEN);
	memcpy(f->ram + BUFS + 0x800, pkt + NET_HDR_LEN, 500);
	memcpy(f->ram + BUFS + 0x2000, pkt + NET_HDR_LEN + 500, sizeof(pkt) - NET_HDR_LEN - 500);
	desc(f, 1, 0, BUFS, NET_HDR_LEN, VRING_DESC_F_NEXT, 1);
	desc(f, 1, 1, BUFS + 0x800, 500, VRING_DESC_F_NEXT, 2);
	desc(f, 1, 2, BUFS + 0x2000, sizeof(pkt) - NET_HDR_LEN - 500, 0, 0);
	post(f, 1, 0);
	wait_used(f, 1, 1, &id, NULL);
	assert_int_equal(id, 0);
	assert_int_equal(recv(fake.tap[0], got, sizeof(got), MSG_DONTWAIT), (ssize_t)sizeof(pkt));
	assert_memory_equal(got, pkt, sizeof(pkt));
	/* a chain shorter than the header is no packet: returned, not sent */
	desc(f, 1, 3, BUFS, 4, 0, 0);
	post(f, 1, 3);
	wait_used(f, 1, 1, &id, NULL);
	assert_int_equal(id, 3);
	assert_int_equal(recv(fake.tap[0], got, sizeof(got), MSG_DONTWAIT), -1);
}

/* Two pairs in userspace: both threads run; the second pair's tap queue gets packets once the
 * guest asks for two pairs, into the second receive queue. */
static void user_multiqueue(void **state)
{
	struct fix *f = *state;
	uint8_t pkt[100];
	uint32_t id, len;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 2, 0), 0);
	bring_up(f, NET_FEATURES | F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_VQ), 5);
	assert_true(f->n->pair[0].running);
	assert_true(f->n->pair[1].running);
	assert_true(fk[f->n->tap.fd[1]].detached);
	ctrl_pairs(f, 4, 2, VIRTIO_NET_OK);
	assert_false(fk[f->n->tap.fd[1]].detached);
	rx_buffers(f, 2, 0, 2, 2048);
	assert_int_equal(send(fake.tap[1], pkt, packet(pkt, 100, 0, 7), 0), 100);
	wait_used(f, 2, 1, &id, &len);
	assert_int_equal(len, 100);
	assert_memory_equal(f->ram + BUFS + NET_HDR_LEN, pkt + NET_HDR_LEN, 100 - NET_HDR_LEN);
	ctrl_pairs(f, 4, 1, VIRTIO_NET_OK);
	assert_true(fk[f->n->tap.fd[1]].detached);
	/* a transmit chain on the second pair still goes out */
	memset(f->ram + BUFS + 0x8000, 0, NET_HDR_LEN);
	desc(f, 3, 0, BUFS + 0x8000, NET_HDR_LEN + 50, 0, 0);
	post(f, 3, 0);
	wait_used(f, 3, 1, &id, NULL);
	assert_int_equal(recv(fake.tap[1], pkt, sizeof(pkt), MSG_DONTWAIT), NET_HDR_LEN + 50);
}

/* Paused: a packet waits in the tap, the guest's buffers untouched; resumed: it arrives. */
static void user_pause_resume(void **state)
{
	struct fix *f = *state;
	uint8_t pkt[200];
	uint32_t len;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	bring_up(f, NET_FEATURES, 2);
	virtio_net_pause(f->d);
	assert_false(f->n->pair[0].running);
	rx_buffers(f, 0, 0, 2, 2048);
	assert_int_equal(send(fake.tap[0], pkt, packet(pkt, 200, 0, 9), 0), 200);
	for (int i = 0; i < 50; i++)
		usleep(1000);
	assert_int_equal(used_idx(f, 0), 0);
	assert_int_equal(virtio_net_resume(f->d), 0);
	wait_used(f, 0, 1, NULL, &len);
	assert_int_equal(len, 200);
	assert_memory_equal(f->ram + BUFS + NET_HDR_LEN, pkt + NET_HDR_LEN, 200 - NET_HDR_LEN);
}

/* A receive buffer smaller than the header is the guest's error: the device needs a reset,
 * the VMM stays up, and a reset brings it back. */
static void user_rx_tiny_buffer_breaks_device(void **state)
{
	struct fix *f = *state;
	uint8_t pkt[100];
	uint32_t len;

	assert_int_equal(make(f, VIRTIO_NET_VHOST_OFF, 1, 0), 0);
	bring_up(f, NET_FEATURES, 2);
	desc(f, 0, 0, BUFS, 4, VRING_DESC_F_WRITE, 0);
	post(f, 0, 0);
	assert_int_equal(send(fake.tap[0], pkt, packet(pkt, 100, 0, 8), 0), 100);
	for (int i = 0;
	     i < 10000 && !(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(rd(f, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	bring_up(f, NET_FEATURES, 2);
	rx_buffers(f, 0, 0, 1, 2048);
	wait_used(f, 0, 1, NULL, &len); /* the packet waited in the tap */
	assert_int_equal(len, 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
	    T(features_offered),
	    T(features_follow_tap_and_options),
	    T(offloads_follow_the_guest),
	    T(vhost_sequence),
	    T(vhost_follows_masking),
	    T(vhost_reset_and_renegotiate),
	    T(vhost_multiqueue),
	    T(vhost_pause_resume),
	    T(vhost_unusable_falls_back),
	    cmocka_unit_test(vhost_mem_table_checks),
	    T(user_rx_straight_into_buffers),
	    T(user_rx_waits_for_buffers),
	    T(user_rx_spill_then_empty_ring),
	    T(user_rx_without_mergeable),
	    T(user_tx),
	    T(user_multiqueue),
	    T(user_pause_resume),
	    T(user_rx_tiny_buffer_breaks_device),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
