/* The NBD server's insides, shared by nbd.c (listeners, loop, workers) and nbd_conn.c. */
#ifndef LIGERO_SERVE_NBD_INT_H
#define LIGERO_SERVE_NBD_INT_H

#include "serve/nbd.h"
#include "serve/nbd_exec.h"
#include "serve/nbd_proto.h"

#include <pthread.h>
#include <stdint.h>

/* Input buffered per connection: the largest option we take plus room to read ahead. */
#define NBD_IN_CAP (NBD_MAX_OPTION + 64 * 1024)
/* Requests a connection may have in flight (at workers or with unsent replies), and their
 * payload bytes, before the server stops reading from it. Bounds memory per client whatever
 * it pipelines. */
#define NBD_MAX_INFLIGHT       64
#define NBD_MAX_INFLIGHT_BYTES (64u << 20)

struct nbd_server;
struct nbd_tls;

/* One request, from decoding to the last byte of its reply. */
struct nbd_job {
	struct nbd_job *next;
	struct nbd_conn *conn;
	struct nbd_request req;
	struct nbd_exec_ctx ctx;
	uint8_t *payload; /* WRITE data */
	size_t payload_cap;
	struct nbd_buf reply;
	size_t sent;	       /* bytes of reply.data sent */
	size_t cost;	       /* bytes it counts against NBD_MAX_INFLIGHT_BYTES */
	bool zerocopy;	       /* read data may stay in the image files (nbd_exec's fp) */
	struct nbd_fpieces fp; /* that data, sent with sendfile between reply.data's bytes */
	int piece;	       /* the next piece to send */
	size_t piece_sent;     /* bytes of it sent */
};

enum nbd_tls_state { TLS_NONE, TLS_PENDING, TLS_HANDSHAKE, TLS_UP };

/*
 * A connection belongs to the event loop, except what workers touch when they finish a job:
 * the fields marked "lock". Workers send a reply themselves when the connection is plain and
 * nothing is queued before it (no hand-off back to the loop per request); otherwise they queue
 * it and flag the connection for the loop.
 */
struct nbd_conn {
	struct nbd_server *srv;
	struct nbd_conn *next, *prev;
	int fd;
	unsigned id;
	char peer[80];
	struct nbd_session s;
	struct nbd_tls *tls;
	enum nbd_tls_state tls_state;
	uint8_t *in;
	size_t in_pos, in_len;
	struct nbd_job *wjob; /* a WRITE whose payload is still arriving */
	size_t wgot;
	struct nbd_job *batch_head, *batch_tail; /* decoded, for the workers in one go */
	unsigned nbatch;
	struct nbd_buf out; /* handshake replies */
	size_t out_sent;
	uint32_t events; /* epoll mask set now */
	bool negotiated; /* reached the transmission phase */
	bool stalled;	 /* stopped reading at the in-flight limit: input may be waiting */
	bool direct;	 /* plain transmission: workers may send replies */

	pthread_mutex_t lock;
	struct nbd_job *q_head, *q_tail; /* lock: replies ready to send, in order */
	unsigned pending;		 /* lock: jobs not yet fully answered */
	unsigned at_workers;		 /* lock: of them, at the worker pool */
	size_t pending_bytes;		 /* lock */
	int send_err;			 /* lock: a worker's send failed (errno) */
	bool notify;			 /* lock: the loop should look at this connection */
	bool busy;    /* lock: a worker holds a half-sent reply: nobody else sends for now */
	bool closing; /* lock: read nothing more; close once every reply is out */
	bool dead;    /* lock: socket closed; freed when at_workers drops to 0 */
};

/* nbd.c, for nbd_conn.c */
__attribute__((format(printf, 2, 3))) void nbd_server_log(struct nbd_server *srv, const char *fmt,
							  ...);
/* Carry out a job (I/O and reply), on whichever thread calls it. */
void nbd_server_execute(struct nbd_server *srv, struct nbd_job *job);
/* Loop thread: carry out job right here, reply included, if it is a read or a block status
 * query and those are quick now (true; job is gone), else leave it for the workers (false). */
bool nbd_server_run_inline(struct nbd_server *srv, struct nbd_job *job);
/* Hand jobs (a list linked by next) to the workers. */
void nbd_server_dispatch(struct nbd_server *srv, struct nbd_job *head, struct nbd_job *tail,
			 unsigned n);
int nbd_server_epoll(struct nbd_server *srv);
const struct nbd_export_info *nbd_server_export(struct nbd_server *srv);
struct bdev *nbd_server_bdev(struct nbd_server *srv);
struct nbd_tls_creds *nbd_server_creds(struct nbd_server *srv);
/* Reusable large buffers (replies, payloads): saves a fresh mapping per request. */
void *nbd_server_buf_get(struct nbd_server *srv, size_t want, size_t *cap);
void nbd_server_buf_put(struct nbd_server *srv, void *p, size_t cap);

/* nbd_conn.c */
struct nbd_conn *nbd_conn_new(struct nbd_server *srv, int fd, unsigned id, const char *peer);
/* Socket readiness (EPOLLIN/EPOLLOUT/...) or, events 0, another look (buffered input, a
 * worker's flag). Loop thread. */
void nbd_conn_event(struct nbd_conn *c, uint32_t events);
/* A job is done (by a worker, or inline by the loop): send or queue its reply. True when the
 * loop must look at the connection (then a worker wakes the loop). job is gone afterwards. */
bool nbd_conn_finish(struct nbd_conn *c, struct nbd_job *job, bool from_worker);
/* Did a worker flag the connection (and clear the flag)? Loop thread. */
bool nbd_conn_take_notify(struct nbd_conn *c);
/* Server shutdown: negotiated clients get their in-flight replies, then are closed. */
void nbd_conn_shutdown(struct nbd_conn *c);
/* Close now (replies not yet sent are dropped). */
void nbd_conn_drop(struct nbd_conn *c);
/* Input is buffered that the next loop iteration should look at without waiting for epoll. */
bool nbd_conn_has_work(struct nbd_conn *c);
/* Closed and nothing at the workers: free it (returns false while it must stay). */
bool nbd_conn_reap(struct nbd_conn *c);
void nbd_job_free(struct nbd_server *srv, struct nbd_job *job);

#endif
