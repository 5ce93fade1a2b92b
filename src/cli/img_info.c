/*
 * `ligero img info`: what qemu-img info prints, with the same JSON keys, value types and key
 * order, so scripts written against qemu-img's output read ours unchanged.
 */
#include "cli/cli.h"
#include "block/block.h"
#include "util/error.h"
#include "util/size.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Take one of the driver's private keys ("_dirty") out of the format-specific
 * object (or its "data"), so that what is left is exactly qemu-img's "format-specific".
 * Returns a new reference, or NULL if the driver did not set the key.
 */
static struct json_object *take_private(struct json_object *spec, const char *key)
{
	struct json_object *v = NULL, *data = NULL, *out = NULL;

	if (json_object_object_get_ex(spec, key, &v)) {
		out = json_object_get(v);
		json_object_object_del(spec, key);
	}
	if (json_object_object_get_ex(spec, "data", &data) &&
	    json_object_object_get_ex(data, key, &v)) {
		if (!out)
			out = json_object_get(v);
		json_object_object_del(data, key);
	}
	return out;
}

static int64_t get_int(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : dflt;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* The snapshot table with qemu-img's keys in its order; "icount" only when recorded. */
static struct json_object *snapshot_list(const struct bdev_snapshot *sn, int n)
{
	struct json_object *out = json_object_new_array();

	for (int i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();
		if (sn[i].icount != UINT64_MAX)
			json_object_object_add(o, "icount",
					       json_object_new_int64((int64_t)sn[i].icount));
		json_object_object_add(
		    o, "vm-clock-nsec",
		    json_object_new_int64((int64_t)(sn[i].vm_clock_nsec % 1000000000)));
		json_object_object_add(o, "name", json_object_new_string(sn[i].name));
		json_object_object_add(o, "date-sec", json_object_new_int64(sn[i].date_sec));
		json_object_object_add(o, "date-nsec", json_object_new_int64(sn[i].date_nsec));
		json_object_object_add(
		    o, "vm-clock-sec",
		    json_object_new_int64((int64_t)(sn[i].vm_clock_nsec / 1000000000)));
		json_object_object_add(o, "id", json_object_new_string(sn[i].id));
		json_object_object_add(o, "vm-state-size",
				       json_object_new_int64((int64_t)sn[i].vm_state_size));
		json_object_array_add(out, o);
	}
	return out;
}

/*
 * One image's ImageInfo. The key order is qemu-img 7.2's (it comes from QEMU's QDict hashing,
 * not from its schema): a recorded backing format first, the backing names after the format
 * specific data, the dirty flag last.
 */
static int build_info(struct bdev *bs, struct json_object **out)
{
	struct json_object *o, *spec = NULL, *dirty = NULL, *rcluster = NULL;
	struct bdev_snapshot *snaps;
	uint32_t cluster = bdev_cluster_size(bs);
	int64_t actual = bdev_actual_size(bs);
	int nsnaps, ret;

	ret = bdev_snapshot_list(bs, &snaps, &nsnaps);
	if (ret < 0)
		return ret;
	o = json_object_new_object();
	if (!o) {
		free(snaps);
		return err_set(ENOMEM, "%s: out of memory", bs->filename);
	}
	if (bs->drv->info_specific) {
		spec = bs->drv->info_specific(bs);
		if (spec)
			dirty = take_private(spec, "_dirty");
		if (spec) /* a remote image's unit (RBD: the object size) */
			rcluster = take_private(spec, "_cluster-size");
	}
	if (bs->backing_name && bs->backing_fmt)
		json_object_object_add(o, "backing-filename-format",
				       json_object_new_string(bs->backing_fmt));
	if (nsnaps > 0)
		json_object_object_add(o, "snapshots", snapshot_list(snaps, nsnaps));
	free(snaps);
	json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)bs->size));
	json_object_object_add(o, "filename", json_object_new_string(bs->filename));
	/* QEMU reports a cluster size only for formats that have clusters (not raw). */
	if (cluster)
		json_object_object_add(o, "cluster-size", json_object_new_int64(cluster));
	else if (rcluster)
		json_object_object_add(o, "cluster-size", rcluster);
	json_object_object_add(o, "format", json_object_new_string(bs->drv->name));
	if (actual >= 0)
		json_object_object_add(o, "actual-size", json_object_new_int64(actual));
	if (spec)
		json_object_object_add(o, "format-specific", spec);
	if (bs->backing_name) {
		if (bs->backing_path)
			json_object_object_add(o, "full-backing-filename",
					       json_object_new_string(bs->backing_path));
		json_object_object_add(o, "backing-filename",
				       json_object_new_string(bs->backing_name));
	}
	/* qemu-img has no dirty flag to show for NBD (RBD has one: its driver says so), and its
	 * parallels driver has no get_info. */
	if ((!bdev_is_remote(bs) || dirty) && strcmp(bs->drv->name, "parallels"))
		json_object_object_add(
		    o, "dirty-flag",
		    json_object_new_boolean(dirty && json_object_get_boolean(dirty)));
	json_object_put(dirty);
	*out = o;
	return 0;
}

