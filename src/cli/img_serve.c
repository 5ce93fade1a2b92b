/*
 * `ligero img serve`: export an image over NBD, the job of qemu-nbd (its short options work too:
 * -k -p -b -x -D -r -s -t -e -f), or with --vhost-user to another VMM's guest as a
 * vhost-user-blk back-end, the job of qemu-storage-daemon's vhost-user-blk export.
 */
#include "block/block.h"
#include "cli/cli.h"
#include "serve/nbd.h"
#include "serve/vhost_user_blk.h"
#include "util/error.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void serve_usage(FILE *f)
{
	fputs(
	    "usage: ligero img serve [-f fmt] [--socket PATH | --port N [--bind ADDR]]\n"
	    "                        [--export-name NAME] [--description TEXT] [-r] [--snapshot]\n"
	    "                        [--persistent] [--shared N] [--tls-creds DIR]\n"
	    "                        [--allow-insecure] [--pid-file F] [-U] FILE\n"
	    "       ligero img serve --vhost-user PATH [-f fmt] [-r] [--snapshot]\n"
	    "                        [--coalesce-us N] [--pid-file F] [-U] FILE\n"
	    "  -k, --socket PATH     listen on a Unix socket\n"
	    "  -p, --port N          listen on TCP port N (default 10809)\n"
	    "  -b, --bind ADDR       TCP address (default: every interface)\n"
	    "  -x, --export-name N   export name (default \"\")\n"
	    "  -D, --description T   export description\n"
	    "  -r, --read-only       refuse writes\n"
	    "  -s, --snapshot        writes go to a temporary overlay, deleted on exit\n"
	    "  -t, --persistent      keep serving after the last client leaves\n"
	    "  -e, --shared N        clients at once (default 1)\n"
	    "      --tls-creds DIR   ca-cert.pem, server-cert.pem, server-key.pem (clients need a\n"
	    "                        certificate from the same CA); required beyond loopback\n"
	    "      --allow-insecure  listen beyond loopback without TLS\n"
	    "      --pid-file F      write the server's pid to F once it listens\n"
	    "  -U, --force-share     take no image lock (with -r only)\n"
	    "      --vhost-user PATH be a vhost-user-blk back-end on the Unix socket PATH (QEMU's\n"
	    "                        vhost-user-blk-pci, Cloud Hypervisor, crosvm), one front-end\n"
	    "                        at a time, until SIGTERM\n"
	    "      --coalesce-us N   (vhost-user) interrupt coalescing where it pays: a finished\n"
	    "                        request's interrupt waits for others of its queue, N\n"
	    "                        microseconds at most (default 1000; 0: never)\n",
	    f);
}

struct serve_args {
	struct nbd_serve_opts o;
	const char *fmt, *file;
	const char *vhost_user; /* --vhost-user PATH */
	int coalesce_us;	/* --coalesce-us N; -1: not given */
	bool snapshot, force_share, port_given, shared_given;
};

static void log_line(void *opaque, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "ligero serve: %s\n", msg);
}

static int parse_int(const char *what, const char *s, int min, int max, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);

	if (errno || end == s || *end || v < min || v > max)
		return cli_fail("img serve: %s must be a number from %d to %d, not '%s'", what, min,
				max, s);
	*out = (int)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct serve_args *a)
{
	enum { OPT_TLS = 256, OPT_INSECURE, OPT_PIDFILE, OPT_VHOST_USER, OPT_COALESCE };
	static const struct option longopts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"socket", required_argument, NULL, 'k'},
	    {"port", required_argument, NULL, 'p'},
	    {"bind", required_argument, NULL, 'b'},
	    {"export-name", required_argument, NULL, 'x'},
	    {"description", required_argument, NULL, 'D'},
	    {"read-only", no_argument, NULL, 'r'},
	    {"snapshot", no_argument, NULL, 's'},
	    {"persistent", no_argument, NULL, 't'},
	    {"shared", required_argument, NULL, 'e'},
	    {"force-share", no_argument, NULL, 'U'},
	    {"tls-creds", required_argument, NULL, OPT_TLS},
	    {"allow-insecure", no_argument, NULL, OPT_INSECURE},
	    {"pid-file", required_argument, NULL, OPT_PIDFILE},
	    {"vhost-user", required_argument, NULL, OPT_VHOST_USER},
	    {"coalesce-us", required_argument, NULL, OPT_COALESCE},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":f:k:p:b:x:D:rste:Uh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			a->fmt = optarg;
			break;
		case 'k':
			a->o.socket_path = optarg;
			break;
		case 'p':
			if (parse_int("--port", optarg, 0, 65535, &a->o.port))
				return 1;
			a->port_given = true;
			break;
		case 'b':
			a->o.bind_addr = optarg;
			break;
		case 'x':
			a->o.export_name = optarg;
			break;
		case 'D':
			a->o.description = optarg;
			break;
		case 'r':
			a->o.read_only = true;
			break;
		case 's':
			a->snapshot = true;
			break;
		case 't':
			a->o.persistent = true;
			break;
		case 'e':
			if (parse_int("--shared", optarg, 1, 1024, &a->o.shared))
				return 1;
			a->shared_given = true;
			break;
		case 'U':
			a->force_share = true;
			break;
		case OPT_TLS:
			a->o.tls_dir = optarg;
			break;
		case OPT_INSECURE:
			a->o.allow_insecure = true;
			break;
		case OPT_PIDFILE:
			a->o.pid_file = optarg;
			break;
		case OPT_VHOST_USER:
			a->vhost_user = optarg;
			break;
		case OPT_COALESCE:
			if (parse_int("--coalesce-us", optarg, 0, 10000, &a->coalesce_us))
				return 1;
			break;
		case 'h':
			serve_usage(stdout);
			return -1;
		default:
			return cli_opt_error("img serve", c, argv, longopts);
		}
	}
	if (optind != argc - 1)
		return cli_usage_fail("img serve", "expected one image file name");
	a->file = argv[optind];
	if (a->o.socket_path && (a->port_given || a->o.bind_addr))
		return cli_fail("img serve: --socket cannot be combined with --port or --bind");
	if (a->vhost_user) {
		const char *nbd_only = a->o.socket_path	     ? "--socket"
				       : a->port_given	     ? "--port"
				       : a->o.bind_addr	     ? "--bind"
				       : a->o.export_name    ? "--export-name"
				       : a->o.description    ? "--description"
				       : a->shared_given     ? "--shared"
				       : a->o.tls_dir	     ? "--tls-creds"
				       : a->o.allow_insecure ? "--allow-insecure"
							     : NULL;
		if (nbd_only)
			return cli_fail("img serve: %s is for NBD and cannot be combined with "
					"--vhost-user",
					nbd_only);
	}
	if (a->coalesce_us >= 0 && !a->vhost_user)
		return cli_fail("img serve: --coalesce-us is for --vhost-user");
	if (a->force_share && !a->o.read_only)
		return cli_fail("%s: --force-share needs --read-only", a->file);
	return 0;
}

