/* Shared pieces of the `ligero vm` verbs (cli/vm*.c). */
#ifndef LIGERO_CLI_VM_H
#define LIGERO_CLI_VM_H

#include "host/registry.h"

#include <stdbool.h>

struct option;

/* Options every verb takes, and the operand most take. */
struct vm_cli {
	const char *verb; /* "vm start", for messages */
	const char *state_dir;
	bool json; /* --output=json, where the verb has it */
	const char *name;
	struct registry reg;
};

/* Parse a verb's options: --state-dir, --help (and --output where output is set) here, the
 * verb's own (opts, without the common ones) through cb, which returns 0 or an exit code.
 * name_needed: exactly one operand, the VM's name (checked), else none. Returns 0 to go on, 1
 * after an error was printed, -1 after --help was printed (exit 0). On 0 the registry is open
 * (vm_cli_done closes it). */
int vm_cli_parse(struct vm_cli *o, const char *usage, int argc, char **argv,
		 const struct option *opts, bool output, bool name_needed,
		 int (*cb)(int c, const char *arg, void *priv), void *priv);
/* Close the registry; returns rc. */
int vm_cli_done(struct vm_cli *o, int rc);
/* Print "ligero: VERB: <recorded message>"; returns 1. */
int vm_cli_fail(const struct vm_cli *o, int ret);

/* The program that runs a VM: this binary (/proc/self/exe), or LIGERO_VM_EXEC where tests put
 * a stand-in VMM. */
const char *vm_cli_exe(void);

/* Attach the terminal to the VM's console socket until Ctrl-] (or end of input, or the VM's
 * end). Returns the exit code. */
int vm_console_attach(const struct vm_cli *o);

/* Durations as "1d 02:03:04" / "02:03:04"; sizes as "900M" / "1.5G". */
char *vm_cli_duration(double seconds, char *buf, size_t len);
char *vm_cli_size(uint64_t bytes, char *buf, size_t len);

/* vm create's options (cli/vm_define.c), shared with fleet create: the table (n entries and a
 * zero one; its vals stay below 0x200), what vm_define_collect gathers from them as vm_cli_parse's
 * cb, and vm_define_apply, which applies them to d once the registry is open (MACs need it):
 * 0 or an exit code after printing why. */
#define VM_DEFAULT_MEMORY (1ull << 30)
struct vm_define_opts {
	const char *memory, *cpus, *kernel, *initrd, *cmdline;
	const char *disks[64], *nets[16], *rm_disks[64], *rm_nets[16];
	int ndisks, nnets, nrm_disks, nrm_nets;
	int balloon, rng, autostart; /* -1 unchanged, 0 off, 1 on */
	bool disk_boot, any;
	const char *verb;
};
const struct option *vm_define_options(size_t *n);
int vm_define_collect(int c, const char *arg, void *priv);
int vm_define_apply(const struct vm_cli *o, const struct vm_define_opts *k, struct vmdef *d);

int vm_create_main(int argc, char **argv);
int vm_edit_main(int argc, char **argv);
int vm_delete_main(int argc, char **argv);
int vm_start_main(int argc, char **argv);
int vm_stop_main(int argc, char **argv);
int vm_restart_main(int argc, char **argv);
int vm_kill_main(int argc, char **argv);
int vm_run_main(int argc, char **argv);
int vm_autostart_main(int argc, char **argv);
int vm_list_main(int argc, char **argv);
int vm_show_main(int argc, char **argv);
int vm_monitor_main(int argc, char **argv);
int vm_console_main(int argc, char **argv);

#endif
