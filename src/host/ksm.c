/* KSM's state, the running ligero VMs and their figures; see ksm.h. */
#include "host/ksm.h"
#include "host/procinfo.h"
#include "util/error.h"
#include "util/size.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* `ligero run`'s guest RAM when no --memory is given (src/cli/run.c). */
#define RUN_DEFAULT_MEMORY (256ull << 20)

const char *const ksm_field_name[KSM_NFIELDS] = {
    [KSM_RUN] = "run",
    [KSM_PAGES_TO_SCAN] = "pages_to_scan",
    [KSM_SLEEP_MILLISECS] = "sleep_millisecs",
    [KSM_MERGE_ACROSS_NODES] = "merge_across_nodes",
    [KSM_USE_ZERO_PAGES] = "use_zero_pages",
    [KSM_MAX_PAGE_SHARING] = "max_page_sharing",
    [KSM_PAGES_SHARED] = "pages_shared",
    [KSM_PAGES_SHARING] = "pages_sharing",
    [KSM_PAGES_UNSHARED] = "pages_unshared",
    [KSM_PAGES_VOLATILE] = "pages_volatile",
    [KSM_FULL_SCANS] = "full_scans",
    [KSM_ZERO_PAGES] = "ksm_zero_pages",
    [KSM_GENERAL_PROFIT] = "general_profit",
};

/* root + path, without doubling the slash of root "/". */
static void under(char *out, size_t len, const char *root, const char *path)
{
	size_t r = strlen(root);

	while (r > 0 && root[r - 1] == '/')
		r--;
	snprintf(out, len, "%.*s%s", (int)r, root, path);
}

/* A whole decimal number (surrounding blanks allowed). */
static bool parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (!*s)
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* "[none] scan-time" -> "none" */
static void selected_word(const char *s, char *out, size_t len)
{
	const char *a = strchr(s, '['), *b = a ? strchr(a, ']') : NULL;

	if (a && b)
		snprintf(out, len, "%.*s", (int)(b - a - 1), a + 1);
	else
		snprintf(out, len, "%.*s", (int)strcspn(s, " \n"), s);
}

int ksm_sysfs_read(const char *root, struct ksm_sysfs *k)
{
	char path[PATH_MAX], buf[128];
	long ps = sysconf(_SC_PAGESIZE);

	memset(k, 0, sizeof(*k));
	k->page_size = ps > 0 ? (uint64_t)ps : 4096;
	for (int i = 0; i < KSM_NFIELDS; i++)
		k->v[i] = -1;
	under(path, sizeof(path), root, "/sys/kernel/mm/ksm");
	if (access(path, F_OK) != 0)
		return 0;
	k->present = true;
	for (int i = 0; i < KSM_NFIELDS; i++) {
		char f[96];
		snprintf(f, sizeof(f), "/sys/kernel/mm/ksm/%s", ksm_field_name[i]);
		under(path, sizeof(path), root, f);
		ssize_t n = proc_slurp(path, buf, sizeof(buf));
		if (n == -ENOENT)
			continue;
		if (n < 0)
			return err_sys((int)-n, "%s: cannot read", path);
		if (!parse_i64(buf, &k->v[i]))
			return err_set(EINVAL, "%s: not a number: '%.40s'", path, buf);
	}
	under(path, sizeof(path), root, "/sys/kernel/mm/ksm/advisor_mode");
	if (proc_slurp(path, buf, sizeof(buf)) >= 0)
		selected_word(buf, k->advisor_mode, sizeof(k->advisor_mode));
	return 0;
}

int ksm_meminfo_read(const char *root, struct ksm_meminfo *m)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
	    {"MemTotal:", offsetof(struct ksm_meminfo, total)},
	    {"MemFree:", offsetof(struct ksm_meminfo, free)},
	    {"MemAvailable:", offsetof(struct ksm_meminfo, available)},
	    {"Buffers:", offsetof(struct ksm_meminfo, buffers)},
	    {"Cached:", offsetof(struct ksm_meminfo, cached)},
	};
	char path[PATH_MAX], buf[8192];
	unsigned found = 0;

	memset(m, 0, sizeof(*m));
	under(path, sizeof(path), root, "/proc/meminfo");
	ssize_t n = proc_slurp(path, buf, sizeof(buf));
	if (n < 0)
		return err_sys((int)-n, "%s: cannot read", path);
	for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			unsigned long long kb;
			size_t kl = strlen(keys[i].key);
			if (strncmp(l, keys[i].key, kl) || sscanf(l + kl, "%llu", &kb) != 1)
				continue;
			*(uint64_t *)((char *)m + keys[i].off) = (uint64_t)kb * 1024;
			found |= 1u << i;
		}
	if (!(found & 1))
		return err_set(EINVAL, "%s: no MemTotal line", path);
	if (!(found & 4)) /* kernels before 3.14: estimate as `free` did */
		m->available = m->free + m->buffers + m->cached;
	return 0;
}

