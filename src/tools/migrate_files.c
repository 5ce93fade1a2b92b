/*
 * A few of a tree's files in memory: what the migration reads from the container before the
 * copy (os-release, network configuration, unit links, the dpkg status), whatever the source
 * (a directory, an archive read once, a remote tar). Symlinks resolve inside this tree, never
 * on the host.
 */
#include "fs/gfs.h"
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What the migration reads before copying. Trees are configuration directories: small. */
const struct mig_probe_item mig_probe_spec[] = {
    {"etc/os-release", MIG_PROBE_FILE},
    {"usr/lib/os-release", MIG_PROBE_FILE},
    {"etc/redhat-release", MIG_PROBE_FILE},
    {"etc/debian_version", MIG_PROBE_FILE},
    {"etc/hostname", MIG_PROBE_FILE},
    {"etc/resolv.conf", MIG_PROBE_FILE},
    {"etc/passwd", MIG_PROBE_FILE},
    {"etc/group", MIG_PROBE_FILE},
    {"etc/mtab", MIG_PROBE_NODE},
    {"etc/inittab", MIG_PROBE_FILE},
    {"etc/sysctl.conf", MIG_PROBE_FILE},
    {"etc/sysctl.d", MIG_PROBE_TREE},
    {"etc/selinux/config", MIG_PROBE_FILE},
    {"etc/network", MIG_PROBE_TREE},
    {"etc/sysconfig", MIG_PROBE_TREE},
    {"etc/systemd/system", MIG_PROBE_TREE},
    {"etc/systemd/network", MIG_PROBE_TREE},
    {"etc/init.d/vzquota", MIG_PROBE_NODE},
    {"etc/rc.d", MIG_PROBE_TREE},
    {"etc/rc0.d", MIG_PROBE_TREE},
    {"etc/rc1.d", MIG_PROBE_TREE},
    {"etc/rc2.d", MIG_PROBE_TREE},
    {"etc/rc3.d", MIG_PROBE_TREE},
    {"etc/rc4.d", MIG_PROBE_TREE},
    {"etc/rc5.d", MIG_PROBE_TREE},
    {"etc/rc6.d", MIG_PROBE_TREE},
    {"etc/rcS.d", MIG_PROBE_TREE},
    {"etc/init", MIG_PROBE_TREE},
    {"etc/init.removed", MIG_PROBE_TREE},
    {"etc/event.d", MIG_PROBE_TREE},
    {"var/lib/dpkg/status", MIG_PROBE_FILE},
    {"var/lib/rpm", MIG_PROBE_NODE},
    {".vzfifo", MIG_PROBE_NODE},
    {"bin", MIG_PROBE_NODE},
    {"sbin", MIG_PROBE_NODE},
    {"lib", MIG_PROBE_NODE},
    {"lib32", MIG_PROBE_NODE},
    {"lib64", MIG_PROBE_NODE},
    {"libx32", MIG_PROBE_NODE},
    {"usr/lib/systemd/systemd", MIG_PROBE_NODE},
    {"usr/lib/systemd/systemd-networkd", MIG_PROBE_NODE},
    {"usr/lib/systemd/system/serial-getty@.service", MIG_PROBE_NODE},
    {"usr/lib/systemd/system/getty@.service", MIG_PROBE_NODE},
    {"lib/systemd/systemd", MIG_PROBE_NODE},
    {"lib/systemd/systemd-networkd", MIG_PROBE_NODE},
    {"lib/systemd/system/serial-getty@.service", MIG_PROBE_NODE},
    {"lib/systemd/system/getty@.service", MIG_PROBE_NODE},
    {"sbin/ifup", MIG_PROBE_NODE},
    {"usr/sbin/ifup", MIG_PROBE_NODE},
    {"usr/sbin/NetworkManager", MIG_PROBE_NODE},
    {NULL, 0},
};

static void file_free(void *p)
{
	struct mig_file *f = p;

	if (f)
		free(f->data);
	free(f);
}

/* Directories above a path are entries of their own, so lookups can walk down to it. */
static int put_parents(struct mig_files *f, const char *path)
{
	char p[4096];
	struct fs_node dir = {.mode = S_IFDIR | 0755};

	snprintf(p, sizeof(p), "%s", path);
	for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (!strmap_find(&f->map, p) && mig_files_put(f, p, &dir, "", 0) < 0)
			return -ENOMEM;
		*s = '/';
	}
	return 0;
}

