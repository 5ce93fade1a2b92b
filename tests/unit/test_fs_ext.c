/* The ext layer on a filesystem made by mkfs.ext4 (the oracle), checked afterwards by
 * e2fsck -fn. Skipped when e2fsprogs' programs are not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/block.h"
#include "fs/disk.h"
#include "fs/ext.h"
#include "util/error.h"

static char path[] = "/tmp/test_fs_ext.XXXXXX";
static struct bdev *bs;
static struct extfs *fs;

__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
	va_list ap;
	char cmd[512];
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
	(void)state;
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

/* A fresh 32 MiB ext4 opened read-write. */
static int fresh(void **state)
{
	if (sh("mkfs.ext4 -q -F -b 4096 %s 32M >/dev/null 2>&1", path)) {
		*state = "skip";
		return 0;
	}
	*state = NULL;
	if (bdev_open(&bs, path, "raw", BDEV_O_RDWR) < 0)
		return -1;
	struct stat st;
	stat(path, &st);
	return extfs_open(&fs, bs, 0, (uint64_t)st.st_size, "t.img", true);
}

static int done(void **state)
{
	(void)state;
	if (fs)
		assert_int_equal(extfs_close(fs), 0);
	fs = NULL;
	bdev_close(bs);
	bs = NULL;
	return 0;
}

#define SKIP_WITHOUT_MKFS()                                                                        \
	do {                                                                                       \
		if (*state)                                                                        \
			skip();                                                                    \
	} while (0)

static void reopen(void)
{
	struct stat st;
	assert_int_equal(extfs_close(fs), 0);
	stat(path, &st);
	assert_int_equal(extfs_open(&fs, bs, 0, (uint64_t)st.st_size, "t.img", true), 0);
}

static void fsck_clean(void)
{
	assert_int_equal(extfs_sync(fs), 0);
	assert_int_equal(sh("e2fsck -fn %s >/dev/null 2>&1", path), 0);
}

static void files_and_holes(void **state)
{
	uint32_t root, ino, got_ino;
	char buf[64];
	size_t got;
	SKIP_WITHOUT_MKFS();
	assert_int_equal(extfs_lookup(fs, "/", true, &root), 0);
	assert_int_equal(extfs_mknod(fs, root, "f", S_IFREG | 0640, 0, 1000, 1001, &ino), 0);
	assert_int_equal(extfs_mknod(fs, root, "f", S_IFREG | 0640, 0, 0, 0, &got_ino), -EEXIST);
	assert_int_equal(extfs_pwrite(fs, ino, 0, "head", 4), 0);
	assert_int_equal(extfs_pwrite(fs, ino, 10 << 20, "tail", 4), 0); /* a 10 MiB hole */
	reopen();
	assert_int_equal(extfs_lookup(fs, "/f", false, &got_ino), 0);
	assert_int_equal(got_ino, ino);
	struct extfs_stat st;
	assert_int_equal(extfs_stat(fs, ino, &st), 0);
	assert_int_equal(st.size, (10 << 20) + 4);
	assert_int_equal(st.mode, S_IFREG | 0640);
	assert_int_equal(st.uid, 1000);
	assert_int_equal(st.gid, 1001);
	assert_true(st.blocks <= 16);
	assert_int_equal(extfs_pread(fs, ino, 0, buf, 8, &got), 0);
	assert_int_equal(got, 8);
	assert_memory_equal(buf, "head\0\0\0\0", 8);
	assert_int_equal(extfs_pread(fs, ino, (10 << 20) - 2, buf, 64, &got), 0);
	assert_int_equal(got, 6);
	assert_memory_equal(buf, "\0\0tail", 6);
	struct extfs_range *r;
	size_t n;
	assert_int_equal(extfs_data_ranges(fs, ino, &r, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].start, 0);
	assert_int_equal(r[0].len, 4096);
	assert_int_equal(r[1].start, 10 << 20);
	assert_int_equal(r[1].len, 4); /* clipped to the size */
	free(r);
	fsck_clean();
}

static void data_ranges_blocks(void **state)
{
	uint32_t root, ino;
	struct extfs_range *r;
	size_t n;
	SKIP_WITHOUT_MKFS();
	assert_int_equal(extfs_lookup(fs, "/", true, &root), 0);
	assert_int_equal(extfs_mknod(fs, root, "g", S_IFREG | 0644, 0, 0, 0, &ino), 0);
	assert_int_equal(extfs_pwrite(fs, ino, 8192, "x", 1), 0);
	assert_int_equal(extfs_truncate(fs, ino, 40960), 0);
	assert_int_equal(extfs_data_ranges(fs, ino, &r, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].start, 8192);
	assert_int_equal(r[0].len, 4096);
	free(r);
	assert_int_equal(extfs_truncate(fs, ino, 100), 0);
	assert_int_equal(extfs_data_ranges(fs, ino, &r, &n), 0);
	assert_int_equal(n, 0);
	free(r);
	fsck_clean();
}

