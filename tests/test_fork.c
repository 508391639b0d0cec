/*
 * test_fork.c - fork() while three threads use a pool (issue 12, item 4).
 *
 * Before the pthread_atfork handlers, a child that used the inherited pool
 * hung in 3 of 20 forks (a shard mutex or the descriptor lock held by a
 * thread that does not exist in the child), a child that destroyed it
 * double-freed (a parent thread was mid-free in zp_trim), and
 * lockfree-urcu's child hung in rcu_barrier almost always.  Here each
 * child uses the pool, trims it, destroys it and makes a new one; a child
 * that hangs is killed by its alarm and fails the test.
 *
 * fork_while_threads_are_in_the_store (issue 24, item 2): with no thread
 * cache every call is a store call, so forks land inside them.  liburcu's
 * memb flavour, used until then, left 1 child in 30 hung and 7 in 30
 * burning a core (the recreated call_rcu worker spinning in a grace period
 * that a dead parent thread's read-side section never let end); each child
 * here must use the pool, stay quiet through a sleep, and destroy it.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zp_test.h"

#define USERS 3
#define CHILD_ALARM_S 120 /* a child takes milliseconds natively */

struct users {
	zp_pool *pool;
	atomic_bool stop;
};

/* Gets and puts of several sizes, now and then a trim (which frees). */
static void *user(void *arg)
{
	struct users *u = arg;
	size_t sizes[] = {64, 4096, 70000, 1 << 20};
	zp_buf *held[8] = {0};
	for (unsigned i = 0; !atomic_load_explicit(&u->stop, memory_order_relaxed); i++) {
		unsigned k = i % 8;
		if (held[k] != NULL && zp_put(u->pool, held[k]) != 0)
			abort();
		held[k] = zp_get(u->pool, sizes[i % 4]);
		if (held[k] == NULL)
			abort();
		held[k]->data[0] = (unsigned char)i;
		if (i % 64 == 0) /* frees, so gets allocate: the descriptor lock */
			(void)zp_trim(u->pool);
	}
	for (unsigned k = 0; k < 8; k++)
		if (held[k] != NULL)
			(void)zp_put(u->pool, held[k]);
	return NULL;
}

/* In the child: everything a program may do with an inherited pool. */
static int child_main(zp_pool *p)
{
	alarm(CHILD_ALARM_S);
	zp_buf *b[16];
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 16; i++) {
			b[i] = zp_get(p, (size_t)64 << (i % 12));
			if (b[i] == NULL)
				return 1;
			b[i]->data[0] = 1;
		}
		for (int i = 0; i < 16; i++)
			if (zp_put(p, b[i]) != 0)
				return 2;
	}
	/* Past the thread cache: magazines through the store, and a trim that
	 * retires them (lockfree-urcu: callbacks pending at the destroy). */
	static zp_buf *many[1200];
	for (int round = 0; round < 6; round++) { /* > 32 magazines retired */
		for (int i = 0; i < 1200; i++)
			if ((many[i] = zp_get(p, 4096)) == NULL)
				return 7;
		for (int i = 0; i < 1200; i++)
			if (zp_put(p, many[i]) != 0)
				return 8;
	}
	struct zp_stats st;
	if (zp_stats(p, &st) != 0 || st.gets < st.puts)
		return 3;
	if (zp_trim(p) == (size_t)-1)
		return 4;
	zp_pool_destroy(p);
	zp_config c = zp_test_config();
	zp_pool *q = zp_pool_create(&c);
	if (q == NULL)
		return 5;
	zp_buf *x = zp_get(q, 100);
	if (x == NULL || zp_put(q, x) != 0)
		return 6;
	zp_pool_destroy(q);
	return 0;
}

/* USERS threads run user_fn on a pool of *c while this thread forks
 * `forks` times (scaled), `gap_us` apart; each child runs child_fn on the
 * inherited pool and must exit 0.  At the end the pool lent nothing out. */
