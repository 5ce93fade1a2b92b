/*
 * `ligero ksm status|enable|disable|auto`: KSM you can see and tune. LIGERO_KSM_ROOT (a
 * directory holding proc/, sys/ and etc/) replaces "/" for every path, so tests can drive the
 * commands against a scripted host.
 */
#include "cli/cli.h"
#include "host/ksm.h"
#include "util/error.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *ksm_root(void)
{
	const char *r = getenv("LIGERO_KSM_ROOT");
	return r && *r ? r : "/";
}

static const char *const verb_usage[][2] = {
    {"status", "status [--output=human|json]\n"
	       "      KSM's knobs and counters, memory saved, each running ligero VM's RSS and\n"
	       "      merged pages, and the host: guest memory promised, used, saved\n"},
    {"enable", "enable [--pages-to-scan N] [--sleep-ms MS] [--persist]\n"
	       "      start merging (root); --persist sets it again at every boot\n"
	       "      (" KSM_TMPFILES_DROPIN ", systemd-tmpfiles)\n"},
    {"disable", "disable [--unmerge]\n"
		"      stop merging (root); --unmerge also splits every merged page again;\n"
		"      removes the boot-time setting of enable's persist option\n"},
    {"auto", "auto [--once] [--dry-run] [--persist] [--interval S] [--advisor]\n"
	     "         [--npages-boost N] [--npages-decay N] [--npages-min N] [--npages-max N]\n"
	     "         [--sleep-msec MS] [--thres-coef PCT] [--thres-const KIB]\n"
	     "         [--output=human|json]\n"
	     "      ksmtuned's control loop for ligero's VMs, in the foreground (SIGUSR1\n"
	     "      decides at once); --once decides once; --dry-run writes nothing;\n"
	     "      --persist installs and enables ligero-ksm-auto.service instead of running\n"},
};

/* The group's help: every verb. */
static void usage(FILE *f)
{
	fputs("usage: ligero ksm <verb> [options]\n\nverbs:\n", f);
	for (size_t i = 0; i < sizeof(verb_usage) / sizeof(verb_usage[0]); i++)
		fprintf(f, "  %s", verb_usage[i][1]);
	fputs("See 'man ligero-ksm' and docs/ligero-ksm.md.\n", f);
}

/* One verb's help. */
static void verb_help(const char *verb)
{
	for (size_t i = 0; i < sizeof(verb_usage) / sizeof(verb_usage[0]); i++)
		if (!strcmp(verb, verb_usage[i][0]))
			printf("usage: ligero ksm %s", verb_usage[i][1]);
}

/* ---- numbers ---- */

static int parse_num(const char *what, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return cli_fail("%s '%s' is not a whole number from %" PRId64 " to %" PRId64, what,
				s, lo, hi);
	*out = v;
	return 0;
}

static int parse_output(const char *v, bool *json)
{
	if (!strcmp(v, "json"))
		*json = true;
	else if (strcmp(v, "human"))
		return cli_fail("--output must be human or json, not '%s'", v);
	return 0;
}

static void add_num(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, v < 0 ? NULL : json_object_new_int64(v));
}

static void add_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, v && *v ? json_object_new_string(v) : NULL);
}

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* "123.4 MiB", or "unknown" */
static const char *mib(int64_t bytes, char *buf, size_t len)
{
	if (bytes < 0)
		return "unknown";
	snprintf(buf, len, "%.1f MiB", (double)bytes / (1 << 20));
	return buf;
}

/* ---- status ---- */

#define SAVED_SOURCE	"(pages_sharing + ksm_zero_pages) x page size, from sysfs"
#define VM_SAVED_SOURCE "merging pages x pages_sharing / (pages_shared + pages_sharing)"
#define USED_SOURCE	"MemTotal - MemAvailable (/proc/meminfo), as free -m counts used"

static struct json_object *status_json(const struct ksm_report *r)
{
	struct json_object *o = json_object_new_object(), *k = json_object_new_object();
	struct json_object *knobs = json_object_new_object(), *ctr = json_object_new_object();
	struct json_object *vms = json_object_new_array(), *host = json_object_new_object();

