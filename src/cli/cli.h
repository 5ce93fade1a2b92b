/* Command-line front end: argument parsing, printing, exit codes. No image logic here. */
#ifndef LIGERO_CLI_H
#define LIGERO_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Print "ligero: <message>" on stderr; returns the exit code 1 for `return cli_fail(...)`. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the block layer's recorded error message; returns 1. */
int cli_fail_err(int ret);
/* Parse a size argument or fail with a message naming what it is. */
int cli_parse_size(const char *what, const char *s, uint64_t *out);

int cmd_img(int argc, char **argv);
int img_create_main(int argc, char **argv);
int img_info_main(int argc, char **argv);
int img_check_main(int argc, char **argv);
int img_io_main(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
