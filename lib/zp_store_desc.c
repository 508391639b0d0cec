/*
 * zp_store_desc.c - buffer descriptors and buffers' data: slabs of
 * descriptors in lanes, a fresh buffer (descriptor and data), freeing one.
 *
 * Descriptors live in slabs owned by the pool and are never freed before
 * it, so a stale or doubled zp_put() reads a descriptor that still exists
 * (and is refused), and lock-free stores may link through them safely.
 * The slabs and free lists are under pool->desc.lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_arena.h"
#include "zp_os.h"
#include "zp_poison.h"
#include "zp_store.h"

#define SLAB_DESCS 64

/* One descriptor per cache line: no false sharing between buffers. */
struct _zp_desc {
	zp_buf b;
} ZP_ALIGNED_CL;
_Static_assert(_Alignof(struct _zp_desc) > (_ZP_OWNER_IDLE | _ZP_OWNER_OVERSIZE),
	       "_ZP_OWNED leaves the low bits of the owner word for the states");

struct _zp_slab {
	struct _zp_slab *next;
	struct _zp_desc d[SLAB_DESCS];
};

#define SET_DATA(b, p) (*(unsigned char **)&(b)->data = (p))
#define SET_SIZE(field, v) (*(size_t *)&(field) = (v))

size_t _zp_store_desc_share(void)
{
	return sizeof(struct _zp_slab) / SLAB_DESCS;
}

/* Descriptors come in lanes (ZP_DESC_LANES, docs/design.md "Two busy
 * cores: descriptor lanes").  Every get and put writes its descriptor (the
 * owner word, the length), so two threads that took fresh descriptors from
 * one free list at the same time would write neighbouring lines on every
 * get and put.  Each slab belongs to one lane, a thread allocates from its
 * lane (its small id modulo ZP_DESC_LANES), and a freed descriptor goes
 * back to its slab's lane: threads of different lanes never write
 * neighbouring descriptors they got fresh.  The cost is at most a part-used
 * slab (4 KiB) per lane. */
static zp_buf *desc_alloc(zp_pool *pool, unsigned hint)
{
	unsigned lane = hint % ZP_DESC_LANES;
	pthread_mutex_lock(&pool->desc.lock);
	if (pool->desc.free[lane] == NULL) {
		struct _zp_slab *s = _zp_meta_alloc(sizeof *s);
		if (s == NULL) {
			pthread_mutex_unlock(&pool->desc.lock);
			return NULL;
		}
		s->next = pool->desc.slabs;
		pool->desc.slabs = s;
		for (int i = SLAB_DESCS - 1; i >= 0; i--) {
			s->d[i].b._zp_lane = lane;
			s->d[i].b._zp_link[0] = pool->desc.free[lane];
			pool->desc.free[lane] = &s->d[i].b;
		}
	}
	zp_buf *b = pool->desc.free[lane];
	pool->desc.free[lane] = b->_zp_link[0];
	pthread_mutex_unlock(&pool->desc.lock);
	b->_zp_link[0] = NULL;
	return b;
}

static void desc_free(zp_pool *pool, zp_buf *b)
{
	b->_zp_owner = 0; /* a later put of this descriptor is refused */
	pthread_mutex_lock(&pool->desc.lock);
	b->_zp_link[0] = pool->desc.free[b->_zp_lane];
	pool->desc.free[b->_zp_lane] = b;
	pthread_mutex_unlock(&pool->desc.lock);
}

static size_t oversize_cap(size_t len)
{
	size_t cap = (len + ZP_PAGE - 1) & ~(size_t)(ZP_PAGE - 1);
	return cap < len ? 0 : cap;
}

zp_buf *_zp_store_buf_new(zp_pool *pool, unsigned cls, size_t len, unsigned hint)
{
	size_t cap =
	    cls == _ZP_CLASS_OVERSIZE ? oversize_cap(len) : _zp_store_class_size(pool, cls);
	if (cap == 0) {
		errno = ENOMEM;
		return NULL;
	}
	zp_buf *b = desc_alloc(pool, hint);
	if (b == NULL)
		return NULL;
	unsigned char *data = _zp_os_alloc(cap, pool->cfg.flags);
	if (data == NULL) {
		desc_free(pool, b);
		errno = ENOMEM;
		return NULL;
	}
	SET_DATA(b, data);
	SET_SIZE(b->cap, cap);
	SET_SIZE(b->len, len);
	b->_zp_class = cls;
	b->_zp_rec = cls != _ZP_CLASS_OVERSIZE ? _ZP_CLASS_REC(cls) : 0;
	if (cls != _ZP_CLASS_OVERSIZE)
		zp_atomic_add_relaxed(&pool->sc[cls].live_buffers, 1);
	return b;
}

void _zp_store_buf_free(zp_pool *pool, zp_buf *b)
{
	if (b->_zp_class != _ZP_CLASS_OVERSIZE)
		zp_atomic_sub_relaxed(&pool->sc[b->_zp_class].live_buffers, 1);
	/* data NULL first: a child forked while this runs must not free it
	 * again when it destroys the pool (at worst it leaks it) */
	unsigned char *data = b->data;
	SET_DATA(b, NULL);
	_zp_os_free(data, b->cap);
	desc_free(pool, b);
}

void _zp_store_free_all_data(zp_pool *pool)
{
	/* Every buffer ever handed out has a descriptor in a slab: free the
	 * data of all that are not on the free list (idle, cached, held). */
	for (struct _zp_slab *s = pool->desc.slabs; s != NULL; s = s->next)
		for (int i = 0; i < SLAB_DESCS; i++) {
			zp_buf *b = &s->d[i].b;
			if (b->data != NULL)
				_zp_os_free(b->data, b->cap);
		}
	/* What the pool held leaves the RSS with it, not at the next purge. */
	(void)_zp_arena_purge();
}

void _zp_store_desc_fini(zp_pool *pool)
{
	struct _zp_slab *s = pool->desc.slabs;
	while (s != NULL) {
		struct _zp_slab *next = s->next;
		_zp_meta_free(s);
		s = next;
	}
	pool->desc.slabs = NULL;
	pthread_mutex_destroy(&pool->desc.lock);
}
