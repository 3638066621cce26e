/*
 * act_avx2.c - elementwise activations, 8 lanes x 2 per iteration (contract: act.h).
 *
 * The act switch is hoisted out of the loop: run() is inlined once per activation with
 * a constant act. Tails use maskload/maskstore (no fault on masked lanes), so the last
 * elements go through the same vector code and nothing past n is touched.
 */
#include "kernels/act/act.h"
#include "kernels/act/vmath_avx2.h"

static inline __attribute__((always_inline)) void run(float *y, const float *x, size_t n, pd_act act) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i);
        __m256 b = _mm256_loadu_ps(x + i + 8);
        _mm256_storeu_ps(y + i, v8_act(a, act));
        _mm256_storeu_ps(y + i + 8, v8_act(b, act));
    }
    for (; i < n; i += 8) {
        __m256i m = v8_tail_mask(n - i);
        __m256 a = _mm256_maskload_ps(x + i, m);
        _mm256_maskstore_ps(y + i, m, v8_act(a, act));
    }
}

void pd_f32_act_16__avx2(float *y, const float *x, size_t n, pd_act act) {
    switch (act) {
    case PD_ACT_NONE: run(y, x, n, PD_ACT_NONE); break;
    case PD_ACT_GELU: run(y, x, n, PD_ACT_GELU); break;
    case PD_ACT_QUICK_GELU: run(y, x, n, PD_ACT_QUICK_GELU); break;
    case PD_ACT_SILU: run(y, x, n, PD_ACT_SILU); break;
    case PD_ACT_RELU: run(y, x, n, PD_ACT_RELU); break;
    }
}
