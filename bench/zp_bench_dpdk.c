/*
 * zp_bench_dpdk.c - the DPDK rte_mempool peer (see zp_bench_dpdk.h).
 */
#include "zp_bench_dpdk.h"

#include <stdio.h>
#include <stdlib.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

static int eal_state; /* 0 not tried, 1 up, -1 failed */

static int eal_up(char *err, size_t errlen)
{
	if (eal_state == 0) {
		char *argv[] = {"zp_bench",    "-l", "0",   "--no-huge",           "--no-pci",
				"--no-shconf", "-m", "256", "--log-level=*:error", "--no-telemetry",
				NULL};
		int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
		eal_state = rte_eal_init(argc, argv) < 0 ? -1 : 1;
	}
	if (eal_state < 0) {
		snprintf(err, errlen, "rte_eal_init failed: %s", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

void *zpb_dpdk_create(size_t size, char *err, size_t errlen)
{
	static unsigned seq;
	char name[32];
	if (eal_up(err, errlen) != 0)
		return NULL;
	snprintf(name, sizeof name, "zpb%u", seq++);
	/* 2047 objects: a 256-object cache needs n >= 1.5 x 256, and 2047 x
	 * 64 KiB fits in -m 256. */
	struct rte_mempool *mp = rte_mempool_create(name, 2047, (unsigned)size, 256, 0, NULL, NULL,
						    NULL, NULL, SOCKET_ID_ANY, 0);
	if (mp == NULL)
		snprintf(err, errlen, "rte_mempool_create(%zu): %s", size, rte_strerror(rte_errno));
	return mp;
}

void zpb_dpdk_free(void *mp)
{
	rte_mempool_free(mp);
}

int zpb_dpdk_thread_enter(char *err, size_t errlen)
{
	if (rte_thread_register() != 0) {
		snprintf(err, errlen, "rte_thread_register: %s", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

void zpb_dpdk_thread_leave(void)
{
	rte_thread_unregister();
}

void zpb_dpdk_pair_loop(void *mp, size_t size, uint64_t n)
{
	struct rte_mempool *m = mp;
	(void)size;
	for (uint64_t i = 0; i < n; i++) {
		void *obj;
		if (rte_mempool_get(m, &obj) != 0)
			abort();
		__asm__ volatile("" : : "r"(obj));
		((volatile unsigned char *)obj)[0] = (unsigned char)i;
		rte_mempool_put(m, obj);
	}
}
