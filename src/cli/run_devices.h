/* `ligero run` device options (run_devices.c), called from run.c. */
#ifndef LIGERO_CLI_RUN_DEVICES_H
#define LIGERO_CLI_RUN_DEVICES_H

struct vm_devices;

/* Usage lines for the device options. */
extern const char run_devices_usage[];
/* Take --disk/--net/--balloon/--rng out of argv (argc shrinks); *out gets the devices.
 * Returns 0, or 1 after printing an error. */
int run_devices_options(int *argc, char **argv, struct vm_devices **out);

#endif
