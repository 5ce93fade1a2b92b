/*
 * KSM (kernel samepage merging) as a VM host sees it: the kernel's knobs and counters
 * (/sys/kernel/mm/ksm), the running ligero VMs with their own figures (/proc/PID), the host's
 * memory (/proc/meminfo), and ksmtuned's control loop counting ligero's VMs.
 *
 * Every path is taken under a root directory: "/" on a live host, a directory holding proc/ and
 * sys/ in tests. Figures the kernel does not provide are reported as unknown (-1), never
 * guessed; each figure says where it came from.
 */
#ifndef LIGERO_HOST_KSM_H
#define LIGERO_HOST_KSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The sysfs files ligero reads, in the order they are shown: knobs, then counters. */
enum ksm_field {
	KSM_RUN,
	KSM_PAGES_TO_SCAN,
	KSM_SLEEP_MILLISECS,
	KSM_MERGE_ACROSS_NODES,
	KSM_USE_ZERO_PAGES,
	KSM_MAX_PAGE_SHARING,
	KSM_PAGES_SHARED, /* first counter */
	KSM_PAGES_SHARING,
	KSM_PAGES_UNSHARED,
	KSM_PAGES_VOLATILE,
	KSM_FULL_SCANS,
	KSM_ZERO_PAGES,	    /* ksm_zero_pages: merged with the zero page (newer kernels) */
	KSM_GENERAL_PROFIT, /* bytes (6.4+) */
	KSM_NFIELDS,
};
#define KSM_FIRST_COUNTER KSM_PAGES_SHARED

/* The file name of each field under /sys/kernel/mm/ksm. */
extern const char *const ksm_field_name[KSM_NFIELDS];

/* The kernel's KSM state. */
struct ksm_sysfs {
	bool present;		/* ROOT/sys/kernel/mm/ksm exists */
	int64_t v[KSM_NFIELDS]; /* -1 where the kernel has no such file */
	char advisor_mode[32];	/* the selected advisor ("none", "scan-time"), "" if absent */
	uint64_t page_size;	/* bytes */
};

/* One running ligero VM: a process whose executable is a ligero binary running `run`. */
struct ksm_vm {
	int pid;
	char name[65];		 /* its --name (64 characters at most), "" without one */
	uint64_t memory;	 /* guest RAM promised, bytes (--memory, or run's default) */
	bool memory_default;	 /* no --memory on its command line */
	int64_t rss;		 /* bytes (VmRSS of /proc/PID/status), -1 unknown */
	int64_t merging_pages;	 /* pages of it mapped to KSM pages, -1 unknown */
	char merging_source[48]; /* "/proc/PID/ksm_merging_pages" or ".../ksm_stat", "" */
	int64_t zero_pages;	 /* its ksm_zero_pages (ksm_stat, newer kernels), -1 unknown */
	int64_t profit;		 /* ksm_process_profit, bytes (ksm_stat, 6.4+), -1 unknown */
	int64_t saved;		 /* bytes saved thanks to it (computed, see ksm_report), -1 */
};

/* Read the knobs and counters. A kernel without KSM is not an error (present = false). */
int ksm_sysfs_read(const char *root, struct ksm_sysfs *k);

/* The running ligero VMs, by pid (malloc'ed array, free() it). Processes that vanish or cannot
 * be read while listing (other users' processes for a non-root caller) are left out. */
int ksm_list_vms(const char *root, struct ksm_vm **out, size_t *n);

/* /proc/meminfo, bytes. */
struct ksm_meminfo {
	uint64_t total, free, available, buffers, cached;
};
int ksm_meminfo_read(const char *root, struct ksm_meminfo *m);

/* Everything `ligero ksm status` shows. */
struct ksm_report {
	struct ksm_sysfs k;
	struct ksm_meminfo mem;
	struct ksm_vm *vms;
	size_t nvms;
	int64_t saved;	   /* (pages_sharing + ksm_zero_pages) x page size; -1 without KSM */
	uint64_t promised; /* sum of the VMs' memory */
	uint64_t used;	   /* MemTotal - MemAvailable: `free`'s "used" (procps 4) */
	uint64_t vm_rss;   /* sum of the VMs' known RSS */
};
/* Read it all and compute the per-VM savings: a VM's merging pages x pages_sharing /
 * (pages_shared + pages_sharing) (its share of the mappings of KSM pages, each KSM page saving
 * all its mappings but one) plus its ksm_zero_pages, times the page size. */