/* Unwritten (preallocated) extents read as zeroes and are holes to copy-out. */
static void unwritten_extents(void **state)
{
	uint32_t root, ino;
	struct extfs_range *r;
	size_t n, got;
	char buf[8192];
	SKIP_WITHOUT_MKFS();
	assert_int_equal(extfs_lookup(fs, "/", true, &root), 0);
	assert_int_equal(extfs_mknod(fs, root, "pre", S_IFREG | 0644, 0, 0, 0, &ino), 0);
	memset(buf, 'd', sizeof(buf));
	assert_int_equal(extfs_pwrite(fs, ino, 0, buf, 4096), 0);
	assert_int_equal(extfs_truncate(fs, ino, 16384), 0);
	assert_int_equal(extfs_close(fs), 0);
	fs = NULL;
	/* debugfs (the oracle) preallocates blocks 1..3 as unwritten extents. */
	assert_int_equal(sh("debugfs -w -R 'fallocate /pre 1 3' %s >/dev/null 2>&1", path), 0);
	assert_int_equal(sh("debugfs -R 'ex /pre' %s 2>/dev/null | grep -q Uninit", path), 0);
	struct stat st;
	stat(path, &st);
	assert_int_equal(extfs_open(&fs, bs, 0, (uint64_t)st.st_size, "t.img", false), 0);
	assert_int_equal(extfs_pread(fs, ino, 2000, buf, sizeof(buf), &got), 0);
	assert_int_equal(got, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], i < 4096 - 2000 ? 'd' : 0);
	assert_int_equal(extfs_data_ranges(fs, ino, &r, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].start, 0);
	assert_int_equal(r[0].len, 4096);
	free(r);
}

static void dirs_links_rename(void **state)
{
	uint32_t root, d1, d2, f, sub, x;
	struct extfs_stat st;
	char base[256];
	SKIP_WITHOUT_MKFS();
	struct statvfs before, after;
	extfs_statfs(fs, &before);
	assert_int_equal(extfs_lookup(fs, "/", true, &root), 0);
	assert_int_equal(extfs_mkdir(fs, root, "d1", 0750, 5, 6, &d1), 0);
	assert_int_equal(extfs_mkdir(fs, root, "d2", 0755, 0, 0, &d2), 0);
	assert_int_equal(extfs_mkdir(fs, d1, "sub", 0700, 0, 0, &sub), 0);
	assert_int_equal(extfs_mknod(fs, sub, "file", S_IFREG | 0600, 0, 0, 0, &f), 0);
	assert_int_equal(extfs_pwrite(fs, f, 0, "data", 4), 0);
	assert_int_equal(extfs_link(fs, d2, "hard", f), 0);
	assert_int_equal(extfs_stat(fs, f, &st), 0);
	assert_int_equal(st.nlink, 2);
	assert_int_equal(extfs_stat(fs, d1, &st), 0);
	assert_int_equal(st.nlink, 3);
	assert_int_equal(st.mode, S_IFDIR | 0750);
	assert_int_equal(extfs_rmdir(fs, d1, "sub"), -ENOTEMPTY);
	assert_int_equal(extfs_link(fs, d2, "dirlink", sub), -EPERM);
	/* Move sub from d1 to d2: link counts of both parents and sub's ".." follow. */
	assert_int_equal(extfs_rename(fs, d1, "sub", d2, "moved"), 0);
	assert_int_equal(extfs_lookup(fs, "/d2/moved/..", true, &x), 0);
	assert_int_equal(x, d2);
	assert_int_equal(extfs_stat(fs, d1, &st), 0);
	assert_int_equal(st.nlink, 2);
	assert_int_equal(extfs_rename(fs, d2, "moved", d2, "moved/x"), -EINVAL);
	assert_int_equal(extfs_lookup_parent(fs, "/d2/moved/file", &x, base), 0);
	assert_int_equal(x, sub);
	assert_string_equal(base, "file");
	assert_int_equal(extfs_lookup(fs, "/d2/hard/x", false, &x), -ENOTDIR);
	assert_int_equal(extfs_lookup(fs, "/nope", false, &x), -ENOENT);
	assert_non_null(strstr(err_msg(), "/nope"));
	fsck_clean();
	assert_int_equal(extfs_unlink(fs, d2, "hard"), 0);
	assert_int_equal(extfs_unlink(fs, sub, "file"), 0);
	assert_int_equal(extfs_rmdir(fs, d2, "moved"), 0);
	assert_int_equal(extfs_rmdir(fs, root, "d2"), 0);
	assert_int_equal(extfs_rmdir(fs, root, "d1"), 0);
	extfs_statfs(fs, &after);
	assert_int_equal(after.f_ffree, before.f_ffree);
	assert_int_equal(after.f_bfree, before.f_bfree);
	fsck_clean();
}

