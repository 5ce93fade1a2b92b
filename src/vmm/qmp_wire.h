/*
 * QMP's wire format. Input: a stream of JSON texts with nothing between them but white space,
 * split the way QEMU's JSON streamer does (a text ends where its outermost brace or bracket
 * closes, or where a top-level scalar ends); what cannot be a text becomes an error for the
 * caller to answer. Output: JSON printed as QEMU prints it ("key": value, ", " between members,
 * ASCII only with \uXXXX escapes, CRLF at the end), so scripts written against QEMU's output
 * match ours byte for byte.
 */
#ifndef LIGERO_VMM_QMP_WIRE_H
#define LIGERO_VMM_QMP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest text accepted (QEMU allows 64 MiB; a VM host sends a few hundred bytes). */
#define QMP_TEXT_MAX (64 * 1024)
/* The deepest nesting accepted, as QEMU. */
#define QMP_DEPTH_MAX 1024

struct qmp_wire_in {
	char *buf; /* the text being collected, QMP_TEXT_MAX + 1 bytes */
	size_t len;
	int depth;     /* open braces and brackets */
	char quote;    /* inside a string: '"' or '\'' (QEMU takes both), else 0 */
	bool escape;   /* the previous byte in the string was a backslash */
	bool scalar;   /* collecting a top-level scalar (a number, a keyword, a string) */
	bool skipping; /* a text over a limit: drop its bytes until it ends */
};

/* Called for each complete text (NUL-terminated, len bytes) or, with text NULL, for input that
 * is no text, with QEMU's error description ("JSON parse error, ..."). Return nonzero to stop
 * feeding (the caller dropped the client). */
typedef int qmp_wire_fn(void *opaque, const char *text, size_t len, const char *error);

int qmp_wire_in_init(struct qmp_wire_in *in);
void qmp_wire_in_free(struct qmp_wire_in *in);
/* Feed received bytes; returns nonzero if fn stopped it. */
int qmp_wire_feed(struct qmp_wire_in *in, const uint8_t *p, size_t n, qmp_wire_fn *fn,
		  void *opaque);

/* A growable output buffer. */
struct qmp_buf {
	char *p;
	size_t len, cap;
	bool oom; /* an allocation failed: the content is incomplete */
};

void qmp_buf_put(struct qmp_buf *b, const void *p, size_t n);
/* Append a JSON value (json-c) as QEMU prints it, then "\r\n". */
struct json_object;
void qmp_buf_put_json(struct qmp_buf *b, struct json_object *o);
void qmp_buf_free(struct qmp_buf *b);

#endif
