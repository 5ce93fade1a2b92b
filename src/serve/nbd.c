/*
 * The NBD server (nbd.h): listening sockets, the event loop, the worker pool, shutdown.
 *
 * Threads: the caller's thread runs one epoll loop that owns every socket (listeners, clients,
 * a signalfd for SIGTERM/SIGINT, an eventfd workers use to call it). Block I/O goes to a few
 * worker threads, because bdev calls block (pread on a page-cache miss, qcow2 metadata reads)
 * and one slow read must not stall every other client's handshake and replies; the qcow2
 * driver lets several threads read and write one image at once, so a client that keeps many
 * requests in flight gets parallel I/O. Three things keep the hand-offs few (see DESIGN.md):
 * small reads and block status run inline on the loop while they are quick; the workers take
 * their share of a batch of requests at once; and a worker sends its reply itself when the
 * connection allows it (nbd_conn.c), with read data left in the image files for sendfile on
 * read-only exports.
 */
#include "serve/nbd.h"
#include "block/block.h"
#include "serve/nbd_int.h"
#include "serve/nbd_tls.h"
#include "serve/server.h"
#include "util/clock.h"
#include "util/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN  8
#define MAX_WORKERS 16
#define TAG_EVENT   100 /* epoll tags below 4096 are ours; connections are pointers */
#define TAG_SIGNAL  101
/* Replies and payload buffers kept for reuse: at most this many, and this many bytes. */
#define BUF_SLOTS     16
#define BUF_MIN	      (64u << 10)
#define BUF_MAX_BYTES (128u << 20)
/* After SIGTERM, clients get this long to take their replies before they are cut off. */
#define STOP_GRACE_MS 10000

struct nbd_server {
	const struct nbd_serve_opts *o;
	struct nbd_export_info exp;
	struct nbd_tls_creds *creds;
	int epfd, evfd, sigfd;
	int lfd[MAX_LISTEN];
	int nlfd;
	bool accepting;
	bool made_socket, made_pidfile;
	struct nbd_conn *conns;
	unsigned nconns, next_id;
	bool negotiated_left;	      /* a client that reached transmission has gone */
	uint64_t inline_paused_until; /* CLOCK_MONOTONIC ns; see nbd_server_run_inline */
	unsigned inline_slow;	      /* inline jobs in a row that were slow */
	bool stopping;
	struct timespec stop_at;

	pthread_mutex_t lock; /* the job queue */
	pthread_cond_t cond;
	struct nbd_job *todo_head, *todo_tail;
	unsigned ntodo, idle;
	bool quit;
	pthread_t threads[MAX_WORKERS];
	int nthreads, nworkers;	  /* started; meant to start (fixed before the first starts) */
	pthread_mutex_t buf_lock; /* the buffer cache */
	struct {
		void *p;
		size_t cap;
	} bufs[BUF_SLOTS];
	int nbufs;
	size_t buf_bytes;
};

void nbd_server_log(struct nbd_server *srv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!srv->o->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv->o->log(srv->o->log_opaque, msg);
}

int nbd_server_epoll(struct nbd_server *srv)
{
	return srv->epfd;
}

const struct nbd_export_info *nbd_server_export(struct nbd_server *srv)
{
	return &srv->exp;
}

struct bdev *nbd_server_bdev(struct nbd_server *srv)
{
	return srv->o->bs;
}

struct nbd_tls_creds *nbd_server_creds(struct nbd_server *srv)
{
	return srv->creds;
}

void *nbd_server_buf_get(struct nbd_server *srv, size_t want, size_t *cap)
{
	void *p = NULL;

	if (want < BUF_MIN) { /* malloc's per-thread caches serve small buffers best */
		*cap = want;
		return malloc(want ? want : 1);
	}
	pthread_mutex_lock(&srv->buf_lock);
	for (int i = 0; i < srv->nbufs; i++) {
		if (srv->bufs[i].cap >= want) {
			p = srv->bufs[i].p;
			*cap = srv->bufs[i].cap;
			srv->buf_bytes -= *cap;
			srv->bufs[i] = srv->bufs[--srv->nbufs];
			break;
		}
	}
	pthread_mutex_unlock(&srv->buf_lock);
	if (p)
		return p;
	*cap = want;
	return malloc(want ? want : 1);
}

