/*
 * vhost-user-blk (serve/vhost_user*.c) driven by a hand-written front-end over a socketpair:
 * message checks, the reader (split headers, descriptors that ride along, hostile headers), the
 * memory table (memfd regions, overlap, short files, wrap-around), and the device end to end:
 * rings in a memfd "guest RAM", requests read, written, flushed, discarded and zeroed on a raw
 * image checked with pread, malformed chains, a new memory table under a running ring, protocol
 * breaches that drop the front-end, and the next front-end served after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
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

#define HANG_MS	 60000 /* only a hung back-end gets this far */
#define GPA	 0x100000ull
#define RAM	 (1u << 20)
#define MAP_OFF	 0x3000ull /* the region starts this far into its file */
#define UVA	 0x7f1200000000ull
#define QSIZE	 16
#define DESC	 (GPA + 0x0000)
#define AVAIL	 (GPA + 0x1000)
#define USED	 (GPA + 0x2000)
#define BUF	 (GPA + 0x10000)
#define DISK	 (1u << 20)
#define NEED_RPL VHOST_USER_FLAG_NEED_REPLY

/* ---- a front-end ---- */

static int memfd(size_t size)
{
	int fd = memfd_create("guest-ram", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void send_msg(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
		     const int *fds, int nfds)
{
	struct vhost_user_hdr h = {req, VHOST_USER_VERSION | flags, size};
	struct iovec v[2] = {{&h, sizeof(h)}, {(void *)payload, size}};
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_iov = v, .msg_iovlen = size ? 2 : 1};

	if (nfds) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), sizeof(h) + size);
}

/* Read a reply to req; returns its payload size. */
static uint32_t recv_reply(int fd, uint32_t req, void *payload, size_t cap)
{
	struct vhost_user_hdr h;
	struct pollfd p = {fd, POLLIN, 0};

	assert_int_equal(poll(&p, 1, HANG_MS), 1);
	assert_int_equal(recv(fd, &h, sizeof(h), MSG_WAITALL), sizeof(h));
	assert_int_equal(h.request, req);
	assert_int_equal(h.flags, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY);
	assert_true(h.size <= cap);
	if (h.size)
		assert_int_equal(recv(fd, payload, h.size, MSG_WAITALL), h.size);
	return h.size;
}

struct fe {
	int fd; /* the front-end's end */
	struct vhost_user_blk *d;
	struct bdev *bs;
	char img[64];
	int ram_fd;
	uint8_t *ram; /* guest RAM as the front-end maps it (file offset MAP_OFF) */
	int kick, call, err;
	uint16_t avail;
};

static uint8_t *g(struct fe *f, uint64_t gpa)
{
	return f->ram + (gpa - GPA);
}

static bool pump(struct fe *f)
{
	return vhost_user_blk_dispatch(f->d);
}

static void msg(struct fe *f, uint32_t req, uint32_t flags, const void *p, uint32_t size)
{
	send_msg(f->fd, req, flags, p, size, NULL, 0);
	assert_true(pump(f));
}

static uint64_t get_u64(struct fe *f, uint32_t req)
{
	uint64_t v = 0;

	msg(f, req, 0, NULL, 0);
	assert_int_equal(recv_reply(f->fd, req, &v, sizeof(v)), 8);
	return v;
}

static void set_u64(struct fe *f, uint32_t req, uint64_t v)
{
	msg(f, req, 0, &v, sizeof(v));
}

static void vstate(struct fe *f, uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_user_state s = {index, num};
	msg(f, req, 0, &s, sizeof(s));
}

static void ring_fd(struct fe *f, uint32_t req, uint32_t index, int fd)
{
	uint64_t v = index;
	send_msg(f->fd, req, 0, &v, sizeof(v), &fd, 1);
	assert_true(pump(f));
}

static void mem_table(struct fe *f, uint64_t uva, uint32_t flags)
{
	struct vhost_user_memory t = {.nregions = 1};

	t.regions[0] = (struct vhost_user_region){GPA, RAM, uva, MAP_OFF};
	send_msg(f->fd, VHOST_USER_SET_MEM_TABLE, flags, &t, 8 + 32, &f->ram_fd, 1);
	assert_true(pump(f));
}

static void attach_pair(struct fe *f)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	f->fd = sv[0];
	assert_int_equal(vhost_user_blk_attach(f->d, sv[1]), 0);
}

static void log_line(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "back-end: %s\n", line);
}

static struct fe *fe_new_opts(bool read_only, int coalesce_us)
{
	struct fe *f = calloc(1, sizeof(*f));
	uint8_t *pat = malloc(DISK);
	struct vhost_user_blk_opts o = {.read_only = read_only, .serial = "disk-serial-1234567890"};

