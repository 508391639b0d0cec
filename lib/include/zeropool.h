/*
 * zeropool.h - a buffer pool for I/O, networking and model-loading code.
 *
 * zp_get() hands out a buffer of at least `len` bytes, zp_put() takes it back.
 * Requests are rounded up to a geometric size class (N classes per doubling,
 * so at most 1/N internal waste), served LIFO from a per-thread, per-pool,
 * per-class cache, and refilled from / drained to a shared store (the
 * "backend") in batches of half the class's cache capacity.  A class's
 * capacity is sized in bytes and grows while the class keeps missing (see
 * zp_config.cache_depth).  Requests larger than the
 * largest class are "oversize": allocated and freed directly, and counted.
 *
 * Errors: every function that can fail returns NULL or -1 and sets errno.
 *   EINVAL  a NULL pool, a bad configuration, a buffer that is not held from
 *           this pool (foreign, oversize of another pool, never handed out,
 *           a by-value copy of a descriptor)
 *   EALREADY zp_put() of a buffer that is already back in the pool
 *   ENOMEM  memory could not be had from the operating system
 *   EAGAIN  another resource is missing (a thread, a pthread key, a slot)
 *   ENOENT  zp_pool_create(): unknown backend name
 * A refused zp_put() leaves both the pool and the buffer untouched.
 *
 * Thread safety (see also docs/design.md):
 *
 *   function                      | may run concurrently with
 *   ------------------------------+-----------------------------------------
 *   zp_config_init                | anything (touches only its argument)
 *   zp_pool_create                | anything
 *   zp_get, zp_put, zp_preallocate| any call on any pool except
 *   zp_trim, zp_stats, zp_maintain|   zp_pool_destroy of the same pool
 *   zp_class_stats, zp_thread_cache
 *   zp_cache_get, zp_cache_put    | as zp_get/zp_put, on the thread that
 *                                 |   obtained the handle only
 *   zp_pool_destroy               | nothing on the same pool (it must be the
 *                                 |   last call naming it); anything on others
 *
 * A buffer may be put back by a different thread than the one that got it.
 * A double put is refused (EALREADY) while the buffer is idle in the pool;
 * once the pool has handed it out again it belongs to its new holder, and a
 * stale put of it cannot be told from the holder's own.  Two threads putting
 * the same buffer at the same moment are not detected either.
 */
#ifndef ZEROPOOL_H
#define ZEROPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "zeropool_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZP_VERSION_MAJOR 0
#define ZP_VERSION_MINOR 1
#define ZP_VERSION_PATCH 0

#define ZP_EXPORT __attribute__((visibility("default")))

#if defined(__GNUC__)
#define ZP_LIKELY(x) __builtin_expect(!!(x), 1)
#define ZP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ZP_LIKELY(x) (x)
#define ZP_UNLIKELY(x) (x)
#endif

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

/* What the shared store does with a buffer when its class is full.
 * Drop-coldest frees the least recently returned buffer: in `locked`, the
 * coldest of the giving thread's shard; the lock-free backends are stacks,
 * which cannot reach their bottom, and drop the newest instead. */
typedef enum zp_evict_policy {
	ZP_EVICT_DROP_COLDEST = 0, /* free the least recently returned buffer */
	ZP_EVICT_DROP_NEWEST = 1,  /* free the incoming buffer (refuse it) */
} zp_evict_policy;

/* Flags for zp_config.flags. */
enum {
	ZP_F_ZERO_ON_GET = 1u << 0, /* zero `len` bytes on every get (costs a memset) */
	ZP_F_MLOCK = 1u << 1,       /* mlock buffers of 64 KiB and up (mapped) */
	ZP_F_HUGE_PAGES = 1u << 2,  /* madvise(MADV_HUGEPAGE) on buffers of 2 MiB and up */
	ZP_F_PREFAULT = 1u << 3,    /* fault every page in when a buffer is allocated */
	/* run decay steps on a thread of the pool's own (see decay_ms) */
	ZP_F_MAINTENANCE_THREAD = 1u << 4,
	ZP_F_ALL_ = (1u << 5) - 1 /* every known flag; others are EINVAL */
};

/* Upper bounds accepted by zp_pool_create(). */
#define ZP_MAX_CACHE_DEPTH 512u
/* zp_config.cache_depth: adaptive, sized in bytes (the default). */
#define ZP_CACHE_DEPTH_AUTO 0xffffffffu
/* zp_config.max_per_class: no count bound (the default: bytes bound it). */
#define ZP_UNBOUNDED 0xffffffffu
#define ZP_MAX_CLASSES_PER_DOUBLING 16u
#define ZP_MAX_CLASSES 512u
/* zp_config.decay_ms: never release idle buffers by age (zp_trim only). */
#define ZP_DECAY_NEVER (-1L)
/* The longest decay_ms accepted: one hour. */
#define ZP_MAX_DECAY_MS 3600000L

