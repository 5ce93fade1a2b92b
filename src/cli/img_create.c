/* `ligero img create`: qemu-img create's flags and -o options. */
#include "block/block.h"
#include "cli/cli.h"
#include "util/error.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void create_usage(FILE *f)
{
	fputs("usage: ligero img create [-q] [-f fmt] [-b backing [-F backing_fmt]] [-u]\n"
	      "                         [-o option[,option...]] [--force] FILE [SIZE]\n"
	      "\n"
	      "options (-o) for qcow2:\n"
	      "  cluster_size=SIZE         512 to 2M, power of two (default 64k)\n"
	      "  compat=0.10|1.1           image version (default 1.1)\n"
	      "  compression_type=zlib|zstd\n"
	      "  lazy_refcounts=on|off     refcounts updated lazily (1.1 only)\n"
	      "  refcount_bits=N           1, 2, 4, 8, 16, 32 or 64 (default 16)\n"
	      "  preallocation=off|metadata|falloc|full\n"
	      "  backing_file=FILE, backing_fmt=FMT, size=SIZE\n"
	      "for raw: preallocation=off|falloc|full, size=SIZE\n"
	      "\n"
	      "SIZE defaults to the backing file's size. Without -F the backing file's format\n"
	      "is probed once, now, and recorded in the new image.\n",
	      f);
}

int cli_parse_compat(const char *v, int *out)
{
	if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
		*out = 2;
	else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
		*out = 3;
	else
		return cli_fail("compat '%s' is not 0.10 or 1.1", v);
	return 0;
}

int cli_parse_onoff(const char *key, const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no"))
		*out = false;
	else
		return cli_fail("option %s: '%s' is not on or off", key, v);
	return 0;
}

int cli_create_option(char *kv, struct bdev_create_opts *o, const char **fmt_backing,
		      const char **backing, uint64_t *size, bool *has_size)
{
	char *v = strchr(kv, '=');
	uint64_t n;

	if (!v)
		return cli_fail("option '%s' needs a value (key=value)", kv);
	*v++ = '\0';
	if (!strcmp(kv, "cluster_size")) {
		if (cli_parse_size("cluster_size", v, &n))
			return 1;
		if (n > UINT32_MAX)
			return cli_fail("cluster_size '%s' is too large", v);
		o->cluster_size = (uint32_t)n;
	} else if (!strcmp(kv, "compat")) {
		return cli_parse_compat(v, &o->compat);
	} else if (!strcmp(kv, "compression_type")) {
		if (!strcmp(v, "zlib"))
			o->compression_type = 0;
		else if (!strcmp(v, "zstd"))
			o->compression_type = 1;
		else
			return cli_fail("compression_type '%s' is not zlib or zstd", v);
	} else if (!strcmp(kv, "lazy_refcounts")) {
		return cli_parse_onoff(kv, v, &o->lazy_refcounts);
	} else if (!strcmp(kv, "refcount_bits")) {
		char *end;
		long r = strtol(v, &end, 10);
		if (*end || r < 1 || r > 64)
			return cli_fail("refcount_bits '%s' is not a power of two from 1 to 64", v);
		o->refcount_bits = (int)r;
	} else if (!strcmp(kv, "preallocation")) {
		if (!strcmp(v, "off"))
			o->prealloc = BDEV_PREALLOC_OFF;
		else if (!strcmp(v, "metadata"))
			o->prealloc = BDEV_PREALLOC_METADATA;
		else if (!strcmp(v, "falloc"))
			o->prealloc = BDEV_PREALLOC_FALLOC;
		else if (!strcmp(v, "full"))
			o->prealloc = BDEV_PREALLOC_FULL;
		else
			return cli_fail("preallocation '%s' is not off, metadata, falloc or full",
					v);
	} else if (!strcmp(kv, "backing_file")) {
		*backing = v;
	} else if (!strcmp(kv, "backing_fmt")) {
		*fmt_backing = v;
	} else if (!strcmp(kv, "size")) {
		if (cli_parse_size("size", v, size))
			return 1;
		*has_size = true;
	} else if (!strcmp(kv, "extended_l2")) {
		bool on;
		if (cli_parse_onoff(kv, v, &on))
			return 1;
		if (on)
			return cli_fail("extended_l2=on is not supported");
	} else {
		return cli_fail("unknown option '%s' (see 'ligero img create --help')", kv);
	}
	return 0;
}

