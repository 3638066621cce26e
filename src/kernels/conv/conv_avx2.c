/*
 * conv_avx2.c - fp32 NHWC convolution microkernels for AVX2 (contract: kernels.h
 * pd_conv_args; scheme: conv.h; blocking: pd_conv_blocked).
 *
 * Variant 6x16 (panels of 16 channels, the nr of pd_f32_gemm_6x16__avx2, which it
 * calls for 1x1 stride-1 convs):
 *   nv = 2: 6 pixels x 16 channels, 12 ymm accumulators + 2 weight vectors + 1
 *           broadcast (15 of 16 registers), as the GEMM's 6x16 tile;
 *   nv = 1: 8 pixels x 8 channels for panels with <= 8 live channels (conv_out to
 *           3/4/8 channels).
 * Same structure as conv_avx512.c (tile template instantiated per pixel count, masked
 * epilogue with the activation switch hoisted). AVX2 masks are int32 lanes
 * (maskload/maskstore never fault on masked lanes).
 *
 * Traps: as conv_avx512.c; w advances by nr (16) also for nv = 1 tiles.
 */
#include "kernels/conv/conv.h"

#include "kernels/act/vmath_avx2.h"

/* As conv_avx512.c (measured the same way): 32 KiB weight blocks, 480-pixel row blocks. */
#define W_KBLOCK_BYTES (32 * 1024)
#define MC 480   /* pixels per row block: a multiple of 6 and 8; 480 x 16 accumulators */

#define PD_INLINE static inline __attribute__((always_inline))

PD_INLINE void tile(const pd_conv_tile *t, int mr, int nv) {
    __m256 acc[PD_CONV_MAX_MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            acc[r][v] = t->load ? _mm256_loadu_ps(t->acc + (r * nv + v) * 8) : _mm256_setzero_ps();
    const size_t nr = t->nr, cin = t->cin;
    const int k = t->k;
    for (int q = 0; q < t->n_taps; q++) {
        const int32_t *pix = t->pix + q * PD_CONV_MAX_MR;
        const float *ar[PD_CONV_MAX_MR];
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) ar[r] = pix[r] >= 0 ? t->in + (size_t)pix[r] * cin : t->zero;
        const float *w = t->w[q];
        for (int kk = 0; kk < k; kk++, w += nr) {
            __m256 wv[2];
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) wv[v] = _mm256_loadu_ps(w + v * 8);
#pragma GCC unroll 8
            for (int r = 0; r < mr; r++) {
                const __m256 ab = _mm256_broadcast_ss(ar[r] + kk);
#pragma GCC unroll 2
                for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(ab, wv[v], acc[r][v]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(t->acc + (r * nv + v) * 8, acc[r][v]);
}

#define PD_TILE(mr, nv) \
    static void tile_##mr##x##nv(const pd_conv_tile *t) { tile(t, mr, nv); }
PD_TILE(1, 2) PD_TILE(2, 2) PD_TILE(3, 2) PD_TILE(4, 2) PD_TILE(5, 2) PD_TILE(6, 2)
PD_TILE(1, 1) PD_TILE(2, 1) PD_TILE(3, 1) PD_TILE(4, 1) PD_TILE(5, 1) PD_TILE(6, 1) PD_TILE(7, 1)
PD_TILE(8, 1)
#undef PD_TILE

static const pd_conv_tile_fn TILES_NV2[6 + 1] = {
    NULL, tile_1x2, tile_2x2, tile_3x2, tile_4x2, tile_5x2, tile_6x2,
};
static const pd_conv_tile_fn TILES_NV1[8 + 1] = {
    NULL, tile_1x1, tile_2x1, tile_3x1, tile_4x1, tile_5x1, tile_6x1, tile_7x1, tile_8x1,
};

/* out[(p + r) * cout + j ..+cols) = act(acc + bias) (+ res); acc row stride acc_ld. */
PD_INLINE void epilogue_act(const pd_conv_args *a, const float *acc, int acc_ld, size_t p, int rows,
                            int j, int cols, pd_act act) {
    const float *bias = a->w->bias;
    const size_t cout = (size_t)a->w->n;
    for (int v = 0; v * 8 < cols; v++) {
        const __m256i m = v8_tail_mask((size_t)(cols - v * 8));
        const __m256 b = bias ? _mm256_maskload_ps(bias + j + v * 8, m) : _mm256_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m256 x = _mm256_loadu_ps(acc + r * acc_ld + v * 8);
            if (bias) x = _mm256_add_ps(x, b);
            x = v8_act(x, act);
            const size_t o = (p + (size_t)r) * cout + (size_t)j + (size_t)v * 8;
            if (a->res) x = _mm256_add_ps(x, _mm256_maskload_ps(a->res + o, m));
            _mm256_maskstore_ps(a->out + o, m, x);
        }
    }
}

static void epilogue(const pd_conv_args *a, const float *acc, int acc_ld, size_t p, int rows, int j,
                     int cols) {
    switch (a->act) {
    case PD_ACT_NONE: epilogue_act(a, acc, acc_ld, p, rows, j, cols, PD_ACT_NONE); break;
    case PD_ACT_GELU: epilogue_act(a, acc, acc_ld, p, rows, j, cols, PD_ACT_GELU); break;
    case PD_ACT_QUICK_GELU: epilogue_act(a, acc, acc_ld, p, rows, j, cols, PD_ACT_QUICK_GELU); break;
    case PD_ACT_SILU: epilogue_act(a, acc, acc_ld, p, rows, j, cols, PD_ACT_SILU); break;
    case PD_ACT_RELU: epilogue_act(a, acc, acc_ld, p, rows, j, cols, PD_ACT_RELU); break;
    }
}

void pd_f32_conv_6x16__avx2(const pd_conv_args *args) {
    static const pd_conv_blocking b = {
        .nr = 16, .lanes = 8, .mr = {0, 8, 6}, .tiles = {NULL, TILES_NV1, TILES_NV2},
        .mc = MC, .w_kblock_bytes = W_KBLOCK_BYTES, .epilogue = epilogue,
        .gemm = pd_f32_gemm_6x16__avx2,
    };
    pd_conv_blocked(args, &b);
}
