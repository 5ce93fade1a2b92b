/*
 * Inspection reads a handful of small, well-known files. Guest files are untrusted: each is read
 * with a size cap, and anything unparsable is skipped rather than failing the whole inspection.
 */
#include "fs/inspect.h"
#include "fs/disk.h"
#include "fs/ext.h"
#include "fs/gfs.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SMALL (256 * 1024)

/* A whole small file as a string, or NULL when it is absent, not regular, or too big. */
static char *read_small(struct gfs *fs, const char *path)
{
	char *buf;
	size_t len;

	return gfs_read_file(fs, path, MAX_SMALL, &buf, &len) < 0 ? NULL : buf;
}

static char *dup_trim(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0])
		s++, n -= 2;
	return strndup(s, n);
}

/* os-release: KEY=VALUE lines, values optionally quoted. */
static void parse_os_release(char *text, struct fs_inspect *in)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
	    {"ID", offsetof(struct fs_inspect, os_id)},
	    {"NAME", offsetof(struct fs_inspect, os_name)},
	    {"VERSION_ID", offsetof(struct fs_inspect, os_version)},
	    {"PRETTY_NAME", offsetof(struct fs_inspect, os_pretty)},
	    {"VERSION_CODENAME", offsetof(struct fs_inspect, os_codename)},
	};
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			char **field = (char **)((char *)in + keys[k].off);
			if ((size_t)(eq - line) == strlen(keys[k].key) &&
			    !strncmp(line, keys[k].key, (size_t)(eq - line)) && !*field)
				*field = dup_trim(eq + 1, strlen(eq + 1));
		}
	}
}

static void parse_hostname(struct gfs *fs, struct fs_inspect *in)
{
	char *t = read_small(fs, "/etc/hostname");

	if (t) {
		size_t n = strcspn(t, "\n");
		in->hostname = dup_trim(t, n);
		free(t);
		if (in->hostname && !in->hostname[0]) {
			free(in->hostname);
			in->hostname = NULL;
		}
	}
	if (in->hostname || !(t = read_small(fs, "/etc/sysconfig/network")))
		return;
	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
		if (!strncmp(line, "HOSTNAME=", 9) && !in->hostname)
			in->hostname = dup_trim(line + 9, strlen(line + 9));
	free(t);
}

static void parse_fstab(struct gfs *fs, struct fs_inspect *in)
{
	char *t = read_small(fs, "/etc/fstab"), *save = NULL;

	if (!t)
		return;
	for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[4] = {0}, *s2 = NULL;
		int n = 0;
		for (char *w = strtok_r(line, " \t", &s2); w && n < 4;
		     w = strtok_r(NULL, " \t", &s2))
			f[n++] = w;
		if (n < 3 || f[0][0] == '#')
			continue;
		struct fs_fstab_entry *v = realloc(in->fstab, (in->nfstab + 1) * sizeof(*v));
		if (!v)
			break;
		in->fstab = v;
		v[in->nfstab++] = (struct fs_fstab_entry){strdup(f[0]), strdup(f[1]), strdup(f[2]),
							  strdup(f[3] ? f[3] : "defaults")};
	}
	free(t);
}

struct dirlist {
	char **names;
	size_t n;
};

static int dl_add(const char *name, uint64_t ino, void *priv)
{
	struct dirlist *l = priv;
	char **v = realloc(l->names, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->names = v;
	if ((v[l->n] = strdup(name)))
		l->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in a guest directory (empty when it does not exist). */
static void list_dir(struct gfs *fs, const char *path, struct dirlist *l)
{
	uint64_t ino;

	l->names = NULL;
	l->n = 0;
	if (gfs_lookup(fs, path, true, &ino) < 0 || gfs_readdir(fs, ino, dl_add, l) < 0)
		return;
	if (l->n > 1)
		qsort(l->names, l->n, sizeof(*l->names), cmp_str);
}

static void dl_free(struct dirlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
}

static bool exists(struct gfs *fs, const char *path)
{
	uint64_t ino;

	return gfs_lookup(fs, path, true, &ino) == 0;
}

static char *joinp(const char *dir, const char *name)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name) < 0)
		return NULL;
	return s;
}

/* vmlinuz-VER with initrd.img-VER (Debian), initramfs-VER.img (Fedora family) or initrd-VER. */
static void find_kernels(struct gfs *fs, const char *dir, struct fs_inspect *in)
{
	struct dirlist l;

	list_dir(fs, dir, &l);
	for (size_t i = 0; i < l.n; i++) {
		const char *ver = l.names[i] + 8;
		if (strncmp(l.names[i], "vmlinuz-", 8) || !*ver)
			continue;
		struct fs_kernel *v = realloc(in->kernels, (in->nkernels + 1) * sizeof(*v));
		if (!v)
			break;
		in->kernels = v;
		struct fs_kernel *k = &v[in->nkernels++];
		k->version = strdup(ver);
		k->kernel = joinp(dir, l.names[i]);
		k->initrd = NULL;
		static const char *const pre[] = {"initrd.img-", "initramfs-", "initrd-"};
		static const char *const suf[] = {"", ".img", ""};
		for (size_t p = 0; p < 3 && !k->initrd; p++) {
			char name[512];
			snprintf(name, sizeof(name), "%s%s%s", pre[p], ver, suf[p]);
			char *path = joinp(dir, name);
			if (path && exists(fs, path))
				k->initrd = path;
			else
				free(path);
		}
	}
	dl_free(&l);
}

