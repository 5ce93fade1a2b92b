/*
 * The NBD server's protocol state machine (serve/nbd_proto.c) and request execution
 * (serve/nbd_exec.c), byte for byte against doc/proto.md: greeting, option replies, TLS-required
 * behaviour, metadata contexts, request checks, and the replies of reads and block status on a
 * small qcow2 chain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "serve/nbd_exec.h"
#include "serve/nbd_proto.h"
#include "util/endian.h"

static const struct nbd_export_info EXP = {
    .name = "disk",
    .description = "a test disk",
    .size = 1 << 20,
    .flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
	     NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO,
    .min_block = 1,
    .pref_block = 4096,
    .max_payload = NBD_MAX_PAYLOAD,
    .allocation_depth = true,
};

struct t {
	struct nbd_session s;
	struct nbd_buf out;
	size_t seen; /* bytes of out already checked */
	struct nbd_request req;
};

/* Feed all of in; returns the last event that was not OK/MORE (or MORE). */
static enum nbd_event feed(struct t *t, const void *in, size_t len)
{
	const uint8_t *p = in;
	enum nbd_event last = NBD_EV_MORE;

	for (;;) {
		size_t used;
		enum nbd_event ev = nbd_session_feed(&t->s, p, len, &used, &t->out, &t->req);
		p += used;
		len -= used;
		if (ev == NBD_EV_MORE)
			break;
		if (ev != NBD_EV_OK)
			last = ev;
		if (ev == NBD_EV_CLOSE || ev == NBD_EV_REQUEST || ev == NBD_EV_DISC ||
		    ev == NBD_EV_ABORT || ev == NBD_EV_STARTTLS)
			break;
	}
	assert_int_equal(len, 0);
	return last;
}

static void start(struct t *t, const struct nbd_export_info *e, bool tls, uint32_t cflags)
{
	uint8_t f[4];

	memset(t, 0, sizeof(*t));
	nbd_session_start(&t->s, e, tls, &t->out);
	assert_int_equal(t->out.len, 18);
	assert_true(be64_get(t->out.data) == NBD_MAGIC);
	assert_true(be64_get(t->out.data + 8) == NBD_IHAVEOPT);
	assert_int_equal(be16_get(t->out.data + 16), NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	t->seen = 18;
	be32_put(f, cflags);
	assert_int_equal(feed(t, f, 4), NBD_EV_MORE);
}

static enum nbd_event option(struct t *t, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t hdr[16];

	be64_put(hdr, NBD_IHAVEOPT);
	be32_put(hdr + 8, opt);
	be32_put(hdr + 12, len);
	uint8_t *all = malloc(16 + len + 1);
	memcpy(all, hdr, 16);
	if (len)
		memcpy(all + 16, data, len);
	enum nbd_event ev = feed(t, all, 16 + len);
	free(all);
	return ev;
}

/* The next option reply: its type, and its data in *data (len *len). */
static uint32_t next_reply(struct t *t, uint32_t opt, const uint8_t **data, uint32_t *len)
{
	assert_true(t->out.len - t->seen >= 20);
	const uint8_t *r = t->out.data + t->seen;
	assert_true(be64_get(r) == NBD_REP_MAGIC);
	assert_int_equal(be32_get(r + 8), opt);
	uint32_t type = be32_get(r + 12), l = be32_get(r + 16);
	assert_true(t->out.len - t->seen >= 20 + l);
	if (data)
		*data = r + 20;
	if (len)
		*len = l;
	t->seen += 20 + l;
	return type;
}

static void done(struct t *t)
{
	assert_int_equal(t->seen, t->out.len);
	nbd_buf_free(&t->out);
}

/* name length, name, n info requests */
static size_t go_data(uint8_t *buf, const char *name, const uint16_t *req, uint16_t n)
{
	size_t l = strlen(name);

	be32_put(buf, (uint32_t)l);
	memcpy(buf + 4, name, l);
	be16_put(buf + 4 + l, n);
	for (uint16_t i = 0; i < n; i++)
		be16_put(buf + 6 + l + 2 * i, req[i]);
	return 6 + l + 2 * n;
}

static void test_client_flags(void **state)
{
	struct t t;
	uint8_t f[4];

	(void)state;
	memset(&t, 0, sizeof(t));
	nbd_session_start(&t.s, &EXP, false, &t.out);
	be32_put(f, 4); /* an unknown flag */
	assert_int_equal(feed(&t, f, 4), NBD_EV_CLOSE);
	assert_non_null(strstr(t.s.why, "client flags"));
	nbd_buf_free(&t.out);

	/* without fixed newstyle only NBD_OPT_EXPORT_NAME is allowed */
	start(&t, &EXP, false, 0);
	assert_int_equal(option(&t, NBD_OPT_LIST, NULL, 0), NBD_EV_CLOSE);
	nbd_buf_free(&t.out);
}

static void test_list_and_unknown(void **state)
{
	struct t t;
	const uint8_t *d;
	uint32_t l;

	(void)state;
	start(&t, &EXP, false, NBD_FLAG_C_FIXED_NEWSTYLE);
	assert_int_equal(option(&t, NBD_OPT_LIST, NULL, 0), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_LIST, &d, &l), NBD_REP_SERVER);
	assert_int_equal(be32_get(d), 4);
	assert_memory_equal(d + 4, "disk", 4);
	assert_memory_equal(d + 8, "a test disk", l - 8);
	assert_int_equal(next_reply(&t, NBD_OPT_LIST, NULL, NULL), NBD_REP_ACK);
	assert_int_equal(option(&t, NBD_OPT_LIST, "x", 1), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_LIST, NULL, NULL), NBD_REP_ERR_INVALID);
	assert_int_equal(option(&t, 99, "junk", 4), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, 99, NULL, NULL), NBD_REP_ERR_UNSUP);
	assert_int_equal(option(&t, NBD_OPT_STARTTLS, NULL, 0), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_STARTTLS, NULL, NULL), NBD_REP_ERR_POLICY);
	assert_int_equal(option(&t, NBD_OPT_ABORT, NULL, 0), NBD_EV_ABORT);
	assert_int_equal(next_reply(&t, NBD_OPT_ABORT, NULL, NULL), NBD_REP_ACK);
	done(&t);
}

