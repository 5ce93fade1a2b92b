/* `ligero img amend`: change the qcow2 options that can change in place. */
#include "block/block.h"
#include "cli/cli.h"
#include "util/error.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void amend_usage(FILE *f)
{
	fputs("usage: ligero img amend [-f fmt] [-t cache] [-p] [-q] [--force] -o options FILE\n"
	      "options:\n"
	      "  compat=0.10|1.1        image version (downgrading needs no v3-only features)\n"
	      "  lazy_refcounts=on|off  (1.1 only)\n",
	      f);
}

static int parse_kv(char *kv, struct bdev_amend_opts *o)
{
	char *v = strchr(kv, '=');

	if (!v)
		return cli_fail("option '%s' needs a value (key=value)", kv);
	*v++ = '\0';
	if (!strcmp(kv, "compat")) {
		return cli_parse_compat(v, &o->compat);
	} else if (!strcmp(kv, "lazy_refcounts")) {
		bool on;
		if (cli_parse_onoff(kv, v, &on))
			return 1;
		o->lazy_refcounts = on;
	} else if (!strcmp(kv, "cluster_size") || !strcmp(kv, "compression_type") ||
		   !strcmp(kv, "refcount_bits") || !strcmp(kv, "preallocation") ||
		   !strcmp(kv, "size") || !strcmp(kv, "backing_file") ||
		   !strcmp(kv, "backing_fmt") || !strcmp(kv, "extended_l2")) {
		return cli_fail("option '%s' cannot be amended (only at creation; amend changes "
				"compat and lazy_refcounts)",
				kv);
	} else {
		return cli_fail("unknown option '%s' (amend changes compat and lazy_refcounts)",
				kv);
	}
	return 0;
}

int img_amend_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"force", no_argument, NULL, 'X'},
	    {NULL, 0, NULL, 0},
	};
	struct bdev_amend_opts o = {.compat = -1, .lazy_refcounts = -1};
	const char *fmt = NULL;
	bool have = false;
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":ho:f:t:pq", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			amend_usage(stdout);
			return 0;
		case 'f':
			fmt = optarg;
			break;
		case 'p':
		case 'q':
		case 'X':
			break;
		case 't': /* checked like qemu-img's; the header writes are always flushed */
			if (cli_parse_cache("img amend", "-t", optarg, NULL))
				return 1;
			break;
		case 'o': {
			char *opts = strdup(optarg), *save = NULL;
			int rc = 0;
			if (!opts)
				return cli_fail("img amend: out of memory");
			for (char *kv = strtok_r(opts, ",", &save); kv && !rc;
			     kv = strtok_r(NULL, ",", &save))
				rc = parse_kv(kv, &o);
			free(opts);
			if (rc)
				return rc;
			have = true;
			break;
		}
		default:
			return cli_opt_error("img amend", c, argv, longopts);
		}
	}
	if (!have)
		return cli_usage_fail("img amend", "-o options are required");
	if (optind != argc - 1)
		return cli_usage_fail("img amend", "expected one image file name");
	struct bdev *bs;
	int ret = bdev_open(&bs, argv[optind], fmt, BDEV_O_RDWR | BDEV_O_NO_BACKING);
	if (ret < 0)
		return cli_fail_err(ret);
	ret = bdev_amend(bs, &o);
	if (ret == 0)
		ret = bdev_flush(bs);
	bdev_close(bs);
	return ret < 0 ? cli_fail_err(ret) : 0;
}
