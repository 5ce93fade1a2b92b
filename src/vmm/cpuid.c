/* CPUID. Linux derives its topology from leaf 1 (APIC ID, logical count), 0xB/0x1F (x2APIC
 * levels) on Intel and 0x80000008/0x8000001E on AMD; all must agree with the MADT, or it
 * warns and may build a wrong scheduler topology. We describe one socket of N cores. */
#include "vmm/cpuid.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

int cpuid_supported(int kvm_fd, struct kvm_cpuid2 **out)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return err_sys(errno, "KVM_GET_SUPPORTED_CPUID");
	}
	return err_set(E2BIG, "KVM_GET_SUPPORTED_CPUID: too many entries");
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static void topology_leaf_b(struct kvm_cpuid_entry2 *e, unsigned id, unsigned ncpus)
{
	unsigned level = e->index & 0xff;

	e->edx = id;
	if (level == 0) { /* SMT: one thread per core */
		e->eax = 0;
		e->ebx = 1;
		e->ecx = 1 << 8 | level;
	} else if (level == 1) { /* cores */
		e->eax = bits_for(ncpus);
		e->ebx = ncpus;
		e->ecx = 2 << 8 | level;
	} else {
		e->eax = 0;
		e->ebx = 0;
		e->ecx = level;
	}
}

void cpuid_set_topology(struct kvm_cpuid2 *c, unsigned id, unsigned ncpus)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0xffff) | (ncpus & 0xff) << 16 | (id & 0xff) << 24;
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: more than one logical CPU */
			else
				e->edx &= ~(1u << 28);
			e->ecx |= 1u << 31; /* running under a hypervisor */
			break;
		case 4:
			if (!(e->eax & 0x1f))
				break; /* no more cache levels */
			e->eax &= 0x3ff;
			e->eax |= (ncpus > 64 ? 63 : ncpus - 1) << 26; /* a 6-bit field */
			if (((e->eax >> 5) & 7) == 3)		       /* L3 shared by all */
				e->eax |= (ncpus - 1) << 14;
			break;
		case 0xb:
		case 0x1f:
			topology_leaf_b(e, id, ncpus);
			break;
		case 0x80000008:
			e->ecx = (e->ecx & ~0xf0ffu) | (ncpus - 1) | bits_for(ncpus) << 12;
			break;
		case 0x8000001e:
			e->eax = id;
			e->ebx = id & 0xff; /* core id; one thread per core */
			e->ecx = 0;	    /* node 0, one node */
			break;
		}
	}
}

void cpuid_set_tsc_deadline(struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1)
			c->entries[i].ecx |= 1u << 24;
}