typedef struct zp_config {
	/* Backend name ("locked", "lockfree-ck", "lockfree-urcu").  NULL: the
	 * ZP_BACKEND environment variable if set, else the build-time default. */
	const char *backend;
	/* Smallest class; smaller requests are served from it.  A power of two,
	 * >= 2 * classes_per_doubling.  Default 64. */
	size_t min_size;
	/* Largest pooled request; larger ones are oversize.  >= min_size.
	 * Default 1 GiB. */
	size_t max_size;
	/* Classes per doubling: 1, 2, 4, 8 or 16.  Default 4 (<= 25% waste). */
	unsigned classes_per_doubling;
	/* Buffers each thread caches per class.
	 * ZP_CACHE_DEPTH_AUTO (default): adaptive.  A class gets a capacity of
	 *   4 buffers when this thread first uses it, which doubles each time
	 *   the class overflows or refills from the store, up to
	 *   ZP_MAX_CACHE_DEPTH buffers and 4 x cache_bytes, while the
	 *   capacities of all classes of this thread's cache stay within
	 *   cache_bytes plus what it borrowed (see cache_bytes); when none is
	 *   left, the class holding the most capacity gives up half of it (its
	 *   coldest buffers go to the store).  Classes whose buffers are
	 *   larger than cache_bytes are not cached.
	 * 0: no thread caching (every get/put goes to the backend).
	 * 1..ZP_MAX_CACHE_DEPTH: a fixed capacity for every class (the cache
	 *   never grows; zeropool's behaviour). */
	unsigned cache_depth;
	/* Buffers moved per refill or drain.  0 (default): half the class's
	 * current capacity (at least 1).  With a fixed cache_depth,
	 * 1..cache_depth; with ZP_CACHE_DEPTH_AUTO, at most half the capacity
	 * of the class is moved whatever this says. */
	unsigned batch;
	/* Capacity of one thread's cache for this pool, in bytes, summed over
	 * its classes, when cache_depth is ZP_CACHE_DEPTH_AUTO (ignored
	 * otherwise).  A thread whose working set needs more borrows capacity
	 * from max_idle_bytes, cache_bytes at a time, up to 4 x cache_bytes in
	 * all, while the threads together borrow at most an eighth of
	 * max_idle_bytes (nothing if that eighth is below cache_bytes); the
	 * loan comes back when the thread exits.  So the memory a pool holds
	 * idle is at most max_idle_bytes plus cache_bytes for every thread
	 * that uses it.  Default 4 MiB; 0 disables caching like cache_depth 0. */
	size_t cache_bytes;
	/* Buffers the shared store keeps per class (all shards together), an
	 * optional bound beside max_idle_bytes.  >= 1.  Default ZP_UNBOUNDED. */
	unsigned max_per_class;
	/* Bytes of memory the shared store may keep idle, all classes
	 * together; a give beyond it refuses buffers ("discards").  Each idle
	 * buffer counts what it occupies, not its capacity: its data's
	 * footprint (malloc's chunk and alignment padding below 4 KiB, which
	 * for glibc is 192 bytes for 64; whole pages of the page arena from
	 * 4 KiB, so 8 KiB for 5000; whole pages of a mapping from 64 KiB),
	 * its 64-byte descriptor and its slot in the store (docs/design.md,
	 * "What max_idle_bytes bounds").  So a full store's memory is
	 * max_idle_bytes, within the store's own metadata (store_meta_bytes);
	 * zp_stats' idle_bytes, a sum of capacities, is less.  A refused buffer
	 * is freed, except a mapped one (64 KiB and up, without ZP_F_MLOCK or
	 * ZP_F_PREFAULT): its pages are given to the kernel to take back
	 * (madvise MADV_FREE) and the pool keeps its mapping, up to another
	 * max_idle_bytes of them, for a later get of its class to reuse
	 * instead of mapping a new buffer (zp_stats: released_buffers,
	 * released_bytes).  Memory idle in the pool stays under this plus what
	 * the thread caches hold (cache_bytes each), plus released pages the
	 * kernel has not taken yet (it takes them under memory pressure; until
	 * then they may count in the RSS).
	 * SIZE_MAX: unlimited.  Default: physical memory / 64, at least
	 * 64 MiB and at most 1 GiB (384 MiB on a 24 GiB machine). */
	size_t max_idle_bytes;
	/* How long a buffer may stay idle before the pool gives its memory
	 * back, in milliseconds.  Every decay_ms / 8 (at least 1 ms) a decay
	 * step looks at each class of the shared store: the buffers it kept
	 * through the whole last decay_ms (its low-water mark over that time)
	 * were not needed, and the step releases half of them; so after the
	 * load stops, what the store holds halves every decay_ms / 8 from
	 * decay_ms on (under 1% of it after 2 x decay_ms).  Heap buffers are
	 * freed; mapped ones (64 KiB and up) first lose their pages and keep
	 * their mapping (released_buffers in zp_stats), and are unmapped when
	 * they stay released for another decay_ms.  A class of a thread's cache
	 * that the thread has not used for decay_ms goes back to the store on
	 * that thread's next cache miss or overflow, with its capacity (and
	 * what the cache borrowed).  Steps run on the slow paths of any thread
	 * (a miss, an overflow: at most one step per decay_ms / 8, taken by the
	 * first thread to see it due, which does not wait for another's),
	 * from zp_maintain(), and, with ZP_F_MAINTENANCE_THREAD, on a thread of
	 * the pool's own, so that a pool whose threads stop calling it decays
	 * too.  After each step, the cache of a thread that made no get or put
	 * on the pool for decay_ms is freed by the thread that ran the step,
	 * as zp_trim() frees other threads' caches (the top buffer of each
	 * class stays until the owner calls again); so with the maintenance
	 * thread a pool whose threads all went quiet, alive or not, gives back
	 * everything but those within about 2 x decay_ms.
	 * 0: release at every step whatever is idle.  ZP_DECAY_NEVER: no decay.
	 * Other negative values and values above ZP_MAX_DECAY_MS are EINVAL.
	 * Default 10000 (10 s, jemalloc's dirty_decay_ms). */
	long decay_ms;
	zp_evict_policy evict; /* default ZP_EVICT_DROP_COLDEST */
	/* Locked backend: number of shards, a power of two <= 256.  0: CPU
	 * count rounded up to a power of two (at least 2).  Every backend
	 * checks the value (EINVAL otherwise), so that a configuration valid
	 * for one backend is valid for all; the lock-free ones ignore it. */
	unsigned shards;
	unsigned flags; /* ZP_F_* */
} zp_config;

