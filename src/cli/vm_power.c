/* `ligero vm start`, `stop`, `restart`, `kill`, `run` and `autostart`. */
#include "cli/cli.h"
#include "cli/vm.h"
#include "host/lifecycle.h"
#include "util/error.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A start that has not seen the guest run after this long gives up waiting (a hang guard: VMs
 * report running within a second or two, the emulated host's nested ones within a minute). */
#define START_TIMEOUT_MS (300 * 1000)

enum { OPT_CONSOLE = 0x100, OPT_TIMEOUT, OPT_FORCE };

struct power_opts {
	bool console, force;
	int timeout;
	const char *verb;
};

static int power_opt(int c, const char *arg, void *priv)
{
	struct power_opts *p = priv;
	char *end;
	long v;

	switch (c) {
	case OPT_CONSOLE:
		p->console = true;
		return 0;
	case OPT_FORCE:
		p->force = true;
		return 0;
	case OPT_TIMEOUT:
		v = strtol(arg, &end, 10);
		if (*end || end == arg || v < 0 || v > 86400)
			return cli_usage_fail(p->verb,
					      "--timeout '%s' is not a number of seconds "
					      "(0 to 86400)",
					      arg);
		p->timeout = (int)v;
		return 0;
	}
	return 1;
}

static int start_one(const struct vm_cli *o, const char *name)
{
	struct vmdef d;
	pid_t pid;
	int ret;

	if ((ret = registry_load(&o->reg, name, &d)) < 0)
		return ret;
	ret = vm_start(&o->reg, &d, vm_cli_exe(), START_TIMEOUT_MS, &pid);
	vmdef_free(&d);
	if (ret == 0)
		printf("%s: running (pid %d)\n", name, (int)pid);
	return ret;
}

