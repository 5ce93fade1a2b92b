/*
 * The NBD server: one image exported over a Unix or TCP socket to several clients at once, the
 * job of qemu-nbd. One epoll event loop owns every socket (non-blocking, no thread per client);
 * block I/O runs on a small pool of worker threads because the block layer's calls block.
 */
#ifndef LIGERO_SERVE_NBD_H
#define LIGERO_SERVE_NBD_H

#include <stdbool.h>

struct bdev;

struct nbd_serve_opts {
	struct bdev *bs;	 /* the image (opened, and closed, by the caller) */
	const char *export_name; /* NULL: "" (the default export) */
	const char *description; /* NULL: none */
	bool read_only;		 /* refuse writes (EPERM) whatever bs allows */
	const char *socket_path; /* Unix socket; NULL: TCP */
	const char *bind_addr;	 /* TCP address; NULL: every interface, as qemu-nbd */
	int port;		 /* TCP port (10809 is NBD's) */
	int shared;		 /* clients at once; more wait in the listen backlog */
	bool persistent;	 /* keep serving when the last client leaves */
	const char *tls_dir;	 /* TLS credentials (nbd_tls.h); NULL: no TLS */
	bool allow_insecure;	 /* listen beyond loopback without TLS */
	const char *pid_file;	 /* written once listening, removed at exit; NULL: none */
	int workers;		 /* block I/O threads; 0: a default */
	bool no_inline;		 /* every request to the workers (tests, diagnosis) */
	/* One line per event worth an operator's attention (a client dropped, an I/O error).
	 * Called from several threads. */
	void (*log)(void *opaque, const char *msg);
	void *log_opaque;
};

/* Serve until SIGTERM or SIGINT (or, without persistent, until the last client that reached
 * the transmission phase leaves): in-flight requests finish, the image is flushed, the socket
 * and pid file are removed. Returns 0 then, or a negative errno (with a message) when the
 * server cannot start. Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread. */
int nbd_serve(const struct nbd_serve_opts *o);

#endif
