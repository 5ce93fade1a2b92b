/*
 * `ligero img io`: a subset of qemu-io with qemu-io's command syntax and output, so that one
 * command line runs against both and the outputs compare.
 *
 * Differences from qemu-io 7.2, on purpose:
 *  - the first failing command stops the run and the exit status is 1 (qemu-io runs the rest and
 *    exits 1 at the end); a pattern mismatch in `read -P` counts as a failure, as in qemu-io;
 *  - requests are processed in chunks of at most 4 MiB, so a long LEN does not need LEN bytes of
 *    memory and is not limited to 2 GiB;
 *  - every error line names the image file.
 */
#include "cli/cli.h"
#include "block/block.h"
#include "util/error.h"
#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK   (4u << 20)
#define IO_MAXARGS 32

struct io_ctx {
	struct bdev *bs;
	const char *file;
	void *buf; /* IO_CHUNK bytes, aligned for O_DIRECT */
};

struct io_cmd {
	const char *name;
	int (*fn)(struct io_ctx *io, int argc, char **argv);
	int nops;     /* operands after the options */
	bool options; /* fn parses its own options (and checks its operand count) */
	const char *usage;
};

/* A command-syntax error: one line naming the file and the command. Returns 1. */
static int io_fail(const struct io_ctx *io, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int io_fail(const struct io_ctx *io, const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	return cli_fail("%s: %s: %s", io->file, cmd, msg);
}

/* getopt's '?' or ':' inside a command, with the command's usage. Returns 1. */
static int io_opt_error(const struct io_ctx *io, const char *cmd, int c, const char *usage)
{
	if (c == ':')
		return io_fail(io, cmd, "option '-%c' needs a value (usage: %s)", optopt, usage);
	return io_fail(io, cmd, "invalid option '-%c' (usage: %s)", optopt, usage);
}

static int io_fail_err(int ret)
{
	fflush(stdout);
	return cli_fail_err(ret);
}

/* qemu-io's numbers: decimal with an optional unit (64k, 1.5M) or hex (0x10000). */
static int io_parse_num(const char *s, uint64_t *out)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		char *end, unit[8];
		uint64_t mult = 1;

		if (!isxdigit((unsigned char)s[2]))
			return -EINVAL;
		errno = 0;
		unsigned long long v = strtoull(s + 2, &end, 16);
		if (errno)
			return -ERANGE;
		if (*end) {
			/* A unit after hex digits scales like after decimal ones. */
			if (strlen(end) > 4)
				return -EINVAL;
			snprintf(unit, sizeof(unit), "1%s", end);
			int ret = size_parse(unit, &mult);
			if (ret < 0)
				return ret;
		}
		if (v > INT64_MAX / mult)
			return -ERANGE;
		*out = v * mult;
		return 0;
	}
	return size_parse(s, out);
}

static int io_num_arg(const struct io_ctx *io, const char *cmd, const char *what, const char *s,
		      uint64_t *out)
{
	int ret = io_parse_num(s, out);

	if (ret == -ERANGE)
		return io_fail(io, cmd, "%s '%s' is too large", what, s);
	if (ret < 0)
		return io_fail(io, cmd, "%s '%s' is not a number (use e.g. 4096, 64k, 0x10000)",
			       what, s);
	return 0;
}

/* A pattern byte as qemu-io takes it: any C integer literal from 0 to 255. */
static int io_pattern_arg(const struct io_ctx *io, const char *cmd, const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || end == s || *end || v < 0 || v > 255)
		return io_fail(io, cmd, "%s is not a valid pattern byte", s);
	*out = (int)v;
	return 0;
}

/* qemu-io's cvtstr(): three decimals, ".000" dropped, binary units. */
static char *io_cvtstr(double v, char *buf, size_t len)
{
	static const char *const units[] = {" bytes", " KiB", " MiB", " GiB",
					    " TiB",   " PiB", " EiB"};
	int i = 0;

	while (i < 6 && v >= 1024.0) {
		v /= 1024.0;
		i++;
	}
	snprintf(buf, len, "%.3f", v);
	char *trim = strstr(buf, ".000");
	if (trim)
		*trim = '\0';
	strncat(buf, units[i], len - strlen(buf) - 1);
	return buf;
}

