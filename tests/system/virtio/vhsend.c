/* vhsend HOST PORT MIB TEXT: connect to HOST:PORT over TCP (retried once a second while nobody
 * listens, 60 tries) and send MIB MiB of TEXT "\n" repeated, in writes of about 1 MiB, then
 * close. test_virtio_vhost.py's guests send with it instead of `yes | head | nc`: busybox nc
 * writes what it reads from the pipe a few KiB at a time, so whether the socket ever holds two
 * segments' worth (what Linux needs to build a TSO packet larger than the MTU) depended on how
 * fast the guest's CPU ran against its network; with 1 MiB writes the queue is always full and
 * the offload shows at any speed. Exit status 0 once the peer has everything: after the last
 * write it shuts its side down and waits (up to 300 s) for the peer to close, so a test that
 * resets the NIC next cannot cut off a tail still in flight. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	size_t unit, chunk;
	long long left;
	char *buf;
	int fd = -1;

	if (argc != 5 || inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
		fprintf(stderr, "usage: vhsend HOST PORT MIB TEXT\n");
		return 2;
	}
	a.sin_port = htons((unsigned short)atoi(argv[2]));
	left = atoll(argv[3]) << 20;
	unit = strlen(argv[4]) + 1;
	chunk = (1 << 20) / unit * unit; /* whole units: every write starts a line */
	if (!(buf = malloc(chunk)))
		return 1;
	for (size_t off = 0; off < chunk; off += unit) {
		memcpy(buf + off, argv[4], unit - 1);
		buf[off + unit - 1] = '\n';
	}
	for (int tries = 0;; tries++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		if (fd >= 0)
			close(fd);
		if (tries >= 59) {
			perror("vhsend: connect");
			return 1;
		}
		sleep(1);
	}
	while (left > 0) {
		size_t n = left < (long long)chunk ? (size_t)left : chunk;
		for (size_t done = 0; done < n;) {
			ssize_t w = write(fd, buf + done, n - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				perror("vhsend: write");
				return 1;
			}
			done += (size_t)w;
		}
		left -= (long long)n;
	}
	/* the peer (nc -l) closes once it has read our end of the stream */
	struct timeval tv = {.tv_sec = 300};
	ssize_t r;
	char c[256];
	if (shutdown(fd, SHUT_WR) || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
		perror("vhsend: shutdown");
		return 1;
	}
	while ((r = read(fd, c, sizeof(c))) > 0 || (r < 0 && errno == EINTR))
		;
	if (r < 0) {
		perror("vhsend: waiting for the peer to close");
		return 1;
	}
	if (close(fd)) {
		perror("vhsend: close");
		return 1;
	}
	return 0;
}
