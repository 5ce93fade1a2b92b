/* `ligero fs <verb>`: dispatch, common options, and opening a disk address. */
#include "cli/fs.h"
#include "cli/cli.h"
#include "fs/gfs.h"
#include "util/error.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} verbs[] = {
    {"list", fs_list_main, "list [--output=json] DISK"},
    {"ls", fs_ls_main, "ls [-l] [-R] DISK PATH"},
    {"cat", fs_cat_main, "cat DISK PATH..."},
    {"stat", fs_stat_main, "stat [--output=json] DISK PATH..."},
    {"copy-out", fs_copy_out_main, "copy-out DISK PATH... HOSTDIR"},
    {"copy-in", fs_copy_in_main, "copy-in HOSTPATH... DISK DIR"},
    {"write", fs_write_main, "write DISK PATH            (content from stdin)"},
    {"mkdir", fs_mkdir_main, "mkdir [-p] [-m MODE] DISK PATH..."},
    {"rm", fs_rm_main, "rm [-r] [-f] DISK PATH..."},
    {"chmod", fs_chmod_main, "chmod DISK MODE PATH...    (MODE in octal)"},
    {"chown", fs_chown_main, "chown DISK UID[:GID] PATH..."},
    {"ln", fs_ln_main, "ln [-s] DISK TARGET LINKPATH"},
    {"edit", fs_edit_main, "edit DISK PATH             (with $EDITOR)"},
    {"inspect", fs_inspect_main, "inspect [--output=json] DISK"},
    {"mount", fs_mount_main, "mount [--ro] [-f] DISK MOUNTPOINT"},
    {"umount", fs_umount_main, "umount MOUNTPOINT"},
};

static void fs_usage(FILE *f)
{
	fputs("usage: ligero fs <verb> [options]\n\n"
	      "DISK is an image (raw, qcow2 and its backing chain); DISK:N is its partition N.\n"
	      "Plain DISK means its only filesystem, or the one holding /etc/os-release.\n"
	      "--disk FILE [--part N] names an image whose name contains ':'.\n"
	      "Options go before or after the operands; '--' ends them.\n\nverbs:\n",
	      f);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %s\n", verbs[i].help);
}

int cmd_fs(int argc, char **argv)
{
	if (argc < 2) {
		fs_usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fs_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].fn(argc - 1, argv + 1);
	return cli_fail("unknown fs verb '%s' (see 'ligero fs --help')", argv[1]);
}

enum { OPT_DISK = 0x100, OPT_PART, OPT_OUTPUT, OPT_RO = FS_OPT_RO };

/* "fs ls" from a usage line "ls [-l] ...", for messages that name the verb. */
static const char *verb_of(const char *usage, char *buf, size_t len)
{
	snprintf(buf, len, "fs %.*s", (int)strcspn(usage, " "), usage);
	return buf;
}

int fs_cli_parse(struct fs_cli *o, int argc, char **argv, const char *optstring,
		 int (*cb)(int opt, const char *arg, void *priv), void *priv, const char *usage)
{
	static const struct option longopts[] = {
	    {"disk", required_argument, NULL, OPT_DISK},
	    {"part", required_argument, NULL, OPT_PART},
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"ro", no_argument, NULL, OPT_RO},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char opts[64], verb[64];
	int c;

	memset(o, 0, sizeof(*o));
	verb_of(usage, verb, sizeof(verb));
	snprintf(opts, sizeof(opts), ":h%s", optstring);
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, opts, longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			printf("usage: ligero fs %s\n", usage);
			o->help = true;
			return -2;
		case OPT_DISK:
			o->disk = optarg;
			break;
		case OPT_PART: {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 1 << 20) {
				cli_usage_fail(verb, "--part '%s' is not a partition number",
					       optarg);
				return -1;
			}
			o->part = (int)n;
			break;
		}
		case OPT_OUTPUT:
			if (strcmp(optarg, "json") && strcmp(optarg, "human")) {
				cli_usage_fail(verb, "--output must be 'human' or 'json', not '%s'",
					       optarg);
				return -1;
			}
			o->json = !strcmp(optarg, "json");
			break;
		case '?':
		case ':':
			cli_opt_error(verb, c, argv, longopts);
			return -1;
		default:
			if (!cb || cb(c, optarg, priv) < 0)
				return -1;
		}
	}
	if (o->part && !o->disk) {
		cli_usage_fail(verb, "--part goes with --disk (otherwise write DISK:N)");
		return -1;
	}
	return optind;
}

int fs_cli_open(struct fs_handle *h, const struct fs_cli *o, const char *addr, bool rw)
{
	int ret = fs_handle_open(h, addr, o->disk, o->part, rw);

	if (ret < 0)
		return cli_fail_err(ret);
	if (h->disk->warning)
		fprintf(stderr, "ligero: %s\n", h->disk->warning);
	if (gfs_warning(h->gfs))
		fprintf(stderr, "ligero: %s\n", gfs_warning(h->gfs));
	return 0;
}

int fs_cli_close(struct fs_handle *h, int rc)
{
	int ret = fs_handle_close(h);

	if (ret < 0 && rc == 0)
		return cli_fail_err(ret);
	return rc;
}

const char *fs_cli_take_addr(const struct fs_cli *o, int argc, char **argv, int *i)
{
	if (o->disk)
		return NULL;
	return *i < argc ? argv[(*i)++] : NULL;
}

int fs_cli_exact(int have, int want, const char *usage)
{
	char verb[64];

	if (have > want)
		return cli_usage_fail(verb_of(usage, verb, sizeof(verb)),
				      "unexpected argument (usage: ligero fs %s)", usage);
	return fs_cli_need(have, want, usage);
}

int fs_cli_need(int have, int want, const char *usage)
{
	char verb[64];

	if (have < want)
		return cli_usage_fail(verb_of(usage, verb, sizeof(verb)),
				      "missing operand (usage: ligero fs %s)", usage);
	return 0;
}