void nbd_server_buf_put(struct nbd_server *srv, void *p, size_t cap)
{
	if (cap >= BUF_MIN) {
		pthread_mutex_lock(&srv->buf_lock);
		if (srv->nbufs < BUF_SLOTS && srv->buf_bytes + cap <= BUF_MAX_BYTES) {
			srv->bufs[srv->nbufs].p = p;
			srv->bufs[srv->nbufs++].cap = cap;
			srv->buf_bytes += cap;
			p = NULL;
		}
		pthread_mutex_unlock(&srv->buf_lock);
	}
	free(p);
}

/* ---- workers ---- */

/*
 * Jobs arrive in batches (every request one read of the socket brought) and are taken in
 * shares: a worker takes its part of the queue at once, so a batch of 32 small reads costs a
 * few lock round trips and wake-ups, not 32 of each.
 */
void nbd_server_dispatch(struct nbd_server *srv, struct nbd_job *head, struct nbd_job *tail,
			 unsigned n)
{
	pthread_mutex_lock(&srv->lock);
	if (srv->todo_tail)
		srv->todo_tail->next = head;
	else
		srv->todo_head = head;
	srv->todo_tail = tail;
	srv->ntodo += n;
	if (n >= srv->idle)
		pthread_cond_broadcast(&srv->cond);
	else
		for (unsigned i = 0; i < n; i++)
			pthread_cond_signal(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

static void wake_loop(struct nbd_server *srv)
{
	uint64_t one = 1;

	if (write(srv->evfd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the loop wakes anyway */
	}
}

void nbd_server_execute(struct nbd_server *srv, struct nbd_job *job)
{
	struct nbd_conn *c = job->conn;

	if (job->req.type == NBD_CMD_READ && job->req.len) {
		/* Room for the data and a few dozen chunk headers; sparse replies may grow it. */
		job->reply.data = nbd_server_buf_get(srv, job->req.len + 4096, &job->reply.cap);
		if (!job->reply.data)
			job->reply.cap = 0;
	}
	int ret = nbd_exec(&job->ctx, &job->req, job->payload, &job->reply,
			   job->zerocopy ? &job->fp : NULL);
	if (ret < 0)
		nbd_server_log(srv, "client %u (%s): %s", c->id, c->peer, err_msg());
	if (job->payload) {
		nbd_server_buf_put(srv, job->payload, job->payload_cap);
		job->payload = NULL;
	}
}

/*
 * Reads and block status queries run on the loop's own thread while they are quick, which they
 * are when the data is in the page cache: a small read costs a few microseconds, and a large
 * one on a read-only export moves no data through user space at all (sendfile), so either is
 * cheaper than handing it to a worker and back (two thread switches, many more on a loaded
 * machine). Large reads that must be copied (writable exports, TLS) go to the workers, which
 * copy in parallel. When INLINE_STREAK inline jobs in a row take longer than INLINE_SLOW_NS, the
 * data comes from a disk (even an SSD takes longer): then everything goes to the workers, which
 * overlap such waits, for INLINE_PAUSE_NS before the loop tries again. A streak, not one slow
 * call: on a busy machine the loop is sometimes preempted in the middle of a cached read, and
 * that must not send every request the slow way.
 */
#define INLINE_COPY_MAX (64u << 10)
#define INLINE_SLOW_NS	50000u
#define INLINE_STREAK	8
#define INLINE_PAUSE_NS 1000000000u

bool nbd_server_run_inline(struct nbd_server *srv, struct nbd_job *job)
{
	const struct nbd_request *r = &job->req;
	bool read = r->type == NBD_CMD_READ && (job->zerocopy || r->len <= INLINE_COPY_MAX);

	if ((!read && r->type != NBD_CMD_BLOCK_STATUS) || srv->o->no_inline)
		return false;
	uint64_t t0 = clock_mono_ns();
	if (t0 < srv->inline_paused_until)
		return false;
	nbd_server_execute(srv, job);
	nbd_conn_finish(job->conn, job, false);
	uint64_t t1 = clock_mono_ns();
	srv->inline_slow = t1 - t0 > INLINE_SLOW_NS ? srv->inline_slow + 1 : 0;
	if (srv->inline_slow >= INLINE_STREAK) {
		srv->inline_paused_until = t1 + INLINE_PAUSE_NS;
		srv->inline_slow = 0;
	}
	return true;
}

static void *worker_main(void *arg)
{
	struct nbd_server *srv = arg;

	pthread_mutex_lock(&srv->lock);
	for (;;) {
		while (!srv->todo_head && !srv->quit) {
			srv->idle++;
			pthread_cond_wait(&srv->cond, &srv->lock);
			srv->idle--;
		}
		if (!srv->todo_head)
			break;
		/* this worker's share of the queue */
		unsigned take =
		    (srv->ntodo + (unsigned)srv->nworkers - 1) / (unsigned)srv->nworkers;
		struct nbd_job *mine = srv->todo_head, *last = mine;
		for (unsigned i = 1; i < take && last->next; i++)
			last = last->next;
		srv->todo_head = last->next;
		if (!srv->todo_head)
			srv->todo_tail = NULL;
		last->next = NULL;
		for (struct nbd_job *j = mine; j; j = j->next)
			srv->ntodo--;
		pthread_mutex_unlock(&srv->lock);
		while (mine) {
			struct nbd_job *next = mine->next;
			struct nbd_conn *c = mine->conn;
			nbd_server_execute(srv, mine);
			if (nbd_conn_finish(c, mine, true))
				wake_loop(srv);
			mine = next;
		}
		pthread_mutex_lock(&srv->lock);
	}
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* A worker flagged some connection: look at each flagged one. */
static void take_notify(struct nbd_server *srv)
{
	uint64_t n;

	if (read(srv->evfd, &n, sizeof(n)) < 0) {
		/* nothing pending: another pass already took it */
	}
	for (struct nbd_conn *c = srv->conns; c; c = c->next)
		if (nbd_conn_take_notify(c))
			nbd_conn_event(c, 0);
}

static int start_workers(struct nbd_server *srv, int n)
{
	srv->nworkers = n;
	for (int i = 0; i < n; i++) {
		int e = pthread_create(&srv->threads[i], NULL, worker_main, srv);
		if (e)
			return err_sys(e, "could not start an I/O thread");
		srv->nthreads++;
	}
	return 0;
}

static void stop_workers(struct nbd_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->quit = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	for (int i = 0; i < srv->nthreads; i++)
		pthread_join(srv->threads[i], NULL);
	srv->nthreads = 0;
}

/* ---- listening ---- */

static int add_listener(struct nbd_server *srv, int fd)
{
	if (listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	srv->lfd[srv->nlfd++] = fd;
	return 0;
}

static int listen_unix(struct nbd_server *srv, const char *path)
{
	int fd, ret = serve_listen_unix(path, 16, &fd, &srv->made_socket);

	if (ret < 0)
		return ret;
	srv->lfd[srv->nlfd++] = fd;
	return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, size, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const void *)sa;
		inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof(host));
		port = ntohs(in->sin6_port);
		snprintf(buf, size, "[%s]:%d", host, port);
	} else {
		snprintf(buf, size, "unix socket");
	}
}

static int bind_tcp(struct nbd_server *srv, const struct addrinfo *ai)
{
	int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				 ai->ai_protocol);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return add_listener(srv, fd);
}

static int listen_tcp(struct nbd_server *srv, const struct nbd_serve_opts *o)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	const char *host = o->bind_addr, *shown = host ? host : "every interface";
	char port[16];
	int ret = 0, e;

	snprintf(port, sizeof(port), "%d", o->port);
	e = getaddrinfo(host, port, &hints, &res);
	if (e)
		return err_set(EINVAL, "%s: cannot resolve: %s", shown, gai_strerror(e));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (!is_loopback(ai->ai_addr) && !o->tls_dir && !o->allow_insecure) {
			freeaddrinfo(res);
			return err_set(
			    EPERM,
			    "%s: listening beyond loopback without TLS: give --tls-creds "
			    "DIR, or --allow-insecure, or --bind 127.0.0.1",
			    shown);
		}
	}
	for (struct addrinfo *ai = res; ai && srv->nlfd < MAX_LISTEN; ai = ai->ai_next) {
		ret = bind_tcp(srv, ai);
		if (o->port == 0 && srv->nlfd) /* an ephemeral port: one address, one port */
			break;
	}
	freeaddrinfo(res);
	if (!srv->nlfd)
		return err_sys(-ret, "%s port %d: cannot listen", shown, o->port);
	if (o->port == 0) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char text[80];
		if (getsockname(srv->lfd[0], (struct sockaddr *)&ss, &sl) == 0) {
			addr_text((struct sockaddr *)&ss, text, sizeof(text));
			nbd_server_log(srv, "listening on %s", text);
		}
	}
	return 0;
}

