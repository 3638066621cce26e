/*
 * quant_avx512.c - dequant_panels for AVX-512 tables (quant.h): F32 panels (the fp32
 * tables, nr 64) and BF16 VNNI panels (AVX512-BF16 and AMX tables, nr 32), any nr.
 *
 * Per panel, per group of 16 columns, per block of 32 k: each column's block becomes
 * vectors along k (one load of its bytes, widen, (float)q * d [+ m], as the reference),
 * then a 16 x 16 transpose turns 16 columns x 16 k into 16 rows of the panel (F32: two
 * transposes of floats per block; BF16: the block rounded to bf16 pairs is 16 dwords
 * per column, one transpose of dwords). Rows are stored with a column mask (group tail)
 * and, for F32, only for k < q->k.
 *
 * Bit-identity with the reference: the same fp32 multiply (and separate add) per
 * element; fp16 fields widened by VCVTPH2PS (exact; a NaN comes out quiet either way
 * after the multiply); bf16 rounding to nearest even done in integers exactly as
 * pd_f32_to_bf16 (NaN: quiet, sign kept).
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

/* Block values k 0..15 (lo) and 16..31 (hi) as fp32, exactly as the reference. */
INLINE void block_f32(pd_dtype t, const uint8_t *blk, __m512 *lo, __m512 *hi) {
    const __m512 d = _mm512_set1_ps(f16_at(blk));
    if (t == PD_DTYPE_Q8_0) {
        const __m512i a = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(blk + 2)));
        const __m512i b = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(blk + 18)));
        *lo = _mm512_mul_ps(_mm512_cvtepi32_ps(a), d);
        *hi = _mm512_mul_ps(_mm512_cvtepi32_ps(b), d);
        return;
    }
    const uint8_t *qs = blk + (t == PD_DTYPE_Q4_1 ? 4 : 2);
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)qs));
    __m512i a = _mm512_and_si512(v, _mm512_set1_epi32(15)), b = _mm512_srli_epi32(v, 4);
    if (t == PD_DTYPE_Q4_0) {
        a = _mm512_sub_epi32(a, _mm512_set1_epi32(8));
        b = _mm512_sub_epi32(b, _mm512_set1_epi32(8));
        *lo = _mm512_mul_ps(_mm512_cvtepi32_ps(a), d);
        *hi = _mm512_mul_ps(_mm512_cvtepi32_ps(b), d);
        return;
    }
    const __m512 m = _mm512_set1_ps(f16_at(blk + 2));
    const __m512 pa = _mm512_mul_ps(_mm512_cvtepi32_ps(a), d);
    const __m512 pb = _mm512_mul_ps(_mm512_cvtepi32_ps(b), d);
    *lo = _mm512_add_ps(pa, m);
    *hi = _mm512_add_ps(pb, m);
}

