/* `ligero fs` verbs that only read: list, ls, cat, stat, copy-out. */
#include "cli/cli.h"
#include "cli/fs.h"
#include "block/block.h"
#include "fs/copy.h"
#include "fs/gfs.h"
#include "fs/ops.h"
#include "util/error.h"
#include "util/size.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct json_object *probe_json(const struct fs_probe *p)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(p->type));
	json_object_object_add(o, "label", json_object_new_string(p->label));
	json_object_object_add(o, "uuid", json_object_new_string(p->uuid));
	return o;
}

static void list_text(struct fs_disk *d, struct fs_slot *s, size_t n)
{
	char size[32];

	printf("%s: %s, %s", d->path, part_scheme_name(d->pt.scheme),
	       size_human(d->bs->size, size, sizeof(size)));
	if (d->pt.scheme != PART_NONE)
		printf(", disk id %s", d->pt.disk_id);
	printf("\n%-24s %-12s %-12s %-10s %-16s %s\n", "NAME", "START", "SIZE", "TYPE", "LABEL",
	       "UUID");
	for (size_t i = 0; i < n; i++) {
		char name[512];
		if (s[i].num)
			snprintf(name, sizeof(name), "%s:%d", d->path, s[i].num);
		else
			snprintf(name, sizeof(name), "%s", d->path);
		const char *type = s[i].part && s[i].part->container ? "extended"
				   : s[i].probe.type[0]		     ? s[i].probe.type
								     : "-";
		printf("%-24s %-12llu %-12s %-10s %-16s %s\n", name, (unsigned long long)s[i].start,
		       size_human(s[i].size, size, sizeof(size)), type,
		       s[i].probe.label[0] ? s[i].probe.label : "-",
		       s[i].probe.uuid[0] ? s[i].probe.uuid : "-");
	}
}

static void list_json(struct fs_disk *d, struct fs_slot *s, size_t n)
{
	struct json_object *root = json_object_new_object(), *arr = json_object_new_array();

	json_object_object_add(root, "disk", json_object_new_string(d->path));
	json_object_object_add(root, "size", json_object_new_int64((int64_t)d->bs->size));
	json_object_object_add(root, "table",
			       json_object_new_string(part_scheme_name(d->pt.scheme)));
	if (d->pt.scheme != PART_NONE)
		json_object_object_add(root, "disk-id", json_object_new_string(d->pt.disk_id));
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_new_object();
		json_object_object_add(p, "number", json_object_new_int(s[i].num));
		json_object_object_add(p, "start", json_object_new_int64((int64_t)s[i].start));
		json_object_object_add(p, "size", json_object_new_int64((int64_t)s[i].size));
		if (s[i].part) {
			json_object_object_add(p, "part-type",
					       json_object_new_string(s[i].part->type));
			json_object_object_add(p, "extended",
					       json_object_new_boolean(s[i].part->container));
			if (s[i].part->uuid[0])
				json_object_object_add(p, "part-uuid",
						       json_object_new_string(s[i].part->uuid));
			if (s[i].part->name[0])
				json_object_object_add(p, "part-name",
						       json_object_new_string(s[i].part->name));
		}
		if (s[i].probe.type[0])
			json_object_object_add(p, "filesystem", probe_json(&s[i].probe));
		json_object_array_add(arr, p);
	}
	json_object_object_add(root, "partitions", arr);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

int fs_list_main(int argc, char **argv)
{
	static const char usage[] = "list [--output=json] DISK";
	struct fs_cli o;
	struct fs_disk *d;
	struct fs_slot *s;
	size_t n;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	char *path = NULL;
	int num = 0;
	if (fs_cli_exact(argc - i + (addr || o.disk), 1, usage))
		return 1;
	if (o.disk)
		path = strdup(o.disk);
	else if ((ret = fs_addr_parse(addr, &path, &num)) < 0)
		return cli_fail_err(ret);
	if (num)
		fprintf(stderr, "ligero: list shows the whole disk; ignoring ':%d'\n", num);
	ret = fs_disk_open(&d, path, false);
	free(path);
	if (ret < 0)
		return cli_fail_err(ret);
	if (d->warning)
		fprintf(stderr, "ligero: %s\n", d->warning);
	if ((ret = fs_disk_slots(d, &s, &n)) < 0) {
		fs_disk_close(d);
		return cli_fail_err(ret);
	}
	if (o.json)
		list_json(d, s, n);
	else
		list_text(d, s, n);
	free(s);
	fs_disk_close(d);
	return 0;
}

/* ---- ls ---- */

struct ls_opts {
	bool longfmt, recursive;
};

static int ls_opt(int c, const char *arg, void *priv)
{
	struct ls_opts *lo = priv;

	if (c == 'l')
		lo->longfmt = true;
	else if (c == 'R')
		lo->recursive = true;
	return 0;
}

struct names {
	char **name;
	uint64_t *ino;
	size_t n, cap;
};

