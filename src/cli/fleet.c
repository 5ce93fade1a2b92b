/* `ligero fleet <verb>`: many VMs from one base (src/host/fleet.h). */
#include "cli/cli.h"
#include "cli/vm.h"
#include "block/block.h"
#include "host/fleet.h"
#include "util/error.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define START_TIMEOUT_MS    (300 * 1000) /* a hang guard, as vm start's */
#define LIST_QMP_TIMEOUT_MS 1000

enum {
	OPT_COUNT = 0x300,
	OPT_BASE,
	OPT_DISK_DIR,
	OPT_DISK_POOL,
	OPT_NO_SYSPREP,
	OPT_PARALLEL,
	OPT_TIMEOUT,
	OPT_FORCE,
	OPT_DISKS,
};

struct fleet_args {
	struct vm_define_opts def;
	const char *verb, *count, *base, *disk_dir, *disk_pool;
	bool no_sysprep, force, disks;
	unsigned parallel;
	int timeout;
};

static int number(const char *verb, const char *opt, const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*end || end == s || errno || v < lo || v > hi)
		return cli_usage_fail(verb, "%s '%s' is not a number from %ld to %ld", opt, s, lo,
				      hi);
	*out = v;
	return 0;
}

static int fleet_opt(int c, const char *arg, void *priv)
{
	struct fleet_args *a = priv;
	long v = 0;

	switch (c) {
	case OPT_COUNT:
		a->count = arg;
		return 0;
	case OPT_BASE:
		a->base = arg;
		return 0;
	case OPT_DISK_DIR:
		a->disk_dir = arg;
		return 0;
	case OPT_DISK_POOL:
		a->disk_pool = arg;
		return 0;
	case OPT_NO_SYSPREP:
		a->no_sysprep = true;
		return 0;
	case OPT_FORCE:
		a->force = true;
		return 0;
	case OPT_DISKS:
		a->disks = true;
		return 0;
	case OPT_PARALLEL:
		if (number(a->verb, "--parallel", arg, 1, 1024, &v))
			return 1;
		a->parallel = (unsigned)v;
		return 0;
	case OPT_TIMEOUT:
		if (number(a->verb, "--timeout", arg, 0, 86400, &v))
			return 1;
		a->timeout = (int)v;
		return 0;
	}
	return vm_define_collect(c, arg, &a->def);
}

static int parse(struct vm_cli *o, struct fleet_args *a, const char *usage, int argc, char **argv,
		 const struct option *opts, bool output)
{
	int ret;

	a->verb = o->verb;
	a->def =
	    (struct vm_define_opts){.balloon = -1, .rng = -1, .autostart = -1, .verb = o->verb};
	a->timeout = 60;
	if ((ret = vm_cli_parse(o, usage, argc, argv, opts, output, true, fleet_opt, a)))
		return ret;
	if ((ret = fleet_prefix_check(o->name, 1)) < 0) {
		vm_cli_fail(o, ret);
		return vm_cli_done(o, 1);
	}
	return 0;
}

/* ---- create ---- */

static const char create_usage[] =
    "create PREFIX --count N --base BASE [--disk-dir DIR | --disk-pool POOL] [--no-sysprep]\n"
    "       [--memory SIZE] [--cpus N] [--net bridge=BR]... [--balloon] [--rng] [--autostart]\n"
    "       [--kernel FILE [--initrd FILE] [--cmdline STR]] [--disk FILE,readonly=on]...\n"
    "\n"
    "Members PREFIX1..PREFIXN, each on its own qcow2 overlay DIR/PREFIXi.qcow2 of BASE (DIR:\n"
    "the base's directory), sysprepped before its first boot (hostname = its name, machine-id\n"
    "emptied, SSH host keys and udev net rules removed) and with its own MAC per --net.\n"
    "A base on a Ceph cluster, BASE = rbd:POOL/IMAGE@SNAP[:conf=FILE][:id=USER], gets RBD\n"
    "clones rbd:POOL/PREFIXi of that snapshot instead (--disk-pool: in another pool).\n"
    "All or nothing: on any failure nothing of the fleet is left.\n";

