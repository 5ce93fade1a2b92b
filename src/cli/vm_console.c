/*
 * `ligero vm console NAME`: the terminal on the VM's serial console socket. The VMM serves any
 * number of watchers and replays its recent output to each new one, so attaching late still
 * shows the boot. Ctrl-] (0x1d, as in virsh and telnet) detaches; so does the end of input when
 * stdin is no terminal (a script's pipe). The terminal is in raw mode meanwhile (Ctrl-C goes to
 * the guest) and is restored however this ends.
 */
#include "cli/cli.h"
#include "cli/vm.h"
#include "host/qmp_client.h"
#include "host/runtime.h"
#include "util/error.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define DETACH 0x1d /* Ctrl-] */

static struct termios saved;
static bool raw;
static volatile sig_atomic_t stop_sig;

static void restore_tty(void)
{
	if (raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	raw = false;
}

static void on_signal(int sig)
{
	stop_sig = sig;
}

static void make_raw(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) < 0)
		return;
	t = saved;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
		raw = true;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Relay until detach (0), the VM's end (1), or an error (-1). */
static int relay(int sock)
{
	char buf[16384];

	for (;;) {
		struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
				      {.fd = sock, .events = POLLIN}};
		if (stop_sig)
			return 0;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p[1].revents) {
			ssize_t n = read(sock, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return 1;
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				return -1;
		}
		if (p[0].revents) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			char *esc;
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return 0; /* end of input: a script is done typing */
			esc = memchr(buf, DETACH, (size_t)n);
			if (write_all(sock, buf, esc ? (size_t)(esc - buf) : (size_t)n) < 0)
				return 1;
			if (esc)
				return 0;
		}
	}
}

int vm_console_attach(const struct vm_cli *o)
{
	char *path = registry_path(&o->reg, o->name, REG_CONSOLE);
	struct sigaction sa = {.sa_handler = on_signal};
	bool tty = isatty(STDIN_FILENO);
	int sock, how;

	if (!path)
		return vm_cli_fail(o, -ENOMEM);
	sock = qmp_unix_connect(path, 5000);
	free(path);
	if (sock < 0)
		return vm_cli_fail(o, sock);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (tty)
		fprintf(stderr, "[%s's console; Ctrl-] detaches]\r\n", o->name);
	make_raw();
	how = relay(sock);
	restore_tty();
	close(sock);
	if (how == 1)
		fprintf(stderr, "%s[%s's console closed: the VM stopped]\n", tty ? "\r\n" : "",
			o->name);
	else if (tty)
		fprintf(stderr, "\r\n[detached from %s's console; it keeps running]\n", o->name);
	return how < 0 ? cli_fail("%s: the console connection failed: %s", o->verb, strerror(errno))
		       : 0;
}

int vm_console_main(int argc, char **argv)
{
	struct vm_cli o = {.verb = "vm console"};
	struct vm_status st;
	struct vmdef d;
	int ret;

	if ((ret =
		 vm_cli_parse(&o,
			      "console NAME\n\nAttaches to the VM's serial console (its recent "
			      "output first); Ctrl-]\ndetaches and leaves the VM running. Many may "
			      "watch at once.\n",
			      argc, argv, NULL, false, true, NULL, NULL)))
		return ret < 0 ? 0 : ret;
	if ((ret = registry_load(&o.reg, o.name, &d)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	vmdef_free(&d);
	if ((ret = vm_status_get(&o.reg, o.name, 1000, &st)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	if (st.state == VM_DEFINED || st.state == VM_STOPPED || st.state == VM_CRASHED)
		return vm_cli_done(&o, vm_cli_fail(&o, err_set(EINVAL, "%s is not running (%s)",
							       o.name, vm_state_name(st.state))));
	return vm_cli_done(&o, vm_console_attach(&o));
}
