#include "cli/cli.h"
#include "cli/fs.h"
int fs_inspect_main(int argc, char **argv) { return cli_fail("todo"); }
int fs_mount_main(int argc, char **argv) { return cli_fail("todo"); }
int fs_umount_main(int argc, char **argv) { return cli_fail("todo"); }