static int names_add(const char *name, uint64_t ino, void *priv)
{
	struct names *l = priv;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **nn = realloc(l->name, cap * sizeof(*nn));
		if (nn)
			l->name = nn;
		uint64_t *ni = realloc(l->ino, cap * sizeof(*ni));
		if (ni)
			l->ino = ni;
		if (!nn || !ni)
			return err_set(ENOMEM, "out of memory");
		l->cap = cap;
	}
	if (!(l->name[l->n] = strdup(name)))
		return err_set(ENOMEM, "out of memory");
	l->ino[l->n++] = ino;
	return 0;
}

static void names_sort(struct names *l)
{
	for (size_t i = 1; i < l->n; i++) /* insertion sort keeps name and inode paired */
		for (size_t j = i; j > 0 && strcmp(l->name[j - 1], l->name[j]) > 0; j--) {
			char *t = l->name[j];
			l->name[j] = l->name[j - 1];
			l->name[j - 1] = t;
			uint64_t x = l->ino[j];
			l->ino[j] = l->ino[j - 1];
			l->ino[j - 1] = x;
		}
}

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->name[i]);
	free(l->name);
	free(l->ino);
}

static void mode_str(uint32_t mode, char *s)
{
	const char *rwx = "rwxrwxrwx";

	s[0] = S_ISDIR(mode)	? 'd'
	       : S_ISLNK(mode)	? 'l'
	       : S_ISCHR(mode)	? 'c'
	       : S_ISBLK(mode)	? 'b'
	       : S_ISFIFO(mode) ? 'p'
	       : S_ISSOCK(mode) ? 's'
				: '-';
	for (int i = 0; i < 9; i++)
		s[1 + i] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
	if (mode & S_ISUID)
		s[3] = (mode & S_IXUSR) ? 's' : 'S';
	if (mode & S_ISGID)
		s[6] = (mode & S_IXGRP) ? 's' : 'S';
	if (mode & S_ISVTX)
		s[9] = (mode & S_IXOTH) ? 't' : 'T';
	s[10] = 0;
}

static int ls_print(struct gfs *fs, const struct ls_opts *lo, const char *shown, uint64_t ino)
{
	struct gfs_stat st;
	char m[12], tbuf[64], target[4096] = "";
	int ret;

	if (!lo->longfmt) {
		puts(shown);
		return 0;
	}
	if ((ret = gfs_stat(fs, ino, &st)) < 0)
		return ret;
	if (S_ISLNK(st.mode) && (ret = gfs_readlink(fs, ino, target, sizeof(target))) < 0)
		return ret;
	mode_str(st.mode, m);
	struct tm tm;
	time_t t = st.mtime.tv_sec;
	gmtime_r(&t, &tm);
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s %3u %5u %5u %12llu %s %s%s%s\n", m, st.nlink, st.uid, st.gid,
	       (unsigned long long)st.size, tbuf, shown, target[0] ? " -> " : "", target);
	return 0;
}

#define LS_MAX_DEPTH 4096

/* anc holds the directory inodes above this one: meeting one again is a loop (damaged fs). */
static int ls_dir(struct gfs *fs, const struct ls_opts *lo, const char *path, uint64_t dir,
		  uint64_t *anc, int depth)
{
	struct names l = {0};
	int ret;

	for (int k = 0; k < depth; k++)
		if (anc[k] == dir)
			return err_set(ELOOP,
				       "%s: %s: directory loop (the directory contains itself)",
				       gfs_name(fs), path);
	if (depth >= LS_MAX_DEPTH)
		return err_set(ELOOP, "%s: %s: directory tree too deep", gfs_name(fs), path);
	anc[depth] = dir;
	ret = gfs_readdir(fs, dir, names_add, &l);
	names_sort(&l);
	for (size_t i = 0; ret == 0 && i < l.n; i++) {
		char *full = NULL;
		if (!lo->recursive) {
			ret = ls_print(fs, lo, l.name[i], l.ino[i]);
			continue;
		}
		if (asprintf(&full, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
			     l.name[i]) < 0) {
			ret = err_set(ENOMEM, "out of memory");
			break;
		}
		struct gfs_stat st;
		ret = ls_print(fs, lo, full, l.ino[i]);
		if (ret == 0 && (ret = gfs_stat(fs, l.ino[i], &st)) == 0 && S_ISDIR(st.mode))
			ret = ls_dir(fs, lo, full, l.ino[i], anc, depth + 1);
		free(full);
	}
	names_free(&l);
	return ret;
}

int fs_ls_main(int argc, char **argv)
{
	static const char usage[] = "ls [-l] [-R] DISK PATH";
	struct ls_opts lo = {0};
	struct fs_cli o;
	struct fs_handle h;
	struct gfs_stat st;
	uint64_t ino;
	int i = fs_cli_parse(&o, argc, argv, "lR", ls_opt, &lo, usage), ret;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_exact(argc - i + (addr || o.disk), 2, usage))
		return 1;
	if (fs_cli_open(&h, &o, addr, false))
		return 1;
	const char *path = argv[i];
	ret = gfs_lookup(h.gfs, path, true, &ino);
	if (ret == 0)
		ret = gfs_stat(h.gfs, ino, &st);
	if (ret == 0 && S_ISDIR(st.mode)) {
		uint64_t *anc = calloc(LS_MAX_DEPTH, sizeof(*anc));
		ret =
		    anc ? ls_dir(h.gfs, &lo, path, ino, anc, 0) : err_set(ENOMEM, "out of memory");
		free(anc);
	} else if (ret == 0)
		ret = ls_print(h.gfs, &lo, path, ino);
	fflush(stdout);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

