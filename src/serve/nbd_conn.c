/*
 * One client of the NBD server, on the event loop's thread only: bytes in through the protocol
 * state machine (nbd_proto.c), requests out to the worker pool, replies back in the order the
 * workers finish them (NBD lets a server answer out of order; cookies match them up).
 *
 * A connection never holds more than NBD_MAX_INFLIGHT requests (or NBD_MAX_INFLIGHT_BYTES of
 * payload) between decoding and the last byte of the reply: past that the server stops reading
 * from it, so a client that pipelines without reading replies only fills its own socket.
 */
#include "serve/nbd_int.h"
#include "serve/nbd_tls.h"
#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEND_IOV 64

static bool throttled(const struct nbd_conn *c)
{
	return c->pending >= NBD_MAX_INFLIGHT || c->pending_bytes >= NBD_MAX_INFLIGHT_BYTES;
}

static bool can_read(const struct nbd_conn *c)
{
	return !c->dead && !c->closing && !throttled(c) &&
	       (c->tls_state == TLS_NONE || c->tls_state == TLS_UP);
}

bool nbd_conn_has_work(const struct nbd_conn *c)
{
	return c->stalled && can_read(c);
}

void nbd_job_free(struct nbd_server *srv, struct nbd_job *job)
{
	if (job->payload)
		nbd_server_buf_put(srv, job->payload, job->payload_cap);
	if (job->reply.data)
		nbd_server_buf_put(srv, job->reply.data, job->reply.cap);
	free(job);
}

static void job_done(struct nbd_conn *c, struct nbd_job *job)
{
	c->pending--;
	c->pending_bytes -= job->cost;
	nbd_job_free(c->srv, job);
}

void nbd_conn_drop(struct nbd_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->tls)
		nbd_tls_free(c->tls);
	c->tls = NULL;
	epoll_ctl(nbd_server_epoll(c->srv), EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->wjob)
		job_done(c, c->wjob);
	c->wjob = NULL;
	while (c->q_head) {
		struct nbd_job *j = c->q_head;
		c->q_head = j->next;
		job_done(c, j);
	}
	c->q_tail = NULL;
	free(c->in);
	c->in = NULL;
	nbd_buf_free(&c->out);
}

__attribute__((format(printf, 2, 3))) static void conn_fail(struct nbd_conn *c, const char *fmt,
							    ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	nbd_server_log(c->srv, "client %u (%s): %s; dropped", c->id, c->peer, msg);
	nbd_conn_drop(c);
}

static ssize_t conn_recv(struct nbd_conn *c, void *buf, size_t len)
{
	if (c->tls_state == TLS_UP)
		return nbd_tls_recv(c->tls, buf, len);
	ssize_t n = recv(c->fd, buf, len, 0);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -EAGAIN;
	return err_sys(errno, "receive failed");
}

static ssize_t conn_sendv(struct nbd_conn *c, struct iovec *iov, int n)
{
	if (c->tls_state == TLS_UP)
		return nbd_tls_send(c->tls, iov[0].iov_base, iov[0].iov_len);
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -EAGAIN;
	return err_sys(errno, "send failed");
}

/* Replies out, oldest first (TLS: one buffer per call, as records must be resent unchanged after
 * EAGAIN). False when the connection was dropped. */
static bool conn_flush(struct nbd_conn *c)
{
	while (c->out_sent < c->out.len) {
		struct iovec v = {c->out.data + c->out_sent, c->out.len - c->out_sent};
		ssize_t n = conn_sendv(c, &v, 1);
		if (n == -EAGAIN)
			return true;
		if (n < 0) {
			conn_fail(c, "%s", err_msg());
			return false;
		}
		c->out_sent += (size_t)n;
	}
	c->out.len = c->out_sent = 0;
	if (c->tls_state == TLS_PENDING)
		c->tls_state = TLS_HANDSHAKE; /* the ACK went out in the clear */
	while (c->q_head) {
		struct iovec iov[SEND_IOV];
		int n = 0;
		for (struct nbd_job *j = c->q_head; j && n < SEND_IOV; j = j->next) {
			iov[n].iov_base = j->reply.data + j->sent;
			iov[n++].iov_len = j->reply.len - j->sent;
		}
		ssize_t r = conn_sendv(c, iov, n);
		if (r == -EAGAIN)
			return true;
		if (r < 0) {
			conn_fail(c, "%s", err_msg());
			return false;
		}
		while (c->q_head && (size_t)r >= c->q_head->reply.len - c->q_head->sent) {
			struct nbd_job *j = c->q_head;
			r -= (ssize_t)(j->reply.len - j->sent);
			c->q_head = j->next;
			job_done(c, j);
		}
		if (!c->q_head)
			c->q_tail = NULL;
		else
			c->q_head->sent += (size_t)r;
	}
	return true;
}

