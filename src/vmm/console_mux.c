/* The console's fan-out; see console_mux.h.
 *
 * Threads: console_mux_output() runs on vCPU threads (under the UART's lock, which orders
 * the bytes); everything else on the event loop's thread. The ring and the client count are
 * shared and guarded by `lock`; the loop is woken through an eventfd only while clients are
 * attached and only once per batch of output (`notified`), so an unwatched console costs a
 * memcpy per byte on top of the log and the console fd. */
#include "vmm/console_mux.h"
#include "vmm/console.h"
#include "vmm/console_log.h"
#include "vmm/console_ring.h"
#include "vmm/serial.h"
#include "vmm/unixsock.h"
#include "util/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 16384

struct mux_client {
	struct console_mux *m;
	struct mux_client *next;
	struct loop_watch w;
	int fd;
	uint64_t pos; /* the next ring position it gets */
	bool dead;
};

struct console_mux {
	pthread_mutex_t lock; /* ring, nclients */
	struct console_ring ring;
	unsigned nclients;
	int notified; /* atomic: the wake eventfd was written and not yet served */
	int wake_fd;

	int out_fd;
	struct console_log log;
	bool has_log;

	struct loop *loop;
	struct unixsock sock;
	bool listening;
	struct loop_watch listen_w, wake_w, room_w, in_w;
	struct mux_client *clients;
	int busy; /* callbacks running: dead clients are freed when it is 0 */

	/* input */
	struct serial *uart;
	int room_fd;
	uint8_t pending[SERIAL_RX_SIZE * 4]; /* read but not yet taken by the UART */
	size_t pend_len, pend_off;
	int in_fd;
	bool in_file; /* in_fd is a regular file: epoll cannot watch it, it is read as room comes */
	struct console term;
	void (*on_quit)(void *);
	void *quit_opaque;
	uint8_t buf[CHUNK];
};

void console_mux_output(void *opaque, uint8_t c)
{
	struct console_mux *m = opaque;
	bool wake;
	uint64_t one = 1;

	if (m->out_fd >= 0)
		/* A console that went away must not stop the guest. */
		while (write(m->out_fd, &c, 1) < 0 && errno == EINTR)
			;
	if (m->has_log)
		console_log_write(&m->log, &c, 1);
	pthread_mutex_lock(&m->lock);
	console_ring_put(&m->ring, &c, 1);
	wake = m->nclients && !__atomic_exchange_n(&m->notified, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&m->lock);
	if (wake && write(m->wake_fd, &one, sizeof(one)) < 0) {
		/* at its maximum count the eventfd is readable anyway */
	}
}

/* ---- clients ---- */

static void client_drop(struct mux_client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	loop_del(&c->w);
	close(c->fd);
	pthread_mutex_lock(&c->m->lock);
	c->m->nclients--;
	pthread_mutex_unlock(&c->m->lock);
}

static void mux_reap(struct console_mux *m)
{
	struct mux_client **pp = &m->clients;

	if (m->busy)
		return;
	while (*pp) {
		struct mux_client *c = *pp;
		if (c->dead) {
			*pp = c->next;
			free(c);
		} else {
			pp = &c->next;
		}
	}
}

/* Send the client what it has not had, until its socket is full. */
static void client_pump(struct mux_client *c)
{
	struct console_mux *m = c->m;

	while (!c->dead) {
		pthread_mutex_lock(&m->lock);
		bool lost = c->pos < console_ring_start(&m->ring);
		size_t n = lost ? 0 : console_ring_get(&m->ring, c->pos, m->buf, sizeof(m->buf));
		pthread_mutex_unlock(&m->lock);
		if (lost) {
			client_drop(c); /* it did not read: the ring moved on without it */
			return;
		}
		if (n == 0) {
			if (loop_mod(&c->w, m->pend_len ? 0 : EPOLLIN) < 0)
				client_drop(c);
			return;
		}
		ssize_t w = send(c->fd, m->buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (loop_mod(&c->w, (m->pend_len ? 0 : EPOLLIN) | EPOLLOUT) < 0)
				client_drop(c);
			return;
		}
		if (w <= 0) {
			client_drop(c);
			return;
		}
		c->pos += (uint64_t)w;
	}
}

