/*
 * unixcat: a UNIX socket on stdin and stdout, for test scripts in the emulated host (its
 * busybox nc has no UNIX sockets and it has no python): the raw-socket client of the QMP and
 * console tests. It knows nothing of QMP.
 *
 * usage: unixcat [-k] [-t SECONDS] SOCKET
 *   Copies stdin to the socket and the socket to stdout. At the end of stdin it shuts down its
 *   sending side (the server sees end of file) and goes on reading; it exits 0 when the
 *   server closes the connection. -k keeps the sending side open instead, to wait for what the
 *   server says later (events, console output) until it closes. -t: exit 124 after that many
 *   seconds (a hang guard). Exit 1 when it cannot connect.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void on_alarm(int sig)
{
	(void)sig;
	_exit(124);
}

static int copy(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -1;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		off += w;
	}
	return n > 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int keep = 0, c, fd, in_open = 1;

	while ((c = getopt(argc, argv, "kt:")) != -1) {
		if (c == 'k') {
			keep = 1;
		} else if (c == 't') {
			signal(SIGALRM, on_alarm);
			alarm((unsigned)atoi(optarg));
		} else {
			fprintf(stderr, "usage: unixcat [-k] [-t SECONDS] SOCKET\n");
			return 2;
		}
	}
	if (optind != argc - 1 || strlen(argv[optind]) >= sizeof(a.sun_path)) {
		fprintf(stderr, "usage: unixcat [-k] [-t SECONDS] SOCKET\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	strcpy(a.sun_path, argv[optind]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "unixcat: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	for (;;) {
		struct pollfd p[2] = {{fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
		if (poll(p, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int r = copy(fd, STDOUT_FILENO);
			if (r <= 0)
				return r < 0;
		}
		if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			int r = copy(STDIN_FILENO, fd);
			if (r <= 0) {
				in_open = 0;
				if (!keep)
					shutdown(fd, SHUT_WR);
			}
		}
	}
}