static void queue_reply(struct nbd_conn *c, struct nbd_job *j)
{
	j->next = NULL;
	if (c->q_tail)
		c->q_tail->next = j;
	else
		c->q_head = j;
	c->q_tail = j;
}

static void start_job(struct nbd_conn *c, struct nbd_job *j)
{
	if (j->req.error) { /* no I/O: answer here */
		nbd_exec(&j->ctx, &j->req, NULL, &j->reply);
		queue_reply(c, j);
		return;
	}
	c->at_workers++;
	nbd_server_dispatch(c->srv, j);
}

static void conn_request(struct nbd_conn *c, const struct nbd_request *req)
{
	struct nbd_job *j = calloc(1, sizeof(*j));

	if (!j) {
		conn_fail(c, "out of memory for a request");
		return;
	}
	j->conn = c;
	j->req = *req;
	j->ctx = (struct nbd_exec_ctx){nbd_server_bdev(c->srv), c->s.structured, c->s.meta_base,
				       c->s.meta_depth};
	if (req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE)
		j->cost = req->len;
	c->pending++;
	c->pending_bytes += j->cost;
	if (req->type == NBD_CMD_WRITE && req->len) {
		j->payload = nbd_server_buf_get(c->srv, req->len, &j->payload_cap);
		if (!j->payload) {
			job_done(c, j);
			conn_fail(c, "out of memory for a write of %u bytes", req->len);
			return;
		}
		size_t n = c->in_len - c->in_pos;
		if (n > req->len)
			n = req->len;
		memcpy(j->payload, c->in + c->in_pos, n);
		c->in_pos += n;
		c->wgot = n;
		if (n < req->len) {
			c->wjob = j;
			return;
		}
	}
	start_job(c, j);
}

static void conn_starttls(struct nbd_conn *c)
{
	if (c->in_pos != c->in_len) {
		conn_fail(c, "sent more data after NBD_OPT_STARTTLS before the TLS handshake");
		return;
	}
	if (nbd_tls_new(&c->tls, nbd_server_creds(c->srv), c->fd) < 0) {
		conn_fail(c, "%s", err_msg());
		return;
	}
	c->tls_state = TLS_PENDING;
}

/* Handle every complete message in the input buffer, until one makes the connection wait. */
static void conn_process(struct nbd_conn *c)
{
	while (!c->dead && !c->wjob && can_read(c)) {
		struct nbd_request req;
		size_t used;
		enum nbd_event ev = nbd_session_feed(&c->s, c->in + c->in_pos,
						     c->in_len - c->in_pos, &used, &c->out, &req);
		c->in_pos += used;
		if (c->out.oom) {
			conn_fail(c, "out of memory for a reply");
			return;
		}
		switch (ev) {
		case NBD_EV_MORE:
			return;
		case NBD_EV_OK:
			break;
		case NBD_EV_GO:
			c->negotiated = true;
			break;
		case NBD_EV_STARTTLS:
			conn_starttls(c);
			return;
		case NBD_EV_REQUEST:
			conn_request(c, &req);
			break;
		case NBD_EV_DISC:
		case NBD_EV_ABORT:
			c->closing = true;
			return;
		case NBD_EV_CLOSE:
			conn_fail(c, "%s", c->s.why);
			return;
		}
	}
}

static void conn_eof(struct nbd_conn *c, ssize_t n)
{
	if (n < 0)
		conn_fail(c, "%s", err_msg());
	else if (c->wjob)
		conn_fail(c, "disconnected after %zu of the %u bytes of a write", c->wgot,
			  c->wjob->req.len);
	else if (c->in_len > c->in_pos)
		conn_fail(c, "disconnected in the middle of a message (%zu bytes of it sent)",
			  c->in_len - c->in_pos);
	else
		c->closing = true; /* what is in flight is still answered, if the client listens */
}

/* A WRITE's payload, straight into its buffer. False: wait (or the connection is gone). */
static bool read_payload(struct nbd_conn *c)
{
	struct nbd_job *j = c->wjob;
	ssize_t n = conn_recv(c, j->payload + c->wgot, j->req.len - c->wgot);

	if (n == -EAGAIN)
		return false;
	if (n <= 0) {
		conn_eof(c, n);
		return false;
	}
	c->wgot += (size_t)n;
	if (c->wgot == j->req.len) {
		c->wjob = NULL;
		start_job(c, j);
	}
	return true;
}

