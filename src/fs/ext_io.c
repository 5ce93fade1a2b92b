/*
 * A libext2fs io_manager whose "device" is a byte window of a bdev. libext2fs only hands the
 * manager a name, so the name carries the address of the window (ext_io_name); the window
 * outlives the ext2_filsys because extfs owns both.
 */
#include "fs/ext_priv.h"
#include "block/block.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * A small write-through cache of single-block reads: directory blocks, inode tables, extent tree
 * nodes and bitmaps are read again and again by path lookups (a FUSE ls -R looks every path up
 * from the root), and each uncached read is a system call and, on qcow2, a cluster lookup. This
 * process is the image's only writer (the block layer's locks), so write-through keeps it exact.
 */
#define CACHE_SLOTS 256

struct cache_slot {
	unsigned long long block; /* valid when data != NULL */
	uint8_t *data;
};

struct chan {
	struct ext_io *io;
	struct cache_slot cache[CACHE_SLOTS];
};

static struct cache_slot *slot_of(struct chan *c, unsigned long long block)
{
	return &c->cache[(block * 0x9e3779b97f4a7c15ULL) >> 56];
}

static void cache_drop_all(struct chan *c)
{
	for (int i = 0; i < CACHE_SLOTS; i++) {
		ext2fs_free_mem(&c->cache[i].data);
		c->cache[i].data = NULL;
	}
}

/* Forget cached copies of blocks [block, block + count). */
static void cache_drop(struct chan *c, unsigned long long block, unsigned long long count)
{
	if (count >= CACHE_SLOTS) {
		cache_drop_all(c);
		return;
	}
	for (unsigned long long b = block; b < block + count; b++) {
		struct cache_slot *s = slot_of(c, b);
		if (s->data && s->block == b) {
			ext2fs_free_mem(&s->data);
			s->data = NULL;
		}
	}
}

void ext_io_name(const struct ext_io *io, char *buf, size_t len)
{
	snprintf(buf, len, "ligero-bdev:%p", (const void *)io);
}

static errcode_t bio_open(const char *name, int flags, io_channel *out)
{
	void *ptr = NULL;
	io_channel ch = NULL;
	struct chan *c = NULL;
	errcode_t e;

	if (!name || sscanf(name, "ligero-bdev:%p", &ptr) != 1 || !ptr)
		return EXT2_ET_BAD_DEVICE_NAME;
	if ((e = ext2fs_get_mem(sizeof(*ch), &ch)))
		return e;
	memset(ch, 0, sizeof(*ch));
	if ((e = ext2fs_get_mem(sizeof(*c), &c)))
		goto fail;
	memset(c, 0, sizeof(*c));
	c->io = ptr;
	if ((e = ext2fs_get_mem(strlen(name) + 1, &ch->name)))
		goto fail;
	strcpy(ch->name, name);
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = ext_bdev_io_manager;
	ch->block_size = 1024;
	ch->refcount = 1;
	ch->private_data = c;
	(void)flags;
	*out = ch;
	return 0;
fail:
	ext2fs_free_mem(&c);
	ext2fs_free_mem(&ch);
	return e;
}

static errcode_t bio_close(io_channel ch)
{
	if (--ch->refcount > 0)
		return 0;
	cache_drop_all(ch->private_data);
	ext2fs_free_mem(&ch->private_data);
	ext2fs_free_mem(&ch->name);
	ext2fs_free_mem(&ch);
	return 0;
}

static errcode_t bio_set_blksize(io_channel ch, int blksize)
{
	if (blksize != ch->block_size)
		cache_drop_all(ch->private_data);
	ch->block_size = blksize;
	return 0;
}

/* count > 0 is a number of blocks, count < 0 a number of bytes (libext2fs's convention). */
static errcode_t span(io_channel ch, unsigned long long block, int count, uint64_t *off,
		      size_t *len)
{
	struct ext_io *io = ((struct chan *)ch->private_data)->io;
	uint64_t n = count < 0 ? (uint64_t)(-(int64_t)count) : (uint64_t)count * ch->block_size;
	uint64_t o = block * (uint64_t)ch->block_size;

	if (block > UINT64_MAX / ch->block_size || o > io->len || n > io->len - o)
		return EXT2_ET_LLSEEK_FAILED;
	*off = io->off + o;
	*len = (size_t)n;
	return 0;
}

