/*
 * act_avx512.c - elementwise activations, 16 lanes x 2 per iteration (contract: act.h).
 *
 * The act switch is hoisted out of the loop: run() is inlined once per activation with
 * a constant act. Tails use masked loads/stores, so the last elements go through the
 * same vector code (bit-identical to full vectors) and nothing past n is touched.
 */
#include "kernels/act/act.h"
#include "kernels/act/vmath_avx512.h"

static inline __attribute__((always_inline)) void run(float *y, const float *x, size_t n, pd_act act) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i);
        __m512 b = _mm512_loadu_ps(x + i + 16);
        _mm512_storeu_ps(y + i, v16_act(a, act));
        _mm512_storeu_ps(y + i + 16, v16_act(b, act));
    }
    for (; i < n; i += 16) {
        __mmask16 m = v16_tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(y + i, m, v16_act(a, act));
    }
}

void pd_f32_act_32__avx512(float *y, const float *x, size_t n, pd_act act) {
    switch (act) {
    case PD_ACT_NONE: run(y, x, n, PD_ACT_NONE); break;
    case PD_ACT_GELU: run(y, x, n, PD_ACT_GELU); break;
    case PD_ACT_QUICK_GELU: run(y, x, n, PD_ACT_QUICK_GELU); break;
    case PD_ACT_SILU: run(y, x, n, PD_ACT_SILU); break;
    case PD_ACT_RELU: run(y, x, n, PD_ACT_RELU); break;
    }
}
