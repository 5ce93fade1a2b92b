/*
 * `ligero migrate`: the whole workflow. The source is probed first (what the container is),
 * the base checked against it (same release, same /usr layout, an ext root, a kernel), then
 * the overlay created (or, for a re-sync, opened: its lock refuses a running VM) and written:
 * the copy, the package database, the network, the template's leftovers, the state.
 *
 * A run that is stopped (Ctrl-C, a full disk) closes the filesystem cleanly with the state
 * marked unfinished, and running the same command again resumes through the quick check. A
 * run killed outright leaves the ext filesystem half-updated: each writing run therefore starts
 * with an internal qcow2 snapshot of the overlay (cheap: the overlay holds only the
 * container's differences), deleted when it ends, and the next run returns to it when it finds
 * the filesystem not cleanly closed.
 */
#include "block/block.h"
#include "fs/disk.h"
#include "fs/ext.h"
#include "fs/gfs.h"
#include "fs/inspect.h"
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAPSHOT "ligero-migrate-checkpoint"

static int prepare_source(struct mig_ctx *c)
{
	const struct migrate_opts *o = c->o;
	int ret = mig_src_open(&c->src, o->source, o->rsh, o->progress != NULL);

	if (ret < 0)
		return ret;
	c->r->source = strdup(o->source);
	c->r->source_kind = strdup(c->src->kind);
	c->src->names = &c->probe;
	c->src->excludes = mig_vm_paths;
	if (o->config && (ret = mig_conf_read(c, o->config)) < 0)
		return ret;
	if ((ret = c->src->ops->probe(c->src, &c->probe)) < 0)
		return ret;
	return mig_ct_inspect(c);
}

static char *major(const char *v)
{
	return v ? strndup(v, strcspn(v, ".")) : NULL;
}

/* The base must be an installation of the container's release, with the same /usr layout, an
 * ext root (what ligero writes) and a kernel. */
static int check_base(struct mig_ctx *c, const char *base)
{
	struct fs_inspect in;
	uint64_t ino;
	struct gfs_stat st;
	char link[256] = "";
	int ret = fs_inspect_gfs(c->bdisk, c->bgfs, c->root_part, &in);

	if (ret < 0)
		return ret;
	c->r->base_os = strdup(in.os_pretty ? in.os_pretty : in.os_id ? in.os_id : "unknown");
	char *ma = major(in.os_version), *mb = major(c->r->os_version);
	bool same = in.os_id && !strcmp(in.os_id, c->r->os_id) && ma && mb && !strcmp(ma, mb);
	if (!in.os_id)
		ret = err_set(EINVAL,
			      "%s: no /etc/os-release: the base must be an installed system", base);
	else if (!in.nkernels)
		ret = err_set(EINVAL,
			      "%s: no kernel in /boot: the base must be an installed system that "
			      "boots (the VM gets its kernel)",
			      base);
	else if (!same && !c->o->force)
		ret = err_set(EINVAL,
			      "%s is %s and the container %s: the base must be an installation of "
			      "the same release (--force to go ahead anyway)",
			      base, c->r->base_os, c->r->os_pretty);
	else if (!same)
		mig_note(c, "the base is %s, the container %s: --force went ahead", c->r->base_os,
			 c->r->os_pretty);
	else if (in.os_version && c->r->os_version && strcmp(in.os_version, c->r->os_version))
		mig_note(c,
			 "the base is release %s, the container %s: update both to the same "
			 "point release",
			 in.os_version, c->r->os_version);
	free(ma);
	free(mb);
	fs_inspect_free(&in);
	if (ret < 0)
		return ret;
	if (strcmp(gfs_family(c->bgfs), "ext"))
		return err_set(
		    ENOTSUP,
		    "%s: the root filesystem is %s; ligero writes ext2/3/4 only (install "
		    "the base with an ext4 root)",
		    base, gfs_family(c->bgfs));
	bool merged = gfs_lookup(c->bgfs, "/lib", false, &ino) == 0 &&
		      gfs_stat(c->bgfs, ino, &st) == 0 && S_ISLNK(st.mode) &&
		      gfs_readlink(c->bgfs, ino, link, sizeof(link)) == 0 &&
		      strstr(link, "usr/lib");
	err_clear();
	if (merged != c->merged)
		return err_set(EINVAL,
			       "%s has a %s /usr and the container a %s one (/lib %s): the copy "
			       "would break one of them; install the base with the container's "
			       "layout",
			       base, merged ? "merged" : "split", c->merged ? "merged" : "split",
			       c->merged ? "links to usr/lib" : "is a directory");
	return 0;
}

