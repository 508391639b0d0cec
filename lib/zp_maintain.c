/*
 * zp_maintain.c - the maintenance thread (zp_maintain.h).
 *
 * The thread sleeps in poll() on an eventfd for one decay tick, then runs a
 * decay step and the decay of idle caches; destroy writes to the eventfd
 * to wake it at once.  (Not a condition variable: helgrind reports glibc's
 * timed wait itself.)
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "zp_maintain.h"

struct _zp_maint {
	pthread_mutex_t lock; /* guards stop */
	int wake_fd;
	pthread_t thread;
	bool running; /* a thread to stop and join (false in a forked child) */
	bool stop;
};

static bool stopping(struct _zp_maint *m)
{
	pthread_mutex_lock(&m->lock);
	bool stop = m->stop;
	pthread_mutex_unlock(&m->lock);
	return stop;
}

static void *maintain(void *arg)
{
	zp_pool *pool = arg;
	struct _zp_maint *m = pool->entry.maint;
	uint64_t ms = (pool->decay.tick_ns + 999999u) / 1000000u;
	int timeout = ms > INT_MAX ? INT_MAX : (int)ms;
	for (;;) {
		struct pollfd pfd = {.fd = m->wake_fd, .events = POLLIN};
		(void)poll(&pfd, 1, timeout);
		if (stopping(m))
			break;
		(void)_zp_decay_run(pool);
		(void)_zp_tcache_decay_caches(pool, true);
	}
	if (pool->ops->thread_exit != NULL)
		pool->ops->thread_exit(pool->store);
	return NULL;
}

int _zp_maintain_start(zp_pool *pool)
{
	if (pool->decay.tick_ns == 0 || !(pool->cfg.flags & ZP_F_MAINTENANCE_THREAD))
		return 0;
	struct _zp_maint *m = _zp_meta_alloc(sizeof *m);
	if (m == NULL)
		return -1;
	pthread_mutex_init(&m->lock, NULL);
	pool->entry.maint = m;
	m->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (m->wake_fd < 0) {
		errno = EAGAIN;
		return -1;
	}
	/* Every signal blocked: signals meant for the application's threads
	 * must not land on ours. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&m->thread, NULL, maintain, pool);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = EAGAIN;
		return -1;
	}
	m->running = true;
	return 0;
}

void _zp_maintain_stop(zp_pool *pool)
{
	struct _zp_maint *m = pool->entry.maint;
	if (m == NULL)
		return;
	if (m->running) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_mutex_unlock(&m->lock);
		uint64_t one = 1;
		while (write(m->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
			;
		pthread_join(m->thread, NULL);
	}
	if (m->wake_fd >= 0)
		close(m->wake_fd);
	pthread_mutex_destroy(&m->lock);
	_zp_meta_free(m);
	pool->entry.maint = NULL;
}

void _zp_maintain_fork_prepare(zp_pool *pool)
{
	if (pool->entry.maint != NULL)
		pthread_mutex_lock(&pool->entry.maint->lock);
}

void _zp_maintain_fork_release(zp_pool *pool, bool in_child)
{
	struct _zp_maint *m = pool->entry.maint;
	if (m == NULL)
		return;
	if (in_child)
		m->running = false; /* threads do not survive fork */
	pthread_mutex_unlock(&m->lock);
}