	strcpy(f->img, "/tmp/test_vhost_user_XXXXXX");
	int fd = mkstemp(f->img);
	assert_true(fd >= 0);
	for (unsigned i = 0; i < DISK; i++)
		pat[i] = (uint8_t)(i * 7 + i / 4096);
	assert_int_equal(pwrite(fd, pat, DISK, 0), DISK);
	close(fd);
	free(pat);
	assert_int_equal(bdev_open(&f->bs, f->img, "raw", BDEV_O_RDWR), 0);
	o.bs = f->bs;
	o.workers = 3;
	o.coalesce_us = coalesce_us;
	o.log = log_line;
	o.trace = getenv("TEST_TRACE") != NULL;
	assert_int_equal(vhost_user_blk_new(&f->d, &o), 0);
	f->ram_fd = memfd(MAP_OFF + RAM);
	f->ram = mmap(NULL, MAP_OFF + RAM, PROT_READ | PROT_WRITE, MAP_SHARED, f->ram_fd, 0);
	assert_true(f->ram != MAP_FAILED);
	f->ram += MAP_OFF;
	f->kick = eventfd(0, EFD_CLOEXEC);
	f->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	attach_pair(f);
	return f;
}

static struct fe *fe_new(bool read_only)
{
	return fe_new_opts(read_only, 0);
}

static void fe_free(struct fe *f)
{
	vhost_user_blk_free(f->d);
	bdev_close(f->bs);
	unlink(f->img);
	munmap(f->ram - MAP_OFF, MAP_OFF + RAM);
	close(f->ram_fd);
	close(f->kick);
	close(f->call);
	close(f->err);
	close(f->fd);
	free(f);
}

/* The start-up QEMU does: features, protocol features, config, memory, ring 0; EVENT_IDX left
 * out unless event_idx. */
static void negotiate_and_start_idx(struct fe *f, bool event_idx)
{
	uint64_t feat = get_u64(f, VHOST_USER_GET_FEATURES);
	uint64_t proto = get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES);
	struct vhost_user_addr a = {
	    0, 0, UVA + (DESC - GPA), UVA + (USED - GPA), UVA + (AVAIL - GPA), 0};

	assert_true(proto & (1ull << VHOST_USER_PROTOCOL_F_CONFIG));
	set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, proto);
	msg(f, VHOST_USER_SET_OWNER, 0, NULL, 0);
	assert_true(feat & (1ull << VIRTIO_RING_F_EVENT_IDX));
	if (!event_idx)
		feat &= ~(1ull << VIRTIO_RING_F_EVENT_IDX); /* an interrupt for every request */
	set_u64(f, VHOST_USER_SET_FEATURES, feat);
	mem_table(f, UVA, 0);
	vstate(f, VHOST_USER_SET_VRING_NUM, 0, QSIZE);
	vstate(f, VHOST_USER_SET_VRING_BASE, 0, 0);
	msg(f, VHOST_USER_SET_VRING_ADDR, 0, &a, sizeof(a));
	ring_fd(f, VHOST_USER_SET_VRING_CALL, 0, f->call);
	ring_fd(f, VHOST_USER_SET_VRING_ERR, 0, f->err);
	ring_fd(f, VHOST_USER_SET_VRING_KICK, 0, f->kick);
	vstate(f, VHOST_USER_SET_VRING_ENABLE, 0, 1);
}

static void negotiate_and_start(struct fe *f)
{
	negotiate_and_start_idx(f, false);
}