static struct timespec io_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

/* qemu-io's report: "wrote N/N bytes at offset O" and the throughput line. */
static void io_report(const char *op, struct timespec t0, uint64_t off, uint64_t len)
{
	struct timespec t1 = io_now();
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	long whole = (long)secs;
	char s1[64], s2[64], ts[64];

	if (whole)
		snprintf(ts, sizeof(ts), "%ld:%05.2f", (whole % 3600) / 60,
			 (double)(whole % 60) + (secs - (double)whole));
	else
		snprintf(ts, sizeof(ts), "%05.2f sec", secs);
	printf("%s %llu/%llu bytes at offset %llu\n", op, (unsigned long long)len,
	       (unsigned long long)len, (unsigned long long)off);
	printf("%s, 1 ops; %s (%s/sec and %.4f ops/sec)\n", io_cvtstr((double)len, s1, sizeof(s1)),
	       ts, io_cvtstr((double)len / secs, s2, sizeof(s2)), 1.0 / secs);
}

/* qemu-io's hex dump of read -v. */
static void io_dump(const uint8_t *p, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i += 16) {
		size_t n = len - i < 16 ? len - i : 16;
		printf("%08llx:  ", (unsigned long long)(off + i));
		for (size_t j = 0; j < n; j++)
			printf("%02x ", p[i + j]);
		putchar(' ');
		for (size_t j = 0; j < n; j++)
			putchar(isalnum(p[i + j]) ? p[i + j] : '.');
		putchar('\n');
	}
}

/* Parse OFF LEN (the two operands of read, write and discard). */
static int io_range(const struct io_ctx *io, const char *cmd, int argc, char **argv, uint64_t *off,
		    uint64_t *len)
{
	char **ops = argv + optind;

	if (argc - optind != 2)
		return io_fail(io, cmd, "expected OFF LEN after the options, got %d operand%s",
			       argc - optind, argc - optind == 1 ? "" : "s");
	if (io_num_arg(io, cmd, "offset", ops[0], off) ||
	    io_num_arg(io, cmd, "length", ops[1], len))
		return 1;
	/* All or nothing: a request that ends past the image fails before any chunk is done. */
	if (*off > io->bs->size || *len > io->bs->size - *off)
		return io_fail(
		    io, cmd,
		    "range at offset %llu length %llu is past the end of the image (%llu "
		    "bytes)",
		    (unsigned long long)*off, (unsigned long long)*len,
		    (unsigned long long)io->bs->size);
	return 0;
}

static int cmd_read(struct io_ctx *io, int argc, char **argv)
{
	bool verbose = false, quiet = false, mismatch = false;
	int pattern = -1, c;
	uint64_t off, len;

	while ((c = getopt(argc, argv, ":P:vq")) != -1) {
		switch (c) {
		case 'P':
			if (io_pattern_arg(io, "read", optarg, &pattern))
				return 1;
			break;
		case 'v':
			verbose = true;
			break;
		case 'q':
			quiet = true;
			break;
		default:
			return io_opt_error(io, "read", c, "read [-P pattern] [-v] [-q] OFF LEN");
		}
	}
	if (io_range(io, "read", argc, argv, &off, &len))
		return 1;

	struct timespec t0 = io_now();
	for (uint64_t done = 0; done < len || (len == 0 && done == 0);) {
		size_t n = len - done < IO_CHUNK ? (size_t)(len - done) : IO_CHUNK;
		int ret = bdev_read(io->bs, off + done, io->buf, n);
		if (ret < 0)
			return io_fail_err(ret);
		if (pattern >= 0 && !mismatch && n) {
			/* First byte, then each byte against its predecessor: one memcmp. */
			const uint8_t *p = io->buf;
			mismatch = p[0] != pattern || memcmp(p, p + 1, n - 1);
		}
		if (verbose && !quiet)
			io_dump(io->buf, off + done, n);
		done += n;
		if (!n)
			break;
	}
	if (mismatch)
		printf("Pattern verification failed at offset %llu, %llu bytes\n",
		       (unsigned long long)off, (unsigned long long)len);
	if (!quiet)
		io_report("read", t0, off, len);
	if (mismatch)
		return io_fail(io, "read", "data at offset %llu differs from pattern 0x%02x",
			       (unsigned long long)off, pattern);
	return 0;
}

