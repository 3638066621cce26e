/*
 * pack_mt.h - how the weight packers (gemm_pack.c, conv_pack.c, gemm_bf16_pack.c,
 * quant_pack.c) share a load across a thread pool.
 *
 * A packer fills disjoint output panels (or quantized rows) from read-only source rows,
 * so the work splits into contiguous ranges, one per pool thread, each filled by the same
 * code as the single-threaded pack with its own scratch: the bytes do not depend on the
 * thread count. Weights below PD_PACK_MT_MIN elements are packed by the caller alone
 * (waking the pool costs more than they take). Packers run on the loading thread, never
 * inside a pool task (pd_pool_run does not nest).
 */
#ifndef PD_KERNELS_PACK_MT_H
#define PD_KERNELS_PACK_MT_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"

#define PD_PACK_MT_MIN (256u * 1024u)   /* elements */

/* The pool a pack of `elems` weight elements runs on: NULL (the caller alone) if small. */
static inline pd_pool *pd_pack_pool(pd_pool *pool, uint64_t elems) {
    return elems < PD_PACK_MT_MIN ? NULL : pool;
}

/* Thread ith of nth's share [*r0, *r1) of [0, n) (contiguous, sizes differ by <= 1). */
static inline void pd_pack_split(size_t n, int ith, int nth, size_t *r0, size_t *r1) {
    const size_t q = n / (size_t)nth, r = n % (size_t)nth, i = (size_t)ith;
    *r0 = i * q + (i < r ? i : r);
    *r1 = *r0 + q + (i < r);
}

/* Bytes rounded up to whole 64-byte lines (per-thread scratch never shares a line). */
static inline size_t pd_pack_line(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

#endif