	json_object_object_add(k, "present", json_object_new_boolean(r->k.present));
	json_object_object_add(k, "source", json_object_new_string("/sys/kernel/mm/ksm"));
	for (int i = 0; i < KSM_NFIELDS; i++)
		add_num(i < KSM_FIRST_COUNTER ? knobs : ctr, ksm_field_name[i], r->k.v[i]);
	add_str(knobs, "advisor_mode", r->k.advisor_mode);
	json_object_object_add(k, "knobs", knobs);
	json_object_object_add(k, "counters", ctr);
	json_object_object_add(k, "page-size", json_object_new_int64((int64_t)r->k.page_size));
	add_num(k, "saved-bytes", r->saved);
	add_str(k, "saved-source", r->saved >= 0 ? SAVED_SOURCE : NULL);
	add_num(k, "general-profit-bytes", r->k.v[KSM_GENERAL_PROFIT]);
	json_object_object_add(o, "ksm", k);
	for (size_t i = 0; i < r->nvms; i++) {
		const struct ksm_vm *vm = &r->vms[i];
		struct json_object *v = json_object_new_object();
		char src[64];
		json_object_object_add(v, "pid", json_object_new_int(vm->pid));
		add_str(v, "name", vm->name);
		json_object_object_add(v, "memory-bytes",
				       json_object_new_int64((int64_t)vm->memory));
		json_object_object_add(
		    v, "memory-source",
		    json_object_new_string(vm->memory_default ? "ligero run's default"
							      : "--memory on its command line"));
		add_num(v, "rss-bytes", vm->rss);
		snprintf(src, sizeof(src), "/proc/%d/status VmRSS", vm->pid);
		add_str(v, "rss-source", vm->rss >= 0 ? src : NULL);
		add_num(v, "merging-pages", vm->merging_pages);
		add_str(v, "merging-source", vm->merging_source);
		add_num(v, "zero-pages", vm->zero_pages);
		add_num(v, "saved-bytes", vm->saved);
		add_str(v, "saved-source", vm->saved >= 0 ? VM_SAVED_SOURCE : NULL);
		add_num(v, "profit-bytes", vm->profit);
		snprintf(src, sizeof(src), "/proc/%d/ksm_stat ksm_process_profit", vm->pid);
		add_str(v, "profit-source", vm->profit >= 0 ? src : NULL);
		json_object_array_add(vms, v);
	}
	json_object_object_add(o, "vms", vms);
	json_object_object_add(host, "memory-total-bytes",
			       json_object_new_int64((int64_t)r->mem.total));
	json_object_object_add(host, "promised-bytes", json_object_new_int64((int64_t)r->promised));
	json_object_object_add(host, "vm-rss-bytes", json_object_new_int64((int64_t)r->vm_rss));
	json_object_object_add(host, "used-bytes", json_object_new_int64((int64_t)r->used));
	json_object_object_add(host, "used-source", json_object_new_string(USED_SOURCE));
	add_num(host, "saved-bytes", r->saved);
	json_object_object_add(o, "host", host);
	return o;
}

static void status_text(const struct ksm_report *r)
{
	char a[32], b[32], c[32], d[32];
	const int64_t *v = r->k.v;

	if (!r->k.present) {
		printf("KSM: not available (this kernel has no /sys/kernel/mm/ksm)\n");
	} else {
		printf("KSM: %s (run=%" PRId64 ")\n",
		       v[KSM_RUN] == 1	 ? "merging"
		       : v[KSM_RUN] == 2 ? "unmerging, stopped"
					 : "stopped",
		       v[KSM_RUN]);
		printf("  knobs:   ");
		for (int i = KSM_PAGES_TO_SCAN; i < KSM_FIRST_COUNTER; i++)
			if (v[i] >= 0)
				printf(" %s=%" PRId64, ksm_field_name[i], v[i]);
		if (r->k.advisor_mode[0])
			printf(" advisor_mode=%s", r->k.advisor_mode);
		printf("\n  pages:   ");
		for (int i = KSM_FIRST_COUNTER; i < KSM_GENERAL_PROFIT; i++)
			if (v[i] >= 0)
				printf(" %s=%" PRId64, ksm_field_name[i], v[i]);
		printf("\n  saved:    %s (%s)\n", mib(r->saved, a, sizeof(a)), SAVED_SOURCE);
		printf("  profit:   %s (general_profit: saved less KSM's own metadata%s)\n",
		       mib(v[KSM_GENERAL_PROFIT], b, sizeof(b)),
		       v[KSM_GENERAL_PROFIT] < 0 ? "; Linux 6.4+" : "");
	}
	printf("VMs (ligero run processes): %zu\n", r->nvms);
	if (r->nvms)
		printf("  %-8s %-12s %12s %12s %12s %12s  %s\n", "PID", "NAME", "MEMORY", "RSS",
		       "MERGED", "SAVED", "MERGED FROM");
	for (size_t i = 0; i < r->nvms; i++) {
		const struct ksm_vm *vm = &r->vms[i];
		char m[32];
		printf(
		    "  %-8d %-12s %12s %12s %12s %12s  %s\n", vm->pid, vm->name[0] ? vm->name : "-",
		    mib((int64_t)vm->memory, a, sizeof(a)), mib(vm->rss, b, sizeof(b)),
		    mib(vm->merging_pages < 0 ? -1 : vm->merging_pages * (int64_t)r->k.page_size, c,
			sizeof(c)),
		    mib(vm->saved, d, sizeof(d)),
		    vm->merging_source[0] ? vm->merging_source
					  : "unknown: this kernel has no per-process KSM figures");
		if (vm->profit >= 0)
			printf("  %-8s ksm_process_profit %s\n", "", mib(vm->profit, m, sizeof(m)));
	}
	if (r->nvms)
		printf("  SAVED = %s\n", VM_SAVED_SOURCE);
	printf("host: guest memory promised %s, host memory used %s, saved by KSM %s\n",
	       mib((int64_t)r->promised, a, sizeof(a)), mib((int64_t)r->used, b, sizeof(b)),
	       mib(r->saved, c, sizeof(c)));
	printf("  (of %s; used = %s)\n", mib((int64_t)r->mem.total, d, sizeof(d)), USED_SOURCE);
}