static int create_main(int argc, char **argv)
{
	static const struct option own[] = {
	    {"count", required_argument, NULL, OPT_COUNT},
	    {"base", required_argument, NULL, OPT_BASE},
	    {"disk-dir", required_argument, NULL, OPT_DISK_DIR},
	    {"disk-pool", required_argument, NULL, OPT_DISK_POOL},
	    {"no-sysprep", no_argument, NULL, OPT_NO_SYSPREP},
	};
	struct option opts[32];
	struct vm_cli o = {.verb = "fleet create"};
	struct fleet_args a = {0};
	struct vmdef t = {.memory = VM_DEFAULT_MEMORY, .cpus = 1};
	struct fleet_create_opts fo;
	size_t n, nown = sizeof(own) / sizeof(own[0]);
	const struct option *vmopts = vm_define_options(&n);
	long count = 0;
	int ret;

	memcpy(opts, vmopts, n * sizeof(*opts));
	memcpy(opts + n, own, nown * sizeof(*opts));
	opts[n + nown] = (struct option){0};
	if ((ret = parse(&o, &a, create_usage, argc, argv, opts, false)))
		return ret < 0 ? 0 : ret;
	if (!a.count || !a.base)
		return vm_cli_done(&o, cli_usage_fail(o.verb, "--count N and --base BASE are "
							      "needed"));
	if (number(o.verb, "--count", a.count, 1, FLEET_MAX_COUNT, &count))
		return vm_cli_done(&o, 1);
	if (!a.def.kernel && (a.def.initrd || a.def.cmdline))
		return vm_cli_done(&o, cli_usage_fail(o.verb, "--initrd and --cmdline go with "
							      "--kernel"));
	for (int i = 0; i < a.def.nnets; i++)
		if (strstr(a.def.nets[i], "mac="))
			return vm_cli_done(&o, cli_usage_fail(o.verb,
							      "--net %s: each member's MAC is "
							      "derived from its name; give no mac=",
							      a.def.nets[i]));
	snprintf(t.name, sizeof(t.name), "%s1", o.name);
	/* The member's overlay comes first; a stand-in lets the template pass vm create's
	 * checks (a VM needs a disk or a kernel), and goes before the members are made. */
	if ((ret = vmdef_add_disk(&t, &(struct vmdef_disk){.path = "/overlay",
							   .format = "qcow2",
							   .readonly = true})) < 0 ||
	    (ret = vm_define_apply(&o, &a.def, &t))) {
		vmdef_free(&t);
		return vm_cli_done(&o, ret < 0 ? vm_cli_fail(&o, ret) : ret);
	}
	free(t.disks[0].path);
	free(t.disks[0].format);
	memmove(t.disks, t.disks + 1, --t.ndisks * sizeof(*t.disks));
	fo = (struct fleet_create_opts){.prefix = o.name,
					.count = (unsigned)count,
					.base = a.base,
					.disk_dir = a.disk_dir,
					.disk_pool = a.disk_pool,
					.tmpl = &t,
					.sysprep = !a.no_sysprep};
	ret = fleet_create(&o.reg, &fo);
	vmdef_free(&t);
	if (ret < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	for (unsigned i = 1; i <= fo.count; i++) {
		char name[VMDEF_NAME_MAX + 1];
		struct vmdef d;
		fleet_member_name(o.name, i, name);
		if (registry_load(&o.reg, name, &d) < 0)
			continue;
		printf("%s: %s", name, d.disks[0].path);
		for (size_t k = 0; k < d.nnets; k++)
			printf(" %s", d.nets[k].mac);
		printf("\n");
		vmdef_free(&d);
	}
	printf("fleet %s: %ld members, %s of %s%s\n", o.name, count,
	       bdev_is_remote_name(a.base) ? "RBD clones" : "overlays", a.base,
	       a.no_sysprep ? "" : ", sysprepped");
	return vm_cli_done(&o, 0);
}

/* ---- start, stop, restart, kill ---- */

struct run_report {
	const char *verb;
	enum fleet_action action;
};

static void report(void *priv, const struct fleet_outcome *out)
{
	const struct run_report *rr = priv;
	static const char *const done[] = {"running", "stopped", "running", "killed"};

	if (out->ret < 0) {
		fflush(stdout);
		fprintf(stderr, "ligero: fleet: %s: %s\n", out->name, out->message);
	} else if (out->already) {
		printf("%s: already %s\n", out->name,
		       rr->action == FLEET_START ? "running" : "not running");
	} else if (out->pid > 0) {
		printf("%s: %s (pid %d)\n", out->name, done[rr->action], (int)out->pid);
	} else {
		printf("%s: %s\n", out->name, done[rr->action]);
	}
	fflush(stdout);
}

static const struct option run_opts[][4] = {
    [FLEET_START] = {{"parallel", required_argument, NULL, OPT_PARALLEL}, {0}},
    [FLEET_STOP] = {{"parallel", required_argument, NULL, OPT_PARALLEL},
		    {"timeout", required_argument, NULL, OPT_TIMEOUT},
		    {"force", no_argument, NULL, OPT_FORCE},
		    {0}},
    [FLEET_RESTART] = {{"parallel", required_argument, NULL, OPT_PARALLEL},
		       {"timeout", required_argument, NULL, OPT_TIMEOUT},
		       {0}},
    [FLEET_KILL] = {{"parallel", required_argument, NULL, OPT_PARALLEL}, {0}},
};

static int run_main(int argc, char **argv, enum fleet_action action, const char *verb,
		    const char *usage)
{
	const struct option *opts = run_opts[action];
	struct vm_cli o = {.verb = verb};
	struct fleet_args a = {0};
	struct run_report rr = {.verb = verb, .action = action};
	struct fleet_run_opts ro;
	char **names;
	size_t n;
	int ret;

	if ((ret = parse(&o, &a, usage, argc, argv, opts, false)))
		return ret < 0 ? 0 : ret;
	if ((ret = fleet_members(&o.reg, o.name, &names, &n)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	if (!n) {
		registry_names_free(names, n);
		return vm_cli_done(&o, vm_cli_fail(&o, err_set(ENOENT,
							       "no fleet '%s': no VM is named "
							       "%s1, %s2, ...",
							       o.name, o.name, o.name)));
	}
	ro = (struct fleet_run_opts){.action = action,
				     .parallel = a.parallel,
				     .exe = vm_cli_exe(),
				     .start_timeout_ms = START_TIMEOUT_MS,
				     .stop_timeout_s = a.timeout,
				     .force = a.force};
	ret = fleet_run(&o.reg, names, n, &ro, report, &rr);
	if (ret < 0)
		ret = vm_cli_fail(&o, ret);
	else if (ret > 0)
		ret = cli_fail("%s %s: %d of %zu members failed", verb, o.name, ret, n);
	registry_names_free(names, n);
	return vm_cli_done(&o, ret);
}

static int start_main(int argc, char **argv)
{
	return run_main(argc, argv, FLEET_START, "fleet start",
			"start PREFIX [--parallel K]\n\nStarts the members that are not "
			"running, K at once (default: the online CPUs).\n");
}

static int stop_main(int argc, char **argv)
{
	return run_main(argc, argv, FLEET_STOP, "fleet stop",
			"stop PREFIX [--parallel K] [--timeout SECONDS] [--force]\n\nStops the "
			"running members as 'vm stop' does, K at once.\n");
}

static int restart_main(int argc, char **argv)
{
	return run_main(argc, argv, FLEET_RESTART, "fleet restart",
			"restart PREFIX [--parallel K] [--timeout SECONDS]\n\nStops (if they "
			"run) and starts every member, K at once.\n");
}

static int kill_main(int argc, char **argv)
{
	return run_main(argc, argv, FLEET_KILL, "fleet kill",
			"kill PREFIX [--parallel K]\n\nStops the running members where they "
			"stand, as 'vm kill' does.\n");
}

/* ---- reset, delete ---- */

static int reset_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"no-sysprep", no_argument, NULL, OPT_NO_SYSPREP},
	    {0},
	};
	struct vm_cli o = {.verb = "fleet reset"};
	struct fleet_args a = {0};
	int ret;

	if ((ret = parse(&o, &a,
			 "reset PREFIX [--no-sysprep]\n\nGives every member a fresh overlay of "
			 "the base (sysprepped again), keeping\nits definition and MAC: the "
			 "class starts over (RBD members: a fresh clone).\nMembers must be "
			 "stopped.\n",
			 argc, argv, opts, false)))
		return ret < 0 ? 0 : ret;
	if ((ret = fleet_reset(&o.reg, o.name, !a.no_sysprep)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	printf("fleet %s: every member has a fresh overlay of its base\n", o.name);
	return vm_cli_done(&o, 0);
}

static void kept(void *priv, const char *name, const char *why)
{
	(void)priv;
	fprintf(stderr, "ligero: fleet delete: %s: disk kept: %s\n", name, why);
}

static int delete_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"disks", no_argument, NULL, OPT_DISKS},
	    {0},
	};
	struct vm_cli o = {.verb = "fleet delete"};
	struct fleet_args a = {0};
	int ret;

	if ((ret = parse(&o, &a,
			 "delete PREFIX [--disks]\n\nRemoves every member's definition; --disks "
			 "also their overlays or RBD clones (never\nthe base, nor a disk another "
			 "VM uses). "
			 "Members must be stopped ('ligero fleet stop PREFIX').\n",
			 argc, argv, opts, false)))
		return ret < 0 ? 0 : ret;
	if ((ret = fleet_delete(&o.reg, o.name, a.disks, kept, NULL)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	printf("fleet %s: deleted%s\n", o.name, a.disks ? " with its overlays" : "");
	return vm_cli_done(&o, 0);
}

/* ---- list ---- */

static bool up(enum vm_state s)
{
	return s != VM_DEFINED && s != VM_STOPPED && s != VM_CRASHED;
}

static void list_json(const struct fleet_member_info *m, size_t n)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		struct json_object *j = json_object_new_object();
		bool running = m[i].valid && up(m[i].st.state);
		json_object_object_add(j, "name", json_object_new_string(m[i].name));
		json_object_object_add(
		    j, "state",
		    json_object_new_string(m[i].valid ? vm_state_name(m[i].st.state) : "invalid"));
		json_object_object_add(
		    j, "pid", running && m[i].st.pid > 0 ? json_object_new_int(m[i].st.pid) : NULL);
		json_object_object_add(
		    j, "memory", m[i].valid ? json_object_new_int64((int64_t)m[i].memory) : NULL);
		json_object_object_add(
		    j, "rss",
		    running && m[i].rss ? json_object_new_int64((int64_t)m[i].rss) : NULL);
		json_object_object_add(j, "disk",
				       m[i].disk ? json_object_new_string(m[i].disk) : NULL);
		json_object_object_add(
		    j, "disk-size",
		    m[i].disk_actual >= 0 ? json_object_new_int64(m[i].disk_actual) : NULL);
		json_object_array_add(arr, j);
	}
	puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(arr);
}

