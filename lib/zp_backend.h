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

/* ---- the registry (lib/zp_registry.c) ----------------------------------
 *
 * Each backend folder defines one `const struct zp_backend_ops` and names it
 * in its backend.cmake (ZP_BACKEND_NAMES / ZP_BACKEND_SYMBOLS); CMake
 * generates the registry's table from that list.  The registry checks the
 * table at every lookup (a handful of comparisons, no shared state): an entry
 * that fails _zp_backend_check, or whose name another entry also has, is
 * refused.  A refused backend is not listed by zp_backend_count/zp_backend_at,
 * _zp_backend_find does not return it, and zp_pool_create naming it fails
 * with ENOENT like an unknown name.  ZP_DEBUG_CHECKS builds abort instead,
 * with a message naming the entry. */

/* 0 if ops is complete: a non-empty name and every callback but the
 * optional thread_exit.  Else -1 with errno EINVAL. */
int _zp_backend_check(const struct zp_backend_ops *ops);

/* The usable entries of tab[0..n) (complete, and named by no other entry),
 * written to usable[] in table order; returns their number.  Never aborts:
 * the registry's ZP_DEBUG_CHECKS abort is its caller's. */
size_t _zp_backend_usable(const struct zp_backend_ops *const *tab, size_t n,
			  const struct zp_backend_ops **usable);

/* The usable registered backend called `name`, or NULL. */
const struct zp_backend_ops *_zp_backend_find(const char *name);

#endif /* ZP_BACKEND_H */
