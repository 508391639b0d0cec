/*
 * test_idle_bound.c - max_idle_bytes bounds memory (issue 24, item 1).
 *
 * A store filled to its budget (zp_preallocate), every byte of every
 * buffer then written (each taken with the cache off and put back), must
 * add no more than 1.15x max_idle_bytes to the resident set, for classes
 * on the heap, in the page arena and mapped, at 1 to 16 classes per
 * doubling; and at least 0.75x (the budget is spent, not overcharged).
 * Before the budget counted what a buffer occupies, 64-byte buffers took
 * 4.15x (glibc's aligned chunk is 192 bytes, the descriptor 64), 5000
 * bytes 1.62x (two arena pages) and 4352 bytes at 16 classes per doubling
 * 1.91x.
 *
 * Natively only: the sanitizers and valgrind add their own memory per
 * allocation.  The resident set is read from /proc/self/statm; after each
 * pool, malloc_trim gives glibc's free heap back, so that the next fill
 * cannot reuse resident memory unseen.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "zp_test.h"

#define BUDGET ((size_t)32 << 20)
#define MAX_RATIO 1.15
#define MIN_RATIO 0.75

static long resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, resident = -1;
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &size, &resident) != 2)
			resident = -1;
		fclose(f);
	}
	REQUIRE(resident >= 0);
	return resident * sysconf(_SC_PAGESIZE);
}

/* The most buffers a fill can hold: the budget in 64-byte buffers. */
#define MAX_BUFS (BUDGET / 64)

static double fill_ratio(zp_buf **held, unsigned per_doubling, size_t size)
{
	zp_config c = zp_test_config();
	c.cache_depth = 0; /* every get and put goes to the store */
	c.classes_per_doubling = per_doubling;
	c.max_idle_bytes = BUDGET;
	c.decay_ms = ZP_DECAY_NEVER;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	long before = resident_bytes();
	long n = zp_preallocate(p, MAX_BUFS, size);
	REQUIRE(n > 0 && (size_t)n <= MAX_BUFS);
	for (long i = 0; i < n; i++) {
		held[i] = zp_get(p, size);
		REQUIRE(held[i] != NULL);
		memset(held[i]->data, 0xa5, held[i]->cap);
	}
	for (long i = 0; i < n; i++)
		CHECK_EQ(zp_put(p, held[i]), 0);
	long after = resident_bytes();
	struct zp_stats st;
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK_EQ(st.idle_buffers, (uint64_t)n); /* all of them back in the store */
	CHECK_EQ(st.discards, 0);
	zp_pool_destroy(p);
#ifdef __GLIBC__
	/* The freed heap leaves the RSS, or the next fill reuses it unseen. */
	malloc_trim(0);
#endif
	double ratio = (double)(after - before) / (double)BUDGET;
	fprintf(stderr,
		"[%s] %2u classes per doubling, %7zu B: %6ld buffers, resident %.3fx "
		"max_idle_bytes\n",
		zp_test_backend, per_doubling, size, n, ratio);
	return ratio;
}

static void test_full_store_within_budget(void)
{
	/* touched once, before any measurement */
	zp_buf **held = malloc(MAX_BUFS * sizeof *held);
	REQUIRE(held != NULL);
	memset(held, 0, MAX_BUFS * sizeof *held);
	static const unsigned per_doubling[] = {1, 4, 16};
	static const size_t sizes[] = {64, 100, 700, 3000, 4096, 4352, 5000, 20000, 65536, 300000};
	for (size_t d = 0; d < sizeof per_doubling / sizeof per_doubling[0]; d++)
		for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
			double r = fill_ratio(held, per_doubling[d], sizes[s]);
			CHECK(r <= MAX_RATIO);
			CHECK(r >= MIN_RATIO);
		}
	free(held);
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"full_store_within_budget", test_full_store_within_budget},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