/* Fill *cfg with the defaults above (computed from the CPU count and the
 * physical memory of this machine).  Never fails. */
ZP_EXPORT void zp_config_init(zp_config *cfg);

/* ------------------------------------------------------------------------ */
/* Buffers                                                                   */
/* ------------------------------------------------------------------------ */

/* The descriptor handed to callers.  `data`, `len` and `cap` are read-only
 * for callers; the fields after them belong to the library.  `data` is
 * 4 KiB aligned for classes of 4 KiB and up, 64 B aligned below.  Data
 * below 4 KiB comes from malloc, from 4 KiB up to 64 KiB from the library's
 * page arena (page-aligned slots of 1 MiB spans, free pages given back in
 * batches), from 64 KiB up from a mapping of its own. */
typedef struct zp_buf {
	unsigned char *const data; /* cap bytes, contents unspecified on get */
	const size_t len;          /* the length asked for in zp_get */
	const size_t cap;          /* usable bytes: the class size */
	/* private */
	uintptr_t _zp_owner; /* _ZP_OWNED(pool tag, this) | state, see _ZP_OWNER_* */
	uint32_t _zp_class;  /* size class, or _ZP_CLASS_OVERSIZE */
	uint32_t _zp_claim;  /* lock-free stores: 1 while on a stack of descriptors */
	void *_zp_link[2];   /* link words for lock-free stores */
	uint32_t _zp_rec;    /* _ZP_CLASS_REC(_zp_class), 0 when oversize */
	uint32_t _zp_lane;   /* the descriptor lane of its slab (zp_store.c) */
} zp_buf;

typedef struct zp_pool zp_pool;

/* ------------------------------------------------------------------------ */
/* Pools                                                                     */
/* ------------------------------------------------------------------------ */

