/* The console's ring buffer, its rotated log and its fan-out to socket clients, with the UART
 * as the guest drives it (port I/O on a bus) and real UNIX sockets; no KVM. */
#include "vmm/bus.h"
#include "vmm/console_log.h"
#include "vmm/console_mux.h"
#include "vmm/console_ring.h"
#include "vmm/loop.h"
#include "vmm/serial.h"
#include "vmm/unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define PATIENCE 5000 /* loop turns of up to 10 ms before a test calls it a hang */

/* ---- ring ---- */

static void test_ring(void **state)
{
	static struct console_ring r;
	static uint8_t data[3 * CONSOLE_RING_SIZE], out[CONSOLE_RING_SIZE + 10];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	memset(&r, 0, sizeof(r));
	console_ring_put(&r, data, 100);
	assert_int_equal(console_ring_start(&r), 0);
	assert_int_equal(console_ring_get(&r, 10, out, 1000), 90);
	assert_memory_equal(out, data + 10, 90);
	/* across the wrap, in pieces of odd sizes */
	for (size_t at = 100; at < 2 * CONSOLE_RING_SIZE + 77;) {
		size_t n = 1 + (at * 13) % 4001;
		console_ring_put(&r, data + at, n);
		at += n;
	}
	uint64_t total = r.total;
	assert_int_equal(console_ring_start(&r), total - CONSOLE_RING_SIZE);
	assert_int_equal(console_ring_get(&r, total - CONSOLE_RING_SIZE, out, sizeof(out)),
			 CONSOLE_RING_SIZE);
	assert_memory_equal(out, data + total - CONSOLE_RING_SIZE, CONSOLE_RING_SIZE);
	/* positions no longer held, or not yet written, give nothing */
	assert_int_equal(console_ring_get(&r, total - CONSOLE_RING_SIZE - 1, out, 10), 0);
	assert_int_equal(console_ring_get(&r, total + 1, out, 10), 0);
	assert_int_equal(console_ring_get(&r, total, out, 10), 0);
	/* a put larger than the ring keeps its tail */
	console_ring_put(&r, data, sizeof(data));
	assert_int_equal(r.total, total + sizeof(data));
	assert_int_equal(console_ring_get(&r, console_ring_start(&r), out, sizeof(out)),
			 CONSOLE_RING_SIZE);
	assert_memory_equal(out, data + sizeof(data) - CONSOLE_RING_SIZE, CONSOLE_RING_SIZE);
}

/* ---- log ---- */

static size_t slurp(const char *path, uint8_t *buf, size_t max)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, max);
	close(fd);
	return n > 0 ? (size_t)n : 0;
}

static void test_log_rotation(void **state)
{
	char dir[] = "/tmp/ligero-conlog-XXXXXX", path[128], old[140];
	static uint8_t data[20000], got[20000];
	struct console_log l;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/console.log", dir);
	snprintf(old, sizeof(old), "%s.1", path);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)('a' + i % 26 + (i / 26) % 3);
	assert_int_equal(console_log_open(&l, path, 4096), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a byte at a time, as the UART writes, then in bigger pieces */
	for (size_t i = 0; i < 5000; i++)
		console_log_write(&l, data + i, 1);
	console_log_write(&l, data + 5000, 5000);
	assert_int_equal(l.error, 0);
	console_log_close(&l);
	/* 10000 bytes: FILE.1 has bytes 4096..8191, FILE the last 1808 */
	assert_int_equal(slurp(old, got, sizeof(got)), 4096);
	assert_memory_equal(got, data + 4096, 4096);
	assert_int_equal(slurp(path, got, sizeof(got)), 1808);
	assert_memory_equal(got, data + 8192, 1808);
	/* opened again (a VM started again): appended, the same rotation */
	assert_int_equal(console_log_open(&l, path, 4096), 0);
	console_log_write(&l, data + 10000, 3000);
	console_log_close(&l);
	assert_int_equal(slurp(old, got, sizeof(got)), 4096);
	assert_memory_equal(got, data + 8192, 4096);
	assert_int_equal(slurp(path, got, sizeof(got)), 712);
	assert_memory_equal(got, data + 12288, 712);
	/* a log that cannot be opened fails with its name */
	snprintf(path, sizeof(path), "%s/nodir/console.log", dir);
	assert_int_equal(console_log_open(&l, path, 4096), -ENOENT);
	unlink(old);
	snprintf(path, sizeof(path), "%s/console.log", dir);
	unlink(path);
	rmdir(dir);
}

