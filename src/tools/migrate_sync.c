/*
 * The copy, with rsync's semantics (-aHAXS --numeric-ids --delete): each source entry is put
 * at the same place in the overlay unless the VM owns that place; a file already right by
 * rsync's quick check (type, size, modification time with nanoseconds, mode, owner, extended
 * attributes; contents too with --checksum) is left alone; what the container does not have is
 * deleted, except what the VM owns. Places are the target's own directory inodes, so a symlink
 * (/lib -> usr/lib) in either tree cannot send a file, or a deletion, anywhere else.
 *
 * Each target directory the source maps onto gets a table of its entries, read once; the
 * deletion pass after the walk removes what no source entry claimed. Directory times are set
 * last, since adding and removing entries changes them.
 */
#include "fs/ext.h"
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ROOT_INO 2
#define CHUNK	 (1u << 20)

struct sync_ent {
	uint32_t ino;
	bool seen;
};

struct sync_dir {
	uint32_t ino; /* 0: a directory a dry run would create */
	bool loaded;
	bool keep_all; /* its content is not the source's to judge (another filesystem) */
	struct strmap ents;
};

struct fin {
	uint32_t ino;
	struct timespec atime, mtime;
};

struct sync {
	struct mig_ctx *c;
	struct extfs *fs;
	bool dry;
	struct strmap srcdirs;	 /* source directory path -> struct sync_dir */
	struct strmap tdirs;	 /* "INO" -> struct sync_dir */
	struct strmap links;	 /* a file's link key -> target inode */
	struct sync_dir **fresh; /* dry run: the directories it would create */
	size_t nfresh;
	struct fin *fin;
	size_t nfin, capfin;
	struct migrate_counts *k;
	char *buf;
	uint32_t fake; /* dry run: stand-in inode numbers of files it would create */
};

/* Stand-in inodes are above any ext inode number a dry run reads. */
#define FAKE_INO 0x80000000u

static struct sync_dir skip_dir; /* the source's directory is the VM's: skip what it holds */

static bool ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void dir_free(void *p)
{
	struct sync_dir *d = p;

	if (d && d != &skip_dir) {
		strmap_free(&d->ents, free);
		free(d);
	}
}

static struct sync_dir *dir_get(struct sync *s, uint32_t ino)
{
	char key[16];
	struct sync_dir *d;

	if (!ino) {
		struct sync_dir **v = realloc(s->fresh, (s->nfresh + 1) * sizeof(*v));
		if (!v || !(d = calloc(1, sizeof(*d))))
			return NULL;
		s->fresh = v;
		d->loaded = true;
		return v[s->nfresh++] = d;
	}
	snprintf(key, sizeof(key), "%u", ino);
	if ((d = strmap_get(&s->tdirs, key)))
		return d;
	if (!(d = calloc(1, sizeof(*d))))
		return NULL;
	d->ino = ino;
	if (strmap_put(&s->tdirs, key, d) < 0) {
		free(d);
		return NULL;
	}
	return d;
}

static int ent_add(struct sync_dir *d, const char *name, uint32_t ino, bool seen)
{
	struct sync_ent *e = malloc(sizeof(*e));

	if (!e)
		return err_set(ENOMEM, "out of memory");
	*e = (struct sync_ent){ino, seen};
	free(strmap_del(&d->ents, name));
	if (strmap_put(&d->ents, name, e) < 0) {
		free(e);
		return err_set(ENOMEM, "out of memory");
	}
	return 0;
}

static int load_cb(const char *name, uint32_t ino, void *priv)
{
	return ent_add(priv, name, ino, false);
}

static int dir_load(struct sync *s, struct sync_dir *d)
{
	if (d->loaded)
		return 0;
	d->loaded = true;
	return extfs_readdir(s->fs, d->ino, load_cb, d);
}

static int fin_add(struct sync *s, uint32_t ino, const struct fs_node *n)
{
	if (!ino)
		return 0;
	if (s->nfin == s->capfin) {
		size_t cap = s->capfin ? 2 * s->capfin : 256;
		struct fin *v = realloc(s->fin, cap * sizeof(*v));
		if (!v)
			return err_set(ENOMEM, "out of memory");
		s->fin = v;
		s->capfin = cap;
	}
	s->fin[s->nfin++] = (struct fin){ino, n->atime, n->mtime};
	return 0;
}

/* ---- comparing ---- */

struct xa {
	char *name;
	void *val;
	size_t len;
};

struct xa_list {
	struct xa *v;
	size_t n;
};

