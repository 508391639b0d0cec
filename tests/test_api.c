/*
 * test_api.c - the conformance suite: the public contract of zeropool.h,
 * single-threaded, run against every backend (argv[1]).
 */
#include <pthread.h>
#include <stdint.h>

#include "zp_store.h" /* _zp_test_class_charge */
#include "zp_test.h"

static zp_pool *make(unsigned depth, unsigned max_per_class)
{
	zp_config c = zp_test_config();
	c.cache_depth = depth;
	c.max_per_class = max_per_class;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	return p;
}

/* Get n buffers of len into b[] / put b[0..n) back, each checked. */
static void get_n(zp_pool *p, zp_buf **b, int n, size_t len)
{
	for (int i = 0; i < n; i++)
		REQUIRE((b[i] = zp_get(p, len)) != NULL);
}

static void put_n(zp_pool *p, zp_buf **b, int n)
{
	for (int i = 0; i < n; i++)
		CHECK_EQ(zp_put(p, b[i]), 0);
}

static void test_get_put_basic(void)
{
	zp_pool *p = make(4, 32);
	CHECK(strcmp(zp_backend_name(p), zp_test_backend) == 0);
	zp_buf *b = zp_get(p, 1000);
	REQUIRE(b != NULL);
	CHECK_EQ(b->len, 1000);
	CHECK(b->cap >= 1000 && b->cap <= 1250);
	memset(b->data, 0xab, b->cap);
	CHECK_EQ(zp_put(p, b), 0);
	/* the hot buffer comes back */
	zp_buf *c = zp_get(p, 900);
	CHECK(c == b);
	CHECK_EQ(c->len, 900);
	CHECK_EQ(zp_put(p, c), 0);
	struct zp_stats st;
	CHECK_EQ(zp_stats(p, &st), 0);
	CHECK_EQ(st.gets, 2);
	CHECK_EQ(st.puts, 2);
	CHECK_EQ(st.cache_hits, 1);
	CHECK_EQ(st.fresh, 1);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.live_buffers, 1);
	CHECK_EQ(st.cached_buffers, 1);
	CHECK_EQ(st.threads, 1);
	zp_pool_destroy(p);
}

static void test_alignment_and_sizes(void)
{
	zp_pool *p = make(4, 32);
	size_t lens[] = {0, 1, 63, 64, 65, 100, 4095, 4096, 4097, 65536, 100000, 1 << 20};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		zp_buf *b = zp_get(p, lens[i]);
		REQUIRE(b != NULL);
		CHECK_EQ(b->len, lens[i]);
		CHECK(b->cap >= lens[i]);
		/* at most 25% waste above the smallest class */
		if (lens[i] > 64)
			CHECK(b->cap <= lens[i] + lens[i] / 4 + 1);
		uintptr_t a = (uintptr_t)b->data;
		CHECK(a % (b->cap >= 4096 ? 4096 : 64) == 0);
		b->data[0] = 1;
		b->data[b->cap - 1] = 2;
		CHECK_EQ(zp_put(p, b), 0);
	}
	zp_pool_destroy(p);
}

static void test_len_zero(void)
{
	zp_pool *p = make(4, 32);
	zp_buf *a = zp_get(p, 0), *b = zp_get(p, 0);
	REQUIRE(a != NULL && b != NULL);
	CHECK(a != b && a->data != b->data);
	CHECK_EQ(a->len, 0);
	CHECK_EQ(a->cap, 64);
	CHECK_EQ(zp_put(p, a), 0);
	CHECK_EQ(zp_put(p, b), 0);
	zp_pool_destroy(p);
}

static void test_bad_puts(void)
{
	zp_pool *p = make(4, 32), *q = make(4, 32);
	zp_buf *b = zp_get(p, 128);
	REQUIRE(b != NULL);
	CHECK_ERR(zp_put(NULL, b), EINVAL);
	CHECK_ERR(zp_put(p, NULL), EINVAL);
	CHECK_ERR(zp_put(q, b), EINVAL); /* another pool's buffer */
	CHECK_EQ(zp_put(p, b), 0);
	CHECK_ERR(zp_put(p, b), EALREADY); /* double put, cached */
	CHECK_ERR(zp_put(q, b), EINVAL);
	/* double put after the buffer went on to the shared store */
	zp_pool *r = make(0, 32);
	zp_buf *c = zp_get(r, 128);
	REQUIRE(c != NULL);
	CHECK_EQ(zp_put(r, c), 0);
	CHECK_ERR(zp_put(r, c), EALREADY);
	/* oversize double put: the descriptor went back to the free list */
	zp_buf *o = zp_get(p, ((size_t)1 << 30) + 1);
	REQUIRE(o != NULL);
	CHECK_EQ(zp_put(p, o), 0);
	CHECK_ERR(zp_put(p, o), EINVAL);
	CHECK_ERR(zp_get(NULL, 10), EINVAL);
	struct zp_stats st;
	CHECK_EQ(zp_stats(p, &st), 0);
	CHECK_EQ(st.gets, st.puts); /* refused puts are not counted */
	CHECK_EQ(st.outstanding, 0);
	zp_pool_destroy(p);
	zp_pool_destroy(q);
	zp_pool_destroy(r);
}

/* Refused calls change nothing, not even by attaching a thread cache
 * (issue 12: each of these attached one, threads 0 -> 1). */
static void test_refused_calls_attach_nothing(void)
{
	zp_pool *a = make(4, 32), *b = make(4, 32);
	zp_buf *x = zp_get(a, 128);
	REQUIRE(x != NULL);
	/* this thread never used b */
	CHECK_ERR(zp_put(b, x), EINVAL);
	CHECK_ERR(zp_put(b, NULL), EINVAL);
	CHECK_ERR(zp_get(b, SIZE_MAX), ENOMEM);
	struct zp_stats st;
	CHECK_EQ(zp_stats(b, &st), 0);
	CHECK_EQ(st.threads, 0);
	CHECK_EQ(st.gets, 0);
	CHECK_EQ(st.puts, 0);
	/* an oversize get and put need no cache either */
	zp_buf *o = zp_get(b, ((size_t)1 << 30) + 1);
	REQUIRE(o != NULL);
	CHECK_EQ(zp_put(b, o), 0);
	CHECK_EQ(zp_stats(b, &st), 0);
	CHECK_EQ(st.threads, 0);
	CHECK_EQ(st.oversize, 1);
	/* a pooled put on a thread without a cache attaches one */
	CHECK_EQ(zp_put(a, x), 0);
	zp_buf *y = zp_get(b, 128);
	REQUIRE(y != NULL);
	CHECK_EQ(zp_put(b, y), 0);
	CHECK_EQ(zp_stats(b, &st), 0);
	CHECK_EQ(st.threads, 1);
	zp_pool_destroy(a);
	zp_pool_destroy(b);
}

