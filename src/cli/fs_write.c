/* `ligero fs` verbs that change a guest filesystem. */
#include "cli/cli.h"
#include "cli/fs.h"
#include "fs/copy.h"
#include "fs/ext.h"
#include "fs/ops.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int parse_mode(const char *s, uint32_t *mode)
{
	char *end;
	unsigned long m = strtoul(s, &end, 8);

	if (!*s || *end || m > 07777)
		return cli_fail("'%s' is not an octal mode (e.g. 0644)", s);
	*mode = (uint32_t)m;
	return 0;
}

int fs_copy_in_main(int argc, char **argv)
{
	static const char usage[] = "copy-in HOSTPATH... DISK DIR";
	struct fs_cli o;
	struct fs_handle h;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	int nd = o.disk ? 1 : 2; /* DISK DIR, or DIR alone with --disk */
	if (fs_cli_need(argc - i, nd + 1, usage))
		return 1;
	const char *addr = o.disk ? NULL : argv[argc - 2];
	const char *dir = argv[argc - 1];
	for (int k = i; k < argc - nd; k++) {
		struct stat hs;
		if (lstat(argv[k], &hs) < 0)
			return cli_fail("%s: %s", argv[k], strerror(errno));
	}
	if (fs_cli_open(&h, &o, addr, true))
		return 1;
	for (; ret == 0 && i < argc - nd; i++)
		ret = fs_copy_in(h.fs, argv[i], dir);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

int fs_write_main(int argc, char **argv)
{
	static const char usage[] = "write DISK PATH   (the content comes from stdin)";
	struct fs_cli o;
	struct fs_handle h;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_exact(argc - i + (addr || o.disk), 2, usage))
		return 1;
	if (fs_cli_open(&h, &o, addr, true))
		return 1;
	ret = fs_write_from(h.fs, argv[i], STDIN_FILENO);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

struct mkdir_opts {
	bool parents;
	uint32_t mode;
	bool bad;
};

static int mkdir_opt(int c, const char *arg, void *priv)
{
	struct mkdir_opts *m = priv;

	if (c == 'p')
		m->parents = true;
	else if (c == 'm' && parse_mode(arg, &m->mode))
		return -1;
	return 0;
}

int fs_mkdir_main(int argc, char **argv)
{
	static const char usage[] = "mkdir [-p] [-m MODE] DISK PATH...";
	struct mkdir_opts m = {.mode = 0755};
	struct fs_cli o;
	struct fs_handle h;
	int i = fs_cli_parse(&o, argc, argv, "pm:", mkdir_opt, &m, usage), ret = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_need(argc - i + (addr || o.disk), 2, usage))
		return 1;
	if (fs_cli_open(&h, &o, addr, true))
		return 1;
	for (; ret == 0 && i < argc; i++)
		ret = fs_mkdir(h.fs, argv[i], m.mode, m.parents);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

struct rm_opts {
	bool recursive, force;
};

static int rm_opt(int c, const char *arg, void *priv)
{
	struct rm_opts *r = priv;

	if (c == 'r' || c == 'R')
		r->recursive = true;
	else if (c == 'f')
		r->force = true;
	return 0;
}

int fs_rm_main(int argc, char **argv)
{
	static const char usage[] = "rm [-r] [-f] DISK PATH...";
	struct rm_opts r = {0};
	struct fs_cli o;
	struct fs_handle h;
	int i = fs_cli_parse(&o, argc, argv, "rRf", rm_opt, &r, usage), ret = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_need(argc - i + (addr || o.disk), 2, usage))
		return 1;
	for (int k = i; k < argc; k++)
		if (!strcmp(argv[k], "/") || argv[k][strspn(argv[k], "/")] == 0)
			return cli_fail("refusing to remove the root directory");
	if (fs_cli_open(&h, &o, addr, true))
		return 1;
	for (; ret == 0 && i < argc; i++)
		ret = fs_rm(h.fs, argv[i], r.recursive, r.force);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

int fs_chmod_main(int argc, char **argv)
{
	static const char usage[] = "chmod DISK MODE PATH...";
	struct fs_cli o;
	struct fs_handle h;
	uint32_t mode = 0;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_need(argc - i + (addr || o.disk), 3, usage) || parse_mode(argv[i++], &mode))
		return 1;
	if (fs_cli_open(&h, &o, addr, true))
		return 1;
	for (; ret == 0 && i < argc; i++)
		ret = fs_chmod(h.fs, argv[i], mode);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

/* Numeric ids only: names would have to come from the guest's /etc/passwd, not the host's. */
static int parse_owner(const char *s, uint32_t *uid, uint32_t *gid)
{
	char *end;
	unsigned long u, g = (unsigned long)-1;

	errno = 0;
	u = strtoul(s, &end, 10);
	if (end == s || errno || u > 0xfffffffeUL || (*end && *end != ':'))
		return cli_fail("'%s' is not UID[:GID] (numeric ids)", s);
	if (*end == ':') {
		const char *gs = end + 1;
		g = strtoul(gs, &end, 10);
		if (end == gs || *end || errno || g > 0xfffffffeUL)
			return cli_fail("'%s' is not UID[:GID] (numeric ids)", s);
	}
	*uid = (uint32_t)u;
	*gid = (uint32_t)g;
	return 0;
}

int fs_chown_main(int argc, char **argv)
{
	static const char usage[] = "chown DISK UID[:GID] PATH...";
	struct fs_cli o;
	struct fs_handle h;
	uint32_t uid = 0, gid = 0;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_need(argc - i + (addr || o.disk), 3, usage) ||
	    parse_owner(argv[i++], &uid, &gid))
		return 1;
	if (fs_cli_open(&h, &o, addr, true))
		return 1;
	for (; ret == 0 && i < argc; i++)
		ret = fs_chown(h.fs, argv[i], uid, gid);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

static int ln_opt(int c, const char *arg, void *priv)
{
	if (c == 's')
		*(bool *)priv = true;
	return 0;
}

int fs_ln_main(int argc, char **argv)
{
	static const char usage[] = "ln [-s] DISK TARGET LINKPATH";
	struct fs_cli o;
	struct fs_handle h;
	bool sym = false;
	int i = fs_cli_parse(&o, argc, argv, "s", ln_opt, &sym, usage), ret;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_exact(argc - i + (addr || o.disk), 3, usage))
		return 1;
	if (fs_cli_open(&h, &o, addr, true))
		return 1;
	ret = sym ? fs_symlink(h.fs, argv[i], argv[i + 1]) : fs_link(h.fs, argv[i], argv[i + 1]);
	return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
}

