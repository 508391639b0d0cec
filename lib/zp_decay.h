/*
 * zp_decay.h - giving idle memory back over time (zp_config.decay_ms): the
 * decay step over the shared store, what triggers it (slow paths,
 * zp_maintain; the optional maintenance thread is zp_maintain.h), and its
 * fork handling.
 * In the store layer: it calls the store (zp_store.h) and the OS layer.
 *
 * The step runs under the pool's decay_lock, every decay_tick_ns
 * (decay_ms / 8, at least 1 ms).  For each class it records the lowest
 * number of buffers the store held during the interval that ends (the
 * store's own gauge, zp_store.h) in a ring of the last DECAY_SLOTS
 * intervals; the minimum over the ring is what stayed idle for all of
 * decay_ms, and the step gives back half of it (per elapsed interval).
 * Released mapped buffers go the same way a stage later: unmapped once they
 * stayed released for decay_ms.  Thread caches decay in the steps' ticks
 * (decay.steps): on their owner's slow path (zp_tcache_capacity.c), and
 * caches left idle are drained after a step (zp_tcache_reclaim.c).
 */
#ifndef ZP_DECAY_H
#define ZP_DECAY_H

#include "zp_store.h"

/* Intervals in one decay_ms. */
#define ZP_DECAY_SLOTS 8u

/* Set up decay for a pool whose classes and store exist (and whose
 * decay_lock the caller initialised).  Returns 0, or -1 with errno ENOMEM;
 * _zp_decay_fini() cleans up after either. */
int _zp_decay_init(zp_pool *pool);
/* Free decay's state; decay is off afterwards.  Idempotent; in destroy,
 * after the pool left the fork handlers' list (they lock decay's mutex)
 * and the maintenance thread stopped (zp_maintain.h), before any buffer is
 * freed. */
void _zp_decay_fini(zp_pool *pool);

/* From slow paths: run a step if one is due and no other thread runs one
 * (a clock read and a compare when none is due). */
void _zp_decay_poll(zp_pool *pool);
/* Run the steps due by now, waiting for a running one; returns the buffers
 * given back. */
long _zp_decay_run(zp_pool *pool);

/* Fork (zp_fork.c): hold the pool's decay_lock across fork(), in the lock
 * order (after _zp_tcache_lock, before desc_lock); release it after. */
void _zp_decay_fork_prepare(zp_pool *pool);
void _zp_decay_fork_release(zp_pool *pool);

#endif /* ZP_DECAY_H */