static void set_desc(struct fe *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *p = g(f, table) + 16 * i;
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void publish(struct fe *f, uint16_t head)
{
	memcpy(g(f, AVAIL + 4 + 2 * (f->avail % QSIZE)), &head, 2);
	f->avail++;
	__atomic_store_n((uint16_t *)g(f, AVAIL + 2), f->avail, __ATOMIC_RELEASE);
}

static uint16_t used_idx(struct fe *f)
{
	return __atomic_load_n((uint16_t *)g(f, USED + 2), __ATOMIC_ACQUIRE);
}

static bool wait_fd(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	uint64_t v;

	if (poll(&p, 1, HANG_MS) != 1)
		return false;
	return read(fd, &v, sizeof(v)) == sizeof(v);
}

/* Kick ring 0 and wait until `want` chains are used; returns the last one's used length. */
static uint32_t kick_and_wait(struct fe *f, uint16_t want)
{
	uint32_t len;

	assert_int_equal(eventfd_write(f->kick, 1), 0);
	assert_true(pump(f));
	while (used_idx(f) != want)
		assert_true(wait_fd(f->call));
	memcpy(&len, g(f, USED + 4 + 8 * ((want - 1) % QSIZE) + 4), 4);
	return len;
}

/* A request: header at BUF, data at BUF + 0x1000 (out or in), status at BUF + 0x800. */
static uint8_t request(struct fe *f, uint32_t type, uint64_t sector, uint32_t len, bool in,
		       uint32_t *used)
{
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};
	uint16_t head = (uint16_t)((f->avail * 3) % QSIZE);
	uint16_t d1 = (head + 1) % QSIZE, d2 = (head + 2) % QSIZE;
	uint8_t *st = g(f, BUF + 0x800);

	memcpy(g(f, BUF), &h, sizeof(h));
	*st = 0xee;
	if (len) {
		set_desc(f, DESC, head, BUF, sizeof(h), VRING_DESC_F_NEXT, d1);
		set_desc(f, DESC, d1, BUF + 0x1000, len,
			 VRING_DESC_F_NEXT | (in ? VRING_DESC_F_WRITE : 0), d2);
		set_desc(f, DESC, d2, BUF + 0x800, 1, VRING_DESC_F_WRITE, 0);
	} else {
		set_desc(f, DESC, head, BUF, sizeof(h), VRING_DESC_F_NEXT, d1);
		set_desc(f, DESC, d1, BUF + 0x800, 1, VRING_DESC_F_WRITE, 0);
	}
	publish(f, head);
	*used = kick_and_wait(f, f->avail);
	return *st;
}

static void disk_bytes(struct fe *f, uint64_t off, void *buf, size_t len)
{
	int fd = open(f->img, O_RDONLY);
	assert_int_equal(pread(fd, buf, len, (off_t)off), len);
	close(fd);
}

/* ---- message checks and the reader ---- */

static void check(uint32_t req, uint32_t size, int nfds, int want)
{
	struct vhost_user_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr = (struct vhost_user_hdr){req, VHOST_USER_VERSION, size};
	m.nfds = nfds;
	assert_int_equal(vhost_user_msg_check(&m), want);
}

static void msg_check_sizes(void **state)
{
	struct vhost_user_msg m;

	check(VHOST_USER_GET_FEATURES, 0, 0, 0);
	check(VHOST_USER_GET_FEATURES, 0, 1, -EPROTO); /* a descriptor where none belongs */
	check(VHOST_USER_SET_FEATURES, 8, 0, 0);
	check(VHOST_USER_SET_FEATURES, 4, 0, -EPROTO);
	check(VHOST_USER_SET_VRING_NUM, 8, 0, 0);
	check(VHOST_USER_SET_VRING_NUM, 12, 0, -EPROTO);
	check(VHOST_USER_SET_VRING_ADDR, 40, 0, 0);
	check(VHOST_USER_SET_VRING_ADDR, 32, 0, -EPROTO);
	check(VHOST_USER_SET_VRING_KICK, 8, 1, 0);
	check(VHOST_USER_SET_VRING_KICK, 8, 0, -EPROTO);
	check(VHOST_USER_SET_VRING_KICK, 8, 2, -EPROTO);
	check(VHOST_USER_SET_MEM_TABLE, 8, 0, 0);
	check(VHOST_USER_SET_MEM_TABLE, 4, 0, -EPROTO);
	memset(&m, 0, sizeof(m));
	m.hdr = (struct vhost_user_hdr){VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, 8};
	m.payload.u64 = VHOST_USER_VRING_NOFD | 3;
	assert_int_equal(vhost_user_msg_check(&m), 0);
	m.nfds = 1;
	assert_int_equal(vhost_user_msg_check(&m), -EPROTO);
	/* memory tables by their own count */
	m.hdr = (struct vhost_user_hdr){VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, 8 + 64};
	m.payload.memory.nregions = 2;
	m.nfds = 2;
	assert_int_equal(vhost_user_msg_check(&m), 0);
	m.nfds = 1;
	assert_int_equal(vhost_user_msg_check(&m), -EPROTO);
	m.nfds = 2;
	m.hdr.size = 8 + 32;
	assert_int_equal(vhost_user_msg_check(&m), -EPROTO);
	m.payload.memory.nregions = 9;
	m.hdr.size = 8 + 9 * 32;
	m.nfds = 9;
	assert_int_equal(vhost_user_msg_check(&m), -EPROTO);
	/* config spaces: inside 256 bytes, the size the payload says, no wrap */
	m.hdr = (struct vhost_user_hdr){VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, 12 + 60};
	m.nfds = 0;
	m.payload.config.offset = 0;
	m.payload.config.size = 60;
	assert_int_equal(vhost_user_msg_check(&m), 0);
	m.payload.config.offset = 200;
	assert_int_equal(vhost_user_msg_check(&m), -EPROTO);
	m.payload.config.offset = UINT32_MAX - 10;
	assert_int_equal(vhost_user_msg_check(&m), -EPROTO);
	m.payload.config.offset = 0;
	m.payload.config.size = 61;
	assert_int_equal(vhost_user_msg_check(&m), -EPROTO);
	assert_string_equal(vhost_user_request_name(VHOST_USER_SET_VRING_KICK), "SET_VRING_KICK");
	assert_string_equal(vhost_user_request_name(9999), "unknown");
}

