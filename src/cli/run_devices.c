/*
 * `ligero run` device options: --disk, --net, --balloon, --rng. They are taken out of argv
 * before run.c's own option parsing sees it, so the two option sets stay in separate files, and
 * parsed (run_device_opts.c) into the structs the VMM takes (vmm/virtio/vmdev.h).
 */
#include "cli/cli.h"
#include "cli/run_devices.h"
#include "vmm/virtio/vmdev.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char run_devices_usage[] =
    "       [--disk FILE[,format=raw|qcow2][,readonly=on|off][,serial=ID]\n"
    "               [,cache=writeback|none|writethrough|directsync|unsafe]]...\n"
    "       [--net tap=NAME|bridge=BR[,vhost=on|off][,queues=N][,mtu=M]\n"
    "              [,mac=52:54:00:xx:xx:xx]]... [--rng]\n"
    "       [--balloon MiB[,after=SECONDS][,trigger=FILE]]\n";

/* Match --name VALUE or --name=VALUE at argv[*i]; sets *val and advances *i past it. */
static int take(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n))
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

/* The devices live until exit (vm_destroy has stopped them by then). */
static struct vm_devices *owned;

static void free_owned(void)
{
	vm_devices_free(owned);
	owned = NULL;
}

/* Parse one device option into v. 0 or -errno with a message. */
static int add_device(struct vm_devices *v, int which, const char *val)
{
	char *copy = strdup(val); /* split in place; the VMM copies what it keeps */
	union {
		struct virtio_blk_opts disk;
		struct virtio_net_opts net;
		struct vm_balloon_opts balloon;
	} o;
	int ret;

	if (!copy)
		return err_set(ENOMEM, "out of memory");
	if (which == 0)
		ret = run_parse_disk(copy, &o.disk) ?: vm_devices_add_disk(v, &o.disk);
	else if (which == 1)
		ret = run_parse_net(copy, &o.net) ?: vm_devices_add_net(v, &o.net);
	else
		ret = run_parse_balloon(copy, &o.balloon) ?: vm_devices_set_balloon(v, &o.balloon);
	free(copy);
	return ret;
}

void run_devices_notice(const struct vm_devices *v)
{
	char line[512];

	for (unsigned i = 0; vm_devices_describe_net(v, i, line, sizeof(line)); i++)
		fprintf(stderr, "ligero: %s\n", line);
}

int run_devices_options(int *argc, char **argv, struct vm_devices **out)
{
	static const char *const names[] = {"--disk", "--net", "--balloon"};
	struct vm_devices *v = vm_devices_new();
	int j = 1;

	if (!v)
		return cli_fail("out of memory");
	for (int i = 1; i < *argc; i++) {
		const char *val = NULL;
		int which = -1, r = 0, ret = 0;
		if (!strcmp(argv[i], "--")) {
			while (i < *argc)
				argv[j++] = argv[i++];
			break;
		}
		if (!strcmp(argv[i], "--rng")) {
			vm_devices_add_rng(v);
			continue;
		}
		for (int k = 0; k < 3 && !r; k++)
			if ((r = take(*argc, argv, &i, names[k], &val)) != 0)
				which = k;
		if (r < 0) {
			vm_devices_free(v);
			return cli_usage_fail("run", "option '%s' needs a value", names[which]);
		}
		if (!r) {
			argv[j++] = argv[i];
			continue;
		}
		ret = add_device(v, which, val);
		if (ret < 0) {
			vm_devices_free(v);
			return cli_usage_fail("run", "%s", err_msg_or(ret));
		}
	}
	argv[j] = NULL;
	*argc = j;
	*out = owned = v;
	atexit(free_owned);
	return 0;
}