static void set_accepting(struct nbd_server *srv, bool on)
{
	if (srv->accepting == on)
		return;
	for (int i = 0; i < srv->nlfd; i++) {
		struct epoll_event e = {.events = EPOLLIN, .data.u64 = (uint64_t)i + 1};
		epoll_ctl(srv->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, srv->lfd[i], &e);
	}
	srv->accepting = on;
}

static void accept_one(struct nbd_server *srv, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char peer[80];
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
			nbd_server_log(srv, "cannot accept a client: %s", strerror(errno));
			set_accepting(srv, false); /* again when a client leaves */
		}
		return;
	}
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	addr_text((struct sockaddr *)&ss, peer, sizeof(peer));
	struct nbd_conn *c = nbd_conn_new(srv, fd, ++srv->next_id, peer);
	if (!c) {
		nbd_server_log(srv, "client %u (%s): out of memory; dropped", srv->next_id, peer);
		close(fd);
		return;
	}
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
}

/* Forget a connection that is closed and has nothing left at the workers. */
static bool conn_gone(struct nbd_server *srv, struct nbd_conn *c)
{
	bool negotiated = c->negotiated;
	struct nbd_conn *prev = c->prev, *next = c->next;

	if (!nbd_conn_reap(c))
		return false;
	if (prev)
		prev->next = next;
	else
		srv->conns = next;
	if (next)
		next->prev = prev;
	srv->nconns--;
	if (negotiated)
		srv->negotiated_left = true;
	return true;
}

