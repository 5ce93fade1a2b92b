/* `ligero img convert`: qemu-img convert's flags; the copying is tools/convert.c. */
#include "block/block.h"
#include "cli/cli.h"
#include "tools/convert.h"
#include "util/error.h"
#include "util/progress.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SOURCES 256

struct convert_args {
	const char *fmt, *out_fmt, *backing, *backing_fmt, *dst;
	char **srcs;
	int nsrc;
	struct bdev_create_opts create;
	struct convert_opts conv;
	bool progress, quiet, no_create, force, share, target_is_zero;
	int cache_flags;    /* -t: BDEV_O_* for the destination */
	char *opt_bufs[16]; /* -o strings: option values point into them */
	int nopt_bufs;
};

static void convert_usage(FILE *f)
{
	fputs(
	    "usage: ligero img convert [-f fmt] [-O fmt] [-c] [-o options] [-B backing [-F fmt]]\n"
	    "                          [-S size] [-p] [-q] [-m N] [-W] [-n] [--target-is-zero]\n"
	    "                          [-t cache] [-T cache] [-r rate] [-U] [--force] [--salvage]\n"
	    "                          SRC [SRC...] DST\n"
	    "\n"
	    "  -c              compress clusters (qcow2; -o compression_type=zlib|zstd)\n"
	    "  -B FILE         the output gets FILE as backing file; only what differs from it\n"
	    "                  is written\n"
	    "  -S SIZE         zero runs this long become unallocated (default 4k; 0: none)\n"
	    "  -m N            parallel work, as qemu-img's: N compression threads (default:\n"
	    "                  online CPUs, at most 64) and N/2 source reads of 4 MiB in\n"
	    "                  flight (qemu-img's N of 2 MiB; default 4, at most 8)\n"
	    "  -n              write into an existing DST (no creation)\n"
	    "  -t CACHE        DST cache mode: unsafe (default, as qemu-img), writeback,\n"
	    "                  writethrough, none, directsync\n"
	    "  -T CACHE, -r RATE  checked as qemu-img checks them; sources are read through\n"
	    "                  the page cache, the copy is not rate-limited\n"
	    "  --force         replace an existing DST\n"
	    "  --salvage       take source sectors that cannot be read as zeroes (with a\n"
	    "                  warning for each range) instead of failing\n"
	    "Several sources are concatenated. -o takes img create's options.\n",
	    f);
}

static int parse_create_options(struct convert_args *a, const char *arg)
{
	char *opts, *save = NULL;

	if (a->nopt_bufs == (int)(sizeof(a->opt_bufs) / sizeof(a->opt_bufs[0])))
		return cli_fail("too many -o options");
	opts = strdup(arg);
	if (!opts)
		return cli_fail("out of memory");
	/* Values (backing names) point into opts: freed when the command ends. */
	a->opt_bufs[a->nopt_bufs++] = opts;
	for (char *kv = strtok_r(opts, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		uint64_t size;
		bool has_size = false;
		int r = cli_create_option(kv, &a->create, &a->backing_fmt, &a->backing, &size,
					  &has_size);
		if (r)
			return r;
		if (has_size)
			return cli_fail("option size: the output's size is the sources' size");
	}
	return 0;
}

/* -m: a count; its upper limit is the copy engine's (convert_opts_check). */
static int parse_workers(const char *s, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || end == s || *end || n < 1 || n > INT32_MAX)
		return cli_usage_fail("img convert", "-m '%s': not a number of threads", s);
	*out = (int)n;
	return 0;
}

