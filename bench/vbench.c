/*
 * vbench: the in-guest measuring tool of bench/virtio.sh (built static, run by the test guest's
 * busybox, which has no fio). Each mode prints one "NAME=value" line.
 *   vbench seqwrite DEV MiB      O_DIRECT 1 MiB writes, then fsync     -> SEQWRITE_MBS
 *   vbench seqread  DEV MiB      O_DIRECT 1 MiB reads                  -> SEQREAD_MBS
 *   vbench randread DEV MiB SECS THREADS   4 KiB O_DIRECT random reads -> RANDREAD_IOPS
 *   vbench tcprecv PORT [N]      N connections, receive until EOF     -> TCP_MBS (all of them)
 *   vbench tcpsend HOST PORT MiB [N]   MiB over N connections          -> TCP_SEND_MBS
 *   vbench rrserver PORT [N]     echo each byte of N connections back
 *   vbench rr HOST PORT SECS [N] 1-byte ping-pong on N connections     -> RR_TPS (transactions/s)
 * Connection i runs on CPU i (so, with a queue pair per CPU, through pair i).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with the fields glibc's copy lacks */
#include <sched.h>
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

/* ---- network: N connections, connection i on CPU i (so, with as many queue pairs as CPUs,
 * through queue pair i) ---- */

struct conn {
	int fd;
	const char *host;
	int port, cpu;
	long long bytes; /* stream: to send, or received */
	double secs;	 /* request/response: how long */
	double t0, t1;	 /* first and last byte */
	long long trans;
};

static void on_cpu(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int dial(const char *host, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, host, &a.sin_addr);
	for (int i = 0; i <= 60; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
			return s;
		close(s);
		sleep(1);
	}
	return -1;
}

/* Accept n connections on port; -1 on failure. */
static int serve(int port, int n, struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, n))
		return -1;
	for (int i = 0; i < n; i++) {
		c[i] = (struct conn){.cpu = i};
		if ((c[i].fd = accept(s, NULL, NULL)) < 0)
			return -1;
	}
	close(s);
	return 0;
}

/* The connection's TCP state as the kernel sees it, one line for bench/virtio.sh's DIAG: what
 * limits a stream (rtt, cwnd, pacing rate, and the time spent limited by the receive window or
 * the send buffer), and how many segments went each way. Taken during a transfer, printed after
 * it, so that no console write falls inside the timed part. */
static void tcpinfo_get(const struct conn *c, struct tcp_info *i)
{
	socklen_t len = sizeof(*i);
	if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, i, &len) < 0)
		memset(i, 0, sizeof(*i));
}

static void tcpinfo_print(const struct conn *c, const char *when, const struct tcp_info *i)
{
	printf("TCPI %s conn %d rtt_us %u rttvar_us %u min_rtt_us %u cwnd %u mss %u "
	       "unacked %u pacing_MBs %.1f delivery_MBs %.1f busy_ms %llu rwnd_limited_ms %llu "
	       "sndbuf_limited_ms %llu segs_out %u segs_in %u rcv_space %u rcv_rtt_us %u ato_us %u "
	       "snd_wnd %u\n", when, c->cpu, i->tcpi_rtt, i->tcpi_rttvar, i->tcpi_min_rtt,
	       i->tcpi_snd_cwnd, i->tcpi_snd_mss, i->tcpi_unacked, i->tcpi_pacing_rate / 1048576.0,
	       i->tcpi_delivery_rate / 1048576.0, (unsigned long long)i->tcpi_busy_time / 1000,
	       (unsigned long long)i->tcpi_rwnd_limited / 1000,
	       (unsigned long long)i->tcpi_sndbuf_limited / 1000, i->tcpi_segs_out, i->tcpi_segs_in,
	       i->tcpi_rcv_space, i->tcpi_rcv_rtt, i->tcpi_ato, i->tcpi_snd_wnd);
}

static void *recv_thread(void *arg)
{
	struct conn *c = arg;
	char *b = malloc(1 << 17);
	ssize_t n;
	on_cpu(c->cpu);
	while ((n = read(c->fd, b, 1 << 17)) > 0) {
		if (!c->bytes)
			c->t0 = now();
		c->bytes += n;
	}
	c->t1 = now();
	struct tcp_info ti;
	tcpinfo_get(c, &ti);
	tcpinfo_print(c, "receiver", &ti);
	close(c->fd);
	free(b);
	return NULL;
}