static void reader_pieces_and_fds(void **state)
{
	struct vhost_user_reader r;
	int sv[2], fds[2];
	struct vhost_user_hdr h = {VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION, 8};
	uint64_t v = 2;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fds[0] = eventfd(0, 0);
	fds[1] = eventfd(0, 0);
	vhost_user_reader_init(&r);
	/* the header in two pieces (descriptor on the first), then the payload */
	send_msg(sv[0], 0, 0, NULL, 0, NULL, 0); /* a whole empty NONE message first */
	assert_int_equal(vhost_user_read(&r, sv[1]), 1);
	assert_int_equal(r.msg.hdr.request, 0);
	assert_int_equal(r.msg.nfds, 0);
	vhost_user_reader_next(&r);
	struct iovec io = {&h, 5};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {
	    .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fds[0], sizeof(int));
	assert_int_equal(sendmsg(sv[0], &mh, 0), 5);
	assert_int_equal(vhost_user_read(&r, sv[1]), 0);
	assert_int_equal(write(sv[0], (uint8_t *)&h + 5, 7), 7);
	assert_int_equal(vhost_user_read(&r, sv[1]), 0);
	/* the payload, and the next message with its own descriptor right behind it */
	assert_int_equal(write(sv[0], &v, 8), 8);
	send_msg(sv[0], VHOST_USER_SET_VRING_KICK, 0, &v, 8, &fds[1], 1);
	assert_int_equal(vhost_user_read(&r, sv[1]), 1);
	assert_int_equal(r.msg.hdr.request, VHOST_USER_SET_VRING_CALL);
	assert_int_equal(r.msg.payload.u64, 2);
	assert_int_equal(r.msg.nfds, 1);
	vhost_user_reader_next(&r);
	assert_int_equal(vhost_user_read(&r, sv[1]), 1);
	assert_int_equal(r.msg.hdr.request, VHOST_USER_SET_VRING_KICK);
	assert_int_equal(r.msg.nfds, 1);
	vhost_user_reader_next(&r);
	assert_int_equal(vhost_user_read(&r, sv[1]), 0);
	/* hostile headers */
	h = (struct vhost_user_hdr){VHOST_USER_GET_FEATURES, 2, 0}; /* version 2 */
	assert_int_equal(write(sv[0], &h, 12), 12);
	assert_int_equal(vhost_user_read(&r, sv[1]), -EPROTO);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	vhost_user_reader_init(&r);
	h = (struct vhost_user_hdr){VHOST_USER_GET_FEATURES, 1 | VHOST_USER_FLAG_REPLY, 0};
	assert_int_equal(write(sv[0], &h, 12), 12);
	assert_int_equal(vhost_user_read(&r, sv[1]), -EPROTO);
	vhost_user_reader_init(&r);
	h = (struct vhost_user_hdr){VHOST_USER_GET_FEATURES, 1, VHOST_USER_MAX_PAYLOAD + 1};
	assert_int_equal(write(sv[0], &h, 12), 12);
	assert_int_equal(vhost_user_read(&r, sv[1]), -EPROTO);
	/* nine descriptors on one message */
	vhost_user_reader_init(&r);
	int nine[9];
	for (int i = 0; i < 9; i++)
		nine[i] = fds[0];
	send_msg(sv[0], VHOST_USER_SET_MEM_TABLE, 0, &v, 8, nine, 9);
	assert_int_equal(vhost_user_read(&r, sv[1]), -EPROTO);
	vhost_user_reader_next(&r);
	/* hung up in the middle of a message, and between messages */
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	vhost_user_reader_init(&r);
	h = (struct vhost_user_hdr){VHOST_USER_SET_FEATURES, 1, 8};
	assert_int_equal(write(sv[0], &h, 12), 12);
	close(sv[0]);
	assert_int_equal(vhost_user_read(&r, sv[1]), -ECONNRESET);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	vhost_user_reader_init(&r);
	close(sv[0]);
	assert_int_equal(vhost_user_read(&r, sv[1]), -ECONNRESET);
	close(sv[1]);
	close(fds[0]);
	close(fds[1]);
}

/* ---- the memory table ---- */