/* Create a pool.  cfg NULL means zp_config_init() defaults.  Returns NULL
 * with errno EINVAL (bad configuration), ENOENT (unknown backend), ENOMEM,
 * or EAGAIN (lockfree-urcu: no thread for liburcu's worker, or no pthread
 * key left).  Never aborts the process.
 *
 * fork(): a process may fork while other threads use its pools.  The child
 * inherits every pool in a consistent state (pthread_atfork handlers hold
 * the library's locks across the fork) and may use and destroy it; buffers
 * that other threads of the parent held or cached stay allocated in the
 * child until the pool is destroyed.  lockfree-urcu in a child no longer
 * calls liburcu (whose registry holds the parent's threads): its store
 * calls take one mutex there instead (docs/lockfree.md, fork). */
ZP_EXPORT zp_pool *zp_pool_create(const zp_config *cfg);

/* Destroy a pool and free every buffer it ever handed out: idle ones, those
 * cached by any thread (idle or exited), and those still held by callers,
 * whose descriptors become invalid.  No other call may name the pool
 * concurrently or afterwards.  Threads that cached buffers from it never
 * touch its memory again.  NULL is a no-op. */
ZP_EXPORT void zp_pool_destroy(zp_pool *pool);

/* Get a buffer with len == `len` and cap >= len.  len 0 is valid: it returns
 * a buffer of the smallest class with len 0 (a real, distinct buffer that
 * must be put back).  Returns NULL with errno EINVAL (NULL pool) or ENOMEM.
 * Requests above max_size are oversize: allocated now, freed on put.
 *
 * zp_get and zp_put are also macros (below, "zp_get and zp_put inline")
 * that serve a cache hit in the caller's code and call these functions for
 * everything else: same results, errors and statistics.  Define
 * ZP_NO_INLINE before including this header to call the functions always
 * (for a binary that must run against other versions of the library);
 * (zp_get)(pool, len) calls the function in any case. */
ZP_EXPORT zp_buf *zp_get(zp_pool *pool, size_t len);

/* Return a buffer to the pool it came from.  Returns 0, or -1 with errno
 * EINVAL (NULL pool or buffer, a buffer of another pool, never handed out,
 * or a copy of a descriptor: only the zp_buf that zp_get returned, at its
 * own address, is accepted) or EALREADY (already put back); a refused put
 * changes nothing.  The caller must not touch the buffer afterwards.
 * Not caught: two threads putting the same buffer at the same moment. */
ZP_EXPORT int zp_put(zp_pool *pool, zp_buf *buf);

/* Allocate `count` buffers of the class of `size` and place them in the
 * shared store (not in a thread cache), stopping early when the store's
 * bounds (max_per_class, max_idle_bytes) are reached.  With ZP_F_PREFAULT
 * their pages are faulted in.  Returns the number placed (0..count), or -1
 * with errno EINVAL (NULL pool, size > max_size) or ENOMEM (the buffers
 * placed before the failure stay in the pool). */
ZP_EXPORT long zp_preallocate(zp_pool *pool, size_t count, size_t size);

/* Free the idle buffers of the shared store and of every thread's cache for
 * this pool.  Other threads may be using their caches at that moment: the
 * call closes their inline paths and, after one membarrier(2), frees what
 * each cache holds but the top buffer of each class (the owner may be in
 * the middle of a get or put of it), which stays until the owner's next
 * call.  A thread in the library's slow path at that moment, or every
 * thread when the system has no membarrier (MEMBARRIER_CMD_PRIVATE_EXPEDITED,
 * Linux 4.14), frees its own cache on its next call instead.  The calling
 * thread's own cache is freed whole.  The owners' inline paths pay nothing
 * for this (docs/design.md, "Draining another thread's cache").  The free
 * pages of buffers of 4 KiB to 64 KiB, which the library keeps in its page
 * arena for reuse, go back to the OS too (MADV_DONTNEED), those of every
 * pool.  Returns the bytes freed now, or (size_t)-1 with errno EINVAL for
 * a NULL pool. */
ZP_EXPORT size_t zp_trim(zp_pool *pool);

/* Run the decay steps due by now (see zp_config.decay_ms), for
 * applications that keep their own timers instead of
 * ZP_F_MAINTENANCE_THREAD: call it every decay_ms / 8 or so.  A step that
 * is not due yet does nothing.  The calling thread's own cache decays too,
 * as on its slow paths, and the caches of threads idle for decay_ms are
 * freed (see decay_ms).  Waits for a step that another thread is running.
 * Any thread, concurrently with every call but destroy.  Returns the
 * number of buffers whose memory the step gave back (freed, unmapped, or
 * whose pages it released), or -1 with errno EINVAL (NULL pool). */
ZP_EXPORT long zp_maintain(zp_pool *pool);

/* The backend serving the pool ("locked", ...), or NULL with EINVAL. */
ZP_EXPORT const char *zp_backend_name(const zp_pool *pool);

