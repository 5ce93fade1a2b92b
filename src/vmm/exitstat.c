/* Exit and start-up statistics (exitstat.h). A linear table under one lock: this only runs
 * when asked for, and a VM has a few dozen distinct exit addresses. */
#include "vmm/exitstat.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* When this process started, in seconds of uptime (field 22 of /proc/self/stat), or -1. */
static double process_start(void)
{
	char buf[1024], *p;
	unsigned long long start;
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = 0;
	if (!(p = strrchr(buf, ')')))
		return -1;
	/* after the name: state is field 3, starttime field 22 */
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p, " %llu", &start) != 1)
		return -1;
	return (double)start / sysconf(_SC_CLK_TCK);
}

struct exitstat *exitstat_new(void)
{
	struct exitstat *s;

	if (!getenv("LIGERO_STATS") || !(s = calloc(1, sizeof(*s))))
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void exitstat_free(struct exitstat *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void exitstat_count(struct exitstat *s, enum exitstat_kind kind, uint64_t addr, int write)
{
	unsigned i;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nslots; i++)
		if (s->slot[i].addr == addr && s->slot[i].kind == kind &&
		    s->slot[i].write == (uint32_t)write)
			break;
	if (i == s->nslots && i < EXITSTAT_SLOTS)
		s->slot[s->nslots++] = (struct exitstat_slot){addr, kind, write, 0};
	if (i < s->nslots)
		s->slot[i].count++;
	else
		s->lumped++;
	pthread_mutex_unlock(&s->lock);
}

void exitstat_mark(struct exitstat *s, const char *name)
{
	struct timespec ts;

	if (!s)
		return;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	pthread_mutex_lock(&s->lock);
	if (s->nmarks < EXITSTAT_MARKS) {
		s->mark_name[s->nmarks] = name;
		s->mark_at[s->nmarks++] = ts.tv_sec + ts.tv_nsec / 1e9;
	}
	pthread_mutex_unlock(&s->lock);
}

static int by_count(const void *a, const void *b)
{
	const struct exitstat_slot *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

void exitstat_print(struct exitstat *s, FILE *f)
{
	static const char *const kinds[] = {"pio", "mmio", "exit"};

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	fprintf(f, "ligero: at %.3f s (uptime): process started\n", process_start());
	for (unsigned i = 0; i < s->nmarks; i++)
		fprintf(f, "ligero: at %.3f s (uptime): %s\n", s->mark_at[i], s->mark_name[i]);
	qsort(s->slot, s->nslots, sizeof(s->slot[0]), by_count);
	for (unsigned i = 0; i < s->nslots; i++)
		fprintf(f, "ligero: %8lu %s %s %#llx\n", s->slot[i].count, kinds[s->slot[i].kind],
			s->slot[i].kind == EXITSTAT_OTHER ? "reason"
			: s->slot[i].write		  ? "write"
							  : "read",
			(unsigned long long)s->slot[i].addr);
	if (s->lumped)
		fprintf(f, "ligero: %8lu more exits at other addresses\n", s->lumped);
	pthread_mutex_unlock(&s->lock);
}
