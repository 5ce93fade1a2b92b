/*
 * vhost-user-blk: an image served to another VMM's guest through shared memory (QEMU's
 * vhost-user-blk-pci, Cloud Hypervisor, crosvm), the job of qemu-storage-daemon's vhost-user-blk
 * export. The front-end shares its guest RAM and the virtqueues; we read the requests straight
 * out of the guest's memory (src/vmm/virtio's queue and request code, the same the VMM runs) and
 * do them on the block layer.
 *
 * Threads: the caller's thread handles the front-end's messages and the queue kicks
 * (vhost_user_blk_dispatch); a few I/O threads pop requests from the rings, do them and signal
 * completions on the call eventfds themselves. One front-end at a time; when it goes the rings
 * stop, the image is flushed, and the device waits for the next.
 */
#ifndef LIGERO_SERVE_VHOST_USER_BLK_H
#define LIGERO_SERVE_VHOST_USER_BLK_H

#include <stdbool.h>

/* Request queues offered (GET_QUEUE_NUM): QEMU's vhost-user-blk-pci asks for one per vCPU. */
#define VHOST_USER_BLK_MAX_QUEUES 16
/* `img serve --vhost-user`'s interrupt coalescing bound when none is given, microseconds: a
 * held interrupt waits twice the time per request the queue was going at, at most this
 * (vhost_user_rings.c; docs/ligero-serve.md has what it changes). */
#define VHOST_USER_BLK_COALESCE_US 1000
/* Data buffers per request (config seg_max): fits QEMU's default queue of 128 entries. */
#define VHOST_USER_BLK_SEG_MAX 126

struct bdev;

struct vhost_user_blk_opts {
	struct bdev *bs;    /* the image (opened, and closed, by the caller) */
	bool read_only;	    /* offer VIRTIO_BLK_F_RO and refuse writes whatever bs allows */
	const char *serial; /* the disk's serial (GET_ID, at most 20 bytes); NULL: none */
	int workers;	    /* I/O threads; 0: a default */
	/* Interrupt coalescing (vhost_user_rings.c): a finished request's interrupt waits while
	 * other requests of its queue are at the I/O threads (the last of them interrupts for
	 * all), and, while the guest is seen to send requests faster than it takes interrupts,
	 * until the end of a window; this many microseconds at most. 0: every completion
	 * interrupts at once (when the guest asks). */
	int coalesce_us;
	bool trace;	    /* log every message the front-end sends */
	/* One line per event worth an operator's attention (a front-end came or went, was
	 * dropped, broke a ring). Called from several threads. */
	void (*log)(void *opaque, const char *msg);
	void *log_opaque;
};

struct vhost_user_blk;

/* Make the device and start its I/O threads. 0 or a negative errno with a message. */
int vhost_user_blk_new(struct vhost_user_blk **out, const struct vhost_user_blk_opts *o);
/* Serve the front-end on connected socket fd (the device owns it from now on). -EBUSY while
 * another is attached (fd is left to the caller then). */
int vhost_user_blk_attach(struct vhost_user_blk *d, int fd);
bool vhost_user_blk_attached(const struct vhost_user_blk *d);
/* A descriptor that polls readable when vhost_user_blk_dispatch has work (messages, kicks). */
int vhost_user_blk_fd(const struct vhost_user_blk *d);
/* Handle whatever is ready, without blocking. Returns true while the front-end stays; false
 * once it has gone or been dropped for breaking the protocol (the reason is logged, and the
 * device has detached: vhost_user_blk_detach's work is done). */
bool vhost_user_blk_dispatch(struct vhost_user_blk *d);
/* Stop the rings (requests at the I/O threads complete first), unmap the guest's memory,
 * close the connection and flush the image. 0, or the flush's error. Nothing to do: 0. */
int vhost_user_blk_detach(struct vhost_user_blk *d);
/* Detach (errors logged), stop the I/O threads and free. */
void vhost_user_blk_free(struct vhost_user_blk *d);

/* `ligero img serve --vhost-user PATH`. */
struct vhost_user_serve_opts {
	struct vhost_user_blk_opts dev;
	const char *socket_path; /* listen here (a stale socket nobody listens on is replaced) */
	const char *pid_file;	 /* written once listening, removed at exit; NULL: none */
};

/* Serve front-ends one after another until SIGTERM or SIGINT: the rings stop, the image is
 * flushed, the socket and pid file are removed. Returns 0 then, or a negative errno (with a
 * message) when the server cannot start or the last flush failed. Blocks SIGTERM, SIGINT and
 * SIGPIPE in the calling thread. */
int vhost_user_blk_serve(const struct vhost_user_serve_opts *o);

#endif
