/*
 * Fuzz target: the NBD server's handshake and request handling on untrusted bytes.
 *
 * The first input byte picks the set-up (bit 0: TLS offered, as --tls-creds does; bit 1: a
 * read-only export); the rest is what a client sends. It goes through the protocol state
 * machine exactly as a connection feeds it (nbd_session_feed), in pieces whose sizes the input
 * also decides, and every request is carried out by nbd_exec on a 1 MiB raw image (a memfd),
 * as a worker would. A STARTTLS is taken as a handshake that succeeded. Every reply must be
 * well formed enough to have a magic number; crashes, sanitizer reports, leaks and hangs are
 * the findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block.h"
#include "serve/nbd_exec.h"
#include "serve/nbd_proto.h"
#include "util/endian.h"

#define DISK (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bdev *disk(void)
{
	char path[64];
	int fd = memfd_create("nbdfuzz", 0);
	struct bdev *bs = NULL;

	if (fd < 0 || ftruncate(fd, DISK) < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (bdev_open(&bs, path, "raw", BDEV_O_RDWR | BDEV_O_FORCE_SHARE) < 0)
		abort();
	close(fd);
	return bs;
}

static void check_reply(const struct nbd_buf *out, size_t from)
{
	if (out->len == from)
		abort(); /* every request gets an answer */
	uint32_t magic = be32_get(out->data + from);
	if (magic != NBD_SIMPLE_REPLY_MAGIC && magic != NBD_STRUCTURED_REPLY_MAGIC)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bdev *bs;
	struct nbd_export_info exp = {
	    .name = "",
	    .size = DISK,
	    .flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		     NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
		     NBD_FLAG_SEND_FAST_ZERO,
	    .min_block = 1,
	    .pref_block = 4096,
	    .max_payload = NBD_MAX_PAYLOAD,
	    .allocation_depth = true,
	};
	struct nbd_session s;
	struct nbd_buf out = {0};
	size_t pos = 1, step = 1;

	if (!size)
		return 0;
	if (!bs)
		bs = disk();
	if (data[0] & 2)
		exp.flags |= NBD_FLAG_READ_ONLY;
	nbd_session_start(&s, &exp, data[0] & 1, &out);
	for (int rounds = 0; rounds < 100000; rounds++) {
		struct nbd_request req;
		size_t used, avail = size - pos;
		/* The bytes arrive in pieces, as from a socket: at least what the session wants. */
		size_t give = nbd_session_want(&s) + step;
		step = (step * 7 + 3) % 61;
		enum nbd_event ev = nbd_session_feed(&s, data + pos, give < avail ? give : avail,
						     &used, &out, &req);
		pos += used;
		if (ev == NBD_EV_MORE && give < avail)
			abort(); /* it had what it asked for */
		if (ev == NBD_EV_MORE || ev == NBD_EV_CLOSE || ev == NBD_EV_DISC ||
		    ev == NBD_EV_ABORT)
			break;
		if (ev == NBD_EV_STARTTLS)
			nbd_session_tls_up(&s);
		if (ev != NBD_EV_REQUEST)
			continue;
		const uint8_t *payload = NULL;
		if (req.type == NBD_CMD_WRITE) {
			if (size - pos < req.len)
				break; /* the client vanished mid-payload: nothing is written */
			payload = data + pos;
			pos += req.len;
		}
		struct nbd_exec_ctx ctx = {bs, s.structured, s.meta_base, s.meta_depth};
		size_t from = out.len;
		nbd_exec(&ctx, &req, payload, &out, NULL);
		if (out.oom)
			break;
		check_reply(&out, from);
		out.len = 0; /* sent */
	}
	nbd_buf_free(&out);
	return 0;
}