static int xa_add(const char *name, const void *val, size_t len, void *priv)
{
	struct xa_list *l = priv;
	struct xa *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return err_set(ENOMEM, "out of memory");
	l->v = v;
	v[l->n] = (struct xa){strdup(name), malloc(len ? len : 1), len};
	if (!v[l->n].name || !v[l->n].val) {
		free(v[l->n].name);
		free(v[l->n].val);
		return err_set(ENOMEM, "out of memory");
	}
	memcpy(v[l->n++].val, val, len);
	return 0;
}

static void xa_free(struct xa_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].val);
	}
	free(l->v);
}

/* Do ino's owner, permission bits or extended attributes differ from n's? */
static int attrs_differ(struct sync *s, uint32_t ino, const struct extfs_stat *st,
			const struct fs_node *n, bool *differ)
{
	struct xa_list a = {0}, b = {0};
	int ret = 0;

	*differ = st->uid != n->uid || st->gid != n->gid ||
		  (!S_ISLNK(n->mode) && (st->mode & 07777) != (n->mode & 07777));
	if (*differ)
		return 0;
	if (n->xattrs)
		ret = n->xattrs(n->xpriv, xa_add, &a);
	if (ret == 0)
		ret = extfs_xattr_list(s->fs, ino, xa_add, &b);
	*differ = a.n != b.n;
	for (size_t i = 0; ret == 0 && !*differ && i < a.n; i++) {
		bool found = false;
		for (size_t j = 0; j < b.n && !found; j++)
			found = !strcmp(a.v[i].name, b.v[j].name) && a.v[i].len == b.v[j].len &&
				!memcmp(a.v[i].val, b.v[j].val, a.v[i].len);
		*differ = !found;
	}
	xa_free(&a);
	xa_free(&b);
	return ret;
}

/* rsync's quick check on what is not content: the same kind of node, size, time, target. */
static int quick_same(struct sync *s, uint32_t ino, const struct extfs_stat *st,
		      const struct fs_node *n, bool any_time, bool *same)
{
	*same = false;
	if ((st->mode & S_IFMT) != (n->mode & S_IFMT))
		return 0;
	if (S_ISREG(n->mode)) {
		*same = st->size == n->size && (any_time || ts_eq(st->mtime, n->mtime));
	} else if (S_ISLNK(n->mode)) {
		char t[4096];
		int ret = extfs_readlink(s->fs, ino, t, sizeof(t));
		if (ret < 0)
			return ret;
		*same = !strcmp(t, n->link ? n->link : "");
	} else if (S_ISCHR(n->mode) || S_ISBLK(n->mode)) {
		*same = st->rdev == n->rdev;
	} else {
		*same = true;
	}
	return 0;
}

/* ---- removing ---- */

/* Remove dir/name (a whole tree), except what the VM owns below it. *kept tells whether
 * something stayed (then the directory stays too). A dry run only counts. */
static int remove_tree(struct sync *s, uint32_t dir, const char *name, uint32_t ino, bool *kept)
{
	struct extfs_stat st;
	int ret = extfs_stat(s->fs, ino, &st);

	*kept = false;
	if (ret < 0)
		return ret;
	if (S_ISDIR(st.mode)) {
		struct sync_dir tmp = {.ino = ino};
		if ((ret = extfs_readdir(s->fs, ino, load_cb, &tmp)) < 0) {
			strmap_free(&tmp.ents, free);
			return ret;
		}
		size_t it = 0;
		struct strmap_slot *sl;
		/* Only directories on the way to an owned entry need each name looked up. */
		bool holds = mig_rules_holds(&s->c->rules, ino);
		while (ret == 0 && (sl = strmap_next(&tmp.ents, &it))) {
			struct sync_ent *e = sl->val;
			bool k = true;
			if (!holds || !mig_rules_owned(&s->c->rules, ino, sl->key))
				ret = remove_tree(s, ino, sl->key, e->ino, &k);
			*kept |= k;
		}
		strmap_free(&tmp.ents, free);
		if (ret < 0 || *kept)
			return ret;
		s->k->deleted++;
		return s->dry ? 0 : extfs_rmdir(s->fs, dir, name);
	}
	s->k->deleted++;
	return s->dry ? 0 : extfs_unlink(s->fs, dir, name);
}

/* Make room for a new node at d/name. 1: a directory holding the VM's files is in the way. */
static int remove_existing(struct sync *s, struct sync_dir *d, const char *name,
			   struct sync_ent *te)
{
	bool kept;
	int ret = remove_tree(s, d->ino, name, te->ino, &kept);