/*
 * --snapshot: a qcow2 overlay in $TMPDIR (else /var/tmp, as qemu-nbd) takes the writes. It is
 * unlinked as soon as it is open, so it goes away with the server however that ends. The image
 * itself is opened read-only and becomes the overlay's backing file in memory only: nothing
 * records the overlay anywhere, the image's bytes and metadata stay as they were.
 */
static int open_snapshot(struct serve_args *a, struct bdev **out)
{
	const char *dir = getenv("TMPDIR");
	char path[PATH_MAX];
	struct bdev *base, *ov;
	int ret, fd;

	ret = bdev_open(&base, a->file, a->fmt, 0);
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s/ligero-serve-XXXXXX", dir && *dir ? dir : "/var/tmp");
	fd = mkstemp(path);
	if (fd < 0) {
		ret = err_sys(errno, "%s: cannot create the snapshot overlay", path);
		bdev_close(base);
		return ret;
	}
	close(fd);
	struct bdev_create_opts co = {.size = base->size, .force = true};
	ret = bdev_create(path, "qcow2", &co);
	if (ret == 0)
		ret = bdev_open(&ov, path, "qcow2", BDEV_O_RDWR | BDEV_O_NO_BACKING);
	unlink(path);
	if (ret < 0) {
		bdev_close(base);
		return err_prefix(ret, "snapshot overlay: ");
	}
	ov->backing = base;
	*out = ov;
	return 0;
}

/* The disk's serial (GET_ID, /sys/block/vdX/serial in the guest): the image's file name. */
static const char *serial_of(const char *file)
{
	const char *slash = strrchr(file, '/');
	return slash && slash[1] ? slash + 1 : file;
}

static int serve_vhost_user(struct serve_args *a, struct bdev *bs)
{
	struct vhost_user_serve_opts v = {
	    .dev = {.bs = bs,
		    .read_only = a->o.read_only,
		    .serial = serial_of(a->file),
		    .trace = getenv("LIGERO_VHOST_USER_TRACE") != NULL,
		    .coalesce_us = a->coalesce_us >= 0 ? a->coalesce_us : VHOST_USER_BLK_COALESCE_US,
		    .log = log_line},
	    .socket_path = a->vhost_user,
	    .pid_file = a->o.pid_file,
	};
	return vhost_user_blk_serve(&v);
}

int img_serve_main(int argc, char **argv)
{
	struct serve_args a = {.o = {.port = 10809, .shared = 1}, .coalesce_us = -1};
	struct bdev *bs;
	int ret = parse_args(argc, argv, &a);

	if (ret)
		return ret < 0 ? 0 : ret;
	if (a.snapshot && !a.o.read_only) {
		ret = open_snapshot(&a, &bs);
	} else {
		int flags = a.o.read_only ? 0 : BDEV_O_RDWR;
		if (a.force_share)
			flags |= BDEV_O_FORCE_SHARE;
		ret = bdev_open(&bs, a.file, a.fmt, flags);
	}
	if (ret < 0)
		return cli_fail_err(ret);
	if (a.vhost_user) {
		ret = serve_vhost_user(&a, bs);
		bdev_close(bs);
		return ret < 0 ? cli_fail_err(ret) : 0;
	}
	a.o.bs = bs;
	a.o.log = log_line;
	/* Tests run the worker path of reads that a fast page cache would otherwise keep on the
	 * event loop (see src/serve/nbd.c). */
	a.o.no_inline = getenv("LIGERO_NBD_NO_INLINE") != NULL;
	ret = nbd_serve(&a.o);
	bdev_close(bs);
	if (ret < 0)
		return cli_fail_err(ret);
	return 0;
}