/* A by-value copy of a held descriptor is refused (issue 12: it was
 * accepted, the buffer reached two holders, and ASan later caught the pool
 * handing out the freed copy).  Cached, uncached, and oversize. */
static void test_copied_descriptor_refused(void)
{
	unsigned depths[] = {4, 0, ZP_CACHE_DEPTH_AUTO};
	for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
		zp_pool *p = make(depths[i], 32);
		size_t lens[] = {100, ((size_t)1 << 30) + 1};
		for (size_t j = 0; j < 2; j++) {
			zp_buf *b = zp_get(p, lens[j]);
			REQUIRE(b != NULL);
			zp_buf *copy = malloc(sizeof *copy);
			REQUIRE(copy != NULL);
			memcpy(copy, b, sizeof *copy);
			CHECK_ERR(zp_put(p, copy), EINVAL);
			CHECK_EQ(zp_put(p, b), 0);
			CHECK_ERR(zp_put(p, copy), EINVAL); /* and after the real put */
			free(copy);
		}
		struct zp_stats st;
		CHECK_EQ(zp_stats(p, &st), 0);
		CHECK_EQ(st.gets, 2);
		CHECK_EQ(st.puts, 2);
		CHECK_EQ(st.outstanding, 0);
		zp_pool_destroy(p);
	}
}

static void test_oversize(void)
{
	zp_config c = zp_test_config();
	c.max_size = 1 << 20;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_buf *b = zp_get(p, (1 << 20) + 1);
	REQUIRE(b != NULL);
	CHECK_EQ(b->len, (1 << 20) + 1);
	CHECK(b->cap >= b->len);
	CHECK((uintptr_t)b->data % 4096 == 0);
	b->data[b->len - 1] = 7;
	CHECK_ERR(zp_class_of(p, (1 << 20) + 1), ERANGE);
	CHECK_EQ(zp_put(p, b), 0);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.oversize, 1);
	CHECK_EQ(st.gets, 1);
	CHECK_EQ(st.puts, 1);
	CHECK_EQ(st.live_buffers, 0); /* oversize buffers are never pooled */
	zp_pool_destroy(p);
}

static void test_huge_lengths(void)
{
	zp_pool *p = make(4, 32);
	size_t lens[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, (size_t)1 << 62, (size_t)1 << 47};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
		CHECK_ERR(zp_get(p, lens[i]), ENOMEM);
	CHECK_ERR(zp_preallocate(p, 1, SIZE_MAX), EINVAL);
	CHECK_ERR(zp_class_of(p, SIZE_MAX), ERANGE);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.gets, 0);
	CHECK_EQ(st.oversize, 0);
	zp_buf *b = zp_get(p, 10); /* still usable */
	REQUIRE(b != NULL);
	CHECK_EQ(zp_put(p, b), 0);
	zp_pool_destroy(p);
}

static void test_classes(void)
{
	zp_pool *p = make(4, 32);
	CHECK_EQ(zp_class_of(p, 0), 0);
	CHECK_EQ(zp_class_of(p, 64), 0);
	CHECK_EQ(zp_class_of(p, 65), 1);
	CHECK_EQ(zp_class_of(p, 128), 4);
	CHECK_EQ(zp_class_of(p, 129), 5);
	CHECK_ERR(zp_class_of(NULL, 1), EINVAL);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.classes, 24 * 4 + 1); /* 64 B .. 1 GiB, 4 per doubling */
	size_t prev = 0;
	for (unsigned k = 0; k < st.classes; k++) {
		struct zp_class_stats cs;
		CHECK_EQ(zp_class_stats(p, k, &cs), 0);
		CHECK(cs.size > prev);
		CHECK_EQ(zp_class_of(p, cs.size), k); /* a class serves its own size */
		if (cs.size <= (1u << 26)) {          /* and the inline path agrees */
			zp_buf *b = zp_get(p, cs.size), *b1 = zp_get(p, prev + 1);
			REQUIRE(b != NULL && b1 != NULL);
			CHECK_EQ(b->cap, cs.size);
			CHECK_EQ(b1->cap, cs.size);
			CHECK_EQ(zp_put(p, b), 0);
			CHECK_EQ(zp_put(p, b1), 0);
		}
		if (k > 0)
			CHECK_EQ(zp_class_of(p, prev + 1), k);
		prev = cs.size;
	}
	CHECK_EQ(prev, (size_t)1 << 30);
	struct zp_class_stats cs;
	CHECK_ERR(zp_class_stats(p, st.classes, &cs), EINVAL);
	zp_pool_destroy(p);

	zp_config c = zp_test_config();
	c.min_size = 4096;
	c.max_size = 1 << 20;
	c.classes_per_doubling = 1;
	p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_stats(p, &st);
	CHECK_EQ(st.classes, 9);
	zp_buf *b = zp_get(p, 4097);
	REQUIRE(b != NULL);
	CHECK_EQ(b->cap, 8192);
	CHECK_EQ(zp_put(p, b), 0);
	zp_pool_destroy(p);
}

static void test_bad_configs(void)
{
	zp_config c;
#define BAD(field, value, err)                                                                     \
	do {                                                                                       \
		c = zp_test_config();                                                              \
		c.field = value;                                                                   \
		CHECK_ERR(zp_pool_create(&c), err);                                                \
	} while (0)
	BAD(min_size, 0, EINVAL);
	BAD(min_size, 96, EINVAL); /* not a power of two */
	BAD(min_size, 4, EINVAL);  /* below 2 * classes_per_doubling */
	BAD(max_size, 32, EINVAL); /* below min_size */
	BAD(max_size, SIZE_MAX, EINVAL);
	BAD(classes_per_doubling, 0, EINVAL);
	BAD(classes_per_doubling, 3, EINVAL);
	BAD(classes_per_doubling, 32, EINVAL);
	BAD(cache_depth, ZP_MAX_CACHE_DEPTH + 1, EINVAL);
	BAD(batch, 1000, EINVAL);
	BAD(max_per_class, 0, EINVAL);
	BAD(evict, (zp_evict_policy)7, EINVAL);
	BAD(shards, 3, EINVAL);
	BAD(shards, 512, EINVAL);
	BAD(flags, 1u << 20, EINVAL);
	BAD(backend, "no-such-backend", ENOENT);
#undef BAD
	c = zp_test_config();
	c.cache_depth = 4;
	c.batch = 5; /* more than the depth */
	CHECK_ERR(zp_pool_create(&c), EINVAL);
	/* min 2, 1 per doubling, max 2^62: 62 classes, fine */
	c = zp_test_config();
	c.min_size = 2;
	c.classes_per_doubling = 1;
	c.max_size = (size_t)1 << 62;
	zp_pool *p = zp_pool_create(&c);
	CHECK(p != NULL);
	zp_pool_destroy(p);
	/* 16 per doubling over 2^62 / 16 is too many classes */
	c.min_size = 16;
	c.classes_per_doubling = 16;
	CHECK_ERR(zp_pool_create(&c), EINVAL);
	zp_config_init(NULL); /* harmless */
	zp_pool_destroy(NULL);
	CHECK_ERR(zp_backend_name(NULL), EINVAL);
	CHECK_ERR(zp_stats(NULL, NULL), EINVAL);
	CHECK_ERR(zp_thread_cache(NULL), EINVAL);
	CHECK_ERR(zp_preallocate(NULL, 1, 1), EINVAL);
	CHECK(zp_trim(NULL) == (size_t)-1 && errno == EINVAL);
}