	if (ret < 0)
		return ret;
	if (kept)
		return 1;
	s->k->deleted--; /* a replacement, counted as updated */
	free(strmap_del(&d->ents, name));
	return 0;
}

/* ---- writing ---- */

struct counting {
	struct fs_content inner;
	struct sync *s;
};

static int count_next(void *priv, uint64_t *off, const void **buf, size_t *len)
{
	struct counting *c = priv;
	int ret = c->inner.next(c->inner.priv, off, buf, len);

	if (ret == 0)
		c->s->k->bytes += *len;
	return ret;
}

static int full_err(struct sync *s, int ret, const char *path)
{
	if (ret != -ENOSPC)
		return ret;
	return err_set(ENOSPC,
		       "%s: the filesystem is full writing /%s: the container holds more than the "
		       "base's filesystem has room for (grow the base image and its filesystem, "
		       "or free space in the container)",
		       extfs_name(s->fs), path);
}

static int create_node(struct sync *s, struct sync_dir *d, const char *name, struct mig_entry *e,
		       uint32_t *ino)
{
	struct fs_node n = e->node;
	struct counting cnt = {n.content, s};
	int ret;

	*ino = 0;
	if (n.content.next)
		n.content = (struct fs_content){count_next, &cnt};
	if (s->dry) {
		s->k->bytes += S_ISREG(n.mode) ? n.size : 0;
		/* Files get a stand-in inode, so hard links to them count as links. */
		if (!S_ISDIR(n.mode))
			*ino = FAKE_INO | ++s->fake;
		return 0;
	}
	ret = fs_node_create(s->fs, d->ino, name, &n, ino);
	if (ret == 0)
		ret = fs_node_attrs(s->fs, *ino, &n, false, !S_ISDIR(n.mode));
	return full_err(s, ret, e->path);
}

/* --checksum: compare the contents as the source streams them; at the first difference, write
 * a new file (the equal part copied from the old one) and rename it over the old. 1: equal. */
static int checksum_copy(struct sync *s, struct sync_dir *d, const char *name, uint32_t old,
			 struct mig_entry *e)
{
	const struct fs_node *n = &e->node;
	uint64_t pos = 0, off;
	const void *buf;
	size_t len, got;
	uint32_t tmp = 0;
	char tname[64];
	int ret = 0;

	snprintf(tname, sizeof(tname), ".ligero-migrate.%u", old);
	for (;;) {
		if (n->content.next &&
		    (ret = n->content.next(n->content.priv, &off, &buf, &len)) < 0)
			break;
		bool end = !n->content.next || len == 0;
		if (end)
			off = n->size, len = 0;
		bool equal = !tmp;
		/* The hole before this block reads as zeros in the old file too, and the block
		 * matches. */
		for (uint64_t p = pos; equal && p < off + len; p += got) {
			size_t want = off + len - p < CHUNK ? (size_t)(off + len - p) : CHUNK;
			if ((ret = extfs_pread(s->fs, old, p, s->buf, want, &got)) < 0 || !got)
				break;
			for (size_t i = 0; equal && i < got; i++)
				equal = s->buf[i] ==
					(p + i >= off ? ((const char *)buf)[p + i - off] : 0);
		}
		if (ret < 0)
			break;
		if (!equal && !tmp) {
			s->k->bytes += off + len;
			if (s->dry)
				return 0;
			struct fs_node f = *n;
			f.content.next = NULL;
			if ((ret = fs_node_create(s->fs, d->ino, tname, &f, &tmp)) < 0)
				break;
			for (uint64_t p = 0; ret == 0 && p < off; p += got) {
				size_t want = off - p < CHUNK ? (size_t)(off - p) : CHUNK;
				if ((ret = extfs_pread(s->fs, old, p, s->buf, want, &got)) == 0 &&
				    got)
					ret = extfs_pwrite(s->fs, tmp, p, s->buf, got);
				if (!got)
					break;
			}
		} else if (tmp) {
			s->k->bytes += len;
		}
		if (ret == 0 && tmp && len)
			ret = extfs_pwrite(s->fs, tmp, off, buf, len);
		pos = off + len;
		if (ret < 0 || end)
			break;
	}
	if (ret == 0 && tmp)
		ret = extfs_truncate(s->fs, tmp, n->size);
	if (ret == 0 && tmp)
		ret = fs_node_attrs(s->fs, tmp, n, false, true);
	if (ret == 0 && tmp)
		ret = extfs_rename(s->fs, d->ino, tname, d->ino, name);
	if (ret < 0 && tmp)
		extfs_unlink(s->fs, d->ino, tname);
	if (ret == 0 && tmp) {
		struct sync_ent *te = strmap_get(&d->ents, name);
		if (te)
			te->ino = tmp;
	}
	return ret < 0 ? full_err(s, ret, e->path) : !tmp;
}

