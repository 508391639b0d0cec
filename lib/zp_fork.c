/*
 * zp_fork.c - fork() while other threads use pools.
 *
 * pthread_atfork handlers, installed when the first pool is created: the
 * prepare handler takes every lock of the library in the documented order
 * (_zp_tcache_lock, then each live pool's decay locks, its descriptor lock, then its
 * store's locks through the backend's fork_prepare, then the page arena's), so that no other
 * thread is inside any of them when the process is copied; the parent and
 * child handlers release them.  The child thus inherits every pool in a
 * consistent state and may use and destroy it.  What other threads of the
 * parent held or cached stays allocated in the child until the pool is
 * destroyed (their caches are still on the pool's list, and destroy frees
 * every buffer through the descriptor slabs).
 *
 * Lock order, the same everywhere in the library: _zp_tcache_lock, then a
 * pool's decay_lock (a decay step) and its maintenance thread's lock, then
 * its desc_lock, then a store's locks, then the page arena's (retiring a cache at thread exit
 * holds the first and frees buffers, taking the second; a give under the
 * first takes a shard lock).  A descriptor lock is never held while
 * another library lock is taken.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "zp_arena.h"
#include "zp_decay.h"
#include "zp_fork.h"

static LIST_HEAD(, zp_pool) live_pools; /* under _zp_tcache_lock */
static bool handlers_installed;

static void prepare(void)
{
	pthread_mutex_lock(&_zp_tcache_lock);
	zp_pool *p;
	LIST_FOREACH(p, &live_pools, entry.live)
	{
		_zp_decay_fork_prepare(p);
		_zp_maintain_fork_prepare(p);
		pthread_mutex_lock(&p->desc.lock);
		if (p->ops->fork_prepare != NULL)
			p->ops->fork_prepare(p->store);
	}
	_zp_arena_fork_prepare();
}

/* After the fork, in the parent or in the child: the child has one
 * thread, the one that forked and holds every lock, so releasing them is
 * enough there too (the backends reinitialise what they must; a pool's
 * maintenance thread is not copied, and its decay then runs from slow
 * paths and zp_maintain). */
static void release_all(bool in_child)
{
	_zp_arena_fork_release();
	zp_pool *p;
	LIST_FOREACH(p, &live_pools, entry.live)
	{
		void (*hook)(void *) = in_child ? p->ops->fork_child : p->ops->fork_parent;
		if (hook != NULL)
			hook(p->store);
		pthread_mutex_unlock(&p->desc.lock);
		_zp_maintain_fork_release(p, in_child);
		_zp_decay_fork_release(p);
	}
	pthread_mutex_unlock(&_zp_tcache_lock);
}

static void parent(void)
{
	release_all(false);
}

static void child(void)
{
	release_all(true);
}

int _zp_fork_track(zp_pool *pool)
{
	pthread_mutex_lock(&_zp_tcache_lock);
	if (!handlers_installed) {
		if (pthread_atfork(prepare, parent, child) != 0) {
			pthread_mutex_unlock(&_zp_tcache_lock);
			errno = ENOMEM;
			return -1;
		}
		handlers_installed = true;
	}
	LIST_INSERT_HEAD(&live_pools, pool, entry.live);
	pthread_mutex_unlock(&_zp_tcache_lock);
	return 0;
}

void _zp_fork_untrack(zp_pool *pool)
{
	pthread_mutex_lock(&_zp_tcache_lock);
	LIST_REMOVE(pool, entry.live);
	pthread_mutex_unlock(&_zp_tcache_lock);
}
