/*
 * zp_internal.h - front-end internals shared by lib/ and the backends.
 * Nothing here is exported from the shared library except the _zp_test_*
 * hooks, which exist for the test suite.
 */
#ifndef ZP_INTERNAL_H
#define ZP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zeropool.h"
#include "zp_backend.h"

#define ZP_API __attribute__((visibility("default")))
#define ZP_CACHELINE 64
#define ZP_ALIGNED_CL __attribute__((aligned(ZP_CACHELINE)))
#define ZP_PAGE 4096u

/* ---- assertions ------------------------------------------------------- */

void _zp_fatal(const char *file, int line, const char *what) __attribute__((noreturn));
#if ZP_DEBUG_CHECKS
#define zp_assert(c) ((c) ? (void)0 : _zp_fatal(__FILE__, __LINE__, #c))
#else
#define zp_assert(c) ((void)0)
#endif

/* ---- OS memory (zp_os.c) ---------------------------------------------- */

/* Buffer data: page aligned (mmap) for cap >= _ZP_MMAP_MIN, else
 * posix_memalign with 4 KiB alignment from 4 KiB up and 64 B below.
 * Returns NULL with errno ENOMEM.  `flags` are the pool's ZP_F_* flags. */
#define _ZP_MMAP_MIN ((size_t)64 << 10)
void *_zp_os_alloc(size_t cap, unsigned flags);
void _zp_os_free(void *p, size_t cap);

/* Metadata (pools, caches, stores): calloc-like, cache-line aligned.
 * Returns NULL with errno ENOMEM.  Backends allocate through these so the
 * failure-injection hook reaches them. */
void *_zp_meta_alloc(size_t size);
void _zp_meta_free(void *p);

/* Failure injection: the n-th allocation from now (1 = the next) through
 * _zp_os_alloc or _zp_meta_alloc fails with ENOMEM; 0 disarms.  Returns
 * the number of allocations made since the last arming. */
ZP_API void _zp_test_fail_alloc_after(long n);
ZP_API long _zp_test_alloc_calls(void);

/* ---- configuration (zp_config.c) --------------------------------------- */

unsigned _zp_cpu_count(void);
/* 0 if cfg is valid, else -1 with errno EINVAL. */
int _zp_config_check(const zp_config *cfg);

/* ---- the pool (zp_pool.c) ---------------------------------------------- */

/* Counters of one class, kept per thread cache (single writer, relaxed
 * load+store) and per pool (folded totals of caches that are gone, and
 * operations made without a cache: atomic RMW, off the hot path).
 *
 * Cache hits are not counted on the hot path: they are derived from what
 * entered and left the cache,
 *   hits = puts + refill_bufs - drain_bufs - trim_bufs - count
 * (a put with cache depth 0 counts as a put and a one-buffer drain),
 * where puts lives in the public _zp_cache_class (its field here is used
 * only in pool totals, like hits). */
struct _zp_class_counters {
	uint64_t hits, puts;
	uint64_t store_hits, fresh;
	uint64_t refills, refill_bufs; /* transfers, and buffers left in the cache */
	uint64_t drains, drain_bufs;
	uint64_t evictions, discards;
	uint64_t trim_bufs;
};

#define _ZP_NCOUNTERS (sizeof(struct _zp_class_counters) / sizeof(uint64_t))

/* Add n to a counter: a cache's (single writer) or, if ctr is NULL, the
 * pool's totals (atomic RMW). */
#define _ZP_ADD(pool, ctr, cls, field, n)                                                          \
	((ctr) != NULL                                                                             \
	     ? _ZP_STORE(&(ctr)[cls].field, _ZP_LOAD(&(ctr)[cls].field) + (n))                     \
	     : (void)__atomic_fetch_add(&(pool)->totals[cls].field, (n), __ATOMIC_RELAXED))

struct _zp_slab; /* a block of descriptors */

