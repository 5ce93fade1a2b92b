/* `ligero fs mount` / `umount`: a FUSE mount served by a background process, like guestmount. */
#include "cli/cli.h"
#include "cli/fs.h"
#include "fs/ext.h"
#include "fs/fuse.h"
#include "fs/gfs.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

struct mount_opts {
	bool ro, foreground;
};

static int mount_opt(int c, const char *arg, void *priv)
{
	struct mount_opts *m = priv;

	if (c == FS_OPT_RO || c == 'r')
		m->ro = true;
	else if (c == 'f')
		m->foreground = true;
	return 0;
}

/* The server: mount, tell the waiting parent (status byte + message), serve, write back. */
static int serve(struct fs_handle *h, const char *mnt, bool ro, int report)
{
	struct fs_fuse *ff;
	char fsname[64];
	int ret;

	/* umount finds the server by the pid in the mount's source name. */
	snprintf(fsname, sizeof(fsname), "ligero:%d", (int)getpid());
	ret = fs_fuse_mount(&ff, h->gfs, h->fs, mnt, ro, fsname);
	if (report >= 0) {
		const char *msg = ret < 0 ? err_msg_or(ret) : "";
		char st = ret < 0 ? 1 : 0;
		if (write(report, &st, 1) != 1 || write(report, msg, strlen(msg)) < 0)
			ret = ret < 0 ? ret : -EPIPE;
		close(report);
	}
	if (ret < 0)
		return ret;
	if (!ro && (ret = extfs_mark_mounted(h->fs)) < 0) {
		fs_fuse_destroy(ff);
		return ret;
	}
	ret = fs_fuse_loop(ff);
	fs_fuse_destroy(ff);
	return ret;
}

int fs_mount_main(int argc, char **argv)
{
	static const char usage[] = "mount [--ro] [-f] DISK MOUNTPOINT";
	struct mount_opts m = {0};
	struct fs_cli o;
	struct fs_handle h;
	int i = fs_cli_parse(&o, argc, argv, "rf", mount_opt, &m, usage), p[2];

	if (i < 0)
		return i == -2 ? 0 : 1;
	const char *addr = fs_cli_take_addr(&o, argc, argv, &i);
	if (fs_cli_exact(argc - i + (addr || o.disk), 2, usage))
		return 1;
	char mnt[PATH_MAX];
	struct stat st;
	/* Absolute: the server changes to / before it mounts. */
	if (!realpath(argv[i], mnt) || stat(mnt, &st) < 0 || !S_ISDIR(st.st_mode))
		return cli_fail("%s: mount point is not an existing directory", argv[i]);
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return cli_fail("/dev/fuse: %s (FUSE is needed for mount)", strerror(errno));
	int ret = fs_handle_open(&h, addr, o.disk, o.part, !m.ro);
	if (ret == -EROFS && !m.ro)
		return cli_fail("%s (mount --ro reads it)", err_msg_or(ret));
	if (ret < 0)
		return cli_fail_err(ret);
	if (h.disk->warning)
		fprintf(stderr, "ligero: %s\n", h.disk->warning);
	if (gfs_warning(h.gfs))
		fprintf(stderr, "ligero: %s\n", gfs_warning(h.gfs));
	if (m.foreground) {
		ret = serve(&h, mnt, m.ro, -1);
		return fs_cli_close(&h, ret < 0 ? cli_fail_err(ret) : 0);
	}
	if (pipe(p) < 0)
		return fs_cli_close(&h, cli_fail("pipe: %s", strerror(errno)));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return fs_cli_close(&h, cli_fail("fork: %s", strerror(errno)));
	if (pid == 0) {
		close(p[0]);
		setsid();
		if (chdir("/") < 0)
			_exit(1);
		/* Nothing may keep the caller's stdout/stderr open (a pipe reader would wait for
		 * this process); problems after the mount go to syslog, as guestmount's do. */
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
		ret = serve(&h, mnt, m.ro, p[1]);
		if (ret == 0)
			ret = fs_handle_close(&h);
		else
			fs_handle_close(&h);
		if (ret < 0)
			syslog(LOG_ERR, "ligero fs mount %s: %s", mnt, err_msg_or(ret));
		_exit(ret < 0 ? 1 : 0);
	}
	/* The parent owns nothing any more: the server has the image. Closing it here would
	 * write qcow2 metadata behind the server's back, so the parent leaves with _exit. */
	close(p[1]);
	char st8 = 1, msg[1024] = "";
	ssize_t n = read(p[0], &st8, 1);
	ssize_t k = n == 1 ? read(p[0], msg, sizeof(msg) - 1) : 0;
	close(p[0]);
	msg[k > 0 ? k : 0] = 0;
	if (n != 1 || st8) {
		waitpid(pid, NULL, 0);
		cli_fail("%s", msg[0] ? msg : "the mount process failed");
		_exit(1);
	}
	fflush(NULL);
	_exit(0);
}

/* A server that exited but was not reaped yet (its parent is gone) counts as finished. */
static bool alive(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return kill(pid, 0) == 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *rp = strrchr(buf, ')');
	return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* The ligero server pid of the FUSE mount at mnt, from /proc/self/mountinfo. */
static int find_server(const char *mnt, pid_t *pid)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	int found = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char mp[4096], src[256], type[64];
		/* id parent major:minor root mountpoint opts [optional...] - type source superopts
		 */
		if (sscanf(line, "%*d %*d %*s %*s %4095s", mp) != 1)
			continue;
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(dash, " - %63s %255s", type, src) != 2)
			continue;
		if (strcmp(mp, mnt))
			continue;
		found = 0;
		int p;
		if (!strncmp(type, "fuse", 4) && sscanf(src, "ligero:%d", &p) == 1) {
			*pid = p;
			found = 1;
		}
	}
	fclose(f);
	return found;
}

int fs_umount_main(int argc, char **argv)
{
	static const char usage[] = "umount MOUNTPOINT";
	struct fs_cli o;
	char mnt[PATH_MAX];
	pid_t pid = 0;
	int i = fs_cli_parse(&o, argc, argv, "", NULL, NULL, usage);

	if (i < 0)
		return i == -2 ? 0 : 1;
	if (fs_cli_exact(argc - i, 1, usage))
		return 1;
	/* A mount point whose directory was removed underneath still shows in mountinfo. */
	if (!realpath(argv[i], mnt) &&
	    snprintf(mnt, sizeof(mnt), "%s", argv[i]) >= (int)sizeof(mnt))
		return cli_fail("%s: %s", argv[i], strerror(ENAMETOOLONG));
	int found = find_server(mnt, &pid);
	if (found < 0)
		return cli_fail("%s: not a mount point", mnt);
	if (found == 0)
		return cli_fail("%s: not mounted by ligero fs mount", mnt);
	if (umount2(mnt, 0) < 0) {
		if (errno != EPERM)
			return cli_fail("%s: cannot unmount: %s", mnt, strerror(errno));
		/* Not root: the setuid helper may unmount what this user mounted. */
		pid_t h = fork();
		if (h == 0) {
			execlp("fusermount3", "fusermount3", "-u", mnt, (char *)NULL);
			_exit(127);
		}
		int st;
		if (h < 0 || waitpid(h, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			return cli_fail("%s: cannot unmount (fusermount3 -u failed)", mnt);
	}
	/* Like guestunmount: return once the server has written everything back and exited. */
	for (int t = 0; t < 6000 && alive(pid); t++)
		nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
	if (alive(pid))
		return cli_fail("%s: unmounted, but server %d is still writing back after 60 s",
				mnt, (int)pid);
	return 0;
}
