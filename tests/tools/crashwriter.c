/*
 * crashwriter: writes through the block layer until it is killed, for tests/system/
 * test_img_crash.py.
 *
 *   crashwriter IMAGE OPSFILE [--kill-at-op K] [--kill-at-syscall N] [--unsafe]
 *
 * OPSFILE holds one operation per line, numbered from 0:
 *   w OFF LEN ID      write LEN bytes of the byte (ID & 0xff) at OFF
 *   z OFF LEN UNMAP   write_zeroes (UNMAP 1: BDEV_ZERO_MAY_UNMAP)
 *   d OFF LEN         discard
 *   t SIZE            truncate (grow) the image
 *   f                 flush
 * Before operation i it prints "begin i"; after a flush returns, "flushed i"; at the end,
 * "done" (each line flushed to stdout at once, so a parent that kills us knows how far we got).
 *
 * --kill-at-op K raises SIGKILL just before operation K. --kill-at-syscall N raises SIGKILL just
 * before the Nth call that changes the image file (pwrite, ftruncate, fallocate): the link wraps
 * those functions (-Wl,--wrap=...), so the kill lands exactly between two metadata updates.
 * --unsafe opens with BDEV_O_UNSAFE: flush still writes back every cache but skips fdatasync,
 * which only matters for power loss, not for a killed process (the page cache survives it).
 * With _FILE_OFFSET_BITS=64 glibc's headers redirect them to their *64 names, which are the
 * symbols the library references, so those are the ones wrapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "util/error.h"

ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off);
int __real_ftruncate64(int fd, off_t len);
int __wrap_ftruncate64(int fd, off_t len);
int __real_fallocate64(int fd, int mode, off_t off, off_t len);
int __wrap_fallocate64(int fd, int mode, off_t off, off_t len);
int __real_posix_fallocate64(int fd, off_t off, off_t len);
int __wrap_posix_fallocate64(int fd, off_t off, off_t len);

static long kill_at_syscall = -1;
static long nsyscalls;

static void count_syscall(void)
{
	if (++nsyscalls == kill_at_syscall)
		raise(SIGKILL);
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	count_syscall();
	return __real_pwrite64(fd, buf, n, off);
}

int __wrap_ftruncate64(int fd, off_t len)
{
	count_syscall();
	return __real_ftruncate64(fd, len);
}

int __wrap_fallocate64(int fd, int mode, off_t off, off_t len)
{
	count_syscall();
	return __real_fallocate64(fd, mode, off, len);
}

int __wrap_posix_fallocate64(int fd, off_t off, off_t len)
{
	count_syscall();
	return __real_posix_fallocate64(fd, off, len);
}

static int fail(const char *what, long op, int ret)
{
	fprintf(stderr, "crashwriter: op %ld (%s): %s\n", op, what, err_msg_or(ret));
	return 1;
}

static int run_op(struct bdev *bs, const char *line, long i, void **buf, size_t *buflen)
{
	uint64_t off, len, arg;
	int ret;

	switch (line[0]) {
	case 'w':
		if (sscanf(line + 1, "%" SCNu64 " %" SCNu64 " %" SCNu64, &off, &len, &arg) != 3)
			return fail("parse", i, -EINVAL);
		if (len > *buflen) {
			free(*buf);
			*buf = malloc(len);
			if (!*buf)
				return fail("malloc", i, -ENOMEM);
			*buflen = len;
		}
		memset(*buf, (int)(arg & 0xff), len);
		ret = bdev_write(bs, off, *buf, len);
		return ret < 0 ? fail("write", i, ret) : 0;
	case 'z':
		if (sscanf(line + 1, "%" SCNu64 " %" SCNu64 " %" SCNu64, &off, &len, &arg) != 3)
			return fail("parse", i, -EINVAL);
		ret = bdev_write_zeroes(bs, off, len, arg ? BDEV_ZERO_MAY_UNMAP : 0);
		return ret < 0 ? fail("write_zeroes", i, ret) : 0;
	case 'd':
		if (sscanf(line + 1, "%" SCNu64 " %" SCNu64, &off, &len) != 2)
			return fail("parse", i, -EINVAL);
		ret = bdev_discard(bs, off, len);
		return ret < 0 ? fail("discard", i, ret) : 0;
	case 't':
		if (sscanf(line + 1, "%" SCNu64, &arg) != 1)
			return fail("parse", i, -EINVAL);
		ret = bdev_truncate(bs, arg);
		return ret < 0 ? fail("truncate", i, ret) : 0;
	case 'f':
		ret = bdev_flush(bs);
		if (ret < 0)
			return fail("flush", i, ret);
		printf("flushed %ld\n", i);
		fflush(stdout);
		return 0;
	default:
		return fail("parse", i, -EINVAL);
	}
}

int main(int argc, char **argv)
{
	long kill_at_op = -1;
	int flags = BDEV_O_RDWR;
	struct bdev *bs;
	char line[256];
	void *buf = NULL;
	size_t buflen = 0;
	int status = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: crashwriter IMAGE OPSFILE [--kill-at-op K] "
				"[--kill-at-syscall N] [--unsafe]\n");
		return 2;
	}
	for (int a = 3; a < argc; a++) {
		if (!strcmp(argv[a], "--unsafe"))
			flags |= BDEV_O_UNSAFE;
		else if (!strcmp(argv[a], "--kill-at-op") && a + 1 < argc)
			kill_at_op = strtol(argv[++a], NULL, 10);
		else if (!strcmp(argv[a], "--kill-at-syscall") && a + 1 < argc)
			kill_at_syscall = strtol(argv[++a], NULL, 10);
		else {
			fprintf(stderr, "crashwriter: unknown option %s\n", argv[a]);
			return 2;
		}
	}
	FILE *ops = fopen(argv[2], "r");
	if (!ops) {
		perror(argv[2]);
		return 2;
	}
	int ret = bdev_open(&bs, argv[1], "qcow2", flags);
	if (ret < 0) {
		fprintf(stderr, "crashwriter: %s\n", err_msg_or(ret));
		fclose(ops);
		return 1;
	}
	for (long i = 0; fgets(line, sizeof(line), ops); i++) {
		if (i == kill_at_op)
			raise(SIGKILL);
		printf("begin %ld\n", i);
		fflush(stdout);
		status = run_op(bs, line, i, &buf, &buflen);
		if (status)
			break;
	}
	bdev_close(bs);
	fclose(ops);
	free(buf);
	if (!status) {
		printf("done %ld\n", nsyscalls);
		fflush(stdout);
	}
	return status;
}
