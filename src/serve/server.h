/* What every ligero server process does before it serves: listen on a Unix socket, write its
 * pid file. Shared by the NBD server and the vhost-user-blk back-end. */
#ifndef LIGERO_SERVE_SERVER_H
#define LIGERO_SERVE_SERVER_H

#include <stdbool.h>

/*
 * Listen on the Unix socket path (non-blocking, close-on-exec) with the given backlog. A socket
 * file nobody listens on is left over from a server that died and is replaced; one with a
 * listener belongs to a running server, and any other file is not ours to remove: both refused.
 * *made is set once the socket file exists (the caller removes it at exit). Returns 0 with *fd,
 * or a negative errno with a message naming path.
 */
int serve_listen_unix(const char *path, int backlog, int *fd, bool *made);

/* Write the calling process's pid to path: written aside and renamed, so whoever waits for the
 * file never reads half of it. 0 or a negative errno with a message. */
int serve_write_pid_file(const char *path);

#endif
