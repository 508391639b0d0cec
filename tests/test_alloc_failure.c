/*
 * test_alloc_failure.c - every allocation the library makes can fail.
 *
 * The OS-memory layer's test hook makes the n-th allocation from now fail
 * with ENOMEM.  For each operation (pool create, get of a fresh buffer, an
 * oversize get, preallocate, a thread cache's creation, the store's own
 * growth), sweep n over every allocation the operation makes and check
 * that the failure surfaces as ENOMEM (or is absorbed, for paths that may
 * run uncached), that nothing leaks (memcheck runs this test), and that the
 * pool stays usable and its books balance.  Run against every backend.
 */
#include <pthread.h>

#include "zp_os.h"
#include "zp_test.h"

/* Allocations op() makes when nothing fails. */
static long count_allocs(void (*op)(void))
{
	_zp_test_fail_alloc_after(0);
	op();
	return _zp_test_alloc_calls();
}

static void check_consistent(zp_pool *p)
{
	struct zp_stats st;
	CHECK_EQ(zp_stats(p, &st), 0);
	CHECK_EQ(st.gets, st.puts + st.outstanding);
	/* nothing oversize is held here */
	CHECK_EQ(st.live_buffers, st.idle_buffers + st.cached_buffers + st.outstanding);
	zp_buf *b = zp_get(p, 300); /* still usable */
	REQUIRE(b != NULL);
	CHECK_EQ(zp_put(p, b), 0);
}

static void op_create(void)
{
	zp_config c = zp_test_config();
	zp_pool *p = zp_pool_create(&c);
	if (p != NULL)
		zp_pool_destroy(p);
}

static void test_create(void)
{
	long n = count_allocs(op_create);
	CHECK(n >= 3);
	for (long i = 1; i <= n; i++) {
		zp_config c = zp_test_config();
		_zp_test_fail_alloc_after(i);
		errno = 0;
		zp_pool *p = zp_pool_create(&c);
		_zp_test_fail_alloc_after(0);
		CHECK(p == NULL);
		CHECK_EQ(errno, ENOMEM);
		zp_pool_destroy(p);
	}
}

static zp_pool *shared;

/* A get that allocates a fresh buffer (and, the first time on a thread, a
 * cache, and the first time for the pool, a descriptor slab). */
static void test_get(void)
{
	for (int round = 0; round < 2; round++) {
		zp_config c = zp_test_config();
		c.cache_depth = round == 0 ? 4 : 0;
		for (long i = 1;; i++) {
			shared = zp_pool_create(&c);
			REQUIRE(shared != NULL);
			_zp_test_fail_alloc_after(i);
			errno = 0;
			zp_buf *b = zp_get(shared, 5000);
			int e = errno;
			long calls = _zp_test_alloc_calls();
			_zp_test_fail_alloc_after(0);
			if (b == NULL) {
				CHECK_EQ(e, ENOMEM);
			} else {
				b->data[4999] = 1;
				CHECK_EQ(zp_put(shared, b), 0);
			}
			check_consistent(shared);
			zp_pool_destroy(shared);
			if (calls < i) /* the n-th allocation was never reached */
				break;
		}
	}
}

static void test_oversize(void)
{
	zp_config c = zp_test_config();
	c.max_size = 1 << 16;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_buf *warm = zp_get(p, 10); /* cache and slab exist now */
	REQUIRE(warm != NULL);
	CHECK_EQ(zp_put(p, warm), 0);
	_zp_test_fail_alloc_after(1);
	CHECK_ERR(zp_get(p, 1 << 20), ENOMEM);
	_zp_test_fail_alloc_after(0);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.oversize, 0);
	zp_buf *b = zp_get(p, 1 << 20);
	REQUIRE(b != NULL);
	CHECK_EQ(zp_put(p, b), 0);
	check_consistent(p);
	zp_pool_destroy(p);
}

static void test_preallocate(void)
{
	for (long i = 1; i <= 12; i++) {
		zp_config c = zp_test_config();
		zp_pool *p = zp_pool_create(&c);
		REQUIRE(p != NULL);
		_zp_test_fail_alloc_after(i);
		errno = 0;
		long placed = zp_preallocate(p, 8, 2000);
		int e = errno;
		_zp_test_fail_alloc_after(0);
		/* A failed buffer allocation is ENOMEM; a store that cannot grow
		 * refuses the buffer (it is freed) and preallocate stops short. */
		if (placed < 0)
			CHECK_EQ(e, ENOMEM);
		else
			CHECK(placed <= 8);
		struct zp_stats st;
		zp_stats(p, &st);
		/* what was placed before the failure stays, nothing else lives */
		CHECK_EQ(st.live_buffers, st.idle_buffers);
		if (placed >= 0)
			CHECK_EQ(st.idle_buffers, placed);
		check_consistent(p);
		zp_pool_destroy(p);
	}
}

/* A thread whose cache cannot be created still gets and puts (uncached). */
static void *cacheless(void *arg)
{
	zp_pool *p = arg;
	_zp_test_fail_alloc_after(1); /* the thread table */
	zp_buf *b = zp_get(p, 100);
	_zp_test_fail_alloc_after(0);
	CHECK(b != NULL);
	if (b != NULL)
		CHECK_EQ(zp_put(p, b), 0);
	return NULL;
}

static void test_cache_creation(void)
{
	zp_config c = zp_test_config();
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_put(p, zp_get(p, 100)); /* slab allocated */
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, cacheless, p) == 0);
	pthread_join(t, NULL);
	check_consistent(p);
	zp_pool_destroy(p);
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"create", test_create},
	    {"get", test_get},
	    {"oversize", test_oversize},
	    {"preallocate", test_preallocate},
	    {"cache_creation", test_cache_creation},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
