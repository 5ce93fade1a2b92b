/*
 * `ligero img check`: qemu-img check's flags, output and exit codes.
 *
 * Exit codes: 0 no problem left (or all repaired), 1 the check could not run (or hit internal
 * errors), 2 corruptions remain, 3 only leaked clusters remain, 63 the format has no check.
 */
#include "block/block.h"
#include "cli/cli.h"
#include "util/error.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct check_opts {
	const char *fmt;
	int fix;
	bool json, quiet;
	int flags;
};

/*
 * qemu-img prints a QDict, whose order is its hash buckets'. This is that order for these keys;
 * zero-valued optional counters are left out, as qemu-img leaves them out.
 */
static void print_json(const char *filename, const char *format, const struct bdev_check_result *r)
{
	const struct {
		const char *key;
		int64_t val;
		bool optional;
	} keys[] = {
	    {"image-end-offset", (int64_t)r->image_end_offset, true},
	    {"compressed-clusters", (int64_t)r->compressed_clusters, true},
	    {"total-clusters", (int64_t)r->total_clusters, true},
	    {"corruptions", r->corruptions, true},
	    {"corruptions-fixed", r->corruptions_fixed, true},
	    {"check-errors", r->check_errors, false},
	    {"leaks", r->leaks, true},
	    {"leaks-fixed", r->leaks_fixed, true},
	    {"allocated-clusters", (int64_t)r->allocated_clusters, true},
	    {"filename", 0, false},
	    {"format", 0, false},
	    {"fragmented-clusters", (int64_t)r->fragmented_clusters, true},
	};
	const char *sep = "{\n";

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (keys[i].optional && !keys[i].val)
			continue;
		printf("%s    \"%s\": ", sep, keys[i].key);
		sep = ",\n";
		if (!strcmp(keys[i].key, "filename"))
			cli_json_string(stdout, filename);
		else if (!strcmp(keys[i].key, "format"))
			cli_json_string(stdout, format);
		else
			printf("%" PRId64, keys[i].val);
	}
	printf("\n}\n");
}

static void print_human(const struct bdev_check_result *r)
{
	if (!r->corruptions && !r->leaks && !r->check_errors) {
		printf("No errors were found on the image.\n");
	} else {
		if (r->corruptions)
			printf("\n%" PRId64 " errors were found on the image.\n"
			       "Data may be corrupted, or further writes to the image may corrupt "
			       "it.\n",
			       r->corruptions);
		if (r->leaks)
			printf("\n%" PRId64 " leaked clusters were found on the image.\n"
			       "This means waste of disk space, but no harm to data.\n",
			       r->leaks);
		if (r->check_errors)
			printf("\n%" PRId64 " internal errors have occurred during the check.\n",
			       r->check_errors);
	}
	if (r->total_clusters && r->allocated_clusters)
		printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% "
		       "compressed clusters\n",
		       r->allocated_clusters, r->total_clusters,
		       (double)r->allocated_clusters * 100.0 / (double)r->total_clusters,
		       (double)r->fragmented_clusters * 100.0 / (double)r->allocated_clusters,
		       (double)r->compressed_clusters * 100.0 / (double)r->allocated_clusters);
	if (r->image_end_offset)
		printf("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

static void usage(FILE *f)
{
	fputs("usage: ligero img check [-f fmt] [-r leaks|all] [-T cache] [--output=human|json] "
	      "[-U]\n"
	      "                        [-q] FILE\n",
	      f);
}

static int parse_args(int argc, char **argv, struct check_opts *o)
{
	static const struct option longopts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"repair", required_argument, NULL, 'r'},
	    {"output", required_argument, NULL, 'O'},
	    {"force-share", no_argument, NULL, 'U'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":hf:r:T:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->fmt = optarg;
			break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				o->fix = BDEV_CHECK_FIX_LEAKS;
			else if (!strcmp(optarg, "all"))
				o->fix = BDEV_CHECK_FIX_LEAKS | BDEV_CHECK_FIX_ERRORS;
			else
				return cli_usage_fail("img check",
						      "-r '%s': expected 'leaks' or 'all'", optarg);
			break;
		case 'O':
			if (strcmp(optarg, "json") && strcmp(optarg, "human"))
				return cli_usage_fail(
				    "img check", "--output must be 'human' or 'json', not '%s'",
				    optarg);
			o->json = !strcmp(optarg, "json");
			break;
		case 'U':
			o->flags |= BDEV_O_FORCE_SHARE;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'T': /* checked like qemu-img's; reads go through the page cache */
			if (cli_parse_cache("img check", "-T", optarg, NULL))
				return 1;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return cli_opt_error("img check", c, argv, longopts);
		}
	}
	if (optind != argc - 1)
		return cli_usage_fail("img check", "expected one image file name");
	if (o->fix && (o->flags & BDEV_O_FORCE_SHARE))
		return cli_usage_fail("img check",
				      "-U cannot be used with -r (repair needs the write lock)");
	return 0;
}

int img_check_main(int argc, char **argv)
{
	struct check_opts o = {0};
	struct bdev_check_result r;
	struct bdev *bs;
	int ret;

	ret = parse_args(argc, argv, &o);
	if (ret)
		return ret < 0 ? 0 : ret;
	/* Like qemu-img, the backing chain is opened (read-only) though only this image is
	 * checked: a chain that cannot be opened fails the check. */
	o.flags |= BDEV_O_CHECK;
	if (o.fix)
		o.flags |= BDEV_O_RDWR | BDEV_O_NO_REPAIR;
	ret = bdev_open(&bs, argv[optind], o.fmt, o.flags);
	if (ret < 0)
		return cli_fail_err(ret);
	cli_warn_open(bs);
	ret = bdev_check(bs, o.fix, &r);
	for (size_t i = 0; i < r.nmessages; i++)
		fprintf(stderr, "%s\n", r.messages[i]);
	if (ret == -ENOTSUP) {
		bdev_check_result_free(&r);
		bdev_close(bs);
		cli_fail("This image format does not support checks");
		return 63;
	}
	if (ret == 0 && !o.quiet) {
		if ((r.leaks_fixed || r.corruptions_fixed) && !o.json)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %" PRId64 " leaked clusters\n"
			       "    %" PRId64 " corruptions\n\n"
			       "Double checking the fixed image now...\n",
			       r.leaks_fixed, r.corruptions_fixed);
		if (o.json)
			print_json(argv[optind], bs->drv->name, &r);
		else
			print_human(&r);
	}
	if (ret < 0)
		cli_fail("Check failed: %s", err_msg_or(ret)); /* before close can replace it */
	bdev_check_result_free(&r);
	bdev_close(bs);
	if (fflush(stdout) != 0)
		return cli_fail("img check: could not write the output");
	if (ret < 0)
		return 1;
	if (r.check_errors)
		return cli_fail("Check failed");
	return r.corruptions ? 2 : (r.leaks ? 3 : 0);
}