/* Built-in backends: their number, the name of the i-th (NULL when i is out
 * of range), and the build-time default. */
ZP_EXPORT size_t zp_backend_count(void);
ZP_EXPORT const char *zp_backend_at(size_t i);
ZP_EXPORT const char *zp_default_backend(void);

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

/* Counters are monotonic since creation; gauges are a snapshot.  Per-thread
 * counters are summed on read: exact when the pool is quiescent.  While
 * other threads run, each counter is at least every value it had before the
 * call (a value the caller learned from another thread included), gauges
 * never go below zero, and outstanding counts every buffer held throughout
 * the call but may also count buffers got and put during it (puts are read
 * before gets, so gets - puts cannot wrap). */
struct zp_stats {
	uint64_t gets;             /* zp_get calls that returned a buffer */
	uint64_t puts;             /* zp_put calls that succeeded */
	uint64_t cache_hits;       /* gets served by a thread cache */
	uint64_t store_hits;       /* gets served from the shared store */
	uint64_t fresh;            /* gets that allocated a new pooled buffer */
	uint64_t oversize;         /* gets above max_size (allocated directly) */
	uint64_t refills;          /* batch transfers store -> thread cache */
	uint64_t drains;           /* batch transfers thread cache -> store */
	uint64_t evictions;        /* freed by the store's eviction policy */
	uint64_t discards;         /* refused by max_idle_bytes (freed or released) */
	uint64_t trimmed;          /* freed by zp_trim */
	uint64_t decayed;          /* given back by decay steps (freed, unmapped, pages released) */
	uint64_t contention;       /* failed trylocks / CAS retries in the store */
	uint64_t reclaimed;        /* store magazines reused after an RCU grace period */
	uint64_t grace_periods;    /* grace periods the store waited for */
	uint64_t grace_ns;         /* their latency (queued to callback), summed, in ns */
	uint64_t grace_max_ns;     /* the longest of them, in ns (a maximum, not a sum) */
	uint64_t store_meta_bytes; /* gauge: the store's own memory (rings, magazines) */
	uint64_t idle_buffers;     /* gauge: buffers in the shared store */
	uint64_t idle_bytes;       /* gauge: their capacity in bytes */
	uint64_t released_buffers; /* gauge: refused by max_idle_bytes, kept mapped */
	uint64_t released_bytes;   /* gauge: their capacity in bytes */
	uint64_t idle_peak_bytes;  /* the most idle_bytes reached, per class, summed (a bound);
				    * never less than a value returned before */
	uint64_t cached_buffers;   /* gauge: buffers in thread caches */
	uint64_t cache_borrowed;   /* gauge: cache capacity lent from max_idle_bytes */
	uint64_t live_buffers;     /* gauge: pooled buffers allocated, not freed */
	uint64_t live_bytes;       /* gauge: their capacity in bytes */
	uint64_t outstanding;      /* gauge: gets - puts (held by callers) */
	unsigned classes;          /* number of size classes */
	unsigned threads;          /* threads holding a cache for this pool */
};

/* The fields of struct zp_stats, in order, for code that walks them all
 * (reports, JSON writers): X(name) for each uint64_t field, then for each
 * unsigned one.  One line per field; tools read these lists out of this
 * header (workloads/check_json.py).  The programs check at compile time that
 * they cover the struct exactly (workloads/wl_common.c). */
#define ZP_STATS_U64_FIELDS(X)                                                                     \
	X(gets)                                                                                    \
	X(puts)                                                                                    \
	X(cache_hits)                                                                              \
	X(store_hits)                                                                              \
	X(fresh)                                                                                   \
	X(oversize)                                                                                \
	X(refills)                                                                                 \
	X(drains)                                                                                  \
	X(evictions)                                                                               \
	X(discards)                                                                                \
	X(trimmed)                                                                                 \
	X(decayed)                                                                                 \
	X(contention)                                                                              \
	X(reclaimed)                                                                               \
	X(grace_periods)                                                                           \
	X(grace_ns)                                                                                \
	X(grace_max_ns)                                                                            \
	X(store_meta_bytes)                                                                        \
	X(idle_buffers)                                                                            \
	X(idle_bytes)                                                                              \
	X(released_buffers)                                                                        \
	X(released_bytes)                                                                          \
	X(idle_peak_bytes)                                                                         \
	X(cached_buffers)                                                                          \
	X(cache_borrowed)                                                                          \
	X(live_buffers)                                                                            \
	X(live_bytes)                                                                              \
	X(outstanding)