static void test_defaults(void)
{
	zp_config c;
	zp_config_init(&c);
	CHECK(c.backend == NULL);
	CHECK_EQ(c.min_size, 64);
	CHECK_EQ(c.max_size, (size_t)1 << 30);
	CHECK_EQ(c.classes_per_doubling, 4);
	CHECK_EQ(c.cache_depth, ZP_CACHE_DEPTH_AUTO);
	CHECK_EQ(c.batch, 0);
	CHECK_EQ(c.cache_bytes, (size_t)4 << 20);
	CHECK_EQ(c.max_per_class, ZP_UNBOUNDED);
	CHECK(c.max_idle_bytes >= (size_t)64 << 20 && c.max_idle_bytes <= (size_t)1 << 30);
	CHECK_EQ(c.evict, ZP_EVICT_DROP_COLDEST);
	zp_pool *p = zp_pool_create(NULL);
	REQUIRE(p != NULL);
	CHECK(zp_backend_name(p) != NULL);
	zp_pool_destroy(p);
	CHECK(zp_backend_count() >= 1);
	CHECK(zp_backend_at(zp_backend_count()) == NULL);
	int found = 0;
	for (size_t i = 0; i < zp_backend_count(); i++)
		found += strcmp(zp_backend_at(i), zp_default_backend()) == 0;
	CHECK_EQ(found, 1);
}

/* The most slots a thread cache gave the class serving len. */
static uint64_t class_limit_peak(zp_pool *p, size_t len)
{
	struct zp_class_stats cs;
	int k = zp_class_of(p, len);
	REQUIRE(k >= 0 && zp_class_stats(p, (unsigned)k, &cs) == 0);
	return cs.cache_limit_peak;
}

/* Two threads that take fresh buffers by turns get descriptors from
 * different slabs (zp_store.c, descriptor lanes): no descriptor of one lies
 * within 128 bytes (a pair of lines that cores fetch together) of one of
 * the other's, so their gets and puts never write neighbouring lines.  With
 * one free list the turns interleaved the two threads' descriptors. */
#define TURNS 16
struct turns {
	zp_pool *pool;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int turn; /* whose get is next: 0 or 1 */
	zp_buf *got[2][TURNS];
};

struct turn_arg {
	struct turns *t;
	int me;
};

static void *take_turns(void *arg)
{
	struct turn_arg *a = arg;
	struct turns *t = a->t;
	for (int i = 0; i < TURNS; i++) {
		pthread_mutex_lock(&t->mu);
		while (t->turn != a->me)
			pthread_cond_wait(&t->cv, &t->mu);
		t->got[a->me][i] = zp_get(t->pool, 256);
		t->turn = 1 - a->me;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
	}
	return NULL;
}