static int open_base(struct mig_ctx *c, const char *base)
{
	int ret = fs_disk_open(&c->bdisk, base, false);

	if (ret == 0)
		ret = fs_disk_open_gfs(c->bdisk, 0, &c->bgfs, &c->root_part);
	if (ret == 0)
		ret = check_base(c, base);
	return ret;
}

static bool has_snapshot(struct bdev *bs)
{
	struct bdev_snapshot *list = NULL;
	int n = 0;
	bool found = false;

	if (bdev_snapshot_list(bs, &list, &n) < 0) {
		err_clear();
		return false;
	}
	for (int i = 0; i < n; i++)
		found |= !strcmp(list[i].name, SNAPSHOT);
	free(list);
	return found;
}

/* An interrupted run's overlay: back to its checkpoint if it was killed mid-write. */
static int recover(struct mig_ctx *c)
{
	struct extfs *fs;
	int used, ret = fs_disk_open_fs(c->disk, c->root_part, false, &fs, &used);

	if (ret < 0)
		return ret;
	bool dirty = extfs_warning(fs) != NULL;
	extfs_close(fs);
	c->r->resumed = true;
	/* A process killed while allocating leaves clusters nothing uses: give them back. */
	struct bdev_check_result res;
	memset(&res, 0, sizeof(res));
	ret = bdev_check(c->disk->bs, BDEV_CHECK_FIX_LEAKS, &res);
	bdev_check_result_free(&res);
	if (ret < 0)
		return ret;
	if (!dirty)
		return 0;
	if ((ret = bdev_snapshot_apply(c->disk->bs, SNAPSHOT)) < 0)
		return ret;
	mig_note(c, "the last run was killed while writing: the overlay went back to where that "
		    "run started, and this run does its work again");
	return 0;
}