/* Read and handle input until the socket runs dry or the connection must wait. */
static void conn_read(struct nbd_conn *c)
{
	c->stalled = false;
	while (can_read(c)) {
		if (c->wjob) {
			if (!read_payload(c))
				return;
			continue;
		}
		conn_process(c);
		if (c->wjob)
			continue;
		if (!can_read(c)) {
			c->stalled = !c->dead && throttled(c);
			return;
		}
		if (c->in_pos) {
			memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
			c->in_len -= c->in_pos;
			c->in_pos = 0;
		}
		ssize_t n = conn_recv(c, c->in + c->in_len, NBD_IN_CAP - c->in_len);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			conn_eof(c, n);
			return;
		}
		c->in_len += (size_t)n;
	}
}

static void conn_update(struct nbd_conn *c)
{
	uint32_t ev = 0;

	if (c->tls_state == TLS_HANDSHAKE) {
		ev = nbd_tls_want_write(c->tls) ? EPOLLOUT : EPOLLIN;
	} else {
		if (can_read(c))
			ev |= EPOLLIN;
		if (c->out_sent < c->out.len || c->q_head)
			ev |= EPOLLOUT;
	}
	if (ev == c->events)
		return;
	struct epoll_event e = {.events = ev, .data.ptr = c};
	epoll_ctl(nbd_server_epoll(c->srv), EPOLL_CTL_MOD, c->fd, &e);
	c->events = ev;
}

static void conn_service(struct nbd_conn *c)
{
	for (int round = 0; round < 8 && !c->dead; round++) {
		if (c->tls_state == TLS_HANDSHAKE) {
			int r = nbd_tls_handshake(c->tls);
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				conn_fail(c, "%s", err_msg());
				return;
			}
			c->tls_state = TLS_UP;
			nbd_session_tls_up(&c->s);
		}
		if (can_read(c))
			conn_read(c);
		if (c->dead || !conn_flush(c))
			return;
		if (c->tls_state == TLS_HANDSHAKE)
			continue; /* the STARTTLS ACK is out: the handshake can start */
		if (!(c->stalled && can_read(c)))
			break;
	}
	if (c->dead)
		return;
	if (c->closing && !c->at_workers && !c->wjob && !c->q_head && c->out_sent == c->out.len) {
		nbd_conn_drop(c);
		return;
	}
	conn_update(c);
}

void nbd_conn_event(struct nbd_conn *c, uint32_t events)
{
	if (c->dead)
		return;
	if ((events & (EPOLLERR | EPOLLHUP)) && !can_read(c) && c->tls_state != TLS_HANDSHAKE) {
		/* Gone while we were not reading: nothing to tell it any more. */
		nbd_conn_drop(c);
		return;
	}
	conn_service(c);
}

void nbd_conn_complete(struct nbd_conn *c, struct nbd_job *job)
{
	c->at_workers--;
	if (c->dead) {
		job_done(c, job);
		return;
	}
	if (job->reply.oom) {
		job_done(c, job);
		conn_fail(c, "out of memory for a reply");
		return;
	}
	queue_reply(c, job);
	conn_service(c);
}

void nbd_conn_shutdown(struct nbd_conn *c)
{
	if (c->dead)
		return;
	c->s.shutting_down = true;
	if (!c->negotiated || c->wjob) {
		nbd_conn_drop(c);
		return;
	}
	c->closing = true;
	conn_service(c);
}

struct nbd_conn *nbd_conn_new(struct nbd_server *srv, int fd, unsigned id, const char *peer)
{
	struct nbd_conn *c = calloc(1, sizeof(*c));

	if (!c || !(c->in = malloc(NBD_IN_CAP))) {
		free(c);
		return NULL;
	}
	c->srv = srv;
	c->fd = fd;
	c->id = id;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	nbd_session_start(&c->s, nbd_server_export(srv), nbd_server_creds(srv) != NULL, &c->out);
	struct epoll_event e = {.events = 0, .data.ptr = c};
	if (c->out.oom || epoll_ctl(nbd_server_epoll(srv), EPOLL_CTL_ADD, fd, &e) < 0) {
		nbd_buf_free(&c->out);
		free(c->in);
		free(c);
		return NULL;
	}
	conn_service(c);
	return c;
}