static int map_table(struct vhost_user_mem *mem, const struct vhost_user_region *r, unsigned n,
		     const int *fds)
{
	struct vhost_user_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr = (struct vhost_user_hdr){VHOST_USER_SET_MEM_TABLE, 1, 8 + 32 * n};
	m.payload.memory.nregions = n;
	memcpy(m.payload.memory.regions, r, n * sizeof(*r));
	memcpy(m.fds, fds, n * sizeof(int));
	m.nfds = (int)n;
	memset(mem, 0, sizeof(*mem));
	return vhost_user_mem_map(mem, &m);
}

static void mem_table_checks(void **state)
{
	struct vhost_user_mem mem;
	int a = memfd(0x20000), b = memfd(0x10000), p[2];
	uint64_t gpa;
	struct vhost_user_region two[2] = {{0, 0xa0000 - 0x90000, 0x1000000, 0x10000},
					   {0x100000, 0x10000, 0x2000000, 0}};

	/* two regions, the first 64 KiB into its file */
	assert_int_equal(map_table(&mem, two, 2, (int[]){a, b}), 0);
	assert_int_equal(mem.mem.nregions, 2);
	uint8_t *host = mem.mem.r[0].host;
	host[5] = 0x5a;
	uint8_t check_byte;
	assert_int_equal(pread(a, &check_byte, 1, 0x10000 + 5), 1);
	assert_int_equal(check_byte, 0x5a); /* shared with the front-end's file */
	assert_true(vhost_user_mem_uva_to_gpa(&mem, 0x2000010, 0x100, &gpa));
	assert_true(gpa == 0x100010);
	assert_false(vhost_user_mem_uva_to_gpa(&mem, 0x2000010, 0x10000, &gpa)); /* past the end */
	assert_false(vhost_user_mem_uva_to_gpa(&mem, 0x3000000, 1, &gpa));
	assert_ptr_equal(virtio_mem_range(&mem.mem, 0x100000, 0x10000), mem.mem.r[1].host);
	assert_null(virtio_mem_range(&mem.mem, 0x100000, 0x10001));
	vhost_user_mem_unmap(&mem);
	assert_int_equal(mem.n, 0);

	struct vhost_user_region r[2];
	/* overlapping guest ranges, overlapping user ranges */
	memcpy(r, two, sizeof(r));
	r[1].guest_phys_addr = 0x8000;
	assert_int_equal(map_table(&mem, r, 2, (int[]){a, b}), -EINVAL);
	memcpy(r, two, sizeof(r));
	r[1].userspace_addr = 0x1008000;
	assert_int_equal(map_table(&mem, r, 2, (int[]){a, b}), -EINVAL);
	/* a file shorter than offset + size, a size of 0, sums that wrap */
	memcpy(r, two, sizeof(r));
	r[1].mmap_offset = 0x1000;
	assert_int_equal(map_table(&mem, r, 2, (int[]){a, b}), -EINVAL);
	memcpy(r, two, sizeof(r));
	r[0].memory_size = 0;
	assert_int_equal(map_table(&mem, r, 2, (int[]){a, b}), -EINVAL);
	memcpy(r, two, sizeof(r));
	r[1].guest_phys_addr = UINT64_MAX - 0x100;
	assert_int_equal(map_table(&mem, r, 2, (int[]){a, b}), -EINVAL);
	memcpy(r, two, sizeof(r));
	r[1].mmap_offset = UINT64_MAX - 0x100;
	assert_int_equal(map_table(&mem, r, 2, (int[]){a, b}), -EINVAL);
	/* not a regular file */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(map_table(&mem, two, 2, (int[]){a, p[0]}), -EINVAL);
	assert_int_equal(mem.n, 0);
	close(p[0]);
	close(p[1]);
	close(a);
	close(b);
}

/* ---- the device ---- */

