/* Command-line front end: argument parsing, printing, exit codes. No image logic here. */
#ifndef LIGERO_CLI_H
#define LIGERO_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

/* Print "ligero: <message>" on stderr; returns the exit code 1 for `return cli_fail(...)`. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the block layer's recorded error message; returns 1. */
int cli_fail_err(int ret);
struct bdev;
/* Print "ligero: warning: <what>" for the warning a driver left on an open image (an image
 * marked in use, read with -U), if any. */
void cli_warn_open(const struct bdev *bs);
/*
 * Argument parsing, the same for every verb (cli/args.c): call cli_getopt_reset() before the
 * getopt loop; optstrings start with ':' and carry no '+', so glibc permutes (options before and
 * after operands, as qemu-img takes them; "--" ends options) and reports missing values as ':'.
 * getopt prints nothing; its '?' and ':' go to cli_opt_error.
 */
struct option;
void cli_getopt_reset(void);
/* "ligero: img info: invalid option '-x' (see 'ligero img info --help')" for getopt's return c
 * ('?' or ':'); verb is the command as typed after "ligero" ("img info"). Returns 1. */
int cli_opt_error(const char *verb, int c, char **argv, const struct option *longopts);
/* "ligero: VERB: MESSAGE (see 'ligero VERB --help')": a command line that makes no sense.
 * Returns 1. */
int cli_usage_fail(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A cache mode option (-t, -T) through bdev_parse_cache_mode: *flags (if not NULL) gets its
 * BDEV_O_* bits. Returns 0, or 1 after "ligero: VERB: OPT: cache mode 'x' is not ...". */
int cli_parse_cache(const char *verb, const char *opt, const char *mode, int *flags);

/* Parse a size argument or fail with a message naming what it is. */
int cli_parse_size(const char *what, const char *s, uint64_t *out);

struct bdev_create_opts;
/* Parse one key=value of -o (img create's options) into o; returns 0 or an exit code. backing,
 * fmt_backing, size and has_size receive backing_file=, backing_fmt= and size=. */
/* compat=0.10|v2|1.1|v3 -> 2 or 3 */
int cli_parse_compat(const char *v, int *out);
/* on|off (and true/false, yes/no) for option key */
int cli_parse_onoff(const char *key, const char *v, bool *out);
int cli_create_option(char *kv, struct bdev_create_opts *o, const char **fmt_backing,
		      const char **backing, uint64_t *size, bool *has_size);
/* Refuse qcow2-only options for raw; returns 0 or an exit code. */
int cli_check_format_options(const char *fmt, const char *file, const struct bdev_create_opts *o);

/* Print str as a JSON string the way QEMU does: ASCII only, upper-case \uXXXX escapes, invalid
 * UTF-8 as U+FFFD, "/" not escaped. */
void cli_json_string(FILE *f, const char *str);

int cmd_img(int argc, char **argv);
int cmd_sparsify(int argc, char **argv);
int img_create_main(int argc, char **argv);
int img_info_main(int argc, char **argv);
int img_check_main(int argc, char **argv);
int img_io_main(int argc, char **argv);
int img_convert_main(int argc, char **argv);
int img_map_main(int argc, char **argv);
int img_compare_main(int argc, char **argv);
int img_commit_main(int argc, char **argv);
int img_rebase_main(int argc, char **argv);
int img_resize_main(int argc, char **argv);
int img_snapshot_main(int argc, char **argv);
int img_amend_main(int argc, char **argv);
int img_serve_main(int argc, char **argv);

int cmd_fs(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_vm(int argc, char **argv);
int cmd_host(int argc, char **argv);
/* "0.1.0 (git 1a2b3c4)", or "0.1.0" when not built from a git checkout (version.sh). */
extern const char cli_version[];
/* ligero help [GROUP] [VERB]: argv[0] is "help", argc >= 2. */
int cmd_help(int argc, char **argv);
int cmd_ksm(int argc, char **argv);
int cmd_sysprep(int argc, char **argv);
int cmd_fleet(int argc, char **argv);

#endif
