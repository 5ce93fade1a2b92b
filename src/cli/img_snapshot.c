/* `ligero img snapshot`: qcow2 internal snapshots, listed in qemu-img's table format. */
#include "block/block.h"
#include "cli/cli.h"
#include "util/error.h"
#include "util/size.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void snapshot_usage(FILE *f)
{
	fputs("usage: ligero img snapshot [-f fmt] [-U] [-q] [-l | -c NAME | -a NAME | -d NAME] "
	      "FILE\n"
	      "  -l  list (the default)   -c  create   -a  apply (revert to)   -d  delete\n",
	      f);
}

static void print_row(const struct bdev_snapshot *sn)
{
	char size[32], date[32] = "", clock[32], icount[32] = "";
	time_t ts = sn->date_sec;
	struct tm tm;
	uint64_t secs = sn->vm_clock_nsec / 1000000000ULL;

	if (localtime_r(&ts, &tm))
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(clock, sizeof(clock), "%02d:%02d:%02d.%03d", (int)(secs / 3600),
		 (int)((secs / 60) % 60), (int)(secs % 60),
		 (int)((sn->vm_clock_nsec / 1000000) % 1000));
	if (sn->icount != UINT64_MAX)
		snprintf(icount, sizeof(icount), "%" PRId64, (int64_t)sn->icount);
	size_human(sn->vm_state_size, size, sizeof(size));
	printf("%-9s %-16s %8s%20s%13s%11s\n", sn->id, sn->name, size, date, clock, icount);
}

static int list(struct bdev *bs)
{
	struct bdev_snapshot *sn;
	int n, ret = bdev_snapshot_list(bs, &sn, &n);

	if (ret < 0)
		return cli_fail_err(ret);
	if (n > 0) {
		printf("Snapshot list:\n");
		printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
		       "ICOUNT");
		for (int i = 0; i < n; i++)
			print_row(&sn[i]);
	}
	free(sn);
	return 0;
}

int img_snapshot_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"force-share", no_argument, NULL, 'U'},
	    {NULL, 0, NULL, 0},
	};
	const char *fmt = NULL, *name = NULL;
	bool share = false;
	int c, action = 0;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":la:c:d:hqUf:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			snapshot_usage(stdout);
			return 0;
		case 'f':
			fmt = optarg;
			break;
		case 'U':
			share = true;
			break;
		case 'q':
			break;
		case 'l':
		case 'c':
		case 'a':
		case 'd':
			if (action)
				return cli_usage_fail("img snapshot",
						      "give only one of -l, -c, -a, -d");
			action = c;
			name = optarg;
			break;
		default:
			return cli_opt_error("img snapshot", c, argv, longopts);
		}
	}
	if (!action)
		action = 'l'; /* as qemu-img: list */
	if (optind != argc - 1)
		return cli_usage_fail("img snapshot", "expected one image file name");
	const char *file = argv[optind];
	if (action != 'l' && share)
		return cli_fail("%s: -U (force share) is only for -l: the other actions write",
				file);
	if (action != 'l' && !*name)
		return cli_fail("%s: empty snapshot name", file);
	struct bdev *bs;
	int flags = action == 'l' ? (share ? BDEV_O_FORCE_SHARE : 0) : BDEV_O_RDWR;
	int ret = bdev_open(&bs, file, fmt, flags | BDEV_O_NO_BACKING);
	if (ret < 0)
		return cli_fail_err(ret);
	int rc = 0;
	if (action == 'l') {
		rc = list(bs);
	} else {
		if (action == 'c')
			ret = bdev_snapshot_create(bs, name);
		else if (action == 'a')
			ret = bdev_snapshot_apply(bs, name);
		else
			ret = bdev_snapshot_delete(bs, name);
		if (ret == 0)
			ret = bdev_flush(bs);
		if (ret < 0)
			rc = cli_fail_err(ret);
	}
	bdev_close(bs);
	return rc;
}