static void add_net(struct fs_inspect *in, char *path)
{
	char **v = path ? realloc(in->netfiles, (in->nnetfiles + 1) * sizeof(*v)) : NULL;

	if (!v) {
		free(path);
		return;
	}
	in->netfiles = v;
	v[in->nnetfiles++] = path;
}

static void find_net(struct gfs *fs, struct fs_inspect *in)
{
	static const struct {
		const char *dir, *prefix, *suffix;
	} places[] = {
	    {"/etc/sysconfig/network-scripts", "ifcfg-", ""},
	    {"/etc/network/interfaces.d", "", ""},
	    {"/etc/netplan", "", ".yaml"},
	    {"/etc/NetworkManager/system-connections", "", ""},
	    {"/etc/systemd/network", "", ".network"},
	};
	if (exists(fs, "/etc/network/interfaces"))
		add_net(in, strdup("/etc/network/interfaces"));
	for (size_t p = 0; p < sizeof(places) / sizeof(places[0]); p++) {
		struct dirlist l;
		list_dir(fs, places[p].dir, &l);
		for (size_t i = 0; i < l.n; i++) {
			const char *n = l.names[i];
			size_t nl = strlen(n), sl = strlen(places[p].suffix);
			if (strncmp(n, places[p].prefix, strlen(places[p].prefix)) || nl < sl ||
			    strcmp(n + nl - sl, places[p].suffix))
				continue;
			add_net(in, joinp(places[p].dir, n));
		}
		dl_free(&l);
	}
}

/* A separate /boot: the disk's other filesystems (ext, or xfs as RHEL's /boot is) with vmlinuz-*
 * at their root. */
static void find_boot_part(struct fs_disk *d, int root_part, struct fs_inspect *in)
{
	struct fs_slot *s;
	size_t n;

	if (fs_disk_slots(d, &s, &n) < 0)
		return;
	for (size_t i = 0; i < n && !in->nkernels; i++) {
		struct gfs *fs;
		if (s[i].num == root_part ||
		    (!fs_type_is_ext(s[i].probe.type) && strcmp(s[i].probe.type, "xfs")) ||
		    fs_disk_open_gfs(d, s[i].num, &fs, NULL) < 0)
			continue;
		find_kernels(fs, "/", in);
		if (in->nkernels)
			in->boot_part = s[i].num;
		gfs_close(fs);
	}
	free(s);
	err_clear();
}

int fs_inspect(struct fs_disk *d, struct extfs *root, int root_part, struct fs_inspect *out)
{
	struct gfs *fs;
	int ret = gfs_wrap_ext(&fs, root);

	if (ret < 0)
		return ret;
	ret = fs_inspect_gfs(d, fs, root_part, out);
	gfs_close(fs);
	return ret;
}

int fs_inspect_gfs(struct fs_disk *d, struct gfs *root, int root_part, struct fs_inspect *out)
{
	memset(out, 0, sizeof(*out));
	out->root_part = out->boot_part = root_part;
	char *osr = read_small(root, "/etc/os-release");
	if (!osr)
		osr = read_small(root, "/usr/lib/os-release");
	if (osr) {
		parse_os_release(osr, out);
		free(osr);
	}
	parse_hostname(root, out);
	parse_fstab(root, out);
	find_kernels(root, "/boot", out);
	if (!out->nkernels && d)
		find_boot_part(d, root_part, out);
	find_net(root, out);
	err_clear();
	return 0;
}

void fs_inspect_free(struct fs_inspect *in)
{
	free(in->os_id);
	free(in->os_name);
	free(in->os_version);
	free(in->os_pretty);
	free(in->os_codename);
	free(in->hostname);
	for (size_t i = 0; i < in->nkernels; i++) {
		free(in->kernels[i].version);
		free(in->kernels[i].kernel);
		free(in->kernels[i].initrd);
	}
	free(in->kernels);
	for (size_t i = 0; i < in->nfstab; i++) {
		free(in->fstab[i].spec);
		free(in->fstab[i].file);
		free(in->fstab[i].type);
		free(in->fstab[i].options);
	}
	free(in->fstab);
	for (size_t i = 0; i < in->nnetfiles; i++)
		free(in->netfiles[i]);
	free(in->netfiles);
	memset(in, 0, sizeof(*in));
}
