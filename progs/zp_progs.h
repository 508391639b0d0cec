/*
 * zp_progs.h - what the workload drivers, the benchmarks and the by-hand
 * benchmark under tests/ share, and nothing of the library's own: keeping
 * measured work from being optimised away, a monotonic clock, sorting of
 * samples, a deterministic random number generator, relaxed counters read
 * across threads, and the name of the allocator that serves malloc in this
 * process.
 *
 * Built as the static library zp_progs (progs/CMakeLists.txt).  C and C++
 * (zp_bench_main.cc) include it alike.
 */
#ifndef ZP_PROGS_H
#define ZP_PROGS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- keeping the work observable ----------------------------------------
 *
 * GCC deletes a malloc/free pair whose pointer does not escape, hoists a
 * size-class computation whose argument it knows out of a loop, and fuses a
 * get with the put that follows when nothing happens in between.  Each of
 * these empty asm statements forbids one of those; none emits an
 * instruction.
 */

/* v, as a value the compiler cannot know: what depends on it is computed
 * again on every call. */
static inline size_t zpp_opaque(size_t v)
{
	__asm__ volatile("" : "+r"(v));
	return v;
}

/* The value must be computed (Rust's black_box(v)). */
static inline void zpp_black_box(size_t v)
{
	__asm__ volatile("" : : "r"(v));
}

/* p escapes: an allocation behind it cannot be elided.  No memory clobber,
 * so values held in registers (the caller's counters) stay there.  The
 * parameters here are not const: GCC (-Wmaybe-uninitialized) takes a const
 * pointer to a fresh malloc block as a read of uninitialised bytes. */
static inline void zpp_escape(void *p)
{
	__asm__ volatile("" : : "r"(p));
}

/* p escapes and every byte in memory may have been read and written here:
 * stands for the caller's use of a buffer, so that nothing of an
 * allocator's state is kept in registers across it. */
static inline void zpp_clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* ---- counters one thread writes and another reads -------------------------
 *
 * Relaxed atomics: a reader sees some value the writer stored, never a torn
 * one; no ordering with anything else is implied.
 */

static inline uint64_t zpp_load_relaxed(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Only for a counter with a single writer: the load and the store are not
 * one atomic read-modify-write. */
static inline void zpp_add_relaxed(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* ---- deterministic random numbers ------------------------------------------
 *
 * splitmix64 (Steele, Lea, Flood 2014): a 64-bit counter through a mixer; a
 * few cycles per draw, and the same sequence for the same seed on every run.
 */
static inline uint64_t zpp_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- time and samples -------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds, and in seconds. */
uint64_t zpp_now_ns(void);
/* The CPU time of the calling thread and of the whole process, in
 * nanoseconds (0 if the system cannot read it). */
uint64_t zpp_thread_cpu_ns(void);
uint64_t zpp_process_cpu_ns(void);
double zpp_now(void);

/* Sort n doubles in ascending order (qsort; NaNs compare equal to all). */
void zpp_sort_doubles(double *v, size_t n);

/* This process's resident set now, in KiB (/proc/self/statm), or 0 when it
 * cannot be read (a live process has some). */
long zpp_rss_kib(void);

/* ---- which library serves malloc ------------------------------------------
 *
 * Found once per process from dladdr(dlsym(RTLD_DEFAULT, "malloc")), so an
 * LD_PRELOADed allocator is what is reported.  Every program names
 * allocators with these functions, so they cannot disagree.  The strings
 * are static and live as long as the process; safe to call from any thread
 * after the first call has returned.
 */

/* "glibc", "jemalloc", "mimalloc" or "tcmalloc"; otherwise the file name of
 * the library, or "unknown" when dladdr cannot tell. */
const char *zpp_malloc_provider(void);
/* That library's file name as the dynamic linker reports it ("libc.so.6",
 * "libjemalloc.so.2"), or "unknown". */
const char *zpp_malloc_file(void);
/* Its path as the dynamic linker reports it, or "unknown". */
const char *zpp_malloc_library(void);

#ifdef __cplusplus
}
#endif

#endif /* ZP_PROGS_H */
