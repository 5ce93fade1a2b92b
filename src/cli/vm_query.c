/* `ligero vm list`, `show` and `monitor`: what the definitions, runtime files, /proc and each
 * VM's QMP socket say, with short QMP timeouts so that one stuck VM never stalls the listing. */
#include "cli/cli.h"
#include "cli/vm.h"
#include "host/ksm.h"
#include "host/procinfo.h"
#include "host/qmp_client.h"
#include "host/runtime.h"
#include "util/error.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per VM, for list (a stuck VM costs this once) and show. */
#define LIST_QMP_TIMEOUT_MS 1000

struct row {
	char *name;
	bool valid;
	struct vmdef def;
	struct vm_status st;
	bool has_usage;
	struct proc_usage u;
};

static bool is_up(enum vm_state s)
{
	return s != VM_DEFINED && s != VM_STOPPED && s != VM_CRASHED;
}

/* The running ligero VMs as src/host/ksm.c sees them (its per-VM KSM figures), for list and
 * show; a VM it does not know (a stand-in VMM) keeps procinfo's figures, from the same files. */
static struct ksm_vm *ksm_vms;
static size_t ksm_nvms;

static void use_ksm_figures(struct row *r)
{
	for (size_t i = 0; i < ksm_nvms; i++)
		if (ksm_vms[i].pid == r->st.pid && ksm_vms[i].merging_pages >= 0)
			r->u.ksm_shared = ksm_vms[i].merging_pages * sysconf(_SC_PAGESIZE);
}

static void usage_of(struct row *r)
{
	if (!is_up(r->st.state) || r->st.pid <= 0 || proc_usage_get("/proc", r->st.pid, &r->u) < 0)
		return;
	r->has_usage = true;
	use_ksm_figures(r);
}

static void fill_row(const struct vm_cli *o, struct row *r)
{
	int ret = registry_load(&o->reg, r->name, &r->def);

	if (ret < 0) {
		fprintf(stderr, "ligero: %s: %s\n", o->verb, err_msg_or(ret));
		return;
	}
	r->valid = true;
	if (vm_status_get(&o->reg, r->name, LIST_QMP_TIMEOUT_MS, &r->st) < 0) {
		r->st.state = VM_UNRESPONSIVE;
		return;
	}
	usage_of(r);
}

static const char *state_text(const struct row *r, char *buf, size_t len)
{
	if (!r->valid)
		return "invalid";
	if ((r->st.state == VM_STOPPED || r->st.state == VM_CRASHED) && r->st.last.present)
		snprintf(buf, len, "%s (%s)", vm_state_name(r->st.state), r->st.last.reason);
	else
		snprintf(buf, len, "%s", vm_state_name(r->st.state));
	return buf;
}

static struct json_object *json_row(const struct row *r)
{
	struct json_object *j = json_object_new_object();
	bool usage = r->has_usage;

	json_object_object_add(j, "name", json_object_new_string(r->name));
	json_object_object_add(
	    j, "state", json_object_new_string(r->valid ? vm_state_name(r->st.state) : "invalid"));
	json_object_object_add(
	    j, "pid", r->st.pid > 0 && is_up(r->st.state) ? json_object_new_int(r->st.pid) : NULL);
	json_object_object_add(j, "cpus", r->valid ? json_object_new_int((int)r->def.cpus) : NULL);
	json_object_object_add(j, "memory",
			       r->valid ? json_object_new_int64((int64_t)r->def.memory) : NULL);
	json_object_object_add(j, "rss", usage ? json_object_new_int64((int64_t)r->u.rss) : NULL);
	json_object_object_add(
	    j, "ksm-shared",
	    usage && r->u.ksm_shared >= 0 ? json_object_new_int64(r->u.ksm_shared) : NULL);
	json_object_object_add(j, "uptime",
			       usage ? json_object_new_int64((int64_t)r->u.uptime) : NULL);
	json_object_object_add(j, "reason",
			       r->st.last.present && !is_up(r->st.state)
				   ? json_object_new_string(r->st.last.reason)
				   : NULL);
	json_object_object_add(j, "autostart",
			       json_object_new_boolean(r->valid && r->def.autostart));
	return j;
}

