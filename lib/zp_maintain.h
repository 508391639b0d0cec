/*
 * zp_maintain.h - the optional maintenance thread of a pool
 * (ZP_F_MAINTENANCE_THREAD, zp_maintain.c): every decay tick it runs the
 * store's decay step (zp_decay.h) and the decay of idle thread caches
 * (zp_tcache.h), so memory goes back without calls into the pool.  In the
 * entry layer: it calls both layers below it directly.
 *
 * Synchronization: the thread's own mutex guards its stop flag and is a
 * leaf (never held while another library lock is taken, but by the fork
 * handlers after decay_lock).
 */
#ifndef ZP_MAINTAIN_H
#define ZP_MAINTAIN_H

#include "zp_tcache.h"

/* Start the thread when the configuration asks for one and decay is on,
 * last thing in create (the thread sees a finished pool).  Returns 0, or -1
 * with errno EAGAIN (no thread) or ENOMEM; _zp_maintain_stop() cleans up. */
int _zp_maintain_start(zp_pool *pool);
/* Stop and join the thread and free its state.  Idempotent; in destroy,
 * before decay's state goes and before any buffer is freed. */
void _zp_maintain_stop(zp_pool *pool);

/* Fork (zp_fork.c): hold the thread's mutex across fork(), after the
 * pool's decay_lock; release it after, in the child noting that the thread
 * is gone (decay then runs from slow paths and zp_maintain). */
void _zp_maintain_fork_prepare(zp_pool *pool);
void _zp_maintain_fork_release(zp_pool *pool, bool in_child);

#endif /* ZP_MAINTAIN_H */