/* While the UART cannot take more input, nobody's input is read (EPOLLIN off everywhere);
 * output keeps flowing. */
static void input_gate(struct console_mux *m)
{
	bool open = m->pend_len == 0;

	for (struct mux_client *c = m->clients; c; c = c->next)
		if (!c->dead &&
		    loop_mod(&c->w, (open ? EPOLLIN : 0) | (c->w.events & EPOLLOUT)) < 0)
			client_drop(c);
	if (m->in_w.loop)
		loop_mod(&m->in_w, open ? EPOLLIN : 0);
}

/* Give input to the UART; what does not fit waits for room_fd. */
static void mux_input(struct console_mux *m, const uint8_t *p, size_t n)
{
	size_t took = serial_rx(m->uart, p, n);

	if (took == n)
		return;
	memcpy(m->pending, p + took, n - took);
	m->pend_len = n - took;
	m->pend_off = 0;
	input_gate(m);
}

static int in_read(struct console_mux *m);

/* A regular file as input (ligero run < FILE): no event says it is readable, so it is read
 * whenever the UART has taken all there was, until its end. */
static void in_file_pump(struct console_mux *m)
{
	while (m->in_file && !m->pend_len)
		if (in_read(m) <= 0)
			m->in_file = false;
}

static void room_cb(struct loop_watch *w, uint32_t events)
{
	struct console_mux *m = w->opaque;
	uint64_t v;

	if (read(m->room_fd, &v, sizeof(v)) < 0 || !m->pend_len)
		return;
	m->pend_off += serial_rx(m->uart, m->pending + m->pend_off, m->pend_len - m->pend_off);
	if (m->pend_off < m->pend_len)
		return;
	m->pend_len = m->pend_off = 0;
	m->busy++;
	input_gate(m);
	if (m->in_file)
		in_file_pump(m);
	m->busy--;
	mux_reap(m);
}

static void client_cb(struct loop_watch *w, uint32_t events)
{
	struct mux_client *c = w->opaque;
	struct console_mux *m = c->m;

	m->busy++;
	if (events & EPOLLOUT)
		client_pump(c);
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !m->pend_len) {
		/* never more than the pending buffer can hold */
		ssize_t n = read(c->fd, m->buf, sizeof(m->pending));
		if (n > 0)
			mux_input(m, m->buf, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			client_drop(c);
	} else if (!c->dead && (events & (EPOLLHUP | EPOLLERR))) {
		client_drop(c);
	}
	m->busy--;
	mux_reap(m);
}

static void client_add(struct console_mux *m, int fd)
{
	struct mux_client *c = calloc(1, sizeof(*c));

	if (!c || loop_add(m->loop, &c->w, fd, m->pend_len ? 0 : EPOLLIN, client_cb, c) < 0) {
		free(c);
		close(fd);
		return;
	}
	c->m = m;
	c->fd = fd;
	pthread_mutex_lock(&m->lock);
	c->pos = console_ring_start(&m->ring); /* the boot first */
	m->nclients++;
	pthread_mutex_unlock(&m->lock);
	c->next = m->clients;
	m->clients = c;
	client_pump(c);
}

static void listen_cb(struct loop_watch *w, uint32_t events)
{
	struct console_mux *m = w->opaque;
	int fd;

	m->busy++;
	while ((fd = unixsock_accept(&m->sock)) >= 0) {
		if (console_mux_clients(m) >= CONSOLE_CLIENTS_MAX)
			close(fd);
		else
			client_add(m, fd);
	}
	m->busy--;
	mux_reap(m);
}