static void print_table(struct row *rows, size_t n)
{
	static const char *const head[] = {"NAME",   "STATE", "PID",	    "CPUS",
					   "MEMORY", "RSS",   "KSM-SHARED", "UPTIME"};
	char cell[8][96];
	int w[8];

	for (int c = 0; c < 8; c++)
		w[c] = (int)strlen(head[c]);
	for (int pass = 0; pass < 2; pass++) {
		if (pass)
			printf("%-*s  %-*s  %*s  %*s  %*s  %*s  %*s  %*s\n", w[0], head[0], w[1],
			       head[1], w[2], head[2], w[3], head[3], w[4], head[4], w[5], head[5],
			       w[6], head[6], w[7], head[7]);
		for (size_t i = 0; i < n; i++) {
			const struct row *r = &rows[i];
			bool up = r->valid && is_up(r->st.state);
			bool usage = up && r->has_usage;

			snprintf(cell[0], sizeof(cell[0]), "%s", r->name);
			state_text(r, cell[1], sizeof(cell[1]));
			if (up && r->st.pid > 0)
				snprintf(cell[2], sizeof(cell[2]), "%d", (int)r->st.pid);
			else
				snprintf(cell[2], sizeof(cell[2]), "-");
			if (r->valid) {
				snprintf(cell[3], sizeof(cell[3]), "%u", r->def.cpus);
				vm_cli_size(r->def.memory, cell[4], sizeof(cell[4]));
			} else {
				snprintf(cell[3], sizeof(cell[3]), "-");
				snprintf(cell[4], sizeof(cell[4]), "-");
			}
			if (usage)
				vm_cli_size(r->u.rss, cell[5], sizeof(cell[5]));
			else
				snprintf(cell[5], sizeof(cell[5]), "-");
			if (usage && r->u.ksm_shared >= 0)
				vm_cli_size((uint64_t)r->u.ksm_shared, cell[6], sizeof(cell[6]));
			else
				snprintf(cell[6], sizeof(cell[6]), usage ? "unknown" : "-");
			if (usage)
				vm_cli_duration(r->u.uptime, cell[7], sizeof(cell[7]));
			else
				snprintf(cell[7], sizeof(cell[7]), "-");
			for (int c = 0; c < 8 && !pass; c++)
				if ((int)strlen(cell[c]) > w[c])
					w[c] = (int)strlen(cell[c]);
			if (pass)
				printf("%-*s  %-*s  %*s  %*s  %*s  %*s  %*s  %*s\n", w[0], cell[0],
				       w[1], cell[1], w[2], cell[2], w[3], cell[3], w[4], cell[4],
				       w[5], cell[5], w[6], cell[6], w[7], cell[7]);
		}
	}
}

static int list_opt(int c, const char *arg, void *priv)
{
	(void)arg;
	*(bool *)priv = true;
	return c == 'n' ? 0 : 1;
}

int vm_list_main(int argc, char **argv)
{
	static const struct option opts[] = {{"names", no_argument, NULL, 'n'}, {0}};
	struct vm_cli o = {.verb = "vm list"};
	struct row *rows;
	char **names;
	size_t n;
	bool names_only = false;
	int ret;

	if ((ret =
		 vm_cli_parse(&o,
			      "list [--output=json] [--names]\n\n"
			      "Columns: name, state, pid, CPUs, memory, RSS, KSM-shared memory, "
			      "uptime.\n--names prints only the names (without asking the VMs).\n",
			      argc, argv, opts, true, false, list_opt, &names_only)))
		return ret < 0 ? 0 : ret;
	if ((ret = registry_names(&o.reg, &names, &n)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	if (names_only) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", names[i]);
		registry_names_free(names, n);
		return vm_cli_done(&o, 0);
	}
	rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows) {
		registry_names_free(names, n);
		return vm_cli_done(&o, vm_cli_fail(&o, -ENOMEM));
	}
	if (ksm_list_vms("/", &ksm_vms, &ksm_nvms) < 0)
		ksm_nvms = 0;
	for (size_t i = 0; i < n; i++) {
		rows[i].name = names[i];
		fill_row(&o, &rows[i]);
	}
	free(ksm_vms);
	if (o.json) {
		struct json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, json_row(&rows[i]));
		printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY |
								     JSON_C_TO_STRING_SPACED));
		json_object_put(a);
	} else {
		print_table(rows, n);
	}
	for (size_t i = 0; i < n; i++)
		vmdef_free(&rows[i].def);
	free(rows);
	registry_names_free(names, n);
	return vm_cli_done(&o, 0);
}

