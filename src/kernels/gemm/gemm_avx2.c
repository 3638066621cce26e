/*
 * gemm_avx2.c - fp32 GEMM microkernels for AVX2 + FMA (contract: gemm.h, kernels.h).
 *
 * Variants (MR x NR, NR = 8 * NV lanes), 16 ymm registers:
 *   6x16: 12 accumulators + 2 weight vectors + 1 broadcast = 15 registers.
 *   4x24: 12 accumulators + 3 weight vectors + 1 broadcast = 16 registers.
 * Per k step a tile loads NV weight vectors and MR broadcasts for MR*NV FMAs.
 *
 * Same structure as gemm_avx512.c: tile() instantiated for every mr in 1..MR, the
 * accumulators go to a stack tile, a separate epilogue adds bias, applies the
 * activation and the residual and stores with masks (maskstore never writes the
 * masked lanes, so columns >= n1 stay untouched).
 *
 * Traps: res may alias c, so each element reads res before its store and nothing is
 * stored before the last k.
 */
#include "kernels/gemm/gemm.h"

#include "kernels/act/vmath_avx2.h"

/* Blocking (see gemm.h and gemm_avx512.c): a kc x nr block of the panel is reused by
 * the MC rows of a row block from L2, the MC x kc block of A stays in L2, and the MC x
 * nr accumulators live on the stack between k blocks (C is written once, at the end).
 * Sized for the smaller L2 (256 KiB - 1 MiB) of AVX2-only CPUs. */
#define W_KBLOCK_BYTES (64 * 1024)
#define A_KBLOCK_BYTES (256 * 1024)
#define ACC_FLOATS_ISA 6144
#define MAX_MR 6
#define MAX_NR 24

#define PD_INLINE static inline __attribute__((always_inline))

PD_INLINE void tile(const pd_gemm_tile *t, int mr, int nv) {
    __m256 acc[MAX_MR][MAX_NR / 8];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[r][v] = t->load ? _mm256_loadu_ps(t->acc + (r * nv + v) * 8) : _mm256_setzero_ps();
    const float *a = t->a;
    const float *w = t->w;
    const size_t lda = t->lda;
    for (int kk = 0; kk < t->k; kk++, w += nv * 8) {
        __m256 wv[MAX_NR / 8];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) wv[v] = _mm256_loadu_ps(w + v * 8);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m256 ab = _mm256_broadcast_ss(a + (size_t)r * lda + (size_t)kk);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(ab, wv[v], acc[r][v]);
        }
    }
    float *out = t->acc;
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(out + (r * nv + v) * 8, acc[r][v]);
}

#define PD_TILE(mr, nv) \
    static void tile_##mr##x##nv(const pd_gemm_tile *t) { tile(t, mr, nv); }
PD_TILE(1, 2) PD_TILE(2, 2) PD_TILE(3, 2) PD_TILE(4, 2) PD_TILE(5, 2) PD_TILE(6, 2)
PD_TILE(1, 3) PD_TILE(2, 3) PD_TILE(3, 3) PD_TILE(4, 3)
#undef PD_TILE

/* TILES_NVx[rows] computes a rows x (8 * nv) tile. */
static const pd_gemm_tile_fn TILES_NV2[6 + 1] = {
    NULL, tile_1x2, tile_2x2, tile_3x2, tile_4x2, tile_5x2, tile_6x2,
};
static const pd_gemm_tile_fn TILES_NV3[4 + 1] = {NULL, tile_1x3, tile_2x3, tile_3x3, tile_4x3};

/* C[i..i+rows, j..j+cols) = act(tile + bias) (+ res); tile row stride nr. */
PD_INLINE void epilogue_act(const pd_gemm_args *g, const float *acc, int nr, int i, int rows,
                            int j, int cols, pd_act act) {
    const float *bias = g->w->bias;
    for (int v = 0; v * 8 < cols; v++) {
        __m256i m = v8_tail_mask((size_t)(cols - v * 8));
        __m256 b = bias ? _mm256_maskload_ps(bias + j + v * 8, m) : _mm256_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m256 x = _mm256_loadu_ps(acc + r * nr + v * 8);
            if (bias) x = _mm256_add_ps(x, b);
            x = v8_act(x, act);
            size_t col = (size_t)j + (size_t)v * 8;
            if (g->res)
                x = _mm256_add_ps(x, _mm256_maskload_ps(g->res + (size_t)(i + r) * g->ldres + col, m));
            _mm256_maskstore_ps(g->c + (size_t)(i + r) * g->ldc + col, m, x);
        }
    }
}

static void epilogue(const pd_gemm_args *g, const float *acc, int nr, int i, int rows, int j, int cols) {
    switch (g->act) {
    case PD_ACT_NONE: epilogue_act(g, acc, nr, i, rows, j, cols, PD_ACT_NONE); break;
    case PD_ACT_GELU: epilogue_act(g, acc, nr, i, rows, j, cols, PD_ACT_GELU); break;
    case PD_ACT_QUICK_GELU: epilogue_act(g, acc, nr, i, rows, j, cols, PD_ACT_QUICK_GELU); break;
    case PD_ACT_SILU: epilogue_act(g, acc, nr, i, rows, j, cols, PD_ACT_SILU); break;
    case PD_ACT_RELU: epilogue_act(g, acc, nr, i, rows, j, cols, PD_ACT_RELU); break;
    }
}

void pd_f32_gemm_6x16__avx2(const pd_gemm_args *args) {
    static const pd_gemm_blocking b = {6, 16, W_KBLOCK_BYTES, A_KBLOCK_BYTES, ACC_FLOATS_ISA,
                                        TILES_NV2, epilogue};
    pd_gemm_blocked(args, &b);
}
void pd_f32_gemm_4x24__avx2(const pd_gemm_args *args) {
    static const pd_gemm_blocking b = {4, 24, W_KBLOCK_BYTES, A_KBLOCK_BYTES, ACC_FLOATS_ISA,
                                        TILES_NV3, epilogue};
    pd_gemm_blocked(args, &b);
}
