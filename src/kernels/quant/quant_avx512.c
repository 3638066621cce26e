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
 *
 * pd_quantize_row__avx512: ggml's reference quantizers (quant_ref.c), block by block,
 * with the same bytes. Why each step is exact:
 *   - a block takes this path only when its 32 values are finite and its 1/d (and d)
 *     are finite; any other block goes to pd_quantize_row__ref;
 *   - max / min / max |x| of finite values do not depend on the order of comparison,
 *     except for the sign of a zero: the reference keeps the first element that reached
 *     the extreme (strict compares), so a zero extreme is re-read from the first element
 *     equal to it (Q4_0: the first |x| == amax; amax == 0 leaves max = +0);
 *   - d, id and the fp16 fields are computed by the same scalar expressions;
 *   - per element the same fp32 operations, each rounded (mul, add / sub, mul, add as
 *     separate intrinsics; ISO C mode, so no fma contraction);
 *   - roundf (half away from zero) is trunc(v), plus sign(v) when |v - trunc(v)| >= 0.5
 *     (v - trunc(v) is exact); to_i8 is a clamp to [-128, 127] then truncation (the
 *     clamp in fp32 first, so the conversion never overflows).
 */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "base/half.h"

#include "kernels/quant/quant.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

/* Block values k 0..15 (lo) and 16..31 (hi) as fp32, exactly as the reference. */
INLINE void block_f32(pd_dtype t, const uint8_t *blk, __m512 *lo, __m512 *hi) {
    if (t == PD_DTYPE_F16) {   /* F16 rows: 32 halves (VCVTPH2PS: exact) */
        *lo = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)blk));
        *hi = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 32)));
        return;
    }
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
    const size_t nr = (size_t)q->nr, k = (size_t)q->k;
    const int nb = q->kp / PD_Q_BLOCK;
    uint8_t tmp[64];
    for (int p = p0; p < p1; p++) {
        float *panel = dst + (size_t)(p - p0) * k * nr;
        for (int cg = 0; cg < q->nr; cg += 16) {
            const uint8_t *rows[16];
            const int ncols = group_rows(q, p, cg, rows);
            const __mmask16 cm = (__mmask16)((1u << ncols) - 1u);
            for (int b = 0; b < nb; b++) {
                __m512 lo[16], hi[16];
                for (int c = 0; c < 16; c++) {
                    if (rows[c]) block_f32(t, pd_q_block_at(t, rows[c], b, q->k, tmp), &lo[c], &hi[c]);
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
    const size_t nr = (size_t)q->nr, kp = (size_t)q->kp;
    const int nb = q->kp / PD_Q_BLOCK, k = q->k;
    uint8_t tmp[64];
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
                    block_f32(t, pd_q_block_at(t, rows[c], b, k, tmp), &lo, &hi);
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
    PD_ASSERT(q && pd_q_row_type(q->dtype) && q->q && q->nr >= 1);
    PD_ASSERT(q->kp % PD_Q_BLOCK == 0 && q->kp >= q->k && q->k >= 1);
    PD_ASSERT(p0 >= 0 && p0 <= p1 && (int64_t)p1 * q->nr < (int64_t)q->n + q->nr);
}

void pd_q_dequant_f32__avx512(const pd_packed_w *q, int p0, int p1, void *dst) {
    check(q, p0, p1);
    switch (q->dtype) {
    case PD_DTYPE_F16: panels_f32(PD_DTYPE_F16, q, p0, p1, dst); break;
    case PD_DTYPE_Q8_0: panels_f32(PD_DTYPE_Q8_0, q, p0, p1, dst); break;
    case PD_DTYPE_Q4_0: panels_f32(PD_DTYPE_Q4_0, q, p0, p1, dst); break;
    default: panels_f32(PD_DTYPE_Q4_1, q, p0, p1, dst); break;
    }
}

void pd_q_dequant_bf16__avx512(const pd_packed_w *q, int p0, int p1, void *dst) {
    check(q, p0, p1);
    switch (q->dtype) {
    case PD_DTYPE_F16: panels_bf16(PD_DTYPE_F16, q, p0, p1, dst); break;
    case PD_DTYPE_Q8_0: panels_bf16(PD_DTYPE_Q8_0, q, p0, p1, dst); break;
    case PD_DTYPE_Q4_0: panels_bf16(PD_DTYPE_Q4_0, q, p0, p1, dst); break;
    default: panels_bf16(PD_DTYPE_Q4_1, q, p0, p1, dst); break;
    }
}

/* ---- quantization ------------------------------------------------------------------ */

/* Whether all 32 lanes of lo, hi are finite (exponent not all ones). */
INLINE bool all_finite(__m512 lo, __m512 hi) {
    const __m512i e = _mm512_set1_epi32(0x7f800000);
    const __mmask16 a = _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(lo), e), e);
    const __mmask16 b = _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(hi), e), e);
    return (a | b) == 0;
}

INLINE __m512 vabs(__m512 v) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff))); }

