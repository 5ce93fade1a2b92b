/* GnuTLS sessions for NBD_OPT_STARTTLS (see nbd_tls.h). */
#include "serve/nbd_tls.h"
#include "util/error.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* TLS 1.2 and 1.3 only (proto.md: older versions SHOULD NOT be on by default). */
#define NBD_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct nbd_tls_creds {
	gnutls_certificate_credentials_t x509;
	gnutls_priority_t prio;
};

struct nbd_tls {
	gnutls_session_t s;
};

static int readable(char *path, size_t size, const char *dir, const char *name, bool required)
{
	snprintf(path, size, "%s/%s", dir, name);
	if (access(path, R_OK) == 0)
		return 1;
	if (!required && errno == ENOENT)
		return 0;
	return err_sys(errno, "%s: TLS credentials: cannot read", path);
}

static int load_files(struct nbd_tls_creds *c, const char *dir)
{
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], crl[PATH_MAX];
	int ret;

	if ((ret = readable(ca, sizeof(ca), dir, "ca-cert.pem", true)) < 0 ||
	    (ret = readable(cert, sizeof(cert), dir, "server-cert.pem", true)) < 0 ||
	    (ret = readable(key, sizeof(key), dir, "server-key.pem", true)) < 0)
		return ret;
	ret = gnutls_certificate_set_x509_trust_file(c->x509, ca, GNUTLS_X509_FMT_PEM);
	if (ret <= 0)
		return err_set(EINVAL, "%s: TLS credentials: %s", ca,
			       ret == 0 ? "no certificate in it" : gnutls_strerror(ret));
	ret = gnutls_certificate_set_x509_key_file(c->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (ret < 0)
		return err_set(EINVAL, "%s: TLS credentials: %s (with %s)", cert,
			       gnutls_strerror(ret), key);
	ret = readable(crl, sizeof(crl), dir, "ca-crl.pem", false);
	if (ret < 0)
		return ret;
	if (ret > 0) {
		ret = gnutls_certificate_set_x509_crl_file(c->x509, crl, GNUTLS_X509_FMT_PEM);
		if (ret < 0)
			return err_set(EINVAL, "%s: TLS credentials: %s", crl,
				       gnutls_strerror(ret));
	}
	return 0;
}

int nbd_tls_creds_load(struct nbd_tls_creds **out, const char *dir)
{
	struct nbd_tls_creds *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return err_set(ENOMEM, "%s: out of memory", dir);
	ret = gnutls_certificate_allocate_credentials(&c->x509);
	if (ret < 0) {
		free(c);
		return err_set(ENOMEM, "%s: TLS credentials: %s", dir, gnutls_strerror(ret));
	}
	ret = load_files(c, dir);
	if (ret == 0 && gnutls_priority_init(&c->prio, NBD_TLS_PRIORITY, NULL) < 0)
		ret = err_set(EINVAL, "TLS priority string not accepted by GnuTLS");
	if (ret < 0) {
		gnutls_certificate_free_credentials(c->x509);
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

void nbd_tls_creds_free(struct nbd_tls_creds *c)
{
	if (!c)
		return;
	gnutls_priority_deinit(c->prio);
	gnutls_certificate_free_credentials(c->x509);
	free(c);
}

int nbd_tls_new(struct nbd_tls **out, struct nbd_tls_creds *c, int fd)
{
	struct nbd_tls *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return err_set(ENOMEM, "out of memory");
	ret = gnutls_init(&t->s, GNUTLS_SERVER | GNUTLS_NONBLOCK);
	if (ret < 0) {
		free(t);
		return err_set(ENOMEM, "TLS session: %s", gnutls_strerror(ret));
	}
	if ((ret = gnutls_priority_set(t->s, c->prio)) < 0 ||
	    (ret = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, c->x509)) < 0) {
		gnutls_deinit(t->s);
		free(t);
		return err_set(EINVAL, "TLS session: %s", gnutls_strerror(ret));
	}
	/* The client's certificate must chain to our CA; the handshake fails otherwise. */
	gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
	gnutls_session_set_verify_cert(t->s, NULL, 0);
	gnutls_transport_set_int(t->s, fd);
	*out = t;
	return 0;
}

int nbd_tls_handshake(struct nbd_tls *t)
{
	int r = gnutls_handshake(t->s);

	if (r == GNUTLS_E_SUCCESS)
		return 0;
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(r))
		return -EAGAIN;
	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
		return err_set(EACCES, "TLS handshake: the client's certificate is not trusted");
	return err_set(EPROTO, "TLS handshake: %s", gnutls_strerror(r));
}

bool nbd_tls_want_write(const struct nbd_tls *t)
{
	return gnutls_record_get_direction(t->s) == 1;
}

static ssize_t tls_result(ssize_t r)
{
	if (r >= 0)
		return r;
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		return -EAGAIN;
	if (r == GNUTLS_E_PREMATURE_TERMINATION)
		return err_set(ECONNRESET, "TLS: the client closed the connection without "
					   "close_notify");
	return err_set(EPROTO, "TLS: %s", gnutls_strerror((int)r));
}

ssize_t nbd_tls_recv(struct nbd_tls *t, void *buf, size_t len)
{
	return tls_result(gnutls_record_recv(t->s, buf, len));
}

ssize_t nbd_tls_send(struct nbd_tls *t, const void *buf, size_t len)
{
	return tls_result(gnutls_record_send(t->s, buf, len));
}

size_t nbd_tls_pending(const struct nbd_tls *t)
{
	return gnutls_record_check_pending(t->s);
}

void nbd_tls_free(struct nbd_tls *t)
{
	if (!t)
		return;
	gnutls_bye(t->s, GNUTLS_SHUT_WR); /* non-blocking: best effort */
	gnutls_deinit(t->s);
	free(t);
}