/* --memory SIZE, --memory=SIZE, or an unambiguous abbreviation (getopt_long takes "--mem"). */
/* argv[*i] is the long option opt, or a prefix of it at least min characters long (getopt_long
 * takes unambiguous abbreviations), with its value in the same word (=) or the next. */
static bool long_option(char **argv, int argc, int *i, const char *opt, size_t min,
			const char **val)
{
	const char *a = argv[*i], *eq = strchr(a, '=');
	size_t len = eq ? (size_t)(eq - a) : strlen(a);

	if (len < min || len > strlen(opt) || strncmp(a, opt, len) != 0)
		return false;
	if (eq)
		*val = eq + 1;
	else if (*i + 1 < argc)
		*val = argv[++*i];
	else
		return false;
	return true;
}

/* argv of a `ligero run`: guest memory from --memory, else run's default; the VM's name from
 * --name (what `ligero vm` starts it with), else none. */
static void vm_from_cmdline(struct ksm_vm *vm, char **argv, int argc)
{
	uint64_t size;

	vm->memory = RUN_DEFAULT_MEMORY;
	vm->memory_default = true;
	for (int i = 2; i < argc; i++) {
		const char *val;
		if (!strcmp(argv[i], "--"))
			break;
		if (long_option(argv, argc, &i, "--memory", 3, &val)) {
			if (size_parse(val, &size) == 0) {
				vm->memory = size;
				vm->memory_default = false;
			}
		} else if (long_option(argv, argc, &i, "--name", 4, &val)) {
			snprintf(vm->name, sizeof(vm->name), "%s", val);
		}
	}
}

/* Split a NUL-separated cmdline into at most max words. */
static int split_cmdline(char *buf, size_t len, char **argv, int max)
{
	int argc = 0;

	for (size_t off = 0; off < len && argc < max; off += strlen(buf + off) + 1)
		argv[argc++] = buf + off;
	return argc;
}

/* Is pid a ligero binary running `run`? Fills argc/argv into buf when it is. */
static bool is_ligero_run(const char *root, const char *pid, char *buf, size_t len, char **argv,
			  int *argc)
{
	char path[PATH_MAX], exe[PATH_MAX], f[300];
	ssize_t n;

	snprintf(f, sizeof(f), "/proc/%s/exe", pid);
	under(path, sizeof(path), root, f);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	char *del = strstr(exe, " (deleted)"); /* rebuilt since it started: still ligero */
	if (del && !del[10])
		*del = '\0';
	const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
	if (strcmp(base, "ligero"))
		return false;
	snprintf(f, sizeof(f), "/proc/%s/cmdline", pid);
	under(path, sizeof(path), root, f);
	n = proc_slurp(path, buf, len);
	if (n <= 0)
		return false;
	*argc = split_cmdline(buf, (size_t)n, argv, 256);
	return *argc >= 2 && !strcmp(argv[1], "run");
}

/* VmRSS of /proc/PID/status, bytes; -1 unknown. */
static int64_t vm_rss(const char *root, int pid)
{
	char path[PATH_MAX], f[64], buf[4096];
	unsigned long long kb;

	snprintf(f, sizeof(f), "/proc/%d/status", pid);
	under(path, sizeof(path), root, f);
	if (proc_slurp(path, buf, sizeof(buf)) < 0)
		return -1;
	const char *l = strstr(buf, "\nVmRSS:");
	if (!l || sscanf(l + 7, "%llu", &kb) != 1)
		return -1;
	return (int64_t)kb * 1024;
}

/* The process's own KSM figures: ksm_stat where it has them (6.1's has only ksm_rmap_items),
 * else ksm_merging_pages. */
