/*
 * groupnorm_avx512.c - GroupNorm (+ SiLU) passes for AVX-512, 16 lanes (contract and
 * scheme: groupnorm.h; the blocking is pd_groupnorm_blocked).
 *
 * Both passes walk pixel rows in memory order (row outer, channels inner: one
 * contiguous run per pixel), the per-channel sums staying in an L1-resident array.
 * Channel tails use masked loads/stores: nothing outside [0, len) of a row is touched.
 * SiLU is v16_x_sigmoid (vmath_avx512.h), the same approximation as act_f32.
 */
#include <string.h>

#include "kernels/act/vmath_avx512.h"
#include "kernels/norm/groupnorm.h"

#define PD_INLINE static inline __attribute__((always_inline))

PD_INLINE void stats_run(float *acc, const float *x, size_t ld, int rows, int len,
                         const float *shift, const float *delta, bool square) {
    const size_t n = (size_t)len;
    memset(acc, 0, n * sizeof(float));
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ld;
        for (size_t j = 0; j < n; j += 16) {
            const __mmask16 m = v16_tail_mask(n - j);
            __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + j), _mm512_maskz_loadu_ps(m, shift + j));
            d = _mm512_sub_ps(d, _mm512_maskz_loadu_ps(m, delta + j));
            const __m512 a = _mm512_maskz_loadu_ps(m, acc + j);
            _mm512_mask_storeu_ps(acc + j, m, square ? _mm512_fmadd_ps(d, d, a) : _mm512_add_ps(a, d));
        }
    }
}

static void stats(float *acc, const float *x, size_t ld, int rows, int len, const float *shift,
                  const float *delta, bool square) {
    if (square) stats_run(acc, x, ld, rows, len, shift, delta, true);
    else stats_run(acc, x, ld, rows, len, shift, delta, false);
}

PD_INLINE void apply_run(float *y, const float *x, size_t ld, int rows, int len, const float *shift,
                         const float *delta, const float *scale, const float *beta, bool silu) {
    const size_t n = (size_t)len;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ld;
        float *yr = y + (size_t)r * ld;
        for (size_t j = 0; j < n; j += 16) {
            const __mmask16 m = v16_tail_mask(n - j);
            __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + j), _mm512_maskz_loadu_ps(m, shift + j));
            d = _mm512_sub_ps(d, _mm512_maskz_loadu_ps(m, delta + j));
            __m512 v = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, scale + j), _mm512_maskz_loadu_ps(m, beta + j));
            if (silu) v = v16_x_sigmoid(v, 1.0f);
            _mm512_mask_storeu_ps(yr + j, m, v);
        }
    }
}

static void apply(float *y, const float *x, size_t ld, int rows, int len, const float *shift,
                  const float *delta, const float *scale, const float *beta, bool silu) {
    if (silu) apply_run(y, x, ld, rows, len, shift, delta, scale, beta, true);
    else apply_run(y, x, ld, rows, len, shift, delta, scale, beta, false);
}

void pd_f32_groupnorm_32__avx512(float *y, const float *x, int hw, int c, int groups, int g0,
                                 int g1, const float *gamma, const float *beta, float eps,
                                 bool silu) {
    static const pd_groupnorm_passes passes = {stats, apply};
    pd_groupnorm_blocked(&passes, y, x, hw, c, groups, g0, g1, gamma, beta, eps, silu);
}
