/*
 * vbench: the in-guest measuring tool of bench/virtio.sh (built static, run by the test guest's
 * busybox, which has no fio). Each mode prints one "NAME=value" line.
 *   vbench seqwrite DEV MiB      O_DIRECT 1 MiB writes, then fsync     -> SEQWRITE_MBS
 *   vbench seqread  DEV MiB      O_DIRECT 1 MiB reads                  -> SEQREAD_MBS
 *   vbench randread DEV MiB SECS THREADS   4 KiB O_DIRECT random reads -> RANDREAD_IOPS
 *   vbench tcprecv PORT          receive until EOF                    -> TCP_MBS
 *   vbench tcpsend HOST PORT MiB                                       -> TCP_SEND_MBS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void *abuf(size_t n)
{
	void *p;
	if (posix_memalign(&p, 4096, n))
		exit(1);
	memset(p, 0x5a, n);
	return p;
}

static int seq(const char *dev, long mib, int wr)
{
	int fd = open(dev, (wr ? O_WRONLY : O_RDONLY) | O_DIRECT);
	char *b = abuf(1 << 20);
	double t;
	if (fd < 0) {
		perror(dev);
		return 1;
	}
	t = now();
	for (long i = 0; i < mib; i++) {
		ssize_t n = wr ? pwrite(fd, b, 1 << 20, (off_t)i << 20)
			       : pread(fd, b, 1 << 20, (off_t)i << 20);
		if (n != 1 << 20) {
			perror("io");
			return 1;
		}
	}
	if (wr)
		fsync(fd);
	t = now() - t;
	printf("%s_MBS=%.1f\n", wr ? "SEQWRITE" : "SEQREAD", mib / t);
	return 0;
}

struct rr {
	const char *dev;
	long blocks;
	double end;
	long ops;
	unsigned seed;
};

static void *rr_thread(void *arg)
{
	struct rr *r = arg;
	int fd = open(r->dev, O_RDONLY | O_DIRECT);
	char *b = abuf(4096);
	if (fd < 0)
		return NULL;
	while (now() < r->end) {
		for (int i = 0; i < 64; i++) {
			long blk = rand_r(&r->seed) % r->blocks;
			if (pread(fd, b, 4096, (off_t)blk * 4096) != 4096)
				return NULL;
			r->ops++;
		}
	}
	close(fd);
	return NULL;
}

static int randread(const char *dev, long mib, double secs, int nthreads)
{
	pthread_t t[64];
	struct rr r[64];
	long total = 0;
	double start = now();
	if (nthreads < 1 || nthreads > 64)
		return 1;
	for (int i = 0; i < nthreads; i++) {
		r[i] = (struct rr){dev, mib * 256, start + secs, 0, 1234u + i};
		pthread_create(&t[i], NULL, rr_thread, &r[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		total += r[i].ops;
	}
	printf("RANDREAD_IOPS=%.0f\n", total / (now() - start));
	return 0;
}

static int tcprecv(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1, c;
	static char b[1 << 17];
	long long total = 0;
	double t = 0;
	ssize_t n;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1))
		return 1;
	c = accept(s, NULL, NULL);
	while ((n = read(c, b, sizeof(b))) > 0) {
		if (!total)
			t = now();
		total += n;
	}
	printf("TCP_MBS=%.1f\n", total / 1048576.0 / (now() - t));
	return 0;
}

static int tcpsend(const char *host, int port, long mib)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	static char b[1 << 17];
	int s;
	double t;
	inet_pton(AF_INET, host, &a.sin_addr);
	for (int i = 0;; i++) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		close(s);
		if (i > 60)
			return 1;
		sleep(1);
	}
	memset(b, 0x42, sizeof(b));
	t = now();
	for (long long left = (long long)mib << 20; left > 0;) {
		ssize_t n = write(s, b, left < (long long)sizeof(b) ? (size_t)left : sizeof(b));
		if (n <= 0)
			return 1;
		left -= n;
	}
	shutdown(s, SHUT_WR);
	char x;
	while (read(s, &x, 1) > 0)
		;
	printf("TCP_SEND_MBS=%.1f\n", mib / (now() - t));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "seqwrite"))
		return seq(argv[2], atol(argv[3]), 1);
	if (argc >= 4 && !strcmp(argv[1], "seqread"))
		return seq(argv[2], atol(argv[3]), 0);
	if (argc >= 6 && !strcmp(argv[1], "randread"))
		return randread(argv[2], atol(argv[3]), atof(argv[4]), atoi(argv[5]));
	if (argc >= 3 && !strcmp(argv[1], "tcprecv"))
		return tcprecv(atoi(argv[2]));
	if (argc >= 5 && !strcmp(argv[1], "tcpsend"))
		return tcpsend(argv[2], atoi(argv[3]), atol(argv[4]));
	fprintf(stderr, "usage: see bench/vbench.c\n");
	return 2;
}