static void device_negotiation(void **state)
{
	struct fe *f = fe_new(false);
	struct vhost_user_config c = {.offset = 0, .size = 60};
	struct virtio_blk_config cfg;

	uint64_t feat = get_u64(f, VHOST_USER_GET_FEATURES);
	assert_true(feat & (1ull << VIRTIO_F_VERSION_1));
	assert_true(feat & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	assert_true(feat & (1ull << VIRTIO_RING_F_EVENT_IDX));
	assert_true(feat & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	assert_true(feat & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_true(feat & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_true(feat & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_true(feat & (1ull << VIRTIO_BLK_F_MQ));
	assert_false(feat & (1ull << VIRTIO_BLK_F_RO));
	assert_int_equal(get_u64(f, VHOST_USER_GET_QUEUE_NUM), VHOST_USER_BLK_MAX_QUEUES);
	/* GET_CONFIG answers exactly the bytes asked for */
	msg(f, VHOST_USER_GET_CONFIG, 0, &c, 12 + 60);
	assert_int_equal(recv_reply(f->fd, VHOST_USER_GET_CONFIG, &c, sizeof(c)), 12 + 60);
	memcpy(&cfg, c.region, sizeof(cfg));
	assert_int_equal(cfg.capacity, DISK / 512);
	assert_int_equal(cfg.seg_max, VHOST_USER_BLK_SEG_MAX);
	assert_int_equal(cfg.blk_size, 512);
	assert_int_equal(cfg.num_queues, VHOST_USER_BLK_MAX_QUEUES);
	c = (struct vhost_user_config){.offset = 8, .size = 4};
	msg(f, VHOST_USER_GET_CONFIG, 0, &c, 12 + 4);
	assert_int_equal(recv_reply(f->fd, VHOST_USER_GET_CONFIG, &c, sizeof(c)), 16);
	assert_int_equal(c.offset, 8);
	uint32_t size_max;
	memcpy(&size_max, c.region, 4);
	assert_int_equal(size_max, 0);
	/* REPLY_ACK: a refused SET_CONFIG says 1 and the front-end stays; a good message says 0 */
	set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
	c = (struct vhost_user_config){.offset = 32, .size = 1};
	msg(f, VHOST_USER_SET_CONFIG, NEED_RPL, &c, 13);
	uint64_t ack = 7;
	assert_int_equal(recv_reply(f->fd, VHOST_USER_SET_CONFIG, &ack, 8), 8);
	assert_int_equal(ack, 1);
	mem_table(f, UVA, NEED_RPL);
	assert_int_equal(recv_reply(f->fd, VHOST_USER_SET_MEM_TABLE, &ack, 8), 8);
	assert_int_equal(ack, 0);
	/* features that were not offered: dropped (after a failure ack) */
	uint64_t bogus = 1ull << 63;
	send_msg(f->fd, VHOST_USER_SET_PROTOCOL_FEATURES, NEED_RPL, &bogus, 8, NULL, 0);
	assert_false(pump(f));
	assert_int_equal(recv_reply(f->fd, VHOST_USER_SET_PROTOCOL_FEATURES, &ack, 8), 8);
	assert_int_equal(ack, 1);
	fe_free(f);
}

static void device_io(void **state)
{
	struct fe *f = fe_new(false);
	uint8_t want[8192], got[8192];
	uint32_t used;

	negotiate_and_start(f);
	/* read 8 KiB at sector 10 */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 10, 8192, true, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 8192 + 1);
	disk_bytes(f, 10 * 512, want, 8192);
	assert_memory_equal(g(f, BUF + 0x1000), want, 8192);
	/* write 4 KiB at sector 100, read back from the file */
	memset(g(f, BUF + 0x1000), 0xc3, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 100, 4096, false, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
	disk_bytes(f, 100 * 512, got, 4096);
	memset(want, 0xc3, 4096);
	assert_memory_equal(got, want, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, false, &used), VIRTIO_BLK_S_OK);
	/* the serial, cut to 20 bytes */
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, 20, true, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 21);
	assert_memory_equal(g(f, BUF + 0x1000), "disk-serial-12345678", 20);
	/* write zeroes with unmap, and discard */
	struct virtio_blk_discard_write_zeroes seg = {
	    .sector = 200, .num_sectors = 16, .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP};
	memcpy(g(f, BUF + 0x1000), &seg, sizeof(seg));
	assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, sizeof(seg), false, &used),
			 VIRTIO_BLK_S_OK);
	disk_bytes(f, 200 * 512, got, 8192);
	memset(want, 0, 8192);
	assert_memory_equal(got, want, 8192);
	seg = (struct virtio_blk_discard_write_zeroes){.sector = 0, .num_sectors = 8};
	memcpy(g(f, BUF + 0x1000), &seg, sizeof(seg));
	assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, sizeof(seg), false, &used),
			 VIRTIO_BLK_S_OK);
	/* past the end of the disk, unknown types */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, DISK / 512 - 1, 1024, true, &used),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, 77, 0, 512, true, &used), VIRTIO_BLK_S_UNSUPP);
	/* GET_VRING_BASE stops the ring where it is */
	struct vhost_user_state st = {0, 0};
	msg(f, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st));
	assert_int_equal(recv_reply(f->fd, VHOST_USER_GET_VRING_BASE, &st, sizeof(st)), 8);
	assert_int_equal(st.index, 0);
	assert_int_equal(st.num, f->avail);
	fe_free(f);
}

static void device_read_only(void **state)
{
	struct fe *f = fe_new(true);
	uint32_t used;
	uint8_t before[4096], after[4096];

	uint64_t feat = get_u64(f, VHOST_USER_GET_FEATURES);
	assert_true(feat & (1ull << VIRTIO_BLK_F_RO));
	assert_false(feat & (1ull << VIRTIO_BLK_F_DISCARD));
	negotiate_and_start(f);
	disk_bytes(f, 0, before, 4096);
	memset(g(f, BUF + 0x1000), 0x11, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 4096, false, &used), VIRTIO_BLK_S_IOERR);
	disk_bytes(f, 0, after, 4096);
	assert_memory_equal(before, after, 4096);
	fe_free(f);
}

