/*
 * test_resource_limits.c - when a resource other than memory runs out,
 * calls fail softly with the documented errno (issue 12).
 *
 * address: an address-space limit that leaves no room for a thread stack
 * (item 2). *
 * liburcu aborts the process when it cannot start its call_rcu worker
 * ("call_rcu_data_init: Unrecoverable error"), and lockfree-urcu started it
 * in zp_pool_create: the process died with exit 134 where locked and
 * lockfree-ck worked.  Now that backend checks first that a thread can be
 * had and fails with EAGAIN.  Each backend runs in its own process (ctest
 * runs this once per backend), so liburcu's worker does not exist yet.
 *
 *
 * keys: every pthread key taken.  lockfree-urcu needs one (to unregister
 * threads from RCU at their exit) and refused the pool with ENOMEM where
 * the header says EAGAIN; the other backends work (uncached: the thread
 * caches need a key too).
 *
 * Not under ASan or TSan (their shadow memory needs an unlimited address
 * space) nor valgrind.  Usage: test_resource_limits BACKEND address|keys
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "zeropool.h"

static unsigned long vm_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	if (f == NULL || fscanf(f, "%lu", &pages) != 1) {
		fprintf(stderr, "test_resource_limits: cannot read /proc/self/statm\n");
		exit(1);
	}
	fclose(f);
	return pages * 4096;
}

/* Takes every pthread key, creates a pool, uses it, gives the keys back. */
static int keys_main(const zp_config *cfg)
{
	static pthread_key_t keys[PTHREAD_KEYS_MAX];
	int n = 0;
	while (n < PTHREAD_KEYS_MAX && pthread_key_create(&keys[n], NULL) == 0)
		n++;
	errno = 0;
	zp_pool *p = zp_pool_create(cfg);
	int err = errno, ok;
	if (p == NULL) {
		ok = err == EAGAIN;
		printf("%s %s: all %d keys taken, zp_pool_create refused with errno %d (want "
		       "EAGAIN)\n",
		       ok ? "ok  " : "FAIL", cfg->backend, n, err);
	} else {
		zp_buf *b = zp_get(p, 100);
		ok = b != NULL && zp_put(p, b) == 0;
		zp_pool_destroy(p);
		printf("%s %s: all %d keys taken, pool works uncached\n", ok ? "ok  " : "FAIL",
		       cfg->backend, n);
	}
	while (n > 0)
		pthread_key_delete(keys[--n]);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "--help") == 0) {
		fprintf(stderr, "usage: %s BACKEND address|keys\n", argv[0]);
		return argc != 3 ? 2 : 0;
	}
	zp_config cfg;
	zp_config_init(&cfg);
	cfg.backend = argv[1];
	if (strcmp(argv[2], "keys") == 0)
		return keys_main(&cfg);
	if (strcmp(argv[2], "address") != 0) {
		fprintf(stderr, "test_resource_limits: unknown mode %s\n", argv[2]);
		return 2;
	}
	/* Room for small allocations, none for an 8 MiB thread stack. */
	struct rlimit lim = {.rlim_cur = vm_bytes() + (4u << 20), .rlim_max = RLIM_INFINITY};
	if (setrlimit(RLIMIT_AS, &lim) != 0) {
		perror("setrlimit");
		return 1;
	}
	errno = 0;
	zp_pool *p = zp_pool_create(&cfg);
	if (p == NULL) {
		if (errno != EAGAIN && errno != ENOMEM) {
			fprintf(stderr, "FAIL %s: zp_pool_create: errno %d\n", argv[1], errno);
			return 1;
		}
		printf("ok   %s: zp_pool_create refused (%s), process alive\n", argv[1],
		       strerror(errno));
		return 0;
	}
	/* Small buffers fit; a large one is refused with ENOMEM. */
	zp_buf *b = zp_get(p, 100);
	errno = 0;
	zp_buf *big = zp_get(p, 64u << 20);
	int ok = b != NULL && zp_put(p, b) == 0 && big == NULL && errno == ENOMEM;
	zp_pool_destroy(p);
	printf("%s %s: pool created under the limit, small get/put %s, 64 MiB get refused %s\n",
	       ok ? "ok  " : "FAIL", argv[1], b != NULL ? "worked" : "failed",
	       big == NULL ? "with ENOMEM" : "(not refused)");
	return ok ? 0 : 1;
}
