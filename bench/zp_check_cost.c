/*
 * zp_check_cost.c - what the double-put check costs on the hit path.
 *
 * Runs the inline handle loop (zp_cache_get + zp_cache_put of one 4 KiB
 * buffer) as shipped, a copy of it without the ownership tag (no tag
 * stores, no tag compare: neither the double-put nor the copied-descriptor
 * check), and a copy without the tag and without the per-class put counter
 * (the puts that zp_stats sums; hits are derived, not counted), interleaved 11 times; prints the
 * medians and the medians of the paired differences.  docs/design.md and
 * docs/findings.md quote it.
 * Usage: zp_check_cost [PAIRS]   (default 20,000,000 per run)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zeropool.h"
#include "zp_progs.h"
/* zp_cache_get/put without the ownership tag (the double-put check), and
 * with PUTS(p) for the per-class put counter's bump: the shipped one, or
 * nothing.  The count is stored with release after it, as shipped. */
#define NO_COUNT(p) ((void)(p))
#define HANDLE_WITHOUT_CHECK(name, PUTS)                                                           \
	static inline zp_buf *get_##name(zp_cache *c, size_t len)                                  \
	{                                                                                          \
		if (ZP_LIKELY(len < c->fast_limit)) {                                              \
			size_t y = (len - 1) | 1;                                                  \
			size_t k = _zp_log2(y);                                                    \
			struct _zp_cache_class *cc =                                               \
			    &c->cls[c->class_add[k] + (int64_t)(y >> c->class_shift[k])];          \
			_ZP_OPAQUE(cc);                                                            \
			uint32_t n = cc->count;                                                    \
			if (ZP_LIKELY(n != 0)) {                                                   \
				zp_buf *b = cc->slots[--n];                                        \
				cc->count = n;                                                     \
				*(size_t *)&b->len = len;                                          \
				return b;                                                          \
			}                                                                          \
		}                                                                                  \
		return _zp_cache_get_slow(c, len);                                                 \
	}                                                                                          \
	static inline int put_##name(zp_cache *c, zp_buf *b)                                       \
	{                                                                                          \
		if (ZP_LIKELY(b != NULL)) {                                                        \
			struct _zp_cache_class *cc =                                               \
			    (struct _zp_cache_class *)(void *)((char *)c + b->_zp_rec);            \
			_ZP_OPAQUE(cc);                                                            \
			uint32_t n = cc->count;                                                    \
			if (ZP_LIKELY(n < cc->limit)) {                                            \
				cc->slots[n] = b;                                                  \
				PUTS(&cc->puts);                                                   \
				_ZP_STORE_RELEASE(&cc->count, n + 1);                              \
				return 0;                                                          \
			}                                                                          \
		}                                                                                  \
		return _zp_cache_put_slow(c, b);                                                   \
	}
HANDLE_WITHOUT_CHECK(nochk, _ZP_COUNT_RELEASE)
HANDLE_WITHOUT_CHECK(bare, NO_COUNT)
#define GET_chk zp_cache_get
#define PUT_chk zp_cache_put
#define GET_nochk get_nochk
#define PUT_nochk put_nochk
#define GET_bare get_bare
#define PUT_bare put_bare
/* The timed loop: one 4 KiB buffer got and put n times. */
#define PAIR_LOOP(name)                                                                            \
	static __attribute__((noinline)) void loop_##name(zp_cache *c, long n)                     \
	{                                                                                          \
		for (long i = 0; i < n; i++) {                                                     \
			zp_buf *b = GET_##name(c, 4096);                                           \
			zpp_clobber(b);                                                            \
			PUT_##name(c, b);                                                          \
		}                                                                                  \
	}
PAIR_LOOP(chk)
PAIR_LOOP(nochk)
PAIR_LOOP(bare)
int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf(
		    "usage: %s [PAIRS]\n"
		    "The inline handle's get+put of one 4 KiB buffer with the double-put check,\n"
		    "without it, and without it and the per-class put counter; 11 interleaved "
		    "runs\n"
		    "of PAIRS pairs each (default 20000000).\n",
		    argv[0]);
		return 0;
	}
	long n = argc > 1 ? atol(argv[1]) : 20000000;
	if (n <= 0) {
		fprintf(stderr, "usage: %s [PAIRS]\n", argv[0]);
		return 2;
	}
	zp_pool *p = zp_pool_create(NULL);
	if (p == NULL) {
		perror("zp_pool_create");
		return 1;
	}
	zp_put(p, zp_get(p, 4096));
	zp_cache *c = zp_thread_cache(p);
	double ta[11], th[11], tb[11], d[11], db[11];
	for (int r = 0; r < 11; r++) {
		double t0 = zpp_now();
		loop_chk(c, n);
		double t1 = zpp_now();
		loop_nochk(c, n);
		double t2 = zpp_now();
		loop_bare(c, n);
		double t3 = zpp_now();
		ta[r] = (t1 - t0) / n * 1e9;
		th[r] = (t2 - t1) / n * 1e9;
		tb[r] = (t3 - t2) / n * 1e9;
		d[r] = ta[r] - th[r];
		db[r] = th[r] - tb[r];
	}
	zpp_sort_doubles(ta, 11);
	zpp_sort_doubles(th, 11);
	zpp_sort_doubles(tb, 11);
	zpp_sort_doubles(d, 11);
	zpp_sort_doubles(db, 11);
	printf("with check %.2f ns/pair, without %.2f ns/pair, median paired difference %.2f ns\n",
	       ta[5], th[5], d[5]);
	printf("without check and put counter %.2f ns/pair, median paired difference to without "
	       "check %.2f ns\n",
	       tb[5], db[5]);
	zp_pool_destroy(p);
	return 0;
}
