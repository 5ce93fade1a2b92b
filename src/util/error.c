#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* One message per thread: the CLI prints it once, the VMM's threads do not trample each other. */
static __thread char err_buf[1024];

__attribute__((format(printf, 3, 0))) static int err_vset(int errnum, const char *suffix,
							  const char *fmt, va_list ap)
{
	int n = vsnprintf(err_buf, sizeof(err_buf), fmt, ap);

	if (suffix && n >= 0 && (size_t)n < sizeof(err_buf))
		snprintf(err_buf + n, sizeof(err_buf) - n, ": %s", suffix);
	return errnum > 0 ? -errnum : (errnum < 0 ? errnum : -EIO);
}

int err_set(int errnum, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = err_vset(errnum, NULL, fmt, ap);
	va_end(ap);
	return ret;
}

int err_sys(int errnum, const char *fmt, ...)
{
	va_list ap;
	int ret;

	if (errnum < 0)
		errnum = -errnum;
	va_start(ap, fmt);
	ret = err_vset(errnum, strerror(errnum), fmt, ap);
	va_end(ap);
	return ret;
}

int err_prefix(int ret, const char *fmt, ...)
{
	char old[sizeof(err_buf)];
	char pre[256];
	va_list ap;

	memcpy(old, err_buf, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	if (!old[0])
		snprintf(old, sizeof(old), "%s", strerror(ret < 0 ? -ret : EIO));
	/* A message that does not fit is cut, and ends in "..." to say so. */
	if (snprintf(err_buf, sizeof(err_buf), "%s%s", pre, old) >= (int)sizeof(err_buf))
		memcpy(err_buf + sizeof(err_buf) - 4, "...", 4);
	return ret;
}

const char *err_msg(void)
{
	return err_buf[0] ? err_buf : "unknown error";
}

const char *err_msg_or(int ret)
{
	if (!err_buf[0])
		snprintf(err_buf, sizeof(err_buf), "%s", strerror(ret < 0 ? -ret : EIO));
	return err_buf;
}

void err_clear(void)
{
	err_buf[0] = '\0';
}