static void list_human(const char *prefix, const struct fleet_member_info *m, size_t n)
{
	uint64_t promised = 0, all = 0, rss = 0;
	size_t running = 0;
	char a[32], b[32], c[32], pid[16];

	printf("%-16s %-12s %8s %7s %7s %7s  %s\n", "NAME", "STATE", "PID", "MEMORY", "RSS", "DISK",
	       "OVERLAY");
	for (size_t i = 0; i < n; i++) {
		bool on = m[i].valid && up(m[i].st.state);
		snprintf(pid, sizeof(pid), "%d", (int)m[i].st.pid);
		printf("%-16s %-12s %8s %7s %7s %7s  %s\n", m[i].name,
		       m[i].valid ? vm_state_name(m[i].st.state) : "invalid",
		       on && m[i].st.pid > 0 ? pid : "-",
		       m[i].valid ? vm_cli_size(m[i].memory, a, sizeof(a)) : "-",
		       on && m[i].rss ? vm_cli_size(m[i].rss, b, sizeof(b)) : "-",
		       m[i].disk_actual >= 0 ? vm_cli_size((uint64_t)m[i].disk_actual, c, sizeof(c))
					     : "-",
		       m[i].disk ? m[i].disk : "-");
		all += m[i].memory;
		if (on) {
			running++;
			promised += m[i].memory;
			rss += m[i].rss;
		}
	}
	printf("fleet %s: %zu members, %zu running; memory promised %s (%s if all run), "
	       "VM processes' RSS %s\n",
	       prefix, n, running, vm_cli_size(promised, a, sizeof(a)),
	       vm_cli_size(all, b, sizeof(b)), vm_cli_size(rss, c, sizeof(c)));
}

