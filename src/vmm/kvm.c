/* /dev/kvm. A KVM that cannot run stock kernels (PVM, or no vmx/svm) accepts them and then runs
 * them through its instruction emulator at about a million instructions per second until they
 * die on an instruction it lacks; saying so up front beats a hang. */
#include "vmm/kvm.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static bool cpuinfo_has_hwvirt(const char *cpuinfo)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen(cpuinfo, "r");

	if (!f)
		return true; /* cannot tell: do not stand in the way */
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		found = strstr(line, " vmx") || strstr(line, " svm");
		break;
	}
	fclose(f);
	return found;
}

enum kvm_host_kind kvm_host_kind(const char *sys_module, const char *cpuinfo)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/kvm_pvm", sys_module);
	if (stat(path, &st) == 0)
		return KVM_HOST_PVM;
	if (!cpuinfo_has_hwvirt(cpuinfo))
		return KVM_HOST_NO_HWVIRT;
	return KVM_HOST_OK;
}

static const int needed_caps[] = {
    KVM_CAP_IRQCHIP, KVM_CAP_USER_MEMORY,  KVM_CAP_EXT_CPUID,
    KVM_CAP_PIT2,    KVM_CAP_SET_TSS_ADDR, KVM_CAP_IMMEDIATE_EXIT,
};

#define WAY_OUT                                                                                    \
	"boot inside the emulated host instead (tests/vmhost/vmhost.sh, see docs/ligero-run.md), " \
	"or pass --force to try anyway"

int kvm_open(const char *path, bool force)
{
	enum kvm_host_kind kind = kvm_host_kind("/sys/module", "/proc/cpuinfo");
	int fd = open(path, O_RDWR | O_CLOEXEC), v;

	if (fd < 0 && errno == ENOENT && kind == KVM_HOST_OK)
		return err_set(ENODEV,
			       "%s does not exist: load kvm_intel or kvm_amd, or enable "
			       "virtualization in the firmware",
			       path);
	if (fd < 0 && errno == ENOENT) /* loading a module would not help here */
		return err_set(ENODEV,
			       "%s does not exist, and this host could not run a stock kernel on "
			       "KVM anyway (%s); boot inside the emulated host instead "
			       "(tests/vmhost/vmhost.sh, see docs/ligero-run.md)",
			       path, kind == KVM_HOST_PVM ? "module kvm_pvm" : "no vmx or svm");
	if (fd < 0 && errno == EACCES)
		return err_set(EACCES,
			       "%s: permission denied (join the group that owns it, "
			       "usually 'kvm')",
			       path);
	if (fd < 0)
		return err_sys(errno, "%s", path);
	if ((v = ioctl(fd, KVM_GET_API_VERSION, 0)) != KVM_API_VERSION) {
		close(fd);
		return err_set(ENOTSUP, "%s: KVM API version %d, need %d", path, v,
			       KVM_API_VERSION);
	}
	for (size_t i = 0; i < sizeof(needed_caps) / sizeof(needed_caps[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, needed_caps[i]) <= 0) {
			close(fd);
			return err_set(ENOTSUP, "%s: KVM lacks capability %d that ligero needs",
				       path, needed_caps[i]);
		}
	}
	if (!force && kind != KVM_HOST_OK) {
		close(fd);
		if (kind == KVM_HOST_PVM)
			return err_set(
			    ENOTSUP,
			    "%s is PVM (module kvm_pvm): it runs only "
			    "PVM-enabled guest kernels, a stock kernel would hang in its "
			    "instruction emulator; " WAY_OUT,
			    path);
		return err_set(ENOTSUP,
			       "%s: this CPU shows no vmx or svm, so KVM would run a "
			       "stock kernel in its instruction emulator; " WAY_OUT,
			       path);
	}
	return fd;
}