/*
 * write -c: whole clusters, each compressed with the image's codec; a cluster that does not
 * shrink is written plainly, as QEMU does. Like qemu-io, the range must be cluster aligned (the
 * image's last cluster may be short).
 */
static int io_write_compressed(struct io_ctx *io, uint64_t off, uint64_t len)
{
	struct bdev *bs = io->bs;
	uint64_t cs = bdev_cluster_size(bs);
	uint8_t *dst;
	int ret = 0;

	if (!cs)
		return err_set(ENOTSUP, "%s: format %s stores no compressed data", io->file,
			       bs->drv->name);
	if (off % cs || (len % cs && off + len != bs->size))
		return err_set(EINVAL,
			       "%s: compressed writes must cover whole clusters (%llu bytes) at "
			       "cluster-aligned offsets",
			       io->file, (unsigned long long)cs);
	dst = malloc(cs);
	if (!dst)
		return err_set(ENOMEM, "%s: out of memory", io->file);
	for (uint64_t done = 0; ret == 0 && done < len; done += cs) {
		size_t n = len - done < cs ? (size_t)(len - done) : (size_t)cs;
		int64_t clen = bdev_compress(bs, dst, cs, io->buf, n);
		if (clen == -ENOSPC)
			ret = bdev_write(bs, off + done, io->buf, n);
		else if (clen < 0)
			ret = (int)clen;
		else
			ret = bdev_write_compressed(bs, off + done, dst, (size_t)clen);
	}
	free(dst);
	return ret;
}

static int cmd_write(struct io_ctx *io, int argc, char **argv)
{
	bool zero = false, unmap = false, quiet = false, have_pattern = false, compress = false;
	int pattern = 0xcd, c;
	uint64_t off, len;

	while ((c = getopt(argc, argv, ":P:zuqc")) != -1) {
		switch (c) {
		case 'P':
			if (io_pattern_arg(io, "write", optarg, &pattern))
				return 1;
			have_pattern = true;
			break;
		case 'c':
			compress = true;
			break;
		case 'z':
			zero = true;
			break;
		case 'u':
			unmap = true;
			break;
		case 'q':
			quiet = true;
			break;
		default:
			return io_opt_error(io, "write", c,
					    "write [-P pattern | -z [-u]] [-c] [-q] OFF LEN");
		}
	}
	if (zero && have_pattern)
		return io_fail(io, "write", "only one of -z and -P can be given");
	if (unmap && !zero)
		return io_fail(io, "write", "-u requires -z");
	if (compress && zero)
		return io_fail(io, "write", "-c and -z cannot be combined");
	if (io_range(io, "write", argc, argv, &off, &len))
		return 1;

	struct timespec t0 = io_now();
	int ret = 0;
	if (zero) {
		ret = bdev_write_zeroes(io->bs, off, len, unmap ? BDEV_ZERO_MAY_UNMAP : 0);
	} else if (compress) {
		memset(io->buf, pattern, IO_CHUNK);
		ret = io_write_compressed(io, off, len);
	} else {
		memset(io->buf, pattern, len < IO_CHUNK ? (size_t)len : IO_CHUNK);
		for (uint64_t done = 0; ret == 0 && (done < len || len == 0); done += IO_CHUNK) {
			size_t n = len - done < IO_CHUNK ? (size_t)(len - done) : IO_CHUNK;
			ret = bdev_write(io->bs, off + done, io->buf, n);
			if (!n)
				break;
		}
	}
	if (ret < 0)
		return io_fail_err(ret);
	if (!quiet)
		io_report("wrote", t0, off, len);
	return 0;
}

