/* The files `ligero run` leaves for whoever supervises it (ligero vm, a systemd unit, a
 * script): --pidfile and --exit-status-file, both written whole or not at all (a temporary file
 * renamed over the name), so a reader never sees half of one. */
#include "cli/run_files.h"
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write text to path through path.tmp.PID: 0 or -errno. */
static int write_atomic(const char *path, const char *text)
{
	char *tmp;
	size_t len = strlen(text);
	int fd, ret = 0;

	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		free(tmp);
		return ret;
	}
	if (write(fd, text, len) != (ssize_t)len)
		ret = errno ? -errno : -EIO;
	else if (fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	free(tmp);
	return ret;
}

int run_pidfile_write(const char *path)
{
	char text[32];
	int ret;

	snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if ((ret = write_atomic(path, text)) < 0)
		return cli_fail("--pidfile %s: %s", path, strerror(-ret));
	return 0;
}

void run_pidfile_remove(const char *path)
{
	char text[32] = "";
	FILE *f = fopen(path, "r");

	/* Only ours: a second VMM may have replaced it. */
	if (!f)
		return;
	if (fgets(text, sizeof(text), f) && strtol(text, NULL, 10) == (long)getpid())
		unlink(path);
	fclose(f);
}

int run_exit_file_clear(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return cli_fail("--exit-status-file %s: %s", path, strerror(errno));
	return 0;
}

void run_exit_file_write(const char *path, const struct run_exit *e)
{
	struct json_object *o = json_object_new_object();
	int ret;

	json_object_object_add(o, "reason", json_object_new_string(e->reason));
	json_object_object_add(o, "message", json_object_new_string(e->message));
	json_object_object_add(o, "status", json_object_new_int(e->status));
	if (e->signal)
		json_object_object_add(o, "signal", json_object_new_int(e->signal));
	char *text = NULL;
	if (asprintf(&text, "%s\n",
		     json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED |
							   JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		text = NULL;
	json_object_put(o);
	if (!text || (ret = write_atomic(path, text)) < 0)
		cli_fail("--exit-status-file %s: %s", path,
			 text ? strerror(-ret) : "out of memory");
	free(text);
}
