/* `ligero run`: boot a Linux kernel in a KVM virtual machine. */
#include "cli/cli.h"
#include "cli/run_boot.h"
#include "cli/run_devices.h"
#include "cli/run_files.h"
#include "vmm/acpi.h"
#include "vmm/vm.h"
#include "vmm/virtio/vmdev.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Signals. SIGTERM (and SIGINT when stdin is not a terminal, as from systemd, a script or
 * `kill -INT`) presses the guest's power button and arms a timer of --stop-timeout seconds;
 * when it fires, or on a second such signal, the VM is stopped where it stands. SIGHUP, and
 * SIGINT on a terminal (where raw mode sends Ctrl-C to the guest, so it came from elsewhere),
 * stop it at once, as ever. Handlers only touch atomics, alarm() and vm.h's async-signal-safe
 * calls. */
static struct vm *running;
static unsigned stop_timeout = 60;
static bool stdin_tty;
static int graceful_signal; /* the signal that pressed the button (atomic) */
static volatile sig_atomic_t stop_signal, timed_out;

static void on_signal(int sig)
{
	int none = 0, saved = errno; /* the eventfd writes below may change it */
	bool graceful = sig == SIGTERM || (sig == SIGINT && !stdin_tty);

	if (!running)
		return;
	if (graceful && stop_timeout > 0 &&
	    __atomic_compare_exchange_n(&graceful_signal, &none, sig, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST)) {
		alarm(stop_timeout);
		vm_press_power_button(running);
	} else {
		stop_signal = sig;
		vm_request_stop(running, VM_EXIT_SIGNAL);
	}
	errno = saved;
}

static void on_alarm(int sig)
{
	int saved = errno;

	(void)sig;
	if (!running)
		return;
	timed_out = 1;
	vm_request_stop(running, VM_EXIT_SIGNAL);
	errno = saved;
}

static void catch_signals(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGALRM};
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&sa.sa_mask, sigs[i]);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sa.sa_handler = sigs[i] == SIGALRM ? on_alarm : on_signal;
		sigaction(sigs[i], &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN); /* a console reader that goes away must not kill the VMM */
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGINT:
		return "SIGINT";
	case SIGTERM:
		return "SIGTERM";
	case SIGHUP:
		return "SIGHUP";
	}
	return "a signal";
}

/* Record a failure's line (printed on stderr, and kept for --exit-status-file). */
static void __attribute__((format(printf, 4, 5)))
exit_fail(struct run_exit *e, const char *reason, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	e->reason = reason;
	e->status = status;
	cli_fail("%s", e->message);
}

/* How the VM ended: the exit status, the reason and line for --exit-status-file, and the line
 * on stderr where it is a failure. */
static void run_status(enum vm_exit why, const char *msg, struct run_exit *e)
{
	int graceful = __atomic_load_n(&graceful_signal, __ATOMIC_SEQ_CST);

	e->reason = vm_exit_reason(why);
	e->status = 0;
	snprintf(e->message, sizeof(e->message), "%s", msg);
	if (why == VM_EXIT_POWEROFF || why == VM_EXIT_RESET || why == VM_EXIT_QUIT)
		return; /* after the power button too: that is the clean way out; or Ctrl-A x */
	if (why != VM_EXIT_SIGNAL)
		return exit_fail(e, e->reason, 1, "%s", msg);
	if (timed_out)
		return exit_fail(e, "stop-timeout", 1,
				 "the guest did not power off within %u s of %s; stopped it",
				 stop_timeout, signal_name(graceful));
	e->signal = stop_signal;
	if (graceful)
		return exit_fail(e, "killed-by-signal", 128 + stop_signal,
				 "%s after %s, before the guest powered off; stopped it",
				 signal_name(stop_signal), signal_name(graceful));
	/* killed, like any process: not a clean guest exit */
	e->reason = "killed-by-signal";
	e->status = 128 + stop_signal;
	snprintf(e->message, sizeof(e->message), "stopped by %s", signal_name(stop_signal));
}

static int parse_timeout(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || v > 86400 * 365)
		return cli_fail("--stop-timeout '%s' is not a number of seconds (0 to 31536000)",
				s);
	*out = v;
	return 0;
}

/* LIGERO_STATS=1 prints the VM's exit and start-up statistics on stderr; LIGERO_STATS=/PATH
 * appends them to PATH instead, which keeps stderr for the guest's verdict. */
