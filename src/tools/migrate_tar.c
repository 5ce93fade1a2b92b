/*
 * Archived trees, read once in order with libarchive: tar files (any compression libarchive
 * knows) and a live server's tree streamed by its own tar over ssh, so the old server needs
 * nothing installed. Owners stay numeric; xattrs, POSIX ACLs (turned into the
 * system.posix_acl_* attributes the kernel stores), hard links and sparse files are kept.
 */
#include "tools/migrate_priv.h"
#include "util/error.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct tar_src {
	char *path; /* a tar file, or NULL for ssh */
	/* ssh */
	char *host; /* [user@]host */
	char *port;
	char *root; /* the remote directory to copy ("/") */
	pid_t pid;
	int fd;
	int errfd; /* ssh's stderr (and the remote command's): a memfd read afterwards */
	bool raw;  /* progress counts the file's bytes (compressed), not the archive's */
};

/* ---- entries ---- */

/* "./etc/x/", "/etc/x" -> "etc/x"; "." and "./" -> "". NULL for names with ".." in them. */
static char *clean_path(const char *p)
{
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	while (*p == '/')
		p++;
	if (!strcmp(p, "."))
		p = "";
	char *s = strdup(p);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	while (n && s[n - 1] == '/')
		s[--n] = 0;
	for (char *c = s; c; c = strchr(c, '/')) {
		c += *c == '/';
		if (!strncmp(c, "..", 2) && (c[2] == '/' || !c[2])) {
			free(s);
			return NULL;
		}
	}
	return s;
}

struct tar_data {
	struct archive *a;
	const char *name;
};

static int tar_next(void *priv, uint64_t *off, const void **buf, size_t *len)
{
	struct tar_data *d = priv;
	size_t size;
	la_int64_t o;
	int r = archive_read_data_block(d->a, buf, &size, &o);

	*len = 0;
	if (r == ARCHIVE_EOF)
		return 0;
	if (r < ARCHIVE_WARN)
		return err_set(EIO, "%s: %s", d->name, archive_error_string(d->a));
	*off = (uint64_t)o;
	*len = size;
	return 0;
}

/* An id for an archived ACL name, from the container's own passwd or group. */
static int name_id(const struct mig_files *names, const char *file, const char *name)
{
	const struct mig_file *f = names ? mig_files_get(names, file, true) : NULL;
	size_t n = strlen(name);

	for (const char *l = f ? f->data : NULL; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
		const char *c = strchr(l, ':');
		if (!strncmp(l, name, n) && l[n] == ':' && c && (c = strchr(c + 1, ':')))
			return atoi(c + 1);
	}
	return -1;
}

struct acl_ent {
	uint16_t tag, perm;
	uint32_t id;
};

