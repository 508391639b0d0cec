/*
 * zp_os.c - what the library takes from the operating system: buffer data
 * and metadata, the machine's size, and a failure-injection hook so tests
 * can make the n-th allocation fail.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zp_arena.h"
#include "zp_backend_services.h"
#include "zp_os.h"
#include "zp_poison.h"

/* ---- the machine ------------------------------------------------------ */

unsigned _zp_os_cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0) {
		int n = CPU_COUNT(&set);
		if (n > 0)
			return (unsigned)n;
	}
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

size_t _zp_os_physical_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long page = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || page <= 0)
		return (size_t)1 << 30;
	return (size_t)pages * (size_t)page;
}

/* ---- time ------------------------------------------------------------- */

static _Atomic uint64_t test_clock; /* 0: the real clock */

void _zp_test_set_clock(uint64_t ns)
{
	zp_atomic_store_relaxed(&test_clock, ns);
}

uint64_t _zp_os_now_ns(void)
{
	uint64_t fake = zp_atomic_load_relaxed(&test_clock);
	if (fake != 0)
		return fake;
	return _zp_clock_ns(CLOCK_MONOTONIC_COARSE);
}

/* ---- membarrier ------------------------------------------------------- */

/* 0: not registered yet, 1: registered, -1: unavailable. */
static _Atomic int membarrier_state;
static _Atomic bool membarrier_denied;

void _zp_test_deny_membarrier(bool deny)
{
	zp_atomic_store_relaxed(&membarrier_denied, deny);
}

static long sys_membarrier(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0u, 0);
}

int _zp_os_membarrier(void)
{
	if (zp_atomic_load_relaxed(&membarrier_denied))
		return -1;
	int state = zp_atomic_load_relaxed(&membarrier_state);
	if (state == 0) {
		/* Registering twice is harmless: no lock needed. */
		state = sys_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 ? 1 : -1;
		zp_atomic_store_relaxed(&membarrier_state, state);
	}
	if (state < 0)
		return -1;
	if (sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
		return 0;
	/* EPERM: a forked child whose registration did not carry over. */
	if (errno == EPERM && sys_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
	    sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
		return 0;
	zp_atomic_store_relaxed(&membarrier_state, -1);
	return -1;
}

/* ---- failure injection ------------------------------------------------ */

/* > 0: allocations left before the armed failure; 0: disarmed. */
static _Atomic long fail_countdown;
static _Atomic long alloc_calls;

/* Relaxed: the tests arm the hook before starting the threads it affects. */
void _zp_test_fail_alloc_after(long n)
{
	zp_atomic_store_relaxed(&alloc_calls, 0);
	zp_atomic_store_relaxed(&fail_countdown, n > 0 ? n : 0);
}

long _zp_test_alloc_calls(void)
{
	return zp_atomic_load_relaxed(&alloc_calls);
}

/* True when this allocation must fail (the injection hook). */
static bool injected_failure(void)
{
	zp_atomic_add_relaxed(&alloc_calls, 1);
	long left = zp_atomic_load_relaxed(&fail_countdown);
	while (left > 0) {
		if (zp_atomic_cas_weak_relaxed(&fail_countdown, &left, left - 1))
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

/* glibc's posix_memalign(64, cap) takes from its heap a chunk for the
 * request plus the alignment plus MINSIZE (32), with that chunk's own
 * header, and frees the pieces before and after the aligned part, which
 * are too small for the next such request: a series of them advances the
 * heap by about round16(cap + 8) + 112, exactly below 1 KiB and an upper
 * bound above (RSS per allocation: docs/measurements.md, "What
 * max_idle_bytes bounds"). */
static size_t heap_footprint(size_t cap)
{
	return ((cap + 8 + 15) & ~(size_t)15) + ZP_CACHELINE + 32 + 16;
}

size_t _zp_os_footprint(size_t cap)
{
	if (_zp_arena_holds(cap))
		return _zp_arena_footprint(cap);
	if (cap < _ZP_MMAP_MIN)
		return heap_footprint(cap);
	return (cap + ZP_PAGE - 1) & ~(size_t)(ZP_PAGE - 1);
}

void *_zp_os_alloc(size_t cap, unsigned flags)
{
	if (injected_failure()) {
		errno = ENOMEM;
		return NULL;
	}
	if (_zp_arena_holds(cap)) {
		void *p = _zp_arena_alloc(cap);
		if (p != NULL && (flags & ZP_F_PREFAULT))
			prefault(p, cap);
		return p;
	}
	if (cap < _ZP_MMAP_MIN) {
		void *p = NULL;
		int rc = posix_memalign(&p, ZP_CACHELINE, cap);
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
	if (_zp_arena_holds(cap)) {
		_zp_arena_free(p, cap);
		return;
	}
	_zp_unpoison(p, cap); /* the allocator may hand this memory out again */
	if (cap < _ZP_MMAP_MIN)
		free(p);
	else
		munmap(p, cap); /* also ends any mlock */
}

/* MADV_FREE: the kernel takes the pages when it needs memory, and a buffer
 * reused before that costs no page fault at all.  With MADV_DONTNEED every
 * reuse faults its pages and page tables in again: `ml_checkpoint_loader
 * --config defaults --scale 0.05`, 4,800 reuses, took 0.98 s with it and
 * 0.13 s with MADV_FREE on this project's VM.  Until the kernel takes them,
 * the pages may still count in the process's RSS.  Kernels before 4.5 lack
 * MADV_FREE: DONTNEED then.  `now` (decay: the memory was idle for
 * decay_ms, and its owner watches the RSS fall) asks for DONTNEED. */
int _zp_os_release_pages(void *p, size_t cap, bool now)
{
	if (cap < _ZP_MMAP_MIN)
		return -1; /* malloc's memory: not ours to advise */
#ifdef MADV_FREE
	if (!now && madvise(p, cap, MADV_FREE) == 0)
		return 0;
#endif
	return madvise(p, cap, MADV_DONTNEED);
}

void _zp_os_give_back(const struct _zp_freed *f)
{
	if (f->arena > 0)
		(void)_zp_arena_purge();
#ifdef __GLIBC__
	if (f->heap >= _ZP_HEAP_TRIM_MIN)
		(void)malloc_trim(0);
#endif
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
