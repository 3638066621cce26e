/*
 * layernorm_avx2.c - row layer norm, 8 lanes x 2 (contract: norm.h).
 * Two passes over the row for mean and biased variance (fp32 lane sums of x - x[0],
 * so a large common offset costs no precision), a third writes
 * (x - mean) * rstd * gamma + beta. Tails use maskload/maskstore.
 */
#include <math.h>

#include "kernels/act/vmath_avx2.h"
#include "kernels/norm/norm.h"

void pd_f32_layernorm_16__avx2(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                               int cols, const float *gamma, const float *beta, float eps) {
    if (cols <= 0) return;
    const size_t n = (size_t)cols;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        /* Shifted by x[0]: sums of x - x0 stay small when |mean| >> std. */
        const __m256 shift = _mm256_set1_ps(xr[0]);
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        size_t c = 0;
        for (; c + 16 <= n; c += 16) {
            s0 = _mm256_add_ps(s0, _mm256_sub_ps(_mm256_loadu_ps(xr + c), shift));
            s1 = _mm256_add_ps(s1, _mm256_sub_ps(_mm256_loadu_ps(xr + c + 8), shift));
        }
        for (; c < n; c += 8) {
            __m256i m = v8_tail_mask(n - c);
            __m256 d = _mm256_sub_ps(_mm256_maskload_ps(xr + c, m), shift);
            s0 = _mm256_add_ps(s0, _mm256_and_ps(d, _mm256_castsi256_ps(m)));
        }
        /* mean = x0 + delta; x - mean is formed as (x - x0) - delta. */
        const __m256 delta = _mm256_set1_ps(v8_hsum(_mm256_add_ps(s0, s1)) / (float)cols);

        s0 = _mm256_setzero_ps();
        s1 = _mm256_setzero_ps();
        for (c = 0; c + 16 <= n; c += 16) {
            __m256 d0 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), shift), delta);
            __m256 d1 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c + 8), shift), delta);
            s0 = _mm256_fmadd_ps(d0, d0, s0);
            s1 = _mm256_fmadd_ps(d1, d1, s1);
        }
        for (; c < n; c += 8) {
            __m256i m = v8_tail_mask(n - c);
            __m256 d = _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + c, m), shift), delta);
            d = _mm256_and_ps(d, _mm256_castsi256_ps(m));
            s0 = _mm256_fmadd_ps(d, d, s0);
        }
        const double var = (double)v8_hsum(_mm256_add_ps(s0, s1)) / cols;
        const __m256 vrstd = _mm256_set1_ps((float)(1.0 / sqrt(var + (double)eps)));

        for (c = 0; c < n; c += 8) {
            __m256i m = v8_tail_mask(n - c);
            __m256 d = _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + c, m), shift), delta);
            __m256 v = _mm256_mul_ps(d, vrstd);
            if (gamma) v = _mm256_mul_ps(v, _mm256_maskload_ps(gamma + c, m));
            if (beta) v = _mm256_add_ps(v, _mm256_maskload_ps(beta + c, m));
            _mm256_maskstore_ps(yr + c, m, v);
        }
    }
}