/* ---- the loop ---- */

static void begin_stop(struct nbd_server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	clock_gettime(CLOCK_MONOTONIC, &srv->stop_at);
	srv->stop_at.tv_sec += STOP_GRACE_MS / 1000;
	set_accepting(srv, false);
	for (struct nbd_conn *c = srv->conns; c; c = c->next)
		nbd_conn_shutdown(c);
}

static bool grace_over(const struct nbd_server *srv)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > srv->stop_at.tv_sec ||
	       (now.tv_sec == srv->stop_at.tv_sec && now.tv_nsec >= srv->stop_at.tv_nsec);
}

static void on_signal(struct nbd_server *srv)
{
	struct signalfd_siginfo si;

	if (read(srv->sigfd, &si, sizeof(si)) == sizeof(si))
		begin_stop(srv);
}

/* After each round of events: forget closed connections, follow the client limit, decide
 * whether the server is done. */
static void housekeeping(struct nbd_server *srv)
{
	for (struct nbd_conn *c = srv->conns, *next; c; c = next) {
		next = c->next;
		if (c->fd < 0)
			conn_gone(srv, c);
	}
	if (srv->stopping) {
		if (grace_over(srv))
			for (struct nbd_conn *c = srv->conns; c; c = c->next)
				nbd_conn_drop(c);
		return;
	}
	set_accepting(srv, srv->nconns < (unsigned)srv->o->shared);
	if (!srv->o->persistent && srv->negotiated_left && !srv->nconns)
		begin_stop(srv);
}

static int serve_loop(struct nbd_server *srv)
{
	struct epoll_event ev[64];

	set_accepting(srv, true);
	while (!srv->stopping || srv->nconns) {
		int timeout = srv->stopping ? 100 : -1;
		for (struct nbd_conn *c = srv->conns; c; c = c->next)
			if (nbd_conn_has_work(c))
				timeout = 0;
		int n = epoll_wait(srv->epfd, ev, 64, timeout);
		if (n < 0 && errno != EINTR)
			return err_sys(errno, "epoll_wait");
		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;
			if (tag == TAG_EVENT)
				take_notify(srv);
			else if (tag == TAG_SIGNAL)
				on_signal(srv);
			else if (tag >= 1 && tag <= MAX_LISTEN) {
				if (srv->accepting && srv->nconns < (unsigned)srv->o->shared)
					accept_one(srv, srv->lfd[tag - 1]);
			} else
				nbd_conn_event(ev[i].data.ptr, ev[i].events);
		}
		for (struct nbd_conn *c = srv->conns; c; c = c->next)
			if (nbd_conn_has_work(c))
				nbd_conn_event(c, 0);
		housekeeping(srv);
	}
	return 0;
}

/* ---- setup and teardown ---- */

