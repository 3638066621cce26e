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
#define ACC_FLOATS 6144
#define MAX_MR 6
#define MAX_NR 24

#define PD_INLINE static inline __attribute__((always_inline))

typedef struct tile_job {
    int k;
    const float *a;  /* A[i, 0] of the tile's first row */
    size_t lda;
    const float *w;  /* the panel's rows kb..kb+k: k x nr floats */
    float *acc;      /* mr x nr accumulators, row stride nr: read if load, always written */
    int load;        /* continue from acc (a later k block) instead of zero */
} tile_job;

PD_INLINE void tile(const tile_job *t, int mr, int nv) {
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

typedef void (*tile_fn)(const tile_job *t);

#define PD_TILE(mr, nv) \
    static void tile_##mr##x##nv(const tile_job *t) { tile(t, mr, nv); }
PD_TILE(1, 2) PD_TILE(2, 2) PD_TILE(3, 2) PD_TILE(4, 2) PD_TILE(5, 2) PD_TILE(6, 2)
PD_TILE(1, 3) PD_TILE(2, 3) PD_TILE(3, 3) PD_TILE(4, 3)
#undef PD_TILE

/* TILES_NVx[rows] computes a rows x (8 * nv) tile. */
static const tile_fn TILES_NV2[6 + 1] = {
    NULL, tile_1x2, tile_2x2, tile_3x2, tile_4x2, tile_5x2, tile_6x2,
};
static const tile_fn TILES_NV3[4 + 1] = {NULL, tile_1x3, tile_2x3, tile_3x3, tile_4x3};

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
    }
}

static void gemm(const pd_gemm_args *g, int mr, int nr, const tile_fn *tiles) {
    const pd_packed_w *w = g->w;
    PD_ASSERT(w->nr == nr);
    PD_ASSERT(g->n0 >= 0 && g->n0 <= g->n1 && g->n1 <= w->n && g->n0 % nr == 0);
    if (g->m <= 0 || g->n1 == g->n0) return;
    const int k = w->k;
    /* k blocks of about W_KBLOCK_BYTES, equal sized. */
    const int kc_max = PD_MAX(8, (int)(W_KBLOCK_BYTES / ((size_t)nr * sizeof(float))));
    const int n_kb = (k + kc_max - 1) / kc_max, kc = (k + n_kb - 1) / n_kb;
    /* Rows per block: the accumulators fit ACC_FLOATS, an MC x kc block of A fits L2. */
    int mc = PD_MIN(ACC_FLOATS / nr, (int)(A_KBLOCK_BYTES / ((size_t)kc * sizeof(float))));
    mc = PD_MAX(mr, mc / mr * mr);
    float acc[ACC_FLOATS] __attribute__((aligned(64)));
    for (int i0 = 0; i0 < g->m; i0 += mc) {
        const int i1 = PD_MIN(g->m, i0 + mc);
        for (int j = g->n0; j < g->n1; j += nr) {
            const float *panel = w->data + (size_t)(j / nr) * (size_t)k * (size_t)nr;
            const int cols = PD_MIN(nr, g->n1 - j);
            for (int kb = 0; kb < k; kb += kc) {
                const int kn = PD_MIN(kc, k - kb);
                const bool last = kb + kn == k;
                for (int i = i0; i < i1; i += mr) {
                    const int rows = PD_MIN(mr, i1 - i);
                    float *tacc = acc + (size_t)(i - i0) * (size_t)nr;
                    tile_job t = {kn, g->a + (size_t)i * g->lda + (size_t)kb, g->lda,
                                  panel + (size_t)kb * (size_t)nr, tacc, kb > 0};
                    tiles[rows](&t);
                    if (last) epilogue(g, tacc, nr, i, rows, j, cols);
                }
            }
        }
    }
}

void pd_f32_gemm_6x16__avx2(const pd_gemm_args *args) { gemm(args, 6, 16, TILES_NV2); }
void pd_f32_gemm_4x24__avx2(const pd_gemm_args *args) { gemm(args, 4, 24, TILES_NV3); }
