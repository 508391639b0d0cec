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
 * membarrier: a seccomp filter that refuses membarrier(2), installed
 * while a pool is in use, as sandboxes do after start-up (issue 24, item
 * 3).  liburcu's memb flavour, which lockfree-urcu used until then, aborted
 * the process from its call_rcu worker at the next grace period
 * ("smp_mb_master: Unrecoverable error: Operation not permitted"); every
 * backend must go on: store calls that retire magazines, a trim (the
 * library's own membarrier falls back), destroy, a new pool.  Exit 77
 * (skipped) where the kernel has no seccomp filters.
 *
 * Not under ASan or TSan (their shadow memory needs an unlimited address
 * space) nor valgrind.
 * Usage: test_resource_limits BACKEND address|keys|membarrier
 */
#ifndef _GNU_SOURCE /* the harness's target defines it */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include "zeropool.h"
#include "zp_test.h"

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

/* Every thread of the process (TSYNC): membarrier fails with EPERM. */
static int refuse_membarrier(void)
{
	struct sock_filter insns[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof insns / sizeof insns[0], .filter = insns};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC,
			    &prog);
}

/* Store calls only: 40 rounds of 64 buffers retire more magazines than
 * lockfree-urcu hands to one call_rcu, so grace periods run. */
static int store_rounds(zp_pool *p)
{
	zp_buf *b[64];
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < 64; i++)
			if ((b[i] = zp_get(p, 4096)) == NULL)
				return -1;
		for (int i = 0; i < 64; i++)
			if (zp_put(p, b[i]) != 0)
				return -1;
	}
	return 0;
}

static int membarrier_main(zp_config *cfg)
{
	cfg->cache_depth = 0;
	cfg->flags |= ZP_F_MAINTENANCE_THREAD;
	zp_pool *p = zp_pool_create(cfg);
	if (p == NULL || store_rounds(p) != 0) {
		fprintf(stderr, "FAIL %s: the pool did not work before the filter\n", cfg->backend);
		return 1;
	}
	if (refuse_membarrier() != 0) {
		printf("skip %s: no seccomp filter (%s)\n", cfg->backend, strerror(errno));
		zp_pool_destroy(p);
		return 77;
	}
	if (syscall(__NR_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0) != -1 || errno != EPERM) {
		fprintf(stderr, "FAIL %s: the filter does not refuse membarrier\n", cfg->backend);
		return 1;
	}
	/* Grace periods and drains after the refusal: the process must live. */
	int ok = store_rounds(p) == 0 && zp_trim(p) != (size_t)-1 && store_rounds(p) == 0;
	usleep(100 * 1000); /* the call_rcu worker and the maintenance thread run */
	zp_pool_destroy(p);
	zp_pool *q = zp_pool_create(cfg);
	ok = ok && q != NULL && store_rounds(q) == 0;
	if (q != NULL)
		zp_pool_destroy(q);
	printf("%s %s: membarrier refused after start-up, the pool %s\n", ok ? "ok  " : "FAIL",
	       cfg->backend, ok ? "went on" : "failed");
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	bool help = argc > 1 && strcmp(argv[1], "--help") == 0;
	if (help || argc != 3 || !zp_test_backend_known(argv[1])) {
		if (!help && argc == 3)
			fprintf(stderr, "%s: unknown backend: %s\n", argv[0], argv[1]);
		fprintf(help ? stdout : stderr, "usage: %s BACKEND address|keys|membarrier\n",
			argv[0]);
		return help ? 0 : 2;
	}
	zp_config cfg;
	zp_config_init(&cfg);
	cfg.backend = argv[1];
	if (strcmp(argv[2], "keys") == 0)
		return keys_main(&cfg);
	if (strcmp(argv[2], "membarrier") == 0)
		return membarrier_main(&cfg);
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
