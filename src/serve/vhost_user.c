/* vhost-user messages: names, payload checks, reading with descriptors, replies (vhost_user.h). */
#include "serve/vhost_user.h"
#include "util/error.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *const names[VHOST_USER_REQUEST_MAX] = {
    [VHOST_USER_NONE] = "NONE",
    [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
    [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
    [VHOST_USER_SET_OWNER] = "SET_OWNER",
    [VHOST_USER_RESET_OWNER] = "RESET_OWNER",
    [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
    [VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
    [VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
    [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
    [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
    [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
    [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
    [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
    [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
    [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
    [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
    [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
    [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
    [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
    [19] = "SEND_RARP",
    [20] = "NET_SET_MTU",
    [21] = "SET_BACKEND_REQ_FD",
    [22] = "IOTLB_MSG",
    [23] = "SET_VRING_ENDIAN",
    [VHOST_USER_GET_CONFIG] = "GET_CONFIG",
    [VHOST_USER_SET_CONFIG] = "SET_CONFIG",
    [26] = "CREATE_CRYPTO_SESSION",
    [27] = "CLOSE_CRYPTO_SESSION",
    [28] = "POSTCOPY_ADVISE",
    [29] = "POSTCOPY_LISTEN",
    [30] = "POSTCOPY_END",
    [31] = "GET_INFLIGHT_FD",
    [32] = "SET_INFLIGHT_FD",
    [33] = "GPU_SET_SOCKET",
    [34] = "RESET_DEVICE",
    [35] = "VRING_KICK",
    [36] = "GET_MAX_MEM_SLOTS",
    [37] = "ADD_MEM_REG",
    [38] = "REM_MEM_REG",
    [39] = "SET_STATUS",
    [40] = "GET_STATUS",
};

const char *vhost_user_request_name(uint32_t request)
{
	return request < VHOST_USER_REQUEST_MAX && names[request] ? names[request] : "unknown";
}

/* The fixed payload size of a request, or -1 when it has none we check here. */
static int fixed_size(uint32_t request)
{
	switch (request) {
	case VHOST_USER_SET_FEATURES:
	case VHOST_USER_SET_PROTOCOL_FEATURES:
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		return sizeof(uint64_t);
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_ENABLE:
		return sizeof(struct vhost_user_state);
	case VHOST_USER_SET_VRING_ADDR:
		return sizeof(struct vhost_user_addr);
	default:
		return -1;
	}
}

/* The descriptors request may bring: exactly *want, or up to *want when !exact. */
static void fds_allowed(const struct vhost_user_msg *m, int *want, bool *exact)
{
	*exact = true;
	switch (m->hdr.request) {
	case VHOST_USER_SET_MEM_TABLE:
		*want = (int)m->payload.memory.nregions;
		return;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		*want = (m->payload.u64 & VHOST_USER_VRING_NOFD) ? 0 : 1;
		return;
	case VHOST_USER_SET_LOG_BASE:
	case VHOST_USER_SET_LOG_FD:
		*want = 1;
		*exact = false;
		return;
	default:
		*want = 0;
		return;
	}
}

int vhost_user_msg_check(const struct vhost_user_msg *m)
{
	const char *name = vhost_user_request_name(m->hdr.request);
	uint32_t size = m->hdr.size;
	int fixed = fixed_size(m->hdr.request), want;
	bool exact;

	if (fixed >= 0 && size != (uint32_t)fixed)
		return err_set(EPROTO, "%s with a payload of %u bytes (%d expected)", name, size,
			       fixed);
	if (m->hdr.request == VHOST_USER_SET_MEM_TABLE) {
		const struct vhost_user_memory *t = &m->payload.memory;
		if (size < 8)
			return err_set(EPROTO, "%s with a payload of %u bytes", name, size);
		if (t->nregions > VHOST_USER_MAX_REGIONS)
			return err_set(EPROTO, "%s with %u regions (at most %u)", name, t->nregions,
				       VHOST_USER_MAX_REGIONS);
		if (size != 8 + 32 * t->nregions)
			return err_set(EPROTO, "%s of %u regions in a payload of %u bytes", name,
				       t->nregions, size);
	}
	if (m->hdr.request == VHOST_USER_GET_CONFIG || m->hdr.request == VHOST_USER_SET_CONFIG) {
		const struct vhost_user_config *c = &m->payload.config;
		if (size < 12)
			return err_set(EPROTO, "%s with a payload of %u bytes", name, size);
		if (c->size > VHOST_USER_MAX_CONFIG || c->offset > VHOST_USER_MAX_CONFIG - c->size)
			return err_set(EPROTO, "%s of %u bytes at offset %u (the space has %u)",
				       name, c->size, c->offset, VHOST_USER_MAX_CONFIG);
		if (size != 12 + c->size)
			return err_set(EPROTO, "%s of %u bytes in a payload of %u bytes", name,
				       c->size, size);
	}
	fds_allowed(m, &want, &exact);
	if (exact ? m->nfds != want : m->nfds > want)
		return err_set(EPROTO, "%s with %d file descriptors (%s%d expected)", name, m->nfds,
			       exact ? "" : "at most ", want);
	return 0;
}

void vhost_user_msg_close_fds(struct vhost_user_msg *m)
{
	for (int i = 0; i < m->nfds; i++) {
		if (m->fds[i] >= 0)
			close(m->fds[i]);
		m->fds[i] = -1;
	}
	m->nfds = 0;
}

void vhost_user_reader_init(struct vhost_user_reader *r)
{
	memset(&r->msg.hdr, 0, sizeof(r->msg.hdr));
	r->msg.nfds = 0;
	r->have = 0;
}

void vhost_user_reader_next(struct vhost_user_reader *r)
{
	vhost_user_msg_close_fds(&r->msg);
	vhost_user_reader_init(r);
}

/* Keep the descriptors a piece of the message brought; refuse more than a message may carry. */
static int take_fds(struct vhost_user_reader *r, struct msghdr *mh)
{
	int ret = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		const int *fds = (const int *)CMSG_DATA(c);
		for (int i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, fds + i, sizeof(fd));
			if (r->msg.nfds < VHOST_USER_MAX_FDS)
				r->msg.fds[r->msg.nfds++] = fd;
			else {
				close(fd);
				ret =
				    err_set(EPROTO, "a message with more than %d file descriptors",
					    VHOST_USER_MAX_FDS);
			}
		}
	}
	if (ret == 0 && (mh->msg_flags & MSG_CTRUNC))
		ret = err_set(EPROTO, "a message with more than %d file descriptors",
			      VHOST_USER_MAX_FDS);
	return ret;
}

/* The header is in: is it a request we can read the payload of? */
static int header_ok(const struct vhost_user_hdr *h)
{
	if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		return err_set(EPROTO, "%s of protocol version %u (1 expected)",
			       vhost_user_request_name(h->request),
			       h->flags & VHOST_USER_VERSION_MASK);
	if (h->flags & VHOST_USER_FLAG_REPLY)
		return err_set(EPROTO, "a reply (%s) where a request belongs",
			       vhost_user_request_name(h->request));
	if (h->size > VHOST_USER_MAX_PAYLOAD)
		return err_set(EPROTO, "%s with a payload of %u bytes (at most %u)",
			       vhost_user_request_name(h->request), h->size,
			       VHOST_USER_MAX_PAYLOAD);
	return 0;
}

int vhost_user_read(struct vhost_user_reader *r, int fd)
{
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;

	for (;;) {
		bool in_hdr = r->have < VHOST_USER_HDR_SIZE;
		size_t want;
		uint8_t *at;
		if (in_hdr) {
			at = (uint8_t *)&r->msg.hdr + r->have;
			want = VHOST_USER_HDR_SIZE - r->have;
		} else {
			size_t got = r->have - VHOST_USER_HDR_SIZE;
			if (got == r->msg.hdr.size)
				return 1;
			at = r->msg.payload.raw + got;
			want = r->msg.hdr.size - got;
		}
		struct iovec v = {at, want};
		struct msghdr mh = {.msg_iov = &v,
				    .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf)};
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return err_sys(errno, "reading from the front-end");
		}
		int ret = take_fds(r, &mh);
		if (ret < 0)
			return ret;
		if (n == 0)
			return r->have
				   ? err_set(ECONNRESET, "the front-end hung up in the middle of "
							 "a message")
				   : err_set(ECONNRESET, "the front-end hung up");
		r->have += (size_t)n;
		if (in_hdr && r->have == VHOST_USER_HDR_SIZE && (ret = header_ok(&r->msg.hdr)) < 0)
			return ret;
	}
}

int vhost_user_reply(int fd, uint32_t req, const void *payload, uint32_t size)
{
	struct vhost_user_hdr h = {req, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY, size};
	struct iovec v[2] = {{&h, sizeof(h)}, {(void *)payload, size}};
	struct msghdr mh = {.msg_iov = v, .msg_iovlen = size ? 2 : 1};
	ssize_t n;

	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return err_set(EPROTO, "the front-end does not read its replies");
	if (n < 0)
		return err_sys(errno, "replying to %s", vhost_user_request_name(req));
	if ((size_t)n != sizeof(h) + size)
		return err_set(EPROTO, "the front-end does not read its replies");
	return 0;
}

int vhost_user_reply_u64(int fd, uint32_t req, uint64_t v)
{
	return vhost_user_reply(fd, req, &v, sizeof(v));
}