static int cmp_acl(const void *a, const void *b)
{
	const struct acl_ent *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* One ACL of the entry as the kernel's xattr value: version 2, then (tag, perm, id) records,
 * little-endian, sorted by tag and id. Nothing for an access ACL the mode says all of. */
static int acl_xattr(struct archive_entry *ae, int type, const struct mig_files *names,
		     fs_xattr_fn cb, void *cbpriv)
{
	struct acl_ent v[256];
	size_t n = 0;
	int t, perm, tag, id;
	const char *nm;
	bool extended = false;

	if (archive_entry_acl_reset(ae, type) <= 0)
		return 0;
	while (n < 256 &&
	       archive_entry_acl_next(ae, type, &t, &perm, &tag, &id, &nm) == ARCHIVE_OK) {
		struct acl_ent e = {0, (uint16_t)(perm & 7), 0xffffffffu};
		switch (tag) {
		case ARCHIVE_ENTRY_ACL_USER_OBJ:
			e.tag = 0x01;
			break;
		case ARCHIVE_ENTRY_ACL_USER:
			e.tag = 0x02;
			break;
		case ARCHIVE_ENTRY_ACL_GROUP_OBJ:
			e.tag = 0x04;
			break;
		case ARCHIVE_ENTRY_ACL_GROUP:
			e.tag = 0x08;
			break;
		case ARCHIVE_ENTRY_ACL_MASK:
			e.tag = 0x10;
			break;
		case ARCHIVE_ENTRY_ACL_OTHER:
			e.tag = 0x20;
			break;
		default:
			continue; /* NFSv4 entries have no POSIX form */
		}
		if (e.tag == 0x02 || e.tag == 0x08) {
			if (id < 0 && nm)
				id = name_id(names, e.tag == 0x02 ? "etc/passwd" : "etc/group", nm);
			if (id < 0)
				continue;
			e.id = (uint32_t)id;
		}
		extended |= e.tag & (0x02 | 0x08 | 0x10);
		v[n++] = e;
	}
	if (!n || (type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS && !extended))
		return 0;
	qsort(v, n, sizeof(v[0]), cmp_acl);
	uint8_t buf[4 + 256 * 8];
	size_t len = 4;
	buf[0] = 2, buf[1] = buf[2] = buf[3] = 0;
	for (size_t i = 0; i < n; i++, len += 8) {
		uint8_t *p = buf + len;
		p[0] = (uint8_t)v[i].tag, p[1] = (uint8_t)(v[i].tag >> 8);
		p[2] = (uint8_t)v[i].perm, p[3] = 0;
		for (int k = 0; k < 4; k++)
			p[4 + k] = (uint8_t)(v[i].id >> (8 * k));
	}
	return cb(type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS ? "system.posix_acl_access"
							: "system.posix_acl_default",
		  buf, len, cbpriv);
}

/* The entry's mode. Reading an access ACL, libarchive puts the group entry's permissions in
 * the mode's group bits; with a mask (any ACL beyond the mode has one), those bits are the
 * mask's, as stat(2) shows them. */
static uint32_t acl_mode(struct archive_entry *ae)
{
	uint32_t mode = (uint32_t)archive_entry_mode(ae);
	int t, perm, tag, id;
	const char *nm;

	if (!(mode & S_IFMT))
		mode |= S_IFREG;
	if (archive_entry_acl_reset(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS) <= 0)
		return mode;
	while (archive_entry_acl_next(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, &t, &perm, &tag, &id,
				      &nm) == ARCHIVE_OK)
		if (tag == ARCHIVE_ENTRY_ACL_MASK)
			mode = (mode & ~070u) | (uint32_t)(perm & 7) << 3;
	return mode;
}

struct tar_xattr {
	struct archive_entry *ae;
	const struct mig_files *names;
};

static int tar_xattrs(void *priv, fs_xattr_fn cb, void *cbpriv)
{
	struct tar_xattr *x = priv;
	const char *name;
	const void *val;
	size_t len;
	bool acc = false, def = false;
	int ret = 0;

	archive_entry_xattr_reset(x->ae);
	while (ret == 0 && archive_entry_xattr_next(x->ae, &name, &val, &len) == ARCHIVE_OK) {
		acc |= !strcmp(name, "system.posix_acl_access");
		def |= !strcmp(name, "system.posix_acl_default");
		ret = cb(name, val, len, cbpriv);
	}
	if (ret == 0 && !acc)
		ret = acl_xattr(x->ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, x->names, cb, cbpriv);
	if (ret == 0 && !def)
		ret = acl_xattr(x->ae, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT, x->names, cb, cbpriv);
	return ret;
}

/* Deliver every entry of a; with probe, only those mig_probe_spec names go to files. */
static int read_entries(struct mig_src *s, struct archive *a, mig_entry_fn cb, void *priv)
{
	struct archive_entry *ae;
	int r, ret = 0;

	while (ret == 0 &&
	       ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK || r == ARCHIVE_WARN)) {
		char *path =
		    clean_path(archive_entry_pathname(ae) ? archive_entry_pathname(ae) : "");
		char *hard = NULL;
		if (!path)
			return err_set(EINVAL, "%s: unsafe name '%s' in the archive (a '..' in it)",
				       s->name, archive_entry_pathname(ae));
		if (archive_entry_hardlink(ae) &&
		    !(hard = clean_path(archive_entry_hardlink(ae)))) {
			free(path);
			return err_set(EINVAL, "%s: unsafe hard link target '%s' in the archive",
				       s->name, archive_entry_hardlink(ae));
		}
		struct tar_data d = {a, s->name};
		struct tar_xattr x = {ae, s->names};
		struct mig_entry e = {.path = path, .hardlink = hard};
		uint32_t mode = acl_mode(ae);
		e.node = (struct fs_node){
		    .mode = mode,
		    .uid = (uint32_t)archive_entry_uid(ae),
		    .gid = (uint32_t)archive_entry_gid(ae),
		    .rdev = archive_entry_rdev(ae),
		    .mtime = {archive_entry_mtime(ae), archive_entry_mtime_nsec(ae)},
		    .link = archive_entry_symlink(ae),
		    .xattrs = tar_xattrs,
		    .xpriv = &x};
		e.node.atime =
		    archive_entry_atime_is_set(ae)
			? (struct timespec){archive_entry_atime(ae), archive_entry_atime_nsec(ae)}
			: e.node.mtime;
		if (S_ISREG(mode) && !hard) {
			e.node.size = (uint64_t)archive_entry_size(ae);
			e.node.content = (struct fs_content){tar_next, &d};
		}
		if (S_ISLNK(mode) && !e.node.link)
			e.node.link = "";
		ret = cb(&e, priv);
		free(path);
		free(hard);
		s->done =
		    (uint64_t)archive_filter_bytes(a, ((struct tar_src *)s->impl)->raw ? -1 : 0);
	}
	if (ret == 0 && r != ARCHIVE_EOF)
		ret = err_set(EIO, "%s: %s", s->name, archive_error_string(a));
	return ret;
}

