/*
 * quant_avx2.c - dequant_panels into F32 panels for AVX2 tables (quant.h; nr 16 or 24,
 * any nr works).
 *
 * Per panel, per group of 8 columns, per block of 32 k: each column's block becomes
 * four 8-lane vectors along k ((float)q * d [+ m], exactly the reference's ops), then
 * four 8 x 8 transposes give 32 rows of the panel, stored whole, or with a column mask
 * in a group tail (VMASKMOVPS stores are slow on AMD: only there), and only for
 * k < q->k. fp16 fields are widened by VCVTPH2PS (exact).
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/quant/quant.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

INLINE __m128i load8(const uint8_t *p) { return _mm_loadl_epi64((const __m128i *)(const void *)p); }

/* v[h] = block values k 8h .. 8h + 7 as fp32. */
INLINE void block_f32(pd_dtype t, const uint8_t *blk, __m256 v[4]) {
    if (t == PD_DTYPE_F16) {   /* F16 rows: 32 halves (VCVTPH2PS: exact) */
        for (int h = 0; h < 4; h++) v[h] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(blk + 16 * h)));
        return;
    }
    const __m256 d = _mm256_set1_ps(f16_at(blk));
    if (t == PD_DTYPE_Q8_0) {
        for (int h = 0; h < 4; h++)
            v[h] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(load8(blk + 2 + 8 * h))), d);
        return;
    }
    const uint8_t *qs = blk + (t == PD_DTYPE_Q4_1 ? 4 : 2);
    const __m256i a = _mm256_cvtepu8_epi32(load8(qs)), b = _mm256_cvtepu8_epi32(load8(qs + 8));
    const __m256i f = _mm256_set1_epi32(15);
    __m256i q[4] = {_mm256_and_si256(a, f), _mm256_and_si256(b, f), _mm256_srli_epi32(a, 4),
                    _mm256_srli_epi32(b, 4)};
    if (t == PD_DTYPE_Q4_0) {
        for (int h = 0; h < 4; h++)
            v[h] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q[h], _mm256_set1_epi32(8))), d);
        return;
    }
    const __m256 m = _mm256_set1_ps(f16_at(blk + 2));
    for (int h = 0; h < 4; h++) {
        const __m256 pr = _mm256_mul_ps(_mm256_cvtepi32_ps(q[h]), d);
        v[h] = _mm256_add_ps(pr, m);
    }
}

/* r[i][e] -> r[e][i] for 8 vectors of 8 lanes. */
INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + i], lane l: element 4l + i of rows 4g .. 4g + 3 */
    for (int g = 0; g < 2; g++) {
        u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
    }
}

INLINE void panels_f32(pd_dtype t, const pd_packed_w *q, int p0, int p1, float *dst) {
    const size_t nr = (size_t)q->nr, k = (size_t)q->k;
    const int nb = q->kp / PD_Q_BLOCK;
    uint8_t tmp[64];
    for (int p = p0; p < p1; p++) {
        float *panel = dst + (size_t)(p - p0) * k * nr;
        for (int cg = 0; cg < q->nr; cg += 8) {
            const int ncols = PD_MIN(8, q->nr - cg);
            const uint8_t *rows[8];
            for (int c = 0; c < 8; c++) {
                const int j = p * q->nr + cg + c;
                rows[c] = c < ncols && j < q->n ? q->q + (size_t)j * q->qrow : NULL;
            }
            const __m256i cm = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            for (int b = 0; b < nb; b++) {
                __m256 v[4][8];   /* [k quarter][column] */
                for (int c = 0; c < 8; c++) {
                    __m256 col[4];
                    if (rows[c]) block_f32(t, pd_q_block_at(t, rows[c], b, q->k, tmp), col);
                    else col[0] = col[1] = col[2] = col[3] = _mm256_setzero_ps();
                    for (int h = 0; h < 4; h++) v[h][c] = col[h];
                }
                const size_t k0 = (size_t)b * PD_Q_BLOCK;
                for (int h = 0; h < 4; h++) {
                    transpose8(v[h]);
                    for (int e = 0; e < 8; e++) {
                        const size_t kk = k0 + 8 * (size_t)h + (size_t)e;
                        if (kk >= k) break;
                        if (ncols == 8) _mm256_storeu_ps(panel + kk * nr + (size_t)cg, v[h][e]);
                        else _mm256_maskstore_ps(panel + kk * nr + (size_t)cg, cm, v[h][e]);
                    }
                }
            }
        }
    }
}

void pd_q_dequant_f32__avx2(const pd_packed_w *q, int p0, int p1, void *dst) {
    PD_ASSERT(q && pd_q_row_type(q->dtype) && q->q && q->nr >= 1);
    PD_ASSERT(q->kp % PD_Q_BLOCK == 0 && q->kp >= q->k && q->k >= 1);
    PD_ASSERT(p0 >= 0 && p0 <= p1 && (int64_t)p1 * q->nr < (int64_t)q->n + q->nr);
    switch (q->dtype) {
    case PD_DTYPE_F16: panels_f32(PD_DTYPE_F16, q, p0, p1, dst); break;
    case PD_DTYPE_Q8_0: panels_f32(PD_DTYPE_Q8_0, q, p0, p1, dst); break;
    case PD_DTYPE_Q4_0: panels_f32(PD_DTYPE_Q4_0, q, p0, p1, dst); break;
    default: panels_f32(PD_DTYPE_Q4_1, q, p0, p1, dst); break;
    }
}
