/*
 * zp_backend_services.h - what the library shares with its backends as
 * inline code: race-checker annotations, the monotonic clock, and the
 * magazines of the lock-free stores.  A backend includes this header and
 * zp_backend.h, and nothing else of lib/ (scripts/check_layers.py); the
 * front end uses the same annotations and clock (zp_poison.h, zp_os.c).
 *
 * zp_backend.h holds the contract and the services that are front-end
 * functions (_zp_meta_alloc, _zp_fatal); this header holds what needs no
 * front-end state, so it is a leaf that the front end's own leaves may
 * include.
 */
#ifndef ZP_BACKEND_SERVICES_H
#define ZP_BACKEND_SERVICES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "zeropool.h"
#include "zeropool_config.h"
#include "zp_atomic.h"

/* ---- race-checker annotations ------------------------------------------
 *
 * Helgrind, DRD and ThreadSanitizer cannot see a happens-before edge that
 * is made by a lock-free stack's CAS (inline asm, or inside an
 * uninstrumented library), by a grace period or by a membarrier, so such a
 * hand-off is described to them explicitly:
 *
 *   _zp_hb_before(obj)  on the publishing side, before the hand-off
 *   _zp_hb_after(obj)   on the receiving side, after it
 *
 * `obj` names one synchronisation object (a stack, a cache): coarse, so it
 * can hide a real race between two publishers, but it never invents one.
 * Both tools get the annotation when both are on (a ZP_VALGRIND build
 * under -fsanitize=thread).
 *
 * The intrusive link words of lock-free stack nodes are raced on by
 * design: a stale popper reads node->next while the node's new owner
 * rewrites it, and its CAS then fails (ck: generation counter; urcu: grace
 * period).  Those words, and only those, are excluded from checking:
 *
 *   _zp_racy_by_design(p, n)  valgrind: VALGRIND_HG_DISABLE_CHECKING
 *   _zp_racy_begin/end()      TSan: ignore the accesses made inside the
 *                             library's stack operation itself (the link
 *                             word and the head loads; our own data is
 *                             read and written outside that window)
 *
 * Everything compiles to nothing unless ZP_VALGRIND is 1 (zeropool_config.h)
 * or _ZP_TSAN is (zeropool.h).  Only helgrind.h is included, never drd.h:
 * drd.h redefines the ANNOTATE_* macros, and DRD honours helgrind's
 * requests. */

#if ZP_VALGRIND
#include <valgrind/helgrind.h>
#define _zp_vg_hb_before(obj) ANNOTATE_HAPPENS_BEFORE(obj)
#define _zp_vg_hb_after(obj) ANNOTATE_HAPPENS_AFTER(obj)
#define _zp_racy_by_design(p, n) VALGRIND_HG_DISABLE_CHECKING((p), (n))
#else
#define _zp_vg_hb_before(obj) ((void)(obj))
#define _zp_vg_hb_after(obj) ((void)(obj))
#define _zp_racy_by_design(p, n) ((void)0)
#endif

#if _ZP_TSAN
#include <sanitizer/tsan_interface.h>
/* Exported by libtsan, not declared in its public header. */
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define _zp_tsan_hb_before(obj) __tsan_release((void *)(obj))
#define _zp_tsan_hb_after(obj) __tsan_acquire((void *)(obj))
#define _zp_racy_begin() __tsan_ignore_thread_begin()
#define _zp_racy_end() __tsan_ignore_thread_end()
#else
#define _zp_tsan_hb_before(obj) ((void)(obj))
#define _zp_tsan_hb_after(obj) ((void)(obj))
#define _zp_racy_begin() ((void)0)
#define _zp_racy_end() ((void)0)
#endif

#define _zp_hb_before(obj)                                                                         \
	do {                                                                                       \
		_zp_vg_hb_before(obj);                                                             \
		_zp_tsan_hb_before(obj);                                                           \
	} while (0)
#define _zp_hb_after(obj)                                                                          \
	do {                                                                                       \
		_zp_vg_hb_after(obj);                                                              \
		_zp_tsan_hb_after(obj);                                                            \
	} while (0)

/* ---- the clock ---------------------------------------------------------- */

/* Nanoseconds of clock `id`, a monotonic one: CLOCK_MONOTONIC, or
 * CLOCK_MONOTONIC_COARSE where a tick's resolution will do and a read
 * must cost a few ns (a kernel may refuse it: then CLOCK_MONOTONIC). */
