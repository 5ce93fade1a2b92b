/*
 * The values of `ligero run`'s device options (--disk, --net, --balloon) as the structs the VMM
 * takes: the string parsing is the command line's, the VMM never sees option text.
 */
#include "cli/run_devices.h"
#include "block/block.h"
#include "vmm/virtio/vmdev.h"
#include "util/error.h"
#include "util/options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int run_parse_disk(char *arg, struct virtio_blk_opts *o)
{
	char *s = arg, *k, *v;
	int flags;

	memset(o, 0, sizeof(*o));
	/* The image is everything up to the first comma: a remote name (rbd:pool/img:conf=F)
	 * may hold '=' (a json: name, with its commas, cannot be given here). */
	char *comma = strchr(arg, ',');
	s = comma ? comma + 1 : arg + strlen(arg);
	if (comma)
		*comma = '\0';
	if (!*arg || (strchr(arg, '=') && !bdev_is_remote_name(arg)))
		return err_set(EINVAL, "--disk: the first item must be the image file");
	o->path = arg;
	while (opts_next(&s, &k, &v)) {
		if (!v)
			return err_set(EINVAL, "--disk %s: '%s' needs a value", o->path, k);
		if (!strcmp(k, "format") && (!strcmp(v, "raw") || !strcmp(v, "qcow2"))) {
			o->format = v;
		} else if (!strcmp(k, "readonly") && (!strcmp(v, "on") || !strcmp(v, "off"))) {
			o->readonly = !strcmp(v, "on");
		} else if (!strcmp(k, "cache")) {
			if (bdev_parse_cache_mode(v, &flags) < 0)
				return err_prefix(-EINVAL, "--disk %s: ", o->path);
			o->bdev_flags = flags;
		} else if (!strcmp(k, "serial") && strlen(v) < sizeof(o->serial)) {
			memcpy(o->serial, v, strlen(v) + 1);
		} else {
			return err_set(EINVAL, "--disk %s: bad option %s=%s", o->path, k, v);
		}
	}
	return 0;
}

static bool parse_mac(const char *v, uint8_t mac[6])
{
	unsigned m[6];
	int end = 0;

	if (sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%n", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5],
		   &end) != 6 ||
	    end != 17 || v[end])
		return false;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)m[i];
	return true;
}

/* A decimal number in [lo, hi]. */
static bool parse_uint(const char *v, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long n;

	if (*v < '0' || *v > '9')
		return false;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n < lo || n > hi)
		return false;
	*out = (unsigned)n;
	return true;
}

int run_parse_net(char *arg, struct virtio_net_opts *o)
{
	char *s = arg, *k, *v;

	memset(o, 0, sizeof(*o));
	while (opts_next(&s, &k, &v)) {
		if (!v)
			return err_set(EINVAL, "--net: '%s' needs a value", k);
		if (!strcmp(k, "tap") && strlen(v) < sizeof(o->tap)) {
			memcpy(o->tap, v, strlen(v) + 1);
		} else if (!strcmp(k, "bridge") && strlen(v) < sizeof(o->bridge) && *v) {
			memcpy(o->bridge, v, strlen(v) + 1);
		} else if (!strcmp(k, "vhost") && (!strcmp(v, "on") || !strcmp(v, "off"))) {
			o->vhost = !strcmp(v, "on") ? VIRTIO_NET_VHOST_ON : VIRTIO_NET_VHOST_OFF;
		} else if (!strcmp(k, "queues")) {
			if (!parse_uint(v, 1, VIRTIO_NET_MAX_PAIRS, &o->queues))
				return err_set(EINVAL,
					       "--net: queues=%s is not a count from 1 to %u", v,
					       VIRTIO_NET_MAX_PAIRS);
		} else if (!strcmp(k, "mtu")) {
			if (!parse_uint(v, 68, 65535, &o->mtu))
				return err_set(EINVAL,
					       "--net: mtu=%s is not a size from 68 to 65535", v);
		} else if (!strcmp(k, "mac") && parse_mac(v, o->mac)) {
			if (o->mac[0] & 1)
				return err_set(EINVAL, "--net: mac %s is a multicast address", v);
			o->mac_set = true;
		} else {
			return err_set(EINVAL, "--net: bad option %s=%s", k, v);
		}
	}
	if (!o->tap[0] && !o->bridge[0])
		return err_set(EINVAL, "--net needs tap=NAME or bridge=BR");
	return 0;
}

int run_parse_balloon(char *arg, struct vm_balloon_opts *o)
{
	char *s = arg, *k, *v, *end;
	unsigned long n;

	memset(o, 0, sizeof(*o));
	if (!opts_next(&s, &k, &v) || v)
		return err_set(EINVAL, "--balloon: expected MiB[,after=SECONDS][,trigger=FILE]");
	errno = 0;
	o->mib = strtoull(k, &end, 10);
	if (errno || *end || end == k || o->mib > (1ull << 32))
		return err_set(EINVAL, "--balloon '%s' is not a size in MiB", k);
	while (opts_next(&s, &k, &v)) {
		if (v && !strcmp(k, "after") && *v) {
			errno = 0;
			n = strtoul(v, &end, 10);
			if (!errno && !*end && n <= 1000000) {
				o->after = (unsigned)n;
				continue;
			}
		}
		if (v && !strcmp(k, "trigger") && *v) {
			o->trigger = v;
			continue;
		}
		return err_set(EINVAL, "--balloon: bad option %s%s%s", k, v ? "=" : "", v ? v : "");
	}
	return 0;
}