static void vm_ksm(const char *root, struct ksm_vm *vm)
{
	char path[PATH_MAX], f[64], buf[1024];
	int64_t v;

	vm->merging_pages = vm->zero_pages = vm->profit = -1;
	snprintf(f, sizeof(f), "/proc/%d/ksm_stat", vm->pid);
	under(path, sizeof(path), root, f);
	if (proc_slurp(path, buf, sizeof(buf)) >= 0) {
		for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save)) {
			char *sp = strchr(l, ' ');
			if (!sp || !parse_i64(sp + 1, &v))
				continue;
			*sp = '\0';
			if (!strcmp(l, "ksm_merging_pages")) {
				vm->merging_pages = v;
				snprintf(vm->merging_source, sizeof(vm->merging_source),
					 "/proc/%d/ksm_stat", vm->pid);
			} else if (!strcmp(l, "ksm_zero_pages")) {
				vm->zero_pages = v;
			} else if (!strcmp(l, "ksm_process_profit")) {
				vm->profit = v;
			}
		}
	}
	if (vm->merging_pages >= 0)
		return;
	snprintf(f, sizeof(f), "/proc/%d/ksm_merging_pages", vm->pid);
	under(path, sizeof(path), root, f);
	if (proc_slurp(path, buf, sizeof(buf)) >= 0 && parse_i64(buf, &v)) {
		vm->merging_pages = v;
		snprintf(vm->merging_source, sizeof(vm->merging_source),
			 "/proc/%d/ksm_merging_pages", vm->pid);
	}
}

static int by_pid(const void *a, const void *b)
{
	const struct ksm_vm *x = a, *y = b;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

int ksm_list_vms(const char *root, struct ksm_vm **out, size_t *n)
{
	char path[PATH_MAX];
	struct ksm_vm *v = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	char *buf = malloc(65536);
	char *argv[256];
	int argc;
	DIR *d;

	under(path, sizeof(path), root, "/proc");
	if (!buf)
		return err_set(ENOMEM, "out of memory");
	if (!(d = opendir(path))) {
		free(buf);
		return err_sys(errno, "%s: cannot list processes", path);
	}
	while ((de = readdir(d))) {
		if (!de->d_name[0] || strspn(de->d_name, "0123456789") != strlen(de->d_name))
			continue;
		if (!is_ligero_run(root, de->d_name, buf, 65536, argv, &argc))
			continue;
		if (count == cap) {
			struct ksm_vm *nv = realloc(v, (cap = cap ? 2 * cap : 8) * sizeof(*v));
			if (!nv) {
				closedir(d);
				free(buf);
				free(v);
				return err_set(ENOMEM, "out of memory");
			}
			v = nv;
		}
		struct ksm_vm *vm = &v[count++];
		memset(vm, 0, sizeof(*vm));
		vm->pid = atoi(de->d_name);
		vm_from_cmdline(vm, argv, argc);
		vm->rss = vm_rss(root, vm->pid);
		vm_ksm(root, vm);
		vm->saved = -1;
	}
	closedir(d);
	free(buf);
	if (count)
		qsort(v, count, sizeof(*v), by_pid);
	*out = v;
	*n = count;
	return 0;
}

/* A VM's share of what KSM saves: its mappings of KSM pages, times the fraction of all such
 * mappings that are savings (every KSM page saves all its mappings but one), plus its pages
 * merged with the zero page (each saves a whole page). Integer arithmetic, rounded down. */
static int64_t vm_saved(const struct ksm_sysfs *k, const struct ksm_vm *vm)
{
	int64_t shared = k->v[KSM_PAGES_SHARED], sharing = k->v[KSM_PAGES_SHARING];
	int64_t pages = 0;

	if (vm->merging_pages < 0 || shared < 0 || sharing < 0)
		return -1;
	if (shared + sharing > 0)
		pages = (int64_t)((__int128)vm->merging_pages * sharing / (shared + sharing));
	if (vm->zero_pages > 0)
		pages += vm->zero_pages;
	return pages * (int64_t)k->page_size;
}

int ksm_report_read(const char *root, struct ksm_report *r)
{
	int ret;

	memset(r, 0, sizeof(*r));
	if ((ret = ksm_sysfs_read(root, &r->k)) < 0 ||
	    (ret = ksm_meminfo_read(root, &r->mem)) < 0 ||
	    (ret = ksm_list_vms(root, &r->vms, &r->nvms)) < 0)
		return ret;
	r->saved = -1;
	if (r->k.present && r->k.v[KSM_PAGES_SHARING] >= 0)
		r->saved = (r->k.v[KSM_PAGES_SHARING] +
			    (r->k.v[KSM_ZERO_PAGES] > 0 ? r->k.v[KSM_ZERO_PAGES] : 0)) *
			   (int64_t)r->k.page_size;
	r->used = r->mem.total > r->mem.available ? r->mem.total - r->mem.available : 0;
	for (size_t i = 0; i < r->nvms; i++) {
		struct ksm_vm *vm = &r->vms[i];
		vm->saved = r->k.present ? vm_saved(&r->k, vm) : -1;
		r->promised += vm->memory;
		if (vm->rss > 0)
			r->vm_rss += (uint64_t)vm->rss;
	}
	return 0;
}

void ksm_report_free(struct ksm_report *r)
{
	free(r->vms);
	r->vms = NULL;
	r->nvms = 0;
}
