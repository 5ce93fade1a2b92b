/* `ligero img compare`: exit 0 identical, 1 different, 2 error (qemu-img's codes). */
#include "block/block.h"
#include "cli/cli.h"
#include "tools/compare.h"
#include "util/error.h"
#include "util/progress.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

static void compare_usage(FILE *f)
{
	fputs("usage: ligero img compare [-f fmt] [-F fmt] [-T cache] [-s] [-p] [-q] [-U] FILE1 "
	      "FILE2\n"
	      "exit status: 0 identical, 1 different, 2 error\n"
	      "  -s  strict: sizes and allocation status must match too\n",
	      f);
}

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
	progress_update(opaque, done, total);
}

static int report(int ret, bool quiet, uint64_t where)
{
	switch (ret) {
	case COMPARE_IDENTICAL:
		if (!quiet)
			printf("Images are identical.\n");
		return 0;
	case COMPARE_MISMATCH:
		if (!quiet)
			printf("Content mismatch at offset %" PRIu64 "!\n", where);
		return 1;
	case COMPARE_SIZE_MISMATCH:
		if (!quiet)
			printf("Strict mode: Image size mismatch!\n");
		return 1;
	case COMPARE_STATUS_MISMATCH:
		if (!quiet)
			printf("Strict mode: Offset %" PRIu64 " block status mismatch!\n", where);
		return 1;
	}
	cli_fail_err(ret);
	return 2;
}

int img_compare_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"force-share", no_argument, NULL, 'U'},
	    {NULL, 0, NULL, 0},
	};
	const char *fmt1 = NULL, *fmt2 = NULL;
	struct compare_opts o = {0};
	bool quiet = false, share = false, prog_asked = false;
	int c;

	/* Errors exit with 2 (1 means the images differ), though qemu-img exits 1 for a bad
	 * command line. */
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":hf:F:T:pqsU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			compare_usage(stdout);
			return 0;
		case 'f':
			fmt1 = optarg;
			break;
		case 'F':
			fmt2 = optarg;
			break;
		case 's':
			o.strict = true;
			break;
		case 'p':
			prog_asked = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'U':
			share = true;
			break;
		case 'T': /* checked like qemu-img's; reads go through the page cache */
			if (cli_parse_cache("img compare", "-T", optarg, NULL))
				return 2;
			break;
		default:
			cli_opt_error("img compare", c, argv, longopts);
			return 2;
		}
	}
	if (optind != argc - 2) {
		cli_usage_fail("img compare", "expected two image file names");
		return 2;
	}
	struct bdev *a, *b;
	int flags = share ? BDEV_O_FORCE_SHARE : 0;
	int ret = bdev_open(&a, argv[optind], fmt1, flags);
	if (ret < 0) {
		cli_fail_err(ret);
		return 2;
	}
	ret = bdev_open(&b, argv[optind + 1], fmt2, flags);
	if (ret < 0) {
		bdev_close(a);
		cli_fail_err(ret);
		return 2;
	}
	cli_warn_open(a);
	cli_warn_open(b);
	struct progress prog;
	progress_catch_signals();
	o.stop = progress_stop_flag();
	progress_init(&prog, prog_asked, quiet);
	o.progress = on_progress;
	o.opaque = &prog;
	uint64_t where = 0;
	if (a->size != b->size && !o.strict && !quiet)
		printf("Warning: Image size mismatch!\n");
	ret = compare_images(a, b, &o, &where);
	progress_end(&prog);
	progress_release_signals();
	bdev_close(a);
	bdev_close(b);
	return report(ret, quiet, where);
}
