/*
 * act.h - elementwise activations: contract and variant declarations.
 *
 * y[i] = act(x[i]) for i in [0, n); y may equal x (in place), otherwise y and x must
 * not overlap. act is one of pd_act (kernels.h):
 *   NONE        y = x (a copy)
 *   GELU        y = x * Phi(x), Phi(x) = 0.5 * erfc(-x / sqrt(2))   (torch gelu, exact erf)
 *   QUICK_GELU  y = x * sigmoid(1.702 x)
 *   SILU        y = x * sigmoid(x)
 *   RELU        y = x < 0 ? 0 : x   (exact in every variant; NaN -> NaN, -0 -> -0,
 *               -inf -> +0)
 * Special values (the reference defines them, SIMD variants match):
 *   NaN -> NaN; +inf -> +inf; -inf -> -0 for the sigmoid/erf ones (the limit, not
 *   inf * 0 = NaN), +0 for RELU;
 *   large negative x -> -0 or a tiny value. SIMD variants never produce denormals
 *   (each costs a ~100-cycle microcode assist on x86): results below 1e-34 in
 *   magnitude may be flushed to zero (SiLU/quick-GELU for x below about -87 and
 *   -51, GELU for x <= -12.5).
 * Accuracy: the reference evaluates in double with libm erfc/exp. SIMD variants are
 * within ~4 ulp of it for results above 1e-34 in magnitude (GELU keeps its relative accuracy
 * in the negative tail: it never forms 1 + erf(x) by cancellation).
 *
 * pd_f32_act_scalar is the one-element reference, used by other references (GEMM
 * epilogue) so every op applies the same definition.
 */
#ifndef PD_KERNELS_ACT_H
#define PD_KERNELS_ACT_H

#include <stddef.h>

#include "kernels/kernels.h"

float pd_f32_act_scalar(float x, pd_act act);

void pd_f32_act__ref(float *y, const float *x, size_t n, pd_act act);
void pd_f32_act_16__avx2(float *y, const float *x, size_t n, pd_act act);
void pd_f32_act_32__avx512(float *y, const float *x, size_t n, pd_act act);

#endif
