/*
 * groupnorm.h - GroupNorm (+ fused SiLU) of one NHWC image: contract details and
 * variant declarations (the op's contract is groupnorm_f32 in kernels.h).
 *
 * groupnorm(y, x, hw, c, groups, g0, g1, gamma, beta, eps, silu): x and y are dense
 * [hw, c]; group g holds channels [g*cg, (g+1)*cg), cg = c / groups. For g in [g0, g1):
 *   mean = sum x / (hw*cg),  var = sum (x - mean)^2 / (hw*cg)   (biased, two passes)
 *   y = (x - mean) / sqrt(var + eps) * gamma[ch] + beta[ch],  then y = silu(y) if silu.
 * gamma == NULL means 1, beta == NULL means 0 (an addition to kernels.h). y may equal
 * x (in place); any other overlap is not allowed. Channels of other groups are neither
 * read nor written (callers split groups across threads, possibly in place).
 * hw <= 0 or g0 >= g1 does nothing.
 *
 * Reference: mean and variance in double, two passes (torch.nn.GroupNorm), SiLU by
 * pd_f32_act_scalar on the rounded fp32 norm output.
 * SIMD (pd_groupnorm_blocked + two ISA passes): the groups' channels are streamed
 * pixel by pixel as one contiguous run per pixel (all groups of [g0, g1) at once, not
 * one strided walk per group: a group is only 4..80 channels of a 320..2560-channel
 * pixel), with per-channel fp32 accumulators:
 *   pass 1: sum of x - shift, shift = the group's first element (a large common
 *           offset costs no precision: UNet/VAE activations can have |mean| >> std);
 *   pass 2: sum of d^2, d = (x - shift) - delta, delta = mean - shift (two passes: no
 *           E[x^2] - mean^2 cancellation);
 *   pass 3: y = d * (rstd * gamma) + beta (then SiLU), d formed as in pass 2, so the
 *           large offset never meets a rounded scale.
 * The per-channel sums are flushed into per-group doubles every PD_GN_FLUSH_PIXELS
 * pixels, so a 1024 x 1024 image (SDXL VAE) keeps fp32-level accuracy. Runs longer
 * than PD_GN_CHUNK channels are done in chunks (stack buffers stay small).
 * Accuracy: ~1e-6 relative to max |ref| (tests use 1e-5).
 */
#ifndef PD_KERNELS_GROUPNORM_H
#define PD_KERNELS_GROUPNORM_H

#include <stdbool.h>

#include "kernels/kernels.h"

void pd_f32_groupnorm__ref(float *y, const float *x, int hw, int c, int groups, int g0, int g1,
                           const float *gamma, const float *beta, float eps, bool silu);
void pd_f32_groupnorm_16__avx2(float *y, const float *x, int hw, int c, int groups, int g0,
                               int g1, const float *gamma, const float *beta, float eps, bool silu);
void pd_f32_groupnorm_32__avx512(float *y, const float *x, int hw, int c, int groups, int g0,
                                 int g1, const float *gamma, const float *beta, float eps,
                                 bool silu);

/* ---- the driver / pass split ----------------------------------------------------------
 * stats(acc, x, ld, rows, len, shift, delta, square): for j < len,
 *   acc[j] = sum_{r < rows} e(x[r*ld + j]),  e(v) = (v - shift[j]) - delta[j], squared
 *   when square (acc is overwritten, not accumulated).
 * apply(y, x, ld, rows, len, shift, delta, scale, beta, silu): for r < rows, j < len,
 *   y[r*ld + j] = silu?(((x - shift[j]) - delta[j]) * scale[j] + beta[j]); each element
 *   read before it is written (y may equal x). */
typedef struct pd_groupnorm_passes {
    void (*stats)(float *acc, const float *x, size_t ld, int rows, int len, const float *shift,
                  const float *delta, bool square);
    void (*apply)(float *y, const float *x, size_t ld, int rows, int len, const float *shift,
                  const float *delta, const float *scale, const float *beta, bool silu);
} pd_groupnorm_passes;

#define PD_GN_CHUNK 1024          /* channels per pass call (stack buffers) */
#define PD_GN_FLUSH_PIXELS 128    /* pixels per fp32 partial sum */

void pd_groupnorm_blocked(const pd_groupnorm_passes *p, float *y, const float *x, int hw, int c,
                          int groups, int g0, int g1, const float *gamma, const float *beta,
                          float eps, bool silu);

#endif
