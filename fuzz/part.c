/*
 * Fuzz target: partition tables and filesystem signatures on untrusted bytes.
 *
 * The input becomes a raw disk (a memfd opened through /proc/self/fd). part_read parses its MBR
 * (with extended and logical partitions) or GPT; every partition it returns must lie inside the
 * disk, and fs_detect then probes each one (and the whole disk). Every failure must come back
 * as an error; crashes, sanitizer reports, leaks and hangs are the findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block.h"
#include "fs/detect.h"
#include "fs/part.h"
#include "util/error.h"

#include "memdisk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct part_table t;
	struct fs_probe probe;
	char path[64];
	struct bdev *bs;

	int fd = memdisk_open(data, size, path, sizeof(path));
	if (fd < 0)
		return 0;
	if (bdev_open(&bs, path, "raw", BDEV_O_FORCE_SHARE) == 0) {
		(void)fs_detect(bs, 0, bs->size, &probe);
		if (part_read(bs, &t) == 0) {
			for (size_t i = 0; i < t.n; i++) {
				const struct part *p = &t.parts[i];
				if (p->start > bs->size || p->size > bs->size - p->start)
					abort(); /* part_read must not hand out space past the disk
						  */
				if (part_find(&t, p->num) == NULL)
					abort();
				if (!p->container)
					(void)fs_detect(bs, p->start, p->size, &probe);
			}
			part_table_free(&t);
		}
		bdev_close(bs);
	}
	err_clear();
	close(fd);
	return 0;
}
