/*
 * zp_os.h - what the library takes from the operating system: buffer data,
 * metadata (declared in zp_backend.h, for backends too), the machine's size,
 * and the failure-injection hooks of the test suite.  The bottom layer:
 * it calls nothing else of the library.
 */
#ifndef ZP_OS_H
#define ZP_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zp_backend.h"

/* Exported from the shared library: the test hooks below. */
#define ZP_API __attribute__((visibility("default")))
#define ZP_PAGE 4096u

/* Buffer data: page aligned (mmap) for cap >= _ZP_MMAP_MIN, else
 * posix_memalign with 4 KiB alignment from 4 KiB up and 64 B below.
 * Returns NULL with errno ENOMEM.  `flags` are the pool's ZP_F_* flags. */
#define _ZP_MMAP_MIN ((size_t)64 << 10)
void *_zp_os_alloc(size_t cap, unsigned flags);
void _zp_os_free(void *p, size_t cap);
/* Give the pages of a mapped buffer (cap >= _ZP_MMAP_MIN, no ZP_F_MLOCK)
 * back to the OS and keep the mapping (MADV_FREE, else or when `now`
 * MADV_DONTNEED, which takes them out of the RSS at once): the
 * contents become unspecified, the buffer stays usable.  Returns 0, or -1
 * (the buffer is unchanged). */
int _zp_os_release_pages(void *p, size_t cap, bool now);

/* Heap buffers were freed in bulk (decay): ask malloc to give the free
 * pages of its heap back to the OS (glibc's malloc_trim; elsewhere
 * nothing), or they stay in the RSS. */
void _zp_os_trim_heap(void);
/* Heap bytes freed at once from which decay trims the heap (the trim walks
 * it: once per step, not per buffer). */
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