int mig_files_put(struct mig_files *f, const char *path, const struct fs_node *n, const void *data,
		  size_t len)
{
	if (strchr(path, '/') && put_parents(f, path) < 0)
		return -ENOMEM;
	struct mig_file *m = calloc(1, sizeof(*m));

	if (!m || !(m->data = malloc(len + 1))) {
		free(m);
		return err_set(ENOMEM, "out of memory");
	}
	if (len)
		memcpy(m->data, data, len);
	m->data[len] = 0;
	m->len = len;
	m->mode = n->mode;
	m->uid = n->uid;
	m->gid = n->gid;
	m->mtime = n->mtime;
	file_free(strmap_del(&f->map, path));
	if (strmap_put(&f->map, path, m) < 0) {
		file_free(m);
		return err_set(ENOMEM, "out of memory");
	}
	f->bytes += len;
	return 0;
}

/* Resolve path inside the tree: each symlink met (the last one with follow) is replaced by its
 * target, relative to its directory or to the root; ".." of the root is the root. 40 links at
 * most, as the kernel allows. */
const struct mig_file *mig_files_get(const struct mig_files *f, const char *path, bool follow)
{
	char done[4096] = "", rest[4096], tmp[4096];
	int links = 0;

	snprintf(rest, sizeof(rest), "%s", path);
	for (;;) {
		char *r = rest;
		while (*r == '/')
			r++;
		if (!*r)
			return strmap_get(&f->map, done);
		size_t n = strcspn(r, "/");
		char comp[256];
		if (n >= sizeof(comp))
			return NULL;
		memcpy(comp, r, n);
		comp[n] = 0;
		memmove(rest, r + n, strlen(r + n) + 1);
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			char *slash = strrchr(done, '/');
			*(slash ? slash : done) = 0;
			continue;
		}
		size_t dl = strlen(done);
		if (dl + n + 2 > sizeof(done))
			return NULL;
		char cand[4096];
		if ((size_t)snprintf(cand, sizeof(cand), "%s%s%s", done, dl ? "/" : "", comp) >=
		    sizeof(cand))
			return NULL;
		const struct mig_file *m = strmap_get(&f->map, cand);
		if (!m)
			return NULL;
		bool last = !rest[strspn(rest, "/")];
		if (S_ISLNK(m->mode) && (!last || follow)) {
			if (++links > 40)
				return NULL;
			if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", m->data, rest) >=
			    sizeof(tmp))
				return NULL;
			memcpy(rest, tmp, sizeof(rest));
			if (m->data[0] == '/')
				done[0] = 0;
			continue;
		}
		memcpy(done, cand, sizeof(done));
		if (last)
			return m;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mig_files_list(const struct mig_files *f, const char *dir, char ***names, size_t *n)
{
	size_t dl = strlen(dir), it = 0, cap = 0;
	struct strmap_slot *s;

	*names = NULL;
	*n = 0;
	while ((s = strmap_next(&f->map, &it))) {
		const char *k = s->key;
		if (dl && (strncmp(k, dir, dl) || k[dl] != '/'))
			continue;
		const char *rest = dl ? k + dl + 1 : k;
		if (!*rest || strchr(rest, '/'))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			char **v = realloc(*names, cap * sizeof(*v));
			if (!v)
				goto oom;
			*names = v;
		}
		if (!((*names)[*n] = strdup(rest)))
			goto oom;
		(*n)++;
	}
	if (*n > 1)
		qsort(*names, *n, sizeof(**names), cmp_str);
	return 0;
oom:
	mig_strv_free(*names, *n);
	*names = NULL;
	*n = 0;
	return err_set(ENOMEM, "out of memory");
}

void mig_files_del(struct mig_files *f, const char *path)
{
	file_free(strmap_del(&f->map, path[0] == '/' ? path + 1 : path));
}

void mig_files_free(struct mig_files *f)
{
	strmap_free(&f->map, file_free);
	f->bytes = 0;
}

void mig_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

struct names {
	char **v;
	size_t n;
};

static int add_name(const char *name, uint64_t ino, void *priv)
{
	struct names *l = priv;
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));

	(void)ino;
	if (!v || !(v[l->n] = strdup(name))) {
		if (v)
			l->v = v;
		return err_set(ENOMEM, "out of memory");
	}
	l->v = v;
	l->n++;
	return 0;
}

/* The names in a directory of the base (none when it is missing). */
int mig_gfs_names(struct gfs *fs, const char *dir, char ***out, size_t *n)
{
	struct names l = {0};
	uint64_t ino;
	int ret = gfs_lookup(fs, dir, true, &ino);

	if (ret < 0) {
		err_clear();
		ret = 0;
	} else {
		ret = gfs_readdir(fs, ino, add_name, &l);
	}
	*out = l.v;
	*n = l.n;
	return ret;
}
