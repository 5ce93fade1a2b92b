/*
 * Fuzz target: the vhost-user-blk back-end's message reader and handlers on untrusted bytes.
 *
 * The input is what a front-end writes on the socket: headers and payloads, cut into messages
 * by the size each header claims (the last one may be short). Descriptors go along where the
 * protocol has them, so the handlers past the descriptor checks are reached: each
 * SET_MEM_TABLE carries one 64 KiB memfd per region it claims (up to 8), each SET_VRING_KICK,
 * _CALL and _ERR without the no-descriptor bit an eventfd. The device (one I/O thread, a 1 MiB
 * raw image) handles every message as the server would, replies are read and thrown away, and
 * the front-end hangs up at the end; the device must be ready for the next one each time.
 * Crashes, sanitizer reports, leaked descriptors (the fd count before and after) and hangs are
 * the findings.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "block/block.h"
#include "serve/vhost_user.h"
#include "serve/vhost_user_blk.h"

#define DISK (1u << 20)
#define RAM  (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vhost_user_blk *device(void)
{
	static struct vhost_user_blk *d;
	char path[64];
	struct bdev *bs = NULL;

	if (d)
		return d;
	int fd = memfd_create("vufuzz-disk", 0);
	if (fd < 0 || ftruncate(fd, DISK) < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (bdev_open(&bs, path, "raw", BDEV_O_RDWR | BDEV_O_FORCE_SHARE) < 0)
		abort();
	close(fd);
	struct vhost_user_blk_opts o = {.bs = bs, .workers = 1, .serial = "fuzz"};
	if (vhost_user_blk_new(&d, &o) < 0)
		abort();
	return d;
}

static int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	if (!dir)
		abort();
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

/* The descriptors a message of this header and payload carries. */
static int make_fds(const struct vhost_user_hdr *h, const uint8_t *p, size_t len, int *fds)
{
	int n = 0;

	if (h->request == VHOST_USER_SET_MEM_TABLE && len >= 4) {
		uint32_t regions;
		memcpy(&regions, p, 4);
		int ram = memfd_create("vufuzz-ram", 0);
		if (ram < 0 || ftruncate(ram, RAM) < 0)
			abort();
		for (; n < (int)regions && n < VHOST_USER_MAX_FDS; n++)
			fds[n] = dup(ram);
		close(ram);
	} else if ((h->request == VHOST_USER_SET_VRING_KICK ||
		    h->request == VHOST_USER_SET_VRING_CALL ||
		    h->request == VHOST_USER_SET_VRING_ERR) &&
		   len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		if (!(v & VHOST_USER_VRING_NOFD))
			fds[n++] = eventfd(0, EFD_NONBLOCK);
	}
	return n;
}

static void send_piece(int fd, const uint8_t *p, size_t len, const int *fds, int nfds)
{
	struct iovec v = {(void *)p, len};
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = &v, .msg_iovlen = 1};

	if (nfds) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the device hung up on us: the rest goes nowhere */
	}
}

static void drain(int fd)
{
	uint8_t buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhost_user_blk *d = device();
	int before = count_fds(), sv[2];
	bool up = true;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (vhost_user_blk_attach(d, sv[1]) < 0)
		abort();
	while (size && up) {
		struct vhost_user_hdr h = {0, 0, 0};
		size_t hl = size < sizeof(h) ? size : sizeof(h), pl;
		int fds[VHOST_USER_MAX_FDS], n;
		memcpy(&h, data, hl);
		pl = size - hl < h.size ? size - hl : h.size;
		n = make_fds(&h, data + hl, pl, fds);
		send_piece(sv[0], data, hl + pl, fds, n);
		for (int i = 0; i < n; i++)
			close(fds[i]);
		data += hl + pl;
		size -= hl + pl;
		up = vhost_user_blk_dispatch(d);
		drain(sv[0]);
	}
	close(sv[0]);
	while (vhost_user_blk_attached(d))
		vhost_user_blk_dispatch(d);
	if (count_fds() != before)
		abort(); /* a descriptor the device kept after the front-end went */
	return 0;
}
