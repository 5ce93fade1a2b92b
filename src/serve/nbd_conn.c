/*
 * One client of the NBD server: bytes in through the protocol state machine (nbd_proto.c),
 * requests out to the worker pool in batches, replies back in the order the workers finish
 * them (NBD lets a server answer out of order; cookies match them up).
 *
 * The event loop owns the socket for reading and the handshake. Replies of the transmission
 * phase are sent by whoever has one ready, under the connection's lock: a worker sends its own
 * reply straight away when the connection is plain and nothing is queued before it, so a
 * request costs one hand-off (loop to worker), not two. A reply the socket cannot take whole is
 * queued, and the loop finishes it when the socket is writable. TLS records are only ever
 * written by the loop (a GnuTLS session is not shared between threads).
 *
 * A connection never holds more than NBD_MAX_INFLIGHT requests (or NBD_MAX_INFLIGHT_BYTES of
 * payload) between decoding and the last byte of the reply: past that the server stops reading
 * from it, so a client that pipelines without reading replies only fills its own socket.
 */
#include "serve/nbd_int.h"
#include "serve/nbd_tls.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEND_IOV 64

/* With c->lock held. */
static bool throttled(const struct nbd_conn *c)
{
	return c->pending >= NBD_MAX_INFLIGHT || c->pending_bytes >= NBD_MAX_INFLIGHT_BYTES;
}

/* Loop thread: may the loop read from the socket now? */
static bool can_read(struct nbd_conn *c)
{
	if (c->tls_state != TLS_NONE && c->tls_state != TLS_UP)
		return false;
	pthread_mutex_lock(&c->lock);
	bool ok = !c->dead && !c->closing && !throttled(c);
	pthread_mutex_unlock(&c->lock);
	return ok;
}

bool nbd_conn_has_work(struct nbd_conn *c)
{
	return c->stalled && can_read(c);
}

