/*
 * half_avx2.c - F16C/AVX2 row conversions between fp16/bf16 and fp32.
 *
 * Compiled with -mavx2 -mfma -mf16c (by file name); called by half.c only after
 * pd_cpu_detect said the CPU and OS support AVX2, FMA and F16C. Results are
 * bit-identical to the scalar functions in half.c (tests/unit/test_half.c compares
 * them on every 16-bit pattern and on f32 patterns around every rounding boundary):
 *   - VCVTPH2PS is exact and quiets NaN keeping the payload, like pd_f16_to_f32;
 *   - VCVTPS2PH with round-to-nearest-even matches pd_f32_to_f16 (overflow to inf,
 *     subnormals, NaN quieted with the top payload bits);
 *   - bf16 uses integer lanes with the same formulas as the scalar code.
 * Tails (n % 8) go through the scalar functions.
 */
#include "base/half.h"
#include "base/half_avx2.h"

#include <immintrin.h>

void pd_f16_to_f32_row__avx2(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) dst[i] = pd_f16_to_f32(src[i]);
}

void pd_f32_to_f16_row__avx2(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(src + i);
        __m128i h = _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++) dst[i] = pd_f32_to_f16(src[i]);
}

void pd_bf16_to_f32_row__avx2(float *dst, const uint16_t *src, size_t n) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000);
    const __m256i quiet = _mm256_set1_epi32(0x400000);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i));
        __m256i u = _mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16);
        __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
        u = _mm256_or_si256(u, _mm256_and_si256(is_nan, quiet));
        _mm256_storeu_si256((__m256i *)(dst + i), u);
    }
    for (; i < n; i++) dst[i] = pd_bf16_to_f32(src[i]);
}

void pd_f32_to_bf16_row__avx2(uint16_t *dst, const float *src, size_t n) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000);
    const __m256i quiet = _mm256_set1_epi32(0x400000);   /* bf16 0x40 in the top half */
    const __m256i round = _mm256_set1_epi32(0x7fff);
    const __m256i one = _mm256_set1_epi32(1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        __m256i rounded = _mm256_add_epi32(u, _mm256_add_epi32(round, odd));
        __m256i nan_bits = _mm256_or_si256(u, quiet);
        __m256i r = _mm256_blendv_epi8(rounded, nan_bits, is_nan);
        r = _mm256_srli_epi32(r, 16);
        /* pack 8 x u32 (each < 65536) to 8 x u16: packus works per 128-bit lane */
        __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
        _mm_storeu_si128((__m128i *)(dst + i), _mm_packus_epi32(lo, hi));
    }
    for (; i < n; i++) dst[i] = pd_f32_to_bf16(src[i]);
}
