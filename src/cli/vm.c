/* `ligero vm <verb>`: dispatch, the options every verb takes, and small printing helpers. */
#include "cli/vm.h"
#include "cli/cli.h"
#include "util/error.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} verbs[] = {
    {"create", vm_create_main,
     "create NAME [--disk FILE[,OPTS]]... [--kernel FILE [--initrd FILE] [--cmdline STR]]\n"
     "         [--memory SIZE] [--cpus N] [--net bridge=BR|tap=TAP[,mac=MAC]]... [--balloon]\n"
     "         [--rng] [--autostart]"},
    {"start", vm_start_main, "start NAME [--console]"},
    {"stop", vm_stop_main, "stop NAME [--timeout SECONDS] [--force]"},
    {"restart", vm_restart_main, "restart NAME [--timeout SECONDS]"},
    {"kill", vm_kill_main, "kill NAME"},
    {"list", vm_list_main, "list [--output=json] [--names]"},
    {"show", vm_show_main, "show NAME [--output=json]"},
    {"console", vm_console_main, "console NAME               (Ctrl-] detaches)"},
    {"edit", vm_edit_main, "edit NAME [--memory SIZE] [--cpus N] ... (no option: $EDITOR)"},
    {"delete", vm_delete_main, "delete NAME [--disks]"},
    {"monitor", vm_monitor_main, "monitor NAME               (prints its QMP socket)"},
    {"run", vm_run_main, "run NAME                   (in the foreground, as systemd runs it)"},
    {"autostart", vm_autostart_main, "autostart                  (starts the VMs marked so)"},
};

static void vm_usage(FILE *f)
{
	fputs("usage: ligero vm <verb> [options]\n\n"
	      "VMs defined once and started, stopped and reached by name; one process per VM,\n"
	      "controlled through its QMP socket. Every verb takes --state-dir DIR.\n"
	      "Options go before or after the operands; '--' ends them.\n\nverbs:\n",
	      f);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %s\n", verbs[i].help);
}

int cmd_vm(int argc, char **argv)
{
	if (argc < 2) {
		vm_usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		vm_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].fn(argc - 1, argv + 1);
	return cli_fail("unknown vm verb '%s' (see 'ligero vm --help')", argv[1]);
}

enum { OPT_STATE_DIR = 0x200, OPT_OUTPUT, OPT_HELP };

int vm_cli_parse(struct vm_cli *o, const char *usage, int argc, char **argv,
		 const struct option *opts, bool output, bool name_needed,
		 int (*cb)(int c, const char *arg, void *priv), void *priv)
{
	struct option all[40];
	size_t n = 0;
	int c, ret;

	for (; opts && opts[n].name && n < 36; n++)
		all[n] = opts[n];
	all[n++] = (struct option){"state-dir", required_argument, NULL, OPT_STATE_DIR};
	all[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	if (output)
		all[n++] = (struct option){"output", required_argument, NULL, OPT_OUTPUT};
	all[n] = (struct option){0};
	o->state_dir = NULL;
	o->json = false;
	o->name = NULL;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":h", all, NULL)) != -1) {
		switch (c) {
		case 'h':
		case OPT_HELP:
			printf("usage: ligero %s %s\n       [--state-dir DIR]\n", o->verb, usage);
			return -1;
		case OPT_STATE_DIR:
			o->state_dir = optarg;
			break;
		case OPT_OUTPUT:
			if (strcmp(optarg, "json") && strcmp(optarg, "human"))
				return cli_usage_fail(
				    o->verb, "--output must be 'human' or 'json', not '%s'",
				    optarg);
			o->json = !strcmp(optarg, "json");
			break;
		case '?':
		case ':':
			return cli_opt_error(o->verb, c, argv, all);
		default:
			if ((ret = cb ? cb(c, optarg, priv) : 1))
				return ret;
		}
	}
	if (name_needed && optind >= argc)
		return cli_usage_fail(o->verb, "the VM's NAME is missing");
	if (optind + (name_needed ? 1 : 0) < argc)
		return cli_usage_fail(o->verb, "unexpected argument '%s'",
				      argv[optind + (name_needed ? 1 : 0)]);
	if (name_needed) {
		o->name = argv[optind];
		if ((ret = vmdef_name_check(o->name)) < 0)
			return vm_cli_fail(o, ret);
	}
	if ((ret = registry_open(&o->reg, o->state_dir)) < 0)
		return vm_cli_fail(o, ret);
	return 0;
}

int vm_cli_done(struct vm_cli *o, int rc)
{
	registry_close(&o->reg);
	return rc;
}

int vm_cli_fail(const struct vm_cli *o, int ret)
{
	fflush(stdout);
	return cli_fail("%s: %s", o->verb, err_msg_or(ret));
}

const char *vm_cli_exe(void)
{
	const char *e = getenv("LIGERO_VM_EXEC");

	return e && *e ? e : "/proc/self/exe";
}

char *vm_cli_duration(double seconds, char *buf, size_t len)
{
	unsigned long s = seconds > 0 ? (unsigned long)seconds : 0;

	if (s >= 86400)
		snprintf(buf, len, "%lud %02lu:%02lu:%02lu", s / 86400, s / 3600 % 24, s / 60 % 60,
			 s % 60);
	else
		snprintf(buf, len, "%02lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	return buf;
}

char *vm_cli_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64, bytes);
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (v >= 100 || v == (double)(uint64_t)v)
		snprintf(buf, len, "%.0f%c", v, units[u]);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
	return buf;
}