static struct archive *reader(void)
{
	struct archive *a = archive_read_new();

	if (a) {
		archive_read_support_filter_all(a);
		archive_read_support_format_tar(a);
		archive_read_support_format_gnutar(a);
	}
	return a;
}

/* The probe's entries: exact names, and what lies under a tree's name. */
static bool wanted(const char *path)
{
	for (const struct mig_probe_item *it = mig_probe_spec; it->path; it++) {
		size_t n = strlen(it->path);
		if (!strncmp(path, it->path, n) &&
		    (!path[n] || (path[n] == '/' && it->how == MIG_PROBE_TREE)))
			return true;
	}
	return false;
}

struct probe_pass {
	struct mig_files *files;
};

static int probe_entry(struct mig_entry *e, void *priv)
{
	struct probe_pass *p = priv;
	const struct fs_node *n = &e->node;
	char *data = NULL;
	int ret = 0;

	if (!*e->path || !wanted(e->path))
		return 0;
	if (S_ISLNK(n->mode))
		return mig_files_put(p->files, e->path, n, n->link, strlen(n->link));
	size_t len = S_ISREG(n->mode) && n->size <= MIG_PROBE_MAX_FILE ? (size_t)n->size : 0;
	if (!(data = calloc(1, len + 1)))
		return err_set(ENOMEM, "out of memory");
	while (len && n->content.next && ret == 0) {
		uint64_t off;
		const void *buf;
		size_t got;
		if ((ret = n->content.next(n->content.priv, &off, &buf, &got)) < 0 || !got)
			break;
		if (off < len)
			memcpy(data + off, buf, off + got > len ? len - off : got);
	}
	if (ret == 0)
		ret = mig_files_put(p->files, e->path, n, data, len);
	free(data);
	return ret;
}

/* ---- tar files ---- */