/* Whether the existing output is this migration's (backed by base), and finished. */
static int existing_output(struct mig_ctx *c, const char *base)
{
	struct stat a, b;

	if (!c->disk->bs->backing_path || stat(c->disk->bs->backing_path, &a) < 0 ||
	    stat(base, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return err_set(EEXIST,
			       "%s exists and is not an overlay of %s: remove it or pick "
			       "another name",
			       c->o->output, base);
	if (has_snapshot(c->disk->bs))
		return recover(c);
	return err_set(
	    EEXIST, "%s exists: update it with 'ligero migrate --resync SOURCE %s', or remove it",
	    c->o->output, c->o->output);
}

/* A re-sync writes only into a migration's result: its state file says so. */
static int check_ours(struct mig_ctx *c)
{
	struct extfs *fs;
	uint32_t ino;
	int used, ret = fs_disk_open_fs(c->disk, c->root_part, false, &fs, &used);

	if (ret < 0)
		return ret;
	ret = extfs_lookup(fs, MIG_STATE, false, &ino);
	extfs_close(fs);
	if (ret < 0)
		return err_set(EINVAL, "%s: no %s in it: not a ligero migrate result", c->o->output,
			       MIG_STATE);
	return 0;
}

static int open_target(struct mig_ctx *c, const char *base)
{
	const struct migrate_opts *o = c->o;
	int used, ret;

	if (c->dry) {
		if (o->resync && (ret = fs_disk_open(&c->disk, o->output, false)) < 0)
			return ret;
		return fs_disk_open_fs(o->resync ? c->disk : c->bdisk, c->root_part, false, &c->fs,
				       &used);
	}
	if (!o->resync && access(o->output, F_OK) != 0) {
		char abs[4096];
		struct bdev_create_opts co = {.backing_file = realpath(base, abs) ? abs : base};
		if ((ret = bdev_create(o->output, "qcow2", &co)) < 0)
			return ret;
		ret = fs_disk_open(&c->disk, o->output, true);
	} else {
		ret = fs_disk_open(&c->disk, o->output, true);
		if (ret == 0 && !o->resync)
			ret = existing_output(c, base);
		else if (ret == 0 && has_snapshot(c->disk->bs))
			ret = recover(c);
		else if (ret == 0)
			ret = check_ours(c);
	}
	if (ret < 0)
		return ret;
	if (has_snapshot(c->disk->bs) && (ret = bdev_snapshot_delete(c->disk->bs, SNAPSHOT)) < 0)
		return ret;
	if ((ret = bdev_snapshot_create(c->disk->bs, SNAPSHOT)) < 0)
		return ret;
	if ((ret = fs_disk_open_fs(c->disk, c->root_part, true, &c->fs, &used)) < 0)
		return ret;
	c->writing = true;
	return extfs_mark_mounted(c->fs);
}

static int resync_base(struct mig_ctx *c, char **base)
{
	struct bdev *bs;
	int ret = bdev_open(&bs, c->o->output, NULL, BDEV_O_NO_BACKING | BDEV_O_FORCE_SHARE);

	if (ret < 0)
		return ret;
	if (!bs->backing_path)
		ret = err_set(EINVAL,
			      "%s: not an overlay (no backing file): not a ligero migrate "
			      "result",
			      c->o->output);
	else if (!(*base = strdup(bs->backing_path)))
		ret = err_set(ENOMEM, "out of memory");
	bdev_close(bs);
	return ret;
}

static int prepare_target(struct mig_ctx *c)
{
	int state;
	int ret = mig_state_load(c, &state);

	if (ret == 0 && c->o->mac)
		c->r->mac = strdup(c->o->mac);
	if (ret == 0 && (ret = mig_rules_init(&c->rules, c->fs)) == 0)
		ret = mig_pkg_prepare(c);
	/* What ligero made earlier is the VM's: the copy neither deletes nor replaces it. */
	size_t it = 0;
	struct strmap_slot *s;
	while (ret == 0 && (s = strmap_next(&c->prev, &it))) {
		const struct migrate_change *ch = s->val;
		if (!ch->backup)
			ret = mig_rules_add(&c->rules, c->fs, ch->path);
	}
	if (ret == 0)
		ret = mig_fix_prepare(c);
	if (ret == 0 && !c->dry)
		ret = mig_state_save(c, false);
	return ret;
}

static int fixups(struct mig_ctx *c)
{
	int ret = mig_pkg_fix(c);

	if (ret == 0 && !c->r->mac) {
		char mac[18];
		mig_net_default_mac(c, mac);
		c->r->mac = strdup(mac);
	}
	if (ret == 0)
		ret = mig_net_fix(c);
	if (ret == 0)
		ret = mig_fix_leftovers(c);
	return ret;
}

/* Close the target: the filesystem cleanly whatever happened, the checkpoint only when the
 * run finished. */
static int close_target(struct mig_ctx *c, int ret)
{
	if (c->writing) {
		int r2 = mig_state_save(c, ret == 0);
		if (ret == 0)
			ret = r2;
	}
	int r3 = extfs_close(c->fs);
	c->fs = NULL;
	if (ret == 0)
		ret = r3;
	if (ret == 0 && !c->dry && c->disk)
		ret = bdev_snapshot_delete(c->disk->bs, SNAPSHOT);
	fs_disk_close(c->disk);
	c->disk = NULL;
	return ret;
}

int migrate_run(const struct migrate_opts *o, struct migrate_report *r)
{
	struct mig_ctx c = {.o = o, .r = r, .dry = o->dry_run};
	char *base = NULL;
	int ret;

	memset(r, 0, sizeof(*r));
	r->dry_run = o->dry_run;
	r->resync = o->resync;
	r->output = strdup(o->output);
	ret = prepare_source(&c);
	if (ret == 0 && o->resync)
		ret = resync_base(&c, &base);
	else if (ret == 0 && !(base = strdup(o->base)))
		ret = err_set(ENOMEM, "out of memory");
	if (ret == 0) {
		r->base = strdup(base);
		ret = open_base(&c, base);
	}
	if (ret == 0)
		ret = open_target(&c, base);
	if (ret == 0)
		ret = prepare_target(&c);
	if (ret == 0)
		ret = mig_sync(&c);
	if (ret == 0)
		ret = fixups(&c);
	if (ret == 0 && c.src->remote_status == 1)
		mig_note(&c,
			 "files changed while the server's tar read them (%s): stop the "
			 "services that write (databases) and run --resync",
			 c.src->remote_said);
	else if (ret == 0 && c.src->remote_said[0])
		mig_note(&c, "the server said: %s", c.src->remote_said);
	/* Closing records messages of its own: the first failure's is the one to show. */
	char *msg = ret < 0 ? strdup(err_msg_or(ret)) : NULL;
	if (c.fs || c.disk)
		ret = close_target(&c, ret);
	if (c.bgfs)
		gfs_close(c.bgfs);
	fs_disk_close(c.bdisk);
	mig_src_close(c.src);
	mig_files_free(&c.probe);
	mig_files_free(&c.basef);
	strmap_free(&c.cfg, free);
	mig_rules_free(&c.rules);
	mig_prev_free(&c);
	mig_strv_free(c.pkg_owned, c.npkg_owned);
	free(c.status_merged);
	free(base);
	if (msg && ret < 0)
		err_set(-ret, "%s", msg);
	free(msg);
	return ret;
}
