/*
 * The guest's serial console, fanned out. Output (from the UART, on vCPU threads) goes to the
 * console fd (a terminal, stdout or a file; or nowhere), to the log (console_log.h) and into a
 * ring buffer (console_ring.h) that feeds the clients of the console socket: each client gets
 * the ring's content first, so one attached late still sees the boot, then the output as it
 * comes. Input from the terminal (with QEMU's Ctrl-A escapes) and from every client goes to the
 * UART, waiting while its receive FIFO is full.
 *
 * Nothing a client does can stop the guest: output is written to clients by the event loop,
 * never by a vCPU thread, and a client that falls more than the ring behind (it does not read)
 * is dropped. The log and the console fd are written on the vCPU thread, as the output comes:
 * what the guest printed is in the log whether or not anyone is attached.
 */
#ifndef LIGERO_VMM_CONSOLE_MUX_H
#define LIGERO_VMM_CONSOLE_MUX_H

#include "vmm/loop.h"

#include <stdbool.h>
#include <stdint.h>

#define CONSOLE_CLIENTS_MAX 16

struct serial;
struct console_mux;

struct console_mux_config {
	int out_fd;	    /* where output goes as it comes (stdout, a file), or -1 */
	int in_fd;	    /* terminal or stdin input, or -1; a terminal goes into raw mode */
	const char *socket; /* --console-socket PATH, or NULL */
	const char *log;    /* --console-log FILE, or NULL */
	uint64_t log_max;   /* rotation size; 0: CONSOLE_LOG_MAX_DEFAULT */
};

/* Open the log and listen on the socket (0600; a live one refused, a stale one replaced). */
int console_mux_new(const struct console_mux_config *cfg, struct console_mux **out);
/* Serve clients and input on loop, feeding input to the UART. on_quit runs (on the loop's
 * thread) when Ctrl-A x is typed on the terminal. */
int console_mux_start(struct console_mux *m, struct loop *loop, struct serial *uart,
		      void (*on_quit)(void *), void *opaque);
/* The UART's output, one byte (called with the UART's lock held, so bytes come in order). */
void console_mux_output(void *mux, uint8_t c);
/* Clients attached now. */
unsigned console_mux_clients(struct console_mux *m);
/* Send clients what they have not had yet (as far as their sockets take it without waiting),
 * close them and the socket (its file removed), restore the terminal, close the log. */
void console_mux_free(struct console_mux *m);

#endif
