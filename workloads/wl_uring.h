/*
 * wl_uring.h - how the workloads set up an io_uring (the server's --io
 * uring, the real-file mode's --read uring), built only where liburing is
 * found.  One place for the setup flags, their fallback on older kernels and
 * the words that say the kernel refused.
 */
#ifndef WL_URING_H
#define WL_URING_H

#include <liburing.h>
#include <stddef.h>

/* Set up `ring` for one thread that both submits and reaps: sq_entries
 * submission entries, cq_entries completion entries (0: the kernel's
 * default, twice sq_entries), SINGLE_ISSUER|DEFER_TASKRUN (completions' task
 * work runs when that thread waits, not as interrupts of its work; kernel
 * 6.1), plain where an older kernel refuses those flags (EINVAL); the ring's
 * fd registered, so that io_uring_enter skips its lookup.  0, or -errno when
 * the kernel refuses io_uring (ENOSYS under seccomp, EPERM with
 * kernel.io_uring_disabled); ZP_WL_REFUSE_URING in the environment acts as a
 * kernel that says EPERM.  The caller owns the ring (io_uring_queue_exit). */
int wl_uring_setup(struct io_uring *ring, unsigned sq_entries, unsigned cq_entries);

/* Write "io_uring refused: io_uring_queue_init: <why>" for rc, a refusal of
 * wl_uring_setup(), into dst (n bytes), naming ZP_WL_REFUSE_URING where it
 * was the cause; returns dst. */
char *wl_uring_refusal(char *dst, size_t n, int rc);

#endif /* WL_URING_H */
