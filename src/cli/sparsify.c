/* `ligero sparsify`: shrink a disk image for backup, in place or into a new image. */
#include "block/block.h"
#include "cli/cli.h"
#include "tools/sparsify.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/size.h"

#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fputs(
	    "usage: ligero sparsify [--in-place] [--compress] [-o options] [-O fmt] [-p]\n"
	    "                       [--zero-check] [--force] [--output=human|json] SRC [DST]\n"
	    "\n"
	    "Drops what the guest's filesystems no longer use (ext2/3/4 free blocks, swap\n"
	    "contents, space outside partitions) and zeroes, without booting anything and\n"
	    "without temporary files.\n"
	    "  (copy)        SRC DST: write a new image (qcow2 unless -O raw; -o as img create)\n"
	    "  --in-place    discard free clusters of SRC itself (holes in a raw file)\n"
	    "  --compress    compress DST on all cores, with zstd unless -o compression_type=zlib\n"
	    "                or compat=0.10 (zstd images need QEMU 5.1 or later)\n"
	    "  --zero-check  in place: also drop allocated clusters that read as zero\n"
	    "  --force       in place: allow an image that overlays use as their backing file\n",
	    f);
}

static void print_report(const char *src, const char *dst, uint64_t vsize, int64_t before,
			 int64_t after, const struct sparsify_plan *p, bool json)
{
	char a[32], b[32], c[32];

	if (json) {
		struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
		json_object_object_add(o, "source", json_object_new_string(src));
		if (dst)
			json_object_object_add(o, "destination", json_object_new_string(dst));
		json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)vsize));
		json_object_object_add(o, "bytes-before", json_object_new_int64(before));
		json_object_object_add(o, "bytes-after", json_object_new_int64(after));
		for (size_t i = 0; i < p->nareas; i++) {
			const struct sparsify_area *ar = &p->areas[i];
			struct json_object *e = json_object_new_object();
			json_object_object_add(e, "area", json_object_new_string(ar->where));
			json_object_object_add(e, "type", json_object_new_string(ar->type));
			json_object_object_add(e, "size", json_object_new_int64((int64_t)ar->size));
			json_object_object_add(e, "dropped",
					       json_object_new_int64((int64_t)ar->dropped));
			if (ar->note[0])
				json_object_object_add(e, "note", json_object_new_string(ar->note));
			json_object_array_add(arr, e);
		}
		json_object_object_add(o, "areas", arr);
		printf("%s\n", json_object_to_json_string_ext(
				   o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return;
	}
	printf("virtual size: %s; on disk before: %s; after: %s\n", size_human(vsize, a, sizeof(a)),
	       size_human((uint64_t)before, b, sizeof(b)),
	       size_human((uint64_t)after, c, sizeof(c)));
	for (size_t i = 0; i < p->nareas; i++) {
		const struct sparsify_area *ar = &p->areas[i];
		printf("  %-24s %-6s %10s dropped of %s%s%s\n", ar->where,
		       ar->type[0] ? ar->type : "-", size_human(ar->dropped, a, sizeof(a)),
		       size_human(ar->size, b, sizeof(b)), ar->note[0] ? ": " : "", ar->note);
	}
}

static void progress_cb(void *opaque, uint64_t done, uint64_t total)
{
	progress_update(opaque, done, total);
}

