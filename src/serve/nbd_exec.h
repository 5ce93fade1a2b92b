/*
 * NBD requests carried out on a block device: one call does the I/O and builds the whole reply
 * (simple or structured), so a worker thread can run it and the event loop only sends bytes.
 */
#ifndef LIGERO_SERVE_NBD_EXEC_H
#define LIGERO_SERVE_NBD_EXEC_H

#include "serve/nbd_proto.h"

struct bdev;

/* What the client negotiated, as the request needs it. */
struct nbd_exec_ctx {
	struct bdev *bs;
	bool structured;
	bool meta_base, meta_depth;
};

/* A stretch of a read's data left in the image file, to go out with sendfile instead of being
 * copied: its bytes belong between out->data[at - 1] and out->data[at]. */
struct nbd_fpiece {
	size_t at;
	int fd;
	uint64_t off;
	size_t len;
};
struct nbd_fpieces {
	struct nbd_fpiece *p;
	int n, cap;
};

/* Carry out req (already checked by nbd_session_feed; req->error set means: reply with that
 * error only) and append its reply to out. payload: a WRITE's req->len bytes. fp non-NULL:
 * data of structured reads that lies plainly in an image file (not compressed, inside the
 * file) is described in fp rather than read into out; only for images nobody writes while
 * the reply is out. Returns 0, or the negative errno of a block-layer failure (the client got
 * an error reply; err_msg() tells why, for the server's log). out->oom set: no memory for the
 * reply (drop the client). */
int nbd_exec(const struct nbd_exec_ctx *ctx, const struct nbd_request *req, const uint8_t *payload,
	     struct nbd_buf *out, struct nbd_fpieces *fp);

#endif
