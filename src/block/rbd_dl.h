/* Ceph's client libraries, loaded on first use (QEMU keeps its RBD driver in a module,
 * block-rbd.so, for the same reason): librbd and librados pull in about twelve more shared
 * libraries (libceph-common, boost, fmt, ibverbs, rdmacm, libnl...), and linking them made
 * every ligero command start about twice as slowly (a program linked like ligero: 15 ms with
 * them, 7 ms without, on the CI machine), for the few commands that name an rbd: image. The
 * RBD driver's files call the functions by their usual names; this header turns each into a
 * call through a pointer that rbd_lib_load() fills with dlopen()/dlsym() from librbd.so.1
 * (and librados.so.2, which librbd needs). Only rbd_connect() loads it, and every other call
 * comes after a connection. The headers still come from librbd-dev and librados-dev at build
 * time, so the pointers have the libraries' own prototypes. */
#ifndef LIGERO_BLOCK_RBD_DL_H
#define LIGERO_BLOCK_RBD_DL_H

#include <rados/librados.h>
#include <rbd/librbd.h>

/* Every librbd and librados function the driver calls. */
#define RBD_LIB_FUNCS(X)                                                                           \
	X(rados_conf_read_file)                                                                    \
	X(rados_conf_set)                                                                          \
	X(rados_connect)                                                                           \
	X(rados_create)                                                                            \
	X(rados_ioctx_create)                                                                      \
	X(rados_ioctx_destroy)                                                                     \
	X(rados_ioctx_set_namespace)                                                               \
	X(rados_shutdown)                                                                          \
	X(rbd_aio_create_completion)                                                               \
	X(rbd_aio_discard)                                                                         \
	X(rbd_aio_flush)                                                                           \
	X(rbd_aio_get_return_value)                                                                \
	X(rbd_aio_readv)                                                                           \
	X(rbd_aio_release)                                                                         \
	X(rbd_aio_write)                                                                           \
	X(rbd_aio_write_zeroes)                                                                    \
	X(rbd_aio_writev)                                                                          \
	X(rbd_clone3)                                                                              \
	X(rbd_close)                                                                               \
	X(rbd_create4)                                                                             \
	X(rbd_diff_iterate2)                                                                       \
	X(rbd_features_to_string)                                                                  \
	X(rbd_get_features)                                                                        \
	X(rbd_get_flags)                                                                           \
	X(rbd_get_parent)                                                                          \
	X(rbd_image_options_create)                                                                \
	X(rbd_image_options_destroy)                                                               \
	X(rbd_image_options_set_uint64)                                                            \
	X(rbd_linked_image_spec_cleanup)                                                           \
	X(rbd_lock_acquire)                                                                        \
	X(rbd_lock_get_owners)                                                                     \
	X(rbd_lock_get_owners_cleanup)                                                             \
	X(rbd_lock_release)                                                                        \
	X(rbd_open)                                                                                \
	X(rbd_open_read_only)                                                                      \
	X(rbd_remove)                                                                              \
	X(rbd_rename)                                                                              \
	X(rbd_resize)                                                                              \
	X(rbd_snap_create)                                                                         \
	X(rbd_snap_is_protected)                                                                   \
	X(rbd_snap_list)                                                                           \
	X(rbd_snap_list_end)                                                                       \
	X(rbd_snap_protect)                                                                        \
	X(rbd_snap_remove)                                                                         \
	X(rbd_snap_rollback)                                                                       \
	X(rbd_snap_spec_cleanup)                                                                   \
	X(rbd_stat)

#define RBD_LIB_MEMBER(f) __typeof__(f) *f;
struct rbd_lib {
	RBD_LIB_FUNCS(RBD_LIB_MEMBER)
};
#undef RBD_LIB_MEMBER
extern struct rbd_lib rbd_lib;

/* Load the libraries once (thread-safe); 0, or -ENOSYS with a message naming the image
 * `name` and what is missing. LIGERO_LIBRBD names another librbd file (tests). */
int rbd_lib_load(const char *name);