static void print_stats(const struct vm *vm)
{
	const char *to = getenv("LIGERO_STATS");
	FILE *f;

	if (!to || !*to)
		return;
	if (to[0] != '/') {
		vm_print_stats(vm, stderr);
		return;
	}
	if ((f = fopen(to, "a"))) {
		vm_print_stats(vm, f);
		fclose(f);
	}
}

static void run_usage(FILE *f)
{
	fputs("usage: ligero run --kernel BZIMAGE [--initrd FILE] [--cmdline STR]\n"
	      "                  [--memory 256M] [--cpus N] [--console stdio|none|FILE] [--force]\n"
	      "                  [--stop-timeout SECONDS] [--name NAME] [--qmp PATH]\n"
	      "                  [--pidfile FILE] [--exit-status-file FILE]\n"
	      "                  [--console-socket PATH] [--console-log FILE]\n"
	      "                  [--console-log-size SIZE]\n"
	      "       ligero run --dump-acpi DIR [--cpus N]\n",
	      f);
	fputs(run_devices_usage, f);
	fputs(run_boot_usage, f);
	fputs(
	    "\n"
	    "Boots a Linux bzImage on KVM with the guest's serial console on stdio (or FILE).\n"
	    "Without --kernel, boots the first disk's own kernel as its boot loader would.\n"
	    "On a terminal, Ctrl-A x quits. SIGTERM (and SIGINT without a terminal) presses the\n"
	    "guest's ACPI power button; if the guest has not powered off --stop-timeout seconds\n"
	    "later (default 60; 0: stop at once), or on a second signal, ligero stops it.\n"
	    "Exit status 0 when the guest powers off or reboots (after SIGTERM too) or on\n"
	    "Ctrl-A x or QMP quit; 1 on a guest panic, triple fault, KVM error, disk flush error\n"
	    "or when the stop timeout ran out; 128+N when signal N stopped the guest.\n"
	    "--qmp serves QMP (docs/qmp.md) on a UNIX socket; --console-socket lets any number\n"
	    "of clients attach to the console (the last 64 KiB first); --console-log appends\n"
	    "all console output to FILE, rotated to FILE.1 at --console-log-size (1M);\n"
	    "--pidfile is written once the sockets listen; --exit-status-file gets how the VM\n"
	    "ended as JSON. --dump-acpi writes the ACPI tables as DIR/SIG.dat (for iasl to\n"
	    "disassemble) and exits. See docs/ligero-run.md.\n",
	    f);
}

static int parse_cpus(const char *s, unsigned *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 254)
		return cli_fail("--cpus '%s' is not a CPU count (1 to 254)", s);
	*out = v;
	return 0;
}

static int open_console(const char *spec, struct vm_config *cfg)
{
	if (!strcmp(spec, "stdio")) {
		cfg->console_in = STDIN_FILENO;
		cfg->console_out = STDOUT_FILENO;
		return 0;
	}
	cfg->console_in = -1;
	if (!strcmp(spec, "none")) { /* detached: the log and the socket are the console */
		cfg->console_out = -1;
		return 0;
	}
	cfg->console_out = open(spec, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (cfg->console_out < 0)
		return cli_fail("--console %s: %s", spec, strerror(errno));
	return 0;
}

/* Names as `ligero vm` takes them: letters, digits, '-', '_', '.', 1 to 64 of them. */
static int check_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789-_.") != n)
		return cli_fail("--name '%s': a name is 1 to 64 letters, digits, '-', '_' or '.'",
				name);
	return 0;
}

/* The main thread's name, which ps and top show: the VM's name. */
static void set_title(const char *name)
{
	char title[16];

	if (!name)
		return;
	snprintf(title, sizeof(title), "%s", name);
	prctl(PR_SET_NAME, title, 0, 0, 0);
}

/* Boot, run and report. The files for supervisors: the pidfile once the sockets listen (gone
 * at exit), the exit status at the very end, after the disks are closed. */
