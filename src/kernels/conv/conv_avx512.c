/*
 * conv_avx512.c - fp32 NHWC convolution microkernels for AVX-512 (contract: kernels.h
 * pd_conv_args; scheme: conv.h; blocking: pd_conv_blocked).
 *
 * Variant 6x64 (panels of 64 channels, the nr of pd_f32_gemm_6x64__avx512, which it
 * calls for 1x1 stride-1 convs). The driver counts channels in groups of 8 (lanes = 8),
 * so nv = live channels / 8 picks the tile:
 *   nv = 8: 6 pixels x 64 channels, 24 zmm accumulators + 4 weight vectors + 1
 *           broadcast; per input channel 4 weight loads + 6 broadcasts for 24 FMAs, as
 *           the GEMM's 6x64 tile (6 row pointers live in GPRs);
 *   nv = 2: 8 pixels x 16 channels (one zmm) for panels with 9..16 live channels;
 *   nv = 1: 8 pixels x 8 channels in ymm registers for <= 8 live channels (conv_out to
 *           3/4/8 channels: ~2.5x the 64-wide tile there, and faster than 16 lanes as
 *           these tiles are bound by one broadcast per FMA, not by FMA width).
 * tile() (nv zmm vectors) and tile8() are written once with mr (and nv) as parameters and instantiated (always_inline +
 * unroll pragmas) for every pixel count 1..MR, so the tail of a row block gets a
 * register-only kernel too. The epilogue adds bias, applies the activation (switch
 * hoisted out of the loops) and the residual, and stores with masks.
 *
 * Traps: a tap's A row of a padding pixel is the zero row (not skipped: the tile stays
 * branch-free); w advances by the panel width nr (64), also for nv = 1 tiles; res may
 * alias out, so each element reads res before its store and nothing is stored before
 * the last k block.
 */
#include "kernels/conv/conv.h"

#include "kernels/act/vmath_avx512.h"

/* Blocking, measured here on the SD shapes (bench_kernels, sd15_conv.txt): a k block's
 * weights (taps x input channels x 64 floats) of 32 KiB stay in L1 while the row
 * block's 40 tiles reuse them (+3-4 points over 128 KiB L2 blocks on the weight-heavy
 * 16x16 / 8x8 layers, equal elsewhere); 240-pixel row blocks (60 KiB of accumulators)
 * beat 120 by ~5 points on 16x16 x 1280 (the weights stream from DRAM once per row
 * block). */
#define W_KBLOCK_BYTES (32 * 1024)
#define MC 240   /* pixels per row block: a multiple of 6 and 8; 240 x 64 accumulators */

#define PD_INLINE static inline __attribute__((always_inline))

PD_INLINE void tile(const pd_conv_tile *t, int mr, int nv) {
    __m512 acc[PD_CONV_MAX_MR][4];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[r][v] = t->load ? _mm512_loadu_ps(t->acc + (r * nv + v) * 16) : _mm512_setzero_ps();
    const size_t nr = t->nr, cin = t->cin;
    const int k = t->k;
    for (int q = 0; q < t->n_taps; q++) {
        const int32_t *pix = t->pix + q * PD_CONV_MAX_MR;
        const float *ar[PD_CONV_MAX_MR];
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) ar[r] = pix[r] >= 0 ? t->in + (size_t)pix[r] * cin : t->zero;
        const float *w = t->w[q];
        for (int kk = 0; kk < k; kk++, w += nr) {
            __m512 wv[4];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) wv[v] = _mm512_loadu_ps(w + v * 16);
#pragma GCC unroll 8
            for (int r = 0; r < mr; r++) {
                const __m512 ab = _mm512_set1_ps(ar[r][kk]);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(ab, wv[v], acc[r][v]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) _mm512_storeu_ps(t->acc + (r * nv + v) * 16, acc[r][v]);
}

/* tile() for nv = 1: 8 channels in ymm registers (AVX-512VL encodings). */
PD_INLINE void tile8(const pd_conv_tile *t, int mr) {
    __m256 acc[PD_CONV_MAX_MR];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) acc[r] = t->load ? _mm256_loadu_ps(t->acc + r * 8) : _mm256_setzero_ps();
    const size_t nr = t->nr, cin = t->cin;
    const int k = t->k;
    for (int q = 0; q < t->n_taps; q++) {
        const int32_t *pix = t->pix + q * PD_CONV_MAX_MR;
        const float *ar[PD_CONV_MAX_MR];
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) ar[r] = pix[r] >= 0 ? t->in + (size_t)pix[r] * cin : t->zero;
        const float *w = t->w[q];
        for (int kk = 0; kk < k; kk++, w += nr) {
            const __m256 wv = _mm256_loadu_ps(w);
#pragma GCC unroll 8
            for (int r = 0; r < mr; r++) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(ar[r] + kk), wv, acc[r]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) _mm256_storeu_ps(t->acc + r * 8, acc[r]);
}
#define PD_TILE8(mr) \
    static void tile8_##mr(const pd_conv_tile *t) { tile8(t, mr); }