/* r[i][e] -> r[e][i] for 16 vectors of 16 lanes. */
INLINE void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + i], lane l: element 4l + i of rows 4g .. 4g + 3 */
    for (int g = 0; g < 4; g++) {
        const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
        const __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for (int i = 0; i < 4; i++) {
        const __m512 a0 = _mm512_shuffle_f32x4(u[i], u[4 + i], 0x88);     /* lanes 0, 2 */
        const __m512 a1 = _mm512_shuffle_f32x4(u[i], u[4 + i], 0xdd);     /* lanes 1, 3 */
        const __m512 b0 = _mm512_shuffle_f32x4(u[8 + i], u[12 + i], 0x88);
        const __m512 b1 = _mm512_shuffle_f32x4(u[8 + i], u[12 + i], 0xdd);
        r[i] = _mm512_shuffle_f32x4(a0, b0, 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(a0, b0, 0xdd);
        r[4 + i] = _mm512_shuffle_f32x4(a1, b1, 0x88);
        r[12 + i] = _mm512_shuffle_f32x4(a1, b1, 0xdd);
    }
}

/* Row pointers of a column group: NULL for columns past n or past the group. */
INLINE int group_rows(const pd_packed_w *q, int p, int cg, const uint8_t *rows[16]) {
    const int ncols = PD_MIN(16, q->nr - cg);
    for (int c = 0; c < 16; c++) {
        const int j = p * q->nr + cg + c;
        rows[c] = c < ncols && j < q->n ? q->q + (size_t)j * q->qrow : NULL;
    }
    return ncols;
}

INLINE void panels_f32(pd_dtype t, const pd_packed_w *q, int p0, int p1, float *dst) {
    const size_t nr = (size_t)q->nr, k = (size_t)q->k, bs = pd_dtype_size(t);
    const int nb = q->kp / PD_Q_BLOCK;
    for (int p = p0; p < p1; p++) {
        float *panel = dst + (size_t)(p - p0) * k * nr;
        for (int cg = 0; cg < q->nr; cg += 16) {
            const uint8_t *rows[16];
            const int ncols = group_rows(q, p, cg, rows);
            const __mmask16 cm = (__mmask16)((1u << ncols) - 1u);
            for (int b = 0; b < nb; b++) {
                __m512 lo[16], hi[16];
                for (int c = 0; c < 16; c++) {
                    if (rows[c]) block_f32(t, rows[c] + (size_t)b * bs, &lo[c], &hi[c]);
                    else lo[c] = hi[c] = _mm512_setzero_ps();
                }
                transpose16(lo);
                transpose16(hi);
                const size_t k0 = (size_t)b * PD_Q_BLOCK;
                float *out = panel + k0 * nr + (size_t)cg;
                if (k0 + PD_Q_BLOCK <= k) {
                    for (int e = 0; e < 16; e++) _mm512_mask_storeu_ps(out + (size_t)e * nr, cm, lo[e]);
                    for (int e = 0; e < 16; e++) _mm512_mask_storeu_ps(out + (size_t)(16 + e) * nr, cm, hi[e]);
                } else {
                    for (int e = 0; e < 16 && k0 + (size_t)e < k; e++)
                        _mm512_mask_storeu_ps(out + (size_t)e * nr, cm, lo[e]);
                    for (int e = 0; e < 16 && k0 + 16 + (size_t)e < k; e++)
                        _mm512_mask_storeu_ps(out + (size_t)(16 + e) * nr, cm, hi[e]);
                }
            }
        }
    }
}

/* pd_f32_to_bf16 on 16 lanes, as 16 words. */
INLINE __m256i to_bf16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i top = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(top, _mm512_set1_epi32(1))));
    r = _mm512_srli_epi32(r, 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(top, _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

INLINE void panels_bf16(pd_dtype t, const pd_packed_w *q, int p0, int p1, uint32_t *dst) {
    const size_t nr = (size_t)q->nr, kp = (size_t)q->kp, bs = pd_dtype_size(t);
    const int nb = q->kp / PD_Q_BLOCK, k = q->k;
    for (int p = p0; p < p1; p++) {
        uint32_t *panel = dst + (size_t)(p - p0) * (kp / 2) * nr;   /* k-pair rows of nr dwords */
        for (int cg = 0; cg < q->nr; cg += 16) {
            const uint8_t *rows[16];
            const int ncols = group_rows(q, p, cg, rows);
            const __mmask16 cm = (__mmask16)((1u << ncols) - 1u);
            for (int b = 0; b < nb; b++) {
                const int live = k - b * PD_Q_BLOCK;   /* k indices of the block < k */
                const __mmask16 mlo = live >= 16 ? 0xffff : (__mmask16)((1u << PD_MAX(live, 0)) - 1u);
                const __mmask16 mhi = live >= 32 ? 0xffff : (__mmask16)((1u << PD_MAX(live - 16, 0)) - 1u);
                __m512 pr[16];
                for (int c = 0; c < 16; c++) {
                    if (!rows[c]) {
                        pr[c] = _mm512_setzero_ps();
                        continue;
                    }
                    __m512 lo, hi;
                    block_f32(t, rows[c] + (size_t)b * bs, &lo, &hi);
                    lo = _mm512_maskz_mov_ps(mlo, lo);
                    hi = _mm512_maskz_mov_ps(mhi, hi);
                    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(to_bf16(lo)), to_bf16(hi), 1);
                    pr[c] = _mm512_castsi512_ps(w);   /* dword e = (k 2e, k 2e + 1) */
                }
                transpose16(pr);
                uint32_t *out = panel + (size_t)b * 16 * nr + (size_t)cg;
                for (int e = 0; e < 16; e++)
                    _mm512_mask_storeu_epi32(out + (size_t)e * nr, cm, _mm512_castps_si512(pr[e]));
            }
        }
    }
}

static void check(const pd_packed_w *q, int p0, int p1) {
    PD_ASSERT(q && pd_dtype_is_quant(q->dtype) && q->q && q->nr >= 1);
    PD_ASSERT(q->kp % PD_Q_BLOCK == 0 && q->kp >= q->k && q->k >= 1);
    PD_ASSERT(p0 >= 0 && p0 <= p1 && (int64_t)p1 * q->nr < (int64_t)q->n + q->nr);
}

void pd_q_dequant_f32__avx512(const pd_packed_w *q, int p0, int p1, void *dst) {
    check(q, p0, p1);
    switch (q->dtype) {
    case PD_DTYPE_Q8_0: panels_f32(PD_DTYPE_Q8_0, q, p0, p1, dst); break;
    case PD_DTYPE_Q4_0: panels_f32(PD_DTYPE_Q4_0, q, p0, p1, dst); break;
    default: panels_f32(PD_DTYPE_Q4_1, q, p0, p1, dst); break;
    }
}

void pd_q_dequant_bf16__avx512(const pd_packed_w *q, int p0, int p1, void *dst) {
    check(q, p0, p1);
    switch (q->dtype) {
    case PD_DTYPE_Q8_0: panels_bf16(PD_DTYPE_Q8_0, q, p0, p1, dst); break;
    case PD_DTYPE_Q4_0: panels_bf16(PD_DTYPE_Q4_0, q, p0, p1, dst); break;
    default: panels_bf16(PD_DTYPE_Q4_1, q, p0, p1, dst); break;
    }
}