static int list_main(int argc, char **argv)
{
	struct vm_cli o = {.verb = "fleet list"};
	struct fleet_args a = {0};
	struct fleet_member_info *m;
	size_t n;
	int ret;

	if ((ret = parse(&o, &a,
			 "list PREFIX [--output=json]\n\nOne row per member (state, pid, "
			 "memory promised, RSS, overlay and its size\non the host), then the "
			 "fleet's totals.\n",
			 argc, argv, NULL, true)))
		return ret < 0 ? 0 : ret;
	if ((ret = fleet_info(&o.reg, o.name, LIST_QMP_TIMEOUT_MS, &m, &n)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	if (!n && !o.json) {
		fleet_info_free(m, n);
		return vm_cli_done(&o, vm_cli_fail(&o, err_set(ENOENT,
							       "no fleet '%s': no VM is named "
							       "%s1, %s2, ...",
							       o.name, o.name, o.name)));
	}
	if (o.json)
		list_json(m, n);
	else
		list_human(o.name, m, n);
	fleet_info_free(m, n);
	return vm_cli_done(&o, 0);
}

/* ---- dispatch ---- */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} verbs[] = {
    {"create", create_main,
     "create PREFIX --count N --base BASE [--disk-dir DIR | --disk-pool POOL] [--no-sysprep] "
     "[vm create options]"},
    {"start", start_main, "start PREFIX [--parallel K]"},
    {"stop", stop_main, "stop PREFIX [--parallel K] [--timeout SECONDS] [--force]"},
    {"restart", restart_main, "restart PREFIX [--parallel K] [--timeout SECONDS]"},
    {"kill", kill_main, "kill PREFIX [--parallel K]"},
    {"reset", reset_main, "reset PREFIX [--no-sysprep]  (fresh overlays: the class starts over)"},
    {"list", list_main, "list PREFIX [--output=json]"},
    {"delete", delete_main, "delete PREFIX [--disks]"},
};

static void fleet_usage(FILE *f)
{
	fputs("usage: ligero fleet <verb> PREFIX [options]\n\n"
	      "Many VMs from one base image: members PREFIX1..PREFIXN, each on its own qcow2\n"
	      "overlay, sysprepped, handled together. Every verb takes --state-dir DIR.\n"
	      "Options go before or after the operands; '--' ends them.\n\nverbs:\n",
	      f);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %s\n", verbs[i].help);
}

int cmd_fleet(int argc, char **argv)
{
	if (argc < 2) {
		fleet_usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fleet_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].fn(argc - 1, argv + 1);
	return cli_fail("unknown fleet verb '%s' (see 'ligero fleet --help')", argv[1]);
}
