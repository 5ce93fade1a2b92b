/*
 * Fuzz target: the qcow2 open and read path on untrusted bytes.
 *
 * The input becomes the whole image file (in a memfd, opened through /proc/self/fd), opened
 * with no backing chain and no locks. Then: reads at the start, middle and end, a block_status
 * walk over the image, and a read-only consistency check (fix = 0). Every failure must come
 * back as an error; crashes, sanitizer reports, leaks and hangs are the findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block.h"
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
	/* An unaligned read that crosses a cluster boundary. */
	if (bs->size > 70000)
		(void)bdev_read(bs, 65000, buf, 5000);
}

static void walk_status(struct bdev *bs)
{
	struct bdev_extent ext;
	uint64_t off = 0;

	for (int i = 0; i < STATUS_STEPS && off < bs->size; i++) {
		if (bdev_block_status(bs, off, bs->size - off, &ext) < 0 || ext.length == 0)
			break;
		if (ext.offset != off || ext.length > bs->size - off)
			abort(); /* a driver bug: the extent must start here and stay inside the
				    image */
		off += ext.length;
	}
}

static void check_image(const char *path)
{
	struct bdev_check_result res = {0};
	struct bdev *bs;

	if (bdev_open(&bs, path, "qcow2", BDEV_O_NO_BACKING | BDEV_O_FORCE_SHARE | BDEV_O_CHECK) <
	    0)
		return;
	(void)bdev_check(bs, 0, &res);
	bdev_check_result_free(&res);
	bdev_close(bs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[READ_MAX];
	char path[64];
	struct bdev *bs;

	int fd = memdisk_open(data, size, path, sizeof(path));
	if (fd < 0)
		return 0;
	if (bdev_open(&bs, path, "qcow2", BDEV_O_NO_BACKING | BDEV_O_FORCE_SHARE) == 0) {
		read_some(bs, buf);
		walk_status(bs);
		bdev_close(bs);
	}
	check_image(path);
	err_clear();
	close(fd);
	return 0;
}
