/* The NBD server's protocol state machine: handshake options in, option replies out, requests
 * decoded and checked (see nbd_proto.h). */
#include "serve/nbd_proto.h"
#include "util/endian.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool nbd_buf_reserve(struct nbd_buf *b, size_t n)
{
	if (b->oom)
		return false;
	if (b->cap - b->len >= n)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d) {
		b->oom = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

void *nbd_buf_extend(struct nbd_buf *b, size_t n)
{
	if (!nbd_buf_reserve(b, n))
		return NULL;
	b->len += n;
	return b->data + b->len - n;
}

void nbd_buf_put(struct nbd_buf *b, const void *p, size_t n)
{
	if (!n || !nbd_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void nbd_buf_put16(struct nbd_buf *b, uint16_t v)
{
	uint8_t x[2];
	be16_put(x, v);
	nbd_buf_put(b, x, 2);
}

void nbd_buf_put32(struct nbd_buf *b, uint32_t v)
{
	uint8_t x[4];
	be32_put(x, v);
	nbd_buf_put(b, x, 4);
}

void nbd_buf_put64(struct nbd_buf *b, uint64_t v)
{
	uint8_t x[8];
	be64_put(x, v);
	nbd_buf_put(b, x, 8);
}

void nbd_buf_free(struct nbd_buf *b)
{
	free(b->data);
	*b = (struct nbd_buf){0};
}

uint32_t nbd_errno(int err)
{
	switch (err < 0 ? -err : err) {
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case EIO:
		return NBD_EIO;
	case ENOMEM:
		return NBD_ENOMEM;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EINVAL;
	}
}

void nbd_put_simple(struct nbd_buf *b, uint64_t cookie, uint32_t error)
{
	nbd_buf_put32(b, NBD_SIMPLE_REPLY_MAGIC);
	nbd_buf_put32(b, error);
	nbd_buf_put64(b, cookie);
}

void nbd_chunk_header(uint8_t hdr[NBD_CHUNK_HDR], uint16_t flags, uint16_t type, uint64_t cookie,
		      uint32_t len)
{
	be32_put(hdr, NBD_STRUCTURED_REPLY_MAGIC);
	be16_put(hdr + 4, flags);
	be16_put(hdr + 6, type);
	be64_put(hdr + 8, cookie);
	be32_put(hdr + 16, len);
}

void nbd_put_chunk_header(struct nbd_buf *b, uint16_t flags, uint16_t type, uint64_t cookie,
			  uint32_t len)
{
	uint8_t hdr[NBD_CHUNK_HDR];

	nbd_chunk_header(hdr, flags, type, cookie, len);
	nbd_buf_put(b, hdr, sizeof(hdr));
}

void nbd_put_error(struct nbd_buf *b, bool structured, uint64_t cookie, uint32_t error,
		   const char *msg)
{
	if (!structured) {
		nbd_put_simple(b, cookie, error);
		return;
	}
	size_t n = msg ? strnlen(msg, NBD_MAX_STRING) : 0;
	nbd_put_chunk_header(b, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, cookie,
			     (uint32_t)(6 + n));
	nbd_buf_put32(b, error);
	nbd_buf_put16(b, (uint16_t)n);
	nbd_buf_put(b, msg, n);
}

void nbd_put_done(struct nbd_buf *b, uint64_t cookie)
{
	nbd_put_chunk_header(b, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, cookie, 0);
}

/* ---- handshake ---- */

void nbd_session_start(struct nbd_session *s, const struct nbd_export_info *exp, bool tls,
		       struct nbd_buf *out)
{
	memset(s, 0, sizeof(*s));
	s->exp = exp;
	s->tls_available = tls;
	s->state = NBD_ST_CLIENT_FLAGS;
	nbd_buf_put64(out, NBD_MAGIC);
	nbd_buf_put64(out, NBD_IHAVEOPT);
	nbd_buf_put16(out, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

void nbd_session_tls_up(struct nbd_session *s)
{
	s->tls_active = true;
}

size_t nbd_session_want(const struct nbd_session *s)
{
	switch (s->state) {
	case NBD_ST_CLIENT_FLAGS:
		return 4;
	case NBD_ST_OPT_HEADER:
		return 16;
	case NBD_ST_OPT_DATA:
		return s->optlen;
	case NBD_ST_OPT_SKIP:
		return s->skip < NBD_MAX_OPTION ? (size_t)s->skip : NBD_MAX_OPTION;
	case NBD_ST_TRANSMISSION:
		return NBD_REQUEST_SIZE;
	case NBD_ST_CLOSED:
		break;
	}
	return 0;
}

__attribute__((format(printf, 2, 3))) static enum nbd_event close_with(struct nbd_session *s,
								       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->state = NBD_ST_CLOSED;
	return NBD_EV_CLOSE;
}

static void rep_header(struct nbd_session *s, struct nbd_buf *out, uint32_t type, uint32_t len)
{
	nbd_buf_put64(out, NBD_REP_MAGIC);
	nbd_buf_put32(out, s->opt);
	nbd_buf_put32(out, type);
	nbd_buf_put32(out, len);
}

static void rep_ack(struct nbd_session *s, struct nbd_buf *out)
{
	rep_header(s, out, NBD_REP_ACK, 0);
}

__attribute__((format(printf, 4, 5))) static void
rep_err(struct nbd_session *s, struct nbd_buf *out, uint32_t type, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	rep_header(s, out, type, (uint32_t)n);
	nbd_buf_put(out, msg, (size_t)n);
}

/* Does the client's name (not NUL-terminated) name our export? */
static bool is_export(const struct nbd_session *s, const uint8_t *name, uint32_t len)
{
	return strlen(s->exp->name) == len && !memcmp(s->exp->name, name, len);
}

/* A name for messages: printable ASCII only, at most 64 bytes. */
static void sanitize(char *dst, size_t size, const uint8_t *name, uint32_t len)
{
	size_t j = 0;

	for (uint32_t i = 0; i < len && j + 4 < size && i < 64; i++)
		dst[j++] = name[i] >= 0x20 && name[i] < 0x7f ? (char)name[i] : '?';
	if (len > 64 && j + 4 < size) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = '\0';
}

static void enter_transmission(struct nbd_session *s)
{
	s->tflags = s->exp->flags | (s->structured ? NBD_FLAG_SEND_DF : 0);
	s->state = NBD_ST_TRANSMISSION;
}

static enum nbd_event opt_export_name(struct nbd_session *s, const uint8_t *d, struct nbd_buf *out)
{
	char name[80];

	if (!is_export(s, d, s->optlen)) {
		sanitize(name, sizeof(name), d, s->optlen);
		return close_with(s, "asked for export '%s', which does not exist", name);
	}
	enter_transmission(s);
	nbd_buf_put64(out, s->exp->size);
	nbd_buf_put16(out, s->tflags);
	if (!s->no_zeroes) {
		static const uint8_t zero[124];
		nbd_buf_put(out, zero, sizeof(zero));
	}
	return NBD_EV_GO;
}

static void opt_list(struct nbd_session *s, struct nbd_buf *out)
{
	const char *name = s->exp->name, *desc = s->exp->description ? s->exp->description : "";
	size_t nl = strlen(name), dl = strlen(desc);

	if (s->optlen) {
		rep_err(s, out, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
		return;
	}
	rep_header(s, out, NBD_REP_SERVER, (uint32_t)(4 + nl + dl));
	nbd_buf_put32(out, (uint32_t)nl);
	nbd_buf_put(out, name, nl);
	nbd_buf_put(out, desc, dl);
	rep_ack(s, out);
}

static void rep_info(struct nbd_session *s, struct nbd_buf *out, uint16_t type, const void *p,
		     size_t n)
{
	rep_header(s, out, NBD_REP_INFO, (uint32_t)(2 + n));
	nbd_buf_put16(out, type);
	nbd_buf_put(out, p, n);
}

/* NBD_OPT_INFO and NBD_OPT_GO: name length, name, count, count 16-bit info requests. */
static enum nbd_event opt_info_go(struct nbd_session *s, const uint8_t *d, struct nbd_buf *out)
{
	uint32_t len = s->optlen, namelen;
	bool want_name = false, want_desc = false;
	char name[80];

	if (len < 6 || (namelen = be32_get(d)) > len - 6 ||
	    len != 6 + namelen + 2 * (uint32_t)be16_get(d + 4 + namelen)) {
		rep_err(s, out, NBD_REP_ERR_INVALID, "inconsistent lengths in option %u", s->opt);
		return NBD_EV_OK;
	}
	if (namelen > NBD_MAX_STRING || memchr(d + 4, 0, namelen)) {
		rep_err(s, out, NBD_REP_ERR_INVALID, "invalid export name");
		return NBD_EV_OK;
	}
	if (!is_export(s, d + 4, namelen)) {
		sanitize(name, sizeof(name), d + 4, namelen);
		rep_err(s, out, NBD_REP_ERR_UNKNOWN, "export '%s' not present", name);
		return NBD_EV_OK;
	}
	uint16_t n = be16_get(d + 4 + namelen);
	for (uint16_t i = 0; i < n; i++) {
		uint16_t t = be16_get(d + 6 + namelen + 2 * i);
		want_name |= t == NBD_INFO_NAME;
		want_desc |= t == NBD_INFO_DESCRIPTION;
	}
	const struct nbd_export_info *e = s->exp;
	if (want_name)
		rep_info(s, out, NBD_INFO_NAME, e->name, strlen(e->name));
	if (want_desc && e->description)
		rep_info(s, out, NBD_INFO_DESCRIPTION, e->description, strlen(e->description));
	/* Sent whether asked or not, as qemu-nbd does: our limits are the defaults anyway. */
	uint8_t bs[12];
	be32_put(bs, e->min_block);
	be32_put(bs + 4, e->pref_block);
	be32_put(bs + 8, e->max_payload);
	rep_info(s, out, NBD_INFO_BLOCK_SIZE, bs, sizeof(bs));
	uint8_t ex[10];
	be64_put(ex, e->size);
	be16_put(ex + 8, e->flags | (s->structured ? NBD_FLAG_SEND_DF : 0));
	rep_info(s, out, NBD_INFO_EXPORT, ex, sizeof(ex));
	rep_ack(s, out);
	if (s->opt != NBD_OPT_GO)
		return NBD_EV_OK;
	enter_transmission(s);
	return NBD_EV_GO;
}

static void opt_structured(struct nbd_session *s, struct nbd_buf *out)
{
	if (s->optlen)
		rep_err(s, out, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
	else if (s->structured)
		rep_err(s, out, NBD_REP_ERR_INVALID, "structured replies already negotiated");
	else {
		s->structured = true;
		rep_ack(s, out);
	}
}

enum { META_BASE = 1, META_DEPTH = 2 };

/* Contexts one query names. Listing takes the namespace alone as a wildcard; selecting does
 * not (proto.md: "base:" MUST be ignored by SET). Unknown namespaces and leaves are ignored. */
static unsigned meta_match(const struct nbd_session *s, const uint8_t *q, uint32_t len, bool list)
{
	static const char base[] = "base:", depth[] = "qemu:";
	unsigned m = 0;

	if (len == 5 && list && !memcmp(q, base, 5))
		m = META_BASE;
	else if (len == 15 && !memcmp(q, "base:allocation", 15))
		m = META_BASE;
	else if (len == 5 && list && !memcmp(q, depth, 5))
		m = META_DEPTH;
	else if (len == 21 && !memcmp(q, "qemu:allocation-depth", 21))
		m = META_DEPTH;
	if (!s->exp->allocation_depth)
		m &= ~(unsigned)META_DEPTH;
	return m;
}

static void rep_context(struct nbd_session *s, struct nbd_buf *out, uint32_t id, const char *name)
{
	rep_header(s, out, NBD_REP_META_CONTEXT, (uint32_t)(4 + strlen(name)));
	nbd_buf_put32(out, id);
	nbd_buf_put(out, name, strlen(name));
}

/* NBD_OPT_LIST_META_CONTEXT / SET_META_CONTEXT: name length, name, query count, queries. */
static void opt_meta(struct nbd_session *s, const uint8_t *d, struct nbd_buf *out)
{
	bool list = s->opt == NBD_OPT_LIST_META_CONTEXT;
	uint32_t len = s->optlen, namelen, pos;
	unsigned sel = 0;
	char name[80];

	if (!list)
		s->meta_base = s->meta_depth = false; /* replaced even when the option fails */
	if (!s->structured) {
		rep_err(s, out, NBD_REP_ERR_INVALID, "structured replies not negotiated");
		return;
	}
	if (len < 8 || (namelen = be32_get(d)) > len - 8 || namelen > NBD_MAX_STRING) {
		rep_err(s, out, NBD_REP_ERR_INVALID, "inconsistent lengths in option %u", s->opt);
		return;
	}
	uint32_t nq = be32_get(d + 4 + namelen);
	pos = 8 + namelen;
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql;
		if (len - pos < 4 || (ql = be32_get(d + pos)) > len - pos - 4 ||
		    ql > NBD_MAX_STRING) {
			rep_err(s, out, NBD_REP_ERR_INVALID, "inconsistent lengths in option %u",
				s->opt);
			return;
		}
		sel |= meta_match(s, d + pos + 4, ql, list);
		pos += 4 + ql;
	}
	if (pos != len) {
		rep_err(s, out, NBD_REP_ERR_INVALID, "%u bytes after the last query", len - pos);
		return;
	}
	if (!is_export(s, d + 4, namelen)) {
		sanitize(name, sizeof(name), d + 4, namelen);
		rep_err(s, out, NBD_REP_ERR_UNKNOWN, "export '%s' not present", name);
		return;
	}
	if (list && nq == 0)
		sel = meta_match(s, (const uint8_t *)"base:", 5, true) |
		      meta_match(s, (const uint8_t *)"qemu:", 5, true);
	if (sel & META_BASE)
		rep_context(s, out, list ? 0 : NBD_META_BASE_ALLOCATION, "base:allocation");
	if (sel & META_DEPTH)
		rep_context(s, out, list ? 0 : NBD_META_ALLOCATION_DEPTH, "qemu:allocation-depth");
	if (!list) {
		s->meta_base = sel & META_BASE;
		s->meta_depth = sel & META_DEPTH;
	}
	rep_ack(s, out);
}

static enum nbd_event opt_starttls(struct nbd_session *s, struct nbd_buf *out)
{
	if (s->optlen)
		rep_err(s, out, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
	else if (!s->tls_available)
		rep_err(s, out, NBD_REP_ERR_POLICY, "TLS is not configured on this server");
	else if (s->tls_active)
		rep_err(s, out, NBD_REP_ERR_INVALID, "TLS is already active");
	else {
		rep_ack(s, out);
		/* Nothing negotiated in the clear survives the upgrade. */
		s->structured = s->meta_base = s->meta_depth = false;
		return NBD_EV_STARTTLS;
	}
	return NBD_EV_OK;
}

static enum nbd_event handle_option(struct nbd_session *s, const uint8_t *d, struct nbd_buf *out)
{
	s->state = NBD_ST_OPT_HEADER;
	if (s->opt == NBD_OPT_ABORT) {
		rep_ack(s, out);
		s->state = NBD_ST_CLOSED;
		return NBD_EV_ABORT;
	}
	if (s->tls_available && !s->tls_active && s->opt != NBD_OPT_STARTTLS) {
		if (s->opt == NBD_OPT_EXPORT_NAME)
			return close_with(s, "NBD_OPT_EXPORT_NAME before TLS, which is required");
		rep_err(s, out, NBD_REP_ERR_TLS_REQD, "TLS is required (NBD_OPT_STARTTLS)");
		return NBD_EV_OK;
	}
	if (s->shutting_down) {
		if (s->opt == NBD_OPT_EXPORT_NAME)
			return close_with(s, "the server is shutting down");
		rep_err(s, out, NBD_REP_ERR_SHUTDOWN, "the server is shutting down");
		return NBD_EV_OK;
	}
	switch (s->opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(s, d, out);
	case NBD_OPT_LIST:
		opt_list(s, out);
		return NBD_EV_OK;
	case NBD_OPT_STARTTLS:
		return opt_starttls(s, out);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(s, d, out);
	case NBD_OPT_STRUCTURED_REPLY:
		opt_structured(s, out);
		return NBD_EV_OK;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		opt_meta(s, d, out);
		return NBD_EV_OK;
	}
	rep_err(s, out, NBD_REP_ERR_UNSUP, "option %u is not supported", s->opt);
	return NBD_EV_OK;
}

static enum nbd_event opt_header(struct nbd_session *s, const uint8_t *in)
{
	uint64_t magic = be64_get(in);

	if (magic != NBD_IHAVEOPT)
		return close_with(s, "bad option magic 0x%016llx", (unsigned long long)magic);
	s->opt = be32_get(in + 8);
	s->optlen = be32_get(in + 12);
	if (!s->fixed && s->opt != NBD_OPT_EXPORT_NAME)
		return close_with(s, "option %u without fixed newstyle negotiation", s->opt);
	if (s->opt == NBD_OPT_EXPORT_NAME && s->optlen > NBD_MAX_STRING)
		return close_with(s, "export name of %u bytes", s->optlen);
	if (s->optlen > NBD_MAX_OPTION) {
		s->skip = s->optlen;
		s->state = NBD_ST_OPT_SKIP;
	} else {
		s->state = NBD_ST_OPT_DATA;
	}
	return NBD_EV_OK;
}

/* ---- transmission ---- */

static void req_error(struct nbd_request *r, uint32_t error, const char *msg)
{
	if (!r->error) {
		r->error = error;
		r->msg = msg;
	}
}

static enum nbd_event decode_request(struct nbd_session *s, const uint8_t *in,
				     struct nbd_request *r)
{
	uint32_t magic = be32_get(in);
	const struct nbd_export_info *e = s->exp;
	uint16_t valid = NBD_CMD_FLAG_FUA;
	bool ranged = true, writes = false;

	if (magic != NBD_REQUEST_MAGIC)
		return close_with(s, "bad request magic 0x%08x", magic);
	*r = (struct nbd_request){.flags = be16_get(in + 4),
				  .type = be16_get(in + 6),
				  .cookie = be64_get(in + 8),
				  .offset = be64_get(in + 16),
				  .len = be32_get(in + 24)};
	switch (r->type) {
	case NBD_CMD_DISC:
		s->state = NBD_ST_CLOSED;
		return NBD_EV_DISC;
	case NBD_CMD_READ:
		if (s->structured)
			valid |= NBD_CMD_FLAG_DF;
		/* fall through */
	case NBD_CMD_CACHE:
		if (r->len > e->max_payload)
			req_error(r, NBD_EINVAL, "request larger than the maximum payload");
		break;
	case NBD_CMD_WRITE:
		/* The payload would follow: too large to take, and skipping it would let a client
		 * make us read gigabytes. The stream cannot be resynchronised otherwise. */
		if (r->len > NBD_MAX_PAYLOAD)
			return close_with(s, "write of %u bytes (at most %u)", r->len,
					  NBD_MAX_PAYLOAD);
		writes = true;
		break;
	case NBD_CMD_FLUSH:
		ranged = false;
		break;
	case NBD_CMD_TRIM:
		writes = true;
		break;
	case NBD_CMD_WRITE_ZEROES:
		valid |= NBD_CMD_FLAG_NO_HOLE;
		if (e->flags & NBD_FLAG_SEND_FAST_ZERO)
			valid |= NBD_CMD_FLAG_FAST_ZERO;
		writes = true;
		break;
	case NBD_CMD_BLOCK_STATUS:
		valid |= NBD_CMD_FLAG_REQ_ONE;
		if (!s->meta_base && !s->meta_depth)
			req_error(r, NBD_EINVAL, "no metadata context was selected");
		else if (!r->len)
			req_error(r, NBD_EINVAL, "block status of an empty range");
		break;
	default:
		req_error(r, NBD_EINVAL, "unknown command");
		ranged = false;
		break;
	}
	if (writes && (e->flags & NBD_FLAG_READ_ONLY))
		req_error(r, NBD_EPERM, "the export is read-only");
	if (ranged && (r->offset > e->size || r->len > e->size - r->offset))
		req_error(r,
			  (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES)
			      ? NBD_ENOSPC
			      : NBD_EINVAL,
			  "request past the end of the export");
	if (r->flags & ~valid)
		req_error(r, NBD_EINVAL, "flags not valid for this command");
	return NBD_EV_REQUEST;
}

enum nbd_event nbd_session_feed(struct nbd_session *s, const uint8_t *in, size_t len, size_t *used,
				struct nbd_buf *out, struct nbd_request *req)
{
	size_t want = nbd_session_want(s);

	*used = 0;
	if (s->state == NBD_ST_CLOSED || len < want)
		return NBD_EV_MORE;
	switch (s->state) {
	case NBD_ST_CLIENT_FLAGS: {
		uint32_t f = be32_get(in);
		*used = 4;
		if (f & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
			return close_with(s, "unknown client flags 0x%08x", f);
		s->fixed = f & NBD_FLAG_C_FIXED_NEWSTYLE;
		s->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
		s->state = NBD_ST_OPT_HEADER;
		return NBD_EV_OK;
	}
	case NBD_ST_OPT_HEADER:
		*used = 16;
		return opt_header(s, in);
	case NBD_ST_OPT_DATA:
		*used = s->optlen;
		return handle_option(s, in, out);
	case NBD_ST_OPT_SKIP:
		*used = want;
		s->skip -= want;
		if (!s->skip) {
			s->state = NBD_ST_OPT_HEADER;
			if (s->tls_available && !s->tls_active && s->opt != NBD_OPT_STARTTLS)
				rep_err(s, out, NBD_REP_ERR_TLS_REQD, "TLS is required");
			else
				rep_err(s, out, NBD_REP_ERR_TOO_BIG,
					"option %u with %u bytes of data is too large", s->opt,
					s->optlen);
		}
		return NBD_EV_OK;
	case NBD_ST_TRANSMISSION:
		*used = NBD_REQUEST_SIZE;
		return decode_request(s, in, req);
	case NBD_ST_CLOSED:
		break;
	}
	return NBD_EV_MORE;
}