static void test_oversized_option_skipped(void **state)
{
	struct t t;
	uint32_t big = NBD_MAX_OPTION + 10;
	uint8_t *junk = calloc(1, big);

	(void)state;
	start(&t, &EXP, false, NBD_FLAG_C_FIXED_NEWSTYLE);
	assert_int_equal(option(&t, NBD_OPT_GO, junk, big), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_GO, NULL, NULL), NBD_REP_ERR_TOO_BIG);
	free(junk);
	/* the stream is still in step */
	assert_int_equal(option(&t, NBD_OPT_STRUCTURED_REPLY, NULL, 0), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_STRUCTURED_REPLY, NULL, NULL), NBD_REP_ACK);
	assert_int_equal(option(&t, NBD_OPT_STRUCTURED_REPLY, NULL, 0), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_STRUCTURED_REPLY, NULL, NULL), NBD_REP_ERR_INVALID);
	done(&t);
}

static void test_info_go(void **state)
{
	static const uint16_t reqs[] = {NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE};
	struct t t;
	uint8_t buf[64];
	const uint8_t *d;
	uint32_t l;
	size_t n;

	(void)state;
	start(&t, &EXP, false, NBD_FLAG_C_FIXED_NEWSTYLE);
	n = go_data(buf, "other", NULL, 0);
	assert_int_equal(option(&t, NBD_OPT_GO, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_GO, NULL, NULL), NBD_REP_ERR_UNKNOWN);
	/* a name length that runs past the option */
	n = go_data(buf, "disk", NULL, 0);
	be32_put(buf, 200);
	assert_int_equal(option(&t, NBD_OPT_INFO, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_INFO, NULL, NULL), NBD_REP_ERR_INVALID);
	/* a request count that does not match the length */
	n = go_data(buf, "disk", reqs, 3);
	assert_int_equal(option(&t, NBD_OPT_INFO, buf, (uint32_t)n - 2), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_INFO, NULL, NULL), NBD_REP_ERR_INVALID);

	assert_int_equal(option(&t, NBD_OPT_INFO, buf, (uint32_t)n), NBD_EV_MORE);
	bool name = false, desc = false, bs = false, exp = false;
	uint32_t type;
	while ((type = next_reply(&t, NBD_OPT_INFO, &d, &l)) == NBD_REP_INFO) {
		switch (be16_get(d)) {
		case NBD_INFO_NAME:
			name = l == 6 && !memcmp(d + 2, "disk", 4);
			break;
		case NBD_INFO_DESCRIPTION:
			desc = l == 13;
			break;
		case NBD_INFO_BLOCK_SIZE:
			bs = l == 14 && be32_get(d + 2) == 1 && be32_get(d + 6) == 4096 &&
			     be32_get(d + 10) == NBD_MAX_PAYLOAD;
			break;
		case NBD_INFO_EXPORT:
			exp =
			    l == 12 && be64_get(d + 2) == EXP.size && be16_get(d + 10) == EXP.flags;
			break;
		}
	}
	assert_int_equal(type, NBD_REP_ACK);
	assert_true(name && desc && bs && exp);
	assert_int_equal(t.s.state, NBD_ST_OPT_HEADER);

	assert_int_equal(option(&t, NBD_OPT_GO, buf, (uint32_t)n), NBD_EV_GO);
	while (next_reply(&t, NBD_OPT_GO, NULL, NULL) == NBD_REP_INFO)
		;
	assert_int_equal(t.s.state, NBD_ST_TRANSMISSION);
	done(&t);
}

