/* Device options and assembly for one VM; see vmdev.h. */
#include "vmm/virtio/vmdev.h"
#include "vmm/virtio/devices.h"
#include "vmm/bus.h"
#include "vmm/memory.h"
#include "vmm/pci.h"
#include "vmm/pci_bus.h"
#include "block/block.h"
#include "util/error.h"
#include "util/size.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_DISKS 8
#define MAX_NETS  4

struct vm_devices {
	struct virtio_blk_opts disk[MAX_DISKS];
	unsigned ndisks;
	struct virtio_net_opts net[MAX_NETS];
	unsigned nnets;
	bool balloon, rng;
	uint64_t balloon_mib;
	unsigned balloon_after; /* seconds after start before the target applies */
	char *balloon_trigger;	/* or: the target applies once this file exists */
	char *seed;
	unsigned cpus;
	struct virtio_dev *nic[MAX_NETS];

	struct virtio_mem mem;
	struct kvm_irq irq;
	struct pci_bus bus;
	struct virtio_dev *dev[MAX_DISKS + MAX_NETS + 2];
	void (*destroy[MAX_DISKS + MAX_NETS + 2])(struct virtio_dev *);
	int (*close[MAX_DISKS + MAX_NETS + 2])(struct virtio_dev *); /* disks: flush and close */
	unsigned ndev;
	pthread_t balloon_timer;
	int timer_fd;
	bool timer_running, attached;
};

struct vm_devices *vm_devices_new(void)
{
	struct vm_devices *v = calloc(1, sizeof(*v));
	if (v)
		v->timer_fd = -1;
	return v;
}

int vm_devices_add_disk(struct vm_devices *v, const struct virtio_blk_opts *o)
{
	struct virtio_blk_opts *d;

	if (v->ndisks == MAX_DISKS)
		return err_set(EINVAL, "at most %d --disk", MAX_DISKS);
	d = &v->disk[v->ndisks];
	if (!o->path || !*o->path)
		return err_set(EINVAL, "--disk: no image file");
	*d = *o;
	d->serial[sizeof(d->serial) - 1] = '\0';
	d->path = strdup(o->path);
	d->format = o->format ? strdup(o->format) : NULL;
	if (!d->path || (o->format && !d->format)) {
		virtio_blk_opts_free(d);
		return err_set(ENOMEM, "out of memory");
	}
	v->ndisks++;
	return 0;
}

int vm_devices_disk(const struct vm_devices *v, unsigned i, const char **path, const char **format)
{
	if (!v || i >= v->ndisks)
		return 0;
	*path = v->disk[i].path;
	*format = v->disk[i].format;
	return 1;
}

int vm_devices_add_net(struct vm_devices *v, const struct virtio_net_opts *o)
{
	if (v->nnets == MAX_NETS)
		return err_set(EINVAL, "at most %d --net", MAX_NETS);
	if (!o->tap[0] && !o->bridge[0])
		return err_set(EINVAL, "--net needs tap=NAME or bridge=BR");
	if (o->mac_set && (o->mac[0] & 1))
		return err_set(EINVAL, "--net: a multicast MAC address cannot be a NIC's");
	if (o->queues > VIRTIO_NET_MAX_PAIRS)
		return err_set(EINVAL, "--net: queues=%u (1 to %u)", o->queues,
			       VIRTIO_NET_MAX_PAIRS);
	if (o->mtu && (o->mtu < 68 || o->mtu > 65535))
		return err_set(EINVAL, "--net: mtu=%u (68 to 65535)", o->mtu);
	v->net[v->nnets] = *o;
	v->net[v->nnets].tap[sizeof(o->tap) - 1] = '\0';
	v->net[v->nnets++].bridge[sizeof(o->bridge) - 1] = '\0';
	return 0;
}

int vm_devices_set_balloon(struct vm_devices *v, const struct vm_balloon_opts *o)
{
	char *trigger = NULL;

	if (o->mib > (1ull << 32))
		return err_set(EINVAL, "--balloon %llu MiB is too large",
			       (unsigned long long)o->mib);
	if (o->trigger && !(trigger = strdup(o->trigger)))
		return err_set(ENOMEM, "out of memory");
	free(v->balloon_trigger);
	v->balloon_trigger = trigger;
	v->balloon_mib = o->mib;
	v->balloon_after = o->after;
	v->balloon = true;
	return 0;
}

int vm_devices_add_rng(struct vm_devices *v)
{
	v->rng = true;
	return 0;
}

void vm_devices_set_cpus(struct vm_devices *v, unsigned cpus)
{
	if (v)
		v->cpus = cpus;
}

int vm_devices_describe_net(const struct vm_devices *v, unsigned i, char *buf, size_t len)
{
	if (!v || i >= v->nnets || !v->nic[i])
		return 0;
	virtio_net_describe(v->nic[i], buf, len);
	return 1;
}

void vm_devices_pause_nets(struct vm_devices *v)
{
	for (unsigned i = 0; v && i < v->nnets; i++)
		if (v->nic[i])
			virtio_net_pause(v->nic[i]);
}

