/*
 * `ligero img serve --vhost-user PATH` (vhost_user_blk.h): the listening socket, one front-end
 * at a time, signals. As qemu-storage-daemon does, a front-end that goes away (the VM stopped,
 * QEMU killed) leaves the server running for the next one; a second front-end while one is
 * attached is turned away at once (closed, and logged), not left hanging in the backlog.
 */
#include "serve/server.h"
#include "serve/vhost_user_blk.h"
#include "util/error.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum { TAG_LISTEN = 1, TAG_SIGNAL, TAG_DEVICE };

struct server {
	const struct vhost_user_serve_opts *o;
	struct vhost_user_blk *dev;
	int epfd, sigfd, lfd;
	bool made_socket, made_pidfile;
	unsigned next_id;
};

__attribute__((format(printf, 2, 3))) static void say(struct server *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!s->o->dev.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->o->dev.log(s->o->dev.log_opaque, msg);
}

static void accept_one(struct server *s)
{
	int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return; /* gone before we took it, or out of descriptors: the next event says */
	s->next_id++;
	if (vhost_user_blk_attached(s->dev)) {
		say(s, "front-end %u turned away: another one is attached", s->next_id);
		close(fd);
		return;
	}
	if (vhost_user_blk_attach(s->dev, fd) < 0) {
		say(s, "front-end %u: %s", s->next_id, err_msg());
		close(fd);
		return;
	}
	say(s, "front-end %u connected", s->next_id);
}

static int watch(struct server *s, int fd, uint64_t tag)
{
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = tag};

	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
		return err_sys(errno, "cannot set up the event loop");
	return 0;
}

static int setup(struct server *s)
{
	sigset_t set;
	int ret;

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->epfd < 0 || s->sigfd < 0)
		return err_sys(errno, "cannot set up the event loop");
	ret = vhost_user_blk_new(&s->dev, &s->o->dev);
	if (ret < 0)
		return ret;
	ret = serve_listen_unix(s->o->socket_path, 4, &s->lfd, &s->made_socket);
	if (ret == 0)
		ret = watch(s, s->lfd, TAG_LISTEN);
	if (ret == 0)
		ret = watch(s, s->sigfd, TAG_SIGNAL);
	if (ret == 0)
		ret = watch(s, vhost_user_blk_fd(s->dev), TAG_DEVICE);
	if (ret == 0 && s->o->pid_file && (ret = serve_write_pid_file(s->o->pid_file)) == 0)
		s->made_pidfile = true;
	return ret;
}

static int serve_loop(struct server *s)
{
	struct epoll_event ev[4];
	struct signalfd_siginfo si;

	for (;;) {
		int n = epoll_wait(s->epfd, ev, 4, -1);
		if (n < 0 && errno != EINTR)
			return err_sys(errno, "epoll_wait");
		for (int i = 0; i < n; i++) {
			switch (ev[i].data.u64) {
			case TAG_SIGNAL:
				if (read(s->sigfd, &si, sizeof(si)) == sizeof(si))
					return 0; /* taken: not pending once unblocked */
				break;
			case TAG_LISTEN:
				accept_one(s);
				break;
			case TAG_DEVICE:
				vhost_user_blk_dispatch(s->dev);
				break;
			}
		}
	}
}

/* Stop: the rings stop with their requests done, the image is flushed (its error is the
 * server's), the files we made go. */
static int teardown(struct server *s, int ret)
{
	if (s->dev) {
		int r = vhost_user_blk_detach(s->dev);
		if (ret == 0)
			ret = r;
		vhost_user_blk_free(s->dev);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->made_socket)
		unlink(s->o->socket_path);
	if (s->made_pidfile)
		unlink(s->o->pid_file);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->epfd >= 0)
		close(s->epfd);
	return ret;
}

int vhost_user_blk_serve(const struct vhost_user_serve_opts *o)
{
	struct server s = {.o = o, .epfd = -1, .sigfd = -1, .lfd = -1};
	sigset_t set, old;
	int ret;

	/* Blocked before the I/O threads start, so they inherit it: the signals arrive through
	 * the signalfd, and a reply to a vanished front-end fails with EPIPE. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	ret = setup(&s);
	if (ret == 0)
		ret = serve_loop(&s);
	ret = teardown(&s, ret);
	sigset_t pipe;
	struct timespec zero = {0, 0};
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	while (sigtimedwait(&pipe, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}