struct zp_pool {
	uintptr_t tag; /* == (uintptr_t)this: owner tag of held buffers */
	zp_config cfg;
	const struct zp_backend_ops *ops;
	void *store;
	unsigned classes;
	uint32_t spacing_shift, class_base; /* see _zp_class_index */
	unsigned depth, batch;
	unsigned slot; /* index in every thread's cache table, or ZP_MAX_POOLS */
	size_t *class_size;

	/* Descriptors: slabs, never freed before the pool; a free list. */
	pthread_mutex_t desc_lock;
	struct _zp_slab *slabs;
	zp_buf *desc_free;

	/* Thread caches attached to this pool (under _zp_registry_lock). */
	struct _zp_tcache *caches;
	unsigned ncaches;

	_Atomic uint64_t idle_bytes; /* capacity of buffers in the store */
	_Atomic uint64_t live_buffers, live_bytes;
	_Atomic uint64_t oversize_gets, oversize_puts, trimmed;
	struct _zp_class_counters *totals; /* [classes], atomic RMW */
};

/* Data of a fresh buffer of class cls (or oversize when cls ==
 * _ZP_CLASS_OVERSIZE, with cap = len rounded up).  Returns NULL/ENOMEM. */
zp_buf *_zp_buf_new(zp_pool *pool, unsigned cls, size_t len);
/* Free a buffer's data and recycle its descriptor. */
void _zp_buf_free(zp_pool *pool, zp_buf *b);

static inline size_t _zp_class_size(const zp_pool *pool, unsigned cls)
{
	return pool->class_size[cls];
}

static inline unsigned _zp_pool_class(const zp_pool *pool, size_t len)
{
	return _zp_class_index(len, pool->cfg.min_size, pool->spacing_shift, pool->class_base);
}

/* Hand n <= batch buffers of one class to the store, honouring
 * max_idle_bytes; frees what the store refuses or evicts and what the budget
 * does not admit, and returns how many buffers it freed.  Counters go to
 * `ctr` (a thread cache's) or, when NULL, to the pool's totals. */
unsigned _zp_store_give(zp_pool *pool, unsigned hint, unsigned cls, zp_buf *const *in, unsigned n,
			struct _zp_class_counters *ctr);
/* Take up to n buffers of one class from the store. */
unsigned _zp_store_take(zp_pool *pool, unsigned hint, unsigned cls, zp_buf **out, unsigned n);

/* ---- thread caches (zp_tcache.c) --------------------------------------- */

extern pthread_mutex_t _zp_registry_lock;

/* A thread's cache for one pool: this private header, then the public
 * zp_cache with its classes, then counters and slots, in one block. */
struct _zp_tcache {
	struct _zp_tcache *next, *prev; /* in pool->caches */
	struct _zp_thread *thread;
	zp_pool *pool;
	struct _zp_class_counters *ctr; /* [classes] */
	zp_cache pub;                   /* must be last: flexible array */
};

static inline struct _zp_tcache *_zp_tcache_of(zp_cache *c)
{
	return (struct _zp_tcache *)((char *)c - offsetof(struct _zp_tcache, pub));
}

unsigned _zp_slot_acquire(void);
void _zp_slot_release(unsigned slot);
/* Detach and free every thread's cache of `pool`; the buffers they held
 * are not freed here (the pool frees all of its buffers itself). */
void _zp_tcache_detach_all(zp_pool *pool);
/* Derived cache hits of class k of a live cache (under the registry lock). */
uint64_t _zp_tcache_hits(const struct _zp_tcache *tc, unsigned k);
/* The calling thread's cache for pool, or NULL; never creates one. */
zp_cache *_zp_tcache_peek(const zp_pool *pool);
/* The calling thread's small id (shard hint). */
unsigned _zp_thread_hint(void);

/* ---- registry (zp_registry.c) ------------------------------------------ */

const struct zp_backend_ops *_zp_backend_resolve(const char *name);

#endif /* ZP_INTERNAL_H */