/* ---- one entry ---- */

static int mark_skip(struct sync *s, struct mig_entry *e)
{
	s->k->kept++;
	if (S_ISDIR(e->node.mode))
		return strmap_put(&s->srcdirs, e->path, &skip_dir) < 0
			   ? err_set(ENOMEM, "out of memory")
			   : 0;
	return 0;
}

/* The target directory for the source directory path, made (or found) when the archive did not
 * list it before what it holds. Such directories keep what the source does not list. */
static int parent_dir(struct sync *s, const char *path, struct sync_dir **out)
{
	struct sync_dir *d = strmap_get(&s->srcdirs, path), *pd;
	int ret;

	if ((*out = d))
		return 0;
	const char *slash = strrchr(path, '/');
	char *pp = slash ? strndup(path, (size_t)(slash - path)) : strdup("");
	const char *name = slash ? slash + 1 : path;
	if (!pp)
		return err_set(ENOMEM, "out of memory");
	ret = parent_dir(s, pp, &pd);
	free(pp);
	if (ret < 0)
		return ret;
	if (pd == &skip_dir || mig_rules_path(&s->c->rules, path) ||
	    (pd->ino && mig_rules_owned(&s->c->rules, pd->ino, name))) {
		*out = &skip_dir;
		return strmap_put(&s->srcdirs, path, &skip_dir) < 0 ? -ENOMEM : 0;
	}
	if ((ret = dir_load(s, pd)) < 0)
		return ret;
	struct sync_ent *te = strmap_get(&pd->ents, name);
	struct extfs_stat st;
	uint32_t ino = 0;
	if (te && (ret = extfs_stat(s->fs, te->ino, &st)) < 0)
		return ret;
	if (te && S_ISDIR(st.mode)) {
		ino = te->ino;
		te->seen = true;
	} else {
		struct mig_entry e = {.path = path};
		e.node.mode = S_IFDIR | 0755;
		if (te && (ret = remove_existing(s, pd, name, te)) != 0)
			return ret < 0 ? ret : err_set(EEXIST, "/%s: in the way", path);
		if ((ret = create_node(s, pd, name, &e, &ino)) < 0 ||
		    (ret = ent_add(pd, name, ino, true)) < 0)
			return ret;
		s->k->created++;
	}
	if (!(d = dir_get(s, ino)))
		return err_set(ENOMEM, "out of memory");
	d->keep_all = true;
	*out = d;
	return strmap_put(&s->srcdirs, path, d) < 0 ? err_set(ENOMEM, "out of memory") : 0;
}

static int map_dir(struct sync *s, struct mig_entry *e, uint32_t ino)
{
	struct sync_dir *d = dir_get(s, ino);

	if (!d || strmap_put(&s->srcdirs, e->path, d) < 0)
		return err_set(ENOMEM, "out of memory");
	if (e->no_descend)
		d->keep_all = true;
	/* Read the table now: an empty source directory empties the target's too. */
	int ret = d->keep_all ? 0 : dir_load(s, d);
	return ret < 0 ? ret : fin_add(s, ino, &e->node);
}

/* Owner, mode and attributes of an existing node: fixed if they differ. */
static int fix_attrs(struct sync *s, uint32_t ino, const struct extfs_stat *st,
		     const struct fs_node *n, bool times, bool *changed)
{
	int ret = attrs_differ(s, ino, st, n, changed);

	times = times && !ts_eq(st->mtime, n->mtime);
	if (ret == 0 && !s->dry && (*changed || times))
		ret = fs_node_attrs(s->fs, ino, n, true, times);
	*changed |= times;
	return ret;
}

/* A file ligero changed last time: unchanged in the source since (its backup has the source's
 * attributes), it stays as ligero left it. Changed, the backup goes and the copy takes it. */
