/*
 * Fuzz target: the read-only XFS reader on untrusted bytes.
 *
 * The input is the front of a filesystem image; the disk behind it reads as zeros up to the size
 * the superblock claims (capped at 64 MiB), so a seed of a few hundred KiB cut from a mkfs.xfs
 * image (fuzz/corpus/xfs, made by fuzz/make_xfs_corpus.sh) is a whole filesystem. The target opens
 * it and walks everything reachable from the root: directories (every form), inodes, symlinks,
 * file contents and extent maps, and looks names up through the hash indexes. Every failure must
 * come back as an error; crashes, sanitizer reports, leaks and hangs are the findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "fs/gfs.h"
#include "fs/xfs.h"
#include "util/endian.h"
#include "util/error.h"

#include "memdisk.h"

#define MAX_DISK   (64u << 20)
#define MAX_INODES 512 /* visited per input: keeps an iteration fast */
#define MAX_NAMES  64  /* kept per directory */
#define MAX_DEPTH  8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct names {
	char name[MAX_NAMES][256];
	uint64_t ino[MAX_NAMES];
	int n;
};

static int collect(const char *name, uint64_t ino, void *priv)
{
	struct names *l = priv;

	if (l->n == MAX_NAMES)
		return 1;
	snprintf(l->name[l->n], sizeof(l->name[0]), "%s", name);
	l->ino[l->n++] = ino;
	return 0;
}

static void visit_file(struct xfs *fs, uint64_t ino, const struct gfs_stat *st)
{
	static uint8_t buf[65536];
	struct gfs_range *r;
	size_t got, n;
	char target[1100];

	if (S_ISLNK(st->mode))
		(void)xfs_readlink(fs, ino, target, sizeof(target));
	if (!S_ISREG(st->mode))
		return;
	(void)xfs_pread(fs, ino, 0, buf, sizeof(buf), &got);
	if (st->size > sizeof(buf))
		(void)xfs_pread(fs, ino, st->size - 100, buf, 4096, &got);
	if (xfs_data_ranges(fs, ino, &r, &n) == 0)
		free(r);
}

static void walk(struct xfs *fs, const char *path, uint64_t dir, int depth, int *budget)
{
	struct names *l = calloc(1, sizeof(*l));
	char sub[1024];

	if (!l)
		return;
	(void)xfs_readdir(fs, dir, collect, l);
	for (int i = 0; i<l->n && * budget> 0; i++, (*budget)--) {
		struct gfs_stat st;
		uint64_t found;
		snprintf(sub, sizeof(sub), "%s/%s", path, l->name[i]);
		(void)xfs_lookup(fs, sub, i % 2 == 0, &found); /* the hash index path */
		if (xfs_stat(fs, l->ino[i], &st) < 0)
			continue;
		if (S_ISDIR(st.mode) && depth < MAX_DEPTH)
			walk(fs, sub, l->ino[i], depth + 1, budget);
		else
			visit_file(fs, l->ino[i], &st);
	}
	free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct bdev *bs;
	struct xfs *fs;
	uint64_t disk = size;

	int fd = memdisk_open(data, size, path, sizeof(path));
	if (fd < 0)
		return 0;
	if (size >= 16) { /* the blocks the superblock claims, as zeros past the input */
		uint64_t claimed = be64_get(data + 8) * (uint64_t)(be32_get(data + 4) & 0x1ffff);
		if (claimed > disk)
			disk = claimed < MAX_DISK ? claimed : MAX_DISK;
	}
	if (disk > size && ftruncate(fd, (off_t)disk) < 0)
		disk = size;
	if (bdev_open(&bs, path, "raw", BDEV_O_FORCE_SHARE) == 0) {
		if (xfs_open(&fs, bs, 0, bs->size, "fuzz") == 0) {
			int budget = MAX_INODES;
			uint64_t root;
			if (xfs_lookup(fs, "/", true, &root) == 0)
				walk(fs, "", root, 0, &budget);
			(void)xfs_lookup(fs, "/etc/os-release", true, &root);
			xfs_close(fs);
		}
		bdev_close(bs);
	}
	err_clear();
	close(fd);
	return 0;
}
