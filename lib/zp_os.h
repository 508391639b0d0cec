/*
 * zp_os.h - what the library takes from the operating system: buffer data,
 * metadata (declared in zp_backend.h, for backends too), the machine's size,
 * and the failure-injection hooks of the test suite.  Above the page
 * arena (zp_arena.h), which it owns; it calls nothing else of the library.
 */
#ifndef ZP_OS_H
#define ZP_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zp_arena.h"

/* Buffer data: a mapping of its own for cap >= _ZP_MMAP_MIN, a page-aligned
 * slot of the page arena (zp_arena.h) from 4 KiB up, else malloc's
 * (posix_memalign, 64 B aligned).  Returns NULL with errno ENOMEM.
 * `flags` are the pool's ZP_F_* flags. */
void *_zp_os_alloc(size_t cap, unsigned flags);
void _zp_os_free(void *p, size_t cap);
/* The memory the data of a buffer of capacity cap occupies once every byte
 * was written, where _zp_os_alloc puts it: whole pages for a mapping, the
 * arena's slot and share of its span, or malloc's chunk with the padding
 * that 64-byte alignment costs it (an upper bound for glibc's
 * posix_memalign; other mallocs spend as much or less). */
size_t _zp_os_footprint(size_t cap);
/* Give the pages of a mapped buffer (cap >= _ZP_MMAP_MIN, no ZP_F_MLOCK)
 * back to the OS and keep the mapping (MADV_FREE, else or when `now`
 * MADV_DONTNEED, which takes them out of the RSS at once): the
 * contents become unspecified, the buffer stays usable.  Returns 0, or -1
 * (the buffer is unchanged). */
int _zp_os_release_pages(void *p, size_t cap, bool now);

/* Bytes of buffers below _ZP_MMAP_MIN freed in bulk (decay, a drain),
 * by where their data came from: _zp_freed_add per buffer, then
 * _zp_os_give_back once. */
struct _zp_freed {
	uint64_t arena; /* the page arena's (4 KiB up) */
	uint64_t heap;  /* malloc's */
};
/* n buffers of capacity cap. */
static inline void _zp_freed_add(struct _zp_freed *f, size_t cap, uint64_t n)
{
	if (cap < _ZP_ARENA_MIN)
		f->heap += n * cap;
	else if (_zp_arena_holds(cap))
		f->arena += n * cap;
}
/* Give what such frees left resident back to the OS, or it stays in the
 * RSS: the page arena's free pages when any arena buffer was freed
 * (_zp_arena_purge), and malloc's free heap pages (glibc's malloc_trim;
 * elsewhere nothing) from _ZP_HEAP_TRIM_MIN heap bytes on (the trim walks
 * the heap: once per step, not per buffer). */
void _zp_os_give_back(const struct _zp_freed *f);
#define _ZP_HEAP_TRIM_MIN ((uint64_t)1 << 20)

/* CPUs this process may run on (at least 1), and physical memory in bytes
 * (1 GiB when the system does not say). */
unsigned _zp_os_cpu_count(void);
size_t _zp_os_physical_memory(void);

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC_COARSE: a few ns from the
 * vDSO, ticks of a few ms, enough for decay), or the time the tests set. */
uint64_t _zp_os_now_ns(void);
/* Tests: from now on _zp_os_now_ns() returns ns (0: the real clock again). */
ZP_API void _zp_test_set_clock(uint64_t ns);

/* A full memory barrier on every running thread of this process
 * (membarrier MEMBARRIER_CMD_PRIVATE_EXPEDITED, registered on first use):
 * when it returns, each thread's accesses before some point of its own are
 * visible here, and its accesses after that point see what this thread
 * stored before the call.  Returns 0, or -1 when the system has none (the
 * caller then must not rely on it).  Tests can deny it
 * (_zp_test_deny_membarrier) to run the fallback. */
int _zp_os_membarrier(void);
ZP_API void _zp_test_deny_membarrier(bool deny);

/* Failure injection: the n-th allocation from now (1 = the next) through
 * _zp_os_alloc or _zp_meta_alloc fails with ENOMEM; 0 disarms.  Returns
 * the number of allocations made since the last arming. */
ZP_API void _zp_test_fail_alloc_after(long n);
ZP_API long _zp_test_alloc_calls(void);

#endif /* ZP_OS_H */