/* ---- show ---- */

/* QMP answers for show: balloon and block devices, or NULL when the VM does not answer. */
static void ask_vm(const struct vm_cli *o, const struct vmdef *d, struct json_object **balloon,
		   struct json_object **block)
{
	char *qmp = registry_path(&o->reg, o->name, REG_QMP);
	struct qmp_client *c;

	*balloon = *block = NULL;
	if (qmp && qmp_connect(qmp, LIST_QMP_TIMEOUT_MS, &c) == 0) {
		if (d->balloon)
			qmp_execute(c, "query-balloon", NULL, LIST_QMP_TIMEOUT_MS, balloon);
		qmp_execute(c, "query-block", NULL, LIST_QMP_TIMEOUT_MS, block);
		qmp_close(c);
	}
	free(qmp);
	err_clear();
}

static void add_path(struct json_object *j, const char *key, const struct vm_cli *o,
		     enum registry_file f)
{
	char *p = registry_path(&o->reg, o->name, f);

	json_object_object_add(j, key, p ? json_object_new_string(p) : NULL);
	free(p);
}

static void show_json(const struct vm_cli *o, const struct row *r, struct json_object *balloon,
		      struct json_object *block)
{
	struct json_object *j = json_object_new_object(), *rt = json_row(r);

	json_object_object_add(j, "definition", vmdef_to_json(&r->def));
	json_object_object_add(rt, "message",
			       r->st.last.present && !is_up(r->st.state)
				   ? json_object_new_string(r->st.last.message)
				   : NULL);
	add_path(rt, "definition-file", o, REG_DEF);
	add_path(rt, "qmp", o, REG_QMP);
	add_path(rt, "console", o, REG_CONSOLE);
	add_path(rt, "console-log", o, REG_CONSOLE_LOG);
	add_path(rt, "log", o, REG_LOG);
	json_object_object_add(rt, "balloon", balloon ? json_object_get(balloon) : NULL);
	json_object_object_add(rt, "block", block ? json_object_get(block) : NULL);
	json_object_object_add(j, "runtime", rt);
	printf("%s\n",
	       json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
}

static void show_path(const struct vm_cli *o, const char *label, enum registry_file f)
{
	char *p = registry_path(&o->reg, o->name, f);

	printf("%-12s %s\n", label, p ? p : "?");
	free(p);
}

static void show_human(const struct vm_cli *o, const struct row *r, struct json_object *balloon)
{
	const struct vmdef *d = &r->def;
	struct json_object *v;
	char a[64], b[64], state[128];

	printf("%-12s %s\n%-12s %s\n", "name:", d->name, "uuid:", d->uuid);
	state_text(r, state, sizeof(state));
	if (r->has_usage)
		printf("%-12s %s (pid %d, up %s)\n", "state:", state, (int)r->st.pid,
		       vm_cli_duration(r->u.uptime, a, sizeof(a)));
	else
		printf("%-12s %s\n", "state:", state);
	if (!is_up(r->st.state) && r->st.last.present && r->st.last.message[0])
		printf("%-12s %s\n", "last exit:", r->st.last.message);
	printf("%-12s %s", "memory:", vm_cli_size(d->memory, a, sizeof(a)));
	if (balloon && json_object_object_get_ex(balloon, "actual", &v))
		printf(" (balloon: the guest has %s)",
		       vm_cli_size((uint64_t)json_object_get_int64(v), b, sizeof(b)));
	printf("\n%-12s %u\n", "cpus:", d->cpus);
	if (r->has_usage) {
		printf("%-12s %s", "rss:", vm_cli_size(r->u.rss, a, sizeof(a)));
		if (r->u.ksm_shared >= 0)
			printf(", KSM-shared %s\n",
			       vm_cli_size((uint64_t)r->u.ksm_shared, b, sizeof(b)));
		else
			printf(", KSM-shared unknown\n");
	}
	if (d->kernel)
		printf("%-12s kernel %s%s%s%s%s%s\n", "boot:", d->kernel,
		       d->initrd ? ", initrd " : "", d->initrd ? d->initrd : "",
		       d->cmdline ? ", cmdline \"" : "", d->cmdline ? d->cmdline : "",
		       d->cmdline ? "\"" : "");
	else
		printf("%-12s the first disk's own kernel\n", "boot:");
	for (size_t i = 0; i < d->ndisks; i++)
		printf("%-12s %s (%s%s%s%s%s%s)\n", "disk:", d->disks[i].path, d->disks[i].format,
		       d->disks[i].readonly ? ", read-only" : "",
		       d->disks[i].cache ? ", cache=" : "",
		       d->disks[i].cache ? d->disks[i].cache : "",
		       d->disks[i].serial ? ", serial=" : "",
		       d->disks[i].serial ? d->disks[i].serial : "");
	for (size_t i = 0; i < d->nnets; i++)
		printf("%-12s %s%s%s%s mac=%s\n", "net:", d->nets[i].bridge ? "bridge=" : "",
		       d->nets[i].bridge ? d->nets[i].bridge : "",
		       d->nets[i].tap ? (d->nets[i].bridge ? " tap=" : "tap=") : "",
		       d->nets[i].tap ? d->nets[i].tap : "", d->nets[i].mac);
	printf("%-12s %s\n%-12s %s\n%-12s %s\n%-12s %s\n", "balloon:", d->balloon ? "yes" : "no",
	       "rng:", d->rng ? "yes" : "no", "autostart:", d->autostart ? "yes" : "no",
	       "created:", d->created);
	show_path(o, "definition:", REG_DEF);
	show_path(o, "console:", REG_CONSOLE);
	show_path(o, "console log:", REG_CONSOLE_LOG);
	show_path(o, "qmp:", REG_QMP);
	show_path(o, "log:", REG_LOG);
}

int vm_show_main(int argc, char **argv)
{
	struct vm_cli o = {.verb = "vm show"};
	struct json_object *balloon = NULL, *block = NULL;
	struct row r = {0};
	int ret;

	if ((ret = vm_cli_parse(&o,
				"show NAME [--output=json]\n\nThe definition, and the runtime: "
				"state, pid, memory use, balloon,\nQMP's block devices, socket and "
				"log paths.\n",
				argc, argv, NULL, true, true, NULL, NULL)))
		return ret < 0 ? 0 : ret;
	if ((ret = registry_load(&o.reg, o.name, &r.def)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	r.name = (char *)o.name;
	r.valid = true;
	if ((ret = vm_status_get(&o.reg, o.name, LIST_QMP_TIMEOUT_MS, &r.st)) < 0) {
		vmdef_free(&r.def);
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	}
	if (ksm_list_vms("/", &ksm_vms, &ksm_nvms) < 0)
		ksm_nvms = 0;
	usage_of(&r);
	free(ksm_vms);
	if (r.st.state == VM_RUNNING || r.st.state == VM_PAUSED || r.st.state == VM_STOPPING)
		ask_vm(&o, &r.def, &balloon, &block);
	if (o.json)
		show_json(&o, &r, balloon, block);
	else
		show_human(&o, &r, balloon);
	json_object_put(balloon);
	json_object_put(block);
	vmdef_free(&r.def);
	return vm_cli_done(&o, 0);
}

int vm_monitor_main(int argc, char **argv)
{
	struct vm_cli o = {.verb = "vm monitor"};
	struct vm_status st;
	char *qmp;
	int ret;

	if ((ret = vm_cli_parse(&o,
				"monitor NAME\n\nPrints the path of the VM's QMP socket, for QMP "
				"clients (qmp-shell, socat).\n",
				argc, argv, NULL, false, true, NULL, NULL)))
		return ret < 0 ? 0 : ret;
	struct vmdef d;
	if ((ret = registry_load(&o.reg, o.name, &d)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	vmdef_free(&d);
	if ((ret = vm_status_get(&o.reg, o.name, LIST_QMP_TIMEOUT_MS, &st)) < 0)
		return vm_cli_done(&o, vm_cli_fail(&o, ret));
	if (!is_up(st.state))
		return vm_cli_done(&o, vm_cli_fail(&o, err_set(EINVAL, "%s is not running (%s)",
							       o.name, vm_state_name(st.state))));
	if (!(qmp = registry_path(&o.reg, o.name, REG_QMP)))
		return vm_cli_done(&o, vm_cli_fail(&o, -ENOMEM));
	printf("%s\n", qmp);
	free(qmp);
	return vm_cli_done(&o, 0);
}
