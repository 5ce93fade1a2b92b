/*
 * Command-line argument errors, one line each, naming the verb: getopt's own messages
 * ("info: invalid option -- 'x'") never reach the user, because every verb parses with
 * opterr = 0 and an optstring that starts with ':' and hands getopt's '?' and ':' here.
 */
#include "cli/cli.h"
#include "block/block.h"
#include "util/error.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cli_getopt_reset(void)
{
	/* 0, not 1: glibc then starts a fresh scan (it forgets where the previous one had
	 * permuted to), as qemu-io does for each of its commands. */
	optind = 0;
	opterr = 0;
}

static void vfail(const char *verb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vfail(const char *verb, const char *fmt, va_list ap)
{
	fprintf(stderr, "ligero: %s: ", verb);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see 'ligero %s --help')\n", verb);
}

int cli_usage_fail(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	vfail(verb, fmt, ap);
	va_end(ap);
	return 1;
}

/* The long option name (without "--" and "=value") stands for: the one spelt out in full, else
 * the only one it abbreviates. NULL when none; *n counts the abbreviated ones. */
static const struct option *long_match(const struct option *lo, const char *name, size_t len,
				       int *n)
{
	const struct option *found = NULL;

	*n = 0;
	for (; lo && lo->name; lo++) {
		if (strncmp(lo->name, name, len))
			continue;
		if (strlen(lo->name) == len) {
			*n = 1;
			return lo;
		}
		found = lo;
		++*n;
	}
	return *n == 1 ? found : NULL;
}

int cli_opt_error(const char *verb, int c, char **argv, const struct option *longopts)
{
	/* The element getopt was looking at. An error inside a cluster of short options ("-xq")
	 * leaves optind on that element, so argv[optind - 1] is then the one before it; a long
	 * option's errors always move optind past its own element. */
	const char *elem = optind > 0 && argv[optind - 1] ? argv[optind - 1] : "";
	bool is_long = !strncmp(elem, "--", 2) && elem[2];

	if (is_long) {
		const char *name = elem + 2;
		size_t len = strcspn(name, "=");
		int n;
		const struct option *lo = long_match(longopts, name, len, &n);

		if (c == ':')
			return cli_usage_fail(verb, "option '--%.*s' needs a value", (int)len,
					      name);
		if (!optopt && n > 1)
			return cli_usage_fail(verb, "ambiguous option '--%.*s'", (int)len, name);
		if (!optopt)
			return cli_usage_fail(verb, "invalid option '--%.*s'", (int)len, name);
		if (lo && lo->has_arg == no_argument && lo->val == optopt && name[len] == '=')
			return cli_usage_fail(verb, "option '--%s' takes no value", lo->name);
		/* else: a short option in a cluster after this element */
	}
	if (c == ':')
		return cli_usage_fail(verb, "option '-%c' needs a value", optopt);
	if (optopt > 0x20 && optopt < 0x7f)
		return cli_usage_fail(verb, "invalid option '-%c'", optopt);
	return cli_usage_fail(verb, "invalid option '%s'", elem);
}

int cli_parse_cache(const char *verb, const char *opt, const char *mode, int *flags)
{
	int f, ret = bdev_parse_cache_mode(mode, &f);

	if (ret < 0)
		return cli_usage_fail(verb, "%s: %s", opt, err_msg_or(ret));
	if (flags)
		*flags = f;
	return 0;
}
