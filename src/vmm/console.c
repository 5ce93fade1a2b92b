/* Host console. Raw mode sends every key, Ctrl-C included, to the guest; Ctrl-A x leaves,
 * Ctrl-A Ctrl-A sends one Ctrl-A, as in QEMU. Filtering works in place: it never writes
 * more bytes than it has consumed. */
#include "vmm/console.h"
#include "util/error.h"

#include <errno.h>
#include <unistd.h>

#define CTRL_A 0x01

int console_open(struct console *c, int in_fd)
{
	struct termios t;

	c->in_fd = in_fd;
	c->raw = false;
	c->escape = false;
	if (in_fd < 0 || !isatty(in_fd))
		return 0;
	if (tcgetattr(in_fd, &c->saved) < 0)
		return err_sys(errno, "cannot read the terminal's settings");
	t = c->saved;
	cfmakeraw(&t);
	/* Output post-processing stays on so the guest's "\n" still returns the carriage. */
	t.c_oflag = c->saved.c_oflag;
	if (tcsetattr(in_fd, TCSANOW, &t) < 0)
		return err_sys(errno, "cannot put the terminal in raw mode");
	c->raw = true;
	return 0;
}

void console_close(struct console *c)
{
	if (c->raw)
		tcsetattr(c->in_fd, TCSANOW, &c->saved);
	c->raw = false;
}

size_t console_filter(struct console *c, uint8_t *buf, size_t len, bool *quit)
{
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t ch = buf[i];
		if (c->escape) {
			c->escape = false;
			if (ch == 'x' || ch == 'X') {
				*quit = true;
				return out;
			}
			if (ch == CTRL_A)
				buf[out++] = ch; /* other escapes are swallowed, as QEMU does */
		} else if (ch == CTRL_A) {
			c->escape = true;
		} else {
			buf[out++] = ch;
		}
	}
	return out;
}