static void test_descriptor_lanes(void)
{
	zp_config c = zp_test_config();
	struct turns t = {.pool = zp_pool_create(&c)};
	REQUIRE(t.pool != NULL);
	REQUIRE(pthread_mutex_init(&t.mu, NULL) == 0);
	REQUIRE(pthread_cond_init(&t.cv, NULL) == 0);
	pthread_t th[2];
	struct turn_arg a[2] = {{&t, 0}, {&t, 1}};
	for (int i = 0; i < 2; i++)
		REQUIRE(pthread_create(&th[i], NULL, take_turns, &a[i]) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	unsigned close = 0;
	for (int i = 0; i < TURNS; i++)
		for (int j = 0; j < TURNS; j++) {
			REQUIRE(t.got[0][i] != NULL && t.got[1][j] != NULL);
			uintptr_t x = (uintptr_t)t.got[0][i], y = (uintptr_t)t.got[1][j];
			if ((x > y ? x - y : y - x) < 128)
				close++;
		}
	CHECK_EQ(close, 0);
	for (int w = 0; w < 2; w++)
		for (int i = 0; i < TURNS; i++)
			CHECK_EQ(zp_put(t.pool, t.got[w][i]), 0);
	pthread_cond_destroy(&t.cv);
	pthread_mutex_destroy(&t.mu);
	zp_pool_destroy(t.pool);
}
#undef TURNS

/* The default cache adapts: a class gets capacity on first use, doubles it on
 * every overflow up to cache_bytes / size, and the thread's classes together
 * stay within cache_bytes.  (Here the budget is too small to lend the cache
 * more capacity: an eighth of it, 24 KiB, is less than cache_bytes; see
 * test_cache_borrow.) */
static void test_adaptive_cache(void)
{
	zp_config c = zp_test_config();
	c.cache_bytes = 64 << 10; /* 4 KiB class: 16 buffers; 8 KiB: 8; 64 KiB: 1 */
	c.max_idle_bytes = 192 << 10;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_buf *b[20];
	get_n(p, b, 20, 4096);
	put_n(p, b, 20);
	struct zp_stats st;
	zp_stats(p, &st);
	/* grew 4 -> 8 -> 16, then the 17th put drained the coldest 8 */
	CHECK_EQ(st.cached_buffers, 12);
	CHECK_EQ(st.idle_buffers, 8);
	get_n(p, b, 12, 4096);
	zp_stats(p, &st);
	CHECK_EQ(st.cache_hits, 12);
	CHECK_EQ(st.store_hits, 0);
	REQUIRE((b[12] = zp_get(p, 4096)) != NULL); /* a refill of 8 from the store */
	zp_stats(p, &st);
	CHECK_EQ(st.store_hits, 1);
	CHECK_EQ(st.refills, 1);
	CHECK_EQ(st.idle_buffers, 0);
	put_n(p, b, 13); /* 7 + 9 fill the class, the next put drains 8 */
	zp_stats(p, &st);
	CHECK_EQ(st.cached_buffers, 12);
	CHECK_EQ(st.idle_buffers, 8);
	/* The 4 KiB class holds all of cache_bytes: the 8 KiB class takes half
	 * of it on first use (4 KiB: 16 -> 8 buffers, its 4 coldest go to the
	 * store) and gets 4 buffers; it cannot grow to 8, because no class
	 * holds more than it would then (its overflow drains 2). */
	get_n(p, b, 6, 8192);
	put_n(p, b, 6);
	zp_stats(p, &st);
	CHECK_EQ(st.cached_buffers, 8 + 4);
	CHECK_EQ(st.idle_buffers, 8 + 4 + 2);
	/* Spent again: the 2 KiB class takes from the first class that holds
	 * the most (4 KiB and 8 KiB hold 32 KiB each; 4 KiB: 8 -> 4 buffers). */
	uint64_t idle = st.idle_buffers;
	REQUIRE((b[0] = zp_get(p, 2048)) != NULL);
	CHECK_EQ(zp_put(p, b[0]), 0);
	zp_stats(p, &st);
	CHECK_EQ(st.cached_buffers, 4 + 4 + 1);
	CHECK_EQ(st.idle_buffers, idle + 4);
	get_n(p, b, 4, 4096); /* the 4 KiB class keeps its hottest four */
	zp_stats(p, &st);
	CHECK_EQ(st.cache_hits, 12 + 4);
	put_n(p, b, 4);
	/* 64 KiB would fit cache_bytes alone, but no class holds more than
	 * the 64 KiB it wants, so it gets no room and is not cached. */
	REQUIRE((b[0] = zp_get(p, 65536)) != NULL);
	CHECK_EQ(zp_put(p, b[0]), 0);
	zp_stats(p, &st);
	CHECK_EQ(st.cached_buffers, 4 + 4 + 1);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.cached_buffers + st.idle_buffers, st.live_buffers);
	/* Hits are derived from the count (the hit ledger): the put that went
	 * past the cache to the store is no hit, nor were the drains. */
	CHECK_EQ(st.cache_hits, 12 + 4);
	CHECK_EQ(st.gets, st.cache_hits + st.store_hits + st.fresh);
	/* What the cache chose, per class: the most slots it ever gave, not
	 * what the class holds now (4 KiB went 4 -> 8 -> 16, then back to 4). */
	CHECK_EQ(class_limit_peak(p, 4096), 16);
	CHECK_EQ(class_limit_peak(p, 8192), 4);
	CHECK_EQ(class_limit_peak(p, 65536), 0);
	zp_pool_destroy(p);
	/* A fixed depth is what every cache gives every class. */
	zp_config fixed = c;
	fixed.cache_depth = 6;
	p = zp_pool_create(&fixed);
	REQUIRE(p != NULL);
	CHECK_EQ(class_limit_peak(p, 4096), 6);
	zp_pool_destroy(p);
	/* On a fresh thread cache, a class as large as cache_bytes is cached
	 * (one buffer); the next class up never is. */
	p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	REQUIRE((b[0] = zp_get(p, 65536)) != NULL);
	REQUIRE((b[1] = zp_get(p, 65536 + 1)) != NULL);
	CHECK_EQ(zp_put(p, b[0]), 0);
	CHECK_EQ(zp_put(p, b[1]), 0);
	zp_stats(p, &st);
	CHECK_EQ(st.cached_buffers, 1);
	CHECK_EQ(st.idle_buffers, 1);
	zp_pool_destroy(p);
	/* cache_bytes 0 turns caching off, as cache_depth 0 does. */
	c.cache_bytes = 0;
	p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	REQUIRE((b[0] = zp_get(p, 100)) != NULL);
	CHECK_EQ(zp_put(p, b[0]), 0);
	zp_stats(p, &st);
	CHECK_EQ(st.cached_buffers, 0);
	CHECK_EQ(st.idle_buffers, 1);
	zp_pool_destroy(p);
}

/* A thread whose working set outgrows cache_bytes borrows capacity from the
 * idle budget, cache_bytes at a time, up to 4 x cache_bytes per thread and an
 * eighth of max_idle_bytes for all threads together; it serves the working
 * set from its cache, and its exit returns both the buffers and the loan. */
#define CB_BYTES (64u << 10) /* cache_bytes: 16 buffers of 4 KiB */
#define CB_KEEP 64           /* 4 x 16: the most a 4 KiB class may hold */

struct cb_arg {
	zp_pool *p;
	pthread_barrier_t *hold; /* twice: the main thread looks, then lets it exit */
	uint64_t last_round_hits;
	int failures;
};

static void *cb_worker(void *arg)
{
	struct cb_arg *a = arg;
	zp_buf *b[CB_KEEP];
	struct zp_class_stats before, after;
	unsigned cls = (unsigned)zp_class_of(a->p, 4096);
	for (int round = 0; round < 12; round++) {
		if (round == 11 && zp_class_stats(a->p, cls, &before) != 0)
			a->failures++;
		for (int i = 0; i < CB_KEEP; i++)
			if ((b[i] = zp_get(a->p, 4096)) == NULL)
				a->failures++;
		for (int i = 0; i < CB_KEEP; i++)
			if (b[i] == NULL || zp_put(a->p, b[i]) != 0)
				a->failures++;
	}
	if (zp_class_stats(a->p, cls, &after) != 0)
		a->failures++;
	a->last_round_hits = after.cache_hits - before.cache_hits;
	pthread_barrier_wait(a->hold);
	pthread_barrier_wait(a->hold);
	return NULL;
}

