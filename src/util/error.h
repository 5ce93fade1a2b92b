/* Error reporting: library code records one human message and returns a negative errno. */
#ifndef LIGERO_UTIL_ERROR_H
#define LIGERO_UTIL_ERROR_H

#include <stdarg.h>

/* Record a message (replacing any earlier one); returns -errnum so `return err_set(...)` works. */
int err_set(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like err_set, with ": strerror(errnum)" appended. */
int err_sys(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Put context in front of the recorded message ("file.qcow2: " + message); returns ret. */
int err_prefix(int ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The recorded message, or a generic one when none was recorded for errno -ret. */
const char *err_msg(void);
const char *err_msg_or(int ret);

void err_clear(void);

#endif
