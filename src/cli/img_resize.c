/* `ligero img resize`: grow freely; shrink only with --shrink and only over unused space. */
#include "block/block.h"
#include "cli/cli.h"
#include "util/error.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void resize_usage(FILE *f)
{
	fputs(
	    "usage: ligero img resize [-f fmt] [-q] [--shrink] FILE [+|-]SIZE\n"
	    "Shrinking needs --shrink and is refused when allocated data lies past the new end.\n",
	    f);
}

/* The first allocated data at or after off in this layer, or UINT64_MAX. */
static int data_beyond(struct bdev *bs, uint64_t off, uint64_t *where)
{
	*where = UINT64_MAX;
	while (off < bs->size) {
		struct bdev_extent e;
		int ret = bdev_block_status(bs, off, bs->size - off, &e);
		if (ret < 0)
			return ret;
		if ((e.flags & BDEV_ST_DATA) && !(e.flags & BDEV_ST_ZERO)) {
			*where = off;
			return 0;
		}
		off += e.length;
	}
	return 0;
}

static int new_size(const char *file, const char *arg, uint64_t cur, uint64_t *out)
{
	uint64_t n;
	char sign = arg[0] == '+' || arg[0] == '-' ? arg[0] : 0;

	if (cli_parse_size("size", arg + (sign != 0), &n))
		return 1;
	if (sign == '+') {
		if (n > INT64_MAX - cur)
			return cli_fail("%s: new size is too large", file);
		*out = cur + n;
	} else if (sign == '-') {
		if (n > cur)
			return cli_fail("%s: cannot shrink by %s: the image is only %" PRIu64
					" bytes",
					file, arg + 1, cur);
		*out = cur - n;
	} else {
		*out = n;
	}
	return 0;
}

int img_resize_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"shrink", no_argument, NULL, 'S'},
	    {"preallocation", required_argument, NULL, 'P'},
	    {NULL, 0, NULL, 0},
	};
	const char *fmt = NULL;
	bool shrink = false, quiet = false;
	int c;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		resize_usage(stdout);
		return 0;
	}
	if (argc < 3)
		return cli_fail("img resize: expected FILE [+|-]SIZE (see --help)");
	/* Take the size off first so that "-1G" is not read as an option. */
	const char *size_arg = argv[--argc];
	optind = 1;
	while ((c = getopt_long(argc, argv, "hf:q", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			resize_usage(stdout);
			return 0;
		case 'f':
			fmt = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'S':
			shrink = true;
			break;
		case 'P':
			if (strcmp(optarg, "off"))
				return cli_fail("--preallocation=%s is not supported (only off)",
						optarg);
			break;
		default:
			resize_usage(stderr);
			return 1;
		}
	}
	if (optind != argc - 1)
		return cli_fail("img resize: expected FILE [+|-]SIZE");
	const char *file = argv[optind];
	struct bdev *bs;
	int ret = bdev_open(&bs, file, fmt, BDEV_O_RDWR | BDEV_O_NO_BACKING);
	if (ret < 0)
		return cli_fail_err(ret);
	uint64_t size = 0, where = 0;
	int rc = new_size(file, size_arg, bs->size, &size);
	if (!rc && size < bs->size) {
		if (!shrink)
			rc = cli_fail("%s: shrinking from %" PRIu64 " to %" PRIu64 " bytes needs "
				      "--shrink",
				      file, bs->size, size);
		else if ((ret = data_beyond(bs, size, &where)) < 0)
			rc = cli_fail_err(ret);
		else if (where != UINT64_MAX)
			rc = cli_fail("%s: refusing to shrink to %" PRIu64 " bytes: allocated data "
				      "at offset %" PRIu64 " would be lost (nothing was changed)",
				      file, size, where);
	}
	if (!rc && size != bs->size) {
		ret = bdev_truncate(bs, size);
		if (ret == 0)
			ret = bdev_flush(bs);
		if (ret < 0)
			rc = cli_fail_err(ret);
	}
	bdev_close(bs);
	if (!rc && !quiet)
		printf("Image resized.\n");
	return rc;
}