static void test_export_name(void **state)
{
	struct t t;

	(void)state;
	start(&t, &EXP, false, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	assert_int_equal(option(&t, NBD_OPT_EXPORT_NAME, "disk", 4), NBD_EV_GO);
	assert_int_equal(t.out.len - t.seen, 10); /* no 124 zeroes */
	assert_true(be64_get(t.out.data + t.seen) == EXP.size);
	nbd_buf_free(&t.out);

	start(&t, &EXP, false, NBD_FLAG_C_FIXED_NEWSTYLE);
	assert_int_equal(option(&t, NBD_OPT_EXPORT_NAME, "disk", 4), NBD_EV_GO);
	assert_int_equal(t.out.len - t.seen, 134);
	nbd_buf_free(&t.out);

	start(&t, &EXP, false, 0); /* old clients: unknown export ends the session */
	assert_int_equal(option(&t, NBD_OPT_EXPORT_NAME, "nope", 4), NBD_EV_CLOSE);
	nbd_buf_free(&t.out);
}

/* SET or LIST_META_CONTEXT data: export name, queries. */
static size_t meta_data(uint8_t *buf, const char *name, const char *const *q, int n)
{
	size_t pos = 0, l = strlen(name);

	be32_put(buf, (uint32_t)l);
	memcpy(buf + 4, name, l);
	be32_put(buf + 4 + l, (uint32_t)n);
	pos = 8 + l;
	for (int i = 0; i < n; i++) {
		be32_put(buf + pos, (uint32_t)strlen(q[i]));
		memcpy(buf + pos + 4, q[i], strlen(q[i]));
		pos += 4 + strlen(q[i]);
	}
	return pos;
}

static void test_meta_contexts(void **state)
{
	static const char *const sel[] = {"base:allocation", "qemu:allocation-depth", "x-foo:bar",
					  "base:"};
	static const char *const wild[] = {"base:"};
	struct t t;
	uint8_t buf[256];
	const uint8_t *d;
	uint32_t l;
	size_t n;

	(void)state;
	start(&t, &EXP, false, NBD_FLAG_C_FIXED_NEWSTYLE);
	n = meta_data(buf, "disk", sel, 2);
	assert_int_equal(option(&t, NBD_OPT_SET_META_CONTEXT, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_SET_META_CONTEXT, NULL, NULL),
			 NBD_REP_ERR_INVALID); /* structured replies first */
	assert_int_equal(option(&t, NBD_OPT_STRUCTURED_REPLY, NULL, 0), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_STRUCTURED_REPLY, NULL, NULL), NBD_REP_ACK);

	/* listing with no query: everything */
	n = meta_data(buf, "disk", NULL, 0);
	assert_int_equal(option(&t, NBD_OPT_LIST_META_CONTEXT, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_LIST_META_CONTEXT, &d, &l), NBD_REP_META_CONTEXT);
	assert_memory_equal(d + 4, "base:allocation", l - 4);
	assert_int_equal(next_reply(&t, NBD_OPT_LIST_META_CONTEXT, &d, &l), NBD_REP_META_CONTEXT);
	assert_memory_equal(d + 4, "qemu:allocation-depth", l - 4);
	assert_int_equal(next_reply(&t, NBD_OPT_LIST_META_CONTEXT, NULL, NULL), NBD_REP_ACK);
	/* "base:" is a wildcard for listing, selects nothing */
	n = meta_data(buf, "disk", wild, 1);
	assert_int_equal(option(&t, NBD_OPT_LIST_META_CONTEXT, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_LIST_META_CONTEXT, NULL, NULL),
			 NBD_REP_META_CONTEXT);
	assert_int_equal(next_reply(&t, NBD_OPT_LIST_META_CONTEXT, NULL, NULL), NBD_REP_ACK);
	assert_int_equal(option(&t, NBD_OPT_SET_META_CONTEXT, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_SET_META_CONTEXT, NULL, NULL), NBD_REP_ACK);
	assert_false(t.s.meta_base || t.s.meta_depth);

	n = meta_data(buf, "disk", sel, 4);
	assert_int_equal(option(&t, NBD_OPT_SET_META_CONTEXT, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_SET_META_CONTEXT, &d, &l), NBD_REP_META_CONTEXT);
	assert_int_equal(be32_get(d), NBD_META_BASE_ALLOCATION);
	assert_int_equal(next_reply(&t, NBD_OPT_SET_META_CONTEXT, &d, &l), NBD_REP_META_CONTEXT);
	assert_int_equal(be32_get(d), NBD_META_ALLOCATION_DEPTH);
	assert_int_equal(next_reply(&t, NBD_OPT_SET_META_CONTEXT, NULL, NULL), NBD_REP_ACK);
	assert_true(t.s.meta_base && t.s.meta_depth);

	/* a query length past the end: invalid, and the selection is gone */
	be32_put(buf + 8 + 4, 1000);
	assert_int_equal(option(&t, NBD_OPT_SET_META_CONTEXT, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_SET_META_CONTEXT, NULL, NULL), NBD_REP_ERR_INVALID);
	assert_false(t.s.meta_base || t.s.meta_depth);
	n = meta_data(buf, "nope", sel, 1);
	assert_int_equal(option(&t, NBD_OPT_SET_META_CONTEXT, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_SET_META_CONTEXT, NULL, NULL), NBD_REP_ERR_UNKNOWN);
	done(&t);
}