#define ZP_STATS_UNSIGNED_FIELDS(X)                                                                \
	X(classes)                                                                                 \
	X(threads)

struct zp_class_stats {
	size_t size;   /* class capacity in bytes */
	uint64_t gets; /* cache_hits + store_hits + fresh */
	uint64_t puts;
	uint64_t cache_hits;
	uint64_t store_hits;
	uint64_t fresh;
	uint64_t evictions;
	uint64_t discards;
	uint64_t idle_buffers; /* gauge: in the shared store */
	/* The most slots one thread's cache has given this class since the
	 * pool was made: what the adaptive cache (ZP_CACHE_DEPTH_AUTO) chose
	 * for it; a refill or drain then moves min(half of it, batch).  With a
	 * fixed cache_depth, that depth. */
	uint64_t cache_limit_peak;
};

/* Fill *out.  Returns 0, or -1 with EINVAL (NULL argument).  (The struct
 * tags and the functions share their names: `struct zp_stats st;
 * zp_stats(pool, &st);`.) */
ZP_EXPORT int zp_stats(zp_pool *pool, struct zp_stats *out);
/* Per class; cls < classes.  Returns 0, or -1 with EINVAL. */
ZP_EXPORT int zp_class_stats(zp_pool *pool, unsigned cls, struct zp_class_stats *out);
/* The class index that serves `len`, or -1 with EINVAL (NULL pool) or
 * ERANGE (len is oversize). */
ZP_EXPORT int zp_class_of(const zp_pool *pool, size_t len);

/* ------------------------------------------------------------------------ */
/* Hot loops: an explicit per-thread cache handle (the DPDK way)             */
/* ------------------------------------------------------------------------ */

/* zp_thread_cache() returns the calling thread's cache for `pool`, creating
 * it if needed, or NULL with errno EINVAL (NULL pool), ENOMEM, or EAGAIN
 * (this thread is exiting, or more than ZP_MAX_POOLS pools are alive).
 * The handle is valid on the calling thread only, until the thread exits
 * or the pool is destroyed.  zp_cache_get()/zp_cache_put() are then
 * zp_get()/zp_put() with the lookup hoisted out of the loop and the hit path
 * inlined: same results, same errors, same statistics. */
#define ZP_MAX_POOLS 256u

typedef struct zp_cache zp_cache;
ZP_EXPORT zp_cache *zp_thread_cache(zp_pool *pool);

/* ---- internals the inline path needs: not part of the API, may change -- */

/* A buffer's owner word: the pool's tag XOR the descriptor's own address,
 * so that a by-value copy of a descriptor (at another address) is not taken
 * for the buffer.  Tags and descriptors are 64-byte aligned, which leaves
 * the low bits for the states. */
#define _ZP_OWNED(tag, b) ((tag) ^ (uintptr_t)(b))
#define _ZP_OWNER_IDLE ((uintptr_t)1)     /* owned|1: in a cache or the store */
#define _ZP_OWNER_OVERSIZE ((uintptr_t)2) /* owned|2: held, oversize */
#define _ZP_CLASS_OVERSIZE UINT32_MAX

struct _zp_cache_class {
	uint32_t count; /* buffers in slots[0..count); written by the owner */
	uint32_t limit; /* capacity: slots has `limit` entries */
	zp_buf **slots; /* LIFO: slots[count-1] is hottest */
	/* Puts into this cache: written by the owning thread only (a load and
	 * a store, with release), before the count that the put raises (also
	 * with release).  Gets are not counted here: a hit is a count
	 * lowered, and zp_stats derives hits from count, puts and the
	 * buffers the slow paths moved (zp_tcache.h, "The hit ledger"), so
	 * the hit path carries no counter of its own. */
	uint64_t puts;
	uint64_t _zp_spare; /* keeps the record 32 bytes (no record straddles a line) */
};

struct zp_cache {
	uintptr_t tag; /* the pool's tag (its address), see _ZP_OWNED */
	/* Another thread that drains this cache closes the inline paths
	 * (zp_tcache.c, "Draining another thread's cache"): the owner's next
	 * get or put then takes the slow path, which reopens them. */
	uintptr_t put_tag; /* puts are inline when it is `tag` */
	size_t fast_limit; /* gets with len < fast_limit are served inline:
			    * max_size + 1, or 0 to send all to the slow path */
	/* _zp_class_index as tables over k = floor(log2 y), y = (len - 1) | 1:
	 * for k >= log2(min_size), (k << s) - base and k - s; below, every
	 * length is min_size's class 0 (add 0, shift 63), and k = 63 is len 0
	 * (add -1, shift 63: y >> 63 is 1).  No clamp to min_size needed. */
	int64_t class_add[64];
	uint8_t class_shift[64];
	struct _zp_cache_class cls[];
};

