/*
 * vhost-user-blk (vhost_user_blk.h): the front-end's messages and the connection's life. Each
 * request has a handler; handlers return 0 (done), 1 (refused: a REPLY_ACK front-end hears
 * "failed", the connection stays) or a negative errno (the front-end broke the protocol: it is
 * dropped, and the device waits for the next one).
 */
#include "serve/vhost_user_blk_int.h"
#include "block/block.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define TAG_SOCKET  1
#define ALL_RINGS   ((1u << VHOST_USER_BLK_MAX_QUEUES) - 1)
#define RING_BITS   ((1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC))
#define MAX_WORKERS 16

static const uint64_t protocol_offered = (1ull << VHOST_USER_PROTOCOL_F_MQ) |
					 (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
					 (1ull << VHOST_USER_PROTOCOL_F_CONFIG);

void vub_log(struct vhost_user_blk *d, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!d->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->o.log(d->o.log_opaque, msg);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* lock: a ring that has a kick descriptor but did not run yet starts once it has everything
 * else (size, addresses, memory), whatever order they came in. A broken ring waits for the
 * front-end to set it up again (SET_VRING_NUM, _ADDR or _KICK clear the mark). */
static void try_start(struct vhost_user_blk *d, unsigned i)
{
	struct vub_ring *r = &d->ring[i];

	if (r->started || r->broken || r->kick_fd < 0)
		return;
	vub_rings_pause(d, 1u << i);
	vub_ring_start(d, i, r->base);
	vub_rings_resume(d, 1u << i);
}

/* ---- handlers ---- */

/* The ring a message names (state, address, or the u64 of KICK/CALL/ERR). */
static int ring_index(const struct vhost_user_msg *m, unsigned *i)
{
	uint32_t idx;

	switch (m->hdr.request) {
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		idx = (uint32_t)(m->payload.u64 & VHOST_USER_VRING_IDX_MASK);
		break;
	case VHOST_USER_SET_VRING_ADDR:
		idx = m->payload.addr.index;
		break;
	default:
		idx = m->payload.state.index;
		break;
	}
	if (idx >= VHOST_USER_BLK_MAX_QUEUES)
		return err_set(EPROTO, "%s for ring %u (there are %u)",
			       vhost_user_request_name(m->hdr.request), idx,
			       VHOST_USER_BLK_MAX_QUEUES);
	*i = idx;
	return 0;
}

static int on_get_features(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	return vhost_user_reply_u64(d->fd, m->hdr.request, d->offered);
}

static int on_set_features(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	uint64_t v = m->payload.u64;

	if (v & ~d->offered)
		return err_set(EPROTO, "SET_FEATURES acks features 0x%llx that were not offered",
			       (unsigned long long)(v & ~d->offered));
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++) {
		if (d->ring[i].started && ((v ^ d->features) & RING_BITS)) {
			pthread_mutex_unlock(&d->lock);
			return err_set(EPROTO, "SET_FEATURES changes the ring features of a "
					       "running ring");
		}
	}
	d->features = v;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int on_get_protocol_features(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	return vhost_user_reply_u64(d->fd, m->hdr.request, protocol_offered);
}

static int on_set_protocol_features(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	uint64_t v = m->payload.u64;

	if (v & ~protocol_offered)
		return err_set(EPROTO,
			       "SET_PROTOCOL_FEATURES acks features 0x%llx that were not offered",
			       (unsigned long long)(v & ~protocol_offered));
	d->protocol = v;
	return 0;
}

static int on_nothing(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	return 0;
}

/* Deprecated; the spec's advice: disable every ring. */
static int on_reset_owner(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++)
		d->ring[i].enabled = false;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int on_get_queue_num(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	return vhost_user_reply_u64(d->fd, m->hdr.request, VHOST_USER_BLK_MAX_QUEUES);
}

/*
 * A new memory table replaces the old one with every ring paused: no I/O thread holds a pointer
 * into the old mappings when they go. Running rings start again where they were, in the new
 * mappings. A table that cannot be mapped leaves the old one in place.
 */
static int on_set_mem_table(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	struct vhost_user_mem mem;
	uint16_t at[VHOST_USER_BLK_MAX_QUEUES];
	bool was[VHOST_USER_BLK_MAX_QUEUES];
	int ret = vhost_user_mem_map(&mem, m);

	if (ret < 0)
		return ret;
	pthread_mutex_lock(&d->lock);
	vub_rings_pause(d, ALL_RINGS);
	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++) {
		was[i] = d->ring[i].started;
		at[i] = vub_ring_stop(d, i);
	}
	vhost_user_mem_unmap(&d->mem);
	d->mem = mem;
	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++)
		if (was[i] && !d->ring[i].broken)
			vub_ring_start(d, i, at[i]);
	vub_rings_resume(d, ALL_RINGS);
	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++)
		try_start(d, i);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* Dirty logging is for migration, which we do not offer (no VHOST_F_LOG_ALL). */
