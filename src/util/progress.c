/* The progress bar prints (it is the one util module that does); the signal helpers let long
 * verbs notice Ctrl-C between steps instead of dying with a half-written destination. */
#include "util/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag;

void progress_init(struct progress *p, bool asked, bool quiet)
{
	p->enabled = !quiet && (asked || isatty(STDERR_FILENO));
	p->last = -1;
	if (p->enabled)
		progress_update(p, 0, 1);
}

static void print(double pct)
{
	fprintf(stderr, "    (%3.2f/100%%)\r", pct);
	fflush(stderr);
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	if (!p->enabled)
		return;
	double pct = total ? (double)done * 100.0 / (double)total : 100.0;
	if (pct > 100.0)
		pct = 100.0;
	if (p->last >= 0 && pct - p->last < 1.0 && pct < 100.0)
		return;
	p->last = pct;
	print(pct);
}

void progress_end(struct progress *p)
{
	if (!p->enabled || p->last < 0)
		return;
	/* Success reported 100% already; a stopped run keeps the percentage it reached. */
	fputc('\n', stderr);
	p->last = -1;
}

static void on_signal(int sig)
{
	if (stop_flag) {
		/* Second signal: the user insists. */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	stop_flag = sig;
}

void progress_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	stop_flag = 0;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void progress_release_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
}

volatile sig_atomic_t *progress_stop_flag(void)
{
	return &stop_flag;
}
