/*
 * ksmtuned's control loop (Debian's ksmtuned 4.20150326, /usr/sbin/ksmtuned), counting ligero's
 * VMs where ksmtuned counts `qemu-system.*-enable-kvm` processes; see ksm.h. Its rules, kept
 * as they are (KiB throughout, integer arithmetic as the shell does it):
 *   sleep  = KSM_SLEEP_MSEC * 16 GiB / MemTotal, at least 10 ms
 *   thres  = MemTotal * KSM_THRES_COEF / 100, at least KSM_THRES_CONST
 *   free   = MemFree + Buffers + Cached;  committed = the VMs' RSS
 *   stop   when committed + thres < MemTotal and free > thres
 *   else   npages += BOOST when free < thres, += DECAY otherwise, within [MIN, MAX]; run
 */
#include "host/ksm.h"
#include "util/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ksm_tune_defaults(struct ksm_tune_conf *c)
{
	*c = (struct ksm_tune_conf){
	    .monitor_interval = 60,
	    .npages_boost = 300,
	    .npages_decay = -50,
	    .npages_min = 64,
	    .npages_max = 1250,
	    .sleep_msec = 10,
	    .thres_coef = 20,
	    .thres_const = 2048,
	};
}

static int64_t clamp(const struct ksm_tune_conf *c, int64_t n)
{
	if (n < c->npages_min)
		return c->npages_min;
	if (n > c->npages_max)
		return c->npages_max;
	return n;
}

void ksm_tune_decide(const struct ksm_tune_conf *c, const struct ksm_tune_input *in,
		     struct ksm_decision *d)
{
	uint64_t total = in->total_kb;

	memset(d, 0, sizeof(*d));
	d->sleep_ms = total ? c->sleep_msec * 16 * 1024 * 1024 / total : 10;
	if (d->sleep_ms <= 10)
		d->sleep_ms = 10;
	d->thres_kb = total * c->thres_coef / 100;
	if (c->thres_const > d->thres_kb)
		d->thres_kb = c->thres_const;
	d->npages = in->npages;
	if (in->committed_kb + d->thres_kb < total && in->free_kb > d->thres_kb) {
		snprintf(d->why, sizeof(d->why),
			 "stop: committed %" PRIu64 " + threshold %" PRIu64 " < total %" PRIu64
			 " KiB and free %" PRIu64 " > threshold",
			 in->committed_kb, d->thres_kb, total, in->free_kb);
		return;
	}
	d->run = true;
	bool low = in->free_kb < d->thres_kb;
	d->npages = clamp(c, in->npages + (low ? c->npages_boost : c->npages_decay));
	int len = in->committed_kb + d->thres_kb >= total
		      ? snprintf(d->why, sizeof(d->why),
				 "run: committed %" PRIu64 " + threshold %" PRIu64
				 " >= total %" PRIu64 " KiB",
				 in->committed_kb, d->thres_kb, total)
		      : snprintf(d->why, sizeof(d->why),
				 "run: free %" PRIu64 " <= threshold %" PRIu64 " KiB", in->free_kb,
				 d->thres_kb);
	snprintf(d->why + len, sizeof(d->why) - (size_t)len,
		 "; %s: free %" PRIu64 " %s threshold, pages_to_scan %" PRId64 " -> %" PRId64,
		 low ? "boost" : "decay", in->free_kb, low ? "<" : ">=", in->npages, d->npages);
}

int ksm_tune_input_read(const char *root, int64_t npages, struct ksm_tune_input *in, size_t *nvms)
{
	struct ksm_meminfo m;
	struct ksm_vm *vms;
	size_t n;
	int ret;

	memset(in, 0, sizeof(*in));
	if ((ret = ksm_meminfo_read(root, &m)) < 0 || (ret = ksm_list_vms(root, &vms, &n)) < 0)
		return ret;
	in->total_kb = m.total / 1024;
	in->free_kb = (m.free + m.buffers + m.cached) / 1024;
	for (size_t i = 0; i < n; i++)
		if (vms[i].rss > 0)
			in->committed_kb += (uint64_t)vms[i].rss / 1024;
	in->npages = npages;
	free(vms);
	if (nvms)
		*nvms = n;
	return 0;
}

int ksm_tune_apply(const char *root, const struct ksm_tune_conf *c, const struct ksm_decision *d)
{
	struct ksm_sysfs k;
	char num[32];
	int ret;

	if (!d->run)
		return ksm_write_knob(root, "run", "0");
	if ((ret = ksm_sysfs_read(root, &k)) < 0)
		return ret;
	if (c->advisor && !k.advisor_mode[0])
		return err_set(ENOTSUP,
			       "this kernel has no KSM advisor (advisor_mode, Linux 6.7+); "
			       "run without --advisor");
	if (c->advisor) {
		ret = ksm_write_knob(root, "advisor_mode", "scan-time");
	} else {
		/* an advisor left running would override the pages_to_scan written here */
		if (k.advisor_mode[0] && strcmp(k.advisor_mode, "none"))
			ret = ksm_write_knob(root, "advisor_mode", "none");
		snprintf(num, sizeof(num), "%" PRId64, d->npages);
		if (ret == 0)
			ret = ksm_write_knob(root, "pages_to_scan", num);
	}
	snprintf(num, sizeof(num), "%" PRIu64, d->sleep_ms);
	if (ret == 0)
		ret = ksm_write_knob(root, "sleep_millisecs", num);
	return ret < 0 ? ret : ksm_write_knob(root, "run", "1");
}
