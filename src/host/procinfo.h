/* What /proc tells about a VM process: memory, KSM merging, age, command line. */
#ifndef LIGERO_HOST_PROCINFO_H
#define LIGERO_HOST_PROCINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_usage {
	uint64_t rss; /* bytes (VmRSS) */
	int64_t
	    ksm_shared; /* bytes of its pages KSM has merged, -1 where the kernel does not tell */
	double uptime;	/* seconds since the process started */
};

/* Read a small file (in /proc or /sys) whole into buf, NUL-terminated; its length or -errno,
 * with no message. */
ssize_t proc_slurp(const char *path, char *buf, size_t size);

/* Read pid's figures under proc (normally "/proc"). KSM: ksm_merging_pages (Linux 5.19+,
 * /proc/PID/ksm_merging_pages or the line in ksm_stat) times the page size. 0 or -errno. */
int proc_usage_get(const char *proc, pid_t pid, struct proc_usage *u);

/* pid's command line as a NUL-separated buffer; *len its length. 0 or -errno (-ESRCH when the
 * process is gone). A zombie has an empty one. */
int proc_cmdline(const char *proc, pid_t pid, char *buf, size_t size, size_t *len);

/* Whether argument a directly followed by b appears in the NUL-separated cmdline. */
bool proc_cmdline_has_pair(const char *cmdline, size_t len, const char *a, const char *b);

#endif