/* A descriptor loop breaks ring 0: the error eventfd fires, nothing is used; once the front-end
 * sets the ring up again (here: from scratch at the same base) it serves. */
static void device_broken_ring(void **state)
{
	struct fe *f = fe_new(false);
	uint32_t used;

	negotiate_and_start(f);
	set_desc(f, DESC, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, BUF, 16, VRING_DESC_F_NEXT, 0);
	publish(f, 0);
	assert_int_equal(eventfd_write(f->kick, 1), 0);
	assert_true(pump(f));
	assert_true(wait_fd(f->err));
	assert_int_equal(used_idx(f), 0);
	/* the front-end is still served: stop, rebase past the bad chain, start again */
	struct vhost_user_state st = {0, 0};
	msg(f, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st));
	assert_int_equal(recv_reply(f->fd, VHOST_USER_GET_VRING_BASE, &st, sizeof(st)), 8);
	assert_int_equal(st.num, 0); /* the bad chain was never taken */
	uint16_t one = 1;	     /* the guest's view: the bad chain completed (reset) */
	memcpy(g(f, USED + 2), &one, 2);
	vstate(f, VHOST_USER_SET_VRING_BASE, 0, 1);
	ring_fd(f, VHOST_USER_SET_VRING_CALL, 0, f->call);
	ring_fd(f, VHOST_USER_SET_VRING_KICK, 0, f->kick);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512, true, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used_idx(f), 2);
	fe_free(f);
}

/* Interrupt coalescing (--coalesce-us): five reads in flight on ring 0 at once, done by three
 * I/O threads. Every one completes with its data, and the interrupt for the last of them comes:
 * with EVENT_IDX the guest asks for one interrupt only, at the last entry (used_event), so a
 * completion held back and never signalled leaves wait_fd to time out; without it, at least the
 * signals that bring the used index to the end. A bound long (100 ms) and short, 20 rounds each. */
static void device_coalesced_interrupts(void **state)
{
	static const struct {
		int us;
		bool event_idx;
	} cfg[] = {{50, true}, {100000, true}, {1, true}, {50, false}};
	uint64_t v;

	for (unsigned c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
		struct fe *f = fe_new_opts(false, cfg[c].us);
		uint8_t want[4096];
		unsigned n = QSIZE / 3; /* three descriptors each */

		negotiate_and_start_idx(f, cfg[c].event_idx);
		for (unsigned round = 0; round < 20; round++) {
			uint16_t end = (uint16_t)(f->avail + n), ask = (uint16_t)(end - 1);
			memcpy(g(f, AVAIL + 4 + 2 * QSIZE), &ask, 2); /* used_event */
			while (read(f->call, &v, sizeof(v)) == sizeof(v))
				; /* signals of the last round that came after we looked */
			for (unsigned k = 0; k < n; k++) {
				/* chain k: header, 4 KiB in, status: descriptors 3k to 3k+2 */
				uint64_t hdr = BUF + 0x20000 + 64 * k, st = hdr + 32;
				uint64_t data = BUF + 0x30000 + 4096 * (uint64_t)k;
				struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_IN,
							      .sector = 8 * (uint64_t)(k + round)};
				memcpy(g(f, hdr), &h, sizeof(h));
				*g(f, st) = 0xee;
				set_desc(f, DESC, 3 * k, hdr, sizeof(h), VRING_DESC_F_NEXT, 3 * k + 1);
				set_desc(f, DESC, 3 * k + 1, data, 4096,
					 VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3 * k + 2);
				set_desc(f, DESC, 3 * k + 2, st, 1, VRING_DESC_F_WRITE, 0);
				publish(f, (uint16_t)(3 * k));
			}
			assert_int_equal(eventfd_write(f->kick, 1), 0);
			assert_true(pump(f));
			/* each pass needs a signal; the first round's first completion may signal
			 * early (a ring's first completion always does) */
			do
				assert_true(wait_fd(f->call));
			while (used_idx(f) != end);
			for (unsigned k = 0; k < n; k++) {
				assert_int_equal(*g(f, BUF + 0x20000 + 64 * k + 32), VIRTIO_BLK_S_OK);
				disk_bytes(f, 4096 * (uint64_t)(k + round), want, 4096);
				assert_memory_equal(g(f, BUF + 0x30000 + 4096 * (uint64_t)k), want, 4096);
			}
		}
		fe_free(f);
	}
}