/* x[first j with lanes lo/hi equal to v], as the reference's strict compares keep it. */
INLINE float first_equal(const float *x, __m512 lo, __m512 hi, float v) {
    const __m512 vv = _mm512_set1_ps(v);
    const uint32_t m = (uint32_t)_mm512_cmp_ps_mask(lo, vv, _CMP_EQ_OQ) |
                       (uint32_t)_mm512_cmp_ps_mask(hi, vv, _CMP_EQ_OQ) << 16;
    return x[__builtin_ctz(m)];   /* v is one of the lanes: m != 0 */
}

/* to_i8 of finite v: clamp to [-128, 127], truncate toward zero. */
INLINE __m512i to_i8(__m512 v) {
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(127.0f));
    return _mm512_cvttps_epi32(v);
}

/* roundf(v) for finite v (half away from zero). */
INLINE __m512 round_away(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(v, t);   /* exact */
    const __mmask16 up = _mm512_cmp_ps_mask(vabs(f), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u));
    const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    return _mm512_mask_add_ps(t, up, t, one);
}

INLINE void put_f16(uint8_t *p, float v) {
    const uint16_t h = pd_f32_to_f16(v);
    memcpy(p, &h, sizeof h);
}

/* Nibbles (lo & 15) | (hi & 15) << 4 of q = min(15, to_i8(v)) into 16 bytes at y. */
INLINE void store_nibbles(uint8_t *y, __m512 vlo, __m512 vhi) {
    const __m512i fifteen = _mm512_set1_epi32(15);
    const __m512i a = _mm512_and_si512(_mm512_min_epi32(to_i8(vlo), fifteen), fifteen);
    const __m512i b = _mm512_and_si512(_mm512_min_epi32(to_i8(vhi), fifteen), fifteen);
    _mm_storeu_si128((__m128i *)(void *)y, _mm512_cvtepi32_epi8(_mm512_or_si512(a, _mm512_slli_epi32(b, 4))));
}

static bool q8_0_block(const float *x, uint8_t *y) {
    const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
    if (!all_finite(lo, hi)) return false;
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(vabs(lo), vabs(hi)));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (!isfinite(id)) return false;
    put_f16(y, d);
    const __m512 vid = _mm512_set1_ps(id);
    const __m512 rlo = round_away(_mm512_mul_ps(lo, vid)), rhi = round_away(_mm512_mul_ps(hi, vid));
    _mm_storeu_si128((__m128i *)(void *)(y + 2), _mm512_cvtepi32_epi8(to_i8(rlo)));
    _mm_storeu_si128((__m128i *)(void *)(y + 18), _mm512_cvtepi32_epi8(to_i8(rhi)));
    return true;
}

static bool q4_0_block(const float *x, uint8_t *y) {
    const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
    if (!all_finite(lo, hi)) return false;
    const __m512 alo = vabs(lo), ahi = vabs(hi);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(alo, ahi));
    const float max = amax == 0.0f ? 0.0f : first_equal(x, alo, ahi, amax);
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (!isfinite(id)) return false;
    put_f16(y, d);
    const __m512 vid = _mm512_set1_ps(id), half8 = _mm512_set1_ps(8.5f);
    const __m512 plo = _mm512_mul_ps(lo, vid), phi = _mm512_mul_ps(hi, vid);
    store_nibbles(y + 2, _mm512_add_ps(plo, half8), _mm512_add_ps(phi, half8));
    return true;
}

static bool q4_1_block(const float *x, uint8_t *y) {
    const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
    if (!all_finite(lo, hi)) return false;
    float min = _mm512_reduce_min_ps(_mm512_min_ps(lo, hi));
    float max = _mm512_reduce_max_ps(_mm512_max_ps(lo, hi));
    if (min == 0.0f) min = first_equal(x, lo, hi, min);   /* the sign of the first zero */
    if (max == 0.0f) max = first_equal(x, lo, hi, max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (!isfinite(d) || !isfinite(id)) return false;
    put_f16(y, d);
    put_f16(y + 2, min);
    const __m512 vid = _mm512_set1_ps(id), vmin = _mm512_set1_ps(min), half = _mm512_set1_ps(0.5f);
    const __m512 slo = _mm512_sub_ps(lo, vmin), shi = _mm512_sub_ps(hi, vmin);
    const __m512 plo = _mm512_mul_ps(slo, vid), phi = _mm512_mul_ps(shi, vid);
    store_nibbles(y + 4, _mm512_add_ps(plo, half), _mm512_add_ps(phi, half));
    return true;
}

void pd_quantize_row__avx512(pd_dtype t, const float *x, void *dst, size_t n) {
    PD_ASSERT(pd_dtype_is_quant(t) && n % PD_Q_BLOCK == 0);
    const size_t bs = pd_dtype_size(t);
    uint8_t *y = dst;
    for (size_t b = 0; b < n / PD_Q_BLOCK; b++, x += PD_Q_BLOCK, y += bs) {
        const bool ok = t == PD_DTYPE_Q8_0   ? q8_0_block(x, y)
                        : t == PD_DTYPE_Q4_0 ? q4_0_block(x, y)
                                             : q4_1_block(x, y);
        if (!ok) pd_quantize_row__ref(t, x, y, PD_Q_BLOCK);
    }
}