PD_TILE8(1) PD_TILE8(2) PD_TILE8(3) PD_TILE8(4) PD_TILE8(5) PD_TILE8(6) PD_TILE8(7) PD_TILE8(8)
#undef PD_TILE8
static const pd_conv_tile_fn TILES_8[8 + 1] = {
    NULL, tile8_1, tile8_2, tile8_3, tile8_4, tile8_5, tile8_6, tile8_7, tile8_8,
};

#define PD_TILE(mr, nv) \
    static void tile_##mr##x##nv(const pd_conv_tile *t) { tile(t, mr, nv); }
PD_TILE(1, 4) PD_TILE(2, 4) PD_TILE(3, 4) PD_TILE(4, 4) PD_TILE(5, 4) PD_TILE(6, 4)
PD_TILE(1, 1) PD_TILE(2, 1) PD_TILE(3, 1) PD_TILE(4, 1) PD_TILE(5, 1) PD_TILE(6, 1) PD_TILE(7, 1)
PD_TILE(8, 1)
#undef PD_TILE

static const pd_conv_tile_fn TILES_64[6 + 1] = {
    NULL, tile_1x4, tile_2x4, tile_3x4, tile_4x4, tile_5x4, tile_6x4,
};
static const pd_conv_tile_fn TILES_16[8 + 1] = {
    NULL, tile_1x1, tile_2x1, tile_3x1, tile_4x1, tile_5x1, tile_6x1, tile_7x1, tile_8x1,
};

/* out[(p + r) * cout + j ..+cols) = act(acc + bias) (+ res); acc row stride acc_ld. */
PD_INLINE void epilogue_act(const pd_conv_args *a, const float *acc, int acc_ld, size_t p, int rows,
                            int j, int cols, pd_act act) {
    const float *bias = a->w->bias;
    const size_t cout = (size_t)a->w->n;
    for (int v = 0; v * 16 < cols; v++) {
        const __mmask16 m = v16_tail_mask((size_t)(cols - v * 16));
        const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + j + v * 16) : _mm512_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m512 x = _mm512_maskz_loadu_ps(m, acc + r * acc_ld + v * 16);
            if (bias) x = _mm512_add_ps(x, b);
            x = v16_act(x, act);
            const size_t o = (p + (size_t)r) * cout + (size_t)j + (size_t)v * 16;
            if (a->res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, a->res + o));
            _mm512_mask_storeu_ps(a->out + o, m, x);
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

void pd_f32_conv_6x64__avx512(const pd_conv_args *args) {
    static const pd_conv_blocking b = {
        .nr = 64, .lanes = 8, .mr = {0, 8, 8, 0, 0, 0, 0, 0, 6},
        .tiles = {NULL, TILES_8, TILES_16, NULL, NULL, NULL, NULL, NULL, TILES_64},
        .mc = MC, .w_kblock_bytes = W_KBLOCK_BYTES, .epilogue = epilogue,
        .gemm = pd_f32_gemm_6x64__avx512,
    };
    pd_conv_blocked(args, &b);
}