static int file_open_archive(struct mig_src *s, struct archive **out)
{
	struct archive *a = reader();

	if (!a)
		return err_set(ENOMEM, "out of memory");
	if (archive_read_open_filename(a, s->name, 1 << 16) != ARCHIVE_OK) {
		int ret = err_set(EINVAL, "%s: %s", s->name, archive_error_string(a));
		archive_read_free(a);
		return ret;
	}
	*out = a;
	return 0;
}

static int file_probe(struct mig_src *s, struct mig_files *files)
{
	struct archive *a = NULL;
	struct probe_pass p = {files};
	int ret = file_open_archive(s, &a);

	if (ret == 0) {
		ret = read_entries(s, a, probe_entry, &p);
		s->done = 0;
		archive_read_free(a);
	}
	return ret;
}

static int file_walk(struct mig_src *s, mig_entry_fn cb, void *priv)
{
	struct archive *a = NULL;
	int ret = file_open_archive(s, &a);

	if (ret == 0) {
		ret = read_entries(s, a, cb, priv);
		archive_read_free(a);
	}
	return ret;
}

static void tar_close(struct mig_src *s)
{
	struct tar_src *t = s->impl;

	if (!t)
		return;
	free(t->host);
	free(t->port);
	free(t->root);
	free(t);
}

static const struct mig_src_ops file_ops = {file_probe, file_walk, tar_close};

int mig_tar_open(struct mig_src *s)
{
	struct stat st;
	struct tar_src *t = calloc(1, sizeof(*t));

	if (!t)
		return err_set(ENOMEM, "out of memory");
	t->raw = true;
	s->impl = t;
	s->ops = &file_ops;
	s->kind = "tar";
	if (stat(s->name, &st) == 0)
		s->total = (uint64_t)st.st_size;
	return 0;
}

/* ---- ssh: the remote's own tar ---- */

/* 'text' with single quotes for the remote shell. */
static char *shell_quote(const char *text)
{
	size_t n = 3;
	for (const char *c = text; *c; c++)
		n += *c == '\'' ? 4 : 1;
	char *q = malloc(n), *o = q;
	if (!q)
		return NULL;
	*o++ = '\'';
	for (const char *c = text; *c; c++) {
		if (*c == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *c;
		}
	}
	*o++ = '\'';
	*o = 0;
	return q;
}

/* Run `RSH [-p PORT] HOST -- CMD` with its output on a pipe. */
static int ssh_start(struct mig_src *s, const char *cmd)
{
	struct tar_src *t = s->impl;
	char *words[64];
	size_t nw = 0;
	char *rsh = strdup(s->rsh);
	int pfd[2];

	if (!rsh)
		return err_set(ENOMEM, "out of memory");
	for (char *save = NULL, *w = strtok_r(rsh, " \t", &save); w && nw < 56;
	     w = strtok_r(NULL, " \t", &save))
		words[nw++] = w;
	if (!nw) {
		free(rsh);
		return err_set(EINVAL, "the ssh command (-e) is empty");
	}
	if (t->port) {
		words[nw++] = "-p";
		words[nw++] = t->port;
	}
	words[nw++] = t->host;
	words[nw++] = "--";
	words[nw++] = (char *)cmd;
	words[nw] = NULL;
	if (t->errfd >= 0)
		close(t->errfd);
	if ((t->errfd = memfd_create("ligero-ssh-stderr", MFD_CLOEXEC)) < 0 ||
	    pipe2(pfd, O_CLOEXEC) < 0) {
		free(rsh);
		return err_sys(errno, "pipe");
	}
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(t->errfd, 2);
		execvp(words[0], words);
		fprintf(stderr, "ligero: %s: %s\n", words[0], strerror(errno));
		_exit(127);
	}
	int err = errno;
	free(rsh);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return err_sys(err, "fork");
	}
	t->pid = pid;
	t->fd = pfd[0];
	return 0;
}

/* The last line ssh (or the remote command) wrote on stderr, or "" (buf: 512 bytes). With
 * all, every line, joined with "; ". */
