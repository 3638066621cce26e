/*
 * softmax_avx2.c - in-place row softmax, 8 lanes x 2 (contract: norm.h).
 * Pass 1: row max. Pass 2: x = exp(x - max) (v8_exp) stored in place while summing.
 * Pass 3: scale by 1 / sum. Tail lanes are masked out of the max and the sum.
 * A NaN anywhere makes the sum NaN, so the whole row is NaN, as in the reference.
 */
#include "kernels/act/vmath_avx2.h"
#include "kernels/norm/norm.h"

void pd_f32_softmax_16__avx2(float *x, size_t ld, int rows, int cols) {
    if (cols <= 0) return;
    const size_t n = (size_t)cols;
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * ld;
        __m256 m0 = neg_inf, m1 = neg_inf;
        size_t c = 0;
        for (; c + 16 <= n; c += 16) {
            m0 = _mm256_max_ps(m0, _mm256_loadu_ps(xr + c));
            m1 = _mm256_max_ps(m1, _mm256_loadu_ps(xr + c + 8));
        }
        for (; c < n; c += 8) {
            __m256i m = v8_tail_mask(n - c);
            __m256 v = _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(xr + c, m), _mm256_castsi256_ps(m));
            m0 = _mm256_max_ps(m0, v);
        }
        const __m256 vmax = _mm256_set1_ps(v8_hmax(_mm256_max_ps(m0, m1)));

        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        for (c = 0; c + 16 <= n; c += 16) {
            __m256 e0 = v8_exp(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vmax));
            __m256 e1 = v8_exp(_mm256_sub_ps(_mm256_loadu_ps(xr + c + 8), vmax));
            _mm256_storeu_ps(xr + c, e0);
            _mm256_storeu_ps(xr + c + 8, e1);
            s0 = _mm256_add_ps(s0, e0);
            s1 = _mm256_add_ps(s1, e1);
        }
        for (; c < n; c += 8) {
            __m256i m = v8_tail_mask(n - c);
            __m256 e = v8_exp(_mm256_sub_ps(_mm256_maskload_ps(xr + c, m), vmax));
            _mm256_maskstore_ps(xr + c, m, e);
            s0 = _mm256_add_ps(s0, _mm256_and_ps(e, _mm256_castsi256_ps(m)));
        }
        const __m256 inv = _mm256_set1_ps(1.0f / v8_hsum(_mm256_add_ps(s0, s1)));
        for (c = 0; c < n; c += 8) {
            __m256i m = v8_tail_mask(n - c);
            _mm256_maskstore_ps(xr + c, m, _mm256_mul_ps(_mm256_maskload_ps(xr + c, m), inv));
        }
    }
}
