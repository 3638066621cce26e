/*
 * gemm_avx512.c - fp32 GEMM microkernels for AVX-512 (contract: gemm.h, kernels.h).
 *
 * Variants (MR x NR, NR = 16 * NV lanes), first = the one dispatch uses:
 *    6x64: 24 zmm accumulators + 4 weight vectors + 1 broadcast; per k step 4 + 6 loads
 *          for 24 FMAs. Fastest here on nearly every SD/CLIP shape.
 *   14x32: 28 accumulators + 2 weight vectors + 1 broadcast (31 of 32 zmm); 16 loads for
 *          28 FMAs, and 14 row pointers exceed the GPRs (gcc spills 3).
 *    8x32: 16 accumulators; for comparison (finer n granularity than 6x64).
 *
 * tile() is written once with mr/nv as parameters and instantiated (always_inline +
 * unroll pragmas) for every mr in 1..MR, so the m tail gets a register-only kernel too.
 * The accumulators go to a stack tile and a separate epilogue adds bias, applies the
 * activation (switch hoisted out of the loops) and the residual, and stores with
 * masks: columns >= n1 are never written.
 *
 * Traps: the packed panel is read at (p*k + kk)*nr (not n-strided); res may alias c,
 * so each element reads res before its store and nothing is stored before the last k.
 */
#include "kernels/gemm/gemm.h"

#include "kernels/act/vmath_avx512.h"

/* Blocking (see gemm.h): a kc x nr block of the panel (W_KBLOCK_BYTES) is reused by
 * the MC rows of a row block from L2, the MC x kc block of A stays in L2, and the MC x
 * nr accumulators live on the stack between k blocks (C is written once, at the end).
 * Measured here: L1-sized k blocks (<= 48 KiB) were slower than L2-sized ones (short
 * inner loops, more accumulator traffic); no k blocking at all was 3x slower for
 * k = 11520 (the panel no longer fits L2 and is streamed once per row tile). */
#define W_KBLOCK_BYTES (128 * 1024)
#define A_KBLOCK_BYTES (512 * 1024)
#define ACC_FLOATS_ISA 8192
#define MAX_MR 14
#define MAX_NR 64

#define PD_INLINE static inline __attribute__((always_inline))

PD_INLINE void tile(const pd_gemm_tile *t, int mr, int nv) {
    __m512 acc[MAX_MR][MAX_NR / 16];
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[r][v] = t->load ? _mm512_loadu_ps(t->acc + (r * nv + v) * 16) : _mm512_setzero_ps();
    const float *a = t->a;
    const float *w = t->w;
    const size_t lda = t->lda;
    for (int kk = 0; kk < t->k; kk++, w += nv * 16) {
        __m512 wv[MAX_NR / 16];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) wv[v] = _mm512_loadu_ps(w + v * 16);
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
            __m512 ab = _mm512_set1_ps(a[(size_t)r * lda + (size_t)kk]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(ab, wv[v], acc[r][v]);
        }
    }
    float *out = t->acc;
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) _mm512_storeu_ps(out + (r * nv + v) * 16, acc[r][v]);
}

#define PD_TILE(mr, nv) \
    static void tile_##mr##x##nv(const pd_gemm_tile *t) { tile(t, mr, nv); }
PD_TILE(1, 2) PD_TILE(2, 2) PD_TILE(3, 2) PD_TILE(4, 2) PD_TILE(5, 2) PD_TILE(6, 2) PD_TILE(7, 2)
PD_TILE(8, 2) PD_TILE(9, 2) PD_TILE(10, 2) PD_TILE(11, 2) PD_TILE(12, 2) PD_TILE(13, 2)
PD_TILE(14, 2)
PD_TILE(1, 4) PD_TILE(2, 4) PD_TILE(3, 4) PD_TILE(4, 4) PD_TILE(5, 4) PD_TILE(6, 4)
#undef PD_TILE

/* TILES_NVx[rows] computes a rows x (16 * nv) tile. */
static const pd_gemm_tile_fn TILES_NV2[MAX_MR + 1] = {
    NULL,       tile_1x2,  tile_2x2,  tile_3x2,  tile_4x2,  tile_5x2,  tile_6x2,  tile_7x2,
    tile_8x2,   tile_9x2,  tile_10x2, tile_11x2, tile_12x2, tile_13x2, tile_14x2,
};
static const pd_gemm_tile_fn TILES_NV4[6 + 1] = {
    NULL, tile_1x4, tile_2x4, tile_3x4, tile_4x4, tile_5x4, tile_6x4,
};

/* C[i..i+rows, j..j+cols) = act(tile + bias) (+ res); tile row stride nr. */
PD_INLINE void epilogue_act(const pd_gemm_args *g, const float *acc, int nr, int i, int rows,
                            int j, int cols, pd_act act) {
    const float *bias = g->w->bias;
    for (int v = 0; v * 16 < cols; v++) {
        __mmask16 m = v16_tail_mask((size_t)(cols - v * 16));
        __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + j + v * 16) : _mm512_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m512 x = _mm512_loadu_ps(acc + r * nr + v * 16);
            if (bias) x = _mm512_add_ps(x, b);
            x = v16_act(x, act);
            size_t col = (size_t)j + (size_t)v * 16;
            if (g->res)
                x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, g->res + (size_t)(i + r) * g->ldres + col));
            _mm512_mask_storeu_ps(g->c + (size_t)(i + r) * g->ldc + col, m, x);
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

void pd_f32_gemm_14x32__avx512(const pd_gemm_args *args) {
    static const pd_gemm_blocking b = {14, 32, W_KBLOCK_BYTES, A_KBLOCK_BYTES, ACC_FLOATS_ISA,
                                        TILES_NV2, epilogue};
    pd_gemm_blocked(args, &b);
}
void pd_f32_gemm_8x32__avx512(const pd_gemm_args *args) {
    static const pd_gemm_blocking b = {8, 32, W_KBLOCK_BYTES, A_KBLOCK_BYTES, ACC_FLOATS_ISA,
                                        TILES_NV2, epilogue};
    pd_gemm_blocked(args, &b);
}
void pd_f32_gemm_6x64__avx512(const pd_gemm_args *args) {
    static const pd_gemm_blocking b = {6, 64, W_KBLOCK_BYTES, A_KBLOCK_BYTES, ACC_FLOATS_ISA,
                                        TILES_NV4, epilogue};
    pd_gemm_blocked(args, &b);
}
