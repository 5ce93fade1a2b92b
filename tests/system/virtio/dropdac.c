/* Run a command as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (dropped from the
 * bounding set before exec), so that file modes bind it: how test_virtio_vhost.py makes
 * /dev/vhost-net unreadable to ligero inside the emulated host, where everything runs as root. */
#include <linux/capability.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2 || prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE) ||
	    prctl(PR_CAPBSET_DROP, CAP_DAC_READ_SEARCH)) {
		perror("dropdac");
		return 125;
	}
	execvp(argv[1], argv + 1);
	perror(argv[1]);
	return 127;
}
