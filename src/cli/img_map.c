/* `ligero img map`: the guest's extents as qemu-img map prints them (same merging, same text). */
#include "block/block.h"
#include "cli/cli.h"
#include "util/error.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct map_entry {
	uint64_t start, length, offset;
	int depth;
	bool present, zero, data, has_offset;
	const char *filename;
};

static void map_usage(FILE *f)
{
	fputs("usage: ligero img map [-f fmt] [--output=human|json] [-s|--start-offset=OFFSET]\n"
	      "                      [-l|--max-length=LEN] [-U] FILE\n",
	      f);
}

static int chain_length(const struct bdev *bs)
{
	int n = 0;

	for (; bs; bs = bs->backing)
		n++;
	return n;
}

/*
 * qemu-img asks the host file system too: data clusters whose host range is a hole (a
 * preallocated image, a sparse copy) read as zero and are reported "zero": true. Split the
 * extent where the host file switches between hole and data.
 */
static void host_holes(struct map_entry *m, int fd)
{
	off_t data = lseek(fd, (off_t)m->offset, SEEK_DATA);

	if (data < 0) {
		if (errno == ENXIO) /* a hole up to the end of the file */
			m->zero = true;
		return;
	}
	if ((uint64_t)data > m->offset) {
		m->zero = true;
		if ((uint64_t)data - m->offset < m->length)
			m->length = (uint64_t)data - m->offset;
		return;
	}
	off_t hole = lseek(fd, (off_t)m->offset, SEEK_HOLE);
	if (hole > data && (uint64_t)hole - m->offset < m->length)
		m->length = (uint64_t)hole - m->offset;
}

static int get_entry(struct bdev *bs, int layers, uint64_t off, uint64_t len, struct map_entry *m)
{
	struct bdev_extent e;
	int ret = bdev_block_status_chain(bs, off, len, &e);

	if (ret < 0)
		return ret;
	bool allocated = e.flags & BDEV_ST_ALLOCATED;
	*m = (struct map_entry){
	    .start = off,
	    .length = e.length,
	    .depth = e.depth,
	    .zero = e.flags & BDEV_ST_ZERO,
	    .data = e.flags & BDEV_ST_DATA,
	    /* Unallocated everywhere: qemu names the bottom layer. Past the end of a shorter
	     * backing file: the zeroes count as that layer's (present). */
	    .present = allocated || e.depth < layers,
	    .has_offset = allocated && (e.flags & BDEV_ST_OFFSET),
	    .offset = e.host_offset,
	};
	if (!allocated && e.depth >= layers)
		m->depth = layers - 1;
	else if (!allocated) {
		/* Past the end of a shorter backing file: qemu-img names the layer above it. */
		m->depth = e.depth - 1;
		m->present = false;
	}
	if (m->has_offset && e.file) {
		m->filename = e.file->filename;
		if (m->data)
			host_holes(m, e.file->fd);
	}
	return 0;
}

static bool mergeable(const struct map_entry *a, const struct map_entry *b)
{
	if (!a->length)
		return false;
	if (a->zero != b->zero || a->data != b->data || a->depth != b->depth ||
	    a->present != b->present || !a->filename != !b->filename ||
	    a->has_offset != b->has_offset)
		return false;
	if (a->filename && strcmp(a->filename, b->filename))
		return false;
	return !a->has_offset || a->offset + a->length == b->offset;
}

static int dump(const struct map_entry *e, bool json, const char *file, bool *first)
{
	if (json) {
		printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %d,"
		       " \"present\": %s, \"zero\": %s, \"data\": %s",
		       *first ? "[" : ",\n", e->start, e->length, e->depth,
		       e->present ? "true" : "false", e->zero ? "true" : "false",
		       e->data ? "true" : "false");
		if (e->has_offset)
			printf(", \"offset\": %" PRIu64, e->offset);
		putchar('}');
		*first = false;
		return 0;
	}
	if (e->data && !e->has_offset)
		return cli_fail("%s: file contains compressed clusters (human output cannot map "
				"them; use --output=json)",
				file);
	if (e->data && !e->zero)
		printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start, e->length,
		       e->offset, e->filename ? e->filename : "");
	return 0;
}

struct map_args {
	const char *fmt, *file;
	bool json, share;
	uint64_t start, max_len;
};

static int parse(int argc, char **argv, struct map_args *a)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"output", required_argument, NULL, 'O'},
	    {"start-offset", required_argument, NULL, 's'},
	    {"max-length", required_argument, NULL, 'l'},
	    {"force-share", no_argument, NULL, 'U'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":f:s:l:hU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			map_usage(stdout);
			return -1;
		case 'f':
			a->fmt = optarg;
			break;
		case 'U':
			a->share = true;
			break;
		case 'O':
			if (strcmp(optarg, "json") && strcmp(optarg, "human"))
				return cli_usage_fail(
				    "img map", "--output must be 'human' or 'json', not '%s'",
				    optarg);
			a->json = !strcmp(optarg, "json");
			break;
		case 's':
			if (cli_parse_size("img map: --start-offset", optarg, &a->start))
				return 1;
			break;
		case 'l':
			if (cli_parse_size("img map: --max-length", optarg, &a->max_len))
				return 1;
			break;
		default:
			return cli_opt_error("img map", c, argv, longopts);
		}
	}
	if (optind != argc - 1)
		return cli_usage_fail("img map", "expected one image file name");
	a->file = argv[optind];
	return 0;
}

int img_map_main(int argc, char **argv)
{
	struct map_args a = {.max_len = UINT64_MAX};
	struct bdev *bs;
	int ret = parse(argc, argv, &a);

	if (ret)
		return ret < 0 ? 0 : ret;
	ret = bdev_open(&bs, a.file, a.fmt, a.share ? BDEV_O_FORCE_SHARE : 0);
	if (ret < 0)
		return cli_fail_err(ret);
	cli_warn_open(bs);
	int layers = chain_length(bs);
	uint64_t end = bs->size;
	if (a.start > end)
		a.start = end;
	if (a.max_len < end - a.start)
		end = a.start + a.max_len;
	if (!a.json)
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	struct map_entry cur = {.start = a.start}, next;
	int rc = 0;
	bool first = true;
	while (cur.start + cur.length < end) {
		uint64_t off = cur.start + cur.length;
		ret = get_entry(bs, layers, off, end - off, &next);
		if (ret < 0) {
			rc = cli_fail_err(ret);
			break;
		}
		if (mergeable(&cur, &next)) {
			cur.length += next.length;
			continue;
		}
		if (cur.length && (rc = dump(&cur, a.json, a.file, &first)))
			break;
		cur = next;
	}
	if (!rc) /* qemu-img prints the last entry even when it is empty (an empty image) */
		rc = dump(&cur, a.json, a.file, &first);
	if (a.json && !rc)
		printf("%s]\n", first ? "[" : "");
	bdev_close(bs);
	return rc;
}
