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
		return cli_usage_fail("img resize", "expected FILE [+|-]SIZE");
	/* As qemu-img does: the size is the last argument, taken off before the options are
	 * parsed, so that "-1G" is not read as an option (and "FILE +1G -q" is refused). */
	const char *size_arg = argv[--argc];
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":hf:q", longopts, NULL)) != -1) {
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
				return cli_usage_fail(
				    "img resize", "--preallocation=%s is not supported (only off)",
				    optarg);
			break;
		default:
			return cli_opt_error("img resize", c, argv, longopts);
		}
	}
	if (optind != argc - 1)
		return cli_usage_fail("img resize", "expected FILE [+|-]SIZE");
	const char *file = argv[optind];
	struct bdev *bs;
	int ret = bdev_open(&bs, file, fmt, BDEV_O_RDWR | BDEV_O_NO_BACKING);
	if (ret < 0)
		return cli_fail_err(ret);
	uint64_t size = 0;
	int rc = new_size(file, size_arg, bs->size, &size);
	if (!rc && (ret = bdev_resize(bs, size, shrink ? BDEV_RESIZE_SHRINK : 0)) < 0)
		rc = cli_fail_err(ret);
	bdev_close(bs);
	if (!rc && !quiet)
		printf("Image resized.\n");
	return rc;
}