static int parse_args(int argc, char **argv, struct convert_args *a)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},	     {"force", no_argument, NULL, 'X'},
	    {"force-share", no_argument, NULL, 'U'}, {"target-is-zero", no_argument, NULL, 'Z'},
	    {"salvage", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0},
	};
	uint64_t rate;
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'h':
			convert_usage(stdout);
			return -1;
		case 'f':
			a->fmt = optarg;
			break;
		case 'O':
			a->out_fmt = optarg;
			break;
		case 'B':
			a->backing = optarg;
			break;
		case 'F':
			a->backing_fmt = optarg;
			break;
		case 'c':
			a->conv.compress = true;
			break;
		case 'p':
			a->progress = true;
			break;
		case 'q':
			a->quiet = a->conv.quiet = true;
			break;
		case 'n':
			a->no_create = true;
			break;
		case 'U':
			a->share = true;
			break;
		case 'X':
			a->force = true;
			break;
		case 'Z':
			a->target_is_zero = true;
			break;
		case 'V':
			a->conv.salvage = true;
			break;
		case 'W':
			break; /* writes are always pipelined; the output stays in order */
		case 'C':
			break; /* copy offloading: nothing to offload to */
		case 't':
			if (cli_parse_cache("img convert", "-t", optarg, &a->cache_flags))
				return 1;
			/* as the default (img_convert_main): whole clusters go around the cache */
			if (a->cache_flags & BDEV_O_UNSAFE)
				a->cache_flags |= BDEV_O_BULK_DIRECT;
			break;
		case 'T': /* checked like qemu-img's; sources are read through the page cache */
			if (cli_parse_cache("img convert", "-T", optarg, NULL))
				return 1;
			break;
		case 'r': /* checked like qemu-img's; the copy is not rate-limited */
			if (cli_parse_size("img convert: -r", optarg, &rate))
				return 1;
			break;
		case 'o':
			if (parse_create_options(a, optarg))
				return 1;
			break;
		case 'S': /* its limits are the copy engine's (convert_opts_check) */
			if (cli_parse_size("img convert: -S", optarg, &a->conv.min_sparse))
				return 1;
			break;
		case 'm':
			if (parse_workers(optarg, &a->conv.workers))
				return 1;
			/* as many bytes in flight as qemu-img's N requests of 2 MiB */
			a->conv.readers = a->conv.workers / 2 + a->conv.workers % 2;
			break;
		case 'l':
			return cli_usage_fail(
			    "img convert",
			    "-l: converting from an internal snapshot is not supported");
		default:
			return cli_opt_error("img convert", c, argv, longopts);
		}
	}
	if (argc - optind < 2)
		return cli_usage_fail("img convert", "expected SRC... DST");
	if (argc - optind - 1 > MAX_SOURCES)
		return cli_usage_fail("img convert", "at most %d sources", MAX_SOURCES);
	a->srcs = argv + optind;
	a->nsrc = argc - optind - 1;
	a->dst = argv[argc - 1];
	return 0;
}

/* Everything that can be refused is refused here, before anything is created or written. */
static int validate(struct convert_args *a)
{
	struct stat st;
	int ret = convert_opts_check(&a->conv);

	if (ret < 0)
		return cli_usage_fail("img convert", "%s", err_msg_or(ret));
	if (!bdev_find_driver(a->out_fmt))
		return cli_fail("%s: unknown output format '%s' (known: qcow2, raw)", a->dst,
				a->out_fmt);
	if (a->fmt && !bdev_find_driver(a->fmt))
		return cli_fail("unknown source format '%s' (known: qcow2, raw, parallels, ploop)",
				a->fmt);
	bool raw = !strcmp(a->out_fmt, "raw");
	if (raw && a->conv.compress)
		return cli_fail("%s: format raw does not support compression (-c)", a->dst);
	if (cli_check_format_options(a->out_fmt, a->dst, &a->create))
		return 1;
	if (raw && a->backing)
		return cli_fail("%s: format raw has no backing file (-B)", a->dst);
	if (a->backing_fmt && !a->backing)
		return cli_fail("%s: -F needs a backing file (-B)", a->dst);
	if (a->backing && !*a->backing)
		return cli_fail("%s: empty backing file name", a->dst);
	if (a->conv.compress && a->create.prealloc != BDEV_PREALLOC_OFF)
		return cli_fail("%s: compression (-c) and preallocation cannot be combined",
				a->dst);
	if (a->target_is_zero && !a->no_create)
		return cli_fail("%s: --target-is-zero needs -n", a->dst);
	if (a->no_create && a->backing)
		return cli_fail("%s: -B cannot be used with -n (an existing target keeps its own "
				"backing file)",
				a->dst);
	const struct bdev_create_opts *o = &a->create;
	if (a->no_create && (o->cluster_size || o->compat || o->compression_type ||
			     o->lazy_refcounts || o->refcount_bits || o->prealloc))
		return cli_fail("%s: -o creation options cannot be used with -n", a->dst);
	/* A remote destination (an NBD export) always exists and is written in place. */
	bool remote = bdev_is_remote_name(a->dst);
	bool exists = !remote && stat(a->dst, &st) == 0;
	if (a->no_create && !exists && !remote)
		return cli_fail("%s: does not exist (-n writes into an existing image)", a->dst);
	if (exists && !a->no_create && !a->force)
		return cli_fail("%s: destination exists (use -n to write into it, or --force to "
				"replace it)",
				a->dst);
	for (int i = 0; i < a->nsrc; i++) {
		struct stat ss;
		if (bdev_is_remote_name(a->srcs[i]))
			continue;
		if (stat(a->srcs[i], &ss) < 0)
			return cli_fail("%s: could not open: %s", a->srcs[i], strerror(errno));
		if (exists && ss.st_dev == st.st_dev && ss.st_ino == st.st_ino)
			return cli_fail("%s: destination is also a source", a->dst);
	}
	return 0;
}

static void close_all(struct bdev **src, int n)
{
	for (int i = 0; i < n; i++)
		bdev_close(src[i]);
}

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
	progress_update(opaque, done, total);
}

