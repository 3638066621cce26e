/*
 * half_avx2.h - F16C/AVX2 variants of the half.h row conversions (x86 only).
 *
 * Internal to half.c: call only when the CPU has AVX2 and F16C. Same results as the
 * scalar row functions, bit for bit.
 */
#ifndef PD_BASE_HALF_AVX2_H
#define PD_BASE_HALF_AVX2_H

#include <stddef.h>
#include <stdint.h>

void pd_f16_to_f32_row__avx2(float *dst, const uint16_t *src, size_t n);
void pd_bf16_to_f32_row__avx2(float *dst, const uint16_t *src, size_t n);
void pd_f32_to_f16_row__avx2(uint16_t *dst, const float *src, size_t n);
void pd_f32_to_bf16_row__avx2(uint16_t *dst, const float *src, size_t n);

#endif
