/*
 * zp_annotate.h - race-checker annotations for the lock-free stores.
 *
 * Helgrind, DRD and ThreadSanitizer cannot see the happens-before edge that
 * a lock-free stack push/pop pair creates (the CAS on the head is either
 * inline asm or inside an uninstrumented library), so every hand-off is
 * described to them explicitly:
 *
 *   zp_hb_before(obj)  on the publishing side, before the push
 *   zp_hb_after(obj)   on the receiving side, after a successful pop
 *
 * `obj` is the address of the stack (one synchronisation object per stack:
 * coarse, so it can hide a real race between two pushers, but it never
 * invents one).
 *
 * The intrusive link words of the stack nodes are raced on by design: a
 * stale popper reads node->next while the node's new owner rewrites it,
 * and its CAS then fails (ck: generation counter; urcu: grace period).
 * Those words, and only those, are excluded from checking:
 *
 *   zp_racy_by_design(p, n)  valgrind: VALGRIND_HG_DISABLE_CHECKING
 *   zp_racy_begin/end()      TSan: ignore the accesses made inside the
 *                            library's stack operation itself (the link
 *                            word and the head loads; our own data is
 *                            read and written outside that window)
 *
 * Everything compiles to nothing unless ZP_VALGRIND is 1 (from
 * zeropool_config.h) or the translation unit is built with
 * -fsanitize=thread.  Only helgrind.h is included, never drd.h: drd.h
 * redefines the ANNOTATE_* macros, and DRD honours helgrind's requests.
 */
#ifndef ZP_ANNOTATE_H
#define ZP_ANNOTATE_H

#include "zeropool_config.h"

#if !defined(ZP_TSAN) && defined(__SANITIZE_THREAD__)
#define ZP_TSAN 1
#endif
#if !defined(ZP_TSAN) && defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZP_TSAN 1
#endif
#endif
#ifndef ZP_TSAN
#define ZP_TSAN 0
#endif

#if ZP_VALGRIND
#include <valgrind/helgrind.h>
#define zp_vg_hb_before(a) ANNOTATE_HAPPENS_BEFORE(a)
#define zp_vg_hb_after(a) ANNOTATE_HAPPENS_AFTER(a)
#define zp_racy_by_design(p, n) VALGRIND_HG_DISABLE_CHECKING((p), (n))
#else
#define zp_vg_hb_before(a) ((void)0)
#define zp_vg_hb_after(a) ((void)0)
#define zp_racy_by_design(p, n) ((void)0)
#endif

#if ZP_TSAN
#include <sanitizer/tsan_interface.h>
/* Exported by libtsan, not declared in its public header. */
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define zp_tsan_hb_before(a) __tsan_release((void *)(a))
#define zp_tsan_hb_after(a) __tsan_acquire((void *)(a))
#define zp_racy_begin() __tsan_ignore_thread_begin()
#define zp_racy_end() __tsan_ignore_thread_end()
#else
#define zp_tsan_hb_before(a) ((void)0)
#define zp_tsan_hb_after(a) ((void)0)
#define zp_racy_begin() ((void)0)
#define zp_racy_end() ((void)0)
#endif

#define zp_hb_before(a)                                                                            \
	do {                                                                                       \
		zp_vg_hb_before(a);                                                                \
		zp_tsan_hb_before(a);                                                              \
	} while (0)
#define zp_hb_after(a)                                                                             \
	do {                                                                                       \
		zp_vg_hb_after(a);                                                                 \
		zp_tsan_hb_after(a);                                                               \
	} while (0)

#endif /* ZP_ANNOTATE_H */
