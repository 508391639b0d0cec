/*
 * zp_bench_dpdk.h - the DPDK rte_mempool peer, compiled only when
 * pkg-config finds libdpdk (its flags, -march=corei7 among them, stay in
 * zp_bench_dpdk.c).  EAL runs without hugepages or PCI:
 * --no-huge --no-pci --no-shconf -m 256, which works on machines without
 * huge pages (docs/benchmarks.md).
 */
#ifndef ZP_BENCH_DPDK_H
#define ZP_BENCH_DPDK_H

#include <stddef.h>
#include <stdint.h>

/* A mempool of `size`-byte objects with a 256-object per-lcore cache,
 * initialising EAL on first use; NULL with a message in err. */
void *zpb_dpdk_create(size_t size, char *err, size_t errlen);
void zpb_dpdk_free(void *mp);
/* Register / unregister a non-EAL thread (it gets an lcore id and so the
 * per-lcore cache).  0, or -1 with a message in err. */
int zpb_dpdk_thread_enter(char *err, size_t errlen);
void zpb_dpdk_thread_leave(void);
/* n x (rte_mempool_get, write byte 0, rte_mempool_put). */
void zpb_dpdk_pair_loop(void *mp, size_t size, uint64_t n);

#endif