static int open_destination(struct convert_args *a, uint64_t total, struct bdev **dst,
			    bool *created)
{
	int ret;

	if (!a->no_create) {
		a->create.size = total;
		a->create.backing_file = a->backing;
		a->create.backing_fmt = a->backing_fmt;
		a->create.force = a->force;
		ret = bdev_create(a->dst, a->out_fmt, &a->create);
		if (ret < 0)
			return cli_fail_err(ret);
		/* an NBD export is not new, nor zeroed; a new RBD image is both */
		*created = !bdev_is_remote_name(a->dst) || bdev_remote_create_is_new(a->dst);
	}
	ret =
	    bdev_open(dst, a->dst, a->no_create ? NULL : a->out_fmt, BDEV_O_RDWR | a->cache_flags);
	if (ret < 0)
		return cli_fail_err(ret);
	if (a->no_create && a->conv.compress && !bdev_cluster_size(*dst)) {
		bdev_close(*dst);
		return cli_fail("%s: format %s does not support compression (-c)", a->dst,
				(*dst)->drv->name);
	}
	return 0;
}

/* The copy reads whole clusters of the sources through a mapping of their files (see
 * tools/convert.c). A source that shrinks underneath it (another program truncating it; sources
 * are read-locked, but -U lifts that) turns the next access into SIGBUS: end with one line and
 * remove the destination if this run created it, rather than crash and leave half a file. Only
 * async-signal-safe calls here. */
static const char *bus_dst, *bus_src;
static volatile sig_atomic_t bus_created;
static int bus_seen; /* the first thread to fault reports; others wait for its _exit */

static void say(const char *s)
{
	if (write(2, s, strlen(s)) < 0) {
		/* stderr is gone: nothing more to say */
	}
}

static void on_sigbus(int sig)
{
	(void)sig;
	/* Several threads (readers, compressors) may fault on the same shrunk mapping at once:
	 * one line, from the first. */
	if (__atomic_exchange_n(&bus_seen, 1, __ATOMIC_SEQ_CST))
		for (;;)
			pause();
	say("ligero: ");
	say(bus_src ? bus_src : "a source file");
	say(" shrank while it was being read (SIGBUS); ");
	say(bus_created ? "removed the partial image " : "partial copy in ");
	say(bus_dst);
	say("\n");
	if (bus_created)
		unlink(bus_dst);
	_exit(1);
}

static int run(struct convert_args *a, struct bdev **src)
{
	struct bdev *dst = NULL;
	struct progress prog;
	bool created = false;
	uint64_t total = 0;
	int rc, ret;

	for (int i = 0; i < a->nsrc; i++)
		total += src[i]->size;
	/* Catch Ctrl-C before the destination exists, so a created one is always removed. */
	progress_catch_signals();
	a->conv.stop = progress_stop_flag();
	rc = open_destination(a, total, &dst, &created);
	if (rc)
		goto out;
	bus_dst = a->dst;
	bus_src = a->nsrc == 1 ? a->srcs[0] : NULL;
	bus_created = created;
	struct sigaction sa = {.sa_handler = on_sigbus}, old_bus;
	sigaction(SIGBUS, &sa, &old_bus);
	a->conv.diff_target = dst->backing != NULL;
	a->conv.target_is_zero = a->target_is_zero || (created && !dst->backing);
	progress_init(&prog, a->progress, a->quiet);
	a->conv.progress = on_progress;
	a->conv.opaque = &prog;
	ret = convert_run(src, a->nsrc, dst, &a->conv);
	sigaction(SIGBUS, &old_bus, NULL);
	progress_end(&prog);
	bdev_close(dst);
	if (ret == -EINTR)
		rc = cli_fail("%s: interrupted; %s", a->dst,
			      created ? "removed the partial image"
				      : "it is consistent but holds a partial copy");
	else if (ret < 0)
		rc = cli_fail_err(ret);
out:
	if (rc && created)
		unlink(a->dst);
	progress_release_signals();
	return rc;
}

/* The destination's default cache mode is unsafe, as qemu-img's: a crash mid-convert leaves an
 * unusable destination whatever the flushes, so convert does not pay for them (writeback
 * flushes when done and at the driver's metadata barriers); whole clusters go around the page
 * cache. */
int img_convert_main(int argc, char **argv)
{
	struct convert_args a = {.out_fmt = "raw",
				 .conv.min_sparse = 4096,
				 .cache_flags = BDEV_O_UNSAFE | BDEV_O_BULK_DIRECT};
	struct bdev *src[MAX_SOURCES];
	int rc = parse_args(argc, argv, &a), n = 0;

	if (rc == 0)
		rc = validate(&a);
	while (rc == 0 && n < a.nsrc) {
		int ret = bdev_open(&src[n], a.srcs[n], a.fmt, a.share ? BDEV_O_FORCE_SHARE : 0);
		if (ret < 0)
			rc = cli_fail_err(ret);
		else
			cli_warn_open(src[n++]);
	}
	if (rc == 0)
		rc = run(&a, src);
	close_all(src, n);
	for (int i = 0; i < a.nopt_bufs; i++)
		free(a.opt_bufs[i]);
	return rc < 0 ? 0 : rc;
}