static void export_info(struct nbd_server *srv, const struct nbd_serve_opts *o)
{
	struct nbd_export_info *e = &srv->exp;
	bool ro = o->read_only || o->bs->read_only;

	e->name = o->export_name ? o->export_name : "";
	e->description = o->description;
	e->size = o->bs->size;
	e->flags =
	    NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE;
	if (ro)
		e->flags |= NBD_FLAG_READ_ONLY;
	else
		e->flags |=
		    NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
	/* One process, one cache: a flush on any connection covers every connection's writes,
	 * which is what multi-conn promises, read-only or not. With one client at a time it
	 * would only invite clients (nbdcopy) to open connections that wait in the backlog
	 * forever; qemu-nbd offers it exactly when --shared is above 1, and so do we. */
	if (o->shared > 1)
		e->flags |= NBD_FLAG_CAN_MULTI_CONN;
	e->min_block = 1;
	e->pref_block = 4096;
	e->max_payload = NBD_MAX_PAYLOAD;
	e->allocation_depth = true;
}

static int write_pid_file(struct nbd_server *srv, const char *path)
{
	int ret = serve_write_pid_file(path);

	if (ret == 0)
		srv->made_pidfile = true;
	return ret;
}

static int setup(struct nbd_server *srv, const struct nbd_serve_opts *o)
{
	sigset_t set;
	int ret;

	export_info(srv, o);
	if (strlen(srv->exp.name) > NBD_MAX_STRING)
		return err_set(EINVAL, "export name longer than %d bytes", NBD_MAX_STRING);
	if (o->shared < 1)
		return err_set(EINVAL, "--shared must be at least 1");
	if (o->tls_dir && (ret = nbd_tls_creds_load(&srv->creds, o->tls_dir)) < 0)
		return ret;
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	srv->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (srv->epfd < 0 || srv->evfd < 0 || srv->sigfd < 0)
		return err_sys(errno, "cannot set up the event loop");
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = TAG_EVENT};
	epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->evfd, &e);
	e.data.u64 = TAG_SIGNAL;
	epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->sigfd, &e);
	ret = o->socket_path ? listen_unix(srv, o->socket_path) : listen_tcp(srv, o);
	if (ret < 0)
		return ret;
	/* Small cached reads never reach the workers (nbd_server_run_inline); they overlap disk
	 * waits and large copies, so a few per CPU, idle ones costing nothing. */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int nw = o->workers > 0 ? o->workers : (int)(cpus > 2 ? 2 * cpus : 4);
	ret = start_workers(srv, nw < MAX_WORKERS ? nw : MAX_WORKERS);
	if (ret == 0 && o->pid_file)
		ret = write_pid_file(srv, o->pid_file);
	return ret;
}

static int teardown(struct nbd_server *srv, int ret)
{
	const struct nbd_serve_opts *o = srv->o;

	for (struct nbd_conn *c = srv->conns; c; c = c->next)
		nbd_conn_drop(c);
	stop_workers(srv);
	while (srv->conns)
		if (!conn_gone(srv, srv->conns))
			break; /* cannot happen: no worker is left to hold a job */
	for (int i = 0; i < srv->nlfd; i++)
		close(srv->lfd[i]);
	if (srv->made_socket)
		unlink(o->socket_path);
	if (ret == 0 && !o->bs->read_only) {
		ret = bdev_flush(o->bs);
		if (ret < 0)
			nbd_server_log(srv, "%s", err_msg());
	}
	if (srv->made_pidfile)
		unlink(o->pid_file);
	for (int i = 0; i < srv->nbufs; i++)
		free(srv->bufs[i].p);
	nbd_tls_creds_free(srv->creds);
	if (srv->epfd >= 0)
		close(srv->epfd);
	if (srv->evfd >= 0)
		close(srv->evfd);
	if (srv->sigfd >= 0)
		close(srv->sigfd);
	return ret;
}

int nbd_serve(const struct nbd_serve_opts *o)
{
	struct nbd_server *srv = calloc(1, sizeof(*srv));
	sigset_t set, old;
	int ret;

	if (!srv)
		return err_set(ENOMEM, "out of memory");
	srv->o = o;
	srv->epfd = srv->evfd = srv->sigfd = -1;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->buf_lock, NULL);
	pthread_cond_init(&srv->cond, NULL);
	/* Blocked before the workers start, so they inherit it: the signals arrive through
	 * the signalfd, and a write to a vanished client fails with EPIPE instead of killing us. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	ret = setup(srv, o);
	if (ret == 0)
		ret = serve_loop(srv);
	ret = teardown(srv, ret);
	/* A SIGPIPE left pending must not kill us once unblocked. */
	sigset_t pipe;
	struct timespec zero = {0, 0};
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	while (sigtimedwait(&pipe, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->buf_lock);
	pthread_cond_destroy(&srv->cond);
	free(srv);
	return ret;
}
