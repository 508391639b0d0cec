/*
 * zp_poison.h - use-after-put detection (ZP_DEBUG_CHECKS builds).
 *
 * Pools hide use-after-free from sanitizers: a buffer put back is still
 * mapped and often handed out again.  In debug-checks builds every idle
 * buffer's data is poisoned: for AddressSanitizer (manual poisoning) when
 * built with -fsanitize=address, and for valgrind memcheck (no access while
 * idle, undefined contents when handed out) when its headers are present.
 * Outside debug-checks builds these compile to nothing.
 */
#ifndef ZP_POISON_H
#define ZP_POISON_H

#include <stddef.h>

#include "zeropool_config.h"
/* _zp_hb_before/_zp_hb_after, for hand-offs that checkers cannot see (a
 * membarrier, zp_tcache.c): the annotations the backends use too. */
#include "zp_backend_services.h"

#if ZP_DEBUG_CHECKS
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define _ZP_ASAN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define _ZP_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define _ZP_ASAN_POISON(p, n) ((void)0)
#define _ZP_ASAN_UNPOISON(p, n) ((void)0)
#endif
#if defined(__has_include) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define _ZP_VG_NOACCESS(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define _ZP_VG_UNDEFINED(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#else
#define _ZP_VG_NOACCESS(p, n) ((void)0)
#define _ZP_VG_UNDEFINED(p, n) ((void)0)
#endif
/* The buffer goes idle: nobody may touch its data. */
#define _zp_poison(p, n) (_ZP_ASAN_POISON((p), (n)), (void)_ZP_VG_NOACCESS((p), (n)))
/* The buffer is handed out: accessible, contents unspecified. */
#define _zp_unpoison(p, n) (_ZP_ASAN_UNPOISON((p), (n)), (void)_ZP_VG_UNDEFINED((p), (n)))
#else
#define _zp_poison(p, n) ((void)0)
#define _zp_unpoison(p, n) ((void)0)
#endif

/* Helgrind/DRD (ZP_VALGRIND builds): a recycled buffer starts with no
 * access history, so the new holder's first writes are not reported as
 * racing with the previous holder's (valgrind's "avoid memory recycling"
 * advice for pools).  The hand-off itself is ordered by the store (mutex,
 * or the lock-free backends' happens-before annotations). */
#if ZP_VALGRIND
#include <valgrind/helgrind.h>
#define _zp_hg_clean(p, n) VALGRIND_HG_CLEAN_MEMORY((p), (n))
#else
#define _zp_hg_clean(p, n) ((void)0)
#endif

/* Counters that one thread writes (or many update with atomic RMW) while
 * zp_stats reads them: C11 atomics, which helgrind and DRD do not model,
 * so they are excluded from race checking in ZP_VALGRIND builds. */
#if ZP_VALGRIND
#define _zp_hg_counters(p, n) VALGRIND_HG_DISABLE_CHECKING((p), (n))
#define _zp_hg_counters_gone(p, n) VALGRIND_HG_ENABLE_CHECKING((p), (n)) /* before a free */
#else
#define _zp_hg_counters(p, n) ((void)0)
#define _zp_hg_counters_gone(p, n) ((void)0)
#endif

#endif /* ZP_POISON_H */
