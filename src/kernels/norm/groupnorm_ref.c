/*
 * groupnorm_ref.c - scalar reference GroupNorm (+ SiLU) of one NHWC image (the
 * specification; see groupnorm.h). Mean and biased variance in double, two passes,
 * as torch.nn.GroupNorm defines them; the normalised value is rounded to fp32, then
 * SiLU (pd_f32_act_scalar) when asked.
 */
#include <math.h>

#include "kernels/act/act.h"
#include "kernels/norm/groupnorm.h"

void pd_f32_groupnorm__ref(float *y, const float *x, int hw, int c, int groups, int g0, int g1,
                           const float *gamma, const float *beta, float eps, bool silu) {
    PD_ASSERT(groups >= 1 && c >= groups && c % groups == 0);
    PD_ASSERT(g0 >= 0 && g1 <= groups);
    if (hw <= 0) return;
    const int cg = c / groups;
    const double count = (double)hw * cg;
    for (int g = g0; g < g1; g++) {
        const size_t c0 = (size_t)g * (size_t)cg;
        double mean = 0.0, var = 0.0;
        for (size_t p = 0; p < (size_t)hw; p++)
            for (int j = 0; j < cg; j++) mean += x[p * (size_t)c + c0 + (size_t)j];
        mean /= count;
        for (size_t p = 0; p < (size_t)hw; p++)
            for (int j = 0; j < cg; j++) {
                double d = (double)x[p * (size_t)c + c0 + (size_t)j] - mean;
                var += d * d;
            }
        var /= count;
        const double rstd = 1.0 / sqrt(var + (double)eps);
        for (size_t p = 0; p < (size_t)hw; p++)
            for (int j = 0; j < cg; j++) {
                const size_t i = p * (size_t)c + c0 + (size_t)j;
                double v = ((double)x[i] - mean) * rstd;
                if (gamma) v *= gamma[c0 + (size_t)j];
                if (beta) v += beta[c0 + (size_t)j];
                y[i] = silu ? pd_f32_act_scalar((float)v, PD_ACT_SILU) : (float)v;
            }
    }
}