static const char *ssh_said(struct tar_src *t, char *buf, bool all)
{
	char text[4096];
	ssize_t n = t->errfd >= 0 ? pread(t->errfd, text, sizeof(text) - 1, 0) : -1;

	buf[0] = 0;
	if (n <= 0)
		return buf;
	text[n] = 0;
	size_t len = 0;
	for (char *save = NULL, *l = strtok_r(text, "\r\n", &save); l;
	     l = strtok_r(NULL, "\r\n", &save)) {
		if (!*l)
			continue;
		if (!all)
			len = 0;
		len += (size_t)snprintf(buf + len, len < 512 ? 512 - len : 0, "%s%s",
					len ? "; " : "", l);
		if (len >= 512)
			break;
	}
	return buf;
}

/* Wait for ssh; its status (or the remote command's) in s->remote_status. */
static int ssh_finish(struct mig_src *s, bool kill_it)
{
	struct tar_src *t = s->impl;
	int st = 0;

	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->pid <= 0)
		return 0;
	if (kill_it)
		kill(t->pid, SIGTERM);
	while (waitpid(t->pid, &st, 0) < 0 && errno == EINTR)
		;
	t->pid = 0;
	s->remote_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return s->remote_status;
}

static int ssh_read_archive(struct mig_src *s, mig_entry_fn cb, void *priv)
{
	struct tar_src *t = s->impl;
	struct archive *a = reader();
	int ret;

	if (!a)
		return err_set(ENOMEM, "out of memory");
	if (archive_read_open_fd(a, t->fd, 1 << 16) != ARCHIVE_OK)
		ret = err_set(EIO, "%s: %s", s->name, archive_error_string(a));
	else
		ret = read_entries(s, a, cb, priv);
	archive_read_free(a);
	int st = ssh_finish(s, ret != 0);
	char said[512];
	if (ret == 0 && st > 1)
		ret = err_set(EIO, "%s: %s (exit status %d)", s->name,
			      *ssh_said(t, said, false) ? said : "the remote tar failed", st);
	else if (ret == 0)
		snprintf(s->remote_said, sizeof(s->remote_said), "%s", ssh_said(t, said, true));
	return ret;
}

static int ssh_probe(struct mig_src *s, struct mig_files *files)
{
	struct tar_src *t = s->impl;
	char *cmd = NULL, *root = shell_quote(t->root);
	size_t len = 0;
	FILE *m = open_memstream(&cmd, &len);
	int ret;

	if (!m || !root) {
		if (m)
			fclose(m);
		free(cmd);
		free(root);
		return err_set(ENOMEM, "out of memory");
	}
	/* The used space first (for progress), then a tar of the probed paths. */
	fprintf(m,
		"LC_ALL=C; export LC_ALL; cd %s || exit 2; stat -f -c '%%S %%b %%f' . "
		"2>/dev/null; echo LIGERO-PROBE; exec tar -c -f - --numeric-owner "
		"--ignore-failed-read",
		root);
	for (int pass = 0; pass < 2; pass++) {
		fprintf(m, pass ? " --recursion" : " --no-recursion");
		for (const struct mig_probe_item *it = mig_probe_spec; it->path; it++)
			if ((it->how == MIG_PROBE_TREE) == pass)
				fprintf(m, " ./%s", it->path);
	}
	fprintf(m, " 2>/dev/null");
	fclose(m);
	free(root);
	ret = ssh_start(s, cmd);
	free(cmd);
	if (ret < 0)
		return ret;
	char line[256];
	size_t n = 0;
	unsigned long long bs = 0, blocks = 0, bfree = 0;
	for (;;) {
		char ch;
		ssize_t r = read(t->fd, &ch, 1);
		if (r <= 0 || n + 1 >= sizeof(line)) {
			char said[512];
			ssh_finish(s, false);
			return err_set(EIO,
				       "%s: %s (the server must be reachable with '%s' and have "
				       "tar)",
				       s->name, *ssh_said(t, said, false) ? said : "no answer",
				       s->rsh);
		}
		if (ch != '\n') {
			line[n++] = ch;
			continue;
		}
		line[n] = 0;
		n = 0;
		if (!strcmp(line, "LIGERO-PROBE"))
			break;
		sscanf(line, "%llu %llu %llu", &bs, &blocks, &bfree);
	}
	if (bs && blocks >= bfree)
		s->total = bs * (blocks - bfree);
	struct probe_pass p = {files};
	ret = ssh_read_archive(s, probe_entry, &p);
	s->done = 0;
	return ret;
}