static int cmd_discard(struct io_ctx *io, int argc, char **argv)
{
	bool quiet = false;
	uint64_t off, len;
	int c;

	while ((c = getopt(argc, argv, ":q")) != -1) {
		if (c != 'q')
			return io_opt_error(io, "discard", c, "discard [-q] OFF LEN");
		quiet = true;
	}
	if (io_range(io, "discard", argc, argv, &off, &len))
		return 1;
	struct timespec t0 = io_now();
	int ret = bdev_discard(io->bs, off, len);
	if (ret < 0)
		return io_fail_err(ret);
	if (!quiet)
		io_report("discard", t0, off, len);
	return 0;
}

/* alloc OFF [LEN]: how much of the range this layer holds (LEN defaults to 512, as in qemu-io). */
static int cmd_alloc(struct io_ctx *io, int argc, char **argv)
{
	uint64_t off, len = 512, sum = 0;
	char s1[64];

	if (argc < 2 || argc > 3)
		return io_fail(io, "alloc", "expected OFF [LEN]");
	if (io_num_arg(io, "alloc", "offset", argv[1], &off) ||
	    (argc == 3 && io_num_arg(io, "alloc", "length", argv[2], &len)))
		return 1;
	for (uint64_t done = 0; done < len;) {
		struct bdev_extent ext;
		int ret = bdev_block_status(io->bs, off + done, len - done, &ext);
		if (ret < 0)
			return io_fail_err(ret);
		if (ext.flags & BDEV_ST_ALLOCATED)
			sum += ext.length;
		done += ext.length;
	}
	printf("%llu/%llu bytes allocated at offset %s\n", (unsigned long long)sum,
	       (unsigned long long)len, io_cvtstr((double)off, s1, sizeof(s1)));
	return 0;
}

static int cmd_length(struct io_ctx *io, int argc, char **argv)
{
	char s1[64];

	printf("%s\n", io_cvtstr((double)io->bs->size, s1, sizeof(s1)));
	return 0;
}

/* truncate [-m off] SIZE: qemu-io's other preallocation modes are not supported. */
static int cmd_truncate(struct io_ctx *io, int argc, char **argv)
{
	static const char usage[] = "truncate [-m off] SIZE";
	uint64_t size;
	int c;

	while ((c = getopt(argc, argv, ":m:")) != -1) {
		if (c != 'm')
			return io_opt_error(io, "truncate", c, usage);
		if (strcmp(optarg, "off"))
			return io_fail(io, "truncate",
				       "preallocation '%s' is not supported (only off)", optarg);
	}
	if (argc - optind != 1)
		return io_fail(io, "truncate", "expected one SIZE (usage: %s)", usage);
	if (io_num_arg(io, "truncate", "size", argv[optind], &size))
		return 1;
	int ret = bdev_truncate(io->bs, size);
	return ret < 0 ? io_fail_err(ret) : 0;
}

static int cmd_flush(struct io_ctx *io, int argc, char **argv)
{
	int ret = bdev_flush(io->bs);
	return ret < 0 ? io_fail_err(ret) : 0;
}

/* Allocated / not allocated runs of the top layer, merged like qemu-io's map. */
static int cmd_map(struct io_ctx *io, int argc, char **argv)
{
	uint64_t size = io->bs->size, off = 0;

	while (off < size) {
		struct bdev_extent ext;
		uint64_t run = 0;
		bool alloc = false;

		while (off + run < size) {
			int ret = bdev_block_status(io->bs, off + run, size - off - run, &ext);
			if (ret < 0)
				return io_fail_err(ret);
			bool a = ext.flags & BDEV_ST_ALLOCATED;
			if (run && a != alloc)
				break;
			alloc = a;
			run += ext.length;
		}
		char s1[64], s2[64];
		printf("%s (0x%llx) bytes %s at offset %s (0x%llx)\n",
		       io_cvtstr((double)run, s1, sizeof(s1)), (unsigned long long)run,
		       alloc ? "    allocated" : "not allocated",
		       io_cvtstr((double)off, s2, sizeof(s2)), (unsigned long long)off);
		off += run;
	}
	return 0;
}

