/*
 * geglu_avx512.c - GEGLU, 16 lanes x 2 per iteration (contract: geglu.h):
 * y = value * v16_gelu(gate). Tails use masked loads/stores, so nothing past cols is
 * read from either half or written. Rows in order, each vector read before its store
 * (the in-place compaction of geglu.h stays safe).
 */
#include "kernels/act/geglu.h"
#include "kernels/act/vmath_avx512.h"

void pd_f32_geglu_32__avx512(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols) {
    const size_t n = cols > 0 ? (size_t)cols : 0;
    for (int r = 0; r < rows; r++) {
        const float *xv = x + (size_t)r * ldx, *xg = xv + n;
        float *yr = y + (size_t)r * ldy;
        size_t j = 0;
        for (; j + 32 <= n; j += 32) {
            __m512 v0 = _mm512_loadu_ps(xv + j), v1 = _mm512_loadu_ps(xv + j + 16);
            __m512 g0 = v16_gelu(_mm512_loadu_ps(xg + j)), g1 = v16_gelu(_mm512_loadu_ps(xg + j + 16));
            _mm512_storeu_ps(yr + j, _mm512_mul_ps(v0, g0));
            _mm512_storeu_ps(yr + j + 16, _mm512_mul_ps(v1, g1));
        }
        for (; j < n; j += 16) {
            __mmask16 m = v16_tail_mask(n - j);
            __m512 v = _mm512_maskz_loadu_ps(m, xv + j), g = v16_gelu(_mm512_maskz_loadu_ps(m, xg + j));
            _mm512_mask_storeu_ps(yr + j, m, _mm512_mul_ps(v, g));
        }
    }
}
