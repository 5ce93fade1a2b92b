/* `ligero img <verb>`: dispatch to one file per verb. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} verbs[] = {
    {"create", img_create_main, "create [-f fmt] [-b backing [-F fmt]] [-o opts] [-q] FILE [SIZE]"},
    {"info", img_info_main, "info [-f fmt] [--output=human|json] [--backing-chain] [-U] FILE"},
    {"check", img_check_main,
     "check [-f fmt] [-r leaks|all] [-T cache] [--output=human|json] [-U] [-q] FILE"},
    {"io", img_io_main, "io [-f fmt] [-r] [-U] [-t cache] -c CMD [-c CMD ...] FILE   (qemu-io's)"},
    {"convert", img_convert_main,
     "convert [-f fmt] [-O fmt] [-c] [-o opts] [-B backing [-F fmt]] [-S size] [-p]\n"
     "          [-m N] [-W] [-n] [--target-is-zero] [-t cache] [-T cache] SRC... DST"},
    {"map", img_map_main, "map [-f fmt] [--output=human|json] [-s OFF] [-l LEN] [-U] FILE"},
    {"compare", img_compare_main,
     "compare [-f fmt] [-F fmt] [-s] [-p] [-T cache] [-U] FILE1 FILE2"},
    {"commit", img_commit_main, "commit [-f fmt] [-t cache] [-b base] [-d] [-p] FILE"},
    {"rebase", img_rebase_main, "rebase [-f fmt] [-u] [-b backing [-F fmt]] [-p] FILE"},
    {"resize", img_resize_main, "resize [-f fmt] [--shrink] FILE [+|-]SIZE"},
    {"snapshot", img_snapshot_main, "snapshot [-U] [-l | -c NAME | -a NAME | -d NAME] FILE"},
    {"amend", img_amend_main, "amend [-f fmt] [-t cache] -o compat=...,lazy_refcounts=... FILE"},
    {"serve", img_serve_main,
     "serve [-f fmt] [--socket PATH | --port N [--bind ADDR]] [--export-name NAME] [-r]\n"
     "          [--snapshot] [--persistent] [--shared N] [--tls-creds DIR] [--pid-file F] FILE"},
};

static void img_usage(FILE *f)
{
	fputs("usage: ligero img <verb> [options]\n\nverbs:\n", f);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %s\n", verbs[i].help);
	fputs("\nOptions go before or after the file names, as with qemu-img; '--' ends them.\n",
	      f);
}

int cmd_img(int argc, char **argv)
{
	if (argc < 2) {
		img_usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		img_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].fn(argc - 1, argv + 1);
	return cli_fail("unknown img verb '%s' (see 'ligero img --help')", argv[1]);
}
