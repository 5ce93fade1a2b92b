/*
 * Fleets (fleet.h): names, MACs, and the verbs that change files: create, reset, delete.
 * Starting and stopping members in parallel is fleet_run.c.
 */
#include "host/fleet.h"
#include "block/block.h"
#include "block/rbd.h"
#include "host/fleet_rbd.h"
#include "host/vmdisks.h"
#include "tools/sysprep.h"
#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fleet_member_name(const char *prefix, unsigned index, char name[VMDEF_NAME_MAX + 1])
{
	int n = snprintf(name, VMDEF_NAME_MAX + 1, "%s%u", prefix, index);

	if (n < 0 || n > VMDEF_NAME_MAX)
		return err_set(
		    EINVAL,
		    "fleet prefix '%.20s...' is too long: member names are at most %d bytes",
		    prefix, VMDEF_NAME_MAX);
	return 0;
}

int fleet_prefix_check(const char *prefix, unsigned long count)
{
	char name[VMDEF_NAME_MAX + 1];
	size_t len = strlen(prefix);
	int ret;

	if (count < 1 || count > FLEET_MAX_COUNT)
		return err_set(EINVAL, "a fleet has 1 to %d members, not %lu", FLEET_MAX_COUNT,
			       count);
	if (!len)
		return err_set(EINVAL, "a fleet prefix cannot be empty");
	if (strchr(prefix, '/'))
		return err_set(EINVAL,
			       "fleet prefix '%s' has a '/': it names VMs and files, not a path",
			       prefix);
	if (isdigit((unsigned char)prefix[len - 1]))
		return err_set(
		    EINVAL,
		    "fleet prefix '%s' ends in a digit: its member names would be ambiguous "
		    "(%s1 is also member 11 of '%.*s'); end it with a letter or '-'",
		    prefix, prefix, (int)(len - 1), prefix);
	if ((ret = fleet_member_name(prefix, (unsigned)count, name)) < 0)
		return ret;
	if ((ret = vmdef_name_check(name)) < 0)
		return err_prefix(ret, "fleet prefix '%s': ", prefix);
	return 0;
}