static int ksm_status_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"output", required_argument, NULL, 'J'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ksm_report r;
	bool json = false;
	int c, ret;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			verb_help(argv[0]);
			return 0;
		}
		if (c != 'J') {
			return cli_opt_error("ksm status", c, argv, longopts);
		}
		if (parse_output(optarg, &json))
			return 1;
	}
	if (optind < argc)
		return cli_usage_fail("ksm status", "unexpected argument '%s'", argv[optind]);
	if ((ret = ksm_report_read(ksm_root(), &r)) < 0)
		return cli_fail_err(ret);
	if (json)
		print_json(status_json(&r));
	else
		status_text(&r);
	ksm_report_free(&r);
	return 0;
}

/* ---- enable / disable ---- */

static int ksm_enable_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"pages-to-scan", required_argument, NULL, 'n'},
	    {"sleep-ms", required_argument, NULL, 's'},
	    {"persist", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int64_t pages = -1, sleep_ms = -1;
	bool persist = false;
	struct ksm_sysfs k;
	int c, ret;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_num("--pages-to-scan", optarg, 1, UINT32_MAX, &pages))
				return 1;
			break;
		case 's':
			if (parse_num("--sleep-ms", optarg, 0, UINT32_MAX, &sleep_ms))
				return 1;
			break;
		case 'p':
			persist = true;
			break;
		case 'h':
			verb_help(argv[0]);
			return 0;
		default:
			return cli_opt_error("ksm enable", c, argv, longopts);
		}
	}
	if (optind < argc)
		return cli_usage_fail("ksm enable", "unexpected argument '%s'", argv[optind]);
	if ((ret = ksm_enable(ksm_root(), pages, sleep_ms)) < 0 ||
	    (ret = ksm_sysfs_read(ksm_root(), &k)) < 0)
		return cli_fail_err(ret);
	printf("KSM merging: run=%" PRId64 " pages_to_scan=%" PRId64 " sleep_millisecs=%" PRId64
	       "\n",
	       k.v[KSM_RUN], k.v[KSM_PAGES_TO_SCAN], k.v[KSM_SLEEP_MILLISECS]);
	if (!persist)
		return 0;
	/* what is in effect now, so the boot sets the same */
	if ((ret = ksm_persist_write(ksm_root(), k.v[KSM_PAGES_TO_SCAN],
				     k.v[KSM_SLEEP_MILLISECS])) < 0)
		return cli_fail_err(ret);
	printf("persisted in %s%s (systemd-tmpfiles applies it at boot)\n",
	       strcmp(ksm_root(), "/") ? ksm_root() : "", KSM_TMPFILES_DROPIN);
	return 0;
}

static int ksm_disable_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"unmerge", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool unmerge = false, removed;
	char unit[PATH_MAX];
	int c, ret;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'u') {
			unmerge = true;
		} else if (c == 'h') {
			verb_help(argv[0]);
			return 0;
		} else {
			return cli_opt_error("ksm disable", c, argv, longopts);
		}
	}
	if (optind < argc)
		return cli_usage_fail("ksm disable", "unexpected argument '%s'", argv[optind]);
	if ((ret = ksm_disable(ksm_root(), unmerge)) < 0 ||
	    (ret = ksm_persist_remove(ksm_root(), &removed)) < 0)
		return cli_fail_err(ret);
	printf("KSM stopped%s\n", unmerge ? "; merged pages are being split again (run=2)"
					  : " (merged pages stay "
					    "merged; --unmerge "
					    "splits them)");
	if (removed)
		printf("removed %s: KSM stays off after a reboot\n", KSM_TMPFILES_DROPIN);
	snprintf(unit, sizeof(unit), "%s%s", strcmp(ksm_root(), "/") ? ksm_root() : "",
		 KSM_AUTO_WANTS);
	struct stat st;
	if (lstat(unit, &st) == 0) /* the link is absolute: it points outside a test's root */
		printf("note: ligero-ksm-auto.service is enabled and will start KSM again when "
		       "memory runs short (systemctl disable --now ligero-ksm-auto)\n");
	return 0;
}