int vm_devices_resume_nets(struct vm_devices *v)
{
	int ret = 0;

	for (unsigned i = 0; v && i < v->nnets; i++)
		if (v->nic[i])
			ret = virtio_net_resume(v->nic[i]) ?: ret;
	return ret;
}

void vm_devices_set_seed(struct vm_devices *v, const char *seed)
{
	free(v->seed);
	v->seed = seed ? strdup(seed) : NULL;
}

/* ---- bus glue: the PCI bus on the VM's port I/O and MMIO buses ---- */

static uint64_t pio_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t v = 0;
	pci_bus_pio(opaque, (uint16_t)(PCI_CONFIG_IO + off), &v, size, false);
	return v;
}

static void pio_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	pci_bus_pio(opaque, (uint16_t)(PCI_CONFIG_IO + off), &val, size, true);
}

static uint64_t ecam_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t v = ~0ull;
	pci_bus_mmio(opaque, PCI_ECAM_BASE + off, &v, size, false);
	return v;
}

static void ecam_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	pci_bus_mmio(opaque, PCI_ECAM_BASE + off, &val, size, true);
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t v = ~0ull;
	pci_bus_mmio(opaque, PCI_MMIO_BASE + off, &v, size, false);
	return v;
}

static void bar_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	pci_bus_mmio(opaque, PCI_MMIO_BASE + off, &val, size, true);
}

static uint64_t iobar_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t v = ~0ull;
	pci_bus_pio(opaque, (uint16_t)(PCI_BUS_IO_BASE + off), &v, size, false);
	return v;
}

static void iobar_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	pci_bus_pio(opaque, (uint16_t)(PCI_BUS_IO_BASE + off), &val, size, true);
}

static const struct bus_ops pio_ops = {pio_read, pio_write};
static const struct bus_ops iobar_ops = {iobar_read, iobar_write};
static const struct bus_ops ecam_ops = {ecam_read, ecam_write};
static const struct bus_ops bar_ops = {bar_read, bar_write};

static int plug(struct vm_devices *v, struct virtio_dev *d, void (*destroy)(struct virtio_dev *))
{
	int ret;

	v->dev[v->ndev] = d;
	v->close[v->ndev] = destroy == virtio_blk_destroy ? virtio_blk_close : NULL;
	v->destroy[v->ndev++] = destroy;
	ret = pci_bus_add(&v->bus, &d->pci);
	return ret < 0 ? err_set(-ret, "no free PCI slot for virtio-%s", d->ops->name) : 0;
}

static void *balloon_timer(void *arg)
{
	struct vm_devices *v = arg;
	struct pollfd p = {v->timer_fd, POLLIN, 0};

	if (poll(&p, 1, (int)v->balloon_after * 1000) != 0)
		return NULL;
	while (v->balloon_trigger && access(v->balloon_trigger, F_OK) != 0)
		if (poll(&p, 1, 200) != 0)
			return NULL;
	virtio_balloon_set_target(v->dev[v->ndev - 1], v->balloon_mib);
	return NULL;
}

static int attach_devices(struct vm_devices *v)
{
	struct virtio_dev *d;
	int ret;

	for (unsigned i = 0; i < v->ndisks; i++) {
		if ((ret = virtio_blk_create(&d, &v->disk[i], &v->mem, &v->irq)) < 0)
			return err_prefix(ret, "--disk %s: ", v->disk[i].path);
		if ((ret = plug(v, d, virtio_blk_destroy)) < 0)
			return ret;
	}
	for (unsigned i = 0; i < v->nnets; i++) {
		if (!v->net[i].mac_set)
			virtio_net_default_mac(v->seed ? v->seed
						       : (v->ndisks ? v->disk[0].path : ""),
					       i, v->net[i].mac);
		if ((ret = virtio_net_create(&d, &v->net[i], v->cpus ? v->cpus : 1, &v->mem,
					     &v->irq)) < 0)
			return err_prefix(ret, "--net: ");
		v->nic[i] = d;
		if ((ret = plug(v, d, virtio_net_destroy)) < 0)
			return ret;
	}
	if (v->rng) {
		if ((ret = virtio_rng_create(&d, &v->mem, &v->irq)) < 0 ||
		    (ret = plug(v, d, virtio_rng_destroy)) < 0)
			return ret;
	}
	if (v->balloon) {
		/* last device: balloon_timer finds it there */
		if ((ret = virtio_balloon_create(
			 &d, v->balloon_after || v->balloon_trigger ? 0 : v->balloon_mib, &v->mem,
			 &v->irq)) < 0 ||
		    (ret = plug(v, d, virtio_balloon_destroy)) < 0)
			return ret;
		if (v->balloon_after || v->balloon_trigger) {
			v->timer_fd = eventfd(0, EFD_CLOEXEC);
			if (v->timer_fd < 0 ||
			    pthread_create(&v->balloon_timer, NULL, balloon_timer, v) != 0)
				return err_sys(errno, "balloon timer");
			v->timer_running = true;
		}
	}
	return 0;
}

