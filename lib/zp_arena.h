/*
 * zp_arena.h - the page arena: the data of buffers from ZP_PAGE up to
 * _ZP_MMAP_MIN, carved from 1 MiB spans that the library maps itself.
 * Below the OS layer (zp_os.h), which owns it: zp_os.c decides which
 * buffers live here and calls the arena; the arena calls nothing of the
 * library but the backend services (assertions).
 *
 * Why not malloc: a pool keeps buffers of every size its load used, so a
 * malloc heap holding them fragments, and each free chunk whose pages were
 * once touched stays resident (glibc returns only the top of a heap).  The
 * arena knows which pages are free and gives them back in batches
 * (MADV_DONTNEED), without a system call per buffer (docs/design.md, "The
 * page arena").
 *
 * Synchronization: one mutex, a leaf (no library lock is taken under it;
 * it is taken last, under any of them, and by the fork handlers after the
 * stores' locks).  Every function is safe from any thread.
 */
#ifndef ZP_ARENA_H
#define ZP_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zp_backend.h"

/* Exported from the shared library: the test hooks of lib/. */
#define ZP_API __attribute__((visibility("default")))
#define ZP_PAGE 4096u

/* Buffers of cap in [_ZP_ARENA_MIN, _ZP_MMAP_MIN) come from the arena;
 * from _ZP_MMAP_MIN up each has a mapping of its own (zp_os.c). */
#define _ZP_ARENA_MIN ((size_t)ZP_PAGE)
#define _ZP_MMAP_MIN ((size_t)64 << 10)
static inline bool _zp_arena_holds(size_t cap)
{
	return cap >= _ZP_ARENA_MIN && cap < _ZP_MMAP_MIN;
}

/* Spans: aligned mappings of this size, the first page the header. */
#define _ZP_ARENA_SPAN ((size_t)1 << 20)

/* Free bytes (slot strides) the arena keeps resident for reuse before it
 * gives them all back at once: the bound on what it holds beyond its
 * users' buffers between purges. */
#define _ZP_ARENA_DIRTY_MAX ((uint64_t)2 << 20)

/* A page-aligned block of at least cap bytes (its slot is cap rounded up
 * to whole pages), contents unspecified; NULL with errno ENOMEM.  */
void *_zp_arena_alloc(size_t cap);
/* The memory a block of cap bytes occupies: its slot and its share of its
 * span (the header page, the tail no slot fits in). */
size_t _zp_arena_footprint(size_t cap);
/* Give back a block of _zp_arena_alloc(cap) (the same cap).  Aborts on a
 * pointer that is not a live block of the arena. */
void _zp_arena_free(void *p, size_t cap);
/* Give every free page back to the OS now (MADV_DONTNEED) and unmap the
 * spans left empty (zp_trim, decay, pool destroy).  Returns the bytes of
 * the slots given back. */
uint64_t _zp_arena_purge(void);

/* Bytes of the slots that are free and may be resident (tests). */
ZP_API uint64_t _zp_test_arena_dirty_bytes(void);

/* fork(): take the arena's lock before the process is copied, release it
 * in the parent and the child after (zp_fork.c). */
void _zp_arena_fork_prepare(void);
void _zp_arena_fork_release(void);

#endif /* ZP_ARENA_H */
