/* `ligero img rebase`: put an image on another backing file, keeping what the guest reads
 * (safe mode), or only rewrite the header (-u). -b "" removes the backing file. */
#include "block/block.h"
#include "cli/cli.h"
#include "tools/chain.h"
#include "util/error.h"
#include "util/progress.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void rebase_usage(FILE *f)
{
	fputs(
	    "usage: ligero img rebase [-f fmt] [-t cache] [-T cache] [-U] [-p] [-q] [-u]\n"
	    "                         -b BACKING [-F fmt] FILE\n"
	    "  -u          unsafe: only rewrite the backing file name in the header (without -b:\n"
	    "              remove it)\n"
	    "  -b \"\"       flatten: copy everything the old backing files provide\n"
	    "  -t, -T      checked as qemu-img checks them; writes are always flushed\n"
	    "BACKING is relative to FILE's directory, as it will be recorded.\n",
	    f);
}

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
	progress_update(opaque, done, total);
}

struct rebase_args {
	const char *fmt, *backing, *bfmt, *file;
	bool unsafe, share, prog_asked, quiet;
};

static int parse(int argc, char **argv, struct rebase_args *a)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"force-share", no_argument, NULL, 'U'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":hf:F:b:upt:T:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			rebase_usage(stdout);
			return -1;
		case 'f':
			a->fmt = optarg;
			break;
		case 'b':
			a->backing = optarg;
			break;
		case 'F':
			a->bfmt = optarg;
			break;
		case 'u':
			a->unsafe = true;
			break;
		case 'p':
			a->prog_asked = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case 'U':
			a->share = true;
			break;
		case 't':
		case 'T':
			if (cli_parse_cache("img rebase", c == 't' ? "-t" : "-T", optarg, NULL))
				return 1;
			break;
		default:
			return cli_opt_error("img rebase", c, argv, longopts);
		}
	}
	if (optind != argc - 1)
		return cli_usage_fail("img rebase", "expected one image file name");
	a->file = argv[optind];
	if (!a->backing && !a->unsafe)
		return cli_usage_fail("img rebase", "-b BACKING is required without -u (-b \"\" "
						    "removes the backing file)");
	if (!a->backing)
		a->backing = ""; /* -u alone: as qemu-img, remove the backing file */
	if (a->bfmt && !bdev_find_driver(a->bfmt))
		return cli_fail("%s: unknown backing format '%s'", a->file, a->bfmt);
	return 0;
}

/* The format to record: -F, or what the new backing file's content shows. */
static int backing_format(struct rebase_args *a, const char *path, const char **fmt)
{
	*fmt = a->bfmt;
	if (*fmt || !*a->backing)
		return 0;
	int ret = bdev_probe_file(path, fmt);
	return ret < 0 ? cli_fail_err(ret) : 0;
}

static int run_safe(struct rebase_args *a, struct bdev *img, const char *path, const char *fmt)
{
	struct bdev *nb = NULL;
	int ret;

	if (*a->backing) {
		ret = bdev_open(&nb, path, fmt, a->share ? BDEV_O_FORCE_SHARE : 0);
		if (ret < 0)
			return cli_fail_err(ret);
	}
	struct progress prog;
	progress_catch_signals();
	progress_init(&prog, a->prog_asked, a->quiet);
	struct chain_progress p = {on_progress, &prog, progress_stop_flag()};
	ret = chain_rebase(img, nb, *a->backing ? a->backing : NULL, *a->backing ? fmt : NULL, &p);
	progress_end(&prog);
	progress_release_signals();
	bdev_close(nb);
	return ret < 0 ? cli_fail_err(ret) : 0;
}

int img_rebase_main(int argc, char **argv)
{
	struct rebase_args a = {0};
	int rc = parse(argc, argv, &a);

	if (rc)
		return rc < 0 ? 0 : rc;
	char *path = *a.backing ? bdev_resolve_backing(a.file, a.backing) : NULL;
	const char *fmt = NULL;
	if (*a.backing && !path)
		return cli_fail("out of memory");
	rc = backing_format(&a, path, &fmt);
	struct bdev *img = NULL;
	int ret = 0;
	if (!rc) {
		ret = bdev_open(&img, a.file, a.fmt,
				BDEV_O_RDWR | (a.unsafe ? BDEV_O_NO_BACKING : 0));
		if (ret < 0)
			rc = cli_fail_err(ret);
	}
	if (!rc && a.unsafe) {
		ret = bdev_set_backing(img, *a.backing ? a.backing : NULL, fmt);
		if (ret < 0)
			rc = cli_fail_err(ret);
	} else if (!rc) {
		rc = run_safe(&a, img, path, fmt);
	}
	bdev_close(img);
	free(path);
	return rc;
}