static void wake_cb(struct loop_watch *w, uint32_t events)
{
	struct console_mux *m = w->opaque;
	uint64_t v;

	if (read(m->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	/* Cleared before pumping: output that comes meanwhile wakes us again. */
	__atomic_store_n(&m->notified, 0, __ATOMIC_RELEASE);
	m->busy++;
	for (struct mux_client *c = m->clients; c; c = c->next)
		client_pump(c);
	m->busy--;
	mux_reap(m);
}

/* Read terminal or stdin input and give it to the UART through the Ctrl-A escapes: 1 when
 * something was read, 0 at the end (the guest runs on), -1 when nothing is there now. */
static int in_read(struct console_mux *m)
{
	bool quit = false;
	ssize_t n = read(m->in_fd, m->buf, sizeof(m->pending));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return -1;
	if (n <= 0)
		return 0;
	n = (ssize_t)console_filter(&m->term, m->buf, (size_t)n, &quit);
	if (n > 0) {
		m->busy++;
		mux_input(m, m->buf, (size_t)n);
		m->busy--;
		mux_reap(m);
	}
	if (quit && m->on_quit)
		m->on_quit(m->quit_opaque);
	return 1;
}

static void in_cb(struct loop_watch *w, uint32_t events)
{
	if (in_read(w->opaque) == 0)
		loop_del(w);
}

/* ---- setup ---- */

int console_mux_new(const struct console_mux_config *cfg, struct console_mux **out)
{
	struct console_mux *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return err_set(ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	m->out_fd = cfg->out_fd;
	m->in_fd = cfg->in_fd;
	m->sock.fd = -1;
	m->term.in_fd = -1;
	m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	m->room_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->wake_fd < 0 || m->room_fd < 0) {
		ret = err_sys(errno, "eventfd");
		goto fail;
	}
	if (cfg->log) {
		ret = console_log_open(&m->log, cfg->log,
				       cfg->log_max ? cfg->log_max : CONSOLE_LOG_MAX_DEFAULT);
		if (ret < 0)
			goto fail;
		m->has_log = true;
	}
	if (cfg->socket) {
		if ((ret = unixsock_listen(&m->sock, cfg->socket, "--console-socket")) < 0)
			goto fail;
		m->listening = true;
	}
	*out = m;
	return 0;
fail:
	console_mux_free(m);
	return ret;
}

int console_mux_start(struct console_mux *m, struct loop *loop, struct serial *uart,
		      void (*on_quit)(void *), void *opaque)
{
	int ret;

	m->loop = loop;
	m->uart = uart;
	m->on_quit = on_quit;
	m->quit_opaque = opaque;
	serial_set_room_fd(uart, m->room_fd);
	if ((ret = loop_add(loop, &m->wake_w, m->wake_fd, EPOLLIN, wake_cb, m)) < 0 ||
	    (ret = loop_add(loop, &m->room_w, m->room_fd, EPOLLIN, room_cb, m)) < 0)
		return ret;
	if (m->listening &&
	    (ret = loop_add(loop, &m->listen_w, m->sock.fd, EPOLLIN, listen_cb, m)) < 0)
		return ret;
	if (m->in_fd >= 0) {
		if ((ret = console_open(&m->term, m->in_fd)) < 0)
			return ret;
		/* epoll refuses regular files (and /dev/null): those are read as room comes. */
		if (loop_add(loop, &m->in_w, m->in_fd, EPOLLIN, in_cb, m) < 0) {
			err_clear();
			m->in_file = true;
			in_file_pump(m);
		}
	}
	return 0;
}

unsigned console_mux_clients(struct console_mux *m)
{
	unsigned n;

	pthread_mutex_lock(&m->lock);
	n = m->nclients;
	pthread_mutex_unlock(&m->lock);
	return n;
}

void console_mux_free(struct console_mux *m)
{
	if (!m)
		return;
	for (struct mux_client *c = m->clients; c; c = c->next) {
		client_pump(c); /* the guest's last words */
		client_drop(c);
	}
	mux_reap(m);
	loop_del(&m->listen_w);
	loop_del(&m->wake_w);
	loop_del(&m->room_w);
	loop_del(&m->in_w);
	if (m->uart)
		serial_set_room_fd(m->uart, -1);
	unixsock_close(&m->sock);
	console_close(&m->term);
	if (m->has_log)
		console_log_close(&m->log);
	if (m->wake_fd >= 0)
		close(m->wake_fd);
	if (m->room_fd >= 0)
		close(m->room_fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
