/*
 * half.c - IEEE 754 binary16 (fp16) and bfloat16 <-> binary32 conversion.
 *
 * Widening (fp16/bf16 -> f32) is exact for every bit pattern; NaN payloads are kept
 * (shifted into the top of the f32 mantissa) with the quiet bit set, sign kept.
 * Narrowing (f32 -> fp16/bf16) rounds to nearest, ties to even, like the hardware
 * (F16C VCVTPS2PH with imm 0, AVX512-BF16 VCVTNEPS2BF16, PyTorch c10::Half and
 * c10::BFloat16 round_to_nearest_even):
 *   - values >= 65520 in magnitude overflow to inf (65504 is the largest fp16);
 *   - values below 2^-14 become fp16 subnormals, rounded at 2^-24; below 2^-25 they
 *     round to (signed) zero, exactly 2^-25 ties to zero (even);
 *   - NaN becomes a quiet NaN with the sign and the top mantissa bits kept.
 * Invariant: narrow(widen(x)) == x for every non-NaN 16-bit pattern x.
 * Reference: IEEE 754-2008 section 3.6; the bit layouts are
 *   fp16 1|5|10 (bias 15), bf16 1|8|7 (bias 127, the top half of an f32).
 *
 * The row functions are loops over the scalar functions; on x86 builds (PD_ARCH_X86)
 * rows of 16 or more elements go to the F16C/AVX2 variants in half_avx2.c when
 * pd_cpu_detect says the CPU (and OS) support AVX2, FMA and F16C (same results, bit
 * for bit; test_half.c checks the rows against the scalar functions).
 */
#include "base/half.h"

#include <stdbool.h>
#include <string.h>

#include "base/error.h"

#if defined(PD_ARCH_X86)
#include "base/cpu.h"
#include "base/half_avx2.h"
#define HAVE_AVX2_ROWS 1
/* pd_cpu_detect runs cpuid + xgetbv once per process (pthread_once) and then copies
 * the cached result. (clang 14 has no __builtin_cpu_supports("f16c").) */
static bool use_avx2_rows(size_t n) {
    if (n < 16) return false;
    pd_cpu_features f;
    pd_cpu_detect(&f);
    return pd_cpu_supports(&f, PD_ISA_AVX2);   /* AVX2 + FMA + F16C, OS-enabled */
}
#endif

float pd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) {                  /* inf or NaN */
        uint32_t nan_bits = man ? (0x400000u | (man << 13)) : 0;
        return pd_bits_f32(sign | 0x7f800000u | nan_bits);
    }
    if (exp == 0) {
        if (man == 0) return pd_bits_f32(sign);   /* signed zero */
        /* subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 0x1p-24f;
        return pd_bits_f32(sign | pd_f32_bits(v));
    }
    return pd_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t pd_f32_to_f16(float f) {
    uint32_t u = pd_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {             /* inf or NaN */
        if (a == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    }
    if (a >= 0x477ff000u)               /* >= 65520: rounds past 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {              /* below 2^-14: subnormal or zero */
        if (a < 0x33000000u)            /* below 2^-25: rounds to zero */
            return sign;
        /* value = m * 2^(e-150) with m the 24-bit significand; the result counts
         * units of 2^-24, i.e. m >> (126 - e) rounded to nearest even. */
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;      /* 14 .. 24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias 127 -> 15 and round the low 13 bits to nearest even; a carry
     * into the exponent is correct (and cannot reach inf, see the check above). */
    uint32_t r = a - 0x38000000u;       /* (127 - 15) << 23 */
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}

float pd_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x400000u;   /* quiet NaN */
    return pd_bits_f32(u);
}

uint16_t pd_f32_to_bf16(float f) {
    uint32_t u = pd_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)                  /* NaN: keep sign, quiet */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);                      /* overflow carries to inf */
    return (uint16_t)(u >> 16);
}

void pd_f16_to_f32_row(float *dst, const uint16_t *src, size_t n) {
#ifdef HAVE_AVX2_ROWS
    if (use_avx2_rows(n)) {
        pd_f16_to_f32_row__avx2(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = pd_f16_to_f32(src[i]);
}

void pd_bf16_to_f32_row(float *dst, const uint16_t *src, size_t n) {
#ifdef HAVE_AVX2_ROWS
    if (use_avx2_rows(n)) {
        pd_bf16_to_f32_row__avx2(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = pd_bf16_to_f32(src[i]);
}

void pd_f32_to_f16_row(uint16_t *dst, const float *src, size_t n) {
#ifdef HAVE_AVX2_ROWS
    if (use_avx2_rows(n)) {
        pd_f32_to_f16_row__avx2(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = pd_f32_to_f16(src[i]);
}

void pd_f32_to_bf16_row(uint16_t *dst, const float *src, size_t n) {
#ifdef HAVE_AVX2_ROWS
    if (use_avx2_rows(n)) {
        pd_f32_to_bf16_row__avx2(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = pd_f32_to_bf16(src[i]);
}

void pd_to_f32(float *dst, const void *src, pd_dtype dt, size_t n) {
    const unsigned char *s = src;
    if (dt == PD_DTYPE_F32) {
        memcpy(dst, s, n * sizeof(float));
        return;
    }
    PD_ASSERT(dt == PD_DTYPE_F16 || dt == PD_DTYPE_BF16);
    uint16_t tmp[512];   /* aligned staging for possibly unaligned 16-bit data */
    for (size_t i = 0; i < n; i += 512) {
        size_t c = n - i < 512 ? n - i : 512;
        memcpy(tmp, s + i * 2, c * 2);
        if (dt == PD_DTYPE_F16) pd_f16_to_f32_row(dst + i, tmp, c);
        else pd_bf16_to_f32_row(dst + i, tmp, c);
    }
}
