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

/* ---- the framework / microkernel split (BLIS) ------------------------------------
 * pd_gemm_blocked() is the ISA-independent blocking driver; each ISA file supplies
 * only register tiles and a store epilogue:
 *   tile(t): acc[r][0..nr) (+)= sum_{kk < t->k} A[r, kk] * panel[kk][0..nr) for r < rows,
 *            starting from t->acc when t->load, else from zero; writes all rows x nr
 *            accumulators back to t->acc (row stride nr). tiles[rows] handles `rows` rows,
 *            rows in 1..mr.
 *   epilogue(g, acc, nr, i, rows, j, cols): C[i.., j..j+cols) = act(acc + bias) (+ res),
 *            storing only cols columns. */
typedef struct pd_gemm_tile {
    int k;
    const float *a;  /* A[i, kb] of the tile's first row */
    size_t lda;
    const float *w;  /* the panel's rows kb..kb+k: k x nr floats */
    float *acc;      /* rows x nr accumulators, row stride nr */
    int load;        /* continue from acc (a later k block) instead of zero */
} pd_gemm_tile;

typedef void (*pd_gemm_tile_fn)(const pd_gemm_tile *t);
typedef void (*pd_gemm_epilogue_fn)(const pd_gemm_args *g, const float *acc, int nr, int i,
                                    int rows, int j, int cols);

#define PD_GEMM_ACC_FLOATS 8192   /* stack accumulators of one row block (32 KiB) */

typedef struct pd_gemm_blocking {
    int mr, nr;
    size_t w_kblock_bytes;   /* a kc x nr slice of the panel, reused from L2 */
    size_t a_kblock_bytes;   /* an MC x kc slice of A kept in L2 */
    int acc_floats;          /* <= PD_GEMM_ACC_FLOATS */
    const pd_gemm_tile_fn *tiles;   /* [mr + 1]; tiles[0] unused */
    pd_gemm_epilogue_fn epilogue;
} pd_gemm_blocking;

void pd_gemm_blocked(const pd_gemm_args *g, const pd_gemm_blocking *b);

/* The argument checks every weight packer shares (NULL weight, shape, row stride,
 * F32/F16/BF16 dtypes); messages start with `what`. PD_OK or PD_ERR_INVALID_ARG. */
pd_status pd_gemm_pack_check(const char *what, const void *w, pd_dtype w_dtype, size_t ld_w,
                             int n, int k, const void *bias, pd_dtype bias_dtype, pd_error *err);

/* Panel width the scalar table packs for (the reference accepts any). */
#define PD_GEMM_REF_NR 16

#endif
