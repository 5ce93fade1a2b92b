/* Shared pieces of the `ligero fs` verbs (cli/fs*.c). */
#ifndef LIGERO_CLI_FS_H
#define LIGERO_CLI_FS_H

#include "fs/disk.h"

#include <stdbool.h>

/* The --ro option, handed to a verb's callback. */
#define FS_OPT_RO 0x103

/* Options every verb takes. */
struct fs_cli {
	const char *disk; /* --disk FILE: the image named literally */
	int part;	  /* --part N with --disk */
	bool json;	  /* --output=json */
	bool help;
};

/* Parse the common options plus the verb's own short options (optstring); the verb's own options
 * come back through cb. Returns the index of the first operand, or -1 after printing an error. */
int fs_cli_parse(struct fs_cli *o, int argc, char **argv, const char *optstring,
		 int (*cb)(int opt, const char *arg, void *priv), void *priv, const char *usage);
/* The operand naming the disk (advancing *i), or NULL when --disk named it. */
const char *fs_cli_take_addr(const struct fs_cli *o, int argc, char **argv, int *i);
/* Fail with the usage line when fewer than want operands were given. */
int fs_cli_need(int have, int want, const char *usage);
/* The same, and fail when more than want were given. */
int fs_cli_exact(int have, int want, const char *usage);
/* Open the filesystem an address names (operand addr, or --disk), printing any warnings.
 * Returns 0, or prints the error and returns 1. */
int fs_cli_open(struct fs_handle *h, const struct fs_cli *o, const char *addr, bool rw);
/* Close, printing a write-back error; returns the exit code (rc if it was already non-zero). */
int fs_cli_close(struct fs_handle *h, int rc);

int fs_list_main(int argc, char **argv);
int fs_ls_main(int argc, char **argv);
int fs_cat_main(int argc, char **argv);
int fs_stat_main(int argc, char **argv);
int fs_copy_out_main(int argc, char **argv);
int fs_copy_in_main(int argc, char **argv);
int fs_write_main(int argc, char **argv);
int fs_mkdir_main(int argc, char **argv);
int fs_rm_main(int argc, char **argv);
int fs_chmod_main(int argc, char **argv);
int fs_chown_main(int argc, char **argv);
int fs_ln_main(int argc, char **argv);
int fs_edit_main(int argc, char **argv);
int fs_inspect_main(int argc, char **argv);
int fs_mount_main(int argc, char **argv);
int fs_umount_main(int argc, char **argv);

#endif