int cli_check_format_options(const char *fmt, const char *file, const struct bdev_create_opts *o)
{
	if (strcmp(fmt, "raw"))
		return 0;
	if (o->cluster_size || o->compat || o->compression_type || o->lazy_refcounts ||
	    o->refcount_bits || o->prealloc == BDEV_PREALLOC_METADATA)
		return cli_fail("%s: format raw has no such option (cluster_size, compat, "
				"compression_type, lazy_refcounts, refcount_bits, "
				"preallocation=metadata are qcow2 options)",
				file);
	return 0;
}

int img_create_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"force", no_argument, NULL, 'O'},
	    {NULL, 0, NULL, 0},
	};
	struct bdev_create_opts o = {0};
	const char *fmt = "raw", *backing = NULL, *bfmt = NULL;
	uint64_t size = 0;
	bool has_size = false, quiet = false;
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			create_usage(stdout);
			return 0;
		case 'q':
			quiet = true;
			break;
		case 'f':
			fmt = optarg;
			break;
		case 'b':
			backing = optarg;
			break;
		case 'F':
			bfmt = optarg;
			break;
		case 'u':
			break; /* the backing file is always checked; kept for qemu-img habits */
		case 'O':
			o.force = true;
			break;
		case 'o': {
			/* Split argv's own string in place: the backing names point into it, and
			 * it lives as long as the process. */
			char *save = NULL;
			for (char *kv = strtok_r(optarg, ",", &save); kv;
			     kv = strtok_r(NULL, ",", &save)) {
				if (!strcmp(kv, "help")) {
					create_usage(stdout);
					return 0;
				}
				int r =
				    cli_create_option(kv, &o, &bfmt, &backing, &size, &has_size);
				if (r)
					return r;
			}
			break;
		}
		default:
			return cli_opt_error("img create", c, argv, longopts);
		}
	}
	if (optind >= argc)
		return cli_usage_fail("img create", "expected FILE [SIZE]");
	const char *file = argv[optind++];
	if (optind < argc) {
		if (cli_parse_size("size", argv[optind++], &size))
			return 1;
		has_size = true;
	}
	if (optind < argc)
		return cli_usage_fail("img create", "unexpected argument '%s'", argv[optind]);
	if (!has_size && !backing)
		return cli_fail("%s: no size given (and no backing file to take it from)", file);
	if (bfmt && !backing)
		return cli_fail("%s: -F needs a backing file (-b)", file);
	if (!bdev_find_driver(fmt))
		return cli_fail("%s: unknown format '%s' (known: qcow2, raw)", file, fmt);
	if (cli_check_format_options(fmt, file, &o))
		return 1;
	o.size = size;
	o.backing_file = backing;
	o.backing_fmt = bfmt;
	if (backing && !*backing)
		return cli_fail("%s: empty backing file name", file);
	int ret = bdev_create(file, fmt, &o);
	if (ret < 0)
		return cli_fail_err(ret);
	if (!quiet) {
		struct bdev *bs;
		if (bdev_open(&bs, file, fmt, BDEV_O_NO_BACKING | BDEV_O_FORCE_SHARE) == 0) {
			printf("Formatting '%s', fmt=%s size=%" PRIu64, file, fmt, bs->size);
			if (bs->backing_name)
				printf(" backing_file=%s", bs->backing_name);
			if (bs->backing_fmt)
				printf(" backing_fmt=%s", bs->backing_fmt);
			printf("\n");
			bdev_close(bs);
		}
	}
	return 0;
}