/* A guest that sends one request at a time, with coalescing bounded at 100 s: the ring's tries
 * size their windows from the rate it was completing requests at (twice the time per request),
 * not from the bound, and give up (nothing to gather), so each of 300 reads is answered long
 * before wait_fd's hang guard (a window of the bound would leave the first try's reads
 * unanswered for 100 s). EVENT_IDX, the guest asking at every entry, as Linux does. */
static void device_coalescing_depth_one(void **state)
{
	struct fe *f = fe_new_opts(false, 100000000);
	uint8_t want[512];
	uint32_t used;

	negotiate_and_start_idx(f, true);
	for (unsigned k = 0; k < 300; k++) {
		uint16_t ask = f->avail; /* used_event: the entry this request will fill */
		memcpy(g(f, AVAIL + 4 + 2 * QSIZE), &ask, 2);
		assert_int_equal(request(f, VIRTIO_BLK_T_IN, k % 64, 512, true, &used),
				 VIRTIO_BLK_S_OK);
		disk_bytes(f, 512 * (uint64_t)(k % 64), want, 512);
		assert_memory_equal(g(f, BUF + 0x1000), want, 512);
	}
	assert_int_equal(used_idx(f), 300 % 65536);
	fe_free(f);
}

/* A new memory table while ring 0 runs: same RAM at another user address and offset; the ring
 * carries on in the new mapping. */
static void device_new_mem_table(void **state)
{
	struct fe *f = fe_new(false);
	uint32_t used;

	negotiate_and_start(f);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512, true, &used), VIRTIO_BLK_S_OK);
	mem_table(f, UVA, 0); /* same table again: rings restart where they were */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 1, 512, true, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used_idx(f), 2);
	/* a table that does not hold the ring any more: the ring breaks, the front-end stays */
	struct vhost_user_memory t = {.nregions = 1};
	t.regions[0] = (struct vhost_user_region){GPA + RAM, RAM, UVA + RAM, MAP_OFF};
	send_msg(f->fd, VHOST_USER_SET_MEM_TABLE, 0, &t, 40, &f->ram_fd, 1);
	assert_true(pump(f));
	assert_true(wait_fd(f->err));
	fe_free(f);
}

/* Protocol breaches drop the front-end; the device then takes the next one. */
static void device_breach_and_next_front_end(void **state)
{
	struct fe *f = fe_new(false);
	struct vhost_user_state st = {VHOST_USER_BLK_MAX_QUEUES, 16};
	char c;

	negotiate_and_start(f);
	send_msg(f->fd, VHOST_USER_SET_VRING_NUM, 0, &st, sizeof(st), NULL, 0);
	assert_false(pump(f));
	assert_false(vhost_user_blk_attached(f->d));
	assert_int_equal(recv(f->fd, &c, 1, 0), 0); /* hung up on */
	close(f->fd);
	/* the next one: a running ring may not be resized; an unknown request */
	attach_pair(f);
	f->avail = 0;
	memset(f->ram, 0, 0x3000);
	negotiate_and_start(f);
	uint32_t used;
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512, true, &used), VIRTIO_BLK_S_OK);
	st = (struct vhost_user_state){0, 32};
	send_msg(f->fd, VHOST_USER_SET_VRING_NUM, 0, &st, sizeof(st), NULL, 0);
	assert_false(pump(f));
	close(f->fd);
	attach_pair(f);
	send_msg(f->fd, 31 /* GET_INFLIGHT_FD, never offered */, 0, NULL, 0, NULL, 0);
	assert_false(pump(f));
	close(f->fd);
	/* a memory table the back-end cannot map */
	attach_pair(f);
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct vhost_user_memory t = {.nregions = 1};
	t.regions[0] = (struct vhost_user_region){GPA, RAM, UVA, 0};
	send_msg(f->fd, VHOST_USER_SET_MEM_TABLE, 0, &t, 40, &p[0], 1);
	assert_false(pump(f));
	close(p[0]);
	close(p[1]);
	/* and a front-end that simply goes away */
	close(f->fd);
	attach_pair(f);
	close(f->fd);
	assert_false(pump(f));
	f->fd = -1;
	attach_pair(f);
	fe_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(msg_check_sizes),
	    cmocka_unit_test(reader_pieces_and_fds),
	    cmocka_unit_test(mem_table_checks),
	    cmocka_unit_test(device_negotiation),
	    cmocka_unit_test(device_io),
	    cmocka_unit_test(device_read_only),
	    cmocka_unit_test(device_broken_ring),
	    cmocka_unit_test(device_coalesced_interrupts),
	    cmocka_unit_test(device_coalescing_depth_one),
	    cmocka_unit_test(device_new_mem_table),
	    cmocka_unit_test(device_breach_and_next_front_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
