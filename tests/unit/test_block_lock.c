/*
 * Image locks: the bytes held must be exactly the ones QEMU 7.2 holds for the same claim, and
 * claims must conflict as QEMU's do. OFD locks conflict between open file descriptions even in
 * one process, so each "process" here is just another open() of the same file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/block.h"
#include "block/lock.h"
#include "util/error.h"

/* What block.c asks for (and what qemu-io asks for on a qcow2 file). */
#define READER_PERM   LOCK_PERM_CONSISTENT_READ
#define READER_SHARED (LOCK_PERM_CONSISTENT_READ | LOCK_PERM_WRITE_UNCHANGED)
#define WRITER_PERM   (LOCK_PERM_CONSISTENT_READ | LOCK_PERM_WRITE | LOCK_PERM_RESIZE)
#define WRITER_SHARED READER_SHARED

struct fixture {
	char path[64];
	struct bdev a, b;
	int probe_fd; /* a third description, only used to look at the bytes */
};

static void open_bdev(struct fixture *f, struct bdev *bs)
{
	memset(bs, 0, sizeof(*bs));
	bs->filename = f->path;
	bs->fd = open(f->path, O_RDWR | O_CLOEXEC);
	assert_true(bs->fd >= 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/ligero-lock-XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	open_bdev(f, &f->a);
	open_bdev(f, &f->b);
	f->probe_fd = open(f->path, O_RDONLY | O_CLOEXEC);
	assert_true(f->probe_fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close(f->a.fd);
	close(f->b.fd);
	close(f->probe_fd);
	unlink(f->path);
	free(f);
	return 0;
}

/* Bitmask of the bytes 100..103 (bits 0-3) and 200..203 (bits 4-7) someone else holds. */
static unsigned held_bytes(int fd)
{
	static const int offs[] = {100, 101, 102, 103, 200, 201, 202, 203};
	unsigned mask = 0;

	for (int i = 0; i < 8; i++) {
		struct flock fl = {
		    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = offs[i], .l_len = 1};
		assert_int_equal(fcntl(fd, F_OFD_GETLK, &fl), 0);
		if (fl.l_type != F_UNLCK)
			mask |= 1u << i;
	}
	return mask;
}

#define B100 0x01u
#define B101 0x02u
#define B103 0x08u
#define B201 0x20u
#define B203 0x80u

/* qemu-io on a qcow2 file holds 100, 101, 103, 201, 203 (strace on qemu-utils 7.2). */
static void writer_bytes_match_qemu(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, WRITER_PERM, WRITER_SHARED), 0);
	assert_int_equal(held_bytes(f->probe_fd), B100 | B101 | B103 | B201 | B203);
	assert_int_equal(f->a.lock_perm, WRITER_PERM);
	assert_int_equal(f->a.lock_shared, LOCK_PERM_WRITE | LOCK_PERM_RESIZE);
	bdev_unlock(&f->a);
	assert_int_equal(held_bytes(f->probe_fd), 0);
	assert_int_equal(f->a.lock_perm, 0);
	assert_int_equal(f->a.lock_shared, 0);
}

/* A qcow2 backing file in qemu-io holds 100, 201, 203. */
static void reader_bytes_match_qemu(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), 0);
	assert_int_equal(held_bytes(f->probe_fd), B100 | B201 | B203);
}

static void readers_coexist(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), 0);
	assert_int_equal(bdev_lock(&f->b, READER_PERM, READER_SHARED), 0);
}

static void reader_refused_by_writer(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, WRITER_PERM, WRITER_SHARED), 0);
	err_clear();
	assert_int_equal(bdev_lock(&f->b, READER_PERM, READER_SHARED), -EAGAIN);
	assert_non_null(strstr(err_msg(), f->path));
	assert_non_null(strstr(err_msg(), "image is in use by another process (it holds the "
					  "\"write\" permission)"));
	/* The failed claim left nothing behind: the writer's bytes only. */
	assert_int_equal(f->b.lock_perm, 0);
	assert_int_equal(f->b.lock_shared, 0);
	assert_int_equal(held_bytes(f->probe_fd), B100 | B101 | B103 | B201 | B203);
	/* Without unsharing write, a reader may look (what -U means for QEMU's raw readers). */
	assert_int_equal(bdev_lock(&f->b, READER_PERM, LOCK_PERM_ALL), 0);
}

static void writer_refused_by_reader(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), 0);
	assert_int_equal(bdev_lock(&f->b, WRITER_PERM, WRITER_SHARED), -EAGAIN);
	assert_non_null(strstr(err_msg(), "it does not share the \"write\" permission"));
	assert_int_equal(held_bytes(f->probe_fd), B100 | B201 | B203);
}