/* Where class k's record lies in a zp_cache, in bytes: a descriptor keeps
 * it (_zp_rec), so that a put reaches the record with one add, where the
 * class index needed a shift and an add after its load (the load that
 * starts the put's dependency chain: docs/design.md, "The hit path's
 * critical path"). */
#define _ZP_CLASS_REC(k)                                                                           \
	((uint32_t)(offsetof(zp_cache, cls) + (size_t)(k) * sizeof(struct _zp_cache_class)))

ZP_EXPORT zp_buf *_zp_cache_get_slow(zp_cache *c, size_t len);
ZP_EXPORT int _zp_cache_put_slow(zp_cache *c, zp_buf *b);

/* Builds that instrument buffers (debug checks: ASan or memcheck poisoning
 * of idle buffers; valgrind: helgrind hints) run the same inline path, which
 * calls into the library to instrument the buffer it hands out or takes. */
#if ZP_DEBUG_CHECKS || ZP_VALGRIND
ZP_EXPORT void _zp_instrument_get(zp_buf *b);
ZP_EXPORT void _zp_instrument_put(zp_buf *b);
#else
#define _zp_instrument_get(b) ((void)0)
#define _zp_instrument_put(b) ((void)0)
#endif
/* _ZP_TSAN: 1 in a translation unit built with ThreadSanitizer (GCC's
 * __SANITIZE_THREAD__, Clang's __has_feature), else 0.  The one detection:
 * the library's and the backends' annotations use it too
 * (lib/zp_backend_services.h). */
#if defined(__SANITIZE_THREAD__)
#define _ZP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define _ZP_TSAN 1
#endif
#endif
#ifndef _ZP_TSAN
#define _ZP_TSAN 0
#endif
/* Race checkers cannot see the hand-off with a thread that drains the
 * cache (a membarrier): each inline get and put ends by telling them that
 * what it did happens before that thread's drain. */
#if _ZP_TSAN
void __tsan_release(void *addr);
#define _zp_instrument_done(c) __tsan_release(c)
#elif ZP_VALGRIND
ZP_EXPORT void _zp_instrument_done(zp_cache *c);
#else
#define _zp_instrument_done(c) ((void)0)
#endif

#define _ZP_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define _ZP_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define _ZP_STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* A word another thread may write while the owner's inline path reads it
 * (fast_limit).  A relaxed load cannot fold into the compare (one more
 * instruction per get), so builds without a race checker read it plainly:
 * an aligned word, read once per call, which GCC and Clang load whole;
 * the drainer's write reaches the owner through a membarrier, not through
 * this load's ordering. */
#if _ZP_TSAN || ZP_VALGRIND
#define _ZP_LOAD_SHARED(p) _ZP_LOAD(p)
#else
#define _ZP_LOAD_SHARED(p) (*(p))
#endif
/* Hides how p was computed: without it GCC 12 recomputes a class's address
 * from the cache and the index for each atomic access to it (4 more
 * instructions per get+put pair, callgrind). */
#define _ZP_OPAQUE(p) __asm__("" : "+r"(p))
/* A single-writer counter: a load and a store, no read-modify-write; the
 * release orders what the thread did before (its gets, and gets of other
 * threads it synchronized with) before the new value. */
#define _ZP_COUNT_RELEASE(p) _ZP_STORE_RELEASE((p), _ZP_LOAD(p) + 1)

/* The size class of len: classes are min_size, then 2^s per doubling.
 * With y = max(len, min_size) - 1 and k = floor(log2 y), the class is
 * (k << s) + (y >> (k - s)) - base, base = (log2(min_size) << s) + 2^s - 1;
 * it needs min_size >= 2^(s+1), which zp_pool_create checks. */
static inline unsigned _zp_class_index(size_t len, size_t min_size, uint32_t s, uint32_t base)
{
	size_t y = (len > min_size ? len : min_size) - 1;
	unsigned k = (unsigned)(63 ^ __builtin_clzll((unsigned long long)y));
	return (k << s) + (unsigned)(y >> (k - s)) - base;
}

/* floor(log2 y), y != 0.  GCC sign-extends __builtin_clzll's int result
 * (a movslq per get, callgrind); bsr writes the whole register. */
static inline size_t _zp_log2(size_t y)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (!__builtin_constant_p(y)) {
		size_t k;
		__asm__("bsr %1, %0" : "=r"(k) : "rm"(y) : "cc");
		return k;
	}
