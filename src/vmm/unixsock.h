/* Listening UNIX sockets for the VM's control and console sockets: private (mode 0600), never
 * stolen from a live VM, and removed at exit only if they are still ours. */
#ifndef LIGERO_VMM_UNIXSOCK_H
#define LIGERO_VMM_UNIXSOCK_H

#include <sys/types.h>

struct unixsock {
	int fd; /* listening, non-blocking, close-on-exec; -1 when closed */
	char *path;
	dev_t dev; /* what path was once bound, to remove only our own */
	ino_t ino;
};

/* Listen at path with mode 0600. A socket file already there is replaced when nothing answers
 * on it (a VMM that died); when a server answers: -EADDRINUSE, "PATH: a server is already
 * listening there". Anything else at path (a file, a directory) is refused with -EEXIST. `what`
 * names the option in messages ("--qmp"). */
int unixsock_listen(struct unixsock *s, const char *path, const char *what);
/* Accept one client (non-blocking, close-on-exec); -EAGAIN when none is waiting. */
int unixsock_accept(struct unixsock *s);
/* Close and remove the socket file if it is still the one we bound. */
void unixsock_close(struct unixsock *s);
/* Connect to a UNIX socket (blocking); the fd or -errno. For tests and the liveness probe. */
int unixsock_connect(const char *path);

#endif
