/* /proc readers for VM processes. Each returns what the kernel says or an error; nothing is
 * estimated (a kernel without per-process KSM figures gives -1, shown as "unknown"). */
#include "host/procinfo.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ssize_t proc_slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0)
		return -errno;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* The number after "key" at the start of a line of text, or -1. */
static int64_t field(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, key, klen))
			return strtoll(p + klen, NULL, 10);
	return -1;
}

static int64_t ksm_pages(const char *proc, pid_t pid)
{
	char path[256], buf[4096];
	int64_t v;

	snprintf(path, sizeof(path), "%s/%d/ksm_merging_pages", proc, (int)pid);
	if (proc_slurp(path, buf, sizeof(buf)) > 0)
		return strtoll(buf, NULL, 10);
	snprintf(path, sizeof(path), "%s/%d/ksm_stat", proc, (int)pid);
	if (proc_slurp(path, buf, sizeof(buf)) > 0 && (v = field(buf, "ksm_merging_pages")) >= 0)
		return v;
	return -1;
}

/* Seconds since boot at which pid started: field 22 of /proc/PID/stat, after the command name
 * in parentheses (which may hold blanks and parentheses itself). */
static int start_time(const char *proc, pid_t pid, double *out)
{
	char path[256], buf[2048], *p;
	unsigned long long ticks;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%d/stat", proc, (int)pid);
	if ((n = proc_slurp(path, buf, sizeof(buf))) < 0)
		return (int)n;
	if (!(p = strrchr(buf, ')')))
		return -EINVAL;
	/* after ") ": state is field 3, starttime field 22 */
	p++;
	for (int f = 3; f < 22 && p; f++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p, " %llu", &ticks) != 1)
		return -EINVAL;
	*out = (double)ticks / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

int proc_usage_get(const char *proc, pid_t pid, struct proc_usage *u)
{
	char path[256], buf[8192];
	double started = 0, up = 0;
	ssize_t n;
	int64_t kb, pages;

	memset(u, 0, sizeof(*u));
	snprintf(path, sizeof(path), "%s/%d/status", proc, (int)pid);
	if ((n = proc_slurp(path, buf, sizeof(buf))) < 0)
		return (int)n;
	kb = field(buf, "VmRSS:");
	u->rss = kb > 0 ? (uint64_t)kb * 1024 : 0;
	pages = ksm_pages(proc, pid);
	u->ksm_shared = pages >= 0 ? pages * sysconf(_SC_PAGESIZE) : -1;
	snprintf(path, sizeof(path), "%s/uptime", proc);
	if (start_time(proc, pid, &started) == 0 && proc_slurp(path, buf, sizeof(buf)) > 0 &&
	    sscanf(buf, "%lf", &up) == 1 && up >= started)
		u->uptime = up - started;
	return 0;
}

int proc_cmdline(const char *proc, pid_t pid, char *buf, size_t size, size_t *len)
{
	char path[256];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%d/cmdline", proc, (int)pid);
	n = proc_slurp(path, buf, size);
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	*len = (size_t)n;
	return 0;
}

bool proc_cmdline_has_pair(const char *cmdline, size_t len, const char *a, const char *b)
{
	const char *end = cmdline + len, *prev = NULL;

	for (const char *p = cmdline; p < end; p += strlen(p) + 1) {
		if (prev && !strcmp(prev, a) && !strcmp(p, b))
			return true;
		prev = p;
	}
	return false;
}
