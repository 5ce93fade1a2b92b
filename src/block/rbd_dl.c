/* Loading Ceph's client libraries on first use: see rbd_dl.h. */
#define LIGERO_RBD_DL_IMPL
#include "block/rbd_dl.h"
#include "util/error.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rbd_lib rbd_lib;

static const struct {
	const char *name;
	size_t off;
} syms[] = {
#define RBD_LIB_SYM(f) {#f, offsetof(struct rbd_lib, f)},
    RBD_LIB_FUNCS(RBD_LIB_SYM)
#undef RBD_LIB_SYM
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char why[512]; /* why loading failed */
static bool loaded;

static void load(void)
{
	const char *path = getenv("LIGERO_LIBRBD");
	/* RTLD_LOCAL: their symbols stay theirs; dlsym() on librbd's handle also searches
	 * librados, which librbd depends on. */
	void *h = dlopen(path && *path ? path : "librbd.so.1", RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(why, sizeof(why), "%s", dlerror());
		return;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(h, syms[i].name);
		if (!p) {
			snprintf(why, sizeof(why), "%s has no %s",
				 path && *path ? path : "librbd.so.1", syms[i].name);
			return;
		}
		memcpy((char *)&rbd_lib + syms[i].off, &p, sizeof(p));
	}
	loaded = true;
}

int rbd_lib_load(const char *name)
{
	pthread_once(&once, load);
	if (!loaded)
		return err_set(ENOSYS,
			       "%s: cannot load Ceph's client library (%s); install librbd1", name,
			       why);
	return 0;
}
