/* The 16550A as Linux's 8250 driver probes and drives it: scratch and IER read-back, loopback
 * through MCR/MSR, FIFO identification in IIR, and the THR-empty interrupt the tty layer waits
 * for after each write. Transmission is instant, so THR is always empty. */
#include "vmm/serial.h"
#include "vmm/vm.h"
#include "util/error.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define UART_IER_RDI  0x01
#define UART_IER_THRI 0x02
#define UART_IIR_NONE 0x01
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI  0x04
#define UART_LCR_DLAB 0x80
#define UART_MCR_LOOP 0x10
#define UART_LSR_DR   0x01
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

/* Linux prints this before anything else on a panic, pvpanic or not. */
static const char panic_banner[] = "Kernel panic - not syncing";

static uint8_t serial_iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & 1) ? 0xc0 : 0;

	if ((s->ier & UART_IER_RDI) && s->rx_count)
		return UART_IIR_RDI | fifo;
	if ((s->ier & UART_IER_THRI) && s->thr_pending)
		return UART_IIR_THRI | fifo;
	return UART_IIR_NONE | fifo;
}

/* The FIFO is empty again and input is waiting for room: say so (once). */
static void serial_room(struct serial *s)
{
	uint64_t one = 1;

	if (!s->want_room || s->rx_count || s->room_fd < 0)
		return;
	s->want_room = 0;
	if (write(s->room_fd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only at its maximum count: it is readable then */
	}
}

static void serial_update_irq(struct serial *s)
{
	int level = (serial_iir(s) & UART_IIR_NONE) == 0;
	struct kvm_irq_level irq = {.irq = SERIAL_IRQ, .level = level};

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (s->vm_fd >= 0)
		(void)ioctl(s->vm_fd, KVM_IRQ_LINE, &irq);
}

static void rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_count == SERIAL_RX_SIZE)
		return;
	s->rx[(s->rx_head + s->rx_count++) % SERIAL_RX_SIZE] = c;
}

int serial_watch_panic(struct serial *s, uint8_t c)
{
	if (s->panic_seen)
		return c == '\n';
	if (c == (uint8_t)panic_banner[s->panic_at])
		s->panic_at++;
	else
		s->panic_at = c == (uint8_t)panic_banner[0];
	if (s->panic_at == sizeof(panic_banner) - 1)
		s->panic_seen = 1;
	return 0;
}

static void serial_tx(struct serial *s, uint8_t c)
{
	if (s->mcr & UART_MCR_LOOP) {
		rx_push(s, c);
		return;
	}
	if (s->sink) {
		s->sink(s->sink_opaque, c);
	} else {
		/* A console that went away must not stop the guest. */
		while (write(s->out_fd, &c, 1) < 0 && errno == EINTR)
			;
	}
	if (serial_watch_panic(s, c) && s->vm)
		vm_request_stop(s->vm, VM_EXIT_PANIC);
}

static uint8_t serial_msr(const struct serial *s)
{
	uint8_t m = s->mcr;

	if (!(m & UART_MCR_LOOP))
		return 0xb0; /* DCD, DSR, CTS */
	return (m & 1) << 5 | (m & 2) << 3 | (m & 4) << 4 | (m & 8) << 4;
}

static uint64_t serial_read(void *opaque, uint64_t off, unsigned size)
{
	struct serial *s = opaque;
	uint8_t v = 0;

	pthread_mutex_lock(&s->lock);
	switch (off) {
	case 0:
		if (s->lcr & UART_LCR_DLAB) {
			v = s->dll;
		} else if (s->rx_count) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_RX_SIZE;
			s->rx_count--;
		}
		break;
	case 1:
		v = (s->lcr & UART_LCR_DLAB) ? s->dlm : s->ier;
		break;
	case 2:
		v = serial_iir(s);
		if ((v & 0x0f) == UART_IIR_THRI)
			s->thr_pending = 0; /* reading IIR acknowledges THRE */
		break;
	case 3:
		v = s->lcr;
		break;
	case 4:
		v = s->mcr;
		break;
	case 5:
		v = UART_LSR_THRE | UART_LSR_TEMT | (s->rx_count ? UART_LSR_DR : 0);
		break;
	case 6:
		v = serial_msr(s);
		break;
	case 7:
		v = s->scr;
		break;
	}
	serial_update_irq(s);
	serial_room(s);
	pthread_mutex_unlock(&s->lock);
	return v;
}

static void serial_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct serial *s = opaque;
	uint8_t v = val;

	pthread_mutex_lock(&s->lock);
	switch (off) {
	case 0:
		if (s->lcr & UART_LCR_DLAB) {
			s->dll = v;
		} else {
			serial_tx(s, v);
			s->thr_pending = 1;
		}
		break;
	case 1:
		if (s->lcr & UART_LCR_DLAB) {
			s->dlm = v;
		} else {
			/* Enabling THRI with THR empty raises the interrupt at once. */
			if ((v & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
				s->thr_pending = 1;
			s->ier = v & 0x0f;
		}
		break;
	case 2:
		s->fcr = v & 0xc9;
		if (v & 0x02) {
			s->rx_head = 0;
			s->rx_count = 0;
			serial_room(s);
		}
		break;
	case 3:
		s->lcr = v;
		break;
	case 4:
		s->mcr = v & 0x1f;
		break;
	case 7:
		s->scr = v;
		break;
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_ops serial_ops = {serial_read, serial_write};

int serial_init(struct serial *s, struct bus *io, int out_fd, int vm_fd, struct vm *vm)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->out_fd = out_fd;
	s->room_fd = -1;
	s->vm_fd = vm_fd;
	s->vm = vm;
	return bus_add(io, SERIAL_PORT, 8, &serial_ops, s);
}

void serial_set_sink(struct serial *s, void (*sink)(void *, uint8_t), void *opaque)
{
	pthread_mutex_lock(&s->lock);
	s->sink = sink;
	s->sink_opaque = opaque;
	pthread_mutex_unlock(&s->lock);
}

void serial_set_room_fd(struct serial *s, int room_fd)
{
	pthread_mutex_lock(&s->lock);
	s->room_fd = room_fd;
	pthread_mutex_unlock(&s->lock);
}

size_t serial_rx_room(struct serial *s)
{
	size_t room;

	pthread_mutex_lock(&s->lock);
	room = SERIAL_RX_SIZE - s->rx_count;
	pthread_mutex_unlock(&s->lock);
	return room;
}

size_t serial_rx(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && s->rx_count < SERIAL_RX_SIZE)
		rx_push(s, buf[n++]);
	if (n < len)
		s->want_room = 1;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}