unsigned fleet_member_index(const char *prefix, const char *name)
{
	size_t len = strlen(prefix);
	unsigned long v = 0;
	const char *p;

	if (strncmp(name, prefix, len) || name[len] < '1' || name[len] > '9')
		return 0;
	for (p = name + len; *p; p++) {
		if (!isdigit((unsigned char)*p) || v > FLEET_MAX_COUNT * 10ul)
			return 0;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	return v <= FLEET_MAX_COUNT ? (unsigned)v : 0;
}

void fleet_member_mac(const char *prefix, unsigned index, unsigned nic, char mac[VMDEF_MAC_LEN + 1])
{
	uint32_t h = 2166136261u; /* FNV-1a: stable across builds and hosts */
	unsigned low = ((index & 0xfff) << 4) | (nic & 0xf);

	for (const unsigned char *p = (const unsigned char *)prefix; *p; p++)
		h = (h ^ *p) * 16777619u;
	snprintf(mac, VMDEF_MAC_LEN + 1, "%02x:%02x:%02x:%02x:%02x:%02x",
		 (unsigned)(((h >> 24) & 0xfc) | 0x02), (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff,
		 low >> 8, low & 0xff);
}

/* Members share their prefix: a shorter name is a smaller index, and among names of one length
 * the digits compare as text. */
static int by_index(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;

	return strlen(x) != strlen(y) ? (strlen(x) < strlen(y) ? -1 : 1) : strcmp(x, y);
}

int fleet_members(const struct registry *r, const char *prefix, char ***names, size_t *n)
{
	size_t k = 0;
	int ret = registry_names(r, names, n);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < *n; i++) {
		if (fleet_member_index(prefix, (*names)[i]))
			(*names)[k++] = (*names)[i];
		else
			free((*names)[i]);
	}
	*n = k;
	if (k)
		qsort(*names, k, sizeof(**names), by_index);
	return 0;
}

char *fleet_overlay_path(const char *dir, const char *name)
{
	char *p;

	return asprintf(&p, "%s/%s.qcow2", dir, name) < 0 ? NULL : p;
}

/* ---- create ---- */

/* The base: an existing image file, opened read-only once to learn its format (recorded in
 * every overlay, so no open probes it again). */
static int base_probe(const char *base, char **abs, const char **fmt)
{
	struct bdev *bs;
	struct stat st;
	int ret;

	if (bdev_is_remote_name(base))
		return err_set(EINVAL,
			       "base %s: a fleet's base is a local image file or an RBD snapshot "
			       "(rbd:POOL/IMAGE@SNAP)",
			       base);
	if (!(*abs = realpath(base, NULL)) || stat(*abs, &st) < 0) {
		ret = err_sys(errno, "base %s", base);
		free(*abs);
		*abs = NULL;
		return ret;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		ret = err_set(EINVAL, "base %s is not an image file", base);
	else if ((ret = bdev_open(&bs, *abs, NULL, 0)) == 0) {
		*fmt = bs->drv->name;
		bdev_close(bs);
	} else {
		err_prefix(ret, "base: ");
	}
	if (ret < 0) {
		free(*abs);
		*abs = NULL;
	}
	return ret;
}

static int dir_check(const char *dir, char **abs)
{
	struct stat st;

	if (!(*abs = realpath(dir, NULL)) || stat(*abs, &st) < 0) {
		int ret = err_sys(errno, "disk directory %s", dir);
		free(*abs);
		*abs = NULL;
		return ret;
	}
	if (!S_ISDIR(st.st_mode) || access(*abs, W_OK | X_OK) < 0) {
		int ret = S_ISDIR(st.st_mode)
			      ? err_sys(errno, "disk directory %s is not writable", dir)
			      : err_set(ENOTDIR, "disk directory %s is not a directory", dir);
		free(*abs);
		*abs = NULL;
		return ret;
	}
	return 0;
}

/* A member's disk goes: an overlay file is unlinked, an RBD clone removed from its pool. The
 * error message recorded before stays. */
static void disk_remove(const char *path)
{
	char why[1024];

	if (!bdev_rbd_is_name(path)) {
		unlink(path);
		return;
	}
	snprintf(why, sizeof(why), "%s", err_msg());
	bdev_rbd_remove(path);
	err_set(0, "%s", why);
}

/* A fresh overlay of base at path (which must not exist), sysprepped for member name. An RBD
 * path gets an RBD clone of base (an RBD snapshot) instead. */
static int overlay_make(const char *path, const char *base, const char *fmt, const char *name,
			bool sysprep)
{
	struct bdev_create_opts co = {.backing_file = base, .backing_fmt = fmt};
	struct sysprep_opts so = {.ops = sysprep_default_ops(), .hostname = name};
	struct sysprep_result res;
	int ret = bdev_create(path, bdev_rbd_is_name(path) ? "raw" : "qcow2", &co);

	if (ret < 0 || !sysprep)
		return ret;
	ret = sysprep_run(path, &so, &res);
	sysprep_result_free(&res);
	if (ret < 0) {
		char why[900];
		snprintf(why, sizeof(why), "%s", err_msg_or(ret));
		err_set(-ret, "sysprep of %s: %s (a base with no Linux root needs --no-sysprep)",
			path, why);
		disk_remove(path);
	}
	return ret;
}

/* Member index's definition: the template with the overlay first and the member's MACs. */
static int member_def(const struct fleet_create_opts *o, unsigned index, const char *overlay,
		      struct vmdef *d)
{
	const struct vmdef *t = o->tmpl;
	struct vmdef_disk disk = {.path = (char *)overlay,
				  .format = bdev_rbd_is_name(overlay) ? "raw" : "qcow2"};
	int ret;

	*d = (struct vmdef){.memory = t->memory,
			    .cpus = t->cpus,
			    .balloon = t->balloon,
			    .rng = t->rng,
			    .autostart = t->autostart};
	if ((ret = fleet_member_name(o->prefix, index, d->name)) < 0)
		return ret;
	vmdef_random_uuid(d->uuid);
	vmdef_stamp(d);
	if ((t->kernel && !(d->kernel = strdup(t->kernel))) ||
	    (t->initrd && !(d->initrd = strdup(t->initrd))) ||
	    (t->cmdline && !(d->cmdline = strdup(t->cmdline))))
		return err_set(ENOMEM, "out of memory");
	if ((ret = vmdef_add_disk(d, &disk)) < 0)
		return ret;
	for (size_t i = 0; i < t->ndisks; i++)
		if ((ret = vmdef_add_disk(d, &t->disks[i])) < 0)
			return ret;
	for (size_t i = 0; i < t->nnets; i++) {
		struct vmdef_net n = {.bridge = t->nets[i].bridge};
		fleet_member_mac(o->prefix, index, (unsigned)i, n.mac);
		if ((ret = vmdef_add_net(d, &n)) < 0)
			return ret;
	}
	return vmdef_validate(d);
}

static int template_check(const struct vmdef *t)
{
	if (t->nnets > FLEET_MAX_NICS)
		return err_set(EINVAL, "a fleet member has at most %d NICs", FLEET_MAX_NICS);
	for (size_t i = 0; i < t->nnets; i++)
		if (t->nets[i].tap || !t->nets[i].bridge)
			return err_set(EINVAL, "--net: members cannot share one tap; give each a "
					       "bridge (bridge=BR) and ligero makes their taps");
	for (size_t i = 0; i < t->ndisks; i++)
		if (!t->disks[i].readonly)
			return err_set(EINVAL,
				       "--disk %s: every member would write to it; a disk all "
				       "members share must be readonly=on",
				       t->disks[i].path);
	return 0;
}

/* Where the members' disks go: overlay files in dir, or RBD clones named by rb. */
struct place {
	char *dir;
	struct fleet_rbd rb;
};

static char *member_disk(const struct place *pl, const char *name)
{
	char *p = pl->rb.head ? fleet_rbd_member(&pl->rb, name) : fleet_overlay_path(pl->dir, name);

	if (!p)
		err_set(ENOMEM, "out of memory");
	return p;
}

/* Under the registry lock: nothing of the fleet may exist yet. An RBD clone that exists
 * already is found by the clone itself (the cluster refuses it, and create undoes the
 * members made before): asking the cluster first would cost a connection per member. */
static int create_precheck(const struct registry *r, const struct fleet_create_opts *o,
			   const struct place *pl)
{
	char name[VMDEF_NAME_MAX + 1], mac[VMDEF_MAC_LEN + 1], **names, *owner, *path;
	size_t n;
	int ret = fleet_members(r, o->prefix, &names, &n);

	if (ret < 0)
		return ret;
	if (n)
		ret = err_set(EEXIST, "VM %s exists already: fleet '%s' would take its name",
			      names[0], o->prefix);
	registry_names_free(names, n);
	for (unsigned i = 1; ret == 0 && i <= o->count; i++) {
		if ((ret = fleet_member_name(o->prefix, i, name)) < 0)
			break;
		if (!(path = member_disk(pl, name)))
			return -ENOMEM;
		if (!pl->rb.head && (access(path, F_OK) == 0 || errno != ENOENT))
			ret = err_set(EEXIST,
				      "%s: %s's disk exists already (remove it, or use "
				      "--disk-dir)",
				      path, name);
		free(path);
		for (size_t k = 0; ret == 0 && k < o->tmpl->nnets; k++) {
			fleet_member_mac(o->prefix, i, (unsigned)k, mac);
			if ((owner = registry_mac_owner(r, mac, NULL))) {
				ret = err_set(EEXIST,
					      "MAC address %s of %s is VM %s's already: choose "
					      "another prefix",
					      mac, name, owner);
				free(owner);
			}
		}
	}
	return ret;
}

/* Undo members 1..made: definitions and overlays (or clones). */
static void create_undo(const struct registry *r, const struct fleet_create_opts *o,
			const struct place *pl, unsigned made, bool last_defined)
{
	char name[VMDEF_NAME_MAX + 1], *path;

	for (unsigned i = 1; i <= made; i++) {
		if (fleet_member_name(o->prefix, i, name) < 0)
			continue;
		if (i < made || last_defined)
			registry_remove(r, name);
		if ((path = member_disk(pl, name))) {
			disk_remove(path);
			free(path);
		}
	}
}

static int create_locked(const struct registry *r, const struct fleet_create_opts *o,
			 const char *base, const char *fmt, const struct place *pl)
{
	char name[VMDEF_NAME_MAX + 1], *path = NULL;
	struct vmdef d = {0};
	unsigned i;
	int ret;

	if ((ret = create_precheck(r, o, pl)) < 0)
		return ret;
	for (i = 1; i <= o->count; i++) {
		if ((ret = fleet_member_name(o->prefix, i, name)) < 0)
			break;
		if (!(path = member_disk(pl, name))) {
			ret = -ENOMEM;
			break;
		}
		if ((ret = overlay_make(path, base, fmt, name, o->sysprep)) < 0) {
			free(path);
			create_undo(r, o, pl, i - 1, true);
			return err_prefix(ret, "%s: ", name);
		}
		ret = member_def(o, i, path, &d);
		if (ret == 0)
			ret = registry_create(r, &d);
		vmdef_free(&d);
		free(path);
		if (ret < 0) {
			create_undo(r, o, pl, i, false);
			return err_prefix(ret, "%s: ", name);
		}
	}
	if (ret < 0)
		create_undo(r, o, pl, i - 1, true);
	return ret;
}

/* The base and where the members go: overlays beside a local base (or in --disk-dir), RBD
 * clones of an RBD base's snapshot in its pool (or --disk-pool). */
static int place_get(const struct fleet_create_opts *o, char **base, const char **fmt,
		     struct place *pl)
{
	char *slash;
	int ret;

	*pl = (struct place){0};
	if (bdev_rbd_is_name(o->base)) {
		if (o->disk_dir)
			return err_set(
			    EINVAL,
			    "--disk-dir %s: the members of an RBD base are RBD clones in "
			    "its pool (--disk-pool POOL puts them in another)",
			    o->disk_dir);
		*fmt = "raw";
		if ((ret = fleet_rbd_base(o->base, o->disk_pool, &pl->rb)) == 0 &&
		    !(*base = strdup(o->base)))
			ret = err_set(ENOMEM, "out of memory");
		return ret;
	}
	if (o->disk_pool)
		return err_set(EINVAL,
			       "--disk-pool %s: only the members of an RBD base "
			       "(rbd:POOL/IMAGE@SNAP) go in a pool",
			       o->disk_pool);
	if ((ret = base_probe(o->base, base, fmt)) < 0)
		return ret;
	if (!o->disk_dir && (slash = strrchr(*base, '/'))) {
		char *d = strndup(*base, slash == *base ? 1 : (size_t)(slash - *base));
		ret = d ? dir_check(d, &pl->dir) : err_set(ENOMEM, "out of memory");
		free(d);
	} else {
		ret = dir_check(o->disk_dir ? o->disk_dir : ".", &pl->dir);
	}
	return ret;
}

int fleet_create(const struct registry *r, const struct fleet_create_opts *o)
{
	char *base = NULL;
	const char *fmt = NULL;
	struct place pl;
	int ret, lock;

	if ((ret = fleet_prefix_check(o->prefix, o->count)) < 0 ||
	    (ret = template_check(o->tmpl)) < 0)
		return ret;
	if (o->sysprep) {
		char longest[VMDEF_NAME_MAX + 1];
		fleet_member_name(o->prefix, o->count, longest);
		if (!sysprep_hostname_valid(longest))
			return err_set(EINVAL,
				       "fleet prefix '%s': member name %s is not a valid hostname "
				       "(letters, digits, inner '-'), which sysprep sets; or use "
				       "--no-sysprep",
				       o->prefix, longest);
	}
	if ((ret = place_get(o, &base, &fmt, &pl)) < 0)
		goto out;
	if ((ret = registry_prepare(r, false)) < 0 || (ret = lock = registry_lock(r)) < 0)
		goto out;
	ret = create_locked(r, o, base, fmt, &pl);
	registry_unlock(lock);
out:
	free(base);
	free(pl.dir);
	fleet_rbd_free(&pl.rb);
	return ret;
}

/* ---- reset and delete: every member's lock, or none ---- */

struct held {
	char **names;
	size_t n;
	int *fds;
};

static void held_release(struct held *h)
{
	for (size_t i = 0; h->fds && i < h->n; i++)
		if (h->fds[i] >= 0)
			close(h->fds[i]);
	free(h->fds);
	registry_names_free(h->names, h->n);
	*h = (struct held){0};
}

/* Take every member's VM lock (so none can start meanwhile). -ENOENT when the fleet has no
 * member, -EBUSY naming the running ones. */
static int held_take(const struct registry *r, const char *prefix, const char *doing,
		     struct held *h)
{
	char busy[512] = "";
	size_t nbusy = 0;
	pid_t holder;
	int ret;

	*h = (struct held){0};
	if ((ret = fleet_members(r, prefix, &h->names, &h->n)) < 0)
		return ret;
	if (!h->n) {
		held_release(h);
		return err_set(ENOENT, "no fleet '%s': no VM is named %s1, %s2, ...", prefix,
			       prefix, prefix);
	}
	if (!(h->fds = malloc(h->n * sizeof(*h->fds)))) {
		held_release(h);
		return err_set(ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < h->n; i++) {
		h->fds[i] = vm_lock_try(r, h->names[i], &holder);
		if (h->fds[i] == -EBUSY) {
			size_t l = strlen(busy);
			snprintf(busy + l, sizeof(busy) - l, "%s%s", nbusy++ ? ", " : "",
				 h->names[i]);
		} else if (h->fds[i] < 0) {
			ret = h->fds[i];
			held_release(h);
			return ret;
		} else {
			vm_clean_stale(r, h->names[i], h->fds[i]);
		}
	}
	if (nbusy) {
		held_release(h);
		return err_set(EBUSY,
			       "fleet '%s': %s %s running: stop %s before %s ('ligero fleet stop "
			       "%s')",
			       prefix, busy, nbusy > 1 ? "are" : "is", nbusy > 1 ? "them" : "it",
			       doing, prefix);
	}
	return 0;
}

/* What member d's overlay sits on: its first disk's backing file and format, malloc'd. */
static int overlay_backing(const struct vmdef *d, char **base, char **fmt)
{
	struct bdev *bs;
	int ret;

	if (!d->ndisks || strcmp(d->disks[0].format, "qcow2"))
		return err_set(EINVAL, "%s's first disk is not a qcow2 overlay", d->name);
	if ((ret = bdev_open(&bs, d->disks[0].path, "qcow2", BDEV_O_NO_BACKING)) < 0)
		return err_prefix(ret, "%s: ", d->name);
	if (!bs->backing_path)
		ret = err_set(EINVAL, "%s: %s has no backing file: it is not an overlay", d->name,
			      d->disks[0].path);
	else if (!(*base = strdup(bs->backing_path)) ||
		 !(*fmt = strdup(bs->backing_fmt ? bs->backing_fmt : "qcow2")))
		ret = err_set(ENOMEM, "out of memory");
	bdev_close(bs);
	return ret;
}

/* The parent snapshot of RBD member disk, or (when disk is gone: a reset that stopped between
 * removing it and renaming its successor) of tmp, the successor. *gone says which. */
static int reset_rbd_parent(const char *disk, const char *tmp, char **parent, bool *gone)
{
	char why[1024];
	int ret = fleet_rbd_parent(disk, parent);

	*gone = false;
	if (ret != -ENOENT)
		return ret;
	snprintf(why, sizeof(why), "%s", err_msg());
	if (fleet_rbd_parent(tmp, parent) < 0)
		return err_set(ENOENT, "%s", why);
	*gone = true;
	return 0;
}

/* An RBD member: a fresh clone IMAGE.reset of the old one's parent, sysprepped; then the old
 * image is removed and the fresh one renamed to its name. RBD has no rename over an existing
 * image: a reset stopped between the two leaves IMAGE.reset, which the next reset picks up. */
static int reset_rbd(const char *name, const char *disk, bool sysprep)
{
	char *tmp = NULL, *parent = NULL, *image = fleet_rbd_image(disk), *tname = NULL;
	bool gone;
	int ret = 0;

	if (!image || strchr(image, '\\'))
		ret =
		    err_set(EINVAL, "%s: %s does not name a fleet member's RBD image", name, disk);
	else if (asprintf(&tname, "%s.reset", image) < 0 || !(tmp = fleet_rbd_sibling(disk, tname)))
		ret = err_set(ENOMEM, "out of memory");
	if (ret == 0 && (ret = reset_rbd_parent(disk, tmp, &parent, &gone)) == 0 &&
	    (ret = bdev_rbd_remove(tmp)) == -ENOENT)
		ret = 0;
	if (ret == 0)
		ret = overlay_make(tmp, parent, "raw", name, sysprep);
	if (ret == 0 && !gone && (ret = bdev_rbd_remove(disk)) < 0)
		disk_remove(tmp);
	if (ret == 0 && (ret = bdev_rbd_rename(tmp, image)) < 0)
		err_prefix(ret, "(the fresh clone is %s: 'fleet reset' again finishes) ", tmp);
	if (ret < 0)
		err_prefix(ret, "%s: ", name);
	free(image);
	free(tname);
	free(tmp);
	free(parent);
	return ret;
}

/* A fresh overlay beside the old one, then a rename over it. */
static int reset_one(const struct registry *r, const char *name, bool sysprep)
{
	char *base = NULL, *fmt = NULL, *tmp = NULL;
	struct vmdef d;
	int ret = registry_load(r, name, &d);

	if (ret < 0)
		return ret;
	if (d.ndisks && bdev_rbd_is_name(d.disks[0].path)) {
		ret = reset_rbd(name, d.disks[0].path, sysprep);
		goto out;
	}
	if ((ret = overlay_backing(&d, &base, &fmt)) < 0)
		goto out;
	if (asprintf(&tmp, "%s.reset-%d", d.disks[0].path, (int)getpid()) < 0) {
		tmp = NULL;
		ret = err_set(ENOMEM, "out of memory");
		goto out;
	}
	unlink(tmp);
	if ((ret = overlay_make(tmp, base, fmt, name, sysprep)) < 0) {
		err_prefix(ret, "%s: ", name);
		goto out;
	}
	if (rename(tmp, d.disks[0].path) < 0) {
		ret = err_sys(errno, "%s: cannot replace %s", name, d.disks[0].path);
		unlink(tmp);
		goto out;
	}
	bdev_base_register(base, d.disks[0].path);
out:
	free(tmp);
	free(base);
	free(fmt);
	vmdef_free(&d);
	return ret;
}

int fleet_reset(const struct registry *r, const char *prefix, bool sysprep)
{
	struct held h;
	int ret = held_take(r, prefix, "resetting it", &h);

	for (size_t i = 0; ret == 0 && i < h.n; i++)
		ret = reset_one(r, h.names[i], sysprep);
	if (h.names)
		held_release(&h);
	return ret;
}

/* Whether an RBD member's first disk may go with it: a clone (never a base, which is an
 * image with snapshots) that no other definition names. */
static bool clone_removable(const struct registry *r, const struct vmdef *d)
{
	const char *disk = d->disks[0].path;
	char *parent = NULL, **names;
	size_t n;
	int ret = fleet_rbd_parent(disk, &parent);

	free(parent);
	if (ret < 0 || registry_names(r, &names, &n) < 0)
		return false;
	for (size_t i = 0; i < n && !ret; i++) {
		struct vmdef o;

		if (!strcmp(names[i], d->name) || registry_load(r, names[i], &o) < 0)
			continue;
		for (size_t j = 0; j < o.ndisks && !ret; j++)
			if (!strcmp(o.disks[j].path, disk))
				ret = err_set(EBUSY, "%s is also a disk of VM %s; kept", disk,
					      names[i]);
		vmdef_free(&o);
	}
	registry_names_free(names, n);
	return ret == 0;
}

/* Whether member d's first disk may go with it; why not in *why (the recorded message). */
static bool overlay_removable(const struct registry *r, const struct vmdef *d)
{
	char *base = NULL, *fmt = NULL;
	bool ok;

	if (!d->ndisks || d->disks[0].readonly) {
		err_set(EPERM, "%s has no disk of its own", d->name);
		return false;
	}
	if (bdev_rbd_is_name(d->disks[0].path))
		return clone_removable(r, d);
	if (overlay_backing(d, &base, &fmt) < 0)
		return false;
	ok = vm_disk_removable(r, d->name, d->disks[0].path) == 0;
	free(base);
	free(fmt);
	return ok;
}

int fleet_delete(const struct registry *r, const char *prefix, bool disks,
		 void (*kept)(void *priv, const char *name, const char *why), void *priv)
{
	struct held h;
	int ret, lock;

	if ((ret = held_take(r, prefix, "deleting it", &h)) < 0)
		return ret;
	if ((lock = registry_lock(r)) < 0) {
		held_release(&h);
		return lock;
	}
	for (size_t i = 0; i < h.n; i++) {
		struct vmdef d = {0};
		bool rm = false;
		int lret = registry_load(r, h.names[i], &d);

		if (disks && (lret < 0 || !(rm = overlay_removable(r, &d))) && kept)
			kept(priv, h.names[i], err_msg());
		if ((lret = registry_remove(r, h.names[i])) < 0 && ret == 0)
			ret = lret;
		if (rm && bdev_rbd_is_name(d.disks[0].path)) {
			/* The cluster has the last word (snapshots of the member's own, a client
			 * on another host): a clone it keeps is reported as kept. */
			if ((lret = bdev_rbd_remove(d.disks[0].path)) < 0 && lret != -ENOENT &&
			    kept)
				kept(priv, h.names[i], err_msg());
		} else if (rm && unlink(d.disks[0].path) < 0 && errno != ENOENT && ret == 0) {
			ret = err_sys(errno, "cannot remove %s", d.disks[0].path);
		}
		vmdef_free(&d);
	}
	registry_unlock(lock);
	held_release(&h);
	return ret;
}
