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

float pd_f16_to_f32(uint16_t h);
uint16_t pd_f32_to_f16(float f);
float pd_bf16_to_f32(uint16_t b);
uint16_t pd_f32_to_bf16(float f);

void pd_f16_to_f32_row(float *dst, const uint16_t *src, size_t n);
void pd_bf16_to_f32_row(float *dst, const uint16_t *src, size_t n);
void pd_f32_to_f16_row(uint16_t *dst, const float *src, size_t n);
void pd_f32_to_bf16_row(uint16_t *dst, const float *src, size_t n);

#endif