static void test_cache_borrow(void)
{
	zp_config c = zp_test_config();
	c.cache_bytes = CB_BYTES;
	c.max_idle_bytes = 4u << 20; /* lends up to 512 KiB */
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	struct zp_stats st;
	/* One thread: it grows to 64 buffers (3 x 64 KiB borrowed), and its
	 * last round is served by its cache alone. */
	pthread_barrier_t hold;
	REQUIRE(pthread_barrier_init(&hold, NULL, 2) == 0);
	struct cb_arg a = {.p = p, .hold = &hold};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, cb_worker, &a) == 0);
	pthread_barrier_wait(&hold);
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK_EQ(a.failures, 0);
	CHECK_EQ(a.last_round_hits, CB_KEEP);
	CHECK_EQ(st.cached_buffers, CB_KEEP);
	CHECK_EQ(st.idle_buffers, 0);
	CHECK_EQ(st.cache_borrowed, 3 * CB_BYTES);
	pthread_barrier_wait(&hold);
	pthread_join(t, NULL);
	/* Its exit returned the buffers to the store and the loan. */
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK_EQ(st.cache_borrowed, 0);
	CHECK_EQ(st.cached_buffers, 0);
	CHECK_EQ(st.idle_buffers, CB_KEEP);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.gets, st.puts);
	zp_pool_destroy(p);

	/* Three threads at once under a budget that lends 128 KiB: together
	 * they borrow no more; what they hold idle stays within max_idle_bytes
	 * plus cache_bytes each; every buffer is accounted for. */
	c.max_idle_bytes = 1u << 20;
	p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	enum { N = 3 };
	pthread_barrier_t hold3;
	REQUIRE(pthread_barrier_init(&hold3, NULL, N + 1) == 0);
	struct cb_arg b[N];
	pthread_t ts[N];
	for (int i = 0; i < N; i++) {
		b[i] = (struct cb_arg){.p = p, .hold = &hold3};
		REQUIRE(pthread_create(&ts[i], NULL, cb_worker, &b[i]) == 0);
	}
	pthread_barrier_wait(&hold3);
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK(st.cache_borrowed <= c.max_idle_bytes / 8);
	CHECK(st.cache_borrowed > 0);
	CHECK(st.idle_bytes + st.cached_buffers * 4096 <= c.max_idle_bytes + N * CB_BYTES);
	CHECK_EQ(st.live_buffers, st.idle_buffers + st.cached_buffers);
	pthread_barrier_wait(&hold3);
	for (int i = 0; i < N; i++) {
		pthread_join(ts[i], NULL);
		CHECK_EQ(b[i].failures, 0);
	}
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK_EQ(st.cache_borrowed, 0);
	CHECK_EQ(st.cached_buffers, 0);
	CHECK_EQ(st.gets, st.puts);
	CHECK_EQ(st.live_buffers, st.idle_buffers);
	CHECK(st.idle_bytes <= c.max_idle_bytes);
	zp_pool_destroy(p);

	/* A pool destroyed while a thread's cache holds a loan: destroy frees
	 * the cache and its buffers; the thread's later exit must not reach
	 * the pool (ASan and memcheck watch). */
	c.max_idle_bytes = 4u << 20;
	p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	a = (struct cb_arg){.p = p, .hold = &hold};
	REQUIRE(pthread_create(&t, NULL, cb_worker, &a) == 0);
	pthread_barrier_wait(&hold);
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK_EQ(st.cache_borrowed, 3 * CB_BYTES);
	zp_pool_destroy(p);
	pthread_barrier_wait(&hold);
	pthread_join(t, NULL);
	CHECK_EQ(a.failures, 0);
	pthread_barrier_destroy(&hold);
	pthread_barrier_destroy(&hold3);
}

static void test_cache_refill_drain(void)
{
	/* depth 4, batch 2: the 5th put drains the 2 coldest */
	zp_pool *p = make(4, 32);
	zp_buf *b[8];
	get_n(p, b, 8, 200);
	put_n(p, b, 8);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.fresh, 8);
	CHECK_EQ(st.drains, 2);
	CHECK_EQ(st.idle_buffers, 4);
	CHECK_EQ(st.cached_buffers, 4);
	/* LIFO: the last put is the first get */
	zp_buf *x = zp_get(p, 200);
	CHECK(x == b[7]);
	CHECK_EQ(zp_put(p, x), 0);
	get_n(p, b, 8, 200);
	zp_stats(p, &st);
	CHECK_EQ(st.fresh, 8);
	CHECK_EQ(st.cache_hits, 1 + 4 + 2); /* a refill of 2 serves one get from the cache */
	CHECK_EQ(st.store_hits, 2);         /* two refills of 2 */
	CHECK_EQ(st.refills, 2);
	put_n(p, b, 8);
	zp_pool_destroy(p);
}

static void test_backend_path(void)
{
	zp_pool *p = make(0, 8);
	zp_buf *b[10];
	get_n(p, b, 10, 4096);
	put_n(p, b, 10);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.idle_buffers, 8);
	CHECK_EQ(st.evictions, 2);
	CHECK_EQ(st.live_buffers, 8);
	CHECK_EQ(st.cache_hits, 0);
	CHECK_EQ(st.drains, 0); /* no cache, so no cache -> store transfers */
	get_n(p, b, 8, 4000);
	zp_stats(p, &st);
	CHECK_EQ(st.store_hits, 8);
	CHECK_EQ(st.idle_buffers, 0);
	put_n(p, b, 8);
	zp_pool_destroy(p);
}

/* Which buffers survive a full store depends on the policy. */
static void check_policy(zp_evict_policy pol)
{
	zp_config c = zp_test_config();
	c.cache_depth = 0;
	c.max_per_class = 2;
	c.shards = 1;
	c.evict = pol;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_buf *b[3];
	get_n(p, b, 3, 100);
	unsigned char *data[3] = {b[0]->data, b[1]->data, b[2]->data};
	put_n(p, b, 3);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.evictions, 1);
	CHECK_EQ(st.idle_buffers, 2);
	zp_buf *x = zp_get(p, 100), *y = zp_get(p, 100);
	REQUIRE(x != NULL && y != NULL);
	/* drop-newest keeps the first two; drop-coldest the last two */
	if (pol == ZP_EVICT_DROP_NEWEST) {
		CHECK(x->data == data[1] && y->data == data[0]);
	} else if (strcmp(zp_test_backend, "locked") == 0) {
		CHECK(x->data == data[2] && y->data == data[1]);
	}
	zp_put(p, x);
	zp_put(p, y);
	zp_pool_destroy(p);
}

/* Drop-coldest still evicts the coldest when the class bound is smaller
 * than the shard count (most shards hold none of the class).  Run on a new
 * thread: its shard hint is not 0, so its home shard has no room. */
static void *coldest_few_slots(void *arg)
{
	(void)arg;
	zp_config c = zp_test_config();
	c.cache_depth = 0;
	c.max_per_class = 1;
	c.shards = 8;
	c.evict = ZP_EVICT_DROP_COLDEST;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_buf *a = zp_get(p, 100), *b = zp_get(p, 100);
	REQUIRE(a != NULL && b != NULL);
	unsigned char *bd = b->data;
	CHECK_EQ(zp_put(p, a), 0);
	CHECK_EQ(zp_put(p, b), 0); /* evicts a, the coldest */
	zp_buf *x = zp_get(p, 100);
	REQUIRE(x != NULL);
	if (strcmp(zp_test_backend, "locked") == 0)
		CHECK(x->data == bd);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.evictions, 1);
	CHECK_EQ(zp_put(p, x), 0);
	zp_pool_destroy(p);
	return NULL;
}

static void test_eviction_policies(void)
{
	check_policy(ZP_EVICT_DROP_NEWEST);
	check_policy(ZP_EVICT_DROP_COLDEST);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, coldest_few_slots, NULL) == 0);
	pthread_join(t, NULL);
}