static void fork_under_users(const zp_config *c, void *(*user_fn)(void *),
			     int (*child_fn)(zp_pool *), int forks, useconds_t gap_us)
{
	struct users u = {.pool = zp_pool_create(c)};
	REQUIRE(u.pool != NULL);
	pthread_t t[USERS];
	for (int i = 0; i < USERS; i++)
		REQUIRE(pthread_create(&t[i], NULL, user_fn, &u) == 0);
	forks = (int)(forks * zp_test_scale);
	if (forks < 3)
		forks = 3;
	int failed = 0;
	for (int f = 0; f < forks; f++) {
		usleep(gap_us); /* let the users run between forks */
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0)
			_exit(child_fn(u.pool));
		int status;
		REQUIRE(waitpid(pid, &status, 0) == pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "[%s] fork %d: child %s %d\n", zp_test_backend, f,
				WIFEXITED(status) ? "exited with" : "killed by signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			failed++;
		}
	}
	atomic_store(&u.stop, true);
	for (int i = 0; i < USERS; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(failed, 0);
	struct zp_stats st;
	CHECK_EQ(zp_stats(u.pool, &st), 0);
	CHECK_EQ(st.outstanding, 0);
	zp_pool_destroy(u.pool);
}

static void test_fork_while_threads_use_the_pool(void)
{
	zp_config c = zp_test_config();
	fork_under_users(&c, user, child_main, 20, 2000);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Store calls only (cache_depth 0): takes, gives, and past 32 retired
 * magazines per class a grace period asked for (lockfree-urcu). */
static int store_round(zp_pool *p)
{
	zp_buf *b[256]; /* per call: the users run it at once */
	for (int i = 0; i < 256; i++)
		if ((b[i] = zp_get(p, 4096)) == NULL)
			return 1;
	for (int i = 0; i < 256; i++)
		if (zp_put(p, b[i]) != 0)
			return 1;
	return 0;
}

#define QUIET_SLEEP_MS 300
#define QUIET_CPU_MS 50 /* a quiet child spends microseconds; a spinning thread, the sleep */

static int store_child_main(zp_pool *p)
{
	alarm(CHILD_ALARM_S);
	for (int round = 0; round < 8; round++)
		if (store_round(p) != 0)
			return 1;
	/* Nothing of the library may run while the child sleeps. */
	double before = cpu_seconds();
	nanosleep(&(struct timespec){.tv_nsec = QUIET_SLEEP_MS * 1000000L}, NULL);
	double spent_ms = (cpu_seconds() - before) * 1e3;
	if (spent_ms > QUIET_CPU_MS) {
		fprintf(stderr, "[%s] child: %.0f ms of CPU in a %d ms sleep\n", zp_test_backend,
			spent_ms, QUIET_SLEEP_MS);
		return 2;
	}
	zp_pool_destroy(p);
	zp_config c = zp_test_config();
	c.cache_depth = 0;
	zp_pool *q = zp_pool_create(&c);
	if (q == NULL || store_round(q) != 0)
		return 3;
	zp_pool_destroy(q);
	return 0;
}

static void *store_user(void *arg)
{
	struct users *u = arg;
	while (!atomic_load_explicit(&u->stop, memory_order_relaxed))
		if (store_round(u->pool) != 0)
			abort();
	return NULL;
}

static void test_fork_while_threads_are_in_the_store(void)
{
	zp_config c = zp_test_config();
	c.cache_depth = 0;
	c.flags |= ZP_F_MAINTENANCE_THREAD;
	c.decay_ms = 20;
	/* A small budget bounds what lockfree-urcu's magazines may take while
	 * its worker waits for CPU (max_buffers), so forks stay cheap. */
	c.max_idle_bytes = 8u << 20;
	fork_under_users(&c, store_user, store_child_main, 30, 1000);
}

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"fork_while_threads_use_the_pool", test_fork_while_threads_use_the_pool},
	    {"fork_while_threads_are_in_the_store", test_fork_while_threads_are_in_the_store},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
