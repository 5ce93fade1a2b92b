/* The console log and its rotation; see console_log.h. */
#include "vmm/console_log.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int log_reopen(struct console_log *l, int flags)
{
	struct stat st;

	l->fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | flags, 0600);
	if (l->fd < 0)
		return -errno;
	l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

int console_log_open(struct console_log *l, const char *path, uint64_t max)
{
	int ret;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->max = max < 4096 ? 4096 : max;
	if (!(l->path = strdup(path)) || asprintf(&l->old, "%s.1", path) < 0) {
		free(l->path);
		l->path = l->old = NULL;
		return err_set(ENOMEM, "out of memory");
	}
	if ((ret = log_reopen(l, 0)) < 0) {
		console_log_close(l);
		return err_set(-ret, "--console-log %s: %s", path, strerror(-ret));
	}
	return 0;
}

/* FILE -> FILE.1, and a new empty FILE. */
static void log_rotate(struct console_log *l)
{
	int ret;

	close(l->fd);
	l->fd = -1;
	if (rename(l->path, l->old) < 0 && !l->error)
		l->error = -errno;
	/* If the rename failed, FILE is started again rather than growing past the limit. */
	if ((ret = log_reopen(l, O_TRUNC)) < 0 && !l->error)
		l->error = ret;
}

void console_log_write(struct console_log *l, const uint8_t *p, size_t n)
{
	while (n) {
		if (l->size >= l->max)
			log_rotate(l);
		if (l->fd < 0)
			return;
		size_t k = l->max - l->size < n ? (size_t)(l->max - l->size) : n;
		ssize_t w = write(l->fd, p, k);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!l->error)
				l->error = w < 0 ? -errno : -EIO;
			return;
		}
		l->size += (uint64_t)w;
		p += w;
		n -= (size_t)w;
	}
}

void console_log_close(struct console_log *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	free(l->path);
	free(l->old);
	l->path = l->old = NULL;
}
