/*
 * Fuzz target: the parallels image reader and ploop's DiskDescriptor.xml parser on untrusted
 * bytes.
 *
 * An input that starts with '<' (after white space) is a descriptor: it is parsed from memory
 * (the chain it describes is not opened: its files do not exist). Any other input is a whole
 * parallels image file (a memfd, opened through /proc/self/fd) read at its start, middle and
 * end, walked with block status, and checked. Seeds: fuzz/corpus/parallels, made by
 * fuzz/make_parallels_corpus.sh. Every failure must come back as an error; crashes, sanitizer
 * reports, leaks and hangs are the findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "block/block.h"
#include "block/ploop_xml.h"
#include "util/error.h"

#include "memdisk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { READ_MAX = 64 * 1024, STATUS_STEPS = 4096 };

static void read_some(struct bdev *bs, uint8_t *buf)
{
	uint64_t offs[] = {0, bs->size / 2, bs->size > READ_MAX ? bs->size - READ_MAX : 0};

	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		uint64_t len = bs->size - offs[i] < READ_MAX ? bs->size - offs[i] : READ_MAX;
		if (len)
			(void)bdev_read(bs, offs[i], buf, len);
	}
	if (bs->size > 70000) /* unaligned, across a cluster boundary for small clusters */
		(void)bdev_read(bs, 4000, buf, 66000);
}

static void walk_status(struct bdev *bs)
{
	struct bdev_extent ext;
	uint64_t off = 0;

	for (int i = 0; i < STATUS_STEPS && off < bs->size; i++) {
		if (bdev_block_status(bs, off, bs->size - off, &ext) < 0 || ext.length == 0)
			break;
		if (ext.offset != off || ext.length > bs->size - off)
			abort(); /* a driver bug: the extent must start here and stay inside */
		off += ext.length;
	}
}

static void check_image(const char *path)
{
	struct bdev_check_result res = {0};
	struct bdev *bs;

	if (bdev_open(&bs, path, "parallels", BDEV_O_FORCE_SHARE | BDEV_O_CHECK) < 0)
		return;
	(void)bdev_check(bs, 0, &res);
	bdev_check_result_free(&res);
	bdev_close(bs);
}

static void descriptor(const uint8_t *data, size_t size)
{
	struct ploop_desc d;

	if (ploop_desc_parse((const char *)data, size, "fuzz.xml", "dir", &d) == 0) {
		if (!d.nchain || !d.chain[0].path || !d.top_guid)
			abort(); /* a parsed descriptor always has a chain */
		ploop_desc_free(&d);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[READ_MAX + 2048];
	char path[64];
	struct bdev *bs;
	size_t i = 0;

	while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t'))
		i++;
	if (i < size && data[i] == '<') {
		descriptor(data, size);
		err_clear();
		return 0;
	}
	int fd = memdisk_open(data, size, path, sizeof(path));
	if (fd < 0)
		return 0;
	if (bdev_open(&bs, path, "parallels", BDEV_O_FORCE_SHARE) == 0) {
		read_some(bs, buf);
		walk_status(bs);
		bdev_close(bs);
	}
	check_image(path);
	err_clear();
	close(fd);
	return 0;
}