static void test_tls_required(void **state)
{
	struct t t;
	uint8_t buf[64];
	size_t n = go_data(buf, "disk", NULL, 0);

	(void)state;
	start(&t, &EXP, true, NBD_FLAG_C_FIXED_NEWSTYLE);
	assert_int_equal(option(&t, NBD_OPT_STRUCTURED_REPLY, NULL, 0), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_STRUCTURED_REPLY, NULL, NULL),
			 NBD_REP_ERR_TLS_REQD);
	assert_int_equal(option(&t, NBD_OPT_GO, buf, (uint32_t)n), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_GO, NULL, NULL), NBD_REP_ERR_TLS_REQD);
	assert_int_equal(option(&t, NBD_OPT_STARTTLS, "x", 1), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_STARTTLS, NULL, NULL), NBD_REP_ERR_INVALID);
	assert_int_equal(option(&t, NBD_OPT_STARTTLS, NULL, 0), NBD_EV_STARTTLS);
	assert_int_equal(next_reply(&t, NBD_OPT_STARTTLS, NULL, NULL), NBD_REP_ACK);
	nbd_session_tls_up(&t.s);
	assert_int_equal(option(&t, NBD_OPT_STARTTLS, NULL, 0), NBD_EV_MORE);
	assert_int_equal(next_reply(&t, NBD_OPT_STARTTLS, NULL, NULL), NBD_REP_ERR_INVALID);
	assert_int_equal(option(&t, NBD_OPT_GO, buf, (uint32_t)n), NBD_EV_GO);
	nbd_buf_free(&t.out);

	start(&t, &EXP, true, NBD_FLAG_C_FIXED_NEWSTYLE);
	assert_int_equal(option(&t, NBD_OPT_EXPORT_NAME, "disk", 4), NBD_EV_CLOSE);
	nbd_buf_free(&t.out);
}

static enum nbd_event request(struct t *t, uint16_t type, uint16_t flags, uint64_t off,
			      uint32_t len, uint32_t magic)
{
	uint8_t r[NBD_REQUEST_SIZE];

	be32_put(r, magic);
	be16_put(r + 4, flags);
	be16_put(r + 6, type);
	be64_put(r + 8, 0x1122334455667788ULL);
	be64_put(r + 16, off);
	be32_put(r + 24, len);
	return feed(t, r, sizeof(r));
}

