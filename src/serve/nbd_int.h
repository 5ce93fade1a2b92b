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
	size_t sent;
	size_t cost; /* bytes it counts against NBD_MAX_INFLIGHT_BYTES */
};

enum nbd_tls_state { TLS_NONE, TLS_PENDING, TLS_HANDSHAKE, TLS_UP };

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
	struct nbd_buf out; /* handshake replies */
	size_t out_sent;
	struct nbd_job *q_head, *q_tail; /* replies ready to send, in order */
	unsigned pending;		 /* jobs not yet fully answered */
	unsigned at_workers;		 /* of them, at the worker pool */
	size_t pending_bytes;
	uint32_t events; /* epoll mask set now */
	bool negotiated; /* reached the transmission phase */
	bool closing;	 /* read nothing more; close once every reply is out */
	bool dead;	 /* socket closed; freed when at_workers drops to 0 */
	bool stalled;	 /* stopped reading at the in-flight limit: input may be waiting */
};

/* nbd.c, for nbd_conn.c */
__attribute__((format(printf, 2, 3))) void nbd_server_log(struct nbd_server *srv, const char *fmt,
							  ...);
void nbd_server_dispatch(struct nbd_server *srv, struct nbd_job *job);
int nbd_server_epoll(struct nbd_server *srv);
const struct nbd_export_info *nbd_server_export(struct nbd_server *srv);
struct bdev *nbd_server_bdev(struct nbd_server *srv);
struct nbd_tls_creds *nbd_server_creds(struct nbd_server *srv);
/* Reusable large buffers (replies, payloads): saves a fresh mapping per request. */
void *nbd_server_buf_get(struct nbd_server *srv, size_t want, size_t *cap);
void nbd_server_buf_put(struct nbd_server *srv, void *p, size_t cap);
/* The connection's socket is closed and it has nothing at the workers: forget it. */
void nbd_server_conn_gone(struct nbd_server *srv, struct nbd_conn *c);

/* nbd_conn.c */
struct nbd_conn *nbd_conn_new(struct nbd_server *srv, int fd, unsigned id, const char *peer);
/* Socket readiness (EPOLLIN/EPOLLOUT/...) or, events 0, another look at buffered input. */
void nbd_conn_event(struct nbd_conn *c, uint32_t events);
/* A worker finished job (called on the loop's thread). */
void nbd_conn_complete(struct nbd_conn *c, struct nbd_job *job);
/* Server shutdown: negotiated clients get their in-flight replies, then are closed. */
void nbd_conn_shutdown(struct nbd_conn *c);
/* Close now (replies not yet sent are dropped). */
void nbd_conn_drop(struct nbd_conn *c);
/* Input is buffered that the next loop iteration should look at without waiting for epoll. */
bool nbd_conn_has_work(const struct nbd_conn *c);
void nbd_job_free(struct nbd_server *srv, struct nbd_job *job);

#endif
