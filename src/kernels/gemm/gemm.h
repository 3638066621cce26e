/*
 * gemm.h - fp32 GEMM against pre-packed weights: variant declarations and the
 * microkernel contract (the op's contract is pd_gemm_args in kernels.h).
 *
 *   C[i, j] = act(sum_kk A[i, kk] * W[j, kk] + bias[j]) (+ res[i, j]),
 *   i in [0, m), j in [n0, n1).
 *
 * Every variant pd_f32_gemm_<MR>x<NR>__<isa>:
 *   - requires w->nr == NR (pd_gemm_pack(..., nr = NR, ...)); the reference
 *     pd_f32_gemm__ref reads any nr;
 *   - requires n0 % NR == 0 (or n0 == 0) and n0 <= n1 <= w->n (asserted);
 *   - computes MR x NR output tiles with the accumulators in registers across each k
 *     block, and on the stack between k blocks (C is written once, after the last k
 *     block, so res may alias c); A rows are read in place (broadcasts), never packed;
 *   - handles m % MR (smaller tiles), the n tail (the last panel is computed in full
 *     from its zero padding but only columns < n1 are stored), any k >= 1, any lda,
 *     ldc, ldres and pointer alignment;
 *   - epilogue order: + bias -> act -> + res, all in fp32;
 *   - reads W panels and A rows only inside their ranges (+ masked loads), writes only
 *     C[i, n0..n1) for i < m; uses up to 32 KiB of stack.
 * Blocking (BLIS order without packing A): row blocks of MC rows (their accumulators
 * fit the stack buffer, their MC x kc slice of A fits L2) x panels x k blocks of kc
 * (a kc x NR slice of the panel, ~64-128 KiB, reused from L2 by the block's MC / MR
 * row tiles) x row tiles.
 *
 * Accuracy: fp32 accumulation in k order (per lane); the reference accumulates in
 * double. Expected difference ~ k * 2^-24 * sum|a*w|; tests use 1e-5 of max |ref|.
 */
#ifndef PD_KERNELS_GEMM_H
#define PD_KERNELS_GEMM_H

#include "kernels/kernels.h"

void pd_f32_gemm__ref(const pd_gemm_args *args);
void pd_f32_gemm_6x16__avx2(const pd_gemm_args *args);
void pd_f32_gemm_4x24__avx2(const pd_gemm_args *args);
void pd_f32_gemm_14x32__avx512(const pd_gemm_args *args);
void pd_f32_gemm_8x32__avx512(const pd_gemm_args *args);
void pd_f32_gemm_6x64__avx512(const pd_gemm_args *args);

/* Panel width the scalar table packs for (the reference accepts any). */
#define PD_GEMM_REF_NR 16

#endif