int vm_start_main(int argc, char **argv)
{
	static const struct option opts[] = {{"console", no_argument, NULL, OPT_CONSOLE}, {0}};
	struct vm_cli o = {.verb = "vm start"};
	struct power_opts p = {.verb = o.verb};
	int ret;

	if ((ret = vm_cli_parse(&o,
				"start NAME [--console]\n\nReturns once the guest runs; --console "
				"then attaches to its console.\n",
				argc, argv, opts, false, true, power_opt, &p)))
		return ret < 0 ? 0 : ret;
	if ((ret = start_one(&o, o.name)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	fflush(stdout);
	if (p.console)
		return vm_cli_done(&o, vm_console_attach(&o));
	return vm_cli_done(&o, 0);
}

static void print_exit(const char *name, const struct vm_exit *e)
{
	if (!e->present)
		printf("%s: stopped\n", name);
	else if (e->message[0])
		printf("%s: %s (%s: %s)\n", name, e->crashed ? "crashed" : "stopped", e->reason,
		       e->message);
	else
		printf("%s: %s (%s)\n", name, e->crashed ? "crashed" : "stopped", e->reason);
}

static const char stop_usage[] =
    "stop NAME [--timeout SECONDS] [--force]\n"
    "\n"
    "Presses the guest's ACPI power button and waits up to --timeout seconds\n"
    "(default 60) for it to power off, then stops it hard; --force stops it hard at once.\n";

int vm_stop_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"force", no_argument, NULL, OPT_FORCE},
	    {0},
	};
	struct vm_cli o = {.verb = "vm stop"};
	struct power_opts p = {.verb = o.verb, .timeout = 60};
	struct vm_exit e;
	int ret;

	if ((ret = vm_cli_parse(&o, stop_usage, argc, argv, opts, false, true, power_opt, &p)))
		return ret < 0 ? 0 : ret;
	if ((ret = vm_stop(&o.reg, o.name, p.timeout, p.force, &e)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	print_exit(o.name, &e);
	return vm_cli_done(&o, 0);
}

int vm_restart_main(int argc, char **argv)
{
	static const struct option opts[] = {{"timeout", required_argument, NULL, OPT_TIMEOUT},
					     {0}};
	struct vm_cli o = {.verb = "vm restart"};
	struct power_opts p = {.verb = o.verb, .timeout = 60};
	struct vm_status st;
	struct vm_exit e;
	int ret;

	if ((ret = vm_cli_parse(&o,
				"restart NAME [--timeout SECONDS]\n\nStops the VM as 'stop' does "
				"(if it runs) and starts it again, with\nits definition as it is "
				"now.\n",
				argc, argv, opts, false, true, power_opt, &p)))
		return ret < 0 ? 0 : ret;
	if ((ret = vm_status_get(&o.reg, o.name, 2000, &st)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	if (st.state != VM_DEFINED && st.state != VM_STOPPED && st.state != VM_CRASHED) {
		if ((ret = vm_stop(&o.reg, o.name, p.timeout, false, &e)) < 0)
			return vm_cli_done(&o, vm_cli_fail(&o, ret));
		print_exit(o.name, &e);
	}
	if ((ret = start_one(&o, o.name)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	return vm_cli_done(&o, 0);
}

int vm_kill_main(int argc, char **argv)
{
	struct vm_cli o = {.verb = "vm kill"};
	struct vm_exit e;
	int ret;

	if ((ret = vm_cli_parse(&o,
				"kill NAME\n\nStops the VM where it stands (QMP quit, then "
				"SIGKILL), like pulling the plug.\n",
				argc, argv, NULL, false, true, NULL, NULL)))
		return ret < 0 ? 0 : ret;
	if ((ret = vm_kill(&o.reg, o.name, &e)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	printf("%s: killed\n", o.name);
	return vm_cli_done(&o, 0);
}

int vm_run_main(int argc, char **argv)
{
	struct vm_cli o = {.verb = "vm run"};
	struct vmdef d;
	int ret;

	if ((ret = vm_cli_parse(&o,
				"run NAME\n\nRuns the VM in the foreground (this process becomes "
				"the VM), as the\nsystemd unit ligero-vm@NAME.service does; its "
				"console is on its socket.\n",
				argc, argv, NULL, false, true, NULL, NULL)))
		return ret < 0 ? 0 : ret;
	if ((ret = registry_load(&o.reg, o.name, &d)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	fflush(NULL);
	ret = vm_run_exec(&o.reg, &d, vm_cli_exe());
	vmdef_free(&d);
	return vm_cli_done(&o, vm_cli_fail(&o, ret));
}

int vm_autostart_main(int argc, char **argv)
{
	struct vm_cli o = {.verb = "vm autostart"};
	char **names;
	size_t n;
	int ret, failed = 0;

	if ((ret = vm_cli_parse(&o,
				"autostart\n\nStarts every VM whose definition has autostart and "
				"that is not running,\nas ligero-autostart.service does at boot.\n",
				argc, argv, NULL, false, false, NULL, NULL)))
		return ret < 0 ? 0 : ret;
	if ((ret = registry_names(&o.reg, &names, &n)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	for (size_t i = 0; i < n; i++) {
		struct vmdef d;
		struct vm_status st;

		if ((ret = registry_load(&o.reg, names[i], &d)) < 0) {
			failed++;
			vm_cli_fail(&o, ret);
			continue;
		}
		bool want = d.autostart;
		vmdef_free(&d);
		if (!want)
			continue;
		if ((ret = vm_status_get(&o.reg, names[i], 2000, &st)) == 0 &&
		    st.state != VM_DEFINED && st.state != VM_STOPPED && st.state != VM_CRASHED) {
			printf("%s: already %s\n", names[i], vm_state_name(st.state));
			continue;
		}
		if ((ret = start_one(&o, names[i])) < 0) {
			failed++;
			vm_cli_fail(&o, ret);
		}
		fflush(stdout);
	}
	registry_names_free(names, n);
	return vm_cli_done(&o, failed ? 1 : 0);
}