int vm_devices_attach(struct vm_devices *v, int vm_fd, const struct guest_mem *mem, struct bus *io,
		      struct bus *mmio)
{
	int ret;

	v->mem.nregions = 0;
	for (unsigned i = 0;
	     i < mem->nregions && i < sizeof(mem->regions) / sizeof(mem->regions[0]) &&
	     i < VIRTIO_MEM_MAX_REGIONS;
	     i++, v->mem.nregions++)
		v->mem.r[i] = (struct virtio_mem_region){mem->regions[i].gpa, mem->regions[i].size,
							 mem->regions[i].host};
	kvm_irq_init(&v->irq, vm_fd);
	pci_bus_init(&v->bus, PCI_ECAM_BASE, PCI_MMIO_BASE, PCI_MMIO_END + 1 - PCI_MMIO_BASE);
	v->attached = true;
	if ((ret = bus_add(io, PCI_CONFIG_IO, 8, &pio_ops, &v->bus)) < 0 ||
	    (ret = bus_add(io, PCI_BUS_IO_BASE, PCI_BUS_IO_END - PCI_BUS_IO_BASE, &iobar_ops,
			   &v->bus)) < 0 ||
	    (ret = bus_add(mmio, PCI_ECAM_BASE, PCI_ECAM_SIZE, &ecam_ops, &v->bus)) < 0 ||
	    (ret = bus_add(mmio, PCI_MMIO_BASE, PCI_MMIO_END + 1 - PCI_MMIO_BASE, &bar_ops,
			   &v->bus)) < 0)
		return err_set(-ret, "cannot place the PCI host bridge");
	return attach_devices(v);
}

int vm_devices_disk_info(struct vm_devices *v, unsigned i, struct vm_disk_info *out)
{
	struct bdev *bs;

	if (!v || i >= v->ndisks || i >= v->ndev || !(bs = virtio_blk_bdev(v->dev[i])))
		return -ENOENT;
	*out = (struct vm_disk_info){
	    .path = v->disk[i].path,
	    .format = bs->drv->name,
	    .readonly = bs->read_only,
	    .cache = bs->flags & (BDEV_O_DIRECT | BDEV_O_UNSAFE | BDEV_O_WRITETHROUGH),
	    .backing = bs->backing_name,
	    .size = bs->size,
	};
	for (struct bdev *b = bs->backing; b; b = b->backing)
		out->depth++;
	return 0;
}

/* The balloon is the last device plugged (attach_devices). */
static struct virtio_dev *balloon_dev(struct vm_devices *v)
{
	return v && v->balloon && v->ndev ? v->dev[v->ndev - 1] : NULL;
}

int vm_devices_balloon_set(struct vm_devices *v, uint64_t pages)
{
	struct virtio_dev *d = balloon_dev(v);

	if (!d)
		return -ENODEV;
	virtio_balloon_set_pages(d, pages);
	return 0;
}

int vm_devices_balloon_actual(struct vm_devices *v, uint64_t *pages)
{
	struct virtio_dev *d = balloon_dev(v);

	if (!d)
		return -ENODEV;
	*pages = virtio_balloon_actual_pages(d);
	return 0;
}

int vm_devices_balloon_notify(struct vm_devices *v, int notify_fd)
{
	struct virtio_dev *d = balloon_dev(v);

	if (!d)
		return -ENODEV;
	virtio_balloon_set_notify(d, notify_fd);
	return 0;
}

/* Flush and close every disk; the first failure's message is the one kept. */
static int close_disks(struct vm_devices *v)
{
	char first[512] = "";
	int ret = 0;

	for (unsigned i = 0; i < v->ndev; i++) {
		int r = v->close[i] ? v->close[i](v->dev[i]) : 0;
		if (r < 0 && ret == 0) {
			ret = r;
			snprintf(first, sizeof(first), "%s", err_msg_or(r));
		}
	}
	return ret < 0 ? err_set(-ret, "%s", first) : 0;
}

int vm_devices_stop(struct vm_devices *v)
{
	int ret;

	if (!v)
		return 0;
	ret = close_disks(v);
	if (v->timer_running) {
		eventfd_write(v->timer_fd, 1);
		pthread_join(v->balloon_timer, NULL);
		v->timer_running = false;
	}
	if (v->timer_fd >= 0)
		close(v->timer_fd);
	v->timer_fd = -1;
	for (unsigned i = v->ndev; i-- > 0;)
		v->destroy[i](v->dev[i]);
	v->ndev = 0;
	memset(v->nic, 0, sizeof(v->nic));
	if (v->attached)
		pci_bus_destroy(&v->bus);
	v->attached = false;
	return ret;
}

void vm_devices_free(struct vm_devices *v)
{
	if (!v)
		return;
	vm_devices_stop(v);
	for (unsigned i = 0; i < v->ndisks; i++)
		virtio_blk_opts_free(&v->disk[i]);
	free(v->seed);
	free(v->balloon_trigger);
	free(v);
}
