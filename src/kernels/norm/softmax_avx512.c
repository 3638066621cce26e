/*
 * softmax_avx512.c - in-place row softmax, 16 lanes x 2 (contract: norm.h).
 * Pass 1: row max. Pass 2: x = exp(x - max) (v16_exp) stored in place while summing.
 * Pass 3: scale by 1 / sum. Tail lanes load -inf, so they add exp(-inf) = 0.
 * A NaN anywhere makes the sum NaN, so the whole row is NaN, as in the reference.
 */
#include "kernels/act/vmath_avx512.h"
#include "kernels/norm/norm.h"

void pd_f32_softmax_32__avx512(float *x, size_t ld, int rows, int cols) {
    if (cols <= 0) return;
    const size_t n = (size_t)cols;
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * ld;
        __m512 m0 = neg_inf, m1 = neg_inf;
        size_t c = 0;
        for (; c + 32 <= n; c += 32) {
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(xr + c));
            m1 = _mm512_max_ps(m1, _mm512_loadu_ps(xr + c + 16));
        }
        for (; c < n; c += 16) m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(neg_inf, v16_tail_mask(n - c), xr + c));
        const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)));

        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        for (c = 0; c + 32 <= n; c += 32) {
            __m512 e0 = v16_exp(_mm512_sub_ps(_mm512_loadu_ps(xr + c), vmax));
            __m512 e1 = v16_exp(_mm512_sub_ps(_mm512_loadu_ps(xr + c + 16), vmax));
            _mm512_storeu_ps(xr + c, e0);
            _mm512_storeu_ps(xr + c + 16, e1);
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
        }
        for (; c < n; c += 16) {
            __mmask16 m = v16_tail_mask(n - c);
            __m512 e = v16_exp(_mm512_sub_ps(_mm512_mask_loadu_ps(neg_inf, m, xr + c), vmax));
            _mm512_mask_storeu_ps(xr + c, m, e);
            s0 = _mm512_add_ps(s0, _mm512_maskz_mov_ps(m, e));
        }
        const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
        for (c = 0; c < n; c += 16) {
            __mmask16 m = v16_tail_mask(n - c);
            _mm512_mask_storeu_ps(xr + c, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + c), inv));
        }
    }
}
