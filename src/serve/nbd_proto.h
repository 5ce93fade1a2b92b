/*
 * The NBD wire protocol, server side (NetworkBlockDevice's doc/proto.md): the fixed newstyle
 * handshake as a state machine over bytes, request decoding and reply encoding. No I/O and no
 * block layer: the caller feeds the bytes a client sent and sends what lands in the output
 * buffer, so unit tests and the fuzzer drive it without sockets. Every length a client sends is
 * checked before it is used; a client that breaks a MUST gets NBD_EV_CLOSE with a reason.
 */
#ifndef LIGERO_SERVE_NBD_PROTO_H
#define LIGERO_SERVE_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBD_MAGIC		   0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_IHAVEOPT		   0x49484156454f5054ULL /* "IHAVEOPT" */
#define NBD_REP_MAGIC		   0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC	   0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC	   0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* Handshake flags (server) and client flags. */
enum {
	NBD_FLAG_FIXED_NEWSTYLE = 1 << 0,
	NBD_FLAG_NO_ZEROES = 1 << 1,
	NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0,
	NBD_FLAG_C_NO_ZEROES = 1 << 1,
};

/* Transmission flags. */
enum {
	NBD_FLAG_HAS_FLAGS = 1 << 0,
	NBD_FLAG_READ_ONLY = 1 << 1,
	NBD_FLAG_SEND_FLUSH = 1 << 2,
	NBD_FLAG_SEND_FUA = 1 << 3,
	NBD_FLAG_ROTATIONAL = 1 << 4,
	NBD_FLAG_SEND_TRIM = 1 << 5,
	NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6,
	NBD_FLAG_SEND_DF = 1 << 7,
	NBD_FLAG_CAN_MULTI_CONN = 1 << 8,
	NBD_FLAG_SEND_CACHE = 1 << 10,
	NBD_FLAG_SEND_FAST_ZERO = 1 << 11,
};

/* Options. */
enum {
	NBD_OPT_EXPORT_NAME = 1,
	NBD_OPT_ABORT = 2,
	NBD_OPT_LIST = 3,
	NBD_OPT_STARTTLS = 5,
	NBD_OPT_INFO = 6,
	NBD_OPT_GO = 7,
	NBD_OPT_STRUCTURED_REPLY = 8,
	NBD_OPT_LIST_META_CONTEXT = 9,
	NBD_OPT_SET_META_CONTEXT = 10,
};

/* Option replies. */
#define NBD_REP_ERR(n) (0x80000000u | (n))
enum {
	NBD_REP_ACK = 1,
	NBD_REP_SERVER = 2,
	NBD_REP_INFO = 3,
	NBD_REP_META_CONTEXT = 4,
};
#define NBD_REP_ERR_UNSUP    NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY   NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID  NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN  NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR(7)
#define NBD_REP_ERR_TOO_BIG  NBD_REP_ERR(9)

enum { NBD_INFO_EXPORT = 0, NBD_INFO_NAME = 1, NBD_INFO_DESCRIPTION = 2, NBD_INFO_BLOCK_SIZE = 3 };

/* Commands and their flags. */
enum {
	NBD_CMD_READ = 0,
	NBD_CMD_WRITE = 1,
	NBD_CMD_DISC = 2,
	NBD_CMD_FLUSH = 3,
	NBD_CMD_TRIM = 4,
	NBD_CMD_CACHE = 5,
	NBD_CMD_WRITE_ZEROES = 6,
	NBD_CMD_BLOCK_STATUS = 7,
};
enum {
	NBD_CMD_FLAG_FUA = 1 << 0,
	NBD_CMD_FLAG_NO_HOLE = 1 << 1,
	NBD_CMD_FLAG_DF = 1 << 2,
	NBD_CMD_FLAG_REQ_ONE = 1 << 3,
	NBD_CMD_FLAG_FAST_ZERO = 1 << 4,
};

/* Structured reply chunks. */
enum { NBD_REPLY_FLAG_DONE = 1 };
enum {
	NBD_REPLY_TYPE_NONE = 0,
	NBD_REPLY_TYPE_OFFSET_DATA = 1,
	NBD_REPLY_TYPE_OFFSET_HOLE = 2,
	NBD_REPLY_TYPE_BLOCK_STATUS = 5,
	NBD_REPLY_TYPE_ERROR = 0x8001,
};

/* base:allocation flags. */
enum { NBD_STATE_HOLE = 1, NBD_STATE_ZERO = 2 };

/* Error values on the wire. */
enum {
	NBD_EPERM = 1,
	NBD_EIO = 5,
	NBD_ENOMEM = 12,
	NBD_EINVAL = 22,
	NBD_ENOSPC = 28,
	NBD_EOVERFLOW = 75,
	NBD_ENOTSUP = 95,
	NBD_ESHUTDOWN = 108,
};

/* Metadata context ids this server hands out. */
enum { NBD_META_BASE_ALLOCATION = 1, NBD_META_ALLOCATION_DEPTH = 2 };

#define NBD_MAX_STRING	 4096	     /* longest name or message (proto.md "strings") */
#define NBD_MAX_PAYLOAD	 (32u << 20) /* largest READ/WRITE/CACHE; larger writes are dropped */
#define NBD_MAX_OPTION	 (64u << 10) /* option data buffered; longer options are skipped */
#define NBD_REQUEST_SIZE 28
#define NBD_CHUNK_HDR	 20 /* structured reply chunk header */

