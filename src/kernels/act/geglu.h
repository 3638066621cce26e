/*
 * geglu.h - GEGLU (diffusers attention.GEGLU: proj output split in half along the
 * last axis, value * gelu(gate), exact-erf GELU): contract details and variant
 * declarations (the op's contract is geglu_f32 in kernels.h).
 *
 * geglu(y, ldy, x, ldx, rows, cols): for r < rows, j < cols,
 *   y[r*ldy + j] = x[r*ldx + j] * gelu(x[r*ldx + cols + j]).
 * y may equal x with ldy == ldx or ldy == cols (compacting in place: rows are
 * processed in order, each element read before any store that could hit it); any
 * other overlap is not allowed. Nothing outside y's [rows, cols) block is written.
 * Reference: gelu by pd_f32_act_scalar (double erfc), the product in fp32.
 * SIMD: v8_gelu / v16_gelu (vmath_*.h), within ~4 ulp of the reference; tests use
 * 1e-5 of max |ref|.
 */
#ifndef PD_KERNELS_GEGLU_H
#define PD_KERNELS_GEGLU_H

#include <stddef.h>

#include "kernels/kernels.h"

void pd_f32_geglu__ref(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols);
void pd_f32_geglu_16__avx2(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols);
void pd_f32_geglu_32__avx512(float *y, size_t ldy, const float *x, size_t ldx, int rows, int cols);

#endif
