/* `ligero img commit`: write an overlay's data into its backing file (or a lower base). */
#include "block/block.h"
#include "cli/cli.h"
#include "tools/chain.h"
#include "util/error.h"
#include "util/progress.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void commit_usage(FILE *f)
{
	fputs("usage: ligero img commit [-f fmt] [-t cache] [-b base] [-r rate] [-d] [-p] [-q] "
	      "FILE\n"
	      "  -b BASE  commit into BASE, a lower image of FILE's chain (implies -d)\n"
	      "  -d       do not empty FILE afterwards\n"
	      "  -t, -r   checked as qemu-img checks them; writes are always flushed, never\n"
	      "           rate-limited\n",
	      f);
}

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
	progress_update(opaque, done, total);
}

/* The layer of top's chain that is the file base names. */
static struct bdev *find_base(struct bdev *top, const char *base)
{
	struct stat want, st;

	if (stat(base, &want) < 0)
		return NULL;
	for (struct bdev *b = top->backing; b; b = b->backing)
		if (fstat(b->fd, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino)
			return b;
	return NULL;
}

int img_commit_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *fmt = NULL, *base_name = NULL;
	bool keep = false, prog_asked = false, quiet = false;
	uint64_t rate;
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":f:ht:b:dpqr:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			commit_usage(stdout);
			return 0;
		case 'f':
			fmt = optarg;
			break;
		case 'b':
			base_name = optarg;
			keep = true;
			break;
		case 'd':
			keep = true;
			break;
		case 'p':
			prog_asked = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 't':
			if (cli_parse_cache("img commit", "-t", optarg, NULL))
				return 1;
			break;
		case 'r':
			if (cli_parse_size("img commit: -r", optarg, &rate))
				return 1;
			break;
		default:
			return cli_opt_error("img commit", c, argv, longopts);
		}
	}
	if (optind != argc - 1)
		return cli_usage_fail("img commit", "expected one image file name");
	const char *file = argv[optind];
	struct bdev *top;
	int ret = bdev_open(&top, file, fmt, keep ? 0 : BDEV_O_RDWR);
	if (ret < 0)
		return cli_fail_err(ret);
	struct bdev *base = top->backing;
	int rc = 0;
	if (!base) {
		rc = cli_fail("%s: has no backing file to commit into", file);
	} else if (base_name && !(base = find_base(top, base_name))) {
		rc = cli_fail("%s: '%s' is not in its backing chain", file, base_name);
	} else if ((ret = bdev_reopen_rw(base, BDEV_O_BASE_WRITE)) < 0) {
		rc = cli_fail_err(ret);
	}
	if (!rc) {
		struct progress prog;
		progress_catch_signals();
		progress_init(&prog, prog_asked, quiet);
		struct chain_progress p = {on_progress, &prog, progress_stop_flag()};
		ret = chain_commit(top, base, !keep, &p);
		progress_end(&prog);
		progress_release_signals();
		if (ret < 0)
			rc = cli_fail_err(ret);
	}
	bdev_close(top);
	if (!rc && !quiet)
		printf("Image committed.\n");
	return rc;
}
