/*
 * vmath_avx2.h - 8-lane fp32 exp, sigmoid and activations for AVX2 files.
 *
 * Include only from *_avx2.c files (built with -mavx2 -mfma -mf16c). Same
 * approximations as vmath_avx512.h (coefficients in vmath_coef.h), so AVX2 and
 * AVX-512 agree to rounding.
 *   v8_exp: within ~2 ulp of expf for results >= 1.65e-38; x < -87 -> 0 (never a
 *     denormal), x > 88.72 -> inf, NaN -> NaN. AVX2 has no scalef: 2^n (n in
 *     [-126, 129]) is applied as two normal factors 2^(n/2) and 2^(n - n/2), so
 *     overflow gives inf.
 */
#ifndef PD_KERNELS_VMATH_AVX2_H
#define PD_KERNELS_VMATH_AVX2_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/act/vmath_coef.h"
#include "kernels/kernels.h"

#define PD_V8_INLINE static inline __attribute__((always_inline))

PD_V8_INLINE __m256 v8_pow2i(__m256i n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

PD_V8_INLINE __m256 v8_exp(__m256 x) {
    __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(PD_EXP_X_MIN), _CMP_LT_OQ);
    /* max/min return the second operand when one is NaN: x stays NaN. */
    x = _mm256_max_ps(_mm256_set1_ps(PD_EXP_X_MIN), x);
    x = _mm256_min_ps(_mm256_set1_ps(PD_EXP_X_MAX), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(PD_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(PD_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(PD_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(PD_EXP_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PD_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PD_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PD_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PD_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PD_EXP_C1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PD_EXP_C0));
    __m256i ni = _mm256_cvtps_epi32(n);   /* NaN: 0x80000000, harmless as p is NaN */
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, v8_pow2i(n1)), v8_pow2i(n2));
    return _mm256_andnot_ps(tiny, y);
}

/* s = 1 / (1 + e), e = exp(-|x|): sigmoid = s for x >= 0, e * s for x < 0. */
PD_V8_INLINE __m256 v8_sigmoid(__m256 x) {
    __m256 e = v8_exp(_mm256_or_ps(x, _mm256_set1_ps(-0.0f)));   /* exp(-|x|) */
    __m256 s = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(s, _mm256_mul_ps(s, e), neg);
}

/* x * sigmoid(k x), with -inf -> -0. */
PD_V8_INLINE __m256 v8_x_sigmoid(__m256 x, float k) {
    __m256 y = _mm256_mul_ps(x, v8_sigmoid(_mm256_mul_ps(x, _mm256_set1_ps(k))));
    __m256 neg_inf = _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
    return _mm256_blendv_ps(y, _mm256_set1_ps(-0.0f), neg_inf);
}

PD_V8_INLINE __m256 v8_lookup8(__m256i idx, const float *tbl) {
    return _mm256_permutevar8x32_ps(_mm256_loadu_ps(tbl), idx);
}

PD_V8_INLINE __m256 v8_gelu(__m256 x) {
    __m256 u = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    u = _mm256_min_ps(_mm256_set1_ps(PD_GELU_U_MAX), u);   /* NaN stays NaN */
    __m256i idx = _mm256_min_epi32(_mm256_cvttps_epi32(u), _mm256_set1_epi32(4));
    /* Compare masks are all-ones (-1): subtracting adds one per boundary passed. */
    idx = _mm256_sub_epi32(idx, _mm256_castps_si256(_mm256_cmp_ps(u, _mm256_set1_ps(6.0f), _CMP_GE_OQ)));
    idx = _mm256_sub_epi32(idx, _mm256_castps_si256(_mm256_cmp_ps(u, _mm256_set1_ps(8.0f), _CMP_GE_OQ)));
    idx = _mm256_sub_epi32(idx, _mm256_castps_si256(_mm256_cmp_ps(u, _mm256_set1_ps(11.0f), _CMP_GE_OQ)));
    __m256 t = _mm256_sub_ps(u, v8_lookup8(idx, PD_GELU_CENTER));
    __m256 g = v8_lookup8(idx, PD_GELU_COEF[7]);
    for (int j = 6; j >= 0; j--) g = _mm256_fmadd_ps(g, t, v8_lookup8(idx, PD_GELU_COEF[j]));
    __m256 hi = _mm256_mul_ps(u, u);
    __m256 lo = _mm256_fmsub_ps(u, u, hi);
    __m256 e = v8_exp(_mm256_mul_ps(hi, _mm256_set1_ps(-0.5f)));
    e = _mm256_fmadd_ps(e, _mm256_mul_ps(lo, _mm256_set1_ps(-0.5f)), e);
    __m256 h = _mm256_mul_ps(e, g);
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), h), h, neg);
    __m256 y = _mm256_mul_ps(x, phi);
    __m256 neg_big = _mm256_cmp_ps(x, _mm256_set1_ps(-PD_GELU_U_MAX), _CMP_LE_OQ);
    return _mm256_blendv_ps(y, _mm256_set1_ps(-0.0f), neg_big);
}

PD_V8_INLINE __m256 v8_act(__m256 x, pd_act act) {
    switch (act) {
    case PD_ACT_GELU: return v8_gelu(x);
    case PD_ACT_QUICK_GELU: return v8_x_sigmoid(x, PD_QUICK_GELU_K);
    case PD_ACT_SILU: return v8_x_sigmoid(x, 1.0f);
    case PD_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), x);   /* NaN x -> x */
    case PD_ACT_NONE: break;
    }
    return x;
}

/* Lane mask (all-ones int32 lanes) of the first n lanes, n in [0, 8]. */
static const int32_t PD_V8_MASK_TBL[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

PD_V8_INLINE __m256i v8_tail_mask(size_t n) {
    return _mm256_loadu_si256((const __m256i *)(PD_V8_MASK_TBL + 8 - (n < 8 ? n : 8)));
}

/* Horizontal sum / max of 8 lanes. */
PD_V8_INLINE float v8_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

PD_V8_INLINE float v8_hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
