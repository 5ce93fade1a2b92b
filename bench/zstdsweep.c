/*
 * zstd settings against QEMU's on the bench data: compresses the non-zero 64 KiB clusters of
 * LEN MiB of FILE from OFF MiB on, cluster by cluster as qcow2 does, with each setting, and
 * prints the total compressed size and the CPU time (best of three passes). "qemu" is QEMU's
 * setting (level 3, the source size known); "ligero" is src/block/qcow2/compress.c's.
 * Build and run: cc -O2 -o /tmp/zstdsweep bench/zstdsweep.c -lzstd &&
 *                /tmp/zstdsweep bench/out/mixed.raw 0 192     (text)
 *                /tmp/zstdsweep bench/out/mixed.raw 256 192   (binaries)
 * (bench/out/mixed.raw is made by bench/convert.sh: text first, then binaries, then random.)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define CS 65536

struct setting {
	const char *name;
	int level, hash_log, chain_log, min_match, strategy;
};

static double cpu_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int all_zero(const unsigned char *p)
{
	for (size_t i = 0; i < CS; i++)
		if (p[i])
			return 0;
	return 1;
}

static void sweep(const struct setting *st, const unsigned char *src, size_t len)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	unsigned char *dst = malloc(CS);
	double best = 1e9;
	size_t total = 0;

	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, st->level);
	if (st->hash_log)
		ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, st->hash_log);
	if (st->chain_log)
		ZSTD_CCtx_setParameter(c, ZSTD_c_chainLog, st->chain_log);
	if (st->min_match)
		ZSTD_CCtx_setParameter(c, ZSTD_c_minMatch, st->min_match);
	if (st->strategy)
		ZSTD_CCtx_setParameter(c, ZSTD_c_strategy, st->strategy);
	for (int pass = 0; pass < 3; pass++) {
		double t = cpu_seconds();
		total = 0;
		for (size_t i = 0; i + CS <= len; i += CS) {
			if (all_zero(src + i))
				continue;
			size_t r = ZSTD_compress2(c, dst, CS - 1, src + i, CS);
			total += ZSTD_isError(r) ? CS : r; /* a cluster that does not shrink: plain */
		}
		if (cpu_seconds() - t < best)
			best = cpu_seconds() - t;
	}
	printf("%-22s size %11zu  cpu %.3f s\n", st->name, total, best);
	ZSTD_freeCCtx(c);
	free(dst);
}

int main(int argc, char **argv)
{
	static const struct setting settings[] = {
	    {"qemu (level 3)", 3, 0, 0, 0},
	    {"ligero (h17 c15)", 3, 17, 15, 0},
	    {"level 3 h17 c16", 3, 17, 16, 0},
	    {"level 3 h16 c16", 3, 16, 16, 0},
	    {"ligero minMatch 6", 3, 17, 15, 6},
	    {"ligero minMatch 4", 3, 17, 15, 4},
	    {"level 4", 4, 0, 0, 0},
	    {"fast h17 minMatch 5", 3, 17, 0, 5, ZSTD_fast},
	};
	if (argc != 4) {
		fprintf(stderr, "usage: %s FILE OFF_MIB LEN_MIB\n", argv[0]);
		return 2;
	}
	size_t len = (size_t)atol(argv[3]) << 20;
	unsigned char *src = malloc(len);
	int fd = open(argv[1], O_RDONLY);
	if (!src || fd < 0 || pread(fd, src, len, (off_t)atol(argv[2]) << 20) != (ssize_t)len) {
		fprintf(stderr, "%s: cannot read %zu bytes at %s MiB\n", argv[1], len, argv[2]);
		return 1;
	}
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		sweep(&settings[i], src, len);
	return 0;
}