static void writers_conflict(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, WRITER_PERM, WRITER_SHARED), 0);
	assert_int_equal(bdev_lock(&f->b, WRITER_PERM, WRITER_SHARED), -EAGAIN);
	/* Once the first writer is gone the second gets in. */
	bdev_unlock(&f->a);
	assert_int_equal(bdev_lock(&f->b, WRITER_PERM, WRITER_SHARED), 0);
}

/* Re-claiming changes the bytes in place: up to writer, back down to reader. */
static void upgrade_and_downgrade(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), 0);
	assert_int_equal(bdev_lock(&f->a, WRITER_PERM, WRITER_SHARED), 0);
	assert_int_equal(held_bytes(f->probe_fd), B100 | B101 | B103 | B201 | B203);
	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), 0);
	assert_int_equal(held_bytes(f->probe_fd), B100 | B201 | B203);
	assert_int_equal(f->a.lock_perm, READER_PERM);
	/* Sharing everything and using nothing holds no byte at all. */
	assert_int_equal(bdev_lock(&f->a, 0, LOCK_PERM_ALL), 0);
	assert_int_equal(held_bytes(f->probe_fd), 0);
}

/* A refused upgrade keeps the old claim intact (QEMU's abort path). */
static void failed_upgrade_restores(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), 0);
	assert_int_equal(bdev_lock(&f->b, READER_PERM, READER_SHARED), 0);
	assert_int_equal(bdev_lock(&f->a, WRITER_PERM, WRITER_SHARED), -EAGAIN);
	assert_int_equal(f->a.lock_perm, READER_PERM);
	assert_int_equal(f->a.lock_shared, LOCK_PERM_WRITE | LOCK_PERM_RESIZE);
	/* b alone must see a's reader bytes and nothing more (no stray 101/103). */
	bdev_unlock(&f->b);
	assert_int_equal(held_bytes(f->probe_fd), B100 | B201 | B203);
}

/* bdev_reopen_rw swaps a new description in under the same fd number (dup3): the old one's
 * locks are gone although the bookkeeping still lists them, and the new claim must be complete. */
static void claim_after_fd_swap(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), 0);
	int fd = open(f->path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(dup3(fd, f->a.fd, O_CLOEXEC) == f->a.fd);
	close(fd);
	assert_int_equal(held_bytes(f->probe_fd), 0);
	assert_int_equal(bdev_lock(&f->a, WRITER_PERM, WRITER_SHARED), 0);
	assert_int_equal(held_bytes(f->probe_fd), B100 | B101 | B103 | B201 | B203);
	bdev_unlock(&f->a);
	assert_int_equal(held_bytes(f->probe_fd), 0);
}

/* Locks live with the description: another process sees them, and they die with the holder. */
static void other_process_sees_locks(void **state)
{
	struct fixture *f = *state;
	int to_parent[2], to_child[2];
	char c;

	assert_int_equal(pipe(to_parent), 0);
	assert_int_equal(pipe(to_child), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct bdev bs;
		open_bdev(f, &bs);
		int ok = bdev_lock(&bs, WRITER_PERM, WRITER_SHARED) == 0;
		c = ok ? 'y' : 'n';
		if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	assert_int_equal(read(to_parent[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), -EAGAIN);
	assert_int_equal(write(to_child[1], "x", 1), 1);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), 0);
	close(to_parent[0]);
	close(to_parent[1]);
	close(to_child[0]);
	close(to_child[1]);
}

static void bad_fd_is_an_error(void **state)
{
	struct fixture *f = *state;
	int fd = f->a.fd;

	f->a.fd = -1;
	err_clear();
	assert_int_equal(bdev_lock(&f->a, READER_PERM, READER_SHARED), -EBADF);
	assert_non_null(strstr(err_msg(), f->path));
	/* Cleanup keeps the message of the failure. */
	bdev_unlock(&f->a);
	assert_non_null(strstr(err_msg(), "could not lock byte 100"));
	f->a.fd = fd;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(writer_bytes_match_qemu),	 T(reader_bytes_match_qemu),  T(readers_coexist),
	    T(reader_refused_by_writer), T(writer_refused_by_reader), T(writers_conflict),
	    T(upgrade_and_downgrade),	 T(failed_upgrade_restores),  T(other_process_sees_locks),
	    T(bad_fd_is_an_error),	 T(claim_after_fd_swap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
