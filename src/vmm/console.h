/* The host side of the guest console: a terminal in raw mode with QEMU's Ctrl-A escapes. */
#ifndef LIGERO_VMM_CONSOLE_H
#define LIGERO_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

struct console {
	int in_fd;
	bool raw; /* in_fd is a terminal we put in raw mode */
	bool escape;
	struct termios saved;
};

/* Take over in_fd (-1: no input); a terminal goes into raw mode. */
int console_open(struct console *c, int in_fd);
/* Restore the terminal. Safe to call twice. */
void console_close(struct console *c);
/* Filter typed bytes in place through the Ctrl-A escapes; returns the bytes left for the guest
 * and sets *quit on Ctrl-A x. */
size_t console_filter(struct console *c, uint8_t *buf, size_t len, bool *quit);

#endif