/* A growable output buffer. On allocation failure it keeps what it had and sets oom. */
struct nbd_buf {
	uint8_t *data;
	size_t len, cap;
	bool oom;
};
void nbd_buf_put(struct nbd_buf *b, const void *p, size_t n);
void nbd_buf_put16(struct nbd_buf *b, uint16_t v);
void nbd_buf_put32(struct nbd_buf *b, uint32_t v);
void nbd_buf_put64(struct nbd_buf *b, uint64_t v);
void nbd_buf_free(struct nbd_buf *b);
/* Make room for n more bytes (one allocation for a reply of known size). */
bool nbd_buf_reserve(struct nbd_buf *b, size_t n);
/* Append n bytes left for the caller to fill; NULL (and oom) when memory runs out. */
void *nbd_buf_extend(struct nbd_buf *b, size_t n);

/* What the server exports (one export per server). */
struct nbd_export_info {
	const char *name;	 /* "" is the default export */
	const char *description; /* NULL: none */
	uint64_t size;
	uint16_t flags; /* transmission flags; SEND_DF is added per client */
	uint32_t min_block, pref_block, max_payload;
	bool allocation_depth; /* offer qemu:allocation-depth */
};

enum nbd_state {
	NBD_ST_CLIENT_FLAGS, /* waiting for the 32-bit client flags */
	NBD_ST_OPT_HEADER,   /* waiting for IHAVEOPT, option, length */
	NBD_ST_OPT_DATA,     /* waiting for the current option's data */
	NBD_ST_OPT_SKIP,     /* dropping an oversized option's data */
	NBD_ST_TRANSMISSION, /* waiting for a request header */
	NBD_ST_CLOSED,
};

/* What the caller must do after nbd_session_feed. */
enum nbd_event {
	NBD_EV_MORE,	 /* no progress: more bytes must arrive first (nbd_session_want) */
	NBD_EV_OK,	 /* a message was handled (replies may be in out): feed again */
	NBD_EV_STARTTLS, /* send the output, then run the TLS handshake, then nbd_session_tls_up */
	NBD_EV_GO,	 /* transmission phase entered */
	NBD_EV_REQUEST,	 /* *req holds a request (a WRITE's payload follows in the stream) */
	NBD_EV_DISC,	 /* NBD_CMD_DISC: finish in-flight requests and close */
	NBD_EV_ABORT,	 /* NBD_OPT_ABORT: send the output and close */
	NBD_EV_CLOSE,	 /* the client broke the protocol: send the output, close; see why */
};

struct nbd_session {
	const struct nbd_export_info *exp;
	enum nbd_state state;
	bool tls_available; /* credentials configured: FORCEDTLS mode */
	bool tls_active;
	bool shutting_down; /* options get NBD_REP_ERR_SHUTDOWN */
	bool fixed, no_zeroes, structured;
	bool meta_base, meta_depth; /* contexts selected by NBD_OPT_SET_META_CONTEXT */
	uint32_t opt, optlen;	    /* the option being received */
	uint64_t skip;		    /* bytes of it left to drop */
	uint16_t tflags;	    /* transmission flags given to this client */
	char why[160];		    /* reason of NBD_EV_CLOSE */
};

/* A decoded request. error != 0: reply with that NBD error without doing anything (after
 * reading a WRITE's payload, which still follows). */
struct nbd_request {
	uint16_t flags, type;
	uint64_t cookie, offset;
	uint32_t len;
	uint32_t error;
	const char *msg; /* for error: a short text for the structured error reply */
};

/* Start a session: the server's greeting goes to out. */
void nbd_session_start(struct nbd_session *s, const struct nbd_export_info *exp, bool tls,
		       struct nbd_buf *out);
/* Bytes the session needs before it can make progress (at least 1 unless closed). */
size_t nbd_session_want(const struct nbd_session *s);
/* Handle at most one message from in[0..len): *used says how many bytes it took (a WRITE's
 * payload is not taken: the caller reads req->len more bytes). Replies are appended to out. */
enum nbd_event nbd_session_feed(struct nbd_session *s, const uint8_t *in, size_t len, size_t *used,
				struct nbd_buf *out, struct nbd_request *req);
/* The TLS handshake that NBD_EV_STARTTLS asked for succeeded. */
void nbd_session_tls_up(struct nbd_session *s);

/* Map a negative errno (block layer) to an NBD error value. */
uint32_t nbd_errno(int err);

/* Replies. Simple reply (no data); structured chunk header; a whole error reply (structured
 * error chunk with DONE, or simple reply without structured replies); NONE chunk with DONE. */
void nbd_put_simple(struct nbd_buf *b, uint64_t cookie, uint32_t error);
void nbd_chunk_header(uint8_t hdr[NBD_CHUNK_HDR], uint16_t flags, uint16_t type, uint64_t cookie,
		      uint32_t len);
void nbd_put_chunk_header(struct nbd_buf *b, uint16_t flags, uint16_t type, uint64_t cookie,
			  uint32_t len);
void nbd_put_error(struct nbd_buf *b, bool structured, uint64_t cookie, uint32_t error,
		   const char *msg);
void nbd_put_done(struct nbd_buf *b, uint64_t cookie);

#endif