/* ---- auto ---- */

struct auto_opts {
	struct ksm_tune_conf conf;
	bool once, dry_run, persist, json;
	char args[512]; /* the tuning options, for the unit's ExecStart */
};

static int auto_parse(struct auto_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"once", no_argument, NULL, '1'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"persist", no_argument, NULL, 'p'},
	    {"advisor", no_argument, NULL, 'a'},
	    {"output", required_argument, NULL, 'J'},
	    {"interval", required_argument, NULL, 'i'},
	    {"npages-boost", required_argument, NULL, 'B'},
	    {"npages-decay", required_argument, NULL, 'D'},
	    {"npages-min", required_argument, NULL, 'm'},
	    {"npages-max", required_argument, NULL, 'M'},
	    {"sleep-msec", required_argument, NULL, 's'},
	    {"thres-coef", required_argument, NULL, 'c'},
	    {"thres-const", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ksm_tune_conf *f = &o->conf;
	char what[32];
	int64_t v = 0;
	int c, li;

	memset(o, 0, sizeof(*o));
	ksm_tune_defaults(f);
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":h", longopts, &li)) != -1) {
		const char *name = NULL;
		switch (c) {
		case '1':
			o->once = true;
			continue;
		case 'n':
			o->dry_run = true;
			continue;
		case 'p':
			o->persist = true;
			continue;
		case 'J':
			if (parse_output(optarg, &o->json))
				return 1;
			continue;
		case 'h':
			verb_help(argv[0]);
			return -1;
		case 'a':
			f->advisor = true;
			break;
		case 'i':
		case 'B':
		case 'D':
		case 'm':
		case 'M':
		case 's':
		case 'c':
		case 'C':
			name = longopts[li].name;
			snprintf(what, sizeof(what), "--%s", name);
			if (parse_num(what, optarg,
				      c == 'D'	 ? -1000000
				      : c == 'i' ? 1
						 : 0,
				      c == 'c' ? 100 : 1000000000, &v))
				return 1;
			break;
		default:
			return cli_opt_error("ksm auto", c, argv, longopts);
		}
		switch (c) {
		case 'i':
			f->monitor_interval = (unsigned)v;
			break;
		case 'B':
			f->npages_boost = v;
			break;
		case 'D':
			f->npages_decay = v;
			break;
		case 'm':
			f->npages_min = v;
			break;
		case 'M':
			f->npages_max = v;
			break;
		case 's':
			f->sleep_msec = (uint64_t)v;
			break;
		case 'c':
			f->thres_coef = (uint64_t)v;
			break;
		case 'C':
			f->thres_const = (uint64_t)v;
			break;
		}
		size_t l = strlen(o->args);
		if (c == 'a')
			snprintf(o->args + l, sizeof(o->args) - l, "%s--advisor", l ? " " : "");
		else
			snprintf(o->args + l, sizeof(o->args) - l, "%s--%s %" PRId64, l ? " " : "",
				 name, v);
	}
	if (optind < argc)
		return cli_usage_fail("ksm auto", "unexpected argument '%s'", argv[optind]);
	if (f->npages_min > f->npages_max)
		return cli_fail("ksm auto: --npages-min %" PRId64 " is above --npages-max %" PRId64,
				f->npages_min, f->npages_max);
	return 0;
}

