/* The QMP unit tests' fake VM and client harness (qmp_fake.c), shared by test_vmm_qmp.c and
 * test_vmm_qmp_oracle.c. Clients are socketpairs driven from the test's thread, which also turns
 * the server's event loop; every wait is bounded by PATIENCE loop turns (a hang guard). */
#ifndef LIGERO_TESTS_QMP_FAKE_H
#define LIGERO_TESTS_QMP_FAKE_H

#include "vmm/loop.h"
#include "vmm/qmp.h"
#include "vmm/qmp_cmds.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fake {
	bool running, balloon;
	int pauses, resumes, powerdowns, stops;
	enum qmp_shutdown why;
	uint64_t ram, balloon_target, balloon_actual;
	const char *name;
};

extern const struct qmp_vm_ops fake_ops;

#define NCL	 4
#define CL_BUF	 (2 << 20)
#define PATIENCE 5000 /* loop turns of up to 10 ms before a test calls it a hang */

struct cl {
	int fd;
	char *buf;
	size_t len;
};

struct t {
	struct loop *loop;
	struct qmp_server *srv;
	struct fake vm;
	struct qmp_vm q;
	struct cl c[NCL];
};

extern struct t *T;

/* cmocka setup and teardown: a loop, a server with the VM's commands on the fake VM. */
int setup(void **state);
int teardown(void **state);
/* Turn the server's loop once, waiting up to ms. */
void turn(int ms);
/* Client i on a socketpair (its greeting not read). */
struct cl *connect_client(int i);
/* Client i, greeted and past qmp_capabilities. */
struct cl *negotiated(int i);
/* Send all of it, turning the loop whenever the socket is full. */
void cl_send(struct cl *c, const void *p, size_t n);
void cl_sends(struct cl *c, const char *s);
/* Read what has arrived: 1, 0 at end of file, -1 when nothing is there. */
int cl_fill(struct cl *c);
/* The next line (CRLF checked and removed), or NULL at end of file. */
char *cl_line(struct cl *c);
struct json_object *cl_recv(struct cl *c);
/* Nothing more arrives while the loop has nothing left to do. */
void cl_quiet(struct cl *c);
/* o[a][b] as a string, or NULL. */
const char *str_at(struct json_object *o, const char *a, const char *b);
/* Send req; the answer must be this error (desc NULL: any description). */
void expect_error(struct cl *c, const char *req, const char *cls, const char *desc);
/* Send req (nothing if ""); the next answer's "return" (a new reference). */
struct json_object *expect_return(struct cl *c, const char *req);

#endif
