/*
 * TLS for the NBD server (GnuTLS, X.509): credentials from a directory laid out as QEMU's
 * tls-creds-x509 object expects (ca-cert.pem, server-cert.pem, server-key.pem, optional
 * ca-crl.pem), and non-blocking sessions on a connected socket. Clients must present a
 * certificate signed by the CA (QEMU's verify-peer=on, its default). TLS 1.2 and later only.
 */
#ifndef LIGERO_SERVE_NBD_TLS_H
#define LIGERO_SERVE_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct nbd_tls_creds;
struct nbd_tls;

/* Load dir's credentials; a missing or unreadable file is named in the error. */
int nbd_tls_creds_load(struct nbd_tls_creds **out, const char *dir);
void nbd_tls_creds_free(struct nbd_tls_creds *c);

/* A server session on fd (non-blocking). */
int nbd_tls_new(struct nbd_tls **out, struct nbd_tls_creds *c, int fd);
/* Continue the handshake: 0 done, -EAGAIN to be called again when the socket is ready in the
 * direction nbd_tls_want_write() says, else a negative errno with a message. */
int nbd_tls_handshake(struct nbd_tls *t);
bool nbd_tls_want_write(const struct nbd_tls *t);
/* Record I/O: bytes moved, 0 at the peer's end of stream (recv), -EAGAIN, or -errno. After
 * -EAGAIN a send must be repeated with the same buffer and length. */
ssize_t nbd_tls_recv(struct nbd_tls *t, void *buf, size_t len);
ssize_t nbd_tls_send(struct nbd_tls *t, const void *buf, size_t len);
/* Decrypted bytes waiting inside the session (epoll does not see them). */
size_t nbd_tls_pending(const struct nbd_tls *t);
/* Send close_notify if the socket takes it now, and free the session. */
void nbd_tls_free(struct nbd_tls *t);

#endif
