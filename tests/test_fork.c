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
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
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

static void test_fork_while_threads_use_the_pool(void)
{
	zp_config c = zp_test_config();
	struct users u = {.pool = zp_pool_create(&c)};
	REQUIRE(u.pool != NULL);
	pthread_t t[USERS];
	for (int i = 0; i < USERS; i++)
		REQUIRE(pthread_create(&t[i], NULL, user, &u) == 0);
	int forks = (int)(20 * zp_test_scale);
	if (forks < 3)
		forks = 3;
	int failed = 0;
	for (int f = 0; f < forks; f++) {
		usleep(2000); /* let the users run between forks */
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0)
			_exit(child_main(u.pool));
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

int main(int argc, char **argv)
{
	static const struct zp_test tests[] = {
	    {"fork_while_threads_use_the_pool", test_fork_while_threads_use_the_pool},
	};
	return zp_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
