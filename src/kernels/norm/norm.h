/*
 * norm.h - row-wise layer norm and softmax: contracts and variant declarations.
 *
 * layernorm(y, ldy, x, ldx, rows, cols, gamma, beta, eps), for r in [0, rows):
 *   mean = sum_c x[r, c] / cols,  var = sum_c (x[r, c] - mean)^2 / cols  (biased)
 *   y[r, c] = (x[r, c] - mean) / sqrt(var + eps) * gamma[c] + beta[c]
 *   gamma == NULL means 1, beta == NULL means 0 (an addition to kernels.h). y may equal
 *   x (same ld) for an in-place norm; any other overlap is not allowed.
 *   Reference: mean and variance in double, two passes (torch.nn.LayerNorm).
 *   SIMD: fp32 lane sums of x - x[0] (a large common offset costs no precision), two
 *   passes (no E[x^2] - mean^2 cancellation).
 * softmax(x, ld, rows, cols): in place, x[r, c] = exp(x[r, c] - max_r) / sum_c exp(...).
 *   Reference: exp and the sum in double. A row holding +inf or NaN gives NaN; a row
 *   of all -inf gives NaN (as torch). SIMD: probabilities below ~1e-38 become 0.
 * Both: cols <= 0 does nothing (the row's first element is read for the max / the
 * shift); rows are independent (callers may split rows across threads); no alignment
 * required; nothing outside [0, rows) x [0, cols) of y / x is written.
 * Accuracy of the fp32 SIMD variants: ~1e-6 relative to max |ref| (tests use 1e-5).
 */
#ifndef PD_KERNELS_NORM_H
#define PD_KERNELS_NORM_H

#include <stddef.h>

#include "kernels/kernels.h"

void pd_f32_layernorm__ref(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols,
                           const float *gamma, const float *beta, float eps);
void pd_f32_layernorm_16__avx2(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                               int cols, const float *gamma, const float *beta, float eps);
void pd_f32_layernorm_32__avx512(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                                 int cols, const float *gamma, const float *beta, float eps);

void pd_f32_softmax__ref(float *x, size_t ld, int rows, int cols);
void pd_f32_softmax_16__avx2(float *x, size_t ld, int rows, int cols);
void pd_f32_softmax_32__avx512(float *x, size_t ld, int rows, int cols);

#endif
