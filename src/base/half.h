/*
 * half.h - IEEE fp16 and bfloat16 <-> fp32 conversion.
 *
 * Scalar conversions are exact where the value is representable, round to nearest
 * even otherwise, and preserve inf/NaN (NaN stays NaN, quiet). The row functions may
 * use F16C/AVX-512 when the CPU has them (chosen at run time), with identical
 * results.
 */
#ifndef PD_BASE_HALF_H
#define PD_BASE_HALF_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"

#include <string.h>

/* The bits of a float and back (no aliasing UB). */
static inline uint32_t pd_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float pd_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float pd_f16_to_f32(uint16_t h);
uint16_t pd_f32_to_f16(float f);
float pd_bf16_to_f32(uint16_t b);
uint16_t pd_f32_to_bf16(float f);

void pd_f16_to_f32_row(float *dst, const uint16_t *src, size_t n);
void pd_bf16_to_f32_row(float *dst, const uint16_t *src, size_t n);
void pd_f32_to_f16_row(uint16_t *dst, const float *src, size_t n);
void pd_f32_to_bf16_row(uint16_t *dst, const float *src, size_t n);

/* dst[0..n) = elements of src as fp32, for src of dtype F32, F16 or BF16 (asserted).
 * src may be unaligned (it often points into a mapped checkpoint). */
void pd_to_f32(float *dst, const void *src, pd_dtype dt, size_t n);

#endif
