/*
 * test_dlclose.c - a host that dlopens libzeropool.so, uses a pool on a
 * thread that outlives dlclose, and repeats (issue 12, item 5).
 *
 * Before the library was linked with -z nodelete, the thread crashed at its
 * exit (its key destructor was no longer mapped), liburcu's worker was left
 * running in unmapped code, and every cycle leaked a pthread key until the
 * host's own pthread_key_create failed.  Now dlclose leaves the library
 * loaded: the thread exits cleanly, a later dlopen finds the same copy (no
 * new key), and the host can still create keys.
 *
 * Usage: test_dlclose LIBZEROPOOL.so BACKEND [CYCLES]
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeropool.h"

struct api {
	void *handle;
	zp_pool *(*create)(const zp_config *);
	void (*config_init)(zp_config *);
	void (*destroy)(zp_pool *);
	zp_buf *(*get)(zp_pool *, size_t);
	int (*put)(zp_pool *, zp_buf *);
};

struct worker {
	struct api *api;
	zp_pool *pool;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int used, go; /* used: the pool was used; go: the thread may exit */
};

static void die(const char *what)
{
	fprintf(stderr, "test_dlclose: %s\n", what);
	exit(1);
}

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (p == NULL)
		die(dlerror());
	return p;
}

/* Uses the pool, then waits until the main thread has closed the library
 * (so that this thread's exit runs after dlclose). */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 100; i++) {
		zp_buf *b = w->api->get(w->pool, 64 + (size_t)i * 64);
		if (b == NULL || w->api->put(w->pool, b) != 0)
			die("get/put failed");
	}
	pthread_mutex_lock(&w->lock);
	w->used = 1;
	pthread_cond_broadcast(&w->cond);
	while (!w->go)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return NULL; /* the pool's key destructor runs here, after dlclose */
}

int main(int argc, char **argv)
{
	bool help = argc > 1 && strcmp(argv[1], "--help") == 0;
	char *end = NULL;
	long cycles = argc > 3 ? strtol(argv[3], &end, 10) : 1100;
	if (help || argc < 3 || argc > 4 || (end != NULL && (*end != '\0' || end == argv[3])) ||
	    cycles < 1 || cycles > 1000000) {
		fprintf(help ? stdout : stderr,
			"usage: %s LIBZEROPOOL.so BACKEND [CYCLES]\n"
			"  dlopen the library, use a pool of BACKEND on a thread that outlives\n"
			"  dlclose, CYCLES times (1..1000000, default 1100)\n",
			argv[0]);
		return help ? 0 : 2;
	}
	for (int c = 0; c < cycles; c++) {
		struct api api = {.handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)};
		if (api.handle == NULL)
			die(dlerror());
		api.create = (zp_pool * (*)(const zp_config *)) sym(api.handle, "zp_pool_create");
		api.config_init = (void (*)(zp_config *))sym(api.handle, "zp_config_init");
		api.destroy = (void (*)(zp_pool *))sym(api.handle, "zp_pool_destroy");
		api.get = (zp_buf * (*)(zp_pool *, size_t)) sym(api.handle, "zp_get");
		api.put = (int (*)(zp_pool *, zp_buf *))sym(api.handle, "zp_put");
		zp_config cfg;
		api.config_init(&cfg);
		cfg.backend = argv[2];
		struct worker w = {.api = &api,
				   .lock = PTHREAD_MUTEX_INITIALIZER,
				   .cond = PTHREAD_COND_INITIALIZER};
		w.pool = api.create(&cfg);
		if (w.pool == NULL)
			die("zp_pool_create failed");
		pthread_t t;
		if (pthread_create(&t, NULL, worker_main, &w) != 0)
			die("pthread_create failed");
		pthread_mutex_lock(&w.lock);
		while (!w.used)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		/* The thread keeps its cache; the pool stays alive (destroying it
		 * would also be legal, but a host that forgets must not crash). */
		if (dlclose(api.handle) != 0)
			die(dlerror());
		/* -z nodelete: still loaded, so RTLD_NOLOAD finds it. */
		void *again = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
		if (again == NULL)
			die("libzeropool was unloaded by dlclose (want -z nodelete)");
		pthread_mutex_lock(&w.lock);
		w.go = 1;
		pthread_cond_broadcast(&w.cond);
		pthread_mutex_unlock(&w.lock);
		pthread_join(t, NULL);
		api.destroy(w.pool);
		dlclose(again);
	}
	/* No key leaked per cycle: the host can still make plenty. */
	for (int i = 0; i < 64; i++) {
		pthread_key_t k;
		int rc = pthread_key_create(&k, NULL);
		if (rc != 0) {
			errno = rc;
			die("pthread_key_create failed after the cycles");
		}
	}
	printf("ok   %s: %ld dlopen/dlclose cycles with a live thread\n", argv[2], cycles);
	return 0;
}
