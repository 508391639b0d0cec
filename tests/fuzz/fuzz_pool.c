/*
 * fuzz_pool.c - libFuzzer harness: random sequences of pool operations
 * checked against a simple model.
 *
 * The input is a byte stream of operations.  The model tracks, for up to
 * three pools, the buffers the program holds and what each holder wrote;
 * after every step the pool's counters must match the model (gets - puts ==
 * held), held buffers keep their bytes, refused calls fail with the
 * documented errno and change nothing.  Byte 0 picks the backend and
 * whether a second thread runs its own op stream on pool 0 at the same
 * time (the multithreaded mode), exchanging buffers through a mailbox.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeropool.h"

#define POOLS 3
#define HELD 32

struct held {
	zp_buf *b;
	unsigned char tag;
};

struct model {
	zp_pool *pool[POOLS];
	struct held held[POOLS][HELD];
	unsigned nheld[POOLS];
};

struct cursor {
	const uint8_t *p;
	size_t n;
};

static unsigned next(struct cursor *c)
{
	if (c->n == 0)
		return 0;
	c->n--;
	return *c->p++;
}

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_pool: model violated: %s\n", what);
	abort();
}

#define ASSERT(c)                                                                                  \
	do {                                                                                       \
		if (!(c))                                                                          \
			fail(#c);                                                                  \
	} while (0)

static const char *backend_of(unsigned byte)
{
	size_t n = zp_backend_count();
	return zp_backend_at(byte % n);
}

static zp_pool *create(struct cursor *c, const char *backend)
{
	zp_config cfg;
	zp_config_init(&cfg);
	cfg.backend = backend;
	/* 0-8: a fixed depth; 9: the adaptive cache, with a byte capacity small
	 * enough that classes run out of room. */
	unsigned depth = next(c) % 10;
	cfg.cache_depth = depth < 9 ? depth : ZP_CACHE_DEPTH_AUTO;
	cfg.cache_bytes = depth < 9 ? cfg.cache_bytes : (size_t)(next(c) % 8) << 12;
	cfg.batch = depth == 9 ? next(c) % 5 : depth ? next(c) % (depth + 1) : 0;
	cfg.max_per_class = 1 + next(c) % 16;
	cfg.max_size = (size_t)1 << (10 + next(c) % 12);
	cfg.max_idle_bytes = (size_t)(next(c) % 8) << 14;
	cfg.evict = next(c) % 2 ? ZP_EVICT_DROP_NEWEST : ZP_EVICT_DROP_COLDEST;
	cfg.flags = next(c) % 2 ? ZP_F_ZERO_ON_GET : 0;
	zp_pool *p = zp_pool_create(&cfg);
	ASSERT(p != NULL);
	return p;
}

static size_t length(struct cursor *c)
{
	unsigned a = next(c), b = next(c);
	return ((size_t)a << (b % 12)) + b; /* 0 .. a few MiB, often oversize */
}

static void check_counts(struct model *m, unsigned i, unsigned extra)
{
	struct zp_stats st;
	ASSERT(zp_stats(m->pool[i], &st) == 0);
	ASSERT(st.gets - st.puts == st.outstanding);
	if (extra == 0)
		ASSERT(st.outstanding == m->nheld[i]);
	else
		ASSERT(st.outstanding >= m->nheld[i]);
}

static void verify(const struct held *h)
{
	if (h->b->len > 0)
		ASSERT(h->b->data[0] == h->tag && h->b->data[h->b->len - 1] == h->tag);
}

static void drop_all(struct model *m, unsigned i)
{
	for (unsigned k = 0; k < m->nheld[i]; k++) {
		verify(&m->held[i][k]);
		ASSERT(zp_put(m->pool[i], m->held[i][k].b) == 0);
	}
	m->nheld[i] = 0;
}