#ifndef LIGERO_RBD_DL_IMPL
#define rados_conf_read_file	      (*rbd_lib.rados_conf_read_file)
#define rados_conf_set		      (*rbd_lib.rados_conf_set)
#define rados_connect		      (*rbd_lib.rados_connect)
#define rados_create		      (*rbd_lib.rados_create)
#define rados_ioctx_create	      (*rbd_lib.rados_ioctx_create)
#define rados_ioctx_destroy	      (*rbd_lib.rados_ioctx_destroy)
#define rados_ioctx_set_namespace     (*rbd_lib.rados_ioctx_set_namespace)
#define rados_shutdown		      (*rbd_lib.rados_shutdown)
#define rbd_aio_create_completion     (*rbd_lib.rbd_aio_create_completion)
#define rbd_aio_discard		      (*rbd_lib.rbd_aio_discard)
#define rbd_aio_flush		      (*rbd_lib.rbd_aio_flush)
#define rbd_aio_get_return_value      (*rbd_lib.rbd_aio_get_return_value)
#define rbd_aio_readv		      (*rbd_lib.rbd_aio_readv)
#define rbd_aio_release		      (*rbd_lib.rbd_aio_release)
#define rbd_aio_write		      (*rbd_lib.rbd_aio_write)
#define rbd_aio_write_zeroes	      (*rbd_lib.rbd_aio_write_zeroes)
#define rbd_aio_writev		      (*rbd_lib.rbd_aio_writev)
#define rbd_clone3		      (*rbd_lib.rbd_clone3)
#define rbd_close		      (*rbd_lib.rbd_close)
#define rbd_create4		      (*rbd_lib.rbd_create4)
#define rbd_diff_iterate2	      (*rbd_lib.rbd_diff_iterate2)
#define rbd_features_to_string	      (*rbd_lib.rbd_features_to_string)
#define rbd_get_features	      (*rbd_lib.rbd_get_features)
#define rbd_get_flags		      (*rbd_lib.rbd_get_flags)
#define rbd_get_parent		      (*rbd_lib.rbd_get_parent)
#define rbd_image_options_create      (*rbd_lib.rbd_image_options_create)
#define rbd_image_options_destroy     (*rbd_lib.rbd_image_options_destroy)
#define rbd_image_options_set_uint64  (*rbd_lib.rbd_image_options_set_uint64)
#define rbd_linked_image_spec_cleanup (*rbd_lib.rbd_linked_image_spec_cleanup)
#define rbd_lock_acquire	      (*rbd_lib.rbd_lock_acquire)
#define rbd_lock_get_owners	      (*rbd_lib.rbd_lock_get_owners)
#define rbd_lock_get_owners_cleanup   (*rbd_lib.rbd_lock_get_owners_cleanup)
#define rbd_lock_release	      (*rbd_lib.rbd_lock_release)
#define rbd_open		      (*rbd_lib.rbd_open)
#define rbd_open_read_only	      (*rbd_lib.rbd_open_read_only)
#define rbd_remove		      (*rbd_lib.rbd_remove)
#define rbd_rename		      (*rbd_lib.rbd_rename)
#define rbd_resize		      (*rbd_lib.rbd_resize)
#define rbd_snap_create		      (*rbd_lib.rbd_snap_create)
#define rbd_snap_is_protected	      (*rbd_lib.rbd_snap_is_protected)
#define rbd_snap_list		      (*rbd_lib.rbd_snap_list)
#define rbd_snap_list_end	      (*rbd_lib.rbd_snap_list_end)
#define rbd_snap_protect	      (*rbd_lib.rbd_snap_protect)
#define rbd_snap_remove		      (*rbd_lib.rbd_snap_remove)
#define rbd_snap_rollback	      (*rbd_lib.rbd_snap_rollback)
#define rbd_snap_spec_cleanup	      (*rbd_lib.rbd_snap_spec_cleanup)
#define rbd_stat		      (*rbd_lib.rbd_stat)
#endif

#endif