static int on_log(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	return err_set(EPROTO, "%s, but dirty logging was not offered",
		       vhost_user_request_name(m->hdr.request));
}

static int ring_not_running(struct vhost_user_blk *d, const struct vhost_user_msg *m, unsigned i)
{
	pthread_mutex_lock(&d->lock);
	bool started = d->ring[i].started;
	pthread_mutex_unlock(&d->lock);
	if (started)
		return err_set(EPROTO, "%s for ring %u while it runs",
			       vhost_user_request_name(m->hdr.request), i);
	return 0;
}

static int on_set_vring_num(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	uint32_t n = m->payload.state.num;
	unsigned i = 0;
	int ret = ring_index(m, &i);

	if (ret == 0)
		ret = ring_not_running(d, m, i);
	if (ret < 0)
		return ret;
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return err_set(EPROTO, "ring %u of %u entries (a power of two up to %u)", i, n,
			       VIRTQ_MAX_SIZE);
	d->ring[i].num = (uint16_t)n;
	pthread_mutex_lock(&d->lock);
	d->ring[i].broken = false;
	try_start(d, i);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int on_set_vring_base(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	uint32_t base = m->payload.state.num;
	unsigned i = 0;
	int ret = ring_index(m, &i);

	if (ret == 0)
		ret = ring_not_running(d, m, i);
	if (ret < 0)
		return ret;
	if (base > UINT16_MAX)
		return err_set(EPROTO, "ring %u based at %u (split rings count to 65535)", i, base);
	d->ring[i].base = (uint16_t)base;
	return 0;
}

/* The addresses are front-end user addresses, translated when the ring starts; a running ring
 * moves to them where it is. */
static int on_set_vring_addr(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	unsigned i = 0;
	int ret = ring_index(m, &i);

	if (ret < 0)
		return ret;
	if (m->payload.addr.flags & VHOST_VRING_F_LOG)
		return err_set(EPROTO, "ring %u asks for dirty logging, which was not offered", i);
	pthread_mutex_lock(&d->lock);
	struct vub_ring *r = &d->ring[i];
	vub_rings_pause(d, 1u << i);
	bool was = r->started;
	uint16_t at = vub_ring_stop(d, i);
	r->addr = m->payload.addr;
	r->addr_set = true;
	r->broken = false;
	if (was)
		vub_ring_start(d, i, at);
	vub_rings_resume(d, 1u << i);
	try_start(d, i);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* Stop the ring (its chains at the I/O threads complete first) and say where it stopped. */
static int on_get_vring_base(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	struct vhost_user_state st;
	unsigned i = 0;
	int ret = ring_index(m, &i);

	if (ret < 0)
		return ret;
	struct vub_ring *r = &d->ring[i];
	pthread_mutex_lock(&d->lock);
	vub_rings_pause(d, 1u << i);
	st.index = i;
	st.num = vub_ring_stop(d, i);
	/* The front-end hands over new descriptors when it starts the ring again. */
	close_fd(&r->call_fd);
	vub_ring_set_kick(d, i, -1);
	vub_rings_resume(d, 1u << i);
	pthread_mutex_unlock(&d->lock);
	return vhost_user_reply(d->fd, m->hdr.request, &st, sizeof(st));
}

/* Take the message's descriptor for ring use: non-blocking, so that a front-end that stops
 * reading its call eventfd cannot block an I/O thread, nor a spurious kick the loop. */
static int take_fd(struct vhost_user_msg *m, unsigned i)
{
	int fd = m->fds[0], fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return err_sys(errno, "%s for ring %u: a descriptor we cannot use",
			       vhost_user_request_name(m->hdr.request), i);
	m->fds[0] = -1;
	return fd;
}

static int on_set_vring_kick(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	unsigned i = 0;
	int fd, ret = ring_index(m, &i);

	if (ret < 0)
		return ret;
	if (m->payload.u64 & VHOST_USER_VRING_NOFD)
		return err_set(EPROTO,
			       "ring %u without a kick descriptor (polling) is not "
			       "supported",
			       i);
	fd = take_fd(m, i);
	if (fd < 0)
		return fd;
	struct vub_ring *r = &d->ring[i];
	pthread_mutex_lock(&d->lock);
	ret = vub_ring_set_kick(d, i, fd);
	if (ret == 0) {
		if (!r->started)
			r->broken = false;
		try_start(d, i);
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/* CALL and ERR: the descriptor replaces the old one under the lock (I/O threads signal it). */
static int on_set_vring_signal(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	unsigned i = 0;
	int fd = -1, ret = ring_index(m, &i);

	if (ret < 0)
		return ret;
	if (!(m->payload.u64 & VHOST_USER_VRING_NOFD) && (fd = take_fd(m, i)) < 0)
		return fd;
	pthread_mutex_lock(&d->lock);
	int *slot =
	    m->hdr.request == VHOST_USER_SET_VRING_CALL ? &d->ring[i].call_fd : &d->ring[i].err_fd;
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int on_set_vring_enable(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	uint32_t on = m->payload.state.num;
	unsigned i = 0;
	int ret = ring_index(m, &i);

	if (ret < 0)
		return ret;
	if (on > 1)
		return err_set(EPROTO, "SET_VRING_ENABLE %u for ring %u", on, i);
	pthread_mutex_lock(&d->lock);
	d->ring[i].enabled = on;
	if (on) {
		d->ring[i].pending = true;
		vub_wake(d);
	}
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* The config space read where the front-end asks (bytes past virtio_blk_config read 0). */
static int on_get_config(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	struct vhost_user_config *c = &m->payload.config;
	uint8_t space[VHOST_USER_MAX_CONFIG] = {0};

	memcpy(space, &d->cfg, sizeof(d->cfg));
	memcpy(c->region, space + c->offset, c->size);
	return vhost_user_reply(d->fd, m->hdr.request, c, 12 + c->size);
}

/* No field is writable: write-back caching is not negotiable (no VIRTIO_BLK_F_CONFIG_WCE). */
static int on_set_config(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	vub_log(d, "SET_CONFIG of %u bytes at offset %u refused: nothing there is writable",
		m->payload.config.size, m->payload.config.offset);
	return 1;
}

typedef int handler_fn(struct vhost_user_blk *d, struct vhost_user_msg *m);

static const struct {
	handler_fn *fn;
	bool replies; /* sends its own reply (REPLY_ACK adds none) */
} handlers[VHOST_USER_REQUEST_MAX] = {
    [VHOST_USER_GET_FEATURES] = {on_get_features, true},
    [VHOST_USER_SET_FEATURES] = {on_set_features, false},
    [VHOST_USER_SET_OWNER] = {on_nothing, false},
    [VHOST_USER_RESET_OWNER] = {on_reset_owner, false},
    [VHOST_USER_SET_MEM_TABLE] = {on_set_mem_table, false},
    [VHOST_USER_SET_LOG_BASE] = {on_log, false},
    [VHOST_USER_SET_LOG_FD] = {on_log, false},
    [VHOST_USER_SET_VRING_NUM] = {on_set_vring_num, false},
    [VHOST_USER_SET_VRING_ADDR] = {on_set_vring_addr, false},
    [VHOST_USER_SET_VRING_BASE] = {on_set_vring_base, false},
    [VHOST_USER_GET_VRING_BASE] = {on_get_vring_base, true},
    [VHOST_USER_SET_VRING_KICK] = {on_set_vring_kick, false},
    [VHOST_USER_SET_VRING_CALL] = {on_set_vring_signal, false},
    [VHOST_USER_SET_VRING_ERR] = {on_set_vring_signal, false},
    [VHOST_USER_GET_PROTOCOL_FEATURES] = {on_get_protocol_features, true},
    [VHOST_USER_SET_PROTOCOL_FEATURES] = {on_set_protocol_features, false},
    [VHOST_USER_GET_QUEUE_NUM] = {on_get_queue_num, true},
    [VHOST_USER_SET_VRING_ENABLE] = {on_set_vring_enable, false},
    [VHOST_USER_GET_CONFIG] = {on_get_config, true},
    [VHOST_USER_SET_CONFIG] = {on_set_config, false},
};

/* One message: check, handle, acknowledge. <0: drop the front-end. */
static int handle(struct vhost_user_blk *d, struct vhost_user_msg *m)
{
	uint32_t req = m->hdr.request;
	bool ack = (m->hdr.flags & VHOST_USER_FLAG_NEED_REPLY) &&
		   (d->protocol & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	int ret;

	if (d->o.trace)
		vub_log(d, "front-end: %s (%u bytes, %d descriptors)", vhost_user_request_name(req),
			m->hdr.size, m->nfds);
	ret = vhost_user_msg_check(m);
	if (ret == 0 && (req >= VHOST_USER_REQUEST_MAX || !handlers[req].fn))
		ret = err_set(EPROTO, "%s (request %u), which this back-end does not offer",
			      vhost_user_request_name(req), req);
	if (ret == 0)
		ret = handlers[req].fn(d, m);
	if (ack && (ret < 0 || !handlers[req].replies)) {
		char why[512];
		snprintf(why, sizeof(why), "%s", err_msg());
		int r = vhost_user_reply_u64(d->fd, req, ret != 0);
		if (ret < 0)
			err_set(-ret, "%s", why); /* the breach, not the reply, is the news */
		else if (r < 0)
			ret = r;
	}
	return ret < 0 ? ret : 0;
}

/* ---- the connection ---- */

static void rings_init(struct vhost_user_blk *d)
{
	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++) {
		struct vub_ring *r = &d->ring[i];
		memset(r, 0, sizeof(*r));
		r->kick_fd = r->call_fd = r->err_fd = -1;
		r->enabled = true;
	}
}

int vhost_user_blk_new(struct vhost_user_blk **out, const struct vhost_user_blk_opts *o)
{
	struct vhost_user_blk *d = calloc(1, sizeof(*d));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int ret, nw;

	if (!d)
		return err_set(ENOMEM, "out of memory");
	d->o = *o;
	d->fd = d->epfd = d->wepfd = d->work_fd = d->stop_fd = d->timer_fd = -1;
	d->read_only = o->read_only || o->bs->read_only;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->idle, NULL);
	rings_init(d);
	d->offered = virtio_blk_config_init(&d->cfg, o->bs, d->read_only, VHOST_USER_BLK_SEG_MAX,
					    VHOST_USER_BLK_MAX_QUEUES);
	d->offered |= (1ull << VIRTIO_BLK_F_MQ) | (1ull << VIRTIO_F_VERSION_1) |
		      (1ull << VHOST_USER_F_PROTOCOL_FEATURES) | RING_BITS;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0) {
		ret = err_sys(errno, "epoll_create1");
		vhost_user_blk_free(d);
		return ret;
	}
	/* The I/O threads overlap disk waits (and qcow2 metadata reads); idle ones cost nothing. */
	nw = o->workers > 0 ? o->workers : (int)(cpus > 2 ? 2 * cpus : 4);
	ret = vub_workers_start(d, nw < MAX_WORKERS ? nw : MAX_WORKERS);
	if (ret < 0) {
		vhost_user_blk_free(d);
		return ret;
	}
	*out = d;
	return 0;
}

int vhost_user_blk_attach(struct vhost_user_blk *d, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_SOCKET};

	if (d->fd >= 0)
		return err_set(EBUSY, "a front-end is attached already");
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return err_sys(errno, "watching the front-end's socket");
	d->fd = fd;
	d->features = d->protocol = 0;
	vhost_user_reader_init(&d->rd);
	return 0;
}

bool vhost_user_blk_attached(const struct vhost_user_blk *d)
{
	return d->fd >= 0;
}

int vhost_user_blk_fd(const struct vhost_user_blk *d)
{
	return d->epfd;
}

int vhost_user_blk_detach(struct vhost_user_blk *d)
{
	int ret = 0;

	if (d->fd < 0)
		return 0;
	pthread_mutex_lock(&d->lock);
	vub_rings_pause(d, ALL_RINGS);
	for (unsigned i = 0; i < VHOST_USER_BLK_MAX_QUEUES; i++) {
		struct vub_ring *r = &d->ring[i];
		vub_ring_stop(d, i);
		vub_ring_set_kick(d, i, -1);
		close_fd(&r->call_fd);
		close_fd(&r->err_fd);
	}
	rings_init(d);
	pthread_mutex_unlock(&d->lock);
	vhost_user_mem_unmap(&d->mem);
	vhost_user_reader_next(&d->rd);
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->fd, NULL);
	close(d->fd);
	d->fd = -1;
	if (!d->read_only)
		ret = bdev_flush(d->o.bs);
	return ret;
}

/* Messages until the socket is dry. <0: drop the front-end. */
static int read_messages(struct vhost_user_blk *d)
{
	for (;;) {
		int ret = vhost_user_read(&d->rd, d->fd);
		if (ret <= 0)
			return ret;
		ret = handle(d, &d->rd.msg);
		vhost_user_reader_next(&d->rd);
		if (ret < 0)
			return ret;
	}
}

bool vhost_user_blk_dispatch(struct vhost_user_blk *d)
{
	struct epoll_event ev[1];
	int n = epoll_wait(d->epfd, ev, 1, 0);

	for (int k = 0; k < n && d->fd >= 0; k++) {
		int ret = read_messages(d);
		if (ret == 0)
			continue;
		if (ret == -ECONNRESET)
			vub_log(d, "the front-end has gone");
		else
			vub_log(d, "front-end dropped: %s", err_msg());
		if (vhost_user_blk_detach(d) < 0)
			vub_log(d, "%s", err_msg());
	}
	return d->fd >= 0;
}

void vhost_user_blk_free(struct vhost_user_blk *d)
{
	if (!d)
		return;
	if (vhost_user_blk_detach(d) < 0)
		vub_log(d, "%s", err_msg());
	vub_workers_stop(d);
	if (d->epfd >= 0)
		close(d->epfd);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->idle);
	free(d);
}