static void print_decision(const struct auto_opts *o, const struct ksm_tune_input *in, size_t nvms,
			   const struct ksm_decision *d)
{
	if (o->json) {
		struct json_object *j = json_object_new_object();
		json_object_object_add(j, "vms", json_object_new_int64((int64_t)nvms));
		json_object_object_add(j, "total-kb", json_object_new_int64((int64_t)in->total_kb));
		json_object_object_add(j, "free-kb", json_object_new_int64((int64_t)in->free_kb));
		json_object_object_add(j, "committed-kb",
				       json_object_new_int64((int64_t)in->committed_kb));
		json_object_object_add(j, "threshold-kb",
				       json_object_new_int64((int64_t)d->thres_kb));
		json_object_object_add(j, "run", json_object_new_boolean(d->run));
		if (d->run && !o->conf.advisor)
			json_object_object_add(j, "pages_to_scan",
					       json_object_new_int64(d->npages));
		if (d->run)
			json_object_object_add(j, "sleep_millisecs",
					       json_object_new_int64((int64_t)d->sleep_ms));
		json_object_object_add(j, "advisor", json_object_new_boolean(o->conf.advisor));
		json_object_object_add(j, "why", json_object_new_string(d->why));
		json_object_object_add(j, "applied", json_object_new_boolean(!o->dry_run));
		print_json(j);
	} else {
		time_t t = time(NULL);
		char when[32];
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
		printf("%s %zu VM%s, committed %" PRIu64 " KiB, free %" PRIu64 " of %" PRIu64
		       " KiB: %s",
		       when, nvms, nvms == 1 ? "" : "s", in->committed_kb, in->free_kb,
		       in->total_kb, d->why);
		if (d->run && o->conf.advisor)
			printf(" => run=1 advisor_mode=scan-time sleep_millisecs=%" PRIu64,
			       d->sleep_ms);
		else if (d->run)
			printf(" => run=1 pages_to_scan=%" PRId64 " sleep_millisecs=%" PRIu64,
			       d->npages, d->sleep_ms);
		else
			printf(" => run=0");
		printf("%s\n", o->dry_run ? " (dry run: nothing written)" : "");
	}
	fflush(stdout);
}

/* One decision: read, decide, apply (unless dry run), print. */
static int auto_step(const struct auto_opts *o, int64_t *npages)
{
	struct ksm_tune_input in;
	struct ksm_decision d;
	size_t nvms;
	int ret = ksm_tune_input_read(ksm_root(), *npages, &in, &nvms);

	if (ret < 0)
		return ret;
	ksm_tune_decide(&o->conf, &in, &d);
	if (!o->dry_run && (ret = ksm_tune_apply(ksm_root(), &o->conf, &d)) < 0)
		return ret;
	*npages = d.npages;
	print_decision(o, &in, nvms, &d);
	return 0;
}

static int auto_persist(const struct auto_opts *o)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int ret;

	if (n <= 0)
		return cli_fail(
		    "ksm auto --persist: cannot find the ligero binary (/proc/self/exe)");
	exe[n] = '\0';
	if ((ret = ksm_auto_install(ksm_root(), exe, o->args)) < 0)
		return cli_fail_err(ret);
	printf("installed %s%s and enabled it (multi-user.target); it starts at the next boot, or "
	       "now with: systemctl daemon-reload && systemctl start ligero-ksm-auto\n",
	       strcmp(ksm_root(), "/") ? ksm_root() : "", KSM_AUTO_UNIT);
	return 0;
}

static int ksm_auto_main(int argc, char **argv)
{
	struct auto_opts o;
	struct ksm_sysfs k;
	sigset_t set;
	int64_t npages = 0;
	int ret = auto_parse(&o, argc, argv);

	if (ret)
		return ret < 0 ? 0 : ret;
	if (o.persist)
		return auto_persist(&o);
	if ((ret = ksm_sysfs_read(ksm_root(), &k)) < 0)
		return cli_fail_err(ret);
	if (!k.present)
		return cli_fail("ksm auto: this kernel has no KSM (%s/sys/kernel/mm/ksm)",
				strcmp(ksm_root(), "/") ? ksm_root() : "");
	/* ksmtuned starts its pacing from 0 each time; going on from what a running KSM scans
	 * now keeps a restart (or one --once after another) from resetting it */
	if (k.v[KSM_RUN] == 1 && k.v[KSM_PAGES_TO_SCAN] > 0)
		npages = k.v[KSM_PAGES_TO_SCAN];
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		if ((ret = auto_step(&o, &npages)) < 0)
			return cli_fail_err(ret);
		if (o.once)
			return 0;
		struct timespec ts = {.tv_sec = o.conf.monitor_interval};
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
			return 0;
	}
}

int cmd_ksm(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} verbs[] = {
	    {"status", ksm_status_main},
	    {"enable", ksm_enable_main},
	    {"disable", ksm_disable_main},
	    {"auto", ksm_auto_main},
	};

	if (argc < 2)
		return cli_usage_fail("ksm", "a verb is needed: status, enable, disable or auto");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].fn(argc - 1, argv + 1);
	return cli_usage_fail("ksm", "unknown verb '%s'", argv[1]);
}
