#include "cli/cli.h"
#include "block/block.h"
#include "util/error.h"
#include "util/size.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("ligero: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_fail_err(int ret)
{
	return cli_fail("%s", err_msg_or(ret));
}

void cli_warn_open(const struct bdev *bs)
{
	const char *w = bdev_warning(bs);

	if (w)
		fprintf(stderr, "ligero: warning: %s\n", w);
}

int cli_parse_size(const char *what, const char *s, uint64_t *out)
{
	int ret = size_parse(s, out);

	if (ret == -ERANGE)
		return cli_fail("%s '%s' is too large (at most 8 EiB)", what, s);
	if (ret < 0)
		return cli_fail("%s '%s' is not a size (use e.g. 4096, 64k, 512M, 10G)", what, s);
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: ligero <group> <verb> [options]\n"
	      "\n"
	      "groups:\n"
	      "  img      disk images: create, info, check, convert, map, compare, commit,\n"
	      "           rebase, resize, snapshot, amend, io (qemu-img's flags), serve (NBD)\n"
	      "  fs       guest filesystems: list, ls, cat, copy-in/-out, inspect, mount ...\n"
	      "  sparsify shrink an image for backup: drop free space, in place or into a copy\n"
	      "  sysprep  make a cloned disk unique (machine ID, SSH keys, hostname, ...)\n"
	      "  run      boot a Linux kernel in a KVM virtual machine\n"
	      "  ksm      kernel samepage merging: status, enable, disable, auto (ksmtuned)\n"
	      "  migrate  an OpenVZ container (or any Linux root) to a VM: an overlay of a base\n"
	      "  vm       VMs by name: create, start, stop, list, console, autostart ...\n"
	      "  fleet    many VMs from one base: create, start, stop, reset, list, delete\n"
	      "  host     the host itself: check that it can run VMs\n"
	      "  help     'ligero help [GROUP] [VERB]': synopses from the manual pages\n"
	      "  version  print the version\n"
	      "\n"
	      "'ligero <group> --help' lists a group's verbs; see also 'man ligero-<group>'.\n",
	      f);
}

/* One group per line, so that branches adding groups merge cleanly. */
/* clang-format off */
static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} groups[] = {
    {"img", cmd_img},
    {"fs", cmd_fs},
    {"sparsify", cmd_sparsify},
    {"run", cmd_run},
    {"ksm", cmd_ksm},
    {"sysprep", cmd_sysprep},
    {"migrate", cmd_migrate},
    {"vm", cmd_vm},
    {"host", cmd_host},
    {"fleet", cmd_fleet},
};
/* clang-format on */

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "help") && argc > 2)
		return cmd_help(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("ligero %s\n", cli_version);
		return 0;
	}
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (!strcmp(argv[1], groups[i].name))
			return groups[i].fn(argc - 1, argv + 1);
	cli_fail("unknown command group '%s' (see 'ligero --help')", argv[1]);
	return 1;
}
