/*
 * geglu_avx2.c - GEGLU, 8 lanes x 2 per iteration (contract: geglu.h):
 * y = value * v8_gelu(gate). Tails use maskload/maskstore (no fault on masked lanes),
 * so nothing past cols is read from either half or written. Rows in order, each vector
 * read before its store (the in-place compaction of geglu.h stays safe).
 */
#include "kernels/act/geglu.h"
#include "kernels/act/vmath_avx2.h"

void pd_f32_geglu_16__avx2(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols) {
    const size_t n = cols > 0 ? (size_t)cols : 0;
    for (int r = 0; r < rows; r++) {
        const float *xv = x + (size_t)r * ldx, *xg = xv + n;
        float *yr = y + (size_t)r * ldy;
        size_t j = 0;
        for (; j + 16 <= n; j += 16) {
            __m256 v0 = _mm256_loadu_ps(xv + j), v1 = _mm256_loadu_ps(xv + j + 8);
            __m256 g0 = v8_gelu(_mm256_loadu_ps(xg + j)), g1 = v8_gelu(_mm256_loadu_ps(xg + j + 8));
            _mm256_storeu_ps(yr + j, _mm256_mul_ps(v0, g0));
            _mm256_storeu_ps(yr + j + 8, _mm256_mul_ps(v1, g1));
        }
        for (; j < n; j += 8) {
            __m256i m = v8_tail_mask(n - j);
            __m256 v = _mm256_maskload_ps(xv + j, m), g = v8_gelu(_mm256_maskload_ps(xg + j, m));
            _mm256_maskstore_ps(yr + j, m, _mm256_mul_ps(v, g));
        }
    }
}