/* One operation on pool i; `shared` means another thread uses pool 0. */
static void step(struct model *m, struct cursor *c, const char *backend, unsigned shared)
{
	unsigned op = next(c) % 10, i = next(c) % POOLS;
	if (m->pool[i] == NULL) {
		m->pool[i] = create(c, backend);
		return;
	}
	zp_pool *p = m->pool[i];
	switch (op) {
	case 0:
	case 1:
	case 2: { /* get */
		if (m->nheld[i] == HELD)
			break;
		size_t len = length(c);
		zp_buf *b = zp_get(p, len);
		ASSERT(b != NULL && b->len == len && b->cap >= len);
		struct held h = {b, (unsigned char)next(c)};
		if (len > 0) {
			b->data[0] = h.tag;
			b->data[len - 1] = h.tag;
		}
		m->held[i][m->nheld[i]++] = h;
		break;
	}
	case 3:
	case 4: { /* put, then a refused second put */
		if (m->nheld[i] == 0)
			break;
		unsigned k = next(c) % m->nheld[i];
		struct held h = m->held[i][k];
		verify(&h);
		ASSERT(zp_put(p, h.b) == 0);
		m->held[i][k] = m->held[i][--m->nheld[i]];
		/* A second put is refused, unless another thread may have got
		 * the buffer meanwhile (shared pool 0): then it would be that
		 * thread's buffer, and no pool can tell the two puts apart. */
		if (next(c) % 4 == 0 && !(i == 0 && shared)) {
			errno = 0;
			int rc = zp_put(p, h.b);
			/* pooled buffers: EALREADY; oversize ones were freed: EINVAL */
			ASSERT(rc == -1 && (errno == EALREADY || errno == EINVAL));
		}
		break;
	}
	case 5: { /* a put to the wrong pool is refused */
		unsigned j = (i + 1) % POOLS;
		if (m->nheld[i] == 0 || m->pool[j] == NULL)
			break;
		errno = 0;
		ASSERT(zp_put(m->pool[j], m->held[i][0].b) == -1 && errno == EINVAL);
		verify(&m->held[i][0]);
		break;
	}
	case 6:
		ASSERT(zp_trim(p) != (size_t)-1);
		break;
	case 7:
		/* sizes up to 1 KiB: every pool pools them (max_size >= 1 KiB) */
		ASSERT(zp_preallocate(p, next(c) % 4, length(c) % 1025) >= 0);
		break;
	case 8:
		if (i == 0 && shared)
			break; /* the other thread uses pool 0 */
		drop_all(m, i);
		check_counts(m, i, 0);
		zp_pool_destroy(p);
		m->pool[i] = NULL;
		break;
	default:
		check_counts(m, i, i == 0 ? shared : 0);
		break;
	}
}

struct side {
	zp_pool *pool;
	struct cursor c;
};

/* The second thread: gets and puts on pool 0 with its own held list. */
static void *side_thread(void *arg)
{
	struct side *s = arg;
	struct held held[HELD];
	unsigned n = 0;
	while (s->c.n > 0) {
		unsigned op = next(&s->c);
		if (op % 2 == 0 && n < HELD) {
			size_t len = length(&s->c);
			zp_buf *b = zp_get(s->pool, len);
			ASSERT(b != NULL && b->len == len);
			held[n] = (struct held){b, (unsigned char)op};
			if (len > 0) {
				b->data[0] = held[n].tag;
				b->data[len - 1] = held[n].tag;
			}
			n++;
		} else if (n > 0) {
			n--;
			verify(&held[n]);
			ASSERT(zp_put(s->pool, held[n].b) == 0);
		}
	}
	while (n > 0) {
		n--;
		verify(&held[n]);
		ASSERT(zp_put(s->pool, held[n].b) == 0);
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cursor c = {data, size};
	unsigned mode = next(&c);
	const char *backend = backend_of(mode >> 1);
	unsigned shared = mode & 1;
	struct model m;
	memset(&m, 0, sizeof m);
	m.pool[0] = create(&c, backend);
	pthread_t t;
	struct side s = {m.pool[0], {NULL, 0}};
	if (shared) { /* split the rest: the tail drives the other thread */
		size_t half = c.n / 2;
		s.c = (struct cursor){c.p + half, c.n - half};
		c.n = half;
		ASSERT(pthread_create(&t, NULL, side_thread, &s) == 0);
	}
	while (c.n > 0)
		step(&m, &c, backend, shared);
	if (shared)
		pthread_join(t, NULL);
	for (unsigned i = 0; i < POOLS; i++) {
		if (m.pool[i] == NULL)
			continue;
		drop_all(&m, i);
		check_counts(&m, i, 0);
		zp_pool_destroy(m.pool[i]);
	}
	return 0;
}
