/*
 * zp_atomic.h - named atomic operations, each with its memory order in its
 * name, for the library and its backends.
 *
 * No code under lib/, locked/ or lockfree/ calls a bare atomic_* function
 * (which defaults to seq_cst): every access says which order it needs, so a
 * reader sees at a glance where the synchronization is.  The operands are
 * _Atomic objects.  (The words the inline path of zeropool.h shares with the
 * library are plain integers, for C++ callers; they have their own relaxed
 * accessors there, _ZP_LOAD and _ZP_STORE.)
 *
 * Orders used in this library:
 *   relaxed  counters, gauges, hints: no other memory is published by them
 *   acquire  a load that must see what a releasing writer wrote before
 *   release  a store or RMW that publishes what this thread wrote before
 */
#ifndef ZP_ATOMIC_H
#define ZP_ATOMIC_H

#include <stdatomic.h>

#define zp_atomic_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define zp_atomic_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define zp_atomic_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define zp_atomic_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

/* Orders this thread's accesses for the compiler only: the cheap side of an
 * asymmetric fence, whose other side is a membarrier() issued by the
 * thread this one synchronizes with (zp_tcache.c). */
#define zp_atomic_compiler_fence() atomic_signal_fence(memory_order_seq_cst)

/* Read-modify-write; each returns the value before the operation. */
#define zp_atomic_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define zp_atomic_add_release(p, v) atomic_fetch_add_explicit((p), (v), memory_order_release)
#define zp_atomic_sub_relaxed(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)
#define zp_atomic_sub_release(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_release)

/* Compare-and-swap that may fail spuriously; on failure *expected is
 * updated.  Relaxed: for counters whose value alone matters. */
#define zp_atomic_cas_weak_relaxed(p, expected, desired)                                           \
	atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_relaxed,    \
					      memory_order_relaxed)

/* Raise *p to v if v is larger (a high-water mark); relaxed. */
#define zp_atomic_max_relaxed(p, v)                                                                \
	do {                                                                                       \
		__typeof__(v) zp_seen_ = zp_atomic_load_relaxed(p);                                \
		while (zp_seen_ < (v) && !zp_atomic_cas_weak_relaxed((p), &zp_seen_, (v)))         \
			;                                                                          \
	} while (0)

/* A counter with one writer: a relaxed load and store, no read-modify-write
 * (readers on other threads see some recent value, never a torn one). */
#define zp_atomic_bump_single_writer(p, v)                                                         \
	zp_atomic_store_relaxed((p), zp_atomic_load_relaxed(p) + (v))

#endif /* ZP_ATOMIC_H */