/* ---- the fan-out, with a UART ---- */

struct t {
	char dir[64], sock[96], log[96];
	struct loop *loop;
	struct bus io;
	struct serial uart;
	struct console_mux *mux;
	int out[2]; /* the console fd: a pipe */
};

static struct t *T;

static int setup(void **state)
{
	struct console_mux_config cfg = {0};

	T = calloc(1, sizeof(*T));
	strcpy(T->dir, "/tmp/ligero-mux-XXXXXX");
	assert_non_null(mkdtemp(T->dir));
	snprintf(T->sock, sizeof(T->sock), "%s/console.sock", T->dir);
	snprintf(T->log, sizeof(T->log), "%s/console.log", T->dir);
	assert_int_equal(pipe2(T->out, O_NONBLOCK | O_CLOEXEC), 0);
	fcntl(T->out[1], F_SETPIPE_SZ, 1 << 20);
	cfg.out_fd = T->out[1];
	cfg.in_fd = -1;
	cfg.socket = T->sock;
	cfg.log = T->log;
	cfg.log_max = 64 << 20;
	assert_int_equal(loop_new(&T->loop), 0);
	assert_int_equal(serial_init(&T->uart, &T->io, -1, -1, NULL), 0);
	assert_int_equal(console_mux_new(&cfg, &T->mux), 0);
	serial_set_sink(&T->uart, console_mux_output, T->mux);
	assert_int_equal(console_mux_start(T->mux, T->loop, &T->uart, NULL, NULL), 0);
	*state = T;
	return 0;
}

static int teardown(void **state)
{
	char path[128];

	console_mux_free(T->mux);
	loop_free(T->loop);
	close(T->out[0]);
	close(T->out[1]);
	unlink(T->log);
	snprintf(path, sizeof(path), "%s.1", T->log);
	unlink(path);
	unlink(T->sock);
	rmdir(T->dir);
	free(T);
	return 0;
}

static void turn(int ms)
{
	assert_true(loop_run_once(T->loop, ms) >= 0);
}

/* The guest prints through the UART's transmit register. */
static void guest_print(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bus_write(&T->io, SERIAL_PORT, 1, (uint8_t)s[i]);
}

