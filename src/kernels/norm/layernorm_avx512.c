/*
 * layernorm_avx512.c - row layer norm, 16 lanes x 2 (contract: norm.h).
 * Two passes over the row for mean and biased variance (fp32 lane sums of x - x[0],
 * so a large common offset costs no precision), a third writes
 * (x - mean) * rstd * gamma + beta. Tails use masked loads/stores.
 */
#include <math.h>

#include "kernels/act/vmath_avx512.h"
#include "kernels/norm/norm.h"

void pd_f32_layernorm_32__avx512(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                                 int cols, const float *gamma, const float *beta, float eps) {
    if (cols <= 0) return;
    const size_t n = (size_t)cols;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        /* Shifted by x[0]: sums of x - x0 stay small when |mean| >> std. */
        const __m512 shift = _mm512_set1_ps(xr[0]);
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        size_t c = 0;
        for (; c + 32 <= n; c += 32) {
            s0 = _mm512_add_ps(s0, _mm512_sub_ps(_mm512_loadu_ps(xr + c), shift));
            s1 = _mm512_add_ps(s1, _mm512_sub_ps(_mm512_loadu_ps(xr + c + 16), shift));
        }
        for (; c < n; c += 16) {
            __mmask16 m = v16_tail_mask(n - c);
            s0 = _mm512_add_ps(s0, _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xr + c), shift));
        }
        /* mean = x0 + delta; x - mean is formed as (x - x0) - delta. */
        const __m512 delta = _mm512_set1_ps(_mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)cols);

        s0 = _mm512_setzero_ps();
        s1 = _mm512_setzero_ps();
        for (c = 0; c + 32 <= n; c += 32) {
            __m512 d0 = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + c), shift), delta);
            __m512 d1 = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + c + 16), shift), delta);
            s0 = _mm512_fmadd_ps(d0, d0, s0);
            s1 = _mm512_fmadd_ps(d1, d1, s1);
        }
        for (; c < n; c += 16) {
            __mmask16 m = v16_tail_mask(n - c);
            __m512 d = _mm512_maskz_sub_ps(m, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + c), shift), delta);
            s0 = _mm512_fmadd_ps(d, d, s0);
        }
        const double var = (double)_mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / cols;
        const __m512 vrstd = _mm512_set1_ps((float)(1.0 / sqrt(var + (double)eps)));

        for (c = 0; c < n; c += 16) {
            __mmask16 m = v16_tail_mask(n - c);
            __m512 d = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + c), shift), delta);
            __m512 v = _mm512_mul_ps(d, vrstd);
            if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + c));
            if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, beta + c));
            _mm512_mask_storeu_ps(yr + c, m, v);
        }
    }
}