static int run_vm(struct vm_config *cfg, struct run_boot *boot, const char *console,
		  const char *pidfile, const char *exit_file)
{
	struct run_exit e = {.reason = "error", .status = 1};
	enum vm_exit why;
	const char *msg;
	struct vm *vm;
	int ret;

	if ((exit_file && run_exit_file_clear(exit_file)) || open_console(console, cfg)) {
		run_boot_release(boot, cfg);
		return 1;
	}
	vm_devices_set_cpus(cfg->devices, cfg->cpus);
	ret = vm_create(cfg, &vm);
	run_boot_release(boot, cfg);
	if (ret < 0) {
		snprintf(e.message, sizeof(e.message), "%s", err_msg_or(ret));
		cli_fail("%s", e.message);
		if (exit_file)
			run_exit_file_write(exit_file, &e);
		return 1;
	}
	run_devices_notice(cfg->devices);
	set_title(cfg->name);
	if (pidfile && run_pidfile_write(pidfile)) {
		vm_destroy(vm);
		return 1;
	}
	stdin_tty = isatty(STDIN_FILENO);
	running = vm;
	catch_signals();
	ret = vm_run(vm, &why, &msg);
	running = NULL;
	alarm(0);
	print_stats(vm);
	if (ret < 0) {
		snprintf(e.message, sizeof(e.message), "%s", err_msg_or(ret));
		cli_fail("%s", e.message);
		e.reason = "disk-error";
	} else {
		run_status(why, msg, &e);
	}
	vm_destroy(vm);
	if (pidfile)
		run_pidfile_remove(pidfile);
	if (exit_file)
		run_exit_file_write(exit_file, &e);
	return e.status;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'a'},
	    {"memory", required_argument, NULL, 'm'},
	    {"cpus", required_argument, NULL, 'c'},
	    {"console", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'},
	    {"stop-timeout", required_argument, NULL, 't'},
	    {"dump-acpi", required_argument, NULL, 'd'},
	    {"name", required_argument, NULL, 'N'},
	    {"qmp", required_argument, NULL, 'Q'},
	    {"console-socket", required_argument, NULL, 'S'},
	    {"console-log", required_argument, NULL, 'L'},
	    {"console-log-size", required_argument, NULL, 'Z'},
	    {"pidfile", required_argument, NULL, 'P'},
	    {"exit-status-file", required_argument, NULL, 'E'},
	    {"boot-entry", required_argument, NULL, 'e'},
	    {"list-boot-entries", no_argument, NULL, 'B'},
	    {"output", required_argument, NULL, 'O'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct vm_config cfg = {.mem_size = 256ull << 20, .cpus = 1, .cmdline = ""};
	struct run_boot boot = {0};
	const char *console = "stdio", *dump = NULL, *pidfile = NULL, *exit_file = NULL;
	int c, ret;

	if (run_devices_options(&argc, argv, &cfg.devices))
		return 1;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg.kernel = optarg;
			break;
		case 'i':
			cfg.initrd = optarg;
			break;
		case 'a':
			cfg.cmdline = optarg;
			break;
		case 'm':
			if (cli_parse_size("--memory", optarg, &cfg.mem_size))
				return 1;
			break;
		case 'c':
			if (parse_cpus(optarg, &cfg.cpus))
				return 1;
			break;
		case 'o':
			console = optarg;
			break;
		case 'f':
			cfg.force = true;
			break;
		case 'e':
			boot.entry = optarg;
			break;
		case 'B':
			boot.list = true;
			break;
		case 'O':
			if (run_boot_output(&boot, optarg))
				return 1;
			break;
		case 't':
			if (parse_timeout(optarg, &stop_timeout))
				return 1;
			break;
		case 'd':
			dump = optarg;
			break;
		case 'N':
			if (check_name(optarg))
				return 1;
			cfg.name = optarg;
			break;
		case 'Q':
			cfg.qmp_path = optarg;
			break;
		case 'S':
			cfg.console_socket = optarg;
			break;
		case 'L':
			cfg.console_log = optarg;
			break;
		case 'Z':
			if (cli_parse_size("--console-log-size", optarg, &cfg.console_log_max))
				return 1;
			if (cfg.console_log_max < 4096)
				return cli_fail("--console-log-size '%s' is below 4096 bytes",
						optarg);
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'E':
			exit_file = optarg;
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			return cli_opt_error("run", c, argv, opts);
		}
	}
	if (optind < argc)
		return cli_usage_fail("run", "unexpected argument '%s'", argv[optind]);
	if (dump)
		return (ret = acpi_dump(dump, cfg.cpus)) < 0 ? cli_fail_err(ret) : 0;
	if ((ret = run_boot_prepare(&cfg, &boot)) != 0) {
		if (ret > 0 && exit_file) {
			struct run_exit e = {.reason = "error", .status = 1};

			snprintf(e.message, sizeof(e.message), "no kernel to boot (see stderr)");
			run_exit_file_write(exit_file, &e);
		}
		return ret < 0 ? 0 : ret;
	}
	ret = run_vm(&cfg, &boot, console, pidfile, exit_file);
	return ret;
}
