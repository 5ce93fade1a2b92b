/*
 * A stand-in for a running VM in tests of `ligero ksm status` on the live host: copied to a file
 * named `ligero` and started as `ligero run --memory SIZE`, it maps SIZE of private anonymous
 * memory marked MADV_MERGEABLE (as vmm/memory.c maps guest RAM), fills it with identical pages,
 * prints "ready" and waits for a signal. It never touches KVM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned long long mib = 0;
	sigset_t set;
	int sig;

	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--memory"))
			mib = strtoull(argv[i + 1], NULL, 10);
	if (argc < 2 || strcmp(argv[1], "run") || !mib) {
		fprintf(stderr, "usage: ligero run --memory MiB\n");
		return 2;
	}
	size_t len = mib << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	madvise(p, len, MADV_MERGEABLE);
	memset(p, 0x5a, len);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("ready\n");
	fflush(stdout);
	sigwait(&set, &sig);
	return 0;
}