static void test_idle_budget(void)
{
	zp_config c = zp_test_config();
	c.cache_depth = 0;
	c.max_per_class = 100;
	c.max_idle_bytes = 10 * 4096;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	/* each idle buffer costs the budget its charge: its page-arena slot,
	 * its descriptor and its place in the store, more than its 4096 */
	uint64_t charge = _zp_test_class_charge(p, 4096);
	CHECK(charge > 4096 && charge < 4096 + 512);
	uint64_t fit = c.max_idle_bytes / charge; /* 9 */
	zp_buf *b[20];
	get_n(p, b, 20, 4096);
	put_n(p, b, 20);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.idle_buffers, fit);
	CHECK(st.idle_bytes <= c.max_idle_bytes);
	CHECK_EQ(st.discards, 20 - fit);
	CHECK_EQ(st.live_buffers, fit);
	CHECK_EQ(zp_preallocate(p, 5, 4096), 0); /* budget full */
	zp_pool_destroy(p);

	/* with thread caches, memory held stays under budget + the caches */
	c.cache_depth = 4;
	c.max_idle_bytes = 8 * 1024;
	p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 20; i++)
			REQUIRE((b[i] = zp_get(p, 1024 + 64 * (i % 4))) != NULL);
		for (int i = 0; i < 20; i++)
			CHECK_EQ(zp_put(p, b[i]), 0);
		zp_stats(p, &st);
		CHECK(st.idle_bytes <= c.max_idle_bytes);
		CHECK(st.live_bytes <= c.max_idle_bytes + 4 * 4 * 1280);
	}
	zp_pool_destroy(p);
}

/* Several threads give and take several classes under a small budget: the
 * store never holds more than max_idle_bytes (each class's budget share is
 * reserved in chunks, zp_store.h), the gauges add up when quiescent, and a
 * class can use budget that other classes reserved and left unused. */
#define SB_THREADS 4
#define SB_BUDGET (16 * 1024)
static const size_t sb_sizes[] = {1024, 1536, 2048, 4096};

struct sb_arg {
	zp_pool *p;
	const size_t *sizes; /* [4] */
	unsigned seed;
	int failures; /* the worker's own: CHECK is not thread-safe */
};

static void *sb_worker(void *arg)
{
	struct sb_arg *a = arg;
	unsigned x = a->seed;
	long rounds = (long)(2000 * zp_test_scale);
	for (long r = 0; r < rounds; r++) {
		zp_buf *b[12];
		unsigned n = 1 + (x >> 8) % 12;
		for (unsigned i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			b[i] = zp_get(a->p, a->sizes[(x >> 16) % 4]);
			if (b[i] == NULL) {
				a->failures++;
				n = i;
				break;
			}
		}
		for (unsigned i = 0; i < n; i++)
			if (zp_put(a->p, b[i]) != 0)
				a->failures++;
	}
	return NULL;
}

static uint64_t sb_class_idle_bytes(zp_pool *p, const struct zp_stats *st)
{
	uint64_t sum = 0;
	for (unsigned k = 0; k < st->classes; k++) {
		struct zp_class_stats cs;
		REQUIRE(zp_class_stats(p, k, &cs) == 0);
		sum += cs.idle_buffers * cs.size;
	}
	return sum;
}

/* Run SB_THREADS sb_workers on p over sizes[4]; meanwhile call poll(p,
 * budget) 200 times (zp_stats racing the workers); join and check them. */
static void sb_run(zp_pool *p, const size_t *sizes, unsigned seed,
		   void (*poll)(zp_pool *p, uint64_t budget), uint64_t budget)
{
	pthread_t t[SB_THREADS];
	struct sb_arg a[SB_THREADS];
	for (int i = 0; i < SB_THREADS; i++) {
		a[i] = (struct sb_arg){.p = p, .sizes = sizes, .seed = seed + 31u * (unsigned)i};
		REQUIRE(pthread_create(&t[i], NULL, sb_worker, &a[i]) == 0);
	}
	for (int i = 0; i < 200; i++)
		poll(p, budget);
	for (int i = 0; i < SB_THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(a[i].failures, 0);
	}
}

static void sb_poll_idle(zp_pool *p, uint64_t budget)
{
	struct zp_stats st;
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK(st.idle_bytes <= budget);
	for (unsigned k = 0; k < st.classes; k++) {
		struct zp_class_stats cs;
		REQUIRE(zp_class_stats(p, k, &cs) == 0);
		CHECK(cs.idle_buffers * cs.size <= budget);
	}
}

static void test_idle_budget_threads(void)
{
	zp_config c = zp_test_config();
	c.cache_depth = 4;
	c.batch = 2;
	c.max_per_class = 256;
	c.max_idle_bytes = SB_BUDGET;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	sb_run(p, sb_sizes, 7u, sb_poll_idle, c.max_idle_bytes);
	struct zp_stats st;

	/* quiescent: every worker's cache went back to the store */
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK_EQ(st.gets, st.puts + st.outstanding);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.cached_buffers, 0);
	CHECK_EQ(st.live_buffers, st.idle_buffers + st.cached_buffers + st.outstanding);
	CHECK_EQ(st.idle_bytes, sb_class_idle_bytes(p, &st));
	CHECK(sb_class_idle_bytes(p, &st) <= c.max_idle_bytes);
	CHECK_EQ(st.live_bytes, st.idle_bytes);
	CHECK(st.discards > 0); /* the budget was in force */

	/* empty store: one class gets the whole budget back, even though the
	 * other classes still hold some of it reserved */
	zp_trim(p);
	zp_buf *b[40];
	get_n(p, b, 40, 4096);
	put_n(p, b, 40);
	REQUIRE(zp_stats(p, &st) == 0);
	uint64_t fit = SB_BUDGET / _zp_test_class_charge(p, 4096); /* 3 */
	CHECK_EQ(st.idle_bytes, fit * 4096);
	CHECK_EQ(st.idle_buffers, fit);
	CHECK_EQ(st.live_buffers, st.idle_buffers + st.cached_buffers);
	zp_pool_destroy(p);
}

/* Mapped buffers (64 KiB and up) that max_idle_bytes refuses keep their
 * mappings with their pages given back, up to another max_idle_bytes of
 * them; later gets of the class reuse them before allocating; the gauges
 * add up; trim and destroy free them; pools that lock or prefault their
 * pages free refused buffers as before. */
#define RL_SIZE ((size_t)64 << 10)
static void check_conserved(zp_pool *p, struct zp_stats *st)
{
	REQUIRE(zp_stats(p, st) == 0);
	CHECK_EQ(st->live_buffers,
		 st->idle_buffers + st->released_buffers + st->cached_buffers + st->outstanding);
	CHECK_EQ(st->released_bytes, st->released_buffers * RL_SIZE);
}