bool nbd_conn_take_notify(struct nbd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	bool n = c->notify;
	c->notify = false;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void nbd_job_free(struct nbd_server *srv, struct nbd_job *job)
{
	free(job->fp.p);
	if (job->payload)
		nbd_server_buf_put(srv, job->payload, job->payload_cap);
	if (job->reply.data)
		nbd_server_buf_put(srv, job->reply.data, job->reply.cap);
	free(job);
}

/* With c->lock held. */
static void job_done(struct nbd_conn *c, struct nbd_job *job)
{
	c->pending--;
	c->pending_bytes -= job->cost;
	nbd_job_free(c->srv, job);
}

/* With c->lock held. */
static void queue_reply(struct nbd_conn *c, struct nbd_job *j)
{
	j->next = NULL;
	if (c->q_tail)
		c->q_tail->next = j;
	else
		c->q_head = j;
	c->q_tail = j;
}

static void free_list(struct nbd_conn *c, struct nbd_job *j)
{
	while (j) {
		struct nbd_job *next = j->next;
		job_done(c, j);
		j = next;
	}
}

void nbd_conn_drop(struct nbd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->dead) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->dead = true; /* workers see it before the descriptor goes */
	free_list(c, c->q_head);
	c->q_head = c->q_tail = NULL;
	if (c->wjob)
		job_done(c, c->wjob);
	free_list(c, c->batch_head);
	pthread_mutex_unlock(&c->lock);
	c->wjob = c->batch_head = c->batch_tail = NULL;
	c->nbatch = 0;
	if (c->tls)
		nbd_tls_free(c->tls);
	c->tls = NULL;
	epoll_ctl(nbd_server_epoll(c->srv), EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	free(c->in);
	c->in = NULL;
	nbd_buf_free(&c->out);
}

bool nbd_conn_reap(struct nbd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	bool gone = c->dead && !c->at_workers;
	pthread_mutex_unlock(&c->lock);
	if (gone) {
		pthread_mutex_destroy(&c->lock);
		free(c);
	}
	return gone;
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

/* Plain: one sendmsg of the iovecs; TLS: the first iovec only. -EAGAIN, or -errno. */
static ssize_t conn_sendv(struct nbd_conn *c, struct iovec *iov, int n)
{
	if (c->tls_state == TLS_UP)
		return nbd_tls_send(c->tls, iov[0].iov_base, iov[0].iov_len);
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t r = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -EAGAIN;
	return -errno;
}

static int send_pieces(struct nbd_conn *c, struct nbd_job *j);

/* Send queued replies, oldest first, with c->lock held. Returns 0, -EAGAIN, or -errno. */
static int send_queue(struct nbd_conn *c)
{
	while (c->q_head) {
		struct iovec iov[SEND_IOV];
		int n = 0;
		if (c->q_head->fp.n) {
			int r = send_pieces(c, c->q_head);
			if (r < 0)
				return r;
			struct nbd_job *j = c->q_head;
			c->q_head = j->next;
			if (!c->q_head)
				c->q_tail = NULL;
			job_done(c, j);
			continue;
		}
		for (struct nbd_job *j = c->q_head; j && !j->fp.n && n < SEND_IOV; j = j->next) {
			iov[n].iov_base = j->reply.data + j->sent;
			iov[n++].iov_len = j->reply.len - j->sent;
		}
		ssize_t r = conn_sendv(c, iov, n);
		if (r < 0)
			return (int)r;
		while (c->q_head && !c->q_head->fp.n &&
		       (size_t)r >= c->q_head->reply.len - c->q_head->sent) {
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
	return 0;
}

/* The position in a reply with file pieces where the memory part in progress ends. */
static size_t mem_end(const struct nbd_job *j)
{
	return j->piece < j->fp.n ? j->fp.p[j->piece].at : j->reply.len;
}

/*
 * A reply whose data stays in the image files, from where it stopped: its own bytes with
 * sendmsg, the data with sendfile (the kernel moves page cache pages to the socket; since
 * Linux 6.5 it does not even copy them for Unix and TCP sockets). With c->lock held; 0 when
 * all is out, -EAGAIN, or -errno.
 */
static int send_pieces(struct nbd_conn *c, struct nbd_job *j)
{
	for (;;) {
		size_t end = mem_end(j);
		if (j->sent < end) {
			struct iovec v = {j->reply.data + j->sent, end - j->sent};
			ssize_t r = conn_sendv(c, &v, 1);
			if (r < 0)
				return (int)r;
			j->sent += (size_t)r;
			continue;
		}
		if (j->piece == j->fp.n)
			return 0;
		const struct nbd_fpiece *p = &j->fp.p[j->piece];
		off_t o = (off_t)(p->off + j->piece_sent);
		size_t want = p->len - j->piece_sent;
		ssize_t r = sendfile(c->fd, p->fd, &o, want);
		if (r < 0)
			return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
		if (r == 0) { /* past the end of the file: zeroes, as the block layer reads them */
			static const uint8_t zero[4096];
			struct iovec v = {(void *)zero, want < sizeof(zero) ? want : sizeof(zero)};
			r = conn_sendv(c, &v, 1);
			if (r < 0)
				return (int)r;
		}
		j->piece_sent += (size_t)r;
		if (j->piece_sent == p->len) {
			j->piece++;
			j->piece_sent = 0;
		}
	}
}

/* Loop thread: handshake bytes, then queued replies. False when the connection was dropped. */
static bool conn_flush(struct nbd_conn *c)
{
	while (c->out_sent < c->out.len) {
		struct iovec v = {c->out.data + c->out_sent, c->out.len - c->out_sent};
		ssize_t n = conn_sendv(c, &v, 1);
		if (n == -EAGAIN)
			return true;
		if (n < 0) {
			conn_fail(c, "send failed: %s", strerror((int)-n));
			return false;
		}
		c->out_sent += (size_t)n;
	}
	c->out.len = c->out_sent = 0;
	if (c->tls_state == TLS_PENDING)
		c->tls_state = TLS_HANDSHAKE; /* the ACK went out in the clear */
	pthread_mutex_lock(&c->lock);
	int err = c->send_err ? -c->send_err : c->busy ? 0 : send_queue(c);
	pthread_mutex_unlock(&c->lock);
	if (err < 0 && err != -EAGAIN) {
		conn_fail(c, "send failed: %s", strerror(-err));
		return false;
	}
	return true;
}

/* With c->lock held: put a reply at the head of the queue (it is half sent: it goes first). */
static void queue_front(struct nbd_conn *c, struct nbd_job *j)
{
	j->next = c->q_head;
	c->q_head = j;
	if (!c->q_tail)
		c->q_tail = j;
}

/*
 * A reply with file pieces that could not go out whole right now waits in the queue as it is,
 * and the loop sends the rest with sendfile when the socket takes more. So that the loop does
 * not wait for a disk then, a worker first reads the rest into the page cache (readahead
 * returns once it is there), with the lock dropped; a half-sent reply keeps the connection busy
 * meanwhile, so no other reply cuts into it. The loop's own inline reads skip that: they run
 * only while reads are quick (nbd_server_run_inline). With c->lock held (dropped and taken
 * again).
 */
static void park_pieces(struct nbd_conn *c, struct nbd_job *job, bool from_worker)
{
	bool half = job->sent || job->piece || job->piece_sent;

	c->busy |= half;
	pthread_mutex_unlock(&c->lock);
	for (int i = job->piece; i < job->fp.n && from_worker; i++) {
		const struct nbd_fpiece *p = &job->fp.p[i];
		size_t skip = i == job->piece ? job->piece_sent : 0;
		readahead(p->fd, (off_t)(p->off + skip), p->len - skip);
	}
	pthread_mutex_lock(&c->lock);
	if (half)
		c->busy = false;
	if (c->dead)
		job_done(c, job);
	else if (half)
		queue_front(c, job);
	else
		queue_reply(c, job);
}

bool nbd_conn_finish(struct nbd_conn *c, struct nbd_job *job, bool from_worker)
{
	bool wake = false;

	pthread_mutex_lock(&c->lock);
	bool was_throttled = throttled(c);
	bool direct = c->direct && !c->busy && !c->q_head;
	int r = 0;
	if (c->dead) {
		job_done(c, job);
	} else if (job->reply.oom) {
		job_done(c, job);
		c->send_err = ENOMEM;
	} else if (job->fp.n) {
		r = direct ? send_pieces(c, job) : -EAGAIN;
		if (r == -EAGAIN)
			park_pieces(c, job, from_worker);
		else
			job_done(c, job);
	} else {
		queue_reply(c, job);
	}
	if (r < 0 && r != -EAGAIN)
		c->send_err = -r;
	if (!c->dead && c->direct && !c->busy && c->q_head) {
		r = send_queue(c);
		if (r < 0 && r != -EAGAIN)
			c->send_err = -r;
	}
	/* Only now: until here the connection must not be freed under us. */
	if (from_worker)
		c->at_workers--;
	/* The loop looks at the connection after an inline job anyway; a worker must ask. */
	if (from_worker && (c->q_head || c->send_err || (was_throttled && !throttled(c)) ||
			    ((c->closing || c->dead) && !c->at_workers))) {
		wake = !c->notify;
		c->notify = true;
	}
	pthread_mutex_unlock(&c->lock);
	return wake;
}

/* Hand the batch of decoded requests to the workers. */
static void dispatch_batch(struct nbd_conn *c)
{
	if (!c->nbatch)
		return;
	pthread_mutex_lock(&c->lock);
	c->at_workers += c->nbatch;
	pthread_mutex_unlock(&c->lock);
	nbd_server_dispatch(c->srv, c->batch_head, c->batch_tail, c->nbatch);
	c->batch_head = c->batch_tail = NULL;
	c->nbatch = 0;
}

static void start_job(struct nbd_conn *c, struct nbd_job *j)
{
	if (j->req.error) { /* no I/O: answer here */
		nbd_exec(&j->ctx, &j->req, NULL, &j->reply, NULL);
		pthread_mutex_lock(&c->lock);
		queue_reply(c, j);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (nbd_server_run_inline(c->srv, j))
		return;
	j->next = NULL;
	if (c->batch_tail)
		c->batch_tail->next = j;
	else
		c->batch_head = j;
	c->batch_tail = j;
	c->nbatch++;
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
	/* Data can stay in the files only while nobody writes them: read-only exports. */
	j->zerocopy =
	    c->direct && (nbd_server_export(c->srv)->flags & NBD_FLAG_READ_ONLY) && req->len > 4096;
	pthread_mutex_lock(&c->lock);
	c->pending++;
	c->pending_bytes += j->cost;
	pthread_mutex_unlock(&c->lock);
	if (req->type == NBD_CMD_WRITE && req->len) {
		j->payload = nbd_server_buf_get(c->srv, req->len, &j->payload_cap);
		if (!j->payload) {
			c->wjob = j; /* freed with the connection */
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

static void set_closing(struct nbd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	pthread_mutex_unlock(&c->lock);
}

/* Handle every complete message in the input buffer, until one makes the connection wait. */
static void conn_process(struct nbd_conn *c)
{
	while (!c->wjob && can_read(c)) {
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
			c->direct = c->tls_state == TLS_NONE;
			break;
		case NBD_EV_STARTTLS:
			conn_starttls(c);
			return;
		case NBD_EV_REQUEST:
			conn_request(c, &req);
			break;
		case NBD_EV_DISC:
		case NBD_EV_ABORT:
			set_closing(c);
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
		set_closing(c); /* what is in flight is still answered, if the client listens */
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
				break;
			continue;
		}
		conn_process(c);
		if (c->wjob)
			continue;
		if (!can_read(c)) {
			pthread_mutex_lock(&c->lock);
			c->stalled = !c->dead && throttled(c);
			pthread_mutex_unlock(&c->lock);
			break;
		}
		if (c->in_pos) {
			memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
			c->in_len -= c->in_pos;
			c->in_pos = 0;
		}
		ssize_t n = conn_recv(c, c->in + c->in_len, NBD_IN_CAP - c->in_len);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			conn_eof(c, n);
			break;
		}
		c->in_len += (size_t)n;
	}
	dispatch_batch(c);
}

static void conn_update(struct nbd_conn *c)
{
	uint32_t ev = 0;

	if (c->tls_state == TLS_HANDSHAKE) {
		ev = nbd_tls_want_write(c->tls) ? EPOLLOUT : EPOLLIN;
	} else {
		if (can_read(c))
			ev |= EPOLLIN;
		pthread_mutex_lock(&c->lock);
		if (c->out_sent < c->out.len || (c->q_head && !c->busy))
			ev |= EPOLLOUT;
		pthread_mutex_unlock(&c->lock);
	}
	if (ev == c->events)
		return;
	struct epoll_event e = {.events = ev, .data.ptr = c};
	epoll_ctl(nbd_server_epoll(c->srv), EPOLL_CTL_MOD, c->fd, &e);
	c->events = ev;
}

/* Nothing more to read or send: a closing connection ends here. */
static bool finished(struct nbd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	bool done = c->closing && !c->at_workers && !c->q_head;
	pthread_mutex_unlock(&c->lock);
	return done && !c->wjob && c->out_sent == c->out.len;
}

static void conn_service(struct nbd_conn *c)
{
	for (int round = 0; round < 8; round++) {
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
		if (c->fd < 0 || !conn_flush(c))
			return;
		if (c->tls_state == TLS_HANDSHAKE)
			continue; /* the STARTTLS ACK is out: the handshake can start */
		if (!(c->stalled && can_read(c)))
			break;
	}
	if (c->fd < 0)
		return;
	if (finished(c)) {
		nbd_conn_drop(c);
		return;
	}
	conn_update(c);
}

void nbd_conn_event(struct nbd_conn *c, uint32_t events)
{
	if (c->fd < 0)
		return;
	if ((events & (EPOLLERR | EPOLLHUP)) && !can_read(c) && c->tls_state != TLS_HANDSHAKE) {
		/* Gone while we were not reading: nothing to tell it any more. */
		nbd_conn_drop(c);
		return;
	}
	conn_service(c);
}

void nbd_conn_shutdown(struct nbd_conn *c)
{
	if (c->fd < 0)
		return;
	c->s.shutting_down = true;
	if (!c->negotiated || c->wjob) {
		nbd_conn_drop(c);
		return;
	}
	set_closing(c);
	conn_service(c);
}

struct nbd_conn *nbd_conn_new(struct nbd_server *srv, int fd, unsigned id, const char *peer)
{
	struct nbd_conn *c = calloc(1, sizeof(*c));

	if (!c || !(c->in = malloc(NBD_IN_CAP))) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->srv = srv;
	c->fd = fd;
	c->id = id;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	nbd_session_start(&c->s, nbd_server_export(srv), nbd_server_creds(srv) != NULL, &c->out);
	struct epoll_event e = {.events = 0, .data.ptr = c};
	if (c->out.oom || epoll_ctl(nbd_server_epoll(srv), EPOLL_CTL_ADD, fd, &e) < 0) {
		nbd_buf_free(&c->out);
		free(c->in);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	conn_service(c);
	return c;
}