static int attach(void)
{
	int fd = unixsock_connect(T->sock);

	assert_true(fd >= 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	turn(100); /* accepted */
	return fd;
}

/* Read from fd until want bytes came (turning the loop), into buf. */
static void receive(int fd, char *buf, size_t want)
{
	size_t have = 0;
	int turns = 0;

	while (have < want) {
		ssize_t r = read(fd, buf + have, want - have);
		if (r > 0) {
			have += (size_t)r;
			continue;
		}
		assert_true(r < 0 && errno == EAGAIN);
		assert_true(++turns < PATIENCE);
		turn(10);
	}
}

static void test_late_attach_sees_boot(void **state)
{
	const char *boot = "Linux version 6.1\nLIGERO-INIT\n", *live = "later\n";
	char buf[256];
	int a, b;

	guest_print(boot, strlen(boot)); /* nobody attached */
	a = attach();
	receive(a, buf, strlen(boot));
	assert_memory_equal(buf, boot, strlen(boot));
	guest_print(live, strlen(live));
	b = attach(); /* sees the boot and the line before it came */
	receive(b, buf, strlen(boot) + strlen(live));
	assert_memory_equal(buf + strlen(boot), live, strlen(live));
	receive(a, buf, strlen(live));
	assert_memory_equal(buf, live, strlen(live));
	assert_int_equal(console_mux_clients(T->mux), 2);
	/* the console fd and the log had it all, as it came */
	assert_int_equal(read(T->out[0], buf, sizeof(buf)), strlen(boot) + strlen(live));
	assert_int_equal(slurp(T->log, (uint8_t *)buf, sizeof(buf)), strlen(boot) + strlen(live));
	close(a);
	close(b);
}

/* Input from a client reaches the guest, in order, however much it is: what the FIFO cannot
 * take waits until the guest has read it empty. */
static void test_client_input(void **state)
{
	char in[300], got[300];
	int fd = attach(), turns = 0;
	size_t n = 0;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (char)('A' + i % 50);
	assert_int_equal(write(fd, in, sizeof(in)), sizeof(in));
	while (n < sizeof(in)) {
		turn(10);
		/* the guest reads while the line status says data is ready */
		while (bus_read(&T->io, SERIAL_PORT + 5, 1) & 1)
			got[n++] = (char)bus_read(&T->io, SERIAL_PORT, 1);
		assert_true(++turns < PATIENCE);
	}
	assert_memory_equal(got, in, sizeof(in));
	close(fd);
}

/* A regular file as input (ligero run < FILE), which epoll cannot watch: read as the guest
 * takes it, all of it, in order. */
static void test_file_input(void **state)
{
	struct console_mux_config cfg = {.out_fd = -1};
	char path[128], in[1000], got[1000];
	struct console_mux *m;
	size_t n = 0;
	int turns = 0;

	snprintf(path, sizeof(path), "%s/input", T->dir);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (char)('a' + i % 26);
	cfg.in_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(cfg.in_fd >= 0);
	assert_int_equal(write(cfg.in_fd, in, sizeof(in)), sizeof(in));
	lseek(cfg.in_fd, 0, SEEK_SET);
	console_mux_free(T->mux); /* this test's own fan-out, on the same UART */
	assert_int_equal(console_mux_new(&cfg, &m), 0);
	T->mux = m;
	assert_int_equal(console_mux_start(m, T->loop, &T->uart, NULL, NULL), 0);
	while (n < sizeof(in)) {
		while (bus_read(&T->io, SERIAL_PORT + 5, 1) & 1)
			got[n++] = (char)bus_read(&T->io, SERIAL_PORT, 1);
		turn(10);
		assert_true(++turns < PATIENCE);
	}
	assert_memory_equal(got, in, sizeof(in));
	close(cfg.in_fd);
	unlink(path);
}

/* A client that does not read is dropped; the guest never waits, the reading client and the
 * log get everything. */
static void test_stalled_client_dropped(void **state)
{
	static char line[100], buf[200];
	int stalled = attach(), reader = attach(), turns = 0;
	size_t total = 0;

	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	/* drain the pipe so the console fd never blocks the test */
	while (console_mux_clients(T->mux) == 2) {
		guest_print(line, sizeof(line));
		total += sizeof(line);
		turn(0);
		while (read(reader, buf, sizeof(buf)) > 0)
			;
		while (read(T->out[0], buf, sizeof(buf)) > 0)
			;
		assert_true(++turns < 100000);
	}
	assert_true(total > CONSOLE_RING_SIZE);
	/* the stalled client sees the end of its stream */
	char c;
	ssize_t r;
	while ((r = read(stalled, &c, 1)) > 0)
		;
	assert_int_equal(r, 0);
	/* the log holds every byte */
	struct stat st;
	assert_int_equal(stat(T->log, &st), 0);
	assert_int_equal(st.st_size, total);
	close(stalled);
	close(reader);
}

static void test_free_sends_last_output_and_removes_socket(void **state)
{
	int fd = attach();
	char buf[64];
	struct stat st;

	guest_print("bye\n", 4);
	console_mux_free(T->mux); /* no loop turn: free itself sends it */
	T->mux = NULL;
	assert_int_equal(read(fd, buf, sizeof(buf)), 4);
	assert_int_equal(read(fd, buf, sizeof(buf)), 0);
	assert_int_equal(stat(T->sock, &st), -1);
	close(fd);
	serial_set_sink(&T->uart, NULL, NULL);
}

/* A second VM with the same console socket is refused while the first lives. */
static void test_socket_in_use(void **state)
{
	struct console_mux_config cfg = {.out_fd = -1, .in_fd = -1, .socket = T->sock};
	struct console_mux *m;

	assert_int_equal(console_mux_new(&cfg, &m), -EADDRINUSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring),
	    cmocka_unit_test(test_log_rotation),
	    cmocka_unit_test_setup_teardown(test_late_attach_sees_boot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stalled_client_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_sends_last_output_and_removes_socket, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_socket_in_use, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
