/* An 8250/16550A UART at 0x3f8, IRQ 4: the guest's console. */
#ifndef LIGERO_VMM_SERIAL_H
#define LIGERO_VMM_SERIAL_H

#include "vmm/bus.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_PORT    0x3f8
#define SERIAL_IRQ     4
#define SERIAL_RX_SIZE 64

struct vm;

struct serial {
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	int thr_pending; /* THR-empty interrupt owed to the guest */
	int irq_level;
	uint8_t rx[SERIAL_RX_SIZE];
	unsigned rx_head, rx_count;
	int out_fd, vm_fd;
	void (*sink)(void *opaque, uint8_t c); /* output goes here instead of out_fd */
	void *sink_opaque;
	int room_fd;	   /* eventfd written when the receive FIFO empties after it was full */
	int want_room;	   /* input did not fit: tell room_fd */
	struct vm *vm;	   /* told when the guest prints a panic; may be NULL */
	unsigned panic_at; /* bytes of the panic banner matched so far */
	int panic_seen;
};

/* Register the UART on the I/O bus; output goes to out_fd, interrupts through vm_fd. */
int serial_init(struct serial *s, struct bus *io, int out_fd, int vm_fd, struct vm *vm);
/* Send output to sink(opaque, byte) instead of out_fd (called with the UART's lock held). */
void serial_set_sink(struct serial *s, void (*sink)(void *, uint8_t), void *opaque);
/* After serial_rx() could not take everything, write 1 to the eventfd room_fd once the guest
 * has read the FIFO empty (or reset it). */
void serial_set_room_fd(struct serial *s, int room_fd);
/* Room in the receive FIFO. */
size_t serial_rx_room(struct serial *s);
/* Queue input bytes for the guest; returns how many fit. */
size_t serial_rx(struct serial *s, const uint8_t *buf, size_t len);
/* Feed one output byte to the panic watcher: 1 when a whole "Kernel panic" line has passed. */
int serial_watch_panic(struct serial *s, uint8_t c);

#endif
