/* Listening sockets and pid files (server.h). */
#include "serve/server.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int clear_stale_socket(const struct sockaddr_un *a, const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_sys(errno, "%s: cannot look at the socket", path);
	if (!S_ISSOCK(st.st_mode))
		return err_set(EEXIST, "%s: exists and is not a socket", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(errno, "%s: socket", path);
	int r = connect(fd, (const struct sockaddr *)a, sizeof(*a));
	close(fd);
	if (r == 0)
		return err_set(EADDRINUSE, "%s: another server is listening on this socket", path);
	unlink(path);
	return 0;
}

int serve_listen_unix(const char *path, int backlog, int *out, bool *made)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd, ret;

	if (strlen(path) >= sizeof(a.sun_path))
		return err_set(ENAMETOOLONG, "%s: socket path longer than %zu bytes", path,
			       sizeof(a.sun_path) - 1);
	memcpy(a.sun_path, path, strlen(path));
	ret = clear_stale_socket(&a, path);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(errno, "%s: socket", path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		ret = err_sys(errno, "%s: cannot listen", path);
		close(fd);
		return ret;
	}
	*made = true;
	if (listen(fd, backlog) < 0) {
		ret = err_sys(errno, "%s: cannot listen", path);
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

int serve_write_pid_file(const char *path)
{
	char tmp[4096], line[32];
	int n = snprintf(line, sizeof(line), "%d\n", (int)getpid());

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return err_set(ENAMETOOLONG, "%s: pid file name too long", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_sys(errno, "%s: cannot write the pid file", tmp);
	bool ok = write(fd, line, (size_t)n) == n;
	close(fd);
	if (!ok || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return err_sys(e, "%s: cannot write the pid file", path);
	}
	return 0;
}