static int changed_by_us(struct sync *s, struct mig_entry *e, bool *skip)
{
	char p[4200];
	const struct migrate_change *ch;
	uint32_t bino;
	struct extfs_stat st;
	bool same = false;
	int ret;

	*skip = false;
	snprintf(p, sizeof(p), "/%s", e->path);
	if (!(ch = strmap_get(&s->c->prev, p)) || !ch->backup)
		return 0;
	if (extfs_lookup(s->fs, ch->backup, false, &bino) == 0 &&
	    extfs_stat(s->fs, bino, &st) == 0 &&
	    (ret = quick_same(s, bino, &st, &e->node, false, &same)) < 0)
		return ret;
	err_clear();
	/* The quick check only, even with --checksum: the backup is the source's version as it
	 * was, and a changed file has a new time. */
	if (same && st.uid == e->node.uid && st.gid == e->node.gid &&
	    (S_ISLNK(st.mode) || (st.mode & 07777) == (e->node.mode & 07777))) {
		*skip = true;
		return 0;
	}
	if (strmap_put(&s->c->dropped, p, (void *)ch) < 0)
		return err_set(ENOMEM, "out of memory");
	if (s->dry)
		return 0;
	uint32_t bdir;
	char base[256];
	if (extfs_lookup_parent(s->fs, ch->backup, &bdir, base) == 0 &&
	    extfs_lookup_at(s->fs, bdir, base, &bino) == 0)
		return extfs_unlink(s->fs, bdir, base);
	err_clear();
	return 0;
}

static int sync_link(struct sync *s, struct sync_dir *d, const char *name, struct sync_ent *te,
		     struct mig_entry *e, uint32_t lino)
{
	int ret;

	if (te && te->ino == lino) {
		s->k->unchanged++;
		return 0;
	}
	if (te && (ret = remove_existing(s, d, name, te)) != 0)
		return ret < 0 ? ret : mark_skip(s, e);
	if (!s->dry && (ret = extfs_link(s->fs, d->ino, name, lino)) < 0)
		return full_err(s, ret, e->path);
	s->k->linked++;
	return ent_add(d, name, lino, true);
}

/* The target inode an archive's hard link names: an entry already copied. */
static uint32_t hardlink_ino(struct sync *s, const char *target)
{
	const char *slash = strrchr(target, '/');
	char *pp = slash ? strndup(target, (size_t)(slash - target)) : strdup("");
	struct sync_dir *d = pp ? strmap_get(&s->srcdirs, pp) : NULL;
	struct sync_ent *te =
	    d && d != &skip_dir ? strmap_get(&d->ents, slash ? slash + 1 : target) : NULL;

	free(pp);
	return te ? te->ino : 0;
}

static int sync_entry(struct mig_entry *e, void *priv)
{
	struct sync *s = priv;
	struct mig_ctx *c = s->c;
	struct extfs_stat st;
	int ret;

	if (c->o->stop && *c->o->stop)
		return err_set(EINTR, "interrupted: running the same command again resumes");
	s->k->entries++;
	if (c->o->progress)
		c->o->progress(c->o->opaque, c->src->done, c->src->total);
	bool isdir = S_ISDIR(e->node.mode);
	if (!*e->path) {
		bool ch;
		struct sync_dir *root = strmap_get(&s->srcdirs, "");
		if ((ret = extfs_stat(s->fs, ROOT_INO, &st)) < 0 ||
		    (ret = fix_attrs(s, ROOT_INO, &st, &e->node, false, &ch)) < 0)
			return ret;
		if (ch)
			s->k->attrs++;
		else
			s->k->unchanged++;
		root->keep_all = false;
		return fin_add(s, ROOT_INO, &e->node);
	}
	if (mig_rules_path(&c->rules, e->path))
		return mark_skip(s, e);
	const char *slash = strrchr(e->path, '/'), *name = slash ? slash + 1 : e->path;
	char *pp = slash ? strndup(e->path, (size_t)(slash - e->path)) : strdup("");
	struct sync_dir *d;
	if (!pp)
		return err_set(ENOMEM, "out of memory");
	ret = parent_dir(s, pp, &d);
	free(pp);
	if (ret < 0)
		return ret;
	if (d == &skip_dir || (d->ino && mig_rules_owned(&c->rules, d->ino, name)))
		return mark_skip(s, e);
	if ((ret = dir_load(s, d)) < 0)
		return ret;
	struct sync_ent *te = strmap_get(&d->ents, name);
	if (te)
		te->seen = true;
	if (te && te->ino >= FAKE_INO) {
		s->k->unchanged++; /* a name an archive lists twice, in a dry run */
		return 0;
	}
	bool skip;
	if ((ret = changed_by_us(s, e, &skip)) < 0)
		return ret;
	if (skip) {
		s->k->unchanged++;
		return 0;
	}
	uint32_t lino = e->hardlink	 ? hardlink_ino(s, e->hardlink)
			: e->link_key[0] ? (uint32_t)(uintptr_t)strmap_get(&s->links, e->link_key)
					 : 0;
	if (e->hardlink && !lino) {
		mig_note(c, "/%s: not copied: a hard link to /%s, which was not copied", e->path,
			 e->hardlink);
		return 0;
	}
	if (lino)
		return sync_link(s, d, name, te, e, lino);
	uint32_t ino = 0;
	if (te) {
		bool same, changed;
		if ((ret = extfs_stat(s->fs, te->ino, &st)) < 0 ||
		    (ret = quick_same(s, te->ino, &st, &e->node, c->o->checksum, &same)) < 0)
			return ret;
		if (same && S_ISREG(st.mode) && c->o->checksum && e->node.size) {
			if ((ret = checksum_copy(s, d, name, te->ino, e)) < 0)
				return ret;
			same = ret == 1;
			if (!same) {
				s->k->updated++;
				te = strmap_get(&d->ents, name);
				ino = te ? te->ino : 0;
				goto registered;
			}
		}
		if (same) {
			if ((ret = fix_attrs(s, te->ino, &st, &e->node, !isdir, &changed)) < 0)
				return ret;
			if (changed)
				s->k->attrs++;
			else
				s->k->unchanged++;
			ino = te->ino;
			goto registered;
		}
		if ((ret = remove_existing(s, d, name, te)) != 0)
			return ret < 0 ? ret : mark_skip(s, e);
		s->k->updated++;
	} else {
		s->k->created++;
	}
	if ((ret = create_node(s, d, name, e, &ino)) < 0 || (ret = ent_add(d, name, ino, true)) < 0)
		return ret;
registered:
	if (e->link_key[0] && ino && strmap_put(&s->links, e->link_key, (void *)(uintptr_t)ino) < 0)
		return err_set(ENOMEM, "out of memory");
	return isdir ? map_dir(s, e, ino) : 0;
}