/* JSON the way QEMU's writer pretty-prints it: 4-space indentation, "key": value. */
static void json_print(FILE *f, struct json_object *o, int indent)
{
	int n = 0;

	switch (json_object_get_type(o)) {
	case json_type_object:
		if (!json_object_object_length(o)) {
			fputs("{}", f);
			return;
		}
		fputs("{", f);
		json_object_object_foreach(o, key, val)
		{
			fprintf(f, "%s\n%*s", n++ ? "," : "", (indent + 1) * 4, "");
			cli_json_string(f, key);
			fputs(": ", f);
			json_print(f, val, indent + 1);
		}
		fprintf(f, "\n%*s}", indent * 4, "");
		return;
	case json_type_array:
		if (!json_object_array_length(o)) {
			fputs("[]", f);
			return;
		}
		fputs("[", f);
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			fprintf(f, "%s\n%*s", i ? "," : "", (indent + 1) * 4, "");
			json_print(f, json_object_array_get_idx(o, i), indent + 1);
		}
		fprintf(f, "\n%*s]", indent * 4, "");
		return;
	case json_type_string:
		cli_json_string(f, json_object_get_string(o));
		return;
	default: /* numbers, booleans, null */
		fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), f);
	}
}

/* qemu-img's dump of format-specific data: dashes in keys become spaces, 4 spaces per level. */
static void dump_value(struct json_object *o, int indent);

static bool composite(struct json_object *o)
{
	enum json_type t = json_object_get_type(o);
	return t == json_type_object || t == json_type_array;
}

static void dump_dict(struct json_object *o, int indent)
{
	json_object_object_foreach(o, key, val)
	{
		printf("%*s", indent * 4, "");
		for (const char *p = key; *p; p++)
			putchar(*p == '-' ? ' ' : *p);
		printf(":%c", composite(val) ? '\n' : ' ');
		dump_value(val, indent + 1);
	}
}

static void dump_value(struct json_object *o, int indent)
{
	switch (json_object_get_type(o)) {
	case json_type_object:
		dump_dict(o, indent);
		break;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			struct json_object *v = json_object_array_get_idx(o, i);
			printf("%*s[%zu]:%c", indent * 4, "", i, composite(v) ? '\n' : ' ');
			dump_value(v, indent + 1);
		}
		break;
	case json_type_string:
		printf("%s\n", json_object_get_string(o));
		break;
	case json_type_null:
		printf("null\n");
		break;
	default: /* numbers and booleans print as in JSON */
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	}
}

/* One line of qemu-img's snapshot table (bdrv_snapshot_dump); NULL prints the heading. */
static void print_snapshot(struct json_object *sn)
{
	char size[64], date[64] = "", clock[64], icount[32] = "";

	if (!sn) {
		printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
		       "ICOUNT");
		return;
	}
	time_t t = (time_t)get_int(sn, "date-sec", 0);
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
	int64_t nsec =
	    get_int(sn, "vm-clock-sec", 0) * 1000000000LL + get_int(sn, "vm-clock-nsec", 0);
	int64_t secs = nsec / 1000000000LL;
	snprintf(clock, sizeof(clock), "%02d:%02d:%02d.%03d", (int)(secs / 3600),
		 (int)((secs / 60) % 60), (int)(secs % 60), (int)((nsec / 1000000) % 1000));
	struct json_object *v;
	if (json_object_object_get_ex(sn, "icount", &v))
		snprintf(icount, sizeof(icount), "%lld", (long long)json_object_get_int64(v));
	const char *id = get_str(sn, "id"), *name = get_str(sn, "name");
	printf("%-9s %-16s %8s%20s%13s%11s\n", id ? id : "", name ? name : "",
	       size_human((uint64_t)get_int(sn, "vm-state-size", 0), size, sizeof(size)), date,
	       clock, icount);
}