static int cmd_sleep(struct io_ctx *io, int argc, char **argv)
{
	char *end;
	long ms;

	errno = 0;
	ms = strtol(argv[1], &end, 10);
	if (errno || end == argv[1] || *end || ms < 0)
		return io_fail(io, "sleep", "'%s' is not a number of milliseconds", argv[1]);
	fflush(stdout);
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 0;
}

static const struct io_cmd io_cmds[] = {
    {"read", cmd_read, 2, true, "read [-P pattern] [-v] [-q] OFF LEN"},
    {"write", cmd_write, 2, true, "write [-P pattern | -z [-u] | -c] [-q] OFF LEN"},
    {"discard", cmd_discard, 2, true, "discard [-q] OFF LEN"},
    {"flush", cmd_flush, 0, false, "flush"},
    {"map", cmd_map, 0, false, "map"},
    {"alloc", cmd_alloc, 0, true, "alloc OFF [LEN]"},
    {"length", cmd_length, 0, false, "length"},
    {"truncate", cmd_truncate, 1, true, "truncate [-m off] SIZE"},
    {"sleep", cmd_sleep, 1, false, "sleep MS"},
    {"quit", NULL, 0, false, "quit"},
};

/* Split a command line on blanks; "double quotes" group words. Modifies line. */
static int io_split(char *line, char **argv, int max)
{
	int argc = 0;
	char *p = line;

	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		if (argc == max)
			return -1;
		char quote = *p == '"' ? *p++ : 0;
		argv[argc++] = p;
		while (*p && (quote ? *p != quote : !isspace((unsigned char)*p)))
			p++;
		if (*p)
			*p++ = '\0';
	}
	argv[argc] = NULL;
	return argc;
}

/* Run one command line. Returns 0, 1 on failure, or -1 for quit. */
static int io_run(struct io_ctx *io, const char *cmdline)
{
	char *line = strdup(cmdline), *argv[IO_MAXARGS + 1];
	int argc, ret = 1;

	if (!line)
		return cli_fail("%s: out of memory", io->file);
	argc = io_split(line, argv, IO_MAXARGS);
	if (argc < 0) {
		ret = io_fail(io, cmdline, "too many arguments");
		goto out;
	}
	if (argc == 0) {
		ret = 0;
		goto out;
	}
	const struct io_cmd *cmd = NULL;
	for (size_t i = 0; i < sizeof(io_cmds) / sizeof(io_cmds[0]); i++)
		if (!strcmp(argv[0], io_cmds[i].name))
			cmd = &io_cmds[i];
	if (!cmd) {
		ret = io_fail(io, argv[0],
			      "unknown command (known: read, write, discard, flush, map, "
			      "alloc, length, truncate, sleep, quit)");
		goto out;
	}
	if (!cmd->fn) {
		ret = -1;
		goto out;
	}
	if (!cmd->options && argc - 1 != cmd->nops) {
		ret = io_fail(io, argv[0], "expected %d operand%s (usage: %s)", cmd->nops,
			      cmd->nops == 1 ? "" : "s", cmd->usage);
		goto out;
	}
	/* A fresh scan for each command; like qemu-io's, options may follow the operands and
	 * "--" ends them. */
	cli_getopt_reset();
	ret = cmd->fn(io, argc, argv);
out:
	free(line);
	return ret;
}