/* What an idle buffer of `size` costs max_idle_bytes in a pool of *c. */
static uint64_t charge_of(const zp_config *c, size_t size)
{
	zp_pool *p = zp_pool_create(c);
	REQUIRE(p != NULL);
	uint64_t charge = _zp_test_class_charge(p, size);
	zp_pool_destroy(p);
	return charge;
}

/* A pool of *c: get n buffers of len, put them back, check the released
 * and live gauges, destroy the pool with whatever it holds. */
static void released_cycle(const zp_config *c, int n, size_t len, uint64_t released, uint64_t live)
{
	zp_pool *p = zp_pool_create(c);
	REQUIRE(p != NULL);
	zp_buf *b[16];
	REQUIRE(n <= 16);
	get_n(p, b, n, len);
	put_n(p, b, n);
	struct zp_stats st;
	check_conserved(p, &st);
	CHECK_EQ(st.released_buffers, released);
	CHECK_EQ(st.live_buffers, live);
	zp_pool_destroy(p);
}

static void test_released(void)
{
	zp_config c = zp_test_config();
	c.cache_depth = 0;
	/* room for 4 idle buffers, and for 4 released ones (their capacity) */
	c.max_idle_bytes = 4 * charge_of(&c, RL_SIZE);
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	zp_buf *b[12];
	get_n(p, b, 12, RL_SIZE);
	for (int i = 0; i < 12; i++)
		memset(b[i]->data, 0xab, RL_SIZE);
	put_n(p, b, 12);
	struct zp_stats st;
	check_conserved(p, &st);
	CHECK_EQ(st.idle_buffers, 4);
	CHECK_EQ(st.released_buffers, 4); /* as many as max_idle_bytes ... */
	CHECK_EQ(st.discards, 8);
	CHECK_EQ(st.live_buffers, 8); /* ... and the other 4 freed */
	CHECK_EQ(st.fresh, 12);

	get_n(p, b, 8, RL_SIZE); /* 4 idle, then 4 released: nothing fresh */
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(b[i]->cap, RL_SIZE);
		memset(b[i]->data, i, RL_SIZE); /* the released pages fault in again */
		CHECK_EQ(b[i]->data[RL_SIZE - 1], (unsigned char)i);
	}
	check_conserved(p, &st);
	CHECK_EQ(st.fresh, 12);
	CHECK_EQ(st.store_hits, 8);
	CHECK_EQ(st.released_buffers, 0);
	CHECK_EQ(st.outstanding, 8);
	CHECK_EQ(zp_put(p, b[0]), 0);
	CHECK_EQ(zp_put(p, b[0]), -1); /* a released buffer is idle: a second put is refused */
	CHECK_EQ(errno, EALREADY);
	put_n(p, b + 1, 7);
	check_conserved(p, &st);
	CHECK_EQ(st.idle_buffers, 4);
	CHECK_EQ(st.released_buffers, 4);
	CHECK_EQ(zp_trim(p), 8 * RL_SIZE); /* released buffers are freed too */
	check_conserved(p, &st);
	CHECK_EQ(st.live_buffers, 0);
	CHECK_EQ(st.released_bytes, 0);
	zp_pool_destroy(p);

	/* destroy frees what is released (ASan, memcheck) */
	released_cycle(&c, 8, RL_SIZE, 4, 8);
	/* pages locked or prefaulted by request: refused buffers are freed */
	c.flags = ZP_F_PREFAULT;
	released_cycle(&c, 8, RL_SIZE, 0, 4);
	/* below 64 KiB buffers are the page arena's: freed */
	c.flags = 0;
	released_cycle(&c, 12, RL_SIZE / 2, 0, c.max_idle_bytes / charge_of(&c, RL_SIZE / 2));
}

/* Released buffers while threads cycle mapped buffers of four classes
 * under a small budget: releases and reuses race with each other, with
 * thread exit and with zp_stats (the TSan, helgrind and DRD gates run
 * this); the released capacity never passes max_idle_bytes, and at rest
 * every buffer is idle, released or freed. */
static void rl_poll(zp_pool *p, uint64_t budget)
{
	struct zp_stats st;
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK(st.idle_bytes <= budget);
	CHECK(st.released_bytes <= budget);
}

static void test_released_threads(void)
{
	static const size_t sizes[] = {RL_SIZE, RL_SIZE + RL_SIZE / 2, 2 * RL_SIZE, 4 * RL_SIZE};
	zp_config c = zp_test_config();
	c.cache_depth = 4;
	c.batch = 2;
	/* room for 8 idle buffers of RL_SIZE, and for 8 released ones */
	c.max_idle_bytes = 8 * charge_of(&c, RL_SIZE);
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	sb_run(p, sizes, 11u, rl_poll, c.max_idle_bytes);
	struct zp_stats st;
	REQUIRE(zp_stats(p, &st) == 0);
	CHECK_EQ(st.outstanding, 0);
	CHECK_EQ(st.cached_buffers, 0);
	CHECK_EQ(st.live_buffers, st.idle_buffers + st.released_buffers);
	CHECK_EQ(st.live_bytes, st.idle_bytes + st.released_bytes);
	CHECK(st.released_bytes <= c.max_idle_bytes);
	CHECK(st.discards > 0); /* the budget was in force */

	/* at rest, from empty: a full budget idle, another one released */
	zp_trim(p);
	zp_buf *b[20];
	get_n(p, b, 20, RL_SIZE);
	put_n(p, b, 20);
	check_conserved(p, &st);
	CHECK_EQ(st.idle_buffers, 8);
	CHECK_EQ(st.released_buffers, 8);
	CHECK_EQ(st.live_buffers, 16 + st.cached_buffers); /* the rest was freed */
	CHECK(st.cached_buffers <= 4);
	zp_pool_destroy(p);
}

static void test_preallocate(void)
{
	zp_pool *p = make(4, 16);
	CHECK_EQ(zp_preallocate(p, 10, 5000), 10);
	CHECK_EQ(zp_preallocate(p, 10, 5000), 6); /* max_per_class */
	CHECK_ERR(zp_preallocate(p, 1, ((size_t)1 << 30) + 1), EINVAL);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.idle_buffers, 16);
	CHECK_EQ(st.live_buffers, 16);
	CHECK_EQ(st.drains, 0); /* preallocation is not a drain */
	zp_buf *b = zp_get(p, 5000);
	REQUIRE(b != NULL);
	zp_stats(p, &st);
	CHECK_EQ(st.fresh, 0);
	CHECK_EQ(st.store_hits, 1);
	CHECK_EQ(zp_put(p, b), 0);
	zp_pool_destroy(p);

	zp_config c = zp_test_config();
	c.flags = ZP_F_PREFAULT;
	p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	CHECK_EQ(zp_preallocate(p, 2, 1 << 20), 2);
	zp_pool_destroy(p);
}