static errcode_t bio_read64(io_channel ch, unsigned long long block, int count, void *data)
{
	struct chan *c = ch->private_data;
	struct ext_io *io = c->io;
	struct cache_slot *s = count == 1 ? slot_of(c, block) : NULL;
	uint64_t off;
	size_t len;
	errcode_t e = span(ch, block, count, &off, &len);

	if (e)
		return e;
	if (s && s->data && s->block == block) {
		memcpy(data, s->data, len);
		return 0;
	}
	if (bdev_read(io->bs, off, data, len) < 0) {
		io->failed = true;
		return EXT2_ET_SHORT_READ;
	}
	if (s && (s->data || ext2fs_get_mem(len, &s->data) == 0)) {
		memcpy(s->data, data, len);
		s->block = block;
	}
	return 0;
}

static errcode_t bio_write64(io_channel ch, unsigned long long block, int count, const void *data)
{
	struct ext_io *io = ((struct chan *)ch->private_data)->io;
	uint64_t off;
	size_t len;
	errcode_t e = span(ch, block, count, &off, &len);

	if (e)
		return e;
	cache_drop(ch->private_data, block, (len + ch->block_size - 1) / ch->block_size);
	if (bdev_write(io->bs, off, data, len) < 0) {
		io->failed = true;
		return EXT2_ET_SHORT_WRITE;
	}
	return 0;
}

static errcode_t bio_read(io_channel ch, unsigned long block, int count, void *data)
{
	return bio_read64(ch, block, count, data);
}

static errcode_t bio_write(io_channel ch, unsigned long block, int count, const void *data)
{
	return bio_write64(ch, block, count, data);
}

static errcode_t bio_write_byte(io_channel ch, unsigned long offset, int size, const void *data)
{
	struct ext_io *io = ((struct chan *)ch->private_data)->io;

	if (size < 0 || offset > io->len || (uint64_t)size > io->len - offset)
		return EXT2_ET_LLSEEK_FAILED;
	cache_drop(ch->private_data, offset / ch->block_size,
		   (offset % ch->block_size + (unsigned long)size + ch->block_size - 1) /
		       ch->block_size);
	if (bdev_write(io->bs, io->off + offset, data, (size_t)size) < 0) {
		io->failed = true;
		return EXT2_ET_SHORT_WRITE;
	}
	return 0;
}

static errcode_t bio_flush(io_channel ch)
{
	struct ext_io *io = ((struct chan *)ch->private_data)->io;

	if (bdev_flush(io->bs) < 0) {
		io->failed = true;
		return EIO;
	}
	return 0;
}

static errcode_t bio_set_option(io_channel ch, const char *option, const char *arg)
{
	return EXT2_ET_INVALID_ARGUMENT;
}

static errcode_t bio_discard(io_channel ch, unsigned long long block, unsigned long long count)
{
	struct ext_io *io = ((struct chan *)ch->private_data)->io;
	uint64_t bs = (uint64_t)ch->block_size;

	if (block > io->len / bs || count > io->len / bs - block)
		return EXT2_ET_LLSEEK_FAILED;
	cache_drop(ch->private_data, block, count);
	return bdev_discard(io->bs, io->off + block * bs, count * bs) < 0 ? EIO : 0;
}

static errcode_t bio_zeroout(io_channel ch, unsigned long long block, unsigned long long count)
{
	struct ext_io *io = ((struct chan *)ch->private_data)->io;
	uint64_t bs = (uint64_t)ch->block_size;

	if (block > io->len / bs || count > io->len / bs - block)
		return EXT2_ET_LLSEEK_FAILED;
	cache_drop(ch->private_data, block, count);
	if (bdev_write_zeroes(io->bs, io->off + block * bs, count * bs, 0) < 0) {
		io->failed = true;
		return EIO;
	}
	return 0;
}

static struct struct_io_manager bdev_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "ligero bdev I/O manager",
    .open = bio_open,
    .close = bio_close,
    .set_blksize = bio_set_blksize,
    .read_blk = bio_read,
    .write_blk = bio_write,
    .flush = bio_flush,
    .write_byte = bio_write_byte,
    .set_option = bio_set_option,
    .read_blk64 = bio_read64,
    .write_blk64 = bio_write64,
    .discard = bio_discard,
    .zeroout = bio_zeroout,
};

io_manager ext_bdev_io_manager = &bdev_manager;
