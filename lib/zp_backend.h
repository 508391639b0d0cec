/*
 * zp_backend.h - the contract between the front end (size classes, thread
 * caches, statistics, OS memory) and a shared-store backend, and the few
 * services the front end offers backends.  A backend includes this header
 * and no other of lib/, as a DPDK mempool driver includes only
 * rte_mempool.h.
 *
 * Modelled on DPDK's rte_mempool_ops: a small const vtable that moves
 * *batches* of buffer descriptors.  The front end owns every buffer: a
 * backend only keeps pointers to descriptors, never allocates or frees
 * buffer memory, and hands victims back for the front end to free outside
 * any lock.
 *
 * What a backend may rely on:
 * - Descriptors are type-stable until destroy(): the front end allocates
 *   them in slabs that are freed only after destroy() has returned, so a
 *   lock-free store may read a descriptor that another thread has just taken
 *   (a stale pop) without touching freed memory.
 * - A descriptor's `_zp_link` words belong to the backend while the
 *   descriptor is in its store (between the give() that stores it and the
 *   take() or victims[] that hands it back).  The front end uses
 *   `_zp_link[0]` only while the descriptor is free (on the pool's
 *   descriptor free list, never in a store), and callers never see them.
 *   Nothing else of a descriptor may be written by a backend; `_zp_class`
 *   and `cap` may be read.
 * - Buffer data lives apart from its descriptor, so no link word is ever
 *   inside memory that a caller writes.
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
 *   fork_*     | nothing in this process (every front-end lock is held,
 *              |   and prepare's locks keep the other threads out)
 *
 * Front-end locks held when a callback runs: none, except that give,
 * count and thread_exit may run under the thread-cache lock
 * (_zp_tcache_lock: a thread's cache is retired at its exit, and zp_stats
 * counts under it).  A backend therefore never calls into the front end
 * other than through the services below, which take no front-end lock.
 *
 * Every buffer passed to give() is, when give returns, either in the store
 * or written to `victims`; a victim may also be a buffer that was already in
 * the store (an evicted cold one).  Thus the store's size changes by
 * n - (returned victims).  take() writes out[] coldest first, hottest last,
 * prefers the buffers most recently given where it can (hot reuse), and
 * must look in every shard before returning fewer than asked.  The order
 * holds within each place a backend keeps buffers; one that keeps several
 * places per class (lockfree-ck: a stack of single buffers beside a stack of
 * magazines) cannot order them against each other, and may put a single
 * given after a batch before that batch in out[] (tests/
 * test_backend_contract.c asserts what every backend guarantees).  n is at most
 * max_batch in both directions.
 */
#ifndef ZP_BACKEND_H
#define ZP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "zeropool.h"
#include "zp_atomic.h"

/* ---- services for backends ---------------------------------------------- */

#define ZP_CACHELINE 64
#define ZP_ALIGNED_CL __attribute__((aligned(ZP_CACHELINE)))

/* Metadata (stores, magazines, caches): zeroed, cache-line aligned.
 * Returns NULL with errno ENOMEM.  Backends allocate through these so the
 * tests' failure injection reaches them. */
void *_zp_meta_alloc(size_t size);
void _zp_meta_free(void *p);

/* Consistency checks: compiled in with ZP_DEBUG_CHECKS, else nothing. */
void _zp_fatal(const char *file, int line, const char *what) __attribute__((noreturn));
#if ZP_DEBUG_CHECKS
#define zp_assert(c) ((c) ? (void)0 : _zp_fatal(__FILE__, __LINE__, #c))
#else
#define zp_assert(c) ((void)0)
#endif

/* ---- the contract -------------------------------------------------------- */

struct zp_store_params {
	unsigned classes;       /* class indices are 0..classes-1 */
	unsigned max_per_class; /* bound on buffers kept per class */
	/* bound on buffers kept, all classes together (max_idle_bytes over
	 * the smallest class; SIZE_MAX: none): with max_per_class, what bounds
	 * the memory of a store whose own nodes outlive their buffers */
	size_t max_buffers;
	unsigned max_batch; /* largest n in take/give */
	unsigned shards;    /* hint for sharded backends, a power of two */
	zp_evict_policy evict;
};

/* What a store reports for zp_stats.  The front end zeroes the struct
 * before stats() and a backend writes what it has: every backend its
 * contention and meta_bytes, one that defers the reuse of its nodes to
 * grace periods the other fields. */
struct zp_backend_stats {
	uint64_t contention;    /* failed trylocks, CAS retries */
	uint64_t reclaimed;     /* magazines back in use after a grace period */
	uint64_t grace_periods; /* grace periods waited for (callbacks run) */
	uint64_t grace_ns;      /* their latency, queued to run, summed */
	uint64_t grace_max_ns;  /* the longest of them */
	uint64_t meta_bytes;    /* gauge: the store's own memory (rings, magazines) */
};

struct zp_backend_ops {
	const char *name;
	/* Returns the store, or NULL with errno: ENOMEM, or EAGAIN when a
	 * resource other than memory is missing (a thread, a pthread key). */
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
	/* Optional (NULL: sizeof(zp_buf *)): the most bytes of its own memory
	 * the store holds per buffer of a full class, in steady state (a ring
	 * slot with the ring's growth; a magazine's stride over its capacity,
	 * twice where popped magazines wait for a grace period).  Constant for
	 * the store's life; the front end counts it against max_idle_bytes. */
	size_t (*idle_meta)(void *store);
	/* Optional (may be NULL), from the front end's pthread_atfork handlers
	 * (lib/zp_fork.c), on the forking thread, for every live store:
	 * fork_prepare takes every lock of the store, so that no other thread
	 * is inside one when the process is copied; fork_parent releases them
	 * in the parent, fork_child makes the store usable by the child's one
	 * thread (releases or reinitializes them).  A store without locks
	 * needs none of them. */
	void (*fork_prepare)(void *store);
	void (*fork_parent)(void *store);
	void (*fork_child)(void *store);
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
 * optional ones (thread_exit, idle_meta, fork_*).  Else -1 with errno
 * EINVAL. */
int _zp_backend_check(const struct zp_backend_ops *ops);

/* The usable entries of tab[0..n) (complete, and named by no other entry),
 * written to usable[] in table order; returns their number.  Never aborts:
 * the registry's ZP_DEBUG_CHECKS abort is its caller's. */
size_t _zp_backend_usable(const struct zp_backend_ops *const *tab, size_t n,
			  const struct zp_backend_ops **usable);

/* The usable registered backend called `name`, or NULL. */
const struct zp_backend_ops *_zp_backend_find(const char *name);
/* name, else $ZP_BACKEND, else the build default; NULL with errno ENOENT
 * when that name is not registered. */
const struct zp_backend_ops *_zp_backend_resolve(const char *name);

#endif /* ZP_BACKEND_H */