static inline uint64_t _zp_clock_ns(clockid_t id)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) != 0)
		(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- magazines (the lock-free stores; docs/lockfree.md) ------------------
 *
 * A magazine is a counted array of descriptor pointers, bufs[0..count),
 * at the end of a backend's own node type.  Order convention (the backend
 * contract's, lib/zp_backend.h): in give(in, n) and take(out, n) the arrays
 * run from coldest to hottest, in[n-1] and out[got-1] being the hottest.
 * A magazine keeps the same order: bufs[count-1] is its hottest buffer, and
 * take() serves from the top.
 *
 * Magazine nodes are carved from chunks: a chunk header (a multiple of 64
 * bytes), then per_chunk nodes of `stride` bytes, a multiple of 64 so that
 * no two nodes share a cache line. */

/* Buffers per magazine: params->max_batch, clamped to this.  A give of
 * more than that (never done by the front end) fills several magazines. */
#define ZP_MAG_MAX_CAP 64u

/* Bytes carved per chunk (at least 2 nodes per chunk). */
#define ZP_MAG_CHUNK_BYTES 2048u

struct zp_mag_shape {
	uint32_t cap;       /* buffers per magazine */
	unsigned per_chunk; /* magazines per chunk */
	size_t stride;      /* bytes per magazine node */
};

/* The shape of magazines for batches of max_batch, with nodes of `hdr`
 * bytes before their buffer pointers, in chunks with a header of
 * `chunk_hdr` bytes. */
static inline struct zp_mag_shape zp_mag_shape_for(unsigned max_batch, size_t hdr, size_t chunk_hdr)
{
	struct zp_mag_shape sh;
	sh.cap = max_batch < 1 ? 1 : max_batch > ZP_MAG_MAX_CAP ? ZP_MAG_MAX_CAP : max_batch;
	sh.stride = (hdr + (size_t)sh.cap * sizeof(zp_buf *) + 63) & ~(size_t)63;
	size_t k = (ZP_MAG_CHUNK_BYTES - chunk_hdr) / sh.stride;
	sh.per_chunk = k < 2 ? 2 : (unsigned)k;
	return sh;
}

/* The bytes of one chunk (its allocation). */
static inline size_t zp_mag_chunk_bytes(const struct zp_mag_shape *sh, size_t chunk_hdr)
{
	return chunk_hdr + (size_t)sh->per_chunk * sh->stride;
}

/* Node i of a chunk whose nodes start at `first`. */
static inline void *zp_mag_node(const struct zp_mag_shape *sh, void *first, unsigned i)
{
	return (char *)first + (size_t)i * sh->stride;
}

/* A magazine node's bytes per buffer it holds when full (rounded up). */
static inline size_t zp_mag_bytes_per_buf(const struct zp_mag_shape *sh)
{
	return (sh->stride + sh->cap - 1) / sh->cap;
}

/* Fill an empty magazine with the first min(n, cap) of in[0..n) (the
 * coldest first, so its top is the hottest); returns how many. */
static inline unsigned zp_mag_load(zp_buf **bufs, uint32_t *count, uint32_t cap, zp_buf *const *in,
				   unsigned n)
{
	unsigned k = n < cap ? n : cap;
	memcpy(bufs, in, (size_t)k * sizeof(zp_buf *));
	*count = k;
	return k;
}

/* Move the hottest min(n, *count) buffers of a magazine to the END of
 * out[0..n) (they are hotter than anything taken after them, which goes
 * below them); returns how many.  out[n-k..n) receives bufs[count-k..count)
 * in order, so out[n-1] is the magazine's hottest. */
static inline unsigned zp_mag_drain_to_end(zp_buf **bufs, uint32_t *count, zp_buf **out, unsigned n)
{
	unsigned k = *count < n ? *count : n;
	*count -= k;
	memcpy(out + (n - k), bufs + *count, (size_t)k * sizeof(zp_buf *));
	return k;
}

/* ---- the class bound (the lock-free stores) -------------------------------
 *
 * `count` is an over-estimate of the buffers in a class (reserved before a
 * push, released after a pop), so reserving with one fetch_add can never
 * admit more than `max` buffers in all: a reserve that overshoots gives the
 * excess back and admits only max - old.  A concurrent reserve may then see
 * the transient overshoot and admit less than the free room: the bound is
 * exact from above, approximate from below.  Returns how many of n are
 * admitted. */
static inline unsigned zp_lf_reserve(_Atomic size_t *count, unsigned n, size_t max)
{
	size_t cur = zp_atomic_load_relaxed(count);
	if (cur >= max)
		return 0; /* full: no read-modify-write on the hot line */
	size_t old = zp_atomic_add_relaxed(count, n);
	if (old + n <= max)
		return n;
	unsigned admit = old < max ? (unsigned)(max - old) : 0;
	zp_atomic_sub_relaxed(count, n - admit);
	return admit;
}

static inline void zp_lf_release(_Atomic size_t *count, unsigned n)
{
	if (n != 0)
		zp_atomic_sub_relaxed(count, n);
}

/* give()'s admission under the class bound.  Over the bound the incoming
 * buffers are refused (drop-newest), the coldest of them first, into
 * victims[0..n - admitted); drop-coldest falls back to this, because a
 * stack cannot reach its bottom (docs/lockfree.md).  Returns how many are
 * admitted: in[n - admitted..n), the hottest. */
static inline unsigned zp_lf_admit(_Atomic size_t *count, size_t max, zp_buf *const *in, unsigned n,
				   zp_buf **victims)
{
	unsigned admit = zp_lf_reserve(count, n, max);
	memcpy(victims, in, (size_t)(n - admit) * sizeof(zp_buf *));
	return admit;
}

/* take()'s end: takes fill out[] from the end (hottest first); release the
 * got buffers from the class count and, when fewer than n were found,
 * slide them down to out[0..got).  Returns got. */
static inline unsigned zp_lf_taken(_Atomic size_t *count, zp_buf **out, unsigned n, unsigned got)
{
	zp_lf_release(count, got);
	if (got != 0 && got < n)
		memmove(out, out + (n - got), (size_t)got * sizeof(zp_buf *));
	return got;
}

#endif /* ZP_BACKEND_SERVICES_H */