#endif
	return (size_t)(63 ^ __builtin_clzll((unsigned long long)y));
}

static inline zp_buf *zp_cache_get(zp_cache *c, size_t len)
{
	if (ZP_LIKELY(len < _ZP_LOAD_SHARED(&c->fast_limit))) {
		size_t y = (len - 1) | 1;
		size_t k = _zp_log2(y);
		struct _zp_cache_class *cc =
		    &c->cls[c->class_add[k] + (int64_t)(y >> c->class_shift[k])];
		_ZP_OPAQUE(cc);
		uint32_t n = _ZP_LOAD(&cc->count);
		if (ZP_LIKELY(n != 0)) {
			zp_buf *b = cc->slots[--n];
			_ZP_STORE(&cc->count, n);
			b->_zp_owner = _ZP_OWNED(c->tag, b);
			*(size_t *)&b->len = len;
			_zp_instrument_get(b);
			_zp_instrument_done(c);
			return b;
		}
	}
	return _zp_cache_get_slow(c, len);
}

static inline int zp_cache_put(zp_cache *c, zp_buf *b)
{
	uintptr_t tag = _ZP_LOAD(&c->put_tag);
	if (ZP_LIKELY(b != NULL && b->_zp_owner == _ZP_OWNED(tag, b))) {
		struct _zp_cache_class *cc =
		    (struct _zp_cache_class *)(void *)((char *)c + b->_zp_rec);
		_ZP_OPAQUE(cc);
		uint32_t n = _ZP_LOAD(&cc->count);
		if (ZP_LIKELY(n < cc->limit)) {
			b->_zp_owner = _ZP_OWNED(tag, b) | _ZP_OWNER_IDLE;
			_zp_instrument_put(b);
			cc->slots[n] = b;
			_ZP_COUNT_RELEASE(&cc->puts);
			_ZP_STORE_RELEASE(&cc->count, n + 1);
			_zp_instrument_done(c);
			return 0;
		}
	}
	return _zp_cache_put_slow(c, b);
}

/* ---- zp_get and zp_put inline ------------------------------------------- */

/* The calling thread's table of caches, one per pool slot: the hit path of
 * zp_get/zp_put is a TLS load, the pool's slot, the table entry, then the
 * inline cache path above, in the caller, with no call into the library
 * (the DPDK way; docs/design.md, "zp_get and zp_put inline").  Internals:
 * a program compiled with them must be rebuilt for another version of the
 * library, as one that uses zp_cache_get must. */
struct _zp_thread {
	/* [ZP_MAX_POOLS] is a sentinel that stays NULL: pools without a slot
	 * index it and take the uncached path. */
	zp_cache *caches[ZP_MAX_POOLS + 1];
	unsigned hint; /* the thread's small id (the library's) */
};
/* Until the thread attaches its first cache, a shared table of NULLs (so
 * the pointer needs no test); initial-exec, as the library's own. */
ZP_EXPORT extern __thread struct _zp_thread *_zp_tcache_self
    __attribute__((tls_model("initial-exec")));
/* A pool's slot in the tables: an unsigned at this offset of the pool
 * (lib/zp_store.h asserts it). */
#define _ZP_POOL_SLOT_OFFSET 8

/* The calling thread's cache for pool (not NULL), or NULL if it has none. */
static inline zp_cache *_zp_cache_peek(const zp_pool *pool)
{
	unsigned slot =
	    *(const unsigned *)(const void *)((const char *)pool + _ZP_POOL_SLOT_OFFSET);
	return _zp_tcache_self->caches[slot];
}

static inline zp_buf *_zp_get_inline(zp_pool *pool, size_t len)
{
	if (ZP_LIKELY(pool != NULL)) {
		zp_cache *c = _zp_cache_peek(pool);
		if (ZP_LIKELY(c != NULL))
			return zp_cache_get(c, len);
	}
	return (zp_get)(pool, len);
}

static inline int _zp_put_inline(zp_pool *pool, zp_buf *b)
{
	if (ZP_LIKELY(pool != NULL)) {
		zp_cache *c = _zp_cache_peek(pool);
		if (ZP_LIKELY(c != NULL))
			return zp_cache_put(c, b);
	}
	return (zp_put)(pool, b);
}

#ifndef ZP_NO_INLINE
#define zp_get(pool, len) _zp_get_inline((pool), (len))
#define zp_put(pool, buf) _zp_put_inline((pool), (buf))
#endif

#ifdef __cplusplus
}
#endif

#endif /* ZEROPOOL_H */