static int ssh_walk(struct mig_src *s, mig_entry_fn cb, void *priv)
{
	struct tar_src *t = s->impl;
	char *cmd = NULL, *root = shell_quote(t->root);
	size_t len = 0;
	FILE *m = open_memstream(&cmd, &len);
	int ret;

	if (!m || !root) {
		if (m)
			fclose(m);
		free(cmd);
		free(root);
		return err_set(ENOMEM, "out of memory");
	}
	fprintf(m,
		"LC_ALL=C; export LC_ALL; cd %s || exit 2; exec tar -c -f - --numeric-owner "
		"--xattrs --xattrs-include='*' --acls --one-file-system --sparse "
		"--format=posix --warning=no-file-ignored --anchored",
		root);
	for (const char *const *x = s->excludes; x && *x; x++) {
		char *q = shell_quote(*x);
		if (q)
			fprintf(m, " --exclude=./%s", q);
		free(q);
	}
	fprintf(m, " .");
	fclose(m);
	free(root);
	ret = ssh_start(s, cmd);
	free(cmd);
	if (ret == 0)
		ret = ssh_read_archive(s, cb, priv);
	return ret;
}

static void ssh_close(struct mig_src *s)
{
	struct tar_src *t = s->impl;

	if (t) {
		ssh_finish(s, true);
		if (t->errfd >= 0)
			close(t->errfd);
	}
	tar_close(s);
}

static const struct mig_src_ops ssh_ops = {ssh_probe, ssh_walk, ssh_close};

/* ssh://[user@]host[:port][/path]; IPv6 hosts in brackets. */
int mig_ssh_open(struct mig_src *s)
{
	struct tar_src *t = calloc(1, sizeof(*t));
	const char *u = s->name + 6, *slash = strchr(u, '/');
	const char *at = strchr(u, '@');

	if (!t)
		return err_set(ENOMEM, "out of memory");
	t->fd = -1;
	t->errfd = -1;
	s->impl = t;
	s->ops = &ssh_ops;
	s->kind = "ssh";
	size_t hl = slash ? (size_t)(slash - u) : strlen(u);
	char *hp = strndup(u, hl);
	if (!hp)
		return err_set(ENOMEM, "out of memory");
	char *hstart = (at && at < u + hl) ? hp + (at - u) + 1 : hp;
	char *colon = NULL;
	if (*hstart == '[') {
		char *close = strchr(hstart, ']');
		colon = close && close[1] == ':' ? close + 1 : NULL;
		if (close) {
			memmove(hstart, hstart + 1, (size_t)(close - hstart - 1));
			memmove(close - 1, close + 1, strlen(close + 1) + 1);
			colon = colon ? colon - 2 : NULL;
		}
	} else {
		colon = strrchr(hstart, ':');
	}
	if (colon) {
		*colon = 0;
		t->port = strdup(colon + 1);
		if (!t->port || !*t->port || strspn(t->port, "0123456789") != strlen(t->port)) {
			free(hp);
			return err_set(EINVAL, "%s: the port must be a number", s->name);
		}
	}
	t->host = hp;
	t->root = strdup(slash && slash[1] ? slash : "/");
	if (!t->root)
		return err_set(ENOMEM, "out of memory");
	if (!*hstart)
		return err_set(EINVAL, "%s: no host (ssh://[user@]host[:port][/path])", s->name);
	return 0;
}