static void usage(FILE *f)
{
	fputs("usage: ligero img io [-f fmt] [-r] [-U] [-n] [-t cache] [--base-write] [-c CMD]... "
	      "FILE\n"
	      "commands (qemu-io's syntax):\n"
	      "  read [-P pattern] [-v] [-q] OFF LEN\n"
	      "  write [-P pattern | -z [-u] | -c] [-q] OFF LEN\n"
	      "  discard [-q] OFF LEN, alloc OFF [LEN], map, length, truncate [-m off] SIZE,\n"
	      "  flush, sleep MS, quit\n"
	      "without -c, commands are read from standard input, one per line\n",
	      f);
}

/* Commands from stdin (qemu-io's interactive mode). */
static int io_run_stdin(struct io_ctx *io)
{
	bool tty = isatty(STDIN_FILENO);
	char *line = NULL;
	size_t cap = 0;
	int ret = 0;

	for (;;) {
		if (tty) {
			printf("ligero-io> ");
			fflush(stdout);
		}
		if (getline(&line, &cap, stdin) < 0)
			break;
		line[strcspn(line, "\n")] = '\0';
		ret = io_run(io, line);
		if (ret < 0) {
			ret = 0;
			break;
		}
		if (ret && !tty)
			break; /* a script stops at its first error; a person can retry */
		if (tty)
			ret = 0;
	}
	free(line);
	return ret;
}

int img_io_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"cmd", required_argument, NULL, 'c'},
	    {"read-only", no_argument, NULL, 'r'},
	    {"force-share", no_argument, NULL, 'U'},
	    {"nocache", no_argument, NULL, 'n'},
	    {"cache", required_argument, NULL, 't'},
	    {"base-write", no_argument, NULL, 'B'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *fmt = NULL;
	char **cmds = calloc((size_t)argc, sizeof(*cmds));
	int ncmds = 0, flags = BDEV_O_RDWR, c, ret = 0;
	bool force_share = false;

	if (!cmds)
		return cli_fail("img io: out of memory");
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":f:c:rUnt:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'c':
			cmds[ncmds++] = optarg;
			break;
		case 'r':
			flags &= ~BDEV_O_RDWR;
			break;
		case 'U':
			force_share = true;
			break;
		case 'n':
			flags |= BDEV_O_DIRECT;
			break;
		case 'B': /* write into an image that overlays use as their backing file */
			flags |= BDEV_O_BASE_WRITE;
			break;
		case 't': {
			int cache;
			if (cli_parse_cache("img io", "-t", optarg, &cache)) {
				free(cmds);
				return 1;
			}
			flags = (flags & ~BDEV_O_CACHE_MASK) | cache;
			break;
		}
		case 'h':
			usage(stdout);
			free(cmds);
			return 0;
		default:
			free(cmds);
			return cli_opt_error("img io", c, argv, longopts);
		}
	}
	if (optind != argc - 1) {
		free(cmds);
		return cli_usage_fail("img io", "expected one image file name");
	}
	const char *file = argv[optind];
	if (force_share) {
		if (flags & BDEV_O_RDWR) {
			free(cmds);
			return cli_fail("%s: -U (no locking) needs a read-only open: add -r", file);
		}
		flags |= BDEV_O_FORCE_SHARE;
	}

	struct io_ctx io = {.file = file};
	if (posix_memalign(&io.buf, 4096, IO_CHUNK)) {
		free(cmds);
		return cli_fail("%s: out of memory", file);
	}
	ret = bdev_open(&io.bs, file, fmt, flags);
	if (ret < 0) {
		ret = cli_fail_err(ret);
		goto out;
	}
	if (ncmds == 0) {
		ret = io_run_stdin(&io);
	} else {
		for (int i = 0; i < ncmds; i++) {
			ret = io_run(&io, cmds[i]);
			if (ret)
				break;
		}
		if (ret < 0)
			ret = 0; /* quit */
	}
	int fret = bdev_flush(io.bs);
	if (fret < 0 && !ret)
		ret = io_fail_err(fret);
	bdev_close(io.bs);
out:
	free(io.buf);
	free(cmds);
	if (fflush(stdout) != 0 && !ret)
		ret = cli_fail("%s: could not write the output", file);
	return ret;
}
