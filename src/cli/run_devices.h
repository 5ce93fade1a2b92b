/* `ligero run` device options (run_devices.c), called from run.c. */
#ifndef LIGERO_CLI_RUN_DEVICES_H
#define LIGERO_CLI_RUN_DEVICES_H

struct vm_devices;
struct virtio_blk_opts;
struct virtio_net_opts;
struct vm_balloon_opts;

/* Usage lines for the device options. */
extern const char run_devices_usage[];
/* Take --disk/--net/--balloon/--rng out of argv (argc shrinks); *out gets the devices.
 * Returns 0, or 1 after printing an error. */
int run_devices_options(int *argc, char **argv, struct vm_devices **out);

/* One line on stderr per NIC: how its packets move (vhost-net or ligero's threads, and why). */
void run_devices_notice(const struct vm_devices *v);

/* The value of one --disk, --net or --balloon, split in place: the struct's strings point into
 * arg. 0, or -EINVAL with a message. */
int run_parse_disk(char *arg, struct virtio_blk_opts *o);
int run_parse_net(char *arg, struct virtio_net_opts *o);
int run_parse_balloon(char *arg, struct vm_balloon_opts *o);

#endif