static void go(struct t *t, const struct nbd_export_info *e, bool structured)
{
	uint8_t buf[64];
	size_t n = go_data(buf, e->name, NULL, 0);

	start(t, e, false, NBD_FLAG_C_FIXED_NEWSTYLE);
	if (structured)
		assert_int_equal(option(t, NBD_OPT_STRUCTURED_REPLY, NULL, 0), NBD_EV_MORE);
	assert_int_equal(option(t, NBD_OPT_GO, buf, (uint32_t)n), NBD_EV_GO);
	t->seen = t->out.len;
}

static void test_requests(void **state)
{
	struct nbd_export_info ro = EXP;
	struct t t;

	(void)state;
	ro.flags |= NBD_FLAG_READ_ONLY;
	go(&t, &EXP, false);
	assert_int_equal(request(&t, NBD_CMD_READ, 0, 4096, 512, NBD_REQUEST_MAGIC),
			 NBD_EV_REQUEST);
	assert_int_equal(t.req.error, 0);
	assert_true(t.req.cookie == 0x1122334455667788ULL);
	request(&t, NBD_CMD_READ, 0, EXP.size - 511, 512, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_EINVAL);
	request(&t, NBD_CMD_READ, 0, 0, NBD_MAX_PAYLOAD + 1, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_EINVAL);
	request(&t, NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_EINVAL); /* DF needs structured replies */
	request(&t, NBD_CMD_WRITE, 0, EXP.size, 1, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_ENOSPC);
	request(&t, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO, 0, 512,
		NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, 0);
	request(&t, NBD_CMD_TRIM, NBD_CMD_FLAG_NO_HOLE, 0, 512, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_EINVAL);
	request(&t, 42, 0, 0, 0, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_EINVAL);
	request(&t, NBD_CMD_BLOCK_STATUS, 0, 0, 512, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_EINVAL); /* no context selected */
	assert_int_equal(request(&t, NBD_CMD_WRITE, 0, 0, NBD_MAX_PAYLOAD + 1, NBD_REQUEST_MAGIC),
			 NBD_EV_CLOSE);
	nbd_buf_free(&t.out);

	go(&t, &ro, true);
	request(&t, NBD_CMD_WRITE, 0, 0, 512, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_EPERM);
	request(&t, NBD_CMD_TRIM, 0, 0, 512, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, NBD_EPERM);
	request(&t, NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512, NBD_REQUEST_MAGIC);
	assert_int_equal(t.req.error, 0);
	assert_int_equal(request(&t, NBD_CMD_DISC, 0, 0, 0, NBD_REQUEST_MAGIC), NBD_EV_DISC);
	nbd_buf_free(&t.out);

	go(&t, &EXP, true);
	assert_int_equal(request(&t, NBD_CMD_READ, 0, 0, 512, 0xdeadbeef), NBD_EV_CLOSE);
	assert_non_null(strstr(t.s.why, "magic"));
	nbd_buf_free(&t.out);
}

static void test_partial_input(void **state)
{
	struct t t;
	uint8_t r[NBD_REQUEST_SIZE] = {0};
	size_t used;

	(void)state;
	go(&t, &EXP, true);
	be32_put(r, NBD_REQUEST_MAGIC);
	for (size_t i = 0; i < sizeof(r); i++)
		assert_int_equal(nbd_session_feed(&t.s, r, i, &used, &t.out, &t.req), NBD_EV_MORE);
	assert_int_equal(nbd_session_feed(&t.s, r, sizeof(r), &used, &t.out, &t.req),
			 NBD_EV_REQUEST);
	assert_int_equal(used, sizeof(r));
	nbd_buf_free(&t.out);
}

/* ---- execution on a qcow2 chain: base has cluster 1, the overlay cluster 2 ---- */

static char dir[64];

static struct bdev *chain(void)
{
	char base[128], top[128];
	struct bdev_create_opts o = {.size = 4 << 16};
	struct bdev *bs;
	uint8_t data[65536];

