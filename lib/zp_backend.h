/*
 * zp_backend.h - the contract between the front end (size classes, thread
 * caches, statistics, OS memory) and a shared-store backend.
 *
 * Modelled on DPDK's rte_mempool_ops: a small const vtable that moves
 * *batches* of buffer descriptors.  The front end owns every buffer: a
 * backend only keeps pointers to descriptors, never allocates or frees
 * buffer memory, and hands victims back for the front end to free outside
 * any lock.  A backend may use the descriptor's `_zp_link` words while the
 * descriptor is in its store (they are never touched by callers, whose data
 * lives elsewhere), and nothing else of it.
 *
 * Synchronization table (the front end guarantees the left column):
 *
 *   callback   | may run concurrently with
 *   -----------+------------------------------------------------------
 *   create     | anything on other stores
 *   destroy    | nothing on this store (it is the last call)
 *   take, give | take, give, count, stats on this store, any class,
 *              |   from any number of threads
 *   count,stats| anything but destroy; results may be stale
 *   thread_exit| anything: called on an exiting thread that used the store
 *
 * Every buffer passed to give() is, when give returns, either in the store
 * or written to `victims`; a victim may also be a buffer that was already in
 * the store (an evicted cold one).  Thus the store's size changes by
 * n - (returned victims).  take() writes out[] coldest first, hottest last,
 * prefers the buffers most recently given where it can (hot reuse), and
 * must look in every shard before returning fewer than asked.  n is at most
 * max_batch in both directions.
 */
#ifndef ZP_BACKEND_H
#define ZP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "zeropool.h"

struct zp_store_params {
	unsigned classes;         /* class indices are 0..classes-1 */
	const size_t *class_size; /* capacity of each class */
	unsigned max_per_class;   /* bound on buffers kept per class */
	unsigned max_batch;       /* largest n in take/give */
	unsigned shards;          /* hint for sharded backends, a power of two */
	zp_evict_policy evict;
};

struct zp_backend_stats {
	uint64_t contention; /* failed trylocks, CAS retries */
};

struct zp_backend_ops {
	const char *name;
	/* Returns the store, or NULL with errno (ENOMEM). */
	void *(*create)(const struct zp_store_params *p);
	/* Frees the store's own memory; buffers still in it belong to the front
	 * end, which has already freed them: do not touch them. */
	void (*destroy)(void *store);
	/* Move up to n buffers of class cls to out[]; return how many.  `hint`
	 * is the calling thread's small integer id (shard selection). */
	unsigned (*take)(void *store, unsigned hint, unsigned cls, zp_buf **out, unsigned n);
	/* Store in[0..n) (see the contract above); return the victims written
	 * to victims[] (room for n). */
	unsigned (*give)(void *store, unsigned hint, unsigned cls, zp_buf *const *in, unsigned n,
			 zp_buf **victims);
	/* Buffers currently in class cls (a snapshot). */
	size_t (*count)(void *store, unsigned cls);
	void (*stats)(void *store, struct zp_backend_stats *out);
	/* Optional (may be NULL): the calling thread is exiting. */
	void (*thread_exit)(void *store);
};

/* The built-in backends, in registry order; each backend folder defines one
 * of these.  The registry (lib/zp_registry.c) lists those compiled in. */
extern const struct zp_backend_ops _zp_backend_locked;
#ifdef ZP_HAVE_LOCKFREE_CK
extern const struct zp_backend_ops _zp_backend_lockfree_ck;
#endif
#ifdef ZP_HAVE_LOCKFREE_URCU
extern const struct zp_backend_ops _zp_backend_lockfree_urcu;
#endif

/* The registered backend called `name`, or NULL. */
const struct zp_backend_ops *_zp_backend_find(const char *name);

#endif /* ZP_BACKEND_H */