/* ---- after the walk ---- */

static int delete_unseen(struct sync *s)
{
	size_t it = 0;
	struct strmap_slot *sl;
	int ret = 0;

	while (ret == 0 && (sl = strmap_next(&s->tdirs, &it))) {
		struct sync_dir *d = sl->val;
		if (!d->loaded || d->keep_all)
			continue;
		size_t j = 0;
		struct strmap_slot *es;
		while (ret == 0 && (es = strmap_next(&d->ents, &j))) {
			struct sync_ent *e = es->val;
			bool kept;
			if (e->seen || mig_rules_owned(&s->c->rules, d->ino, es->key))
				continue;
			ret = remove_tree(s, d->ino, es->key, e->ino, &kept);
		}
	}
	return ret;
}

static int finish_dirs(struct sync *s)
{
	int ret = 0;

	for (size_t i = s->nfin; ret == 0 && i-- > 0;) {
		struct extfs_stat st;
		struct fin *f = &s->fin[i];
		if (s->dry || (ret = extfs_stat(s->fs, f->ino, &st)) < 0)
			continue;
		if (!ts_eq(st.mtime, f->mtime)) {
			struct timespec ts[2] = {f->atime, f->mtime};
			ret = extfs_utimens(s->fs, f->ino, ts);
		}
	}
	return ret;
}

int mig_sync(struct mig_ctx *c)
{
	struct sync s = {.c = c, .fs = c->fs, .dry = c->dry, .k = &c->r->counts};
	struct sync_dir *root;
	int ret;

	if (!(s.buf = malloc(CHUNK)) || !(root = dir_get(&s, ROOT_INO)) ||
	    strmap_put(&s.srcdirs, "", root) < 0) {
		free(s.buf);
		strmap_free(&s.tdirs, dir_free);
		return err_set(ENOMEM, "out of memory");
	}
	/* Until the source shows its root, nothing is deleted at the top. */
	root->keep_all = true;
	ret = c->src->ops->walk(c->src, sync_entry, &s);
	if (ret == 0)
		ret = delete_unseen(&s);
	if (ret == 0)
		ret = finish_dirs(&s);
	for (size_t i = 0; i < s.nfresh; i++)
		dir_free(s.fresh[i]);
	free(s.fresh);
	strmap_free(&s.srcdirs, NULL);
	strmap_free(&s.tdirs, dir_free);
	strmap_free(&s.links, NULL);
	free(s.fin);
	free(s.buf);
	return ret;
}