	snprintf(dir, sizeof(dir), "nbdproto-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(base, sizeof(base), "%s/base.qcow2", dir);
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	assert_int_equal(bdev_create(base, "qcow2", &o), 0);
	assert_int_equal(bdev_open(&bs, base, "qcow2", BDEV_O_RDWR), 0);
	memset(data, 0xaa, sizeof(data));
	assert_int_equal(bdev_write(bs, 1 << 16, data, sizeof(data)), 0);
	bdev_close(bs);
	o.backing_file = "base.qcow2";
	o.backing_fmt = "qcow2";
	assert_int_equal(bdev_create(top, "qcow2", &o), 0);
	assert_int_equal(bdev_open(&bs, top, "qcow2", BDEV_O_RDWR), 0);
	memset(data, 0xbb, sizeof(data));
	assert_int_equal(bdev_write(bs, 2 << 16, data, sizeof(data)), 0);
	return bs;
}

static void unchain(struct bdev *bs)
{
	char cmd[128];

	bdev_close(bs);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* One structured chunk at *pos: its header fields; *pos moves past it. */
static const uint8_t *chunk(const struct nbd_buf *b, size_t *pos, uint16_t *flags, uint16_t *type,
			    uint32_t *len)
{
	const uint8_t *c = b->data + *pos;

	assert_true(b->len - *pos >= NBD_CHUNK_HDR);
	assert_true(be32_get(c) == NBD_STRUCTURED_REPLY_MAGIC);
	*flags = be16_get(c + 4);
	*type = be16_get(c + 6);
	*len = be32_get(c + 16);
	*pos += NBD_CHUNK_HDR + *len;
	assert_true(*pos <= b->len);
	return c + NBD_CHUNK_HDR;
}

static void test_exec_sparse_read(void **state)
{
	struct bdev *bs = chain();
	struct nbd_exec_ctx ctx = {bs, true, true, true};
	struct nbd_request req = {.type = NBD_CMD_READ, .cookie = 7, .offset = 0, .len = 4 << 16};
	struct nbd_buf out = {0};
	uint16_t flags, type;
	uint32_t len;
	size_t pos = 0;

	(void)state;
	assert_int_equal(nbd_exec(&ctx, &req, NULL, &out, NULL), 0);
	const uint8_t *p = chunk(&out, &pos, &flags, &type, &len);
	assert_int_equal(type, NBD_REPLY_TYPE_OFFSET_HOLE); /* cluster 0: nowhere */
	assert_true(be64_get(p) == 0 && be32_get(p + 8) == 1 << 16);
	p = chunk(&out, &pos, &flags, &type, &len);
	assert_int_equal(type, NBD_REPLY_TYPE_OFFSET_DATA); /* clusters 1 (base) and 2 (top) */
	assert_int_equal(len, 8 + (2 << 16));
	assert_true(be64_get(p) == 1 << 16);
	assert_int_equal(p[8], 0xaa);
	assert_int_equal(p[8 + (2 << 16) - 1], 0xbb);
	p = chunk(&out, &pos, &flags, &type, &len);
	assert_int_equal(type, NBD_REPLY_TYPE_OFFSET_HOLE);
	assert_int_equal(flags, NBD_REPLY_FLAG_DONE);
	assert_int_equal(pos, out.len);

	/* DF: one data chunk with the zeroes in it */
	out.len = 0;
	req.flags = NBD_CMD_FLAG_DF;
	assert_int_equal(nbd_exec(&ctx, &req, NULL, &out, NULL), 0);
	pos = 0;
	chunk(&out, &pos, &flags, &type, &len);
	assert_int_equal(type, NBD_REPLY_TYPE_OFFSET_DATA);
	assert_int_equal(flags, NBD_REPLY_FLAG_DONE);
	assert_int_equal(len, 8 + req.len);

	/* simple replies: header and data */
	out.len = 0;
	ctx.structured = false;
	req.flags = 0;
	assert_int_equal(nbd_exec(&ctx, &req, NULL, &out, NULL), 0);
	assert_int_equal(out.len, 16 + req.len);
	assert_true(be32_get(out.data) == NBD_SIMPLE_REPLY_MAGIC && be32_get(out.data + 4) == 0);
	nbd_buf_free(&out);
	unchain(bs);
}

/* Zero-copy: the data chunk's bytes stay in the two files (base's cluster 1, top's cluster 2),
 * as two pieces placed right after the chunk's offset field. */
static void test_exec_file_pieces(void **state)
{
	struct bdev *bs = chain();
	struct nbd_exec_ctx ctx = {bs, true, false, false};
	struct nbd_request req = {.type = NBD_CMD_READ, .cookie = 8, .offset = 0, .len = 4 << 16};
	struct nbd_buf out = {0};
	struct nbd_fpieces fp = {0};
	uint16_t flags, type;
	uint32_t len;
	size_t pos = 0;
	uint8_t b;

	(void)state;
	assert_int_equal(nbd_exec(&ctx, &req, NULL, &out, &fp), 0);
	chunk(&out, &pos, &flags, &type, &len); /* hole */
	const uint8_t *p = out.data + pos + NBD_CHUNK_HDR;
	assert_int_equal(be16_get(out.data + pos + 6), NBD_REPLY_TYPE_OFFSET_DATA);
	assert_int_equal(be32_get(out.data + pos + 16), 8 + (2 << 16)); /* the whole data */
	assert_true(be64_get(p) == 1 << 16);
	assert_int_equal(fp.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fp.p[i].at, pos + NBD_CHUNK_HDR + 8);
		assert_int_equal(fp.p[i].len, 1 << 16);
		assert_int_equal(pread(fp.p[i].fd, &b, 1, (off_t)fp.p[i].off), 1);
		assert_int_equal(b, i ? 0xbb : 0xaa);
	}
	assert_int_not_equal(fp.p[0].fd, fp.p[1].fd);
	/* the memory part: header, offset, then the last chunk (a hole) */
	assert_int_equal(out.len, pos + NBD_CHUNK_HDR + 8 + NBD_CHUNK_HDR + 12);
	free(fp.p);
	nbd_buf_free(&out);
	unchain(bs);
}

static void test_exec_block_status(void **state)
{
	struct bdev *bs = chain();
	struct nbd_exec_ctx ctx = {bs, true, true, true};
	struct nbd_request req = {.type = NBD_CMD_BLOCK_STATUS, .cookie = 9, .len = 4 << 16};
	struct nbd_buf out = {0};
	uint16_t flags, type;
	uint32_t len;
	size_t pos = 0;
	const uint32_t C = 1 << 16;
	/* base:allocation merges the two data clusters; the depth context tells them apart */
	const uint32_t base[] = {C, NBD_STATE_HOLE | NBD_STATE_ZERO, 2 * C, 0,
				 C, NBD_STATE_HOLE | NBD_STATE_ZERO};
	const uint32_t depth[] = {C, 0, C, 2, C, 1, C, 0};

	(void)state;
	assert_int_equal(nbd_exec(&ctx, &req, NULL, &out, NULL), 0);
	const uint8_t *p = chunk(&out, &pos, &flags, &type, &len);
	assert_int_equal(type, NBD_REPLY_TYPE_BLOCK_STATUS);
	assert_int_equal(flags, 0);
	assert_int_equal(be32_get(p), NBD_META_BASE_ALLOCATION);
	assert_int_equal(len, 4 + sizeof(base));
	for (size_t i = 0; i < sizeof(base) / 4; i++)
		assert_int_equal(be32_get(p + 4 + 4 * i), base[i]);
	p = chunk(&out, &pos, &flags, &type, &len);
	assert_int_equal(flags, NBD_REPLY_FLAG_DONE);
	assert_int_equal(be32_get(p), NBD_META_ALLOCATION_DEPTH);
	assert_int_equal(len, 4 + sizeof(depth));
	for (size_t i = 0; i < sizeof(depth) / 4; i++)
		assert_int_equal(be32_get(p + 4 + 4 * i), depth[i]);

	/* REQ_ONE: one descriptor per context, within the request */
	out.len = 0;
	pos = 0;
	req.flags = NBD_CMD_FLAG_REQ_ONE;
	req.offset = C + 100;
	req.len = C;
	assert_int_equal(nbd_exec(&ctx, &req, NULL, &out, NULL), 0);
	p = chunk(&out, &pos, &flags, &type, &len);
	assert_int_equal(len, 12);
	assert_int_equal(be32_get(p + 4), C);
	assert_int_equal(be32_get(p + 8), 0);
	nbd_buf_free(&out);
	unchain(bs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_flags),
	    cmocka_unit_test(test_list_and_unknown),
	    cmocka_unit_test(test_oversized_option_skipped),
	    cmocka_unit_test(test_info_go),
	    cmocka_unit_test(test_export_name),
	    cmocka_unit_test(test_meta_contexts),
	    cmocka_unit_test(test_tls_required),
	    cmocka_unit_test(test_requests),
	    cmocka_unit_test(test_partial_input),
	    cmocka_unit_test(test_exec_sparse_read),
	    cmocka_unit_test(test_exec_file_pieces),
	    cmocka_unit_test(test_exec_block_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