/* qemu-img's human format (bdrv_image_info_dump), built from the same object as the JSON. */
static void print_human(struct json_object *info)
{
	struct json_object *v, *data;
	char buf[64];
	int64_t vsize = 0;

	if (json_object_object_get_ex(info, "virtual-size", &v))
		vsize = json_object_get_int64(v);
	printf("image: %s\nfile format: %s\n", get_str(info, "filename"), get_str(info, "format"));
	printf("virtual size: %s (%lld bytes)\n", size_human((uint64_t)vsize, buf, sizeof(buf)),
	       (long long)vsize);
	if (json_object_object_get_ex(info, "actual-size", &v))
		printf("disk size: %s\n",
		       size_human((uint64_t)json_object_get_int64(v), buf, sizeof(buf)));
	else
		printf("disk size: unavailable\n");
	if (json_object_object_get_ex(info, "cluster-size", &v))
		printf("cluster_size: %lld\n", (long long)json_object_get_int64(v));
	if (json_object_object_get_ex(info, "dirty-flag", &v) && json_object_get_boolean(v))
		printf("cleanly shut down: no\n");
	const char *bname = get_str(info, "backing-filename");
	const char *bfull = get_str(info, "full-backing-filename");
	if (bname) {
		printf("backing file: %s", bname);
		if (!bfull)
			printf(" (cannot determine actual path)");
		else if (strcmp(bname, bfull))
			printf(" (actual path: %s)", bfull);
		putchar('\n');
	}
	if (get_str(info, "backing-filename-format"))
		printf("backing file format: %s\n", get_str(info, "backing-filename-format"));
	if (json_object_object_get_ex(info, "snapshots", &v)) {
		printf("Snapshot list:\n");
		print_snapshot(NULL);
		for (size_t i = 0; i < json_object_array_length(v); i++)
			print_snapshot(json_object_array_get_idx(v, i));
	}
	if (json_object_object_get_ex(info, "format-specific", &v) &&
	    json_object_object_get_ex(v, "data", &data)) {
		printf("Format specific information:\n");
		dump_value(data, 1);
	}
}

static void usage(FILE *f)
{
	fputs("usage: ligero img info [-f fmt] [--output=human|json] [--backing-chain] [-U] FILE\n",
	      f);
}

int img_info_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"format", required_argument, NULL, 'f'},  {"output", required_argument, NULL, 'O'},
	    {"backing-chain", no_argument, NULL, 'B'}, {"force-share", no_argument, NULL, 'U'},
	    {"help", no_argument, NULL, 'h'},	       {0},
	};
	const char *fmt = NULL;
	bool json = false, chain = false;
	int flags = 0, c;

	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":f:hU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'O':
			if (!strcmp(optarg, "json"))
				json = true;
			else if (!strcmp(optarg, "human"))
				json = false;
			else
				return cli_usage_fail(
				    "img info", "--output must be 'human' or 'json', not '%s'",
				    optarg);
			break;
		case 'B':
			chain = true;
			break;
		case 'U':
			flags |= BDEV_O_FORCE_SHARE;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_opt_error("img info", c, argv, longopts);
		}
	}
	if (optind != argc - 1)
		return cli_usage_fail("img info", "expected one image file name");
	/* Like qemu-img, plain info does not open the backing file: a missing one is reported,
	 * not fatal. --backing-chain opens (and so needs) every layer. */
	if (!chain)
		flags |= BDEV_O_NO_BACKING;

	struct bdev *bs;
	int ret = bdev_open(&bs, argv[optind], fmt, flags);
	if (ret < 0)
		return cli_fail_err(ret);
	cli_warn_open(bs);

	struct json_object *list = json_object_new_array();
	for (struct bdev *cur = bs; cur; cur = cur->backing) {
		struct json_object *info = NULL;
		ret = build_info(cur, &info);
		if (ret < 0) {
			json_object_put(list);
			bdev_close(bs);
			return cli_fail_err(ret);
		}
		json_object_array_add(list, info);
	}
	bdev_close(bs);

	if (json) {
		json_print(stdout, chain ? list : json_object_array_get_idx(list, 0), 0);
		putchar('\n');
	} else {
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			if (i)
				putchar('\n');
			print_human(json_object_array_get_idx(list, i));
		}
	}
	json_object_put(list);
	if (fflush(stdout) != 0)
		return cli_fail("img info: could not write the output");
	return 0;
}
