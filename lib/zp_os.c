/*
 * zp_os.c - memory from the operating system: buffer data and metadata,
 * with a failure-injection hook so tests can make the n-th allocation fail.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "zp_internal.h"
#include "zp_poison.h"

/* > 0: allocations left before the armed failure; 0: disarmed. */
static _Atomic long fail_countdown;
static _Atomic long alloc_calls;

void _zp_test_fail_alloc_after(long n)
{
	atomic_store(&alloc_calls, 0);
	atomic_store(&fail_countdown, n > 0 ? n : 0);
}

long _zp_test_alloc_calls(void)
{
	return atomic_load(&alloc_calls);
}

/* True when this allocation must fail (the injection hook). */
static bool injected_failure(void)
{
	atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
	long left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
	while (left > 0) {
		if (atomic_compare_exchange_weak(&fail_countdown, &left, left - 1))
			return left == 1;
	}
	return false;
}

void _zp_fatal(const char *file, int line, const char *what)
{
	(void)fprintf(stderr, "zeropool: %s:%d: check failed: %s\n", file, line, what);
	abort();
}

static void prefault(unsigned char *p, size_t cap)
{
	for (size_t off = 0; off < cap; off += ZP_PAGE)
		((volatile unsigned char *)p)[off] = 0;
}

void *_zp_os_alloc(size_t cap, unsigned flags)
{
	if (injected_failure()) {
		errno = ENOMEM;
		return NULL;
	}
	if (cap < _ZP_MMAP_MIN) {
		void *p = NULL;
		int rc = posix_memalign(&p, cap >= ZP_PAGE ? ZP_PAGE : ZP_CACHELINE, cap);
		if (rc != 0) {
			errno = ENOMEM;
			return NULL;
		}
		if (flags & ZP_F_PREFAULT)
			prefault(p, cap);
		return p;
	}
	int mflags = MAP_PRIVATE | MAP_ANONYMOUS;
	if (flags & ZP_F_PREFAULT)
		mflags |= MAP_POPULATE;
	void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, mflags, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
#ifdef MADV_HUGEPAGE
	if ((flags & ZP_F_HUGE_PAGES) && cap >= (2u << 20))
		(void)madvise(p, cap, MADV_HUGEPAGE); /* advice: failure is harmless */
#endif
	/* Best effort: RLIMIT_MEMLOCK may refuse; the buffer is still usable. */
	if (flags & ZP_F_MLOCK)
		(void)mlock(p, cap);
	return p;
}

void _zp_os_free(void *p, size_t cap)
{
	if (p == NULL)
		return;
	_zp_unpoison(p, cap); /* the allocator may hand this memory out again */
	if (cap < _ZP_MMAP_MIN)
		free(p);
	else
		munmap(p, cap); /* also ends any mlock */
}

void *_zp_meta_alloc(size_t size)
{
	if (injected_failure()) {
		errno = ENOMEM;
		return NULL;
	}
	size_t rounded = (size + ZP_CACHELINE - 1) & ~(size_t)(ZP_CACHELINE - 1);
	if (rounded < size) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = NULL;
	if (posix_memalign(&p, ZP_CACHELINE, rounded) != 0) {
		errno = ENOMEM;
		return NULL;
	}
	memset(p, 0, rounded);
	return p;
}

void _zp_meta_free(void *p)
{
	free(p);
}