static void *send_thread(void *arg)
{
	struct conn *c = arg;
	char *b = malloc(1 << 17), x;
	struct tcp_info half = {0}, end;
	on_cpu(c->cpu);
	memset(b, 0x42, 1 << 17);
	for (long long left = c->bytes; left > 0;) {
		ssize_t n = write(c->fd, b, left < (1 << 17) ? (size_t)left : (1 << 17));
		if (n <= 0)
			break;
		if (left > c->bytes / 2 && left - n <= c->bytes / 2)
			tcpinfo_get(c, &half);
		left -= n;
	}
	tcpinfo_get(c, &end);
	shutdown(c->fd, SHUT_WR);
	while (read(c->fd, &x, 1) > 0)
		;
	tcpinfo_print(c, "sender-half", &half);
	tcpinfo_print(c, "sender-end", &end);
	close(c->fd);
	free(b);
	return NULL;
}

/* One transaction: a byte there, a byte back, as long as secs runs. */
static void *rr_client(void *arg)
{
	struct conn *c = arg;
	int one = 1;
	char x = 1;
	on_cpu(c->cpu);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->t0 = now();
	while ((c->t1 = now()) - c->t0 < c->secs)
		for (int i = 0; i < 16; i++) {
			if (write(c->fd, &x, 1) != 1 || read(c->fd, &x, 1) != 1)
				return NULL;
			c->trans++;
		}
	shutdown(c->fd, SHUT_WR);
	close(c->fd);
	return NULL;
}

static void *rr_echo(void *arg)
{
	struct conn *c = arg;
	int one = 1;
	char x;
	on_cpu(c->cpu);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (read(c->fd, &x, 1) == 1 && write(c->fd, &x, 1) == 1)
		;
	close(c->fd);
	return NULL;
}

static int run_threads(int n, struct conn *c, void *(*fn)(void *))
{
	pthread_t t[16];
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, fn, &c[i]);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	return 0;
}

static int tcprecv(int port, int n)
{
	struct conn c[16];
	long long total = 0;
	double t0 = 0, t1 = 0;
	if (n < 1 || n > 16 || serve(port, n, c) < 0)
		return 1;
	run_threads(n, c, recv_thread);
	for (int i = 0; i < n; i++) {
		total += c[i].bytes;
		if (!t0 || c[i].t0 < t0)
			t0 = c[i].t0;
		if (c[i].t1 > t1)
			t1 = c[i].t1;
	}
	printf("TCP_MBS=%.1f\n", total / 1048576.0 / (t1 - t0));
	return 0;
}

static int tcpsend(const char *host, int port, long mib, int n)
{
	struct conn c[16];
	double t;
	if (n < 1 || n > 16)
		return 1;
	for (int i = 0; i < n; i++) {
		c[i] = (struct conn){.cpu = i, .bytes = ((long long)mib << 20) / n};
		if ((c[i].fd = dial(host, port)) < 0)
			return 1;
	}
	t = now();
	run_threads(n, c, send_thread);
	printf("TCP_SEND_MBS=%.1f\n", mib / (now() - t));
	return 0;
}

static int rrserver(int port, int n)
{
	struct conn c[16];
	if (n < 1 || n > 16 || serve(port, n, c) < 0)
		return 1;
	return run_threads(n, c, rr_echo);
}

static int rr(const char *host, int port, double secs, int n)
{
	struct conn c[16];
	double tps = 0;
	if (n < 1 || n > 16)
		return 1;
	for (int i = 0; i < n; i++) {
		c[i] = (struct conn){.cpu = i, .secs = secs};
		if ((c[i].fd = dial(host, port)) < 0)
			return 1;
	}
	run_threads(n, c, rr_client);
	for (int i = 0; i < n; i++)
		tps += c[i].trans / (c[i].t1 - c[i].t0);
	printf("RR_TPS=%.0f\n", tps);
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
		return tcprecv(atoi(argv[2]), argc >= 4 ? atoi(argv[3]) : 1);
	if (argc >= 5 && !strcmp(argv[1], "tcpsend"))
		return tcpsend(argv[2], atoi(argv[3]), atol(argv[4]), argc >= 6 ? atoi(argv[5]) : 1);
	if (argc >= 3 && !strcmp(argv[1], "rrserver"))
		return rrserver(atoi(argv[2]), argc >= 4 ? atoi(argv[3]) : 1);
	if (argc >= 5 && !strcmp(argv[1], "rr"))
		return rr(argv[2], atoi(argv[3]), atof(argv[4]), argc >= 6 ? atoi(argv[5]) : 1);
	fprintf(stderr, "usage: see bench/vbench.c\n");
	return 2;
}
