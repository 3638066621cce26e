/*
 * vmath_avx512.h - 16-lane fp32 exp, sigmoid and activations for AVX-512 files.
 *
 * Include only from *_avx512.c / *_amx.c files (built with -mavx512f...). Everything
 * is static inline; the approximations and their error bounds are in vmath_coef.h.
 *   v16_exp:  within ~2 ulp of expf for results >= 1.65e-38; x < -87 -> 0 (never a
 *             denormal), x > 88.72 -> inf, NaN -> NaN. scalef does the 2^n scaling.
 *   v16_gelu, v16_silu, v16_quick_gelu: see act.h for the special values.
 */
#ifndef PD_KERNELS_VMATH_AVX512_H
#define PD_KERNELS_VMATH_AVX512_H

#include <immintrin.h>
#include <math.h>

#include "kernels/act/vmath_coef.h"
#include "kernels/kernels.h"

#define PD_V16_INLINE static inline __attribute__((always_inline))

PD_V16_INLINE __m512 v16_exp(__m512 x) {
    __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(PD_EXP_X_MIN), _CMP_LT_OQ);
    /* max/min return the second operand when one is NaN: x stays NaN. */
    x = _mm512_max_ps(_mm512_set1_ps(PD_EXP_X_MIN), x);
    x = _mm512_min_ps(_mm512_set1_ps(PD_EXP_X_MAX), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(PD_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(PD_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(PD_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(PD_EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PD_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PD_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PD_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PD_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PD_EXP_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PD_EXP_C0));
    return _mm512_mask_mov_ps(_mm512_scalef_ps(p, n), tiny, _mm512_setzero_ps());
}

/* 1 / (1 + exp(-x)) evaluated as s = 1 / (1 + e), e = exp(-|x|) (never overflows):
 * sigmoid = s for x >= 0, e * s for x < 0, so tiny results keep their precision. */
PD_V16_INLINE __m512 v16_sigmoid(__m512 x) {
    __m512 e = v16_exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
    __m512 s = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(s, neg, s, e);
}

/* x * sigmoid(k x), with -inf -> -0. */
PD_V16_INLINE __m512 v16_x_sigmoid(__m512 x, float k) {
    __m512 y = _mm512_mul_ps(x, v16_sigmoid(_mm512_mul_ps(x, _mm512_set1_ps(k))));
    __mmask16 neg_inf = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    return _mm512_mask_mov_ps(y, neg_inf, _mm512_set1_ps(-0.0f));
}

/* tbl[idx] per lane for an 8-entry table (idx 0..7; the table sits in the low half). */
PD_V16_INLINE __m512 v16_lookup8(__m512i idx, const float *tbl) {
    return _mm512_permutexvar_ps(idx, _mm512_zextps256_ps512(_mm256_loadu_ps(tbl)));
}

PD_V16_INLINE __m512 v16_gelu(__m512 x) {
    __m512 u = _mm512_abs_ps(x);
    u = _mm512_min_ps(_mm512_set1_ps(PD_GELU_U_MAX), u);  /* NaN stays NaN */
    __m512i idx = _mm512_min_epi32(_mm512_cvttps_epi32(u), _mm512_set1_epi32(4));
    __m512i one = _mm512_set1_epi32(1);
    __mmask16 ge6 = _mm512_cmp_ps_mask(u, _mm512_set1_ps(6.0f), _CMP_GE_OQ);
    __mmask16 ge8 = _mm512_cmp_ps_mask(u, _mm512_set1_ps(8.0f), _CMP_GE_OQ);
    __mmask16 ge11 = _mm512_cmp_ps_mask(u, _mm512_set1_ps(11.0f), _CMP_GE_OQ);
    idx = _mm512_mask_add_epi32(idx, ge6, idx, one);
    idx = _mm512_mask_add_epi32(idx, ge8, idx, one);
    idx = _mm512_mask_add_epi32(idx, ge11, idx, one);
    __m512 t = _mm512_sub_ps(u, v16_lookup8(idx, PD_GELU_CENTER));
    __m512 g = v16_lookup8(idx, PD_GELU_COEF[7]);
    for (int j = 6; j >= 0; j--) g = _mm512_fmadd_ps(g, t, v16_lookup8(idx, PD_GELU_COEF[j]));
    /* exp(-u^2/2) with u^2 = hi + lo exactly: exp(-hi/2) * (1 - lo/2). */
    __m512 hi = _mm512_mul_ps(u, u);
    __m512 lo = _mm512_fmsub_ps(u, u, hi);
    __m512 e = v16_exp(_mm512_mul_ps(hi, _mm512_set1_ps(-0.5f)));
    e = _mm512_fmadd_ps(e, _mm512_mul_ps(lo, _mm512_set1_ps(-0.5f)), e);
    __m512 h = _mm512_mul_ps(e, g);
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 phi = _mm512_mask_mov_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), h), neg, h);
    __m512 y = _mm512_mul_ps(x, phi);
    __mmask16 neg_big = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-PD_GELU_U_MAX), _CMP_LE_OQ);
    return _mm512_mask_mov_ps(y, neg_big, _mm512_set1_ps(-0.0f));
}

/* act(x); act is a compile-time constant in the callers' specialised loops. */
PD_V16_INLINE __m512 v16_act(__m512 x, pd_act act) {
    switch (act) {
    case PD_ACT_GELU: return v16_gelu(x);
    case PD_ACT_QUICK_GELU: return v16_x_sigmoid(x, PD_QUICK_GELU_K);
    case PD_ACT_SILU: return v16_x_sigmoid(x, 1.0f);
    case PD_ACT_RELU: return _mm512_max_ps(_mm512_setzero_ps(), x);   /* NaN x -> x */
    case PD_ACT_NONE: break;
    }
    return x;
}

/* Mask of the first n (< 16 or more) lanes. */
PD_V16_INLINE __mmask16 v16_tail_mask(size_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

#endif