static int same_content(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int same = fa && fb;

	while (same) {
		int ca = getc(fa), cb = getc(fb);
		if (ca != cb)
			same = 0;
		if (ca == EOF || cb == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static int run_editor(const char *file)
{
	const char *ed = getenv("VISUAL");

	if (!ed || !*ed)
		ed = getenv("EDITOR");
	if (!ed || !*ed)
		ed = "vi";
	pid_t pid = fork();
	if (pid < 0)
		return cli_fail("cannot start the editor: %s", strerror(errno));
	if (pid == 0) {
		/* Through the shell, so EDITOR="code --wait" works as it does for git. */
		execl("/bin/sh", "sh", "-c", "exec $0 \"$1\"", ed, file, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return cli_fail("editor '%s' failed; the file was not changed", ed);
	return 0;
}

int fs_edit_main(int argc, char **argv)
{
	static const char usage[] = "edit DISK PATH";
	struct fs_cli o;
	struct fs_handle h;
	char dir[] = "/tmp/ligero-edit.XXXXXX", orig[64], work[64];
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage), ret = 0, rc = 0;

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_exact(argc - i + (addr || o.disk), 2, usage))
		return 1;
	if (fs_cli_open(&h, &o, addr, true))
		return 1;
	if (!mkdtemp(dir))
		return fs_cli_close(
		    &h, cli_fail("cannot make a temporary directory: %s", strerror(errno)));
	snprintf(orig, sizeof(orig), "%s/orig", dir);
	snprintf(work, sizeof(work), "%s/edit", dir);
	int fo = open(orig, O_WRONLY | O_CREAT | O_EXCL, 0600);
	int fw = open(work, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fo < 0 || fw < 0)
		rc = cli_fail("cannot create temporary files in %s", dir);
	if (!rc && (ret = fs_cat(h.gfs, argv[i], fo)) == 0)
		ret = fs_cat(h.gfs, argv[i], fw);
	if (fo >= 0)
		close(fo);
	if (fw >= 0)
		close(fw);
	if (!rc && ret < 0)
		rc = cli_fail_err(ret);
	if (!rc)
		rc = run_editor(work);
	if (!rc && !same_content(orig, work)) {
		int fd = open(work, O_RDONLY);
		ret = fd < 0 ? err_sys(errno, "%s", work) : fs_write_from(h.fs, argv[i], fd);
		if (fd >= 0)
			close(fd);
		if (ret < 0)
			rc = cli_fail_err(ret);
	}
	unlink(orig);
	unlink(work);
	rmdir(dir);
	return fs_cli_close(&h, rc);
}
