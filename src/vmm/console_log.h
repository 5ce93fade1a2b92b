/* The console log: every byte of console output appended to a file that is rotated at a size
 * (FILE becomes FILE.1, replacing the older FILE.1), so the log of a long-running VM stays
 * within twice that size and always holds the latest output. */
#ifndef LIGERO_VMM_CONSOLE_LOG_H
#define LIGERO_VMM_CONSOLE_LOG_H

#include <stddef.h>
#include <stdint.h>

#define CONSOLE_LOG_MAX_DEFAULT (1024 * 1024)

struct console_log {
	int fd;
	char *path, *old; /* FILE and FILE.1 */
	uint64_t size, max;
	int error; /* the first write or rotation error (-errno), 0 if none */
};

/* Open path for appending (created mode 0600, its content kept: a VM started again goes on
 * where it left off), rotating at max bytes (at least 4096). */
int console_log_open(struct console_log *l, const char *path, uint64_t max);
/* Append; a file that reached max is rotated first. Errors are kept in l->error, never
 * returned: the guest must not stop because its log cannot be written. */
void console_log_write(struct console_log *l, const uint8_t *p, size_t n);
void console_log_close(struct console_log *l);

#endif