int ksm_report_read(const char *root, struct ksm_report *r);
void ksm_report_free(struct ksm_report *r);

/* ---- tuning (src/host/ksm_knobs.c) ---- */

/* Write one knob ("run", "pages_to_scan", ...). A message names the file; EACCES/EPERM say that
 * the knobs are root's. */
int ksm_write_knob(const char *root, const char *name, const char *value);
/* Start merging: pages_to_scan and sleep_millisecs when >= 0, then run = 1. */
int ksm_enable(const char *root, int64_t pages_to_scan, int64_t sleep_ms);
/* Stop merging (run = 0), or with unmerge break every merged page apart again (run = 2). */
int ksm_disable(const char *root, bool unmerge);

/* Where the boot-time settings live, under root. */
#define KSM_TMPFILES_DROPIN "/etc/tmpfiles.d/ligero-ksm.conf"
#define KSM_AUTO_UNIT	    "/etc/systemd/system/ligero-ksm-auto.service"
#define KSM_AUTO_WANTS	    "/etc/systemd/system/multi-user.target.wants/ligero-ksm-auto.service"

/* Write the systemd-tmpfiles drop-in that sets these values at boot (replacing an earlier one;
 * written to a temporary name and renamed, so never half-written). */
int ksm_persist_write(const char *root, int64_t pages_to_scan, int64_t sleep_ms);
/* Remove the drop-in; *removed says whether there was one. */
int ksm_persist_remove(const char *root, bool *removed);
/* The ligero-ksm-auto.service unit text for `exec` (the ligero binary) and extra arguments of
 * `ksm auto`; malloc'ed. */
char *ksm_auto_unit_text(const char *exec, const char *args);
/* Install the unit and enable it (the multi-user.target.wants link systemctl enable makes). */
int ksm_auto_install(const char *root, const char *exec, const char *args);

/* ---- ksmtuned's control loop (src/host/ksm_tune.c) ---- */

/* ksmtuned's settings, with its names; ksm_tune_defaults gives its defaults. */
struct ksm_tune_conf {
	unsigned monitor_interval; /* seconds between decisions (KSM_MONITOR_INTERVAL) */
	int64_t npages_boost;	   /* KSM_NPAGES_BOOST */
	int64_t npages_decay;	   /* KSM_NPAGES_DECAY (negative) */
	int64_t npages_min, npages_max;
	uint64_t sleep_msec;  /* KSM_SLEEP_MSEC: for a 16 GiB host; scaled by host memory */
	uint64_t thres_coef;  /* KSM_THRES_COEF, percent of host memory */
	uint64_t thres_const; /* KSM_THRES_CONST, KiB */
	bool advisor;	      /* let the kernel's advisor (6.7+) pace scanning instead */
};
void ksm_tune_defaults(struct ksm_tune_conf *c);

/* What one decision looks at, KiB as ksmtuned counts. */
struct ksm_tune_input {
	uint64_t total_kb;     /* MemTotal */
	uint64_t free_kb;      /* MemFree + Buffers + Cached */
	uint64_t committed_kb; /* sum of the VMs' RSS */
	int64_t npages;	       /* the loop's pages_to_scan so far (0 at start, as ksmtuned) */
};

struct ksm_decision {
	bool run;	   /* merge (run = 1) or stop (run = 0) */
	int64_t npages;	   /* pages_to_scan to set when running */
	uint64_t sleep_ms; /* sleep_millisecs to set when running */
	uint64_t thres_kb;
	char why[200]; /* the rule that decided, with its numbers */
};

/* ksmtuned's adjust(): stop when committed + thres < total and free > thres; otherwise run,
 * raising npages by the boost while free < thres and lowering it by the decay otherwise,
 * within [min, max]. Pure: reads and writes nothing. */
void ksm_tune_decide(const struct ksm_tune_conf *c, const struct ksm_tune_input *in,
		     struct ksm_decision *d);
/* Gather the input under root (meminfo, the VMs' RSS) with npages as the loop's state. */
int ksm_tune_input_read(const char *root, int64_t npages, struct ksm_tune_input *in, size_t *nvms);
/* Carry a decision out: run = 0, or pages_to_scan (or the advisor), sleep_millisecs, run = 1. */
int ksm_tune_apply(const char *root, const struct ksm_tune_conf *c, const struct ksm_decision *d);

#endif