static void test_trim(void)
{
	zp_pool *p = make(4, 32);
	zp_buf *b[12];
	get_n(p, b, 12, 1000);
	size_t cap = b[0]->cap;
	put_n(p, b, 12);
	CHECK_EQ(zp_trim(p), 12 * cap);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.live_buffers, 0);
	CHECK_EQ(st.idle_buffers, 0);
	CHECK_EQ(st.idle_bytes, 0);
	CHECK_EQ(st.trimmed, 12);
	CHECK_EQ(zp_trim(p), 0);
	zp_buf *x = zp_get(p, 1000); /* still usable */
	REQUIRE(x != NULL);
	CHECK_EQ(zp_put(p, x), 0);
	zp_pool_destroy(p);
}

static void test_zero_on_get(void)
{
	zp_config c = zp_test_config();
	c.flags = ZP_F_ZERO_ON_GET;
	zp_pool *p = zp_pool_create(&c);
	REQUIRE(p != NULL);
	for (int round = 0; round < 3; round++) {
		zp_buf *b = zp_get(p, 3000);
		REQUIRE(b != NULL);
		for (size_t i = 0; i < b->len; i++)
			if (b->data[i] != 0) {
				CHECK(b->data[i] == 0);
				break;
			}
		memset(b->data, 0xee, b->cap);
		CHECK_EQ(zp_put(p, b), 0);
	}
	zp_pool_destroy(p);
}

static void test_cache_handle(void)
{
	zp_pool *p = make(8, 32);
	zp_cache *c = zp_thread_cache(p);
	REQUIRE(c != NULL);
	CHECK(zp_thread_cache(p) == c);
	zp_buf *b = zp_cache_get(c, 512);
	REQUIRE(b != NULL);
	CHECK_EQ(b->len, 512);
	CHECK_EQ(zp_cache_put(c, b), 0);
	CHECK_ERR(zp_cache_put(c, b), EALREADY);
	CHECK_ERR(zp_cache_put(c, NULL), EINVAL);
	/* interchangeable with zp_get/zp_put */
	zp_buf *x = zp_get(p, 500);
	CHECK(x == b);
	CHECK_EQ(zp_cache_put(c, x), 0);
	zp_buf *o = zp_cache_get(c, ((size_t)1 << 30) + 5);
	REQUIRE(o != NULL);
	CHECK_EQ(zp_put(p, o), 0);
	for (int i = 0; i < 1000; i++) {
		zp_buf *y = zp_cache_get(c, (size_t)i * 37);
		REQUIRE(y != NULL);
		CHECK_EQ(zp_cache_put(c, y), 0);
	}
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.gets, 1003);
	CHECK_EQ(st.puts, 1003);
	CHECK_EQ(st.oversize, 1);
	zp_pool_destroy(p);

	/* depth 0: a handle still works, every call goes to the store */
	p = make(0, 32);
	c = zp_thread_cache(p);
	REQUIRE(c != NULL);
	b = zp_cache_get(c, 100);
	REQUIRE(b != NULL);
	CHECK_EQ(zp_cache_put(c, b), 0);
	zp_stats(p, &st);
	CHECK_EQ(st.idle_buffers, 1);
	zp_pool_destroy(p);
}

static void test_many_pools_one_thread(void)
{
	/* more pools than thread-cache slots: the rest run uncached */
	enum { N = ZP_MAX_POOLS + 20 };
	static zp_pool *p[N];
	static zp_buf *b[N];
	for (int i = 0; i < N; i++) {
		zp_config c = zp_test_config();
		c.max_size = 1 << 20;
		REQUIRE((p[i] = zp_pool_create(&c)) != NULL);
	}
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			REQUIRE((b[i] = zp_get(p[i], 100 + (size_t)i)) != NULL);
			b[i]->data[0] = (unsigned char)i;
		}
		for (int i = 0; i < N; i++) {
			CHECK_EQ(b[i]->data[0], (unsigned char)i);
			CHECK_EQ(zp_put(p[i], b[i]), 0);
			CHECK_ERR(zp_put(p[(i + 1) % N], b[i]), EINVAL);
		}
	}
	for (int i = 0; i < N; i++) {
		struct zp_stats st;
		zp_stats(p[i], &st);
		CHECK_EQ(st.gets, 3);
		CHECK_EQ(st.puts, 3);
		CHECK_EQ(st.live_buffers, 1); /* each pool reused its own buffer */
		zp_pool_destroy(p[i]);
	}
}

static void test_destroy_with_outstanding(void)
{
	zp_pool *p = make(4, 32);
	for (int i = 0; i < 10; i++)
		REQUIRE(zp_get(p, 100 * (size_t)i + 1) != NULL);
	REQUIRE(zp_get(p, ((size_t)1 << 30) + 1) != NULL);
	struct zp_stats st;
	zp_stats(p, &st);
	CHECK_EQ(st.outstanding, 11);
	zp_pool_destroy(p); /* frees them: memcheck reports a leak otherwise */
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"get_put_basic", test_get_put_basic},
	    {"alignment_and_sizes", test_alignment_and_sizes},
	    {"len_zero", test_len_zero},
	    {"bad_puts", test_bad_puts},
	    {"refused_calls_attach_nothing", test_refused_calls_attach_nothing},
	    {"copied_descriptor_refused", test_copied_descriptor_refused},
	    {"oversize", test_oversize},
	    {"huge_lengths", test_huge_lengths},
	    {"classes", test_classes},
	    {"bad_configs", test_bad_configs},
	    {"defaults", test_defaults},
	    {"adaptive_cache", test_adaptive_cache},
	    {"descriptor_lanes", test_descriptor_lanes},
	    {"cache_borrow", test_cache_borrow},
	    {"cache_refill_drain", test_cache_refill_drain},
	    {"backend_path", test_backend_path},
	    {"eviction_policies", test_eviction_policies},
	    {"idle_budget", test_idle_budget},
	    {"idle_budget_threads", test_idle_budget_threads},
	    {"released", test_released},
	    {"released_threads", test_released_threads},
	    {"preallocate", test_preallocate},
	    {"trim", test_trim},
	    {"zero_on_get", test_zero_on_get},
	    {"cache_handle", test_cache_handle},
	    {"many_pools_one_thread", test_many_pools_one_thread},
	    {"destroy_with_outstanding", test_destroy_with_outstanding},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