int fs_cat_main(int argc, char **argv)
{
	static const char usage[] = "cat DISK PATH...";
	struct fs_cli o;
	struct fs_handle h;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_need(argc - i + (addr || o.disk), 2, usage))
		return 1;
	if (fs_cli_open(&h, &o, addr, false))
		return 1;
	for (; ret == 0 && i < argc; i++)
		ret = fs_cat(h.gfs, argv[i], STDOUT_FILENO);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

static const char *type_name(uint32_t mode)
{
	return S_ISREG(mode)	? "regular file"
	       : S_ISDIR(mode)	? "directory"
	       : S_ISLNK(mode)	? "symbolic link"
	       : S_ISCHR(mode)	? "character device"
	       : S_ISBLK(mode)	? "block device"
	       : S_ISFIFO(mode) ? "fifo"
	       : S_ISSOCK(mode) ? "socket"
				: "unknown";
}

static void time_text(const char *label, struct timespec ts)
{
	struct tm tm;
	char buf[64];
	time_t t = ts.tv_sec;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s: %s.%09ld +0000\n", label, buf, ts.tv_nsec);
}

static void add_time(struct json_object *o, const char *name, struct timespec ts)
{
	char key[32];

	json_object_object_add(o, name, json_object_new_int64(ts.tv_sec));
	snprintf(key, sizeof(key), "%s-nsec", name);
	json_object_object_add(o, key, json_object_new_int64(ts.tv_nsec));
}

static int stat_one(struct gfs *fs, const char *path, bool json)
{
	struct gfs_stat st;
	char target[4096] = "", m[12];
	uint64_t ino;
	int ret;

	if ((ret = gfs_lookup(fs, path, false, &ino)) < 0 || (ret = gfs_stat(fs, ino, &st)) < 0)
		return ret;
	if (S_ISLNK(st.mode) && (ret = gfs_readlink(fs, ino, target, sizeof(target))) < 0)
		return ret;
	if (json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(path));
		json_object_object_add(o, "type", json_object_new_string(type_name(st.mode)));
		json_object_object_add(o, "inode", json_object_new_int64((int64_t)st.ino));
		json_object_object_add(o, "mode", json_object_new_int(st.mode & 07777));
		json_object_object_add(o, "uid", json_object_new_int64(st.uid));
		json_object_object_add(o, "gid", json_object_new_int64(st.gid));
		json_object_object_add(o, "links", json_object_new_int64(st.nlink));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)st.size));
		json_object_object_add(o, "blocks", json_object_new_int64((int64_t)st.blocks));
		add_time(o, "atime", st.atime);
		add_time(o, "mtime", st.mtime);
		add_time(o, "ctime", st.ctime);
		add_time(o, "crtime", st.crtime);
		if (target[0])
			json_object_object_add(o, "target", json_object_new_string(target));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							   JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return 0;
	}
	mode_str(st.mode, m);
	printf("  File: %s%s%s\n", path, target[0] ? " -> " : "", target);
	printf("  Size: %-12llu Blocks: %-10llu %s\n", (unsigned long long)st.size,
	       (unsigned long long)st.blocks, type_name(st.mode));
	printf(" Inode: %-12llu Links: %u\n", (unsigned long long)st.ino, st.nlink);
	printf("Access: (%04o/%s)  Uid: %u  Gid: %u\n", st.mode & 07777, m, st.uid, st.gid);
	time_text("Access", st.atime);
	time_text("Modify", st.mtime);
	time_text("Change", st.ctime);
	time_text(" Birth", st.crtime);
	return 0;
}

int fs_stat_main(int argc, char **argv)
{
	static const char usage[] = "stat [--output=json] DISK PATH...";
	struct fs_cli o;
	struct fs_handle h;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_need(argc - i + (addr || o.disk), 2, usage))
		return 1;
	if (fs_cli_open(&h, &o, addr, false))
		return 1;
	for (; ret == 0 && i < argc; i++)
		ret = stat_one(h.gfs, argv[i], o.json);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

int fs_copy_out_main(int argc, char **argv)
{
	static const char usage[] = "copy-out DISK PATH... HOSTDIR";
	struct fs_cli o;
	struct fs_handle h;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_need(argc - i + (addr || o.disk), 3, usage))
		return 1;
	const char *hostdir = argv[argc - 1];
	struct stat hs;
	if (stat(hostdir, &hs) < 0 || !S_ISDIR(hs.st_mode))
		return cli_fail("%s: not an existing directory", hostdir);
	if (fs_cli_open(&h, &o, addr, false))
		return 1;
	for (; ret == 0 && i < argc - 1; i++)
		ret = fs_copy_out(h.gfs, argv[i], hostdir);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}
