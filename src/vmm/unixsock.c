/* Listening UNIX sockets; see unixsock.h. */
#include "vmm/unixsock.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	strcpy(a->sun_path, path);
	return 0;
}

int unixsock_connect(const char *path)
{
	struct sockaddr_un a;
	int fd, ret;

	if ((ret = fill_addr(&a, path)) < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* What is at path: 0 (nothing, or a stale socket now removed), or -errno with a message. */
static int clear_path(const char *path, const char *what)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_sys(errno, "%s %s", what, path);
	if (!S_ISSOCK(st.st_mode))
		return err_set(EEXIST, "%s %s: the file exists and is not a socket", what, path);
	fd = unixsock_connect(path);
	if (fd >= 0) {
		close(fd);
		return err_set(EADDRINUSE, "%s %s: a server is already listening there", what,
			       path);
	}
	if (fd != -ECONNREFUSED)
		return err_set(-fd, "%s %s: cannot tell whether a server listens there: %s", what,
			       path, strerror(-fd));
	/* Nobody listens: the socket of a VMM that is gone. */
	if (unlink(path) < 0 && errno != ENOENT)
		return err_sys(errno, "%s %s: cannot remove the stale socket", what, path);
	return 0;
}

int unixsock_listen(struct unixsock *s, const char *path, const char *what)
{
	struct sockaddr_un a;
	struct stat st;
	mode_t old;
	int ret;

	s->fd = -1;
	s->path = NULL;
	if (fill_addr(&a, path) < 0)
		return err_set(ENAMETOOLONG,
			       "%s %s: the path is too long for a socket (%zu bytes at most)", what,
			       path, sizeof(a.sun_path) - 1);
	if ((ret = clear_path(path, what)) < 0)
		return ret;
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return err_sys(errno, "%s: socket", what);
	/* The file is created with the umask's mode: make it private from the start. */
	old = umask(0177);
	ret = bind(s->fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (ret < 0 || listen(s->fd, 16) < 0 || stat(path, &st) < 0) {
		ret = err_sys(errno, "%s %s", what, path);
		close(s->fd);
		s->fd = -1;
		return ret;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	if (!(s->path = strdup(path))) {
		unixsock_close(s);
		return err_set(ENOMEM, "out of memory");
	}
	return 0;
}

int unixsock_accept(struct unixsock *s)
{
	int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

void unixsock_close(struct unixsock *s)
{
	struct stat st;

	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->path && stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	free(s->path);
	s->path = NULL;
}
