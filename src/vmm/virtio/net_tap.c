/*
 * virtio-net's tap: one file descriptor per queue pair (IFF_MULTI_QUEUE when there is more than
 * one), 12-byte vnet headers so that checksum offload and GSO pass between the guest and the
 * host kernel untouched, and the offloads the guest accepted (TUNSETOFFLOAD). With bridge=BR
 * the tap is created here and joins the bridge; it is not persistent, so it vanishes with its
 * last descriptor when the VMM exits, however it exits.
 */
#include "vmm/virtio/net.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* One queue of tap `name` ("" = a new one, its name comes back in name). */
static int queue_open(char name[IFNAMSIZ], bool multi)
{
	struct ifreq ifr = {0};
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC), err;

	if (fd < 0)
		return err_sys(errno, "/dev/net/tun");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = errno;
		close(fd);
		return err_sys(err, "tap %s%s", name[0] ? name : "(new)",
			       multi && err == EINVAL ? " (is it a single-queue tap?)" : "");
	}
	snprintf(name, IFNAMSIZ, "%s", ifr.ifr_name);
	return fd;
}

/* Which offloads the tap takes, tried from the most to the least; then none until the guest
 * says which it accepts. */
static void probe_offloads(struct net_tap *t)
{
	static const unsigned tries[] = {
	    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO,
	    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
	    TUN_F_CSUM,
	};

	t->offloads = 0;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && !t->offloads; i++)
		if (ioctl(t->fd[0], TUNSETOFFLOAD, tries[i]) == 0)
			t->offloads = tries[i];
	ioctl(t->fd[0], TUNSETOFFLOAD, 0);
}

/* Up, the MTU of o, and into o's bridge. */
static int configure(struct net_tap *t, const struct virtio_net_opts *o)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (s < 0)
		return err_sys(errno, "socket");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", t->ifname);
	if (o->mtu) {
		ifr.ifr_mtu = (int)o->mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
			ret = err_sys(errno, "%s: setting the MTU to %u", t->ifname, o->mtu);
	}
	/* a tap someone made up already (and gave us) needs no CAP_NET_ADMIN here */
	if (!ret && ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			ret = err_sys(errno, "%s: bringing it up", t->ifname);
	}
	if (!ret && ioctl(s, SIOCGIFINDEX, &ifr) == 0)
		t->ifindex = ifr.ifr_ifindex;
	if (!ret && o->bridge[0]) {
		struct ifreq br = {0};
		snprintf(br.ifr_name, sizeof(br.ifr_name), "%s", o->bridge);
		br.ifr_ifindex = t->ifindex;
		if (ioctl(s, SIOCBRADDIF, &br) < 0)
			ret = err_sys(errno, "adding %s to bridge %s", t->ifname, o->bridge);
	}
	close(s);
	return ret;
}

static int open_queues(struct net_tap *t, const char *name, unsigned pairs)
{
	int hdr = NET_HDR_LEN, fd;

	snprintf(t->ifname, sizeof(t->ifname), "%s", name);
	t->multi = pairs > 1;
	for (t->nfds = 0; t->nfds < pairs; t->nfds++) {
		if ((fd = queue_open(t->ifname, t->multi)) < 0)
			return fd;
		t->fd[t->nfds] = fd;
	}
	if (ioctl(t->fd[0], TUNSETVNETHDRSZ, &hdr) < 0)
		return err_sys(errno, "%s: TUNSETVNETHDRSZ", t->ifname);
	return 0;
}

int net_tap_open(struct net_tap *t, const struct virtio_net_opts *o, unsigned pairs, bool exact)
{
	int ret;

	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < VIRTIO_NET_MAX_PAIRS; i++)
		t->fd[i] = -1;
	if (pairs < 1 || pairs > VIRTIO_NET_MAX_PAIRS)
		return err_set(EINVAL, "%u queue pairs (1 to %u)", pairs, VIRTIO_NET_MAX_PAIRS);
	ret = open_queues(t, o->tap, pairs);
	if (ret == -EINVAL && pairs > 1 && o->tap[0] && !exact) {
		/* a tap made without multi_queue takes one queue: one pair, then */
		net_tap_close(t);
		pairs = 1;
		ret = open_queues(t, o->tap, pairs);
	}
	if (ret == 0)
		ret = configure(t, o);
	if (ret < 0) {
		net_tap_close(t);
		return ret;
	}
	probe_offloads(t);
	return (int)pairs;
}

void net_tap_close(struct net_tap *t)
{
	for (unsigned i = 0; i < VIRTIO_NET_MAX_PAIRS; i++) {
		if (t->fd[i] >= 0)
			close(t->fd[i]); /* a tap we created disappears with its last queue */
		t->fd[i] = -1;
	}
	t->nfds = 0;
}

unsigned net_tap_offload_flags(uint64_t features)
{
	unsigned f = TUN_F_CSUM;

	/* without checksum offload there are no segmentation offloads either (TUNSETOFFLOAD
	 * refuses them alone, and so does a guest kernel) */
	if (!(features & (1ull << VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	if (features & (1ull << VIRTIO_NET_F_GUEST_TSO4))
		f |= TUN_F_TSO4;
	if (features & (1ull << VIRTIO_NET_F_GUEST_TSO6))
		f |= TUN_F_TSO6;
	if ((f & (TUN_F_TSO4 | TUN_F_TSO6)) && (features & (1ull << VIRTIO_NET_F_GUEST_ECN)))
		f |= TUN_F_TSO_ECN;
	if (features & (1ull << VIRTIO_NET_F_GUEST_UFO))
		f |= TUN_F_UFO;
	return f;
}

int net_tap_set_offload(struct net_tap *t, unsigned flags)
{
	if (ioctl(t->fd[0], TUNSETOFFLOAD, flags & t->offloads) < 0)
		return err_sys(errno, "%s: TUNSETOFFLOAD 0x%x", t->ifname, flags);
	return 0;
}

int net_tap_enable(struct net_tap *t, unsigned i, bool on)
{
	struct ifreq ifr = {0};

	if (!t->multi || i >= t->nfds)
		return 0;
	ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	/* the kernel refuses attaching an attached queue (and detaching a detached one) */
	if (ioctl(t->fd[i], TUNSETQUEUE, &ifr) < 0 && errno != EINVAL)
		return err_sys(errno, "%s: %s queue %u", t->ifname, on ? "attaching" : "detaching",
			       i);
	return 0;
}
