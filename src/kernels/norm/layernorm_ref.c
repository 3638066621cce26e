/*
 * layernorm_ref.c - scalar reference layer norm (the specification; see norm.h).
 * Mean and biased variance in double, two passes, as torch.nn.LayerNorm defines them.
 */
#include <math.h>

#include "kernels/norm/norm.h"

void pd_f32_layernorm__ref(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols,
                           const float *gamma, const float *beta, float eps) {
    if (cols <= 0) return;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < cols; c++) mean += xr[c];
        mean /= cols;
        for (int c = 0; c < cols; c++) var += ((double)xr[c] - mean) * ((double)xr[c] - mean);
        var /= cols;
        double rstd = 1.0 / sqrt(var + (double)eps);
        for (int c = 0; c < cols; c++) {
            double v = ((double)xr[c] - mean) * rstd;
            if (gamma) v *= gamma[c];
            if (beta) v += beta[c];
            yr[c] = (float)v;
        }
    }
}
