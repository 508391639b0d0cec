/*
 * zp_check_cost.c - what the double-put check costs on the hit path.
 *
 * Runs the inline handle loop (zp_cache_get + zp_cache_put of one 4 KiB
 * buffer) as shipped, and a copy of it without the ownership tag (no tag
 * stores, no tag compare: neither the double-put nor the copied-descriptor
 * check), interleaved 11 times; prints the medians and the
 * median of the paired differences.  docs/design.md quotes it.
 * Usage: zp_check_cost [PAIRS]   (default 20,000,000 per run)
 */
#include <stdio.h>
#include <stdlib.h>
#include "zeropool.h"
#include "zp_progs.h"
/* zp_cache_get/put without the ownership tag (the double-put check) */
static inline zp_buf *get_nochk(zp_cache *c, size_t len)
{
	if (ZP_LIKELY(len < c->fast_limit)) {
		size_t y = (len - 1) | 1;
		size_t k = (size_t)(63 ^ __builtin_clzll((unsigned long long)y));
		struct _zp_cache_class *cc =
		    &c->cls[c->class_add[k] + (int64_t)(y >> c->class_shift[k])];
		_ZP_OPAQUE(cc);
		uint32_t n = cc->count;
		if (ZP_LIKELY(n != 0)) {
			zp_buf *b = cc->slots[--n];
			cc->count = n;
			_ZP_COUNT(&cc->hits);
			*(size_t *)&b->len = len;
			return b;
		}
	}
	return _zp_cache_get_slow(c, len);
}
static inline int put_nochk(zp_cache *c, zp_buf *b)
{
	if (ZP_LIKELY(b != NULL)) {
		struct _zp_cache_class *cc = &c->cls[b->_zp_class];
		_ZP_OPAQUE(cc);
		uint32_t n = cc->count;
		if (ZP_LIKELY(n < cc->limit)) {
			cc->slots[n] = b;
			cc->count = n + 1;
			_ZP_COUNT_RELEASE(&cc->puts);
			return 0;
		}
	}
	return _zp_cache_put_slow(c, b);
}
static __attribute__((noinline)) void loop_chk(zp_cache *c, long n)
{
	for (long i = 0; i < n; i++) {
		zp_buf *b = zp_cache_get(c, 4096);
		zpp_clobber(b);
		zp_cache_put(c, b);
	}
}
static __attribute__((noinline)) void loop_nochk(zp_cache *c, long n)
{
	for (long i = 0; i < n; i++) {
		zp_buf *b = get_nochk(c, 4096);
		zpp_clobber(b);
		put_nochk(c, b);
	}
}
int main(int argc, char **argv)
{
	zp_pool *p = zp_pool_create(NULL);
	zp_put(p, zp_get(p, 4096));
	zp_cache *c = zp_thread_cache(p);
	long n = argc > 1 ? atol(argv[1]) : 20000000;
	if (n <= 0) {
		fprintf(stderr, "usage: %s [PAIRS]\n", argv[0]);
		return 2;
	}
	double ta[11], th[11], d[11];
	for (int r = 0; r < 11; r++) {
		double t0 = zpp_now();
		loop_chk(c, n);
		double t1 = zpp_now();
		loop_nochk(c, n);
		double t2 = zpp_now();
		ta[r] = (t1 - t0) / n * 1e9;
		th[r] = (t2 - t1) / n * 1e9;
		d[r] = ta[r] - th[r];
	}
	zpp_sort_doubles(ta, 11);
	zpp_sort_doubles(th, 11);
	zpp_sort_doubles(d, 11);
	printf("with check %.2f ns/pair, without %.2f ns/pair, median paired difference %.2f ns\n",
	       ta[5], th[5], d[5]);
	zp_pool_destroy(p);
	return 0;
}