int cmd_sparsify(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"in-place", no_argument, NULL, 'i'},
	    {"compress", no_argument, NULL, 'c'},
	    {"zero-check", no_argument, NULL, 'z'},
	    {"force", no_argument, NULL, 'F'},
	    {"output", required_argument, NULL, 'J'},
	    {NULL, 0, NULL, 0},
	};
	struct bdev_create_opts co = {0};
	const char *ofmt = "qcow2", *bfmt = NULL, *backing = NULL;
	bool in_place = false, compress = false, zero_check = false, force = false, json = false;
	bool show_progress = false, has_size = false, ctype_given = false;
	uint64_t size = 0;
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":ho:O:pf:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'i':
			in_place = true;
			break;
		case 'c':
			compress = true;
			break;
		case 'z':
			zero_check = true;
			break;
		case 'F':
			force = true;
			break;
		case 'p':
			show_progress = true;
			break;
		case 'f':
			break; /* the source format is probed; kept for symmetry */
		case 'O':
			ofmt = optarg;
			break;
		case 'J':
			if (!strcmp(optarg, "json"))
				json = true;
			else if (strcmp(optarg, "human"))
				return cli_usage_fail(
				    "sparsify", "--output must be 'human' or 'json', not '%s'",
				    optarg);
			break;
		case 'o': {
			char *save =
			    NULL; /* split argv's string in place: it outlives the options */
			for (char *kv = strtok_r(optarg, ",", &save); kv;
			     kv = strtok_r(NULL, ",", &save)) {
				if (!strncmp(kv, "compression_type=", 17))
					ctype_given = true;
				int r =
				    cli_create_option(kv, &co, &bfmt, &backing, &size, &has_size);
				if (r)
					return r;
			}
			break;
		}
		default:
			return cli_opt_error("sparsify", c, argv, longopts);
		}
	}
	if (optind >= argc)
		return cli_usage_fail("sparsify", "no source image given");
	const char *src = argv[optind++];
	const char *dst = optind < argc ? argv[optind++] : NULL;
	if (optind < argc)
		return cli_usage_fail("sparsify", "unexpected argument '%s'", argv[optind]);
	if (in_place && dst)
		return cli_usage_fail("sparsify", "--in-place takes no destination ('%s')", dst);
	if (!in_place && !dst)
		return cli_usage_fail("sparsify", "give a destination, or --in-place");
	if (in_place && (compress || co.cluster_size || co.compat))
		return cli_usage_fail("sparsify",
				      "--compress and -o apply to a new image, not --in-place");
	if (backing || has_size)
		return cli_usage_fail("sparsify",
				      "-o backing_file and size do not apply (the copy is whole)");
	if (!in_place && !bdev_find_driver(ofmt))
		return cli_fail("%s: unknown format '%s' (known: qcow2, raw)", dst, ofmt);
	if (compress && strcmp(ofmt, "qcow2"))
		return cli_fail("%s: --compress needs -O qcow2", dst);
	if (!in_place && cli_check_format_options(ofmt, dst, &co))
		return 1;
	if (!ctype_given)
		co.compression_type = SPARSIFY_CODEC_DEFAULT;

	int flags = in_place ? BDEV_O_RDWR | (force ? BDEV_O_BASE_WRITE : 0) : 0;
	struct bdev *bs;
	int ret = bdev_open(&bs, src, NULL, flags);
	if (ret < 0)
		return cli_fail_err(ret);
	struct sparsify_plan plan;
	const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
	ret = sparsify_plan_make(bs, base, &plan);
	if (ret < 0) {
		bdev_close(bs);
		return cli_fail_err(ret);
	}
	int64_t before = bdev_actual_size(bs);
	struct progress pg;
	progress_init(&pg, show_progress, json);
	progress_catch_signals();
	struct sparsify_opts so = {.zero_check = zero_check,
				   .progress = progress_cb,
				   .opaque = &pg,
				   .stop = progress_stop_flag()};
	int64_t after = 0;
	if (in_place) {
		uint64_t done;
		ret = sparsify_in_place(bs, &plan, &so, &done);
		after = bdev_actual_size(bs);
	} else {
		ret = sparsify_copy(bs, &plan, dst, ofmt, &co, compress, &so);
		if (ret == 0) {
			struct bdev *out;
			if (bdev_open(&out, dst, ofmt, BDEV_O_NO_BACKING | BDEV_O_FORCE_SHARE) ==
			    0) {
				after = bdev_actual_size(out);
				bdev_close(out);
			}
		}
	}
	progress_end(&pg);
	progress_release_signals();
	if (ret == 0)
		print_report(src, dst, bs->size, before, after, &plan, json);
	sparsify_plan_free(&plan);
	bdev_close(bs);
	return ret < 0 ? cli_fail_err(ret) : 0;
}