static int count_xattr(const char *name, const void *val, size_t len, void *priv)
{
	(*(int *)priv)++;
	return 0;
}

static void xattrs_times_symlinks(void **state)
{
	uint32_t root, f, l1, l2;
	void *v;
	size_t len;
	char target[300], buf[400];
	int n = 0;
	SKIP_WITHOUT_MKFS();
	assert_int_equal(extfs_lookup(fs, "/", true, &root), 0);
	assert_int_equal(extfs_mknod(fs, root, "x", S_IFREG | 0644, 0, 0, 0, &f), 0);
	assert_int_equal(extfs_xattr_set(fs, f, "user.a", "1", 1), 0);
	assert_int_equal(extfs_xattr_set(fs, f, "trusted.b", "22", 2), 0);
	assert_int_equal(extfs_xattr_get(fs, f, "user.a", &v, &len), 0);
	assert_int_equal(len, 1);
	assert_memory_equal(v, "1", 1);
	free(v);
	assert_int_equal(extfs_xattr_get(fs, f, "user.none", &v, &len), -ENODATA);
	assert_int_equal(extfs_xattr_list(fs, f, count_xattr, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(extfs_xattr_remove(fs, f, "user.a"), 0);
	n = 0;
	assert_int_equal(extfs_xattr_list(fs, f, count_xattr, &n), 0);
	assert_int_equal(n, 1);
	struct timespec ts[2] = {{1234567890, 123456789}, {(time_t)5000000000LL, 999999999}};
	assert_int_equal(extfs_utimens(fs, f, ts), 0);
	reopen();
	struct extfs_stat st;
	assert_int_equal(extfs_stat(fs, f, &st), 0);
	assert_int_equal(st.atime.tv_sec, 1234567890);
	assert_int_equal(st.atime.tv_nsec, 123456789);
	assert_int_equal(st.mtime.tv_sec, 5000000000LL); /* past 2038: the epoch bits */
	assert_int_equal(st.mtime.tv_nsec, 999999999);
	memset(target, 'a', sizeof(target) - 1);
	target[sizeof(target) - 1] = 0;
	assert_int_equal(extfs_symlink(fs, root, "short", "x", 0, 0, &l1), 0);
	assert_int_equal(extfs_symlink(fs, root, "long", target, 0, 0, &l2), 0);
	assert_int_equal(extfs_readlink(fs, l1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "x");
	assert_int_equal(extfs_readlink(fs, l2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, target);
	assert_int_equal(extfs_readlink(fs, l2, buf, 10), -ENAMETOOLONG);
	uint32_t via;
	assert_int_equal(extfs_lookup(fs, "/short", true, &via), 0);
	assert_int_equal(via, f);
	fsck_clean();
}

static void read_only_and_recovery(void **state)
{
	struct stat st;
	uint32_t root, ino;
	SKIP_WITHOUT_MKFS();
	assert_int_equal(extfs_close(fs), 0);
	fs = NULL;
	stat(path, &st);
	assert_int_equal(extfs_open(&fs, bs, 0, (uint64_t)st.st_size, "t.img", false), 0);
	assert_null(extfs_warning(fs));
	assert_int_equal(extfs_lookup(fs, "/", true, &root), 0);
	assert_int_equal(extfs_mknod(fs, root, "n", S_IFREG | 0644, 0, 0, 0, &ino), -EROFS);
	assert_int_equal(extfs_close(fs), 0);
	fs = NULL;
	assert_int_equal(sh("debugfs -w -R 'feature needs_recovery' %s >/dev/null 2>&1", path), 0);
	assert_int_equal(extfs_open(&fs, bs, 0, (uint64_t)st.st_size, "t.img", true), -EROFS);
	assert_non_null(strstr(err_msg(), "journal needs recovery"));
	assert_int_equal(extfs_open(&fs, bs, 0, (uint64_t)st.st_size, "t.img", false), 0);
	assert_non_null(strstr(extfs_warning(fs), "journal needs recovery"));
}

static void addresses(void **state)
{
	char *p;
	int n;
	(void)state;
	assert_int_equal(fs_addr_parse("disk.qcow2", &p, &n), 0);
	assert_string_equal(p, "disk.qcow2");
	assert_int_equal(n, 0);
	free(p);
	assert_int_equal(fs_addr_parse("/images/disk.qcow2:12", &p, &n), 0);
	assert_string_equal(p, "/images/disk.qcow2");
	assert_int_equal(n, 12);
	free(p);
	assert_int_equal(fs_addr_parse("disk:0", &p, &n), -EINVAL);
	assert_int_equal(fs_addr_parse("disk:x", &p, &n), -EINVAL);
	assert_int_equal(fs_addr_parse(":3", &p, &n), -EINVAL);
	assert_int_equal(fs_addr_parse("", &p, &n), -EINVAL);
	/* A name that exists as a file is taken whole. */
	char odd[] = "/tmp/test_fs_ext:7.XXXXXX";
	int fd = mkstemp(odd);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(fs_addr_parse(odd, &p, &n), 0);
	assert_string_equal(p, odd);
	assert_int_equal(n, 0);
	free(p);
	unlink(odd);
}

/* Blocks mapped ahead (extfs_alloc), then written straight to them: the same bytes as
 * debugfs reads back, a clean e2fsck, partial last blocks, an overwrite of the head, and the
 * plain path on ext2 (no extents), where allocation ahead does nothing. */
static void alloc_then_write(const char *mkfs)
{
	uint32_t root, ino;
	size_t got;
	struct stat hs;
	enum { N = 3 * 1024 * 1024 + 123 };
	uint8_t *data = malloc(N), *back = malloc(N);

	assert_int_equal(sh("mkfs.%s -q -F -b 4096 %s 32M >/dev/null 2>&1", mkfs, path), 0);
	assert_int_equal(bdev_open(&bs, path, "raw", BDEV_O_RDWR), 0);
	stat(path, &hs);
	assert_int_equal(extfs_open(&fs, bs, 0, (uint64_t)hs.st_size, "t.img", true), 0);
	for (size_t i = 0; i < N; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	assert_int_equal(extfs_lookup(fs, "/", true, &root), 0);
	assert_int_equal(extfs_mknod(fs, root, "big", S_IFREG | 0644, 0, 0, 0, &ino), 0);
	for (size_t off = 0; off < N; off += 1 << 20) {
		size_t len = N - off < (1u << 20) ? N - off : 1u << 20;
		assert_int_equal(extfs_alloc(fs, ino, off, len), 0);
		assert_int_equal(extfs_pwrite(fs, ino, off, data + off, len), 0);
	}
	/* Rewrite the first block in place, then read all of it back. */
	memset(data, 0xab, 4096);
	assert_int_equal(extfs_pwrite(fs, ino, 0, data, 4096), 0);
	struct extfs_stat st;
	assert_int_equal(extfs_stat(fs, ino, &st), 0);
	assert_int_equal(st.size, N);
	assert_int_equal(extfs_pread(fs, ino, 0, back, N, &got), 0);
	assert_int_equal(got, N);
	assert_memory_equal(back, data, N);
	fsck_clean();
	assert_int_equal(extfs_close(fs), 0);
	fs = NULL;
	bdev_close(bs);
	bs = NULL;
	char cmd[512], out[sizeof(path) + 8];
	snprintf(out, sizeof(out), "%s.out", path);
	snprintf(cmd, sizeof(cmd), "debugfs -R 'dump /big %s' %s >/dev/null 2>&1", out, path);
	assert_int_equal(sh("%s", cmd), 0);
	FILE *f = fopen(out, "rb");
	assert_non_null(f);
	memset(back, 0, N);
	assert_int_equal(fread(back, 1, N, f), N);
	fclose(f);
	unlink(out);
	assert_memory_equal(back, data, N);
	free(data);
	free(back);
}

static void alloc_ext4(void **state)
{
	SKIP_WITHOUT_MKFS();
	done(state);
	alloc_then_write("ext4");
}

static void alloc_ext2(void **state)
{
	SKIP_WITHOUT_MKFS();
	done(state);
	alloc_then_write("ext2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(files_and_holes, fresh, done),
	    cmocka_unit_test_setup_teardown(data_ranges_blocks, fresh, done),
	    cmocka_unit_test_setup_teardown(unwritten_extents, fresh, done),
	    cmocka_unit_test_setup_teardown(dirs_links_rename, fresh, done),
	    cmocka_unit_test_setup_teardown(xattrs_times_symlinks, fresh, done),
	    cmocka_unit_test_setup_teardown(read_only_and_recovery, fresh, done),
	    cmocka_unit_test(addresses),
	    cmocka_unit_test_setup_teardown(alloc_ext4, fresh, done),
	    cmocka_unit_test_setup_teardown(alloc_ext2, fresh, done),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
