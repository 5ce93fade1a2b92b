/* `ligero run`: boot a Linux kernel in a KVM virtual machine. */
#include "cli/cli.h"
#include "cli/run_boot.h"
#include "cli/run_devices.h"
#include "vmm/vm.h"
#include "vmm/virtio/vmdev.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct vm *running;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
	if (running)
		vm_request_stop(running, VM_EXIT_QUIT);
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
	      "                  [--memory 256M] [--cpus N] [--console stdio|FILE] [--force]\n",
	      f);
	fputs(run_devices_usage, f);
	fputs(run_boot_usage, f);
	fputs(
	    "\n"
	    "Boots a Linux bzImage on KVM with the guest's serial console on stdio (or FILE).\n"
	    "Without --kernel, boots the first disk's own kernel as its boot loader would.\n"
	    "On a terminal, Ctrl-A x quits. Exit status 0 when the guest powers off or reboots\n"
	    "(or on Ctrl-A x), 1 on a guest panic, triple fault or KVM error, 128+N on signal N.\n"
	    "See docs/ligero-run.md.\n",
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
	cfg->console_out = open(spec, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (cfg->console_out < 0)
		return cli_fail("--console %s: %s", spec, strerror(errno));
	return 0;
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
	    {"boot-entry", required_argument, NULL, 'e'},
	    {"list-boot-entries", no_argument, NULL, 'L'},
	    {"output", required_argument, NULL, 'O'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct vm_config cfg = {.mem_size = 256ull << 20, .cpus = 1, .cmdline = ""};
	struct run_boot boot = {0};
	const char *console = "stdio", *msg;
	struct sigaction sa = {.sa_handler = on_signal};
	enum vm_exit why;
	struct vm *vm;
	int c, ret;

	if (run_devices_options(&argc, argv, &cfg.devices))
		return 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
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
		case 'L':
			boot.list = true;
			break;
		case 'O':
			if (run_boot_output(&boot, optarg))
				return 1;
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			run_usage(stderr);
			return 1;
		}
	}
	if (optind < argc)
		return cli_fail("unexpected argument '%s' (see 'ligero run --help')", argv[optind]);
	if ((ret = run_boot_prepare(&cfg, &boot)) != 0)
		return ret < 0 ? 0 : ret;
	if (open_console(console, &cfg)) {
		run_boot_release(&boot, &cfg);
		return 1;
	}
	ret = vm_create(&cfg, &vm);
	run_boot_release(&boot, &cfg);
	if (ret < 0)
		return cli_fail_err(ret);

	sigemptyset(&sa.sa_mask);
	running = vm;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a console reader that goes away must not kill the VMM */
	ret = vm_run(vm, &why, &msg);
	running = NULL;
	print_stats(vm);
	if (ret < 0) {
		vm_destroy(vm);
		return cli_fail_err(ret);
	}
	ret = why == VM_EXIT_POWEROFF || why == VM_EXIT_RESET || why == VM_EXIT_QUIT ? 0 : 1;
	if (ret)
		cli_fail("%s", msg);
	else if (why == VM_EXIT_QUIT && stop_signal)
		ret = 128 + stop_signal; /* killed, like any process: not a clean guest exit */
	vm_destroy(vm);
	return ret;
}
