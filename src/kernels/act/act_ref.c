/*
 * act_ref.c - scalar reference activations (the specification; see act.h).
 *
 * Evaluated in double with libm: GELU as x * 0.5 * erfc(-x / sqrt(2)), which equals
 * torch's x * 0.5 * (1 + erf(x / sqrt(2))) but keeps full relative precision for
 * negative x; sigmoid as 1 / (1 + exp(-x)). -inf maps to -0 (the limit). Quick-GELU
 * rounds 1.702 * x to float first (as torch does), then continues in double.
 */
#include "kernels/act/act.h"

#include <math.h>

float pd_f32_act_scalar(float x, pd_act act) {
    double d = x;
    if (act == PD_ACT_NONE) return x;
    if (act == PD_ACT_RELU) return x < 0.0f ? 0.0f : x;   /* NaN and -0 pass through */
    if (isinf(x)) return x > 0 ? x : -0.0f;
    switch (act) {
    case PD_ACT_GELU: return (float)(d * 0.5 * erfc(-d * M_SQRT1_2));
    case PD_ACT_QUICK_GELU: {
        /* The product 1.702 * x is rounded to float, as torch computes it. */
        double z = (float)(1.702f * x);
        return (float)(d / (1.0 + exp(-z)));
    }
    case PD_ACT_SILU: return (float)(d / (1.0 + exp(-d)));
    case PD_ACT_NONE:
    case PD_ACT_RELU: break;
    }
    return x;
}

void pd_f32_act__ref(float *y, const float *x, size_t n, pd_act act) {
    for (size_t i = 0; i < n; i++) y[i] = pd_f32_act_scalar(x[i], act);
}
